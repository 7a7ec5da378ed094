/* optim.c - the optimizer registry (name -> update rule; the rules live one per file) and
 * the table that maps a script option's name onto tk_optim_hparams, so lang/ passes options
 * by name and knows no optimizer. Not here: the update rules, the flat buffer (plan.c). */
#include "tk_int.h"

#include <stddef.h>
#include <stdio.h>
#include <string.h>

extern const tk_optim_def tk_optim_sgd, tk_optim_adam, tk_optim_adamw, tk_optim_rmsprop,
    tk_optim_adagrad;

static const tk_optim_def *const registry[] = {
    &tk_optim_sgd, &tk_optim_adam, &tk_optim_adamw, &tk_optim_rmsprop, &tk_optim_adagrad,
};

const tk_optim_def *tk_optim_def_find(const char *name)
{
    for (size_t i = 0; name && i < sizeof registry / sizeof registry[0]; i++)
        if (strcmp(registry[i]->name, name) == 0)
            return registry[i];
    return NULL;
}

const char *const *tk_optim_options(const char *name)
{
    const tk_optim_def *d = tk_optim_def_find(name);
    return d ? d->options : NULL;
}

typedef enum { HP_NUMBER, HP_FLAG, HP_PAIR } hp_type;

/* A pair fills two adjacent doubles (betas: beta1, beta2). */
static const struct {
    const char *name;
    hp_type type;
    size_t offset;
} fields[] = {
    {"lr", HP_NUMBER, offsetof(tk_optim_hparams, lr)},
    {"weight_decay", HP_NUMBER, offsetof(tk_optim_hparams, weight_decay)},
    {"momentum", HP_NUMBER, offsetof(tk_optim_hparams, momentum)},
    {"dampening", HP_NUMBER, offsetof(tk_optim_hparams, dampening)},
    {"nesterov", HP_FLAG, offsetof(tk_optim_hparams, nesterov)},
    {"betas", HP_PAIR, offsetof(tk_optim_hparams, beta1)},
    {"eps", HP_NUMBER, offsetof(tk_optim_hparams, eps)},
    {"amsgrad", HP_FLAG, offsetof(tk_optim_hparams, amsgrad)},
    {"alpha", HP_NUMBER, offsetof(tk_optim_hparams, alpha)},
    {"centered", HP_FLAG, offsetof(tk_optim_hparams, centered)},
    {"lr_decay", HP_NUMBER, offsetof(tk_optim_hparams, lr_decay)},
    {"initial_accumulator_value", HP_NUMBER,
     offsetof(tk_optim_hparams, initial_accumulator_value)},
};

static int field_of(const char *key)
{
    for (int i = 0; i < (int)(sizeof fields / sizeof fields[0]); i++)
        if (strcmp(fields[i].name, key) == 0)
            return i;
    return -1;
}

tk_status tk_optim_set(tk_optim_hparams *h, const char *key, const double *v, int n,
                       tk_ctx *ctx)
{
    int f = field_of(key);
    int want = f < 0 ? 0 : fields[f].type == HP_PAIR ? 2 : 1;
    if (f < 0 || n != want)
        return tk_fail(ctx, TK_ERR_INPUT, "optimizer option '%s': %s", key,
                       f < 0 ? "no optimizer has it" : want == 2 ? "needs 2 numbers"
                                                                 : "needs one value");
    char *at = (char *)h + fields[f].offset;
    if (fields[f].type == HP_FLAG)
        *(bool *)at = v[0] != 0;
    else
        memcpy(at, v, (size_t)n * sizeof(double));
    return TK_OK;
}

void tk_optim_describe(const char *name, const tk_optim_hparams *h, char *buf, size_t cap)
{
    const char *const *opts = tk_optim_options(name);
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; opts && opts[i] && used < cap; i++) {
        int f = field_of(opts[i]);
        if (f < 0 || strcmp(opts[i], "lr") == 0 || strcmp(opts[i], "weight_decay") == 0)
            continue;
        const char *at = (const char *)h + fields[f].offset;
        const char *sep = used ? " " : "";
        if (fields[f].type == HP_FLAG) {
            used += (size_t)snprintf(buf + used, cap - used, "%s%s=%s", sep, opts[i],
                                     *(const bool *)at ? "true" : "false");
            continue;
        }
        double d[2];
        memcpy(d, at, (fields[f].type == HP_PAIR ? 2 : 1) * sizeof(double));
        if (fields[f].type == HP_PAIR)
            used += (size_t)snprintf(buf + used, cap - used, "%s%s=(%g, %g)", sep, opts[i], d[0],
                                     d[1]);
        else
            used += (size_t)snprintf(buf + used, cap - used, "%s%s=%g", sep, opts[i], d[0]);
    }
}
