/* test_loader.c - views, splits, normalisation and the batch loader.
 * Splits: sizes, disjoint, union = all, sorted, same for a seed, different for another, bad
 * fractions. Normalisation: standard/minmax/fixed transforms checked against numbers worked
 * out by hand. Loader: every sample once per epoch, drop_last counts, order per epoch (new
 * each epoch, the same when asked again), cursor start, prefetch output byte-identical to the
 * direct path (also across begin() mid-epoch), and no allocation per batch. */
#include "check.h"
#include "data/dataset.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* n samples of nf features; feature f of sample i is i * 10 + f (or, as bytes, (i*7+f)%256),
 * its label is i % 5. */
static tk_dataset *make_dataset(int64_t n, int64_t nf, bool bytes)
{
    tk_dataset *ds = tk_dataset_alloc("synthetic.csv", "row");
    ds->n = n;
    ds->nfeat = nf;
    ds->shape = (tk_shape){1, {nf}};
    if (bytes)
        ds->x8 = tk_malloc((size_t)(n * nf));
    else
        ds->x32 = tk_malloc((size_t)(n * nf) * sizeof(float));
    ds->y = tk_malloc((size_t)n * sizeof(float));
    ds->label_width = 1;
    ds->kind = TK_LABEL_CLASS;
    ds->n_classes = 5;
    for (int64_t i = 0; i < n; i++) {
        for (int64_t f = 0; f < nf; f++) {
            if (bytes)
                ds->x8[i * nf + f] = (unsigned char)((i * 7 + f) % 256);
            else
                ds->x32[i * nf + f] = (float)(i * 10 + f);
        }
        ds->y[i] = (float)(i % 5);
    }
    return ds;
}

/* ---------------------------------------------------------------- splits */

static void test_split(tk_ctx *ctx)
{
    tk_dataset *ds = make_dataset(100, 2, false);
    tk_view *train = tk_view_all(ds), *parts[2] = {NULL, NULL};
    CHECK(tk_view_len(train) == 100 && tk_view_dataset(train) == ds);
    CHECK(tk_view_index(train, 42) == 42 && tk_view_index(train, 100) == -1);
    CHECK(tk_view_split(train, (double[]){0.1, 0.25}, 2, 7, parts, ctx) == TK_OK);
    CHECK(tk_view_len(parts[0]) == 10 && tk_view_len(parts[1]) == 25);
    CHECK(tk_view_len(train) == 65);

    int seen[100] = {0};
    const tk_view *all[3] = {train, parts[0], parts[1]};
    for (int k = 0; k < 3; k++)
        for (int64_t i = 0; i < tk_view_len(all[k]); i++) {
            int64_t d = tk_view_index(all[k], i);
            CHECK(d >= 0 && d < 100);
            if (d >= 0 && d < 100)
                seen[d]++;
            if (i > 0)
                CHECK(tk_view_index(all[k], i - 1) < d);
        }
    bool once = true;
    for (int d = 0; d < 100; d++)
        once = once && seen[d] == 1;
    CHECK_MSG(once, "splits are not a partition of the samples");
    /* Not just the first 10 samples. */
    CHECK(tk_view_index(parts[0], 9) > 9);

    /* The same seed gives the same split; another seed another one. */
    tk_view *again = tk_view_all(ds), *parts2[2], *other = tk_view_all(ds), *parts3[2];
    CHECK(tk_view_split(again, (double[]){0.1, 0.25}, 2, 7, parts2, ctx) == TK_OK);
    CHECK(tk_view_split(other, (double[]){0.1, 0.25}, 2, 8, parts3, ctx) == TK_OK);
    CHECK(memcmp(parts2[0]->idx, parts[0]->idx, 10 * sizeof(int64_t)) == 0);
    CHECK(memcmp(parts2[1]->idx, parts[1]->idx, 25 * sizeof(int64_t)) == 0);
    CHECK(memcmp(again->idx, train->idx, 65 * sizeof(int64_t)) == 0);
    CHECK(memcmp(parts3[0]->idx, parts[0]->idx, 10 * sizeof(int64_t)) != 0);

    /* A split of a split takes only from what is left. */
    tk_view *sub;
    CHECK(tk_view_split(train, (double[]){0.2}, 1, 3, &sub, ctx) == TK_OK);
    CHECK(tk_view_len(sub) == 13 && tk_view_len(train) == 52);
    for (int64_t i = 0; i < tk_view_len(sub); i++)
        for (int64_t j = 0; j < tk_view_len(parts[0]); j++)
            CHECK(tk_view_index(sub, i) != tk_view_index(parts[0], j));

    const struct {
        double f[2];
        int n;
        const char *want;
    } bad[] = {
        {{0.0}, 1, "fraction 0 is not between 0 and 1"},
        {{1.0}, 1, "fraction 1 is not between 0 and 1"},
        {{-0.1}, 1, "not between 0 and 1"},
        {{NAN}, 1, "not between 0 and 1"},
        {{0.5, 0.5}, 2, "add up to 1"},
        {{0.001}, 1, "fraction 0.001 of 52 samples is no sample"},
        {{0.5, 0.495}, 2, "leave none"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        tk_view *out[2] = {NULL, NULL};
        tk_clear_error(ctx);
        CHECK(tk_view_split(train, bad[i].f, bad[i].n, 1, out, ctx) == TK_ERR_INPUT);
        CHECK_MSG(tk_contains(tk_errmsg(ctx), bad[i].want), "'%s' lacks '%s'", tk_errmsg(ctx),
                  bad[i].want);
        CHECK(out[0] == NULL && tk_view_len(train) == 52);
    }

    for (int k = 0; k < 2; k++) {
        tk_view_free(parts[k]);
        tk_view_free(parts2[k]);
        tk_view_free(parts3[k]);
    }
    tk_view_free(sub);
    tk_view_free(train);
    tk_view_free(again);
    tk_view_free(other);
    tk_dataset_free(ds);
}

/* ---------------------------------------------------------------- normalisation */

static void check_tf(const tk_view *v, int f, double mul, double add)
{
    CHECK_CLOSE(v->mul[f], mul, 1e-6, 1e-7);
    CHECK_CLOSE(v->add[f], add, 1e-6, 1e-7);
}

static void test_normalize(tk_ctx *ctx)
{
    /* Feature 0: 1, 2, 3, 4 (mean 2.5, population std sqrt(1.25)); feature 1: always 5. */
    tk_dataset *ds = make_dataset(4, 2, false);
    for (int i = 0; i < 4; i++) {
        ds->x32[2 * i] = (float)(i + 1);
        ds->x32[2 * i + 1] = 5;
    }
    tk_view *v = tk_view_all(ds);
    check_tf(v, 0, 1, 0);
    const double sd = sqrt(1.25);

    CHECK(tk_view_normalize(v, &(tk_norm_opts){.kind = TK_NORM_STANDARD}, NULL, ctx) == TK_OK);
    check_tf(v, 0, 1 / sd, -2.5 / sd);  /* 0.894427, -2.236068 */
    check_tf(v, 1, 1, -5);              /* constant: std 1 */

    /* Scale first: the statistics are those of x * 2, so the result is the same; the
     * constant feature becomes 2x - 10. */
    CHECK(tk_view_normalize(v, &(tk_norm_opts){.scale = 2, .kind = TK_NORM_STANDARD}, v,
                            ctx) == TK_OK);
    check_tf(v, 0, 1 / sd, -2.5 / sd);
    check_tf(v, 1, 2, -10);

    CHECK(tk_view_normalize(v, &(tk_norm_opts){.kind = TK_NORM_MINMAX}, NULL, ctx) == TK_OK);
    check_tf(v, 0, 1.0 / 3, -1.0 / 3);  /* 1..4 -> 0..1 */
    check_tf(v, 1, 1, -5);              /* constant: range 1 */
    CHECK(tk_view_normalize(v, &(tk_norm_opts){.scale = -1, .kind = TK_NORM_MINMAX}, NULL,
                            ctx) == TK_OK);
    check_tf(v, 0, -1.0 / 3, 4.0 / 3);  /* -4..-1 -> 0..1 */

    CHECK(tk_view_normalize(v, &(tk_norm_opts){.scale = 1.0 / 255, .kind = TK_NORM_FIXED,
                                               .mean = (double[]){0.5},
                                               .std = (double[]){0.25}, .n_stats = 1},
                            NULL, ctx) == TK_OK);
    check_tf(v, 0, 4.0 / 255, -2);
    check_tf(v, 1, 4.0 / 255, -2);
    CHECK(tk_view_normalize(v, &(tk_norm_opts){.kind = TK_NORM_FIXED,
                                               .mean = (double[]){1, 2},
                                               .std = (double[]){2, 4}, .n_stats = 2},
                            NULL, ctx) == TK_OK);
    check_tf(v, 0, 0.5, -0.5);
    check_tf(v, 1, 0.25, -0.5);
    CHECK(tk_view_normalize(v, &(tk_norm_opts){.scale = 3}, NULL, ctx) == TK_OK);
    check_tf(v, 0, 3, 0);

    /* Statistics from one view (a "train" part) applied to another. */
    tk_view *part;
    CHECK(tk_view_split(v, (double[]){0.5}, 1, 11, &part, ctx) == TK_OK);
    CHECK(tk_view_normalize(v, &(tk_norm_opts){.kind = TK_NORM_MINMAX}, part, ctx) == TK_OK);
    double a = ds->x32[2 * part->idx[0]], b = ds->x32[2 * part->idx[1]];
    double lo = fmin(a, b), hi = fmax(a, b);
    check_tf(v, 0, 1 / (hi - lo), -lo / (hi - lo));

    const struct {
        tk_norm_opts o;
        const char *want;
    } bad[] = {
        {{.kind = TK_NORM_FIXED, .mean = (double[]){0}, .std = (double[]){0}, .n_stats = 1},
         "std must be > 0"},
        {{.kind = TK_NORM_FIXED, .mean = (double[]){0, 0, 0}, .std = (double[]){1, 1, 1},
          .n_stats = 3}, "3 mean/std values for 2 features"},
        {{.scale = INFINITY}, "not finite"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        tk_clear_error(ctx);
        CHECK(tk_view_normalize(v, &bad[i].o, NULL, ctx) == TK_ERR_INPUT);
        CHECK_MSG(tk_contains(tk_errmsg(ctx), bad[i].want), "'%s' lacks '%s'", tk_errmsg(ctx),
                  bad[i].want);
    }
    tk_view_free(part);
    tk_view_free(v);
    tk_dataset_free(ds);

    /* One mean/std per channel of (C, H, W) samples. */
    ds = make_dataset(3, 4, true);
    ds->shape = (tk_shape){3, {2, 1, 2}};
    v = tk_view_all(ds);
    CHECK(tk_view_normalize(v, &(tk_norm_opts){.kind = TK_NORM_FIXED,
                                               .mean = (double[]){1, 2},
                                               .std = (double[]){2, 4}, .n_stats = 2},
                            NULL, ctx) == TK_OK);
    check_tf(v, 1, 0.5, -0.5);
    check_tf(v, 2, 0.25, -0.5);
    tk_view_free(v);
    tk_dataset_free(ds);
}

/* ---------------------------------------------------------------- loader */

typedef struct {
    float *x, *y;
    int64_t *rows;
    int *counts;
    int64_t batches;
} epoch_out;

/* One epoch from batch `cursor` into fresh buffers (outside the loader, so malloc). */
static epoch_out run_epoch(tk_loader *l, const tk_view *v, int bs, int64_t epoch,
                           int64_t cursor)
{
    const int64_t nf = v->ds->nfeat;
    epoch_out e = {0};
    int64_t nb = tk_loader_batches(l);
    e.x = calloc((size_t)(nb * bs * nf) + 1, sizeof(float));
    e.y = calloc((size_t)(nb * bs) + 1, sizeof(float));
    e.rows = calloc((size_t)(nb * bs) + 1, sizeof(int64_t));
    e.counts = calloc((size_t)nb + 1, sizeof(int));
    tk_loader_begin(l, epoch, cursor);
    int n;
    while ((n = tk_loader_next(l, e.x + e.batches * bs * nf, e.y + e.batches * bs,
                               e.rows + e.batches * bs)) > 0)
        e.counts[e.batches++] = n;
    return e;
}

static void free_epoch(epoch_out *e)
{
    free(e->x);
    free(e->y);
    free(e->rows);
    free(e->counts);
}

static bool same_epoch(const epoch_out *a, const epoch_out *b, int bs, int64_t nf)
{
    if (a->batches != b->batches)
        return false;
    size_t rows = (size_t)(a->batches * bs);
    return memcmp(a->counts, b->counts, (size_t)a->batches * sizeof(int)) == 0 &&
           memcmp(a->rows, b->rows, rows * sizeof(int64_t)) == 0 &&
           memcmp(a->y, b->y, rows * sizeof(float)) == 0 &&
           memcmp(a->x, b->x, rows * (size_t)nf * sizeof(float)) == 0;
}

static void test_loader_epochs(tk_ctx *ctx)
{
    tk_dataset *ds = make_dataset(103, 3, false);
    tk_view *v = tk_view_all(ds);
    for (int prefetch = 0; prefetch < 2; prefetch++) {
        for (int drop = 0; drop < 2; drop++) {
            tk_loader *l;
            tk_loader_opts o = {.batch_size = 10, .shuffle = true, .drop_last = drop,
                                .seed = 5, .prefetch = prefetch};
            CHECK(tk_loader_new(v, &o, &l, ctx) == TK_OK);
            CHECK(tk_loader_batches(l) == (drop ? 10 : 11));
            float x[30], y[10];
            CHECK(tk_loader_next(l, x, y, NULL) == 0); /* nothing before begin */
            epoch_out e0 = run_epoch(l, v, 10, 0, 0);
            CHECK(e0.batches == (drop ? 10 : 11));
            CHECK(e0.counts[0] == 10 && e0.counts[9] == 10);
            if (!drop)
                CHECK(e0.counts[10] == 3);
            int seen[103] = {0};
            bool rows_ok = true;
            for (int64_t b = 0; b < e0.batches; b++)
                for (int r = 0; r < e0.counts[b]; r++) {
                    int64_t d = e0.rows[b * 10 + r];
                    seen[d]++;
                    /* x and y belong to the row they claim. */
                    rows_ok = rows_ok && e0.x[(b * 10 + r) * 3 + 2] == (float)(d * 10 + 2) &&
                              e0.y[b * 10 + r] == (float)(d % 5);
                }
            CHECK(rows_ok);
            int once = 0, missing = 0;
            for (int d = 0; d < 103; d++) {
                once += seen[d] == 1;
                missing += seen[d] == 0;
            }
            CHECK(once == (drop ? 100 : 103) && missing == (drop ? 3 : 0));
            CHECK(e0.rows[0] != 0 || e0.rows[1] != 1 || e0.rows[2] != 2); /* shuffled */

            epoch_out e1 = run_epoch(l, v, 10, 1, 0);
            CHECK(memcmp(e0.rows, e1.rows, 100 * sizeof(int64_t)) != 0);
            epoch_out e0b = run_epoch(l, v, 10, 0, 0);
            CHECK(same_epoch(&e0, &e0b, 10, 3));
            /* Starting at batch 4 gives batches 4.. of the same epoch. */
            epoch_out e1c = run_epoch(l, v, 10, 1, 4);
            CHECK(e1c.batches == e1.batches - 4);
            CHECK(memcmp(e1c.rows, e1.rows + 40, (size_t)(e1c.batches * 10) * 8) == 0);
            CHECK(memcmp(e1c.x, e1.x + 40 * 3, (size_t)(e1c.batches * 30) * 4) == 0);
            epoch_out end = run_epoch(l, v, 10, 1, 99);
            CHECK(end.batches == 0);
            free_epoch(&e0);
            free_epoch(&e1);
            free_epoch(&e0b);
            free_epoch(&e1c);
            free_epoch(&end);
            tk_loader_free(l);
        }
    }

    /* Without shuffle: the view's order, every epoch. */
    tk_loader *l;
    CHECK(tk_loader_new(v, &(tk_loader_opts){.batch_size = 50}, &l, ctx) == TK_OK);
    epoch_out e = run_epoch(l, v, 50, 3, 0);
    bool in_order = e.batches == 3 && e.counts[2] == 3;
    for (int i = 0; i < 103 && in_order; i++)
        in_order = e.rows[i] == i;
    CHECK(in_order);
    free_epoch(&e);
    tk_loader_free(l);

    tk_clear_error(ctx);
    CHECK(tk_loader_new(v, &(tk_loader_opts){.batch_size = 0}, &l, ctx) == TK_ERR_INPUT);
    CHECK(tk_contains(tk_errmsg(ctx), "batch_size must be >= 1"));
    CHECK(tk_loader_new(v, &(tk_loader_opts){.batch_size = 200, .drop_last = true}, &l,
                        ctx) == TK_ERR_INPUT);
    CHECK(tk_contains(tk_errmsg(ctx), "drop_last would drop them all"));
    tk_view_free(v);
    tk_dataset_free(ds);
}

/* Prefetch and direct loading give the same bytes: uint8 data through a transform, a
 * split view, whole epochs, cursors, and begin() called again mid-epoch. */
static void test_prefetch_identical(tk_ctx *ctx)
{
    tk_dataset *ds = make_dataset(517, 20, true);
    tk_view *v = tk_view_all(ds), *valid;
    CHECK(tk_view_split(v, (double[]){0.2}, 1, 9, &valid, ctx) == TK_OK);
    CHECK(tk_view_normalize(v, &(tk_norm_opts){.scale = 1.0 / 255, .kind = TK_NORM_STANDARD},
                            NULL, ctx) == TK_OK);
    tk_loader *direct, *pre;
    tk_loader_opts o = {.batch_size = 32, .shuffle = true, .seed = 77};
    CHECK(tk_loader_new(v, &o, &direct, ctx) == TK_OK);
    o.prefetch = true;
    CHECK(tk_loader_new(v, &o, &pre, ctx) == TK_OK);
    for (int64_t epoch = 0; epoch < 4; epoch++) {
        epoch_out a = run_epoch(direct, v, 32, epoch, epoch);
        epoch_out b = run_epoch(pre, v, 32, epoch, epoch);
        CHECK_MSG(same_epoch(&a, &b, 32, 20), "epoch %lld differs", (long long)epoch);
        /* The transform was applied: standardised bytes are not small integers. */
        CHECK(a.x[0] != floorf(a.x[0]));
        free_epoch(&a);
        free_epoch(&b);
    }
    /* Abandon epochs at random points; the next batch is always the one asked for. */
    static float xa[32 * 20], xb[32 * 20], ya[32], yb[32];
    int64_t ra[32], rb[32];
    srand(3);
    bool same = true;
    for (int k = 0; k < 300; k++) {
        int64_t epoch = rand() % 5, cursor = rand() % 14;
        tk_loader_begin(direct, epoch, cursor);
        tk_loader_begin(pre, epoch, cursor);
        for (int j = rand() % 3; j >= 0; j--) {
            int na = tk_loader_next(direct, xa, ya, ra);
            int nb = tk_loader_next(pre, xb, yb, rb);
            same = same && na == nb && memcmp(xa, xb, (size_t)na * 20 * 4) == 0 &&
                   memcmp(ya, yb, (size_t)na * 4) == 0 && memcmp(ra, rb, (size_t)na * 8) == 0;
        }
    }
    CHECK(same);
    /* Freed while the worker may be gathering. */
    tk_loader_begin(pre, 9, 0);
    tk_loader_free(pre);
    tk_loader_free(direct);
    tk_view_free(valid);
    tk_view_free(v);
    tk_dataset_free(ds);
}

static void test_no_allocation_per_batch(tk_ctx *ctx)
{
    tk_dataset *ds = make_dataset(300, 8, false);
    tk_view *v = tk_view_all(ds);
    for (int prefetch = 0; prefetch < 2; prefetch++) {
        tk_loader *l;
        tk_loader_opts o = {.batch_size = 16, .shuffle = true, .seed = 1, .prefetch = prefetch};
        CHECK(tk_loader_new(v, &o, &l, ctx) == TK_OK);
        static float x[16 * 8], y[16];
        check_count_allocations();
        int64_t rows = 0;
        for (int epoch = 0; epoch < 3; epoch++) {
            tk_loader_begin(l, epoch, 0);
            int n;
            while ((n = tk_loader_next(l, x, y, NULL)) > 0)
                rows += n;
        }
        tk_set_allocator(NULL);
        CHECK(rows == 900);
        CHECK_MSG(check_allocs() == 0, "%ld allocations while loading", check_allocs());
        tk_loader_free(l);
    }
    tk_view_free(v);
    tk_dataset_free(ds);
}

int main(void)
{
    tk_ctx *ctx = tk_ctx_new();
    test_split(ctx);
    test_normalize(ctx);
    test_loader_epochs(ctx);
    test_prefetch_identical(ctx);
    test_no_allocation_per_batch(ctx);
    tk_ctx_free(ctx);
    return check_summary();
}
