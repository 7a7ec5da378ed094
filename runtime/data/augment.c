/* augment.c - per-sample augmentation of (C, H, W) samples, done by the loader as it gathers
 * a batch: random_crop (pad, then crop back at a random offset), random_flip and
 * random_affine's small translations, as torchvision 0.14's RandomCrop, RandomHorizontalFlip /
 * RandomVerticalFlip and RandomAffine(degrees=0, translate=...) compute them once their random
 * offsets are drawn. The draws come from the counter-based RNG keyed by (seed,
 * TK_STREAM_AUGMENT, epoch, dataset index), so a sample's augmentation depends on nothing
 * else (not batch size, order, prefetching or where a resumed run starts). The ops work on
 * the raw values (pixels 0..255 for images), before the view's scale and normalisation, so
 * padding brings in raw `fill` values as torchvision's pad of a uint8 image does.
 * Not here: deterministic per-channel normalisation (tk_view_normalize, all splits).
 */
#include "dataset.h"

#include <math.h>
#include <string.h>

void tk_aug_crop(const float *in, float *out, int64_t c, int64_t h, int64_t w,
                 const tk_augment *op, int64_t top, int64_t left)
{
    /* (top, left) is the crop's corner in the padded image; output keeps h x w. */
    for (int64_t ch = 0; ch < c; ch++)
        for (int64_t y = 0; y < h; y++) {
            int64_t sy = y + top - op->pad[1];
            for (int64_t x = 0; x < w; x++) {
                int64_t sx = x + left - op->pad[0];
                bool inside = sy >= 0 && sy < h && sx >= 0 && sx < w;
                out[(ch * h + y) * w + x] = inside ? in[(ch * h + sy) * w + sx]
                                                   : (float)op->fill;
            }
        }
}

void tk_aug_flip(const float *in, float *out, int64_t c, int64_t h, int64_t w, bool vertical)
{
    for (int64_t ch = 0; ch < c; ch++)
        for (int64_t y = 0; y < h; y++)
            for (int64_t x = 0; x < w; x++) {
                int64_t sy = vertical ? h - 1 - y : y, sx = vertical ? x : w - 1 - x;
                out[(ch * h + y) * w + x] = in[(ch * h + sy) * w + sx];
            }
}

void tk_aug_shift(const float *in, float *out, int64_t c, int64_t h, int64_t w, int64_t tx,
                  int64_t ty, float fill)
{
    /* Positive tx moves the picture right, positive ty down (torchvision's translate). */
    for (int64_t ch = 0; ch < c; ch++)
        for (int64_t y = 0; y < h; y++)
            for (int64_t x = 0; x < w; x++) {
                int64_t sy = y - ty, sx = x - tx;
                bool inside = sy >= 0 && sy < h && sx >= 0 && sx < w;
                out[(ch * h + y) * w + x] = inside ? in[(ch * h + sy) * w + sx] : fill;
            }
}

/* Python's round(): half to even, as lrint does in the default rounding mode. */
static int64_t round_even(double v)
{
    return (int64_t)lrint(v);
}

float *tk_aug_apply(const tk_view *v, uint64_t seed, int64_t epoch, int64_t sample, float *a,
                    float *b)
{
    const tk_shape *s = &v->ds->shape;
    const int64_t c = s->d[0], h = s->d[1], w = s->d[2];
    tk_rng r = tk_rng_make(seed, TK_STREAM_AUGMENT, (uint32_t)epoch, (uint32_t)sample);
    float *cur = a, *next = b;
    for (int k = 0; k < v->n_aug; k++) {
        const tk_augment *op = &v->aug[k];
        switch (op->kind) {
        case TK_AUG_RANDOM_CROP: {
            int64_t hp = h + op->pad[1] + op->pad[3], wp = w + op->pad[0] + op->pad[2];
            int64_t top = (int64_t)tk_rng_below(&r, (uint64_t)(hp - h + 1));
            int64_t left = (int64_t)tk_rng_below(&r, (uint64_t)(wp - w + 1));
            tk_aug_crop(cur, next, c, h, w, op, top, left);
            break;
        }
        case TK_AUG_RANDOM_FLIP:
            if (!(tk_rng_uniform(&r) < op->p))
                continue;
            tk_aug_flip(cur, next, c, h, w, op->vertical);
            break;
        case TK_AUG_RANDOM_AFFINE: {
            double mx = op->translate[0] * (double)w, my = op->translate[1] * (double)h;
            int64_t tx = round_even((2.0 * tk_rng_uniform(&r) - 1.0) * mx);
            int64_t ty = round_even((2.0 * tk_rng_uniform(&r) - 1.0) * my);
            tk_aug_shift(cur, next, c, h, w, tx, ty, (float)op->fill);
            break;
        }
        }
        float *t = cur;
        cur = next;
        next = t;
    }
    return cur;
}

tk_status tk_view_augment(tk_view *v, const tk_augment *ops, int n, tk_ctx *ctx)
{
    const tk_dataset *ds = v->ds;
    const tk_shape *s = &ds->shape;
    if (n < 0 || n > TK_MAX_AUGMENT)
        return tk_fail(ctx, TK_ERR_INPUT, "augment: %d operations (at most %d)", n,
                       TK_MAX_AUGMENT);
    if (n > 0 && s->ndim != 3) {
        char buf[96];
        return tk_fail(ctx, TK_ERR_INPUT, "augment %s: samples of shape %s are not images; "
                       "augmentation needs (C, H, W) samples", ds->name,
                       tk_shape_str(s, buf, sizeof buf));
    }
    for (int k = 0; k < n; k++) {
        const tk_augment *op = &ops[k];
        if (op->kind == TK_AUG_RANDOM_CROP) {
            for (int i = 0; i < 4; i++)
                if (op->pad[i] < 0 || op->pad[i] > 4096)
                    return tk_fail(ctx, TK_ERR_INPUT, "random_crop: padding %lld is out of "
                                   "range (0..4096)", (long long)op->pad[i]);
            if ((op->size[0] || op->size[1]) && (op->size[0] != s->d[1] || op->size[1] != s->d[2]))
                return tk_fail(ctx, TK_ERR_INPUT, "random_crop: size {%lld, %lld} must be the "
                               "sample size {%lld, %lld} of %s (valid and test samples are not "
                               "cropped; pad and crop back instead)", (long long)op->size[0],
                               (long long)op->size[1], (long long)s->d[1], (long long)s->d[2],
                               ds->name);
        } else if (op->kind == TK_AUG_RANDOM_FLIP) {
            if (!(op->p >= 0 && op->p <= 1))
                return tk_fail(ctx, TK_ERR_INPUT, "random_flip: p = %g is not in [0, 1]", op->p);
        } else if (op->kind == TK_AUG_RANDOM_AFFINE) {
            for (int i = 0; i < 2; i++)
                if (!(op->translate[i] >= 0 && op->translate[i] <= 1))
                    return tk_fail(ctx, TK_ERR_INPUT, "random_affine: translate[%d] = %g is not "
                                   "in [0, 1]", i + 1, op->translate[i]);
        } else {
            return tk_fail(ctx, TK_ERR_INPUT, "augment: unknown operation %d", (int)op->kind);
        }
        if (!isfinite(op->fill))
            return tk_fail(ctx, TK_ERR_INPUT, "augment: fill %g is not finite", op->fill);
    }
    if (n > 0)
        memcpy(v->aug, ops, (size_t)n * sizeof *ops);
    v->n_aug = n;
    return TK_OK;
}
