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

/* ---------------------------------------------------------------- ops along one dimension */

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
 * to the two winners, with half the dependent steps. Four windows at a time: rows are short
 * (14 windows on FashionMNIST's first layer), so four lanes, with the last group overlapping
 * the one before it, beat a wider loop and its scalar remainder. The argmax offset is a
 * float like the index it is added to (exact below 2^24). */
typedef float v4f __attribute__((vector_size(16)));
typedef int v4i __attribute__((vector_size(16)));

static inline v4f pick(v4i take, v4f a, v4f b)
{
    return (v4f)(((v4i)a & take) | ((v4i)b & ~take));
}

static inline v4i later_wins(v4f later, v4f first)
{
    return (later > first) | (later != later);
}

/* Four windows' first entries from the first one's: one broadcast and one add, where the
 * vector built from four scalar sums cost a tenth of the pooling's time. The sums are exact,
 * so either way gives the same offsets. */
#define WINDOW_STARTS ((v4f){0, 2, 4, 6})

/* What a convolution's epilogue does to each value before its pooling sees it. */
typedef enum { AS_IS, BIASED, BIASED_RELU } prologue;

static inline v4f prepared(v4f v, float b, prologue pre)
{
    const v4f zero = {0, 0, 0, 0};
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

/* Windows [c, c + 4) of rows top and low (low = top + w). */
static inline void four_windows(const float *top, const float *low, int c, float at, float w,
                                float b, prologue pre, float *y, float *arg)
{
    v4f t0, t1, l0, l1;
    memcpy(&t0, top + 2 * c, sizeof t0);
    memcpy(&t1, top + 2 * c + 4, sizeof t1);
    memcpy(&l0, low + 2 * c, sizeof l0);
    memcpy(&l1, low + 2 * c + 4, sizeof l1);
    t0 = prepared(t0, b, pre);
    t1 = prepared(t1, b, pre);
    l0 = prepared(l0, b, pre);
    l1 = prepared(l1, b, pre);
    const v4i even = {0, 2, 4, 6}, odd = {1, 3, 5, 7};
    const v4f zero = {0, 0, 0, 0}, one = {1, 1, 1, 1}, below = {w, w, w, w};
    v4f a = __builtin_shuffle(t0, t1, even), bb = __builtin_shuffle(t0, t1, odd);
    v4f c0 = __builtin_shuffle(l0, l1, even), d = __builtin_shuffle(l0, l1, odd);
    v4i right = later_wins(bb, a), right_low = later_wins(d, c0);
    v4f upper = pick(right, bb, a), lower = pick(right_low, d, c0);
    v4f upper_off = pick(right, one, zero), lower_off = below + pick(right_low, one, zero);
    v4i down = later_wins(lower, upper);
    v4f m = pick(down, lower, upper), off = pick(down, lower_off, upper_off);
    v4f index = (WINDOW_STARTS + at) + off;
    memcpy(y + c, &m, sizeof m);
    memcpy(arg + c, &index, sizeof index);
}

static inline void pool_2x2_plane(const float *x, int w, int oh, int ow, float b, prologue pre,
                                  float *y, float *arg)
{
    for (int r = 0; r < oh; r++) {
        const float *top = x + (size_t)2 * r * w, *low = top + w;
        float *yr = y + (size_t)r * ow, *ar = arg + (size_t)r * ow;
        int c = 0;
        for (; c + 4 <= ow; c += 4)
            four_windows(top, low, c, (float)(2 * r * w + 2 * c), (float)w, b, pre, yr, ar);
        if (c < ow && ow >= 4) {
            four_windows(top, low, ow - 4, (float)(2 * r * w + 2 * (ow - 4)), (float)w, b, pre,
                         yr, ar);
            c = ow;
        }
        for (; c < ow; c++) {
            int i = 2 * c, best = i;
            float m = prepared1(top[i], b, pre), v = prepared1(top[i + 1], b, pre);
            if (v > m || isnan(v))
                m = v, best = i + 1;
            v = prepared1(low[i], b, pre);
            if (v > m || isnan(v))
                m = v, best = i + w;
            v = prepared1(low[i + 1], b, pre);
            if (v > m || isnan(v))
                m = v, best = i + w + 1;
            yr[c] = m;
            ar[c] = (float)(2 * r * w + best);
        }
    }
}

TK_HOT void tk_max_pool_2x2_plane(const float *x, int w, int oh, int ow, float *y, float *arg)
{
    pool_2x2_plane(x, w, oh, ow, 0.0f, AS_IS, y, arg);
}

TK_HOT void tk_max_pool_2x2_biased(const float *x, float b, bool relu, int w, int oh, int ow,
                                   float *y, float *arg)
{
    if (relu)
        pool_2x2_plane(x, w, oh, ow, b, BIASED_RELU, y, arg);
    else
        pool_2x2_plane(x, w, oh, ow, b, BIASED, y, arg);
}

/* Windows [c, c + 4) of the pooled row: each window's four input positions, the gradient at
 * its argmax (through the mask) and +0 elsewhere, as the separate ops' zeros plus a scatter
 * give them. */
static inline void four_unpooled(const float *dy, const float *arg, const float *y, int c,
                                 float at, float w, float *top, float *low)
{
    v4f g, index, mask_of;
    memcpy(&g, dy + c, sizeof g);
    memcpy(&index, arg + c, sizeof index);
    const v4f zero = {0, 0, 0, 0};
    g = zero + g;
    if (y) {
        memcpy(&mask_of, y + c, sizeof mask_of);
        g = pick(mask_of > zero, g, zero);
    }
    v4f off = index - (WINDOW_STARTS + at);
    v4f a = pick(off == zero, g, zero), b = pick(off == (v4f){1, 1, 1, 1}, g, zero);
    v4f d = pick(off == (v4f){w, w, w, w}, g, zero);
    v4f e = pick(off == (v4f){w + 1, w + 1, w + 1, w + 1}, g, zero);
    const v4i first = {0, 4, 1, 5}, second = {2, 6, 3, 7};
    v4f out[4] = {__builtin_shuffle(a, b, first), __builtin_shuffle(a, b, second),
                  __builtin_shuffle(d, e, first), __builtin_shuffle(d, e, second)};
    memcpy(top + 2 * c, out, 2 * sizeof(v4f));
    memcpy(low + 2 * c, out + 2, 2 * sizeof(v4f));
}

TK_HOT void tk_max_unpool_2x2_plane(const float *dy, const float *arg, const float *y, int h,
                                    int w, int oh, int ow, float *dx)
{
    for (int r = 0; r < oh; r++) {
        float *top = dx + (size_t)2 * r * w, *low = top + w;
        const float *dr = dy + (size_t)r * ow, *ar = arg + (size_t)r * ow;
        const float *yr = y ? y + (size_t)r * ow : NULL;
        int c = 0;
        for (; c + 4 <= ow; c += 4)
            four_unpooled(dr, ar, yr, c, (float)(2 * r * w + 2 * c), (float)w, top, low);
        if (c < ow && ow >= 4) {
            four_unpooled(dr, ar, yr, ow - 4, (float)(2 * r * w + 2 * (ow - 4)), (float)w, top,
                          low);
            c = ow;
        }
        for (; c < ow; c++) {
            float g = !yr || yr[c] > 0.0f ? 0.0f + dr[c] : 0.0f;
            int off = (int)ar[c] - (2 * r * w + 2 * c);
            top[2 * c] = off == 0 ? g : 0.0f;
            top[2 * c + 1] = off == 1 ? g : 0.0f;
            low[2 * c] = off == w ? g : 0.0f;
            low[2 * c + 1] = off == w + 1 ? g : 0.0f;
        }
        for (int k = 2 * ow; k < w; k++)
            top[k] = low[k] = 0.0f;
    }
    if (2 * oh < h)
        memset(dx + (size_t)2 * oh * w, 0, sizeof(float) * (size_t)(h - 2 * oh) * w);
}
