/* common.c - the out-of-line helpers of common.h, shared by several ops so that each op file
 * keeps only what is its own. Not an op: nothing here is registered. */
#include "common.h"

#include <limits.h>
#include <math.h>
#include <string.h>

/* ---------------------------------------------------------------- elementwise ops */

tk_status tk_infer_same_shape(tk_graph *g, tk_node *n, tk_ctx *ctx)
{
    (void)ctx;
    n->shape = tk_graph_node(g, n->inputs[0])->shape;
    return TK_OK;
}

void tk_pass_grad(float *dx, const float *dy, size_t n, bool accumulate)
{
    if (accumulate) {
        for (size_t i = 0; i < n; i++)
            dx[i] += dy[i];
    } else {
        memcpy(dx, dy, n * sizeof(float));
    }
}

void tk_copy_forward(const tk_kernel_args *a)
{
    memcpy(a->y, a->x[0], tk_kernel_numel(a) * sizeof(float));
}

void tk_copy_backward(const tk_kernel_args *a)
{
    if (a->dx[0])
        tk_pass_grad(a->dx[0], a->dy, tk_kernel_numel(a), a->dx_accumulate[0]);
}

/* ---------------------------------------------------------------- dropout */

tk_status tk_attr_dropout_p(tk_node *n, tk_ctx *ctx)
{
    double p = tk_attr_float(n, "p", 0.5);
    if (!(p >= 0.0 && p < 1.0))
        return tk_node_fail(ctx, n, "p must be in [0, 1), got %g", p);
    n->fattr[0] = p;
    return TK_OK;
}

void tk_dropout_scales(const tk_kernel_args *a, size_t i, size_t n, size_t per_row, float *k)
{
    float p = (float)a->node->fattr[0];
    uint64_t c = (uint64_t)a->row0 * per_row + i, end = c + n;
    while (c < end) {
        float u[4];
        tk_rng_uniform4_at(a->seed, TK_STREAM_DROPOUT, (uint32_t)a->node->id, (uint32_t)a->step,
                           c >> 2, u);
        for (uint64_t j = c & 3; j < 4 && c < end; j++, c++)
            *k++ = u[j] < p ? 0.0f : 1.0f / (1.0f - p);
    }
}

/* ---------------------------------------------------------------- ops along one dimension */

int64_t tk_attr_dim(const tk_node *n, const tk_shape *x, tk_ctx *ctx)
{
    int64_t dim = tk_attr_int(n, "dim", 1);
    char s[96];
    if (dim < 0)
        dim += x->ndim;
    if (dim < 1 || dim >= x->ndim) {
        tk_node_fail(ctx, n, "dim %lld does not fit an input of shape %s (dim 0 is the "
                     "batch)", (long long)tk_attr_int(n, "dim", 1),
                     tk_shape_str(x, s, sizeof s));
        return 0;
    }
    return dim;
}

tk_status tk_infer_along_dim(tk_graph *g, tk_node *n, tk_ctx *ctx)
{
    const tk_shape *in = &tk_graph_node(g, n->inputs[0])->shape;
    int64_t dim = tk_attr_dim(n, in, ctx);
    if (dim == 0)
        return TK_ERR_INPUT;
    n->shape = *in;
    n->iattr[TK_DIM_LEN] = in->d[dim];
    n->iattr[TK_DIM_INNER] = 1;
    for (int i = (int)dim + 1; i < in->ndim; i++)
        n->iattr[TK_DIM_INNER] *= in->d[i];
    return TK_OK;
}

/* ---------------------------------------------------------------- losses */

tk_status tk_attr_reduction(tk_node *n, tk_ctx *ctx, int64_t *sum)
{
    const char *red = tk_attr_str(n, "reduction", "mean");
    if (strcmp(red, "mean") != 0 && strcmp(red, "sum") != 0)
        return tk_node_fail(ctx, n, "reduction must be 'mean' or 'sum', got '%s'", red);
    *sum = strcmp(red, "sum") == 0;
    return TK_OK;
}

tk_status tk_infer_value_loss(tk_graph *g, tk_node *n, tk_ctx *ctx, const char *what)
{
    const tk_shape *x = &tk_graph_node(g, n->inputs[0])->shape;
    const tk_shape *t = &tk_graph_node(g, n->inputs[1])->shape;
    char s[96], u[96];
    if (tk_sample_numel(x) != tk_sample_numel(t) || x->d[0] != t->d[0])
        return tk_node_fail(ctx, n, "%s shape %s does not match target shape %s", what,
                            tk_shape_str(x, s, sizeof s), tk_shape_str(t, u, sizeof u));
    tk_status status = tk_attr_reduction(n, ctx, &n->iattr[TK_LOSS_SUM]);
    if (status != TK_OK)
        return status;
    n->iattr[TK_LOSS_VALUES] = tk_sample_numel(x);
    n->shape = (tk_shape){0, {0}};
    return TK_OK;
}

tk_status tk_infer_class_loss(tk_graph *g, tk_node *n, tk_ctx *ctx, const char *what)
{
    const tk_shape *x = &tk_graph_node(g, n->inputs[0])->shape;
    const tk_shape *t = &tk_graph_node(g, n->inputs[1])->shape;
    char s[96], u[96];
    if (x->ndim != 2)
        return tk_node_fail(ctx, n, "expects %s of shape (batch, classes), got %s", what,
                            tk_shape_str(x, s, sizeof s));
    if (t->ndim != 1)
        return tk_node_fail(ctx, n, "expects one class id per sample, got targets of shape %s "
                            "for %s %s", tk_shape_str(t, u, sizeof u), what,
                            tk_shape_str(x, s, sizeof s));
    n->iattr[TK_CLASS_COUNT] = x->d[1];
    n->iattr[TK_CLASS_IGNORE] = tk_attr_int(n, "ignore_index", -100);
    return TK_OK;
}

/* ---------------------------------------------------------------- 2-d spatial ops */

tk_status tk_expect_nchw(const tk_node *n, const tk_shape *x, tk_ctx *ctx)
{
    char s[96];
    if (x->ndim != 4)
        return tk_node_fail(ctx, n, "expects an input of shape (batch, channels, height, "
                            "width), got %s", tk_shape_str(x, s, sizeof s));
    return TK_OK;
}

bool tk_attr_pair(const tk_node *n, const char *key, const int64_t dflt[2], int64_t lo,
                  int64_t hi, int64_t v[2])
{
    const tk_attr *a = tk_node_attr(n, key);
    v[0] = dflt[0];
    v[1] = dflt[1];
    if (a && a->kind == TK_ATTR_INT) {
        v[0] = v[1] = a->i;
    } else if (a && a->kind == TK_ATTR_INTS && (a->n == 1 || a->n == 2)) {
        v[0] = a->ints[0];
        v[1] = a->ints[a->n - 1];
    } else if (a) {
        return false;
    }
    return v[0] >= lo && v[1] >= lo && v[0] <= hi && v[1] <= hi;
}

tk_status tk_pool2d_window_of(tk_graph *g, tk_node *n, tk_ctx *ctx, tk_pool2d_window *win)
{
    const tk_shape *x = &tk_graph_node(g, n->inputs[0])->shape;
    tk_status status = tk_expect_nchw(n, x, ctx);
    if (status != TK_OK)
        return status;
    int64_t *k = win->k, *st = win->st, *pad = win->pad, zero[2] = {0, 0};
    if (!tk_attr_pair(n, "kernel_size", zero, 1, INT_MAX / 4, k))
        return tk_node_fail(ctx, n, "kernel_size must be a positive integer or a pair of them");
    if (!tk_attr_pair(n, "stride", k, 1, INT_MAX / 4, st))
        return tk_node_fail(ctx, n, "stride must be a positive integer or a pair of them");
    if (!tk_attr_pair(n, "padding", zero, 0, INT64_MAX, pad))
        return tk_node_fail(ctx, n, "padding must be a non-negative integer or a pair of them");
    if (pad[0] > k[0] / 2 || pad[1] > k[1] / 2)
        return tk_node_fail(ctx, n, "padding (%lld, %lld) must be at most half of kernel_size "
                            "(%lld, %lld)", (long long)pad[0], (long long)pad[1],
                            (long long)k[0], (long long)k[1]);
    return TK_OK;
}

/* PyTorch's pooling_output_shape: floor or ceil division, and in ceil mode the last window
 * must start inside the input or its left padding. */
static int64_t pooled(int64_t in, int64_t k, int64_t pad, int64_t stride, bool ceil_mode)
{
    int64_t num = in + 2 * pad - k + (ceil_mode ? stride - 1 : 0);
    int64_t out = (num >= 0 ? num / stride : -((-num + stride - 1) / stride)) + 1;
    if (ceil_mode && (out - 1) * stride >= in + pad)
        out--;
    return out;
}

tk_status tk_pool2d_output(tk_graph *g, tk_node *n, tk_ctx *ctx, const tk_pool2d_window *win)
{
    const tk_shape *x = &tk_graph_node(g, n->inputs[0])->shape;
    const int64_t *k = win->k, *st = win->st, *pad = win->pad;
    bool ceil_mode = tk_attr_int(n, "ceil_mode", 0) != 0;
    int64_t oh = pooled(x->d[2], k[0], pad[0], st[0], ceil_mode);
    int64_t ow = pooled(x->d[3], k[1], pad[1], st[1], ceil_mode);
    char s[96];
    if (oh < 1 || ow < 1)
        return tk_node_fail(ctx, n, "kernel_size (%lld, %lld) with padding (%lld, %lld) does "
                            "not fit the input of shape %s", (long long)k[0], (long long)k[1],
                            (long long)pad[0], (long long)pad[1],
                            tk_shape_str(x, s, sizeof s));
    n->shape = (tk_shape){4, {x->d[0], x->d[1], oh, ow}};
    n->iattr[TK_POOL_KERNEL] = tk_pair_pack(k[0], k[1]);
    n->iattr[TK_POOL_STRIDE] = tk_pair_pack(st[0], st[1]);
    n->iattr[TK_POOL_PAD] = tk_pair_pack(pad[0], pad[1]);
    n->iattr[TK_POOL_IN_HW] = tk_pair_pack(x->d[2], x->d[3]);
    return TK_OK;
}

tk_pool2d_geom tk_pool2d_geom_of(const tk_node *n)
{
    const int64_t *i = n->iattr;
    return (tk_pool2d_geom){
        .c = (int)n->shape.d[1],
        .h = tk_pair_first(i[TK_POOL_IN_HW]), .w = tk_pair_second(i[TK_POOL_IN_HW]),
        .oh = (int)n->shape.d[2], .ow = (int)n->shape.d[3],
        .kh = tk_pair_first(i[TK_POOL_KERNEL]), .kw = tk_pair_second(i[TK_POOL_KERNEL]),
        .sh = tk_pair_first(i[TK_POOL_STRIDE]), .sw = tk_pair_second(i[TK_POOL_STRIDE]),
        .ph = tk_pair_first(i[TK_POOL_PAD]), .pw = tk_pair_second(i[TK_POOL_PAD]),
    };
}

bool tk_pool2d_is_2x2(const tk_pool2d_geom *q)
{
    return q->kh == 2 && q->kw == 2 && q->sh == 2 && q->sw == 2 && !q->ph && !q->pw &&
           q->oh * 2 <= q->h && q->ow * 2 <= q->w;
}

/* PyTorch's rule, v > m || isnan(v) over a window's elements in turn, picks the last NaN if
 * there is one, else the first maximum; so does the rule applied to each row's pair and then
 * to the two winners, with half the dependent steps. The pooling takes four windows of each
 * of two pooled rows at a time, one row per 128-bit half of a 256-bit vector, so its pair
 * shuffles stay inside each half (rows are short: 14 windows on FashionMNIST's first layer;
 * the last group of a row overlaps the one before it). Each argmax is stored as its place in
 * the window, one byte (a quarter of the stores of a float index), taken from and put back
 * into the low byte of each int lane by byte shuffles, which compile to one or two
 * instructions where GCC's vector conversions went lane by lane. Every helper is inlined
 * into the TK_HOT callers' clones: built on its own, without AVX, a helper would pass its
 * 256-bit vectors through memory (about 9x slower), and no such call is left for -Wpsabi to
 * note. */
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "an int lane's low byte comes first");
#pragma GCC diagnostic ignored "-Wpsabi"
#define VECTOR_INLINE static inline __attribute__((always_inline))
typedef float v4f __attribute__((vector_size(16)));
typedef float v8f __attribute__((vector_size(32)));
typedef int v8i __attribute__((vector_size(32)));
typedef uint8_t v8b __attribute__((vector_size(8)));
typedef uint8_t v16b __attribute__((vector_size(16)));
typedef uint8_t v32b __attribute__((vector_size(32)));
typedef uint32_t v4u __attribute__((vector_size(16)));

VECTOR_INLINE v8f pick(v8i take, v8f a, v8f b)
{
    return (v8f)(((v8i)a & take) | ((v8i)b & ~take));
}

VECTOR_INLINE v8i later_wins(v8f later, v8f first)
{
    return (later > first) | (later != later);
}

/* What a convolution's epilogue does to each value before its pooling sees it. */
typedef enum { AS_IS, BIASED, BIASED_RELU } prologue;

VECTOR_INLINE v8f prepared(v8f v, float b, prologue pre)
{
    const v8f zero = {0};
    if (pre != AS_IS)
        v = v + b;
    return pre == BIASED_RELU ? pick(v > zero, v, zero) : v;
}

static inline float prepared1(float v, float b, prologue pre)
{
    if (pre != AS_IS)
        v = v + b;
    return pre == BIASED_RELU && !(v > 0.0f) ? 0.0f : v;
}

/* Eight floats from row + at (low half) and row2 + at (high half). */
VECTOR_INLINE v8f halves(const float *row, const float *row2, int at)
{
    v4f lo, hi;
    memcpy(&lo, row + at, sizeof lo);
    memcpy(&hi, row2 + at, sizeof hi);
    return __builtin_shufflevector(lo, hi, 0, 1, 2, 3, 4, 5, 6, 7);
}

/* Windows [c, c + 4) of two pooled rows: input rows top and top + w, and top2 and top2 + w. */
VECTOR_INLINE void eight_windows(const float *top, const float *top2, int w, int c, float b,
                                 prologue pre, float *y, uint8_t *arg, float *y2, uint8_t *arg2)
{
    v8f t0 = prepared(halves(top, top2, 2 * c), b, pre);
    v8f t1 = prepared(halves(top, top2, 2 * c + 4), b, pre);
    v8f l0 = prepared(halves(top + w, top2 + w, 2 * c), b, pre);
    v8f l1 = prepared(halves(top + w, top2 + w, 2 * c + 4), b, pre);
    v8f a = __builtin_shufflevector(t0, t1, 0, 2, 8, 10, 4, 6, 12, 14);
    v8f bb = __builtin_shufflevector(t0, t1, 1, 3, 9, 11, 5, 7, 13, 15);
    v8f c0 = __builtin_shufflevector(l0, l1, 0, 2, 8, 10, 4, 6, 12, 14);
    v8f d = __builtin_shufflevector(l0, l1, 1, 3, 9, 11, 5, 7, 13, 15);
    v8i right = later_wins(bb, a), right_low = later_wins(d, c0);
    v8f upper = pick(right, bb, a), lower = pick(right_low, d, c0);
    v8i upper_off = right & 1, lower_off = 2 | (right_low & 1);
    v8i down = later_wins(lower, upper);
    v8f m = pick(down, lower, upper);
    v32b place = (v32b)((down & lower_off) | (~down & upper_off));
    v8b off = __builtin_shufflevector(place, place, 0, 4, 8, 12, 16, 20, 24, 28);
    v4f m_lo = __builtin_shufflevector(m, m, 0, 1, 2, 3);
    v4f m_hi = __builtin_shufflevector(m, m, 4, 5, 6, 7);
    memcpy(y + c, &m_lo, sizeof m_lo);
    memcpy(arg + c, &off, 4);
    memcpy(y2 + c, &m_hi, sizeof m_hi);
    memcpy(arg2 + c, (const uint8_t *)&off + 4, 4);
}

/* Window c of pooled row r, one at a time (rows narrower than four windows). */
static inline void one_window(const float *x, int w, int r, int c, float b, prologue pre,
                              float *y, uint8_t *arg)
{
    const float *top = x + (size_t)2 * r * w + 2 * c, *low = top + w;
    uint8_t best = 0;
    float m = prepared1(top[0], b, pre), v = prepared1(top[1], b, pre);
    if (v > m || isnan(v))
        m = v, best = 1;
    v = prepared1(low[0], b, pre);
    if (v > m || isnan(v))
        m = v, best = 2;
    v = prepared1(low[1], b, pre);
    if (v > m || isnan(v))
        m = v, best = 3;
    y[c] = m;
    arg[c] = best;
}

VECTOR_INLINE void pool_2x2_plane(const float *x, int w, int oh, int ow, float b, prologue pre,
                                  float *y, uint8_t *arg)
{
    if (ow < 4) {
        for (int r = 0; r < oh; r++)
            for (int c = 0; c < ow; c++)
                one_window(x, w, r, c, b, pre, y + (size_t)r * ow, arg + (size_t)r * ow);
        return;
    }
    /* Rows in pairs; an odd last row is its own pair (computed and stored twice). */
    for (int r = 0; r < oh; r += 2) {
        int r2 = r + 1 < oh ? r + 1 : r;
        const float *top = x + (size_t)2 * r * w, *top2 = x + (size_t)2 * r2 * w;
        float *yr = y + (size_t)r * ow, *yr2 = y + (size_t)r2 * ow;
        uint8_t *ar = arg + (size_t)r * ow, *ar2 = arg + (size_t)r2 * ow;
        for (int c = 0; c + 4 <= ow; c += 4)
            eight_windows(top, top2, w, c, b, pre, yr, ar, yr2, ar2);
        if (ow % 4)
            eight_windows(top, top2, w, ow - 4, b, pre, yr, ar, yr2, ar2);
    }
}

TK_HOT void tk_max_pool_2x2_plane(const float *x, int w, int oh, int ow, float *y, uint8_t *arg)
{
    pool_2x2_plane(x, w, oh, ow, 0.0f, AS_IS, y, arg);
}

TK_HOT void tk_max_pool_2x2_biased(const float *x, float b, bool relu, int w, int oh, int ow,
                                   float *y, uint8_t *arg)
{
    if (relu)
        pool_2x2_plane(x, w, oh, ow, b, BIASED_RELU, y, arg);
    else
        pool_2x2_plane(x, w, oh, ow, b, BIASED, y, arg);
}

/* Windows [c, c + 4) of two pooled rows (dy, arg, y and dy2, arg2, y2; y NULL without a
 * mask): each window's four input positions in the rows from top and top2 (w floats wide)
 * get the gradient at its argmax (through the mask) and +0 elsewhere, as the separate ops'
 * zeros plus a scatter give them. */
VECTOR_INLINE void eight_unpooled(const float *dy, const uint8_t *arg, const float *y,
                                  const float *dy2, const uint8_t *arg2, const float *y2, int c,
                                  int w, float *top, float *top2)
{
    const v8f zero = {0};
    v8f g = zero + halves(dy, dy2, c);
    if (y)
        g = pick(halves(y, y2, c) > zero, g, zero);
    uint32_t upper_places, lower_places;
    memcpy(&upper_places, arg + c, 4);
    memcpy(&lower_places, arg2 + c, 4);
    v16b both = (v16b)(v4u){upper_places, lower_places, 0, 0}, none = {0};
    v8i off = (v8i)__builtin_shufflevector(both, none, 0, 16, 16, 16, 1, 16, 16, 16, 2, 16, 16,
                                           16, 3, 16, 16, 16, 4, 16, 16, 16, 5, 16, 16, 16, 6,
                                           16, 16, 16, 7, 16, 16, 16);
    v8f a = pick(off == 0, g, zero), b = pick(off == 1, g, zero);
    v8f d = pick(off == 2, g, zero), e = pick(off == 3, g, zero);
    /* Each half's windows interleaved: left and right entries of the upper row, then of the
     * lower row, for windows c, c + 1 and then c + 2, c + 3. */
    v8f upper0 = __builtin_shufflevector(a, b, 0, 8, 1, 9, 4, 12, 5, 13);
    v8f upper1 = __builtin_shufflevector(a, b, 2, 10, 3, 11, 6, 14, 7, 15);
    v8f lower0 = __builtin_shufflevector(d, e, 0, 8, 1, 9, 4, 12, 5, 13);
    v8f lower1 = __builtin_shufflevector(d, e, 2, 10, 3, 11, 6, 14, 7, 15);
    v8f rows[4] = {upper0, upper1, lower0, lower1};
    float *dst[4] = {top + 2 * c, top + 2 * c + 4, top + w + 2 * c, top + w + 2 * c + 4};
    float *dst2[4] = {top2 + 2 * c, top2 + 2 * c + 4, top2 + w + 2 * c, top2 + w + 2 * c + 4};
    for (int k = 0; k < 4; k++) {
        v4f lo = __builtin_shufflevector(rows[k], rows[k], 0, 1, 2, 3);
        v4f hi = __builtin_shufflevector(rows[k], rows[k], 4, 5, 6, 7);
        memcpy(dst[k], &lo, sizeof lo);
        memcpy(dst2[k], &hi, sizeof hi);
    }
}

/* Window c of pooled row r, one at a time (rows narrower than four windows). */
static inline void one_unpooled(const float *dy, const uint8_t *arg, const float *y, int w,
                                int r, int c, float *dx)
{
    float *top = dx + (size_t)2 * r * w + 2 * c, *low = top + w;
    float g = !y || y[c] > 0.0f ? 0.0f + dy[c] : 0.0f;
    top[0] = arg[c] == 0 ? g : 0.0f;
    top[1] = arg[c] == 1 ? g : 0.0f;
    low[0] = arg[c] == 2 ? g : 0.0f;
    low[1] = arg[c] == 3 ? g : 0.0f;
}

TK_HOT void tk_max_unpool_2x2_plane(const float *dy, const uint8_t *arg, const float *y, int h,
                                    int w, int oh, int ow, float *dx)
{
    if (ow < 4) {
        for (int r = 0; r < oh; r++)
            for (int c = 0; c < ow; c++)
                one_unpooled(dy + (size_t)r * ow, arg + (size_t)r * ow,
                             y ? y + (size_t)r * ow : NULL, w, r, c, dx);
    } else {
        /* Rows in pairs, as the pooling takes them. */
        for (int r = 0; r < oh; r += 2) {
            int r2 = r + 1 < oh ? r + 1 : r;
            const float *dr = dy + (size_t)r * ow, *dr2 = dy + (size_t)r2 * ow;
            const uint8_t *ar = arg + (size_t)r * ow, *ar2 = arg + (size_t)r2 * ow;
            const float *yr = y ? y + (size_t)r * ow : NULL, *yr2 = y ? y + (size_t)r2 * ow : NULL;
            float *top = dx + (size_t)2 * r * w, *top2 = dx + (size_t)2 * r2 * w;
            for (int c = 0; c + 4 <= ow; c += 4)
                eight_unpooled(dr, ar, yr, dr2, ar2, yr2, c, w, top, top2);
            if (ow % 4)
                eight_unpooled(dr, ar, yr, dr2, ar2, yr2, ow - 4, w, top, top2);
        }
    }
    for (int r = 0; r < 2 * oh && 2 * ow < w; r++)
        for (int k = 2 * ow; k < w; k++)
            dx[(size_t)r * w + k] = 0.0f;
    if (2 * oh < h)
        memset(dx + (size_t)2 * oh * w, 0, sizeof(float) * (size_t)(h - 2 * oh) * w);
}
