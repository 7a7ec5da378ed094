/* report.c - the tables tkrun prints for a compiled model: the layer table and the
 * parameter-group table (check, summary, note.log). Not here: the epoch lines (cmd_train.c). */
#include "lang.h"

#include <string.h>


static void thousands(char *buf, size_t cap, int64_t v)
{
    char raw[32];
    snprintf(raw, sizeof raw, "%lld", (long long)v);
    size_t len = strlen(raw), o = 0;
    for (size_t i = 0; i < len && o + 2 < cap; i++) {
        if (i > 0 && (len - i) % 3 == 0 && raw[i - 1] != '-')
            buf[o++] = ',';
        buf[o++] = raw[i];
    }
    buf[o] = 0;
}

void tk_print_layers(FILE *f, const tk_model *m)
{
    fprintf(f, "%-16s %-20s %-20s %12s  %s\n", "layer", "type", "output shape", "params",
            "script");
    for (int i = 0; i < tk_model_layer_count(m); i++) {
        tk_layer_info l = tk_model_layer(m, i);
        char shape[96], params[32];
        tk_shape_str(&l.shape, shape, sizeof shape);
        thousands(params, sizeof params, l.params);
        fprintf(f, "%-16s %-20s %-20s %12s  %s\n", l.name[0] ? l.name : "(model)", l.type,
                shape, params, l.where);
    }
    char total[32], trainable[32];
    thousands(total, sizeof total, tk_model_param_count(m, false));
    thousands(trainable, sizeof trainable, tk_model_param_count(m, true));
    fprintf(f, "total params %s (trainable %s), activation memory %.2f MiB\n", total, trainable,
            (double)tk_model_arena_bytes(m) / 1048576.0);
}

void tk_print_groups(FILE *f, const tk_model *m)
{
    tk_optim_kind kind = tk_model_optim_kind(m);
    fprintf(f, "optimizer %s\n%-5s %-24s %7s %10s %10s %12s  %s\n", tk_optim_kind_name(kind),
            "group", "patterns", "tensors", "elements", "lr", "weight_decay", "options");
    for (int g = 0; g < tk_model_group_count(m); g++) {
        tk_group_info gi = tk_model_group(m, g);
        const tk_optim_hparams *h = &gi.h;
        char opts[256], elements[32];
        thousands(elements, sizeof elements, gi.elements);
        switch (kind) {
        case TK_OPT_SGD:
            snprintf(opts, sizeof opts, "momentum=%g dampening=%g nesterov=%s", h->momentum,
                     h->dampening, h->nesterov ? "true" : "false");
            break;
        case TK_OPT_ADAM:
        case TK_OPT_ADAMW:
            snprintf(opts, sizeof opts, "betas=(%g, %g) eps=%g amsgrad=%s", h->beta1, h->beta2,
                     h->eps, h->amsgrad ? "true" : "false");
            break;
        case TK_OPT_RMSPROP:
            snprintf(opts, sizeof opts, "alpha=%g eps=%g momentum=%g centered=%s", h->alpha,
                     h->eps, h->momentum, h->centered ? "true" : "false");
            break;
        case TK_OPT_ADAGRAD:
            snprintf(opts, sizeof opts, "lr_decay=%g eps=%g initial_accumulator_value=%g",
                     h->lr_decay, h->eps, h->initial_accumulator_value);
            break;
        }
        fprintf(f, "%-5d %-24s %7d %10s %10g %12g  %s\n", g, gi.patterns, gi.tensors, elements,
                h->lr, h->weight_decay, opts);
    }
}

