/* dist.c - what the trainer needs for data-parallel training over a tk_dist: which rows of a
 * batch this rank computes, what share of the batch's loss they carry, the checks that refuse
 * what sharding would change, and the reductions (gradients, metrics, rank 0's buffers; the
 * batch norms' synchronised statistics are reduced by their kernels through tk_stat_sync),
 * and which checkpoints resume on another rank count.
 * Not here: any transport (lang/dist_mpi.c implements tk_dist on MPI) or the loop itself
 * (train.c calls these at a few points). */
#include "tk_int.h"

#include <stdio.h>
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

static bool class_mean(const tk_model *m)
{
    const tk_node *loss = &m->g->nodes[m->g->loss];
    return (loss->op->flags & TK_OP_CLASS_TARGET) &&
           strcmp(tk_attr_str(loss, "reduction", "mean"), "sum") != 0;
}

/* The shard's rows move to the front of the input and target buffers, and dropout's draws
 * are numbered from the shard's first row, so every row sees the mask one process gives it.
 * A class loss's mean divides by the summed weight of the rows that count (class weights,
 * ignore_index), which a shard cannot know from its own rows: it takes the whole batch's,
 * computed here from the whole batch's targets as one process computes it. */
int tk_dist_take_rows(tk_model *m, const tk_dist *d, int n)
{
    int lo, hi;
    tk_dist_shard(d, n, &lo, &hi);
    m->row0 = lo;
    if (class_mean(m)) {
        double whole = tk_model_loss_weight(m, n);
        m->train.args[m->g->loss].divisor = m->eval.args[m->g->loss].divisor = whole;
    }
    if (lo > 0) {
        size_t x = (size_t)tk_sample_numel(&m->g->nodes[m->g->input].shape);
        size_t y = (size_t)tk_sample_numel(&m->g->nodes[m->g->target].shape);
        memmove(m->input, m->input + (size_t)lo * x, sizeof(float) * x * (size_t)(hi - lo));
        memmove(m->target, m->target + (size_t)lo * y, sizeof(float) * y * (size_t)(hi - lo));
    }
    return hi - lo;
}

/* A mean loss over n rows is the rows-weighted sum of the shards' means; a sum is the sum,
 * and so is a class loss's mean, each shard divided by the whole batch's denominator. */
double tk_dist_loss_share(const tk_model *m, int rows, int n)
{
    const tk_node *loss = &m->g->nodes[m->g->loss];
    const char *red = tk_attr_str(loss, "reduction", "mean");
    return strcmp(red, "sum") == 0 || class_mean(m) ? 1.0 : (double)rows / (double)n;
}

static bool has_buffers(const tk_model *m)
{
    for (int i = 0; i < m->n_state; i++)
        if (m->tensors[i].kind == TK_TENSOR_BUFFER)
            return true;
    return false;
}

void tk_dist_attach(tk_model *m, const tk_train_opts *o, bool on)
{
    bool sync = on && o->sync_batch_norm && tk_dist_on(o->dist);
    m->sync = (tk_stat_sync){sync ? o->dist : NULL, TK_OK};
    for (int v = 0; v < m->g->n_nodes; v++)
        m->train.args[v].sync = sync ? &m->sync : NULL;
    m->train.args[m->g->loss].divisor = m->eval.args[m->g->loss].divisor = 0;
}

int64_t tk_dist_stat_ranks(const tk_train_opts *o)
{
    return tk_dist_on(o->dist) && !o->sync_batch_norm ? o->dist->size : 1;
}

/* Per-rank statistics would change their meaning on another rank count, or when
 * sync_batch_norm changes mid-run; statistics of the whole batch resume on any count. */
tk_status tk_dist_resume_check(const tk_model *m, const tk_train_opts *o, int64_t was,
                               int64_t stats_was, const char *path, tk_ctx *ctx)
{
    int64_t now = tk_dist_on(o->dist) ? o->dist->size : 1, stats_now = tk_dist_stat_ranks(o);
    for (int i = 0; i < m->n_state && stats_was != stats_now; i++) {
        if (m->tensors[i].kind != TK_TENSOR_BUFFER)
            continue;
        char were[96], fix[160];
        if (stats_was > 1) {
            snprintf(were, sizeof were, "per rank of %lld", (long long)stats_was);
            snprintf(fix, sizeof fix, "resume with %lld ranks and sync_batch_norm = false",
                     (long long)stats_was);
        } else {
            snprintf(were, sizeof were, "over the whole batch");
            snprintf(fix, sizeof fix, "resume on one process or with sync_batch_norm = true");
        }
        return tk_fail(ctx, TK_ERR_INPUT, "%s: written by a run on %lld rank%s whose "
                       "batch-norm statistics (%s) were taken %s; this run (%lld rank%s%s) "
                       "would change their meaning mid-run: %s", path, (long long)was,
                       was > 1 ? "s" : "", m->tensors[i].name, were, (long long)now,
                       now > 1 ? "s" : "", now > 1 && !o->sync_batch_norm
                           ? ", statistics per rank" : "", fix);
    }
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
    /* Synchronised statistics need every rank in every train batch's reductions: an
     * epoch's last batch must leave each rank a row. */
    int64_t len = o->train ? tk_view_len(o->train) : 0, last = len % o->batch_size;
    if (o->sync_batch_norm && has_buffers(m) && !o->drop_last && last > 0 && last < d->size)
        return tk_fail(ctx, TK_ERR_INPUT, "sync_batch_norm: the last batch of an epoch has "
                       "%lld row%s (%lld training rows, batch_size %d), fewer than the %d "
                       "ranks, which would leave a rank out of the batch-norm statistics' "
                       "sums: set data.drop_last = true, or another batch_size", (long long)last,
                       last > 1 ? "s" : "", (long long)len, o->batch_size, d->size);
    return TK_OK;
}

static tk_status failed(const tk_dist *d, tk_ctx *ctx, const char *what)
{
    return tk_fail(ctx, TK_ERR_RUNTIME, "rank %d of %d: the reduction of %s failed (another "
                   "rank stopped?); the last checkpoint is kept", d->rank, d->size, what);
}

tk_status tk_dist_sync_status(const tk_model *m, tk_ctx *ctx)
{
    return m->sync.st == TK_OK ? TK_OK : failed(m->sync.dist, ctx, "the batch-norm statistics");
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
    bool buffers = has_buffers(m);
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
