/* test_augment.c - augmentation against torchvision 0.14 (tests/gen_fixtures_augment.py):
 * RandomCrop's pad-and-crop, the flips and RandomAffine's translations with the offsets fixed
 * are byte-exact, per-channel Normalize matches to float rounding; through the loader the
 * draws cover every crop offset, flip at rate p, stay within the translate bounds, depend only
 * on (seed, epoch, sample) - not batch size, order or prefetching - and change with the
 * epoch; a view without augmentation is untouched; bad options are errors. */
#include "check.h"
#include "data/dataset.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

enum { C = 3, H = 6, W = 7, NF = C * H * W };

static tk_st_file *fx;
static const float *x0;

static const float *tensor(const char *name)
{
    int i = tk_st_find(fx, name);
    CHECK_MSG(i >= 0, "fixture %s", name);
    return i >= 0 ? tk_st_data(fx, i) : NULL;
}

static int differ(const float *a, const float *b, int n)
{
    int bad = 0;
    for (int i = 0; i < n; i++)
        bad += a[i] != b[i];
    return bad;
}

static void test_fixtures(void)
{
    float out[NF];
    int crops = 0, shifts = 0;
    for (int i = 0; i < tk_st_count(fx); i++) {
        const char *name = tk_st_name(fx, i);
        const float *want = tk_st_data(fx, i);
        int l, t, r, b, fill, top, left;
        char sx[8], sy[8];
        if (sscanf(name, "crop.%d_%d_%d_%d.%d.%d_%d", &l, &t, &r, &b, &fill, &top, &left) == 7) {
            tk_augment op = {.kind = TK_AUG_RANDOM_CROP, .pad = {l, t, r, b}, .fill = fill};
            tk_aug_crop(x0, out, C, H, W, &op, top, left);
            CHECK_MSG(differ(out, want, NF) == 0, "%s", name);
            crops++;
        } else if (sscanf(name, "shift.%7[m0-9]_%7[m0-9].%d", sx, sy, &fill) == 3) {
            int tx = sx[0] == 'm' ? -atoi(sx + 1) : atoi(sx);
            int ty = sy[0] == 'm' ? -atoi(sy + 1) : atoi(sy);
            tk_aug_shift(x0, out, C, H, W, tx, ty, (float)fill);
            CHECK_MSG(differ(out, want, NF) == 0, "%s: %d values differ", name,
                      differ(out, want, NF));
            shifts++;
        }
    }
    CHECK(crops == 8 && shifts == 5);
    tk_aug_flip(x0, out, C, H, W, false);
    CHECK(differ(out, tensor("hflip"), NF) == 0);
    tk_aug_flip(x0, out, C, H, W, true);
    CHECK(differ(out, tensor("vflip"), NF) == 0);
}

/* n copies of x0 as a uint8 dataset of (3, 6, 7) images with labels 0..n-1. */
static tk_dataset *images(int n)
{
    tk_dataset *ds = tk_dataset_alloc("aug", "record");
    ds->n = n;
    ds->nfeat = NF;
    ds->shape = (tk_shape){3, {C, H, W}};
    ds->x8 = tk_malloc((size_t)n * NF);
    ds->y = tk_malloc((size_t)n * sizeof(float));
    ds->label_width = 1;
    ds->kind = TK_LABEL_REGRESSION;
    for (int i = 0; i < n; i++) {
        for (int f = 0; f < NF; f++)
            ds->x8[(size_t)i * NF + (size_t)f] = (unsigned char)x0[f];
        ds->y[i] = (float)i;
    }
    return ds;
}

static void test_normalize(void)
{
    tk_ctx *ctx = tk_ctx_new();
    tk_dataset *ds = images(1);
    tk_view *v = tk_view_all(ds);
    const double mean[3] = {0.485, 0.456, 0.406}, std[3] = {0.229, 0.224, 0.225};
    tk_norm_opts no = {.scale = 1.0 / 255, .kind = TK_NORM_FIXED, .mean = mean, .std = std,
                       .n_stats = 3};
    CHECK(tk_view_normalize(v, &no, v, ctx) == TK_OK);
    tk_loader *l = NULL;
    tk_loader_opts lo = {.batch_size = 1};
    CHECK(tk_loader_new(v, &lo, &l, ctx) == TK_OK);
    float x[NF], y[1];
    tk_loader_begin(l, 0, 0);
    CHECK(tk_loader_next(l, x, y, NULL) == 1);
    const float *want = tensor("normalize");
    double worst = 0;
    for (int f = 0; want && f < NF; f++)
        worst = fmax(worst, fabs(x[f] - want[f]));
    CHECK_MSG(worst < 2e-6, "per-channel normalize off by %g", worst);
    tk_loader_free(l);
    tk_view_free(v);
    tk_dataset_free(ds);
    tk_ctx_free(ctx);
}

/* Every augmented sample of one epoch, by dataset index (n x NF). */
static float *epoch_samples(tk_view *v, int batch, bool prefetch, uint64_t seed, int epoch)
{
    tk_ctx *ctx = tk_ctx_new();
    int64_t n = tk_view_len(v);
    float *all = malloc((size_t)n * NF * sizeof(float)), *x = malloc((size_t)batch * NF * 4);
    float *y = malloc((size_t)batch * 4);
    int64_t *rows = malloc((size_t)batch * sizeof(int64_t));
    tk_loader *l = NULL;
    tk_loader_opts lo = {.batch_size = batch, .shuffle = true, .seed = seed,
                         .prefetch = prefetch};
    CHECK(tk_loader_new(v, &lo, &l, ctx) == TK_OK);
    tk_loader_begin(l, epoch, 0);
    int got;
    while (l && (got = tk_loader_next(l, x, y, rows)) > 0)
        for (int r = 0; r < got; r++)
            memcpy(all + rows[r] * NF, x + (size_t)r * NF, NF * sizeof(float));
    tk_loader_free(l);
    free(x);
    free(y);
    free(rows);
    tk_ctx_free(ctx);
    return all;
}

static void test_draws(void)
{
    enum { N = 400 };
    tk_ctx *ctx = tk_ctx_new();
    tk_dataset *ds = images(N);
    tk_view *v = tk_view_all(ds);
    tk_norm_opts raw = {.scale = 1.0};
    CHECK(tk_view_normalize(v, &raw, v, ctx) == TK_OK);

    /* random_crop with padding 2: which of the 25 offsets each sample got */
    tk_augment crop = {.kind = TK_AUG_RANDOM_CROP, .pad = {2, 2, 2, 2}};
    CHECK(tk_view_augment(v, &crop, 1, ctx) == TK_OK);
    float *a = epoch_samples(v, 7, true, 42, 3), *b = epoch_samples(v, 64, false, 42, 3);
    CHECK(differ(a, b, N * NF) == 0); /* batching and prefetching change nothing */
    float cand[25][NF];
    for (int k = 0; k < 25; k++)
        tk_aug_crop(x0, cand[k], C, H, W, &crop, k / 5, k % 5);
    int seen[25] = {0}, unmatched = 0;
    for (int i = 0; i < N; i++) {
        int k = 0;
        while (k < 25 && differ(a + (size_t)i * NF, cand[k], NF))
            k++;
        if (k == 25)
            unmatched++;
        else
            seen[k]++;
    }
    int offsets = 0;
    for (int k = 0; k < 25; k++)
        offsets += seen[k] > 0;
    CHECK(unmatched == 0 && offsets == 25);
    float *c = epoch_samples(v, 7, false, 42, 4), *d = epoch_samples(v, 7, false, 43, 3);
    int changed = 0, changed_seed = 0;
    for (int i = 0; i < N; i++) {
        changed += differ(a + (size_t)i * NF, c + (size_t)i * NF, NF) > 0;
        changed_seed += differ(a + (size_t)i * NF, d + (size_t)i * NF, NF) > 0;
    }
    CHECK_MSG(changed > N * 3 / 4 && changed_seed > N * 3 / 4, "%d, %d of %d changed", changed,
              changed_seed, N);
    free(a);
    free(b);
    free(c);
    free(d);

    /* random_flip p = 0.3 */
    tk_augment flip = {.kind = TK_AUG_RANDOM_FLIP, .p = 0.3};
    CHECK(tk_view_augment(v, &flip, 1, ctx) == TK_OK);
    a = epoch_samples(v, 16, true, 1, 0);
    float hf[NF];
    tk_aug_flip(x0, hf, C, H, W, false);
    int flipped = 0, other = 0;
    for (int i = 0; i < N; i++) {
        if (!differ(a + (size_t)i * NF, hf, NF))
            flipped++;
        else if (differ(a + (size_t)i * NF, x0, NF))
            other++;
    }
    CHECK_MSG(other == 0 && flipped > N * 0.22 && flipped < N * 0.38, "%d flipped", flipped);
    free(a);

    /* random_affine translate (0.3, 0.2) on 7 x 6: |tx| <= 2, |ty| <= 1, extremes reached */
    tk_augment aff = {.kind = TK_AUG_RANDOM_AFFINE, .translate = {0.3, 0.2}, .fill = 0};
    CHECK(tk_view_augment(v, &aff, 1, ctx) == TK_OK);
    a = epoch_samples(v, 10, true, 5, 1);
    int grid[5][3] = {{0}};
    unmatched = 0;
    for (int i = 0; i < N; i++) {
        bool found = false;
        for (int tx = -3; tx <= 3 && !found; tx++)
            for (int ty = -2; ty <= 2 && !found; ty++) {
                float s[NF];
                tk_aug_shift(x0, s, C, H, W, tx, ty, 0);
                if (!differ(a + (size_t)i * NF, s, NF)) {
                    found = true;
                    if (abs(tx) <= 2 && abs(ty) <= 1)
                        grid[tx + 2][ty + 1]++;
                    else
                        unmatched++;
                }
            }
        unmatched += !found;
    }
    CHECK(unmatched == 0 && grid[0][0] && grid[4][2] && grid[2][1]);
    free(a);

    /* all three in order; and no augmentation at all leaves the samples as they are */
    tk_augment three[3] = {crop, flip, aff};
    CHECK(tk_view_augment(v, three, 3, ctx) == TK_OK);
    a = epoch_samples(v, 32, true, 9, 2);
    b = epoch_samples(v, 5, false, 9, 2);
    CHECK(differ(a, b, N * NF) == 0);
    free(a);
    free(b);
    CHECK(tk_view_augment(v, NULL, 0, ctx) == TK_OK);
    a = epoch_samples(v, 32, true, 9, 2);
    int touched = 0;
    for (int i = 0; i < N; i++)
        touched += differ(a + (size_t)i * NF, x0, NF) > 0;
    CHECK(touched == 0);
    free(a);

    /* errors */
    tk_augment big = {.kind = TK_AUG_RANDOM_CROP, .size = {5, 5}};
    CHECK(tk_view_augment(v, &big, 1, ctx) == TK_ERR_INPUT);
    CHECK(tk_contains(tk_errmsg(ctx), "size {5, 5} must be the sample size {6, 7}"));
    tk_augment badp = {.kind = TK_AUG_RANDOM_FLIP, .p = 1.5};
    CHECK(tk_view_augment(v, &badp, 1, ctx) == TK_ERR_INPUT);
    tk_augment many[TK_MAX_AUGMENT + 1];
    for (int k = 0; k <= TK_MAX_AUGMENT; k++)
        many[k] = flip;
    CHECK(tk_view_augment(v, many, TK_MAX_AUGMENT + 1, ctx) == TK_ERR_INPUT);
    tk_view_free(v);
    ds->shape = (tk_shape){1, {NF}};
    v = tk_view_all(ds);
    CHECK(tk_view_augment(v, &flip, 1, ctx) == TK_ERR_INPUT);
    CHECK(tk_contains(tk_errmsg(ctx), "augmentation needs (C, H, W) samples"));
    tk_view_free(v);
    tk_dataset_free(ds);
    tk_ctx_free(ctx);
}

int main(void)
{
    tk_ctx *ctx = tk_ctx_new();
    char path[512];
    snprintf(path, sizeof path, "%s/augment.safetensors", TK_FIXTURES);
    CHECK(tk_st_load(path, &fx, ctx) == TK_OK);
    tk_ctx_free(ctx);
    if (!fx)
        return check_summary();
    x0 = tensor("x");
    test_fixtures();
    test_normalize();
    test_draws();
    tk_st_free(fx);
    return check_summary();
}
