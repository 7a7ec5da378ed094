/* stepper.c - training one optimizer step at a time, for the REPL: the same updates as
 * tk_train (accumulation windows, clipping, the LR schedule, non-finite handling, the
 * shuffle order and dropout keys), but driven by the caller: n steps, the rest of an epoch,
 * an evaluation of one split, one batch of a split. Per-group lr overrides replace the
 * schedule for that group. Also the model queries the REPL needs (gradients, the output
 * shape). Not here: the save policy, early stopping, run logs (train.c, runlog.c). */
#include "tk_int.h"

#include <math.h>
#include <string.h>

struct tk_stepper {
    tk_model *m;
    tk_train_opts o;
    tk_loader *train, *eval[3];   /* eval: in order, every row (evaluate, batch) */
    tk_metrics *train_mt, *eval_mt;
    tk_sched *sched;
    double *lrs, *override;       /* override[g]: NAN follows the schedule */
    int n_groups;
    int64_t epoch, cursor, step, batches_seen, skips;
    bool begun;                   /* the train loader is at (epoch + 1, cursor) */
    double loss_sum, loss_weight; /* the current epoch's train pass so far (as tk_train's) */
};

void tk_stepper_free(tk_stepper *s)
{
    if (!s)
        return;
    tk_loader_free(s->train);
    for (int k = 0; k < 3; k++)
        tk_loader_free(s->eval[k]);
    tk_metrics_free(s->train_mt);
    tk_metrics_free(s->eval_mt);
    tk_sched_free(s->sched);
    tk_free(s->lrs);
    tk_free(s->override);
    tk_free(s);
}

tk_status tk_stepper_new(tk_model *m, const tk_train_opts *o, tk_stepper **out, tk_ctx *ctx)
{
    *out = NULL;
    if (tk_check_data(m, o, ctx) != TK_OK)
        return TK_ERR_INPUT;
    tk_stepper *s = tk_calloc(1, sizeof *s);
    if (!s)
        return tk_fail(ctx, TK_ERR_RUNTIME, "out of memory");
    s->m = m;
    s->o = *o;
    s->n_groups = tk_model_group_count(m);
    const tk_dataset *ds = tk_view_dataset(o->train);
    s->train_mt = tk_metrics_for(m, ds);
    s->eval_mt = tk_metrics_for(m, ds);
    s->lrs = tk_calloc((size_t)s->n_groups, sizeof(double));
    s->override = tk_calloc((size_t)s->n_groups, sizeof(double));
    if (!s->train_mt || !s->eval_mt || !s->lrs || !s->override) {
        tk_stepper_free(s);
        return tk_fail(ctx, TK_ERR_RUNTIME, "out of memory");
    }
    for (int g = 0; g < s->n_groups; g++) {
        s->lrs[g] = tk_model_group(m, g).h.lr;
        s->override[g] = NAN;
    }
    tk_status st = tk_sched_new(o->sched, s->n_groups, s->lrs, &s->sched, ctx);
    tk_view *views[3] = {o->train, o->valid, o->test};
    tk_loader_opts lo = {.batch_size = o->batch_size, .shuffle = o->shuffle,
                         .drop_last = o->drop_last, .seed = o->seed, .prefetch = true};
    if (st == TK_OK)
        st = tk_loader_new(o->train, &lo, &s->train, ctx);
    for (int k = 0; st == TK_OK && k < 3; k++) {
        tk_loader_opts eo = {.batch_size = o->batch_size, .seed = o->seed};
        if (views[k])
            st = tk_loader_new(views[k], &eo, &s->eval[k], ctx);
    }
    if (st != TK_OK) {
        tk_stepper_free(s);
        return st;
    }
    *out = s;
    return TK_OK;
}

/* ---------------------------------------------------------------- state, lr */

tk_stepper_state tk_stepper_get_state(const tk_stepper *s)
{
    return (tk_stepper_state){s->epoch, s->cursor, tk_loader_batches(s->train), s->step,
                              s->skips};
}

void tk_stepper_lrs(tk_stepper *s, double *lrs)
{
    tk_sched_lrs(s->sched, s->step, s->lrs);
    for (int g = 0; g < s->n_groups; g++)
        lrs[g] = isnan(s->override[g]) ? s->lrs[g] : s->override[g];
}

tk_status tk_stepper_set_lr(tk_stepper *s, int group, double lr, tk_ctx *ctx)
{
    if (group < 0 || group >= s->n_groups)
        return tk_fail(ctx, TK_ERR_INPUT, "no parameter group %d (the groups are 0 to %d)",
                       group, s->n_groups - 1);
    if (!isnan(lr) && !(lr >= 0 && isfinite(lr)))
        return tk_fail(ctx, TK_ERR_INPUT, "lr must be a finite number >= 0, got %g", lr);
    s->override[group] = lr;
    return TK_OK;
}

/* ---------------------------------------------------------------- training */

/* tk_train's update: rescale a short window, the non-finite check, clipping, the lr. */
static tk_status update(tk_stepper *s, float loss, int in_window, tk_ctx *ctx)
{
    const tk_train_opts *o = &s->o;
    int k = tk_accumulation(o);
    if (in_window < k)
        tk_model_scale_grad(s->m, (float)k / (float)in_window);
    tk_model_check_fused(s->m);
    double norm = tk_model_grad_norm(s->m);
    if (!isfinite(loss) || !isfinite(norm)) {
        const char *what = !isfinite(loss) ? "loss" : "gradient norm";
        double v = !isfinite(loss) ? (double)loss : norm;
        if (!o->skip_nonfinite || (o->max_skips > 0 && s->skips + 1 > o->max_skips))
            return tk_fail(ctx, TK_ERR_RUNTIME, "non-finite %s (%g) at epoch %lld, batch %lld: "
                           "the update was not applied (lower the learning rate or clip "
                           "gradients)", what, v, (long long)s->epoch + 1,
                           (long long)s->cursor + in_window);
        s->skips++;
        return TK_OK;
    }
    if (o->clip_grad_value > 0) {
        tk_model_clip_grad_value(s->m, (float)o->clip_grad_value);
        norm = tk_model_grad_norm(s->m);
    }
    if (o->clip_grad_norm > 0) {
        double coef = o->clip_grad_norm / (norm + 1e-6);
        if (coef < 1.0)
            tk_model_scale_grad(s->m, (float)coef);
    }
    double lrs[s->n_groups];
    tk_stepper_lrs(s, lrs);
    tk_model_update(s->m, lrs);
    s->step++;
    return TK_OK;
}

/* One optimizer step: a window of micro-batches, ending early at the epoch's end. */
static tk_status step_window(tk_stepper *s, tk_stepper_result *r, tk_ctx *ctx)
{
    tk_model *m = s->m;
    const int k = tk_accumulation(&s->o), width = tk_model_output_width(m);
    const int64_t batches = tk_loader_batches(s->train);
    if (!s->begun) {
        if (s->cursor == 0) {
            tk_metrics_reset(s->train_mt);
            s->loss_sum = s->loss_weight = 0;
        }
        tk_loader_begin(s->train, s->epoch + 1, s->cursor);
        s->begun = true;
    }
    int in_window = 0;
    float loss = 0;
    while (in_window < k && s->cursor + in_window < batches) {
        int n = tk_loader_next(s->train, tk_model_input(m), tk_model_target(m), NULL);
        if (n < 0) {
            s->begun = false;
            return tk_loader_fail(s->train, ctx);
        }
        if (n == 0)
            break;
        if (in_window++ == 0)
            tk_model_zero_grad(m);
        double weight = tk_model_loss_weight(m, n);
        if (tk_model_forward_backward(m, n, 1.0f / (float)k, (uint64_t)s->batches_seen++,
                                      &loss, ctx) != TK_OK) {
            s->begun = false; /* mid-window: the next step starts this window again */
            return TK_ERR_RUNTIME;
        }
        tk_metrics_add(s->train_mt, tk_model_output(m), width, tk_model_target(m), n);
        if (weight > 0) {
            s->loss_sum += (double)loss * weight;
            s->loss_weight += weight;
            r->loss_sum += (double)loss * weight;
            r->loss_weight += weight;
        }
    }
    if (in_window == 0)
        return tk_fail(ctx, TK_ERR_RUNTIME, "the train loader gave no batch at epoch %lld, "
                       "batch %lld", (long long)s->epoch + 1, (long long)s->cursor + 1);
    /* A refused update still consumes its window, as in tk_train: the next step goes on
     * with the batches after it instead of meeting the same non-finite values again. */
    tk_status st = update(s, loss, in_window, ctx);
    s->cursor += in_window;
    r->loss = s->loss_weight > 0 ? s->loss_sum / s->loss_weight : NAN;
    r->accuracy = tk_metrics_accuracy(s->train_mt);
    if (st == TK_OK)
        r->steps++;
    if (s->cursor >= batches) {
        s->epoch++;
        s->cursor = 0;
        s->begun = false;
        r->epoch_done = true;
    }
    return st;
}

/* Fused as tk_train's steps are, but only within the step: another backward on this model
 * in between (the REPL's) must not find the weight products left out. */
static tk_status one_step(tk_stepper *s, tk_stepper_result *r, tk_ctx *ctx)
{
    tk_model_fuse_update(s->m, tk_train_fuses(&s->o), true);
    tk_status st = step_window(s, r, ctx);
    tk_model_fuse_update(s->m, false, false);
    return st;
}

static tk_status interrupted(const tk_stepper *s, tk_ctx *ctx)
{
    return tk_fail(ctx, TK_ERR_INTERRUPTED, "interrupted at epoch %lld, batch %lld (step %lld)",
                   (long long)s->epoch + (s->cursor ? 1 : 0), (long long)s->cursor,
                   (long long)s->step);
}

tk_status tk_stepper_step(tk_stepper *s, int64_t n, volatile int *interrupt,
                          tk_stepper_result *r, tk_ctx *ctx)
{
    memset(r, 0, sizeof *r);
    for (int64_t i = 0; i < n; i++) {
        tk_status st = one_step(s, r, ctx);
        if (st != TK_OK)
            return st;
        if (interrupt && *interrupt && i + 1 < n)
            return interrupted(s, ctx);
    }
    return TK_OK;
}

tk_status tk_stepper_epoch(tk_stepper *s, volatile int *interrupt, tk_stepper_result *r,
                           tk_ctx *ctx)
{
    memset(r, 0, sizeof *r);
    while (!r->epoch_done) {
        tk_status st = one_step(s, r, ctx);
        if (st != TK_OK)
            return st;
        if (interrupt && *interrupt && !r->epoch_done)
            return interrupted(s, ctx);
    }
    return TK_OK;
}

const tk_metrics *tk_stepper_train_metrics(const tk_stepper *s)
{
    return s->train_mt;
}

void tk_stepper_observe(tk_stepper *s, double value)
{
    tk_sched_observe(s->sched, value);
}

/* ---------------------------------------------------------------- evaluation, batches */

static tk_loader *split_loader(const tk_stepper *s, int split, tk_ctx *ctx)
{
    static const char *const names[3] = {"train", "valid", "test"};
    if (split < 0 || split > 2)
        return tk_fail(ctx, TK_ERR_INPUT, "no split %d", split), NULL;
    if (!s->eval[split])
        tk_fail(ctx, TK_ERR_INPUT, "the script has no %s split", names[split]);
    return s->eval[split];
}

tk_status tk_stepper_evaluate(tk_stepper *s, int split, double *loss,
                              const tk_metrics **metrics, tk_ctx *ctx)
{
    tk_loader *ld = split_loader(s, split, ctx);
    if (!ld)
        return TK_ERR_INPUT;
    tk_model *m = s->m;
    const int width = tk_model_output_width(m);
    double sum = 0;
    double weight = 0;
    tk_metrics_reset(s->eval_mt);
    tk_loader_begin(ld, 0, 0);
    int n;
    while ((n = tk_loader_next(ld, tk_model_input(m), tk_model_target(m), NULL)) > 0) {
        float l;
        double w = tk_model_loss_weight(m, n);
        if (tk_model_eval(m, n, &l, ctx) != TK_OK)
            return TK_ERR_RUNTIME;
        tk_metrics_add(s->eval_mt, tk_model_output(m), width, tk_model_target(m), n);
        if (w > 0) {
            sum += (double)l * w;
            weight += w;
        }
    }
    if (n < 0)
        return tk_loader_fail(ld, ctx);
    *loss = weight > 0 ? sum / weight : NAN;
    *metrics = s->eval_mt;
    return TK_OK;
}

int64_t tk_stepper_batches(const tk_stepper *s, int split)
{
    return split >= 0 && split < 3 && s->eval[split] ? tk_loader_batches(s->eval[split]) : 0;
}

int tk_stepper_batch(tk_stepper *s, int split, int64_t i, float *x, float *y, tk_ctx *ctx)
{
    tk_loader *ld = split_loader(s, split, ctx);
    if (!ld)
        return -1;
    int64_t n = tk_loader_batches(ld);
    if (i < 0 || i >= n)
        return tk_fail(ctx, TK_ERR_INPUT, "batch %lld out of range: the split has %lld "
                       "batches (1 to %lld)", (long long)i + 1, (long long)n, (long long)n),
               -1;
    tk_loader_begin(ld, 0, i);
    int got = tk_loader_next(ld, x, y, NULL);
    if (got < 0)
        tk_loader_fail(ld, ctx);
    return got;
}

/* ---------------------------------------------------------------- model queries */

float *tk_model_tensor_grad(const tk_model *m, int i)
{
    return i >= 0 && i < m->n_tensors ? m->tensors[i].grad : NULL;
}

tk_shape tk_model_output_shape(const tk_model *m)
{
    return m->g->nodes[m->g->output].shape;
}
