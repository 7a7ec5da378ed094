/* dist.c - what the trainer needs for data-parallel training over a tk_dist: which rows of a
 * batch this rank computes, what share of the batch's loss they carry, the checks that refuse
 * what sharding would change, and the reductions (gradients, metrics, rank 0's buffers).
 * Not here: any transport (lang/dist_mpi.c implements tk_dist on MPI) or the loop itself
 * (train.c calls these at a few points). */
#include "tk_int.h"

#include <string.h>

bool tk_dist_on(const tk_dist *d)
{
    return d && d->size > 1;
}

void tk_dist_shard(const tk_dist *d, int n, int *lo, int *hi)
{
    if (!tk_dist_on(d)) {
        *lo = 0;
        *hi = n;
        return;
    }
    *lo = (int)((int64_t)n * d->rank / d->size);
    *hi = (int)((int64_t)n * (d->rank + 1) / d->size);
}

/* The shard's rows move to the front of the input and target buffers, and dropout's draws
 * are numbered from the shard's first row, so every row sees the mask one process gives it. */
int tk_dist_take_rows(tk_model *m, const tk_dist *d, int n)
{
    int lo, hi;
    tk_dist_shard(d, n, &lo, &hi);
    m->row0 = lo;
    if (lo > 0) {
        size_t x = (size_t)tk_sample_numel(&m->g->nodes[m->g->input].shape);
        size_t y = (size_t)tk_sample_numel(&m->g->nodes[m->g->target].shape);
        memmove(m->input, m->input + (size_t)lo * x, sizeof(float) * x * (size_t)(hi - lo));
        memmove(m->target, m->target + (size_t)lo * y, sizeof(float) * y * (size_t)(hi - lo));
    }
    return hi - lo;
}

/* A mean loss over n rows is the rows-weighted sum of the shards' means; a sum is the sum. */
double tk_dist_loss_share(const tk_model *m, int rows, int n)
{
    const tk_node *loss = &m->g->nodes[m->g->loss];
    const char *red = tk_attr_str(loss, "reduction", "mean");
    return strcmp(red, "sum") == 0 ? 1.0 : (double)rows / (double)n;
}

/* Sharding is exact only where a batch's loss is a mean over its rows (or a sum): class
 * weights and ignored rows make the mean divide by a per-shard weight total instead. */
static bool is_ignored(float y, void *ud)
{
    return (int64_t)y == *(const int64_t *)ud;
}

static tk_status check_split(const tk_model *m, const tk_view *v, tk_ctx *ctx)
{
    const tk_node *loss = &m->g->nodes[m->g->loss];
    if (!v || !(loss->op->flags & TK_OP_CLASS_TARGET) ||
        strcmp(tk_attr_str(loss, "reduction", "mean"), "sum") == 0)
        return TK_OK;
    int64_t ignore = tk_attr_int(loss, "ignore_index", -100);
    char where[512];
    float y;
    if (tk_view_find_label(v, is_ignored, &ignore, &y, where, sizeof where))
        return tk_fail(ctx, TK_ERR_INPUT, "%s: %s: %s has label %lld = ignore_index; "
                       "data-parallel training does not support ignored rows yet (the "
                       "mean would divide by each rank's own count)", loss->where,
                       loss->op->name, where, (long long)ignore);
    return TK_OK;
}

tk_status tk_dist_check(const tk_model *m, const tk_train_opts *o, tk_ctx *ctx)
{
    const tk_dist *d = o->dist;
    if (!tk_dist_on(d))
        return TK_OK;
    if (!d->allreduce_sum || !d->allreduce_doubles || d->rank < 0 || d->rank >= d->size)
        return tk_fail(ctx, TK_ERR_INPUT, "data-parallel: rank %d of %d, or a missing "
                       "reduction", d->rank, d->size);
    if (o->batch_size < d->size)
        return tk_fail(ctx, TK_ERR_INPUT, "batch_size %d over %d ranks leaves ranks without "
                       "rows: batch_size is the global batch (each rank takes batch_size / "
                       "ranks), so use at most %d rank%s or a larger batch", o->batch_size,
                       d->size, o->batch_size, o->batch_size > 1 ? "s" : "");
    const tk_node *loss = &m->g->nodes[m->g->loss];
    if ((loss->op->flags & TK_OP_CLASS_TARGET) && tk_node_attr(loss, "weight") &&
        strcmp(tk_attr_str(loss, "reduction", "mean"), "sum") != 0)
        return tk_fail(ctx, TK_ERR_INPUT, "%s: %s with class weights: data-parallel training "
                       "does not support a weighted mean yet (each rank would divide by its "
                       "own weight total); use reduction = \"sum\" or one process",
                       loss->where, loss->op->name);
    if (check_split(m, o->train, ctx) != TK_OK || check_split(m, o->valid, ctx) != TK_OK ||
        check_split(m, o->test, ctx) != TK_OK)
        return TK_ERR_INPUT;
    return TK_OK;
}

static tk_status failed(const tk_dist *d, tk_ctx *ctx, const char *what)
{
    return tk_fail(ctx, TK_ERR_RUNTIME, "rank %d of %d: the reduction of %s failed (another "
                   "rank stopped?); the last checkpoint is kept", d->rank, d->size, what);
}

tk_status tk_dist_sum_doubles(const tk_dist *d, double *v, size_t n, const char *what,
                              tk_ctx *ctx)
{
    if (tk_dist_on(d) && d->allreduce_doubles(v, n, d->ud) != TK_OK)
        return failed(d, ctx, what);
    return TK_OK;
}

/* Gradients summed over the ranks; then rank 0's buffers (batch-norm running statistics)
 * everywhere, as DDP's broadcast_buffers, so that eval passes and checkpoints see one model:
 * the other ranks contribute zeros to a sum, which copies rank 0's values exactly. */
tk_status tk_dist_reduce_grad(tk_model *m, const tk_dist *d, tk_ctx *ctx)
{
    if (!tk_dist_on(d))
        return TK_OK;
    if (m->n_train && d->allreduce_sum(m->grad, (size_t)m->n_train, d->ud) != TK_OK)
        return failed(d, ctx, "the gradients");
    bool buffers = false;
    for (int i = 0; i < m->n_state; i++)
        buffers = buffers || m->tensors[i].kind == TK_TENSOR_BUFFER;
    /* Buffers and frozen parameters share the flat region after the trainable ones. */
    size_t n = (size_t)(m->n_flat - m->n_train);
    if (!buffers || n == 0)
        return TK_OK;
    float *rest = m->flat + m->n_train;
    if (d->rank != 0)
        memset(rest, 0, sizeof(float) * n);
    if (d->allreduce_sum(rest, n, d->ud) != TK_OK)
        return failed(d, ctx, "the batch-norm buffers");
    return TK_OK;
}

tk_status tk_dist_reduce_metrics(tk_metrics *mt, const tk_dist *d, tk_ctx *ctx)
{
    if (!tk_dist_on(d))
        return TK_OK;
    int64_t n = tk_metrics_state_size(mt);
    double *v = tk_calloc((size_t)n, sizeof(double));
    if (!v)
        return tk_fail(ctx, TK_ERR_RUNTIME, "out of memory");
    tk_metrics_get_state(mt, v);
    tk_status st = tk_dist_sum_doubles(d, v, (size_t)n, "the metrics", ctx);
    if (st == TK_OK)
        tk_metrics_set_state(mt, v);
    tk_free(v);
    return st;
}

bool tk_dist_any(const tk_dist *d, bool flag, tk_ctx *ctx, tk_status *st)
{
    double v = flag ? 1.0 : 0.0;
    *st = tk_dist_sum_doubles(d, &v, 1, "the stop flag", ctx);
    return v > 0;
}
