/* loader.c - batches over a view: the epoch's order (a seeded permutation keyed by
 * (seed, epoch), so resume finds the same order without replaying earlier epochs), gathering
 * rows by index, uint8/float32 -> float conversion, the view's augmentations (augment.c: per
 * sample, keyed by (seed, epoch, dataset index), so they do not depend on the batching) and
 * the view's transform.
 *
 * With prefetch (when it pays: a spare core, a streamed file or augmentations), one
 * background thread gathers batch i+1 into a staging buffer while the caller computes on
 * batch i; tk_loader_next copies it out, or gathers it itself when the
 * thread has not started on it yet (on a busy machine it may wait long for a core, while the
 * caller's own core is about to idle; not for streamed views, below). Both modes run the same
 * gather code, so they give the same bytes. Every buffer is allocated in tk_loader_new: a
 * batch allocates nothing. Call tk_loader_begin before tk_loader_next (until then it returns 0).
 * The view must outlive the loader and not change (split, normalize, augment) while it is in
 * use.
 *
 * A streamed view (csv_stream.c) has no samples in memory. Its epoch order is the shards in
 * a seeded order (keyed by (seed, epoch)), cut into windows of `window` shards; each window
 * is read whole into a slot and shuffled as a whole (keyed by (seed, epoch, window)), like a
 * tf.data shuffle buffer that is filled and emptied in one go: position k of the epoch is a
 * function of (seed, epoch, k), so a resumed epoch reads the one window its cursor is in and
 * goes on bit for bit. Two slots: batches come from one while the prefetch thread, between
 * batches, and a helper thread read the next window's shards into the other; every shard has
 * its place in the slot (the counts are known), so which thread read it changes nothing.
 * Not here: the dataset readers, splits and normalisation statistics.
 */
#include "dataset.h"

#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    float *x, *y;
    int64_t *rows;
    int32_t *perm;
    int64_t *offs;             /* where each shard of the window goes, and the total */
    int64_t w;                 /* window held, -1: none */
    int64_t claimed, done;     /* of its shards: being or been read, and read */
    int inflight;              /* reads under way */
    bool bad;                  /* a read failed */
} slot;

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
    pthread_t helper;          /* streamed: a second reader of the next window */
    bool has_helper;
    pthread_mutex_t mu;
    pthread_cond_t cv;         /* any change of job, ready, busy or stop */
    float *sx, *sy;            /* staging: batch_size rows */
    int64_t *srows;
    int s_count;               /* rows in staging */
    int64_t job;               /* batch the worker is asked for, -1: none */
    int64_t ready;             /* batch held in staging, -1: none */
    bool busy, stop;

    /* streamed views */
    tk_stream_reader *rd, *rd2; /* the gathering thread's, the helper's */
    int64_t per_win, n_win;    /* shards per window, windows per epoch */
    int64_t cap;               /* samples a slot holds */
    int64_t *shard_order;      /* this epoch's */
    int64_t *win_start;        /* n_win + 1: each window's first epoch position */
    slot slots[2];
    int cur;                   /* the slot batches come from */
    int64_t ahead;             /* the window to read ahead, -1: none */
    bool failed;
    tk_ctx err;                /* why the reader failed */
    tk_ctx err2;               /* the helper's (its failures are read again by seek) */
};

/* ---------------------------------------------------------------- streamed windows */

/* The loader's mutex guards the slots' bookkeeping (w, claimed, done, inflight, bad), cur
 * and ahead while the prefetch threads run; without them these are no-ops. */
static void lock(tk_loader *l)
{
    if (l->threaded)
        pthread_mutex_lock(&l->mu);
}

static void unlock(tk_loader *l)
{
    if (l->threaded)
        pthread_mutex_unlock(&l->mu);
}

static void wait_change(tk_loader *l)
{
    if (l->threaded)
        pthread_cond_wait(&l->cv, &l->mu);
}

static void changed(tk_loader *l)
{
    if (l->threaded)
        pthread_cond_broadcast(&l->cv);
}

static int64_t win_shards(const tk_loader *l, int64_t w)
{
    const tk_stream *s = l->v->ds->stream;
    int64_t left = s->n_shards - w * l->per_win;
    return left < l->per_win ? left : l->per_win;
}

/* The slot to hold window w, empty: each shard's samples have a fixed place in it (the
 * counts are known), so shards can be read in any order, by either thread. */
static void slot_reset(tk_loader *l, slot *sl, int64_t w)
{
    sl->w = w;
    sl->claimed = sl->done = 0;
    sl->bad = false;
    sl->offs[0] = 0;
    for (int64_t i = 0; i < win_shards(l, w); i++)
        sl->offs[i + 1] = sl->offs[i] +
                          tk_stream_shard_n(l->v, l->shard_order[w * l->per_win + i]);
}

/* Claim the next unread shard of sl (the lock held), read it without the lock. */
static tk_status read_claimed(tk_loader *l, slot *sl, tk_stream_reader *rd, tk_ctx *ctx)
{
    const tk_dataset *ds = l->v->ds;
    int64_t i = sl->claimed++, got, at = sl->offs[i];
    int64_t shard = l->shard_order[sl->w * l->per_win + i];
    sl->inflight++;
    unlock(l);
    tk_status st = tk_stream_read_shard(rd, shard, sl->x + at * ds->nfeat,
                                        sl->y + at * ds->label_width, sl->rows + at, &got,
                                        ctx);
    lock(l);
    sl->inflight--;
    if (st)
        sl->bad = true;
    else
        sl->done++;
    changed(l);
    return st;
}

/* Whether a prefetch thread has a shard of the window after the current one to read. */
static bool ahead_pending(const tk_loader *l)
{
    const slot *o = &l->slots[1 - l->cur];
    if (!l->rd || l->failed || l->ahead < 0)
        return false;
    return o->w != l->ahead ? o->inflight == 0 : !o->bad && o->claimed < win_shards(l, o->w);
}

/* One shard of the window after the current one (the lock held). A failure marks the slot,
 * which seek then reads again itself: there it ends the batch that needs the window. */
static void read_ahead(tk_loader *l, tk_stream_reader *rd, tk_ctx *ctx)
{
    slot *o = &l->slots[1 - l->cur];
    if (o->w != l->ahead)
        slot_reset(l, o, l->ahead);
    read_claimed(l, o, rd, ctx);
}

/* Make the current slot the window holding epoch position k; the gathering thread only. */
static tk_status seek(tk_loader *l, int64_t k)
{
    slot *c = &l->slots[l->cur];
    if (c->w >= 0 && k >= l->win_start[c->w] && k < l->win_start[c->w + 1])
        return TK_OK;
    int64_t w = c->w >= 0 && k >= l->win_start[c->w + 1] ? c->w + 1 : 0;
    while (k >= l->win_start[w + 1])
        w++;
    slot *o = &l->slots[1 - l->cur];
    const int64_t n = win_shards(l, w);
    lock(l);
    for (int attempt = 0; attempt < 2; attempt++) {
        if (o->w != w || o->bad) {
            l->ahead = -1; /* the helper stops claiming shards of what the slot held */
            while (o->inflight)
                wait_change(l);
            slot_reset(l, o, w);
        }
        while (o->claimed < n && !o->bad)
            if (read_claimed(l, o, l->rd, &l->err) != TK_OK) {
                unlock(l);
                return TK_ERR_RUNTIME;
            }
        while (o->done < n && !o->bad)
            wait_change(l);
        if (!o->bad)
            break;
    }
    if (o->bad) {
        unlock(l);
        return TK_ERR_RUNTIME;
    }
    unlock(l);
    const int64_t count = o->offs[n];
    for (int64_t i = 0; i < count; i++)
        o->perm[i] = (int32_t)i;
    if (l->o.shuffle) {
        tk_rng r = tk_rng_make(l->o.seed, TK_STREAM_WINDOW, (uint32_t)l->epoch, (uint32_t)w);
        for (int64_t i = count - 1; i > 0; i--) {
            int64_t j = (int64_t)tk_rng_below(&r, (uint64_t)i + 1);
            int32_t t = o->perm[i];
            o->perm[i] = o->perm[j];
            o->perm[j] = t;
        }
    }
    lock(l);
    l->cur = 1 - l->cur;
    l->ahead = w + 1 < l->n_win ? w + 1 : -1;
    changed(l);
    unlock(l);
    return TK_OK;
}

static int gather_stream(tk_loader *l, int64_t b, float *x, float *y, int64_t *rows)
{
    const tk_view *v = l->v;
    const int64_t nf = v->ds->nfeat;
    const int lw = v->ds->label_width;
    int64_t start = b * l->o.batch_size;
    int count = (int)(v->n - start < l->o.batch_size ? v->n - start : l->o.batch_size);
    for (int r = 0; r < count; r++) {
        if (seek(l, start + r) != TK_OK) {
            lock(l);
            l->failed = true;
            l->ahead = -1;
            unlock(l);
            return -1;
        }
        const slot *sl = &l->slots[l->cur];
        int64_t j = sl->perm[start + r - l->win_start[sl->w]];
        const float *src = sl->x + j * nf;
        float *dst = x + (int64_t)r * nf;
        if (v->n_aug) {
            memcpy(l->aug_a, src, (size_t)nf * sizeof(float));
            src = tk_aug_apply(v, l->o.seed, l->epoch, sl->rows[j], l->aug_a, l->aug_b);
        }
        for (int64_t f = 0; f < nf; f++)
            dst[f] = src[f] * v->mul[f] + v->add[f];
        if (lw)
            memcpy(y + (int64_t)r * lw, sl->y + j * lw, (size_t)lw * sizeof(float));
        if (rows)
            rows[r] = sl->rows[j];
    }
    return count;
}

/* This epoch's shard order and where each window starts (no read in flight). */
static void plan_stream(tk_loader *l, int64_t epoch)
{
    const tk_stream *s = l->v->ds->stream;
    for (int64_t i = 0; i < s->n_shards; i++)
        l->shard_order[i] = i;
    if (l->o.shuffle) {
        tk_rng r = tk_rng_make(l->o.seed, TK_STREAM_WINDOW, (uint32_t)epoch, UINT32_MAX);
        for (int64_t i = s->n_shards - 1; i > 0; i--) {
            int64_t j = (int64_t)tk_rng_below(&r, (uint64_t)i + 1);
            int64_t t = l->shard_order[i];
            l->shard_order[i] = l->shard_order[j];
            l->shard_order[j] = t;
        }
        /* Slots hold windows of the last epoch's order; unshuffled ones stay valid. */
        l->slots[0].w = l->slots[1].w = -1;
    }
    l->win_start[0] = 0;
    for (int64_t w = 0; w < l->n_win; w++) {
        int64_t n = 0;
        for (int64_t i = 0; i < win_shards(l, w); i++)
            n += tk_stream_shard_n(l->v, l->shard_order[w * l->per_win + i]);
        l->win_start[w + 1] = l->win_start[w] + n;
    }
}

static tk_status stream_new(tk_loader *l, tk_ctx *ctx)
{
    const tk_dataset *ds = l->v->ds;
    const tk_stream *s = ds->stream;
    /* Unshuffled, a window is only the read-ahead unit: one shard is enough. */
    l->per_win = l->o.shuffle ? s->window : 1;
    l->n_win = (s->n_shards + l->per_win - 1) / l->per_win;
    l->cap = l->per_win * s->shard_size;
    l->shard_order = tk_malloc((size_t)s->n_shards * sizeof(int64_t));
    l->win_start = tk_malloc((size_t)(l->n_win + 1) * sizeof(int64_t));
    bool ok = l->shard_order && l->win_start;
    for (int k = 0; ok && k < 2; k++) {
        slot *sl = &l->slots[k];
        sl->x = tk_alloc_floats((size_t)(l->cap * ds->nfeat));
        sl->y = tk_alloc_floats((size_t)(l->cap * (ds->label_width ? ds->label_width : 1)));
        sl->rows = tk_malloc((size_t)l->cap * sizeof(int64_t));
        sl->perm = tk_malloc((size_t)l->cap * sizeof(int32_t));
        sl->offs = tk_malloc((size_t)(l->per_win + 1) * sizeof(int64_t));
        sl->w = -1;
        ok = sl->x && sl->y && sl->rows && sl->perm && sl->offs;
    }
    l->ahead = -1;
    if (!ok)
        return tk_fail(ctx, TK_ERR_RUNTIME, "loader: out of memory");
    tk_status st = tk_stream_reader_new(l->v, &l->rd, ctx);
    if (!st && l->o.prefetch)
        st = tk_stream_reader_new(l->v, &l->rd2, ctx);
    return st;
}

/* ---------------------------------------------------------------- batches */

/* Rows [r0, r1) of the batch starting at epoch position `start` into x, y (and rows). */
typedef struct {
    tk_loader *l;
    int64_t start;
    float *x, *y;
    int64_t *rows;
} gather_job;

static void gather_range(int64_t r0, int64_t r1, void *ud)
{
    const gather_job *j = ud;
    tk_loader *l = j->l;
    const tk_view *v = l->v;
    const tk_dataset *ds = v->ds;
    const int64_t nf = ds->nfeat;
    const int lw = ds->label_width;
    for (int64_t r = r0; r < r1; r++) {
        int64_t d = v->idx[l->order[j->start + r]];
        float *dst = j->x + r * nf;
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
            memcpy(j->y + r * lw, ds->y + d * lw, (size_t)lw * sizeof(float));
        if (j->rows)
            j->rows[r] = d;
    }
}

/* Rows gathered per pool task at least, by features: a smaller share is not worth a hand-off. */
enum { GATHER_GRAIN_FEATURES = 1 << 14 };

/* Rows of batch b into x, y (and rows): the only code that produces a batch. Without a
 * prefetch thread it runs on the caller's thread, so the pool's threads can share it (each
 * converts the rows it then computes on first, in a convolution's chunks); augmentations keep
 * one scratch buffer, so they run on one thread. */
static int gather(tk_loader *l, int64_t b, float *x, float *y, int64_t *rows)
{
    if (l->rd)
        return gather_stream(l, b, x, y, rows);
    const tk_view *v = l->v;
    int64_t start = b * l->o.batch_size;
    int count = (int)(v->n - start < l->o.batch_size ? v->n - start : l->o.batch_size);
    gather_job j = {l, start, x, y, rows};
    if (l->threaded || v->n_aug)
        gather_range(0, count, &j);
    else
        tk_parallel_range(count, (GATHER_GRAIN_FEATURES + v->ds->nfeat - 1) / v->ds->nfeat,
                          gather_range, &j);
    return count;
}

static void *worker(void *arg)
{
    tk_loader *l = arg;
    pthread_mutex_lock(&l->mu);
    for (;;) {
        while (!l->stop && l->job < 0 && !ahead_pending(l))
            pthread_cond_wait(&l->cv, &l->mu);
        if (l->stop)
            break;
        if (l->job < 0) {
            read_ahead(l, l->rd, &l->err);
            continue;
        }
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

static void *helper(void *arg)
{
    tk_loader *l = arg;
    pthread_mutex_lock(&l->mu);
    for (;;) {
        while (!l->stop && !ahead_pending(l))
            pthread_cond_wait(&l->cv, &l->mu);
        if (l->stop)
            break;
        read_ahead(l, l->rd2, &l->err2);
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
    if (rc != 0) {
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        pthread_cond_destroy(&l->cv);
        pthread_mutex_destroy(&l->mu);
        return tk_fail(ctx, TK_ERR_RUNTIME, "loader: cannot start the prefetch thread");
    }
    l->threaded = true;
    if (l->rd2)
        l->has_helper = pthread_create(&l->helper, NULL, helper, l) == 0;
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (l->rd2 && !l->has_helper)
        return tk_fail(ctx, TK_ERR_RUNTIME, "loader: cannot start the prefetch thread");
    return TK_OK;
}

/* A prefetch thread pays when it has a core of its own, or when a batch costs more than a
 * conversion (a streamed file, augmentations). Otherwise it only preempts a compute thread,
 * and the pool's threads, which meet at every product, all wait for that one: measured, an
 * MLP epoch ran 2-6% slower with it on two cores. */
static bool prefetch_pays(const tk_view *v)
{
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    return v->ds->stream || v->n_aug || cores > tk_pool_size();
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
    bool ok = true;
    tk_status st = TK_OK;
    if (ds->stream)
        st = stream_new(l, ctx);
    else
        ok = (l->order = tk_malloc((size_t)v->n * sizeof(int64_t))) != NULL;
    if (ok && v->n_aug) {
        l->aug_a = tk_alloc_floats((size_t)ds->nfeat);
        l->aug_b = tk_alloc_floats((size_t)ds->nfeat);
        ok = l->aug_a && l->aug_b;
    }
    bool prefetch = o->prefetch && prefetch_pays(v);
    if (ok && prefetch) {
        size_t bs = (size_t)o->batch_size;
        l->sx = tk_alloc_floats(bs * (size_t)ds->nfeat);
        l->sy = tk_alloc_floats(bs * (size_t)ds->label_width);
        l->srows = tk_malloc(bs * sizeof(int64_t));
        ok = l->sx && l->sy && l->srows;
    }
    if (!st && !ok)
        st = tk_fail(ctx, TK_ERR_RUNTIME, "loader: out of memory");
    if (!st && prefetch)
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
        if (l->has_helper)
            pthread_join(l->helper, NULL);
        pthread_cond_destroy(&l->cv);
        pthread_mutex_destroy(&l->mu);
    }
    tk_free(l->order);
    tk_free_aligned(l->aug_a);
    tk_free_aligned(l->aug_b);
    tk_free_aligned(l->sx);
    tk_free_aligned(l->sy);
    tk_free(l->srows);
    tk_stream_reader_free(l->rd);
    tk_stream_reader_free(l->rd2);
    tk_free(l->shard_order);
    tk_free(l->win_start);
    for (int k = 0; k < 2; k++) {
        tk_free_aligned(l->slots[k].x);
        tk_free_aligned(l->slots[k].y);
        tk_free(l->slots[k].rows);
        tk_free(l->slots[k].perm);
        tk_free(l->slots[k].offs);
    }
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
        l->ahead = -1;
        while (l->busy || l->slots[0].inflight || l->slots[1].inflight)
            pthread_cond_wait(&l->cv, &l->mu);
        l->ready = -1;
        pthread_mutex_unlock(&l->mu);
    }
    const int64_t n = l->rd ? 0 : l->v->n;
    for (int64_t i = 0; i < n; i++)
        l->order[i] = i;
    if (l->rd) {
        plan_stream(l, epoch);
        l->failed = false;
    } else if (l->o.shuffle) {
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
    /* A streamed view's prefetch thread also reads ahead between batches, with the reader a
     * gathering thread uses, so there only that thread gathers. */
    if (!l->rd && l->ready != b && l->job == b && !l->busy) {
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
    if (count < 0) {
        pthread_mutex_unlock(&l->mu);
        return -1;
    }
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

tk_status tk_loader_fail(const tk_loader *l, tk_ctx *ctx)
{
    return tk_fail(ctx, TK_ERR_RUNTIME, "%s", l->failed ? tk_errmsg(&l->err)
                                                       : "loader: no batch");
}
