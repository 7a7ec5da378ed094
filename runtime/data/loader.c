/* loader.c - batches over a view: the epoch's order (a seeded permutation keyed by
 * (seed, epoch), so resume finds the same order without replaying earlier epochs), gathering
 * rows by index, uint8/float32 -> float conversion, the view's augmentations (augment.c: per
 * sample, keyed by (seed, epoch, dataset index), so they do not depend on the batching) and
 * the view's transform.
 *
 * With prefetch, one background thread gathers batch i+1 into a staging buffer while the
 * caller computes on batch i; tk_loader_next copies it out, or gathers it itself when the
 * thread has not started on it yet (on a busy machine it may wait long for a core, while the
 * caller's own core is about to idle). Both modes run the same gather code, so they give the
 * same bytes. Every buffer is allocated in tk_loader_new: a batch
 * allocates nothing. Call tk_loader_begin before tk_loader_next (until then it returns 0).
 * The view must outlive the loader and not change (split, normalize, augment) while it is in
 * use.
 * Not here: the dataset readers, splits and normalisation statistics.
 */
#include "dataset.h"

#include <pthread.h>
#include <signal.h>
#include <string.h>

struct tk_loader {
    tk_view *v;
    tk_loader_opts o;
    int64_t n_batches;
    int64_t *order;            /* view positions in this epoch's order */
    int64_t next;              /* the batch the caller gets next */
    int64_t epoch;
    bool begun;
    float *aug_a, *aug_b;      /* one sample each: augmentation scratch (only gather uses it) */

    bool threaded;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;         /* any change of job, ready, busy or stop */
    float *sx, *sy;            /* staging: batch_size rows */
    int64_t *srows;
    int s_count;               /* rows in staging */
    int64_t job;               /* batch the worker is asked for, -1: none */
    int64_t ready;             /* batch held in staging, -1: none */
    bool busy, stop;
};

/* Rows of batch b into x, y (and rows): the only code that produces a batch. */
static int gather(const tk_loader *l, int64_t b, float *x, float *y, int64_t *rows)
{
    const tk_view *v = l->v;
    const tk_dataset *ds = v->ds;
    const int64_t nf = ds->nfeat;
    const int lw = ds->label_width;
    int64_t start = b * l->o.batch_size;
    int count = (int)(v->n - start < l->o.batch_size ? v->n - start : l->o.batch_size);
    for (int r = 0; r < count; r++) {
        int64_t d = v->idx[l->order[start + r]];
        float *dst = x + (int64_t)r * nf;
        if (v->n_aug) {
            for (int64_t f = 0; f < nf; f++)
                l->aug_a[f] = ds->x8 ? (float)ds->x8[d * nf + f] : ds->x32[d * nf + f];
            const float *src = tk_aug_apply(v, l->o.seed, l->epoch, d, l->aug_a, l->aug_b);
            for (int64_t f = 0; f < nf; f++)
                dst[f] = src[f] * v->mul[f] + v->add[f];
        } else if (ds->x8) {
            const unsigned char *src = ds->x8 + d * nf;
            for (int64_t f = 0; f < nf; f++)
                dst[f] = (float)src[f] * v->mul[f] + v->add[f];
        } else {
            const float *src = ds->x32 + d * nf;
            for (int64_t f = 0; f < nf; f++)
                dst[f] = src[f] * v->mul[f] + v->add[f];
        }
        if (lw)
            memcpy(y + (int64_t)r * lw, ds->y + d * lw, (size_t)lw * sizeof(float));
        if (rows)
            rows[r] = d;
    }
    return count;
}

static void *worker(void *arg)
{
    tk_loader *l = arg;
    pthread_mutex_lock(&l->mu);
    for (;;) {
        while (!l->stop && l->job < 0)
            pthread_cond_wait(&l->cv, &l->mu);
        if (l->stop)
            break;
        int64_t b = l->job;
        l->job = -1;
        l->busy = true;
        pthread_mutex_unlock(&l->mu);
        int count = gather(l, b, l->sx, l->sy, l->srows);
        pthread_mutex_lock(&l->mu);
        l->busy = false;
        l->ready = b;
        l->s_count = count;
        pthread_cond_broadcast(&l->cv);
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

static tk_status start_thread(tk_loader *l, tk_ctx *ctx)
{
    if (pthread_mutex_init(&l->mu, NULL) != 0)
        return tk_fail(ctx, TK_ERR_RUNTIME, "loader: cannot create a mutex");
    if (pthread_cond_init(&l->cv, NULL) != 0) {
        pthread_mutex_destroy(&l->mu);
        return tk_fail(ctx, TK_ERR_RUNTIME, "loader: cannot create a condition variable");
    }
    /* The worker blocks every signal, so Ctrl-C always reaches the training thread. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&l->thread, NULL, worker, l);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        pthread_cond_destroy(&l->cv);
        pthread_mutex_destroy(&l->mu);
        return tk_fail(ctx, TK_ERR_RUNTIME, "loader: cannot start the prefetch thread");
    }
    l->threaded = true;
    return TK_OK;
}

tk_status tk_loader_new(tk_view *v, const tk_loader_opts *o, tk_loader **out, tk_ctx *ctx)
{
    *out = NULL;
    const tk_dataset *ds = v->ds;
    if (o->batch_size < 1)
        return tk_fail(ctx, TK_ERR_INPUT, "batch_size must be >= 1 (got %d)", o->batch_size);
    if (v->n == 0)
        return tk_fail(ctx, TK_ERR_INPUT, "%s: no samples to load", ds->name);
    if (o->drop_last && v->n < o->batch_size)
        return tk_fail(ctx, TK_ERR_INPUT,
                       "%s: batch_size %d is more than its %lld samples, and drop_last "
                       "would drop them all", ds->name, o->batch_size, (long long)v->n);
    tk_loader *l = tk_calloc(1, sizeof *l);
    if (!l)
        return tk_fail(ctx, TK_ERR_RUNTIME, "loader: out of memory");
    l->v = v;
    l->o = *o;
    l->n_batches = o->drop_last ? v->n / o->batch_size
                                : (v->n + o->batch_size - 1) / o->batch_size;
    l->job = l->ready = -1;
    l->order = tk_malloc((size_t)v->n * sizeof(int64_t));
    bool ok = l->order != NULL;
    if (ok && v->n_aug) {
        l->aug_a = tk_alloc_floats((size_t)ds->nfeat);
        l->aug_b = tk_alloc_floats((size_t)ds->nfeat);
        ok = l->aug_a && l->aug_b;
    }
    if (ok && o->prefetch) {
        size_t bs = (size_t)o->batch_size;
        l->sx = tk_alloc_floats(bs * (size_t)ds->nfeat);
        l->sy = tk_alloc_floats(bs * (size_t)ds->label_width);
        l->srows = tk_malloc(bs * sizeof(int64_t));
        ok = l->sx && l->sy && l->srows;
    }
    tk_status st = ok ? TK_OK : tk_fail(ctx, TK_ERR_RUNTIME, "loader: out of memory");
    if (!st && o->prefetch)
        st = start_thread(l, ctx);
    if (st) {
        tk_loader_free(l);
        return st;
    }
    *out = l;
    return TK_OK;
}

void tk_loader_free(tk_loader *l)
{
    if (!l)
        return;
    if (l->threaded) {
        pthread_mutex_lock(&l->mu);
        l->stop = true;
        pthread_cond_broadcast(&l->cv);
        pthread_mutex_unlock(&l->mu);
        pthread_join(l->thread, NULL);
        pthread_cond_destroy(&l->cv);
        pthread_mutex_destroy(&l->mu);
    }
    tk_free(l->order);
    tk_free_aligned(l->aug_a);
    tk_free_aligned(l->aug_b);
    tk_free_aligned(l->sx);
    tk_free_aligned(l->sy);
    tk_free(l->srows);
    tk_free(l);
}

int64_t tk_loader_batches(const tk_loader *l)
{
    return l->n_batches;
}

void tk_loader_begin(tk_loader *l, int64_t epoch, int64_t cursor)
{
    if (l->threaded) {
        /* Abandon whatever was asked for or gathered; wait out a gather in progress, since
         * it reads the order about to be rewritten. */
        pthread_mutex_lock(&l->mu);
        l->job = -1;
        while (l->busy)
            pthread_cond_wait(&l->cv, &l->mu);
        l->ready = -1;
        pthread_mutex_unlock(&l->mu);
    }
    const int64_t n = l->v->n;
    for (int64_t i = 0; i < n; i++)
        l->order[i] = i;
    if (l->o.shuffle) {
        tk_rng r = tk_rng_make(l->o.seed, TK_STREAM_SHUFFLE, (uint32_t)epoch,
                               (uint32_t)((uint64_t)epoch >> 32));
        for (int64_t i = n - 1; i > 0; i--) {
            int64_t j = (int64_t)tk_rng_below(&r, (uint64_t)i + 1);
            int64_t t = l->order[i];
            l->order[i] = l->order[j];
            l->order[j] = t;
        }
    }
    l->next = cursor < 0 ? 0 : cursor > l->n_batches ? l->n_batches : cursor;
    l->epoch = epoch;
    l->begun = true;
    if (l->threaded && l->next < l->n_batches) {
        pthread_mutex_lock(&l->mu);
        l->job = l->next;
        pthread_cond_broadcast(&l->cv);
        pthread_mutex_unlock(&l->mu);
    }
}

int tk_loader_next(tk_loader *l, float *x, float *y, int64_t *rows_out)
{
    if (!l->begun || l->next >= l->n_batches)
        return 0;
    int64_t b = l->next++;
    if (!l->threaded)
        return gather(l, b, x, y, rows_out);
    pthread_mutex_lock(&l->mu);
    if (l->ready != b && l->job == b && !l->busy) {
        l->job = -1;
        pthread_mutex_unlock(&l->mu);
        int count = gather(l, b, x, y, rows_out);
        pthread_mutex_lock(&l->mu);
        if (l->next < l->n_batches) {
            l->job = l->next;
            pthread_cond_broadcast(&l->cv);
        }
        pthread_mutex_unlock(&l->mu);
        return count;
    }
    while (l->ready != b)
        pthread_cond_wait(&l->cv, &l->mu);
    int count = l->s_count;
    const tk_dataset *ds = l->v->ds;
    memcpy(x, l->sx, (size_t)count * (size_t)ds->nfeat * sizeof(float));
    if (ds->label_width)
        memcpy(y, l->sy, (size_t)count * (size_t)ds->label_width * sizeof(float));
    if (rows_out)
        memcpy(rows_out, l->srows, (size_t)count * sizeof(int64_t));
    l->ready = -1;
    if (l->next < l->n_batches) {
        l->job = l->next;
        pthread_cond_broadcast(&l->cv);
    }
    pthread_mutex_unlock(&l->mu);
    return count;
}
