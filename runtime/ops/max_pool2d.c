/* max_pool2d.c - nn.MaxPool2d on NCHW float32: kernel_size, stride (default: the kernel),
 * padding (implicit -inf) and ceil_mode with PyTorch's output-size rule. Each window's argmax
 * (the first maximum, or a NaN, as PyTorch picks it) goes into the node's scratch as a float
 * holding the index within the input plane, so backward routes the gradient without the
 * input. Not here: dilation, return_indices, max_unpool. */
#include "tk_int.h"

#include <limits.h>
#include <math.h>
#include <string.h>

typedef struct {
    int c, h, w, oh, ow;
    int kh, kw, sh, sw, ph, pw;
} geom;

enum { KERNEL, STRIDE, PAD, IN_HW };

static int64_t pack(int64_t hi, int64_t lo)
{
    return hi * ((int64_t)1 << 32) + lo;
}

static int first(int64_t v)
{
    return (int)(v >> 32);
}

static int second(int64_t v)
{
    return (int)(v & 0xffffffff);
}

static geom geom_of(const tk_node *n)
{
    const int64_t *i = n->iattr;
    return (geom){
        .c = (int)n->shape.d[1], .h = first(i[IN_HW]), .w = second(i[IN_HW]),
        .oh = (int)n->shape.d[2], .ow = (int)n->shape.d[3],
        .kh = first(i[KERNEL]), .kw = second(i[KERNEL]),
        .sh = first(i[STRIDE]), .sw = second(i[STRIDE]),
        .ph = first(i[PAD]), .pw = second(i[PAD]),
    };
}

/* An attribute given as one integer (both dims) or a list of one or two; false if neither. */
static bool pair(const tk_node *n, const char *key, const int64_t dflt[2], int64_t v[2])
{
    const tk_attr *a = tk_node_attr(n, key);
    v[0] = dflt[0];
    v[1] = dflt[1];
    if (!a)
        return true;
    if (a->kind == TK_ATTR_INT) {
        v[0] = v[1] = a->i;
        return true;
    }
    if (a->kind == TK_ATTR_INTS && (a->n == 1 || a->n == 2)) {
        v[0] = a->ints[0];
        v[1] = a->ints[a->n - 1];
        return true;
    }
    return false;
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

static tk_status infer(tk_graph *g, tk_node *n, tk_ctx *ctx)
{
    const tk_shape *x = &tk_graph_node(g, n->inputs[0])->shape;
    char s[96];
    if (x->ndim != 4)
        return tk_node_fail(ctx, n, "expects an input of shape (batch, channels, height, "
                            "width), got %s", tk_shape_str(x, s, sizeof s));
    int64_t k[2], st[2], pad[2], zero[2] = {0, 0};
    if (!pair(n, "kernel_size", zero, k) || k[0] < 1 || k[1] < 1 || k[0] > INT_MAX / 4 ||
        k[1] > INT_MAX / 4)
        return tk_node_fail(ctx, n, "kernel_size must be a positive integer or a pair of them");
    if (!pair(n, "stride", k, st) || st[0] < 1 || st[1] < 1 || st[0] > INT_MAX / 4 ||
        st[1] > INT_MAX / 4)
        return tk_node_fail(ctx, n, "stride must be a positive integer or a pair of them");
    if (!pair(n, "padding", zero, pad) || pad[0] < 0 || pad[1] < 0)
        return tk_node_fail(ctx, n, "padding must be a non-negative integer or a pair of them");
    if (pad[0] > k[0] / 2 || pad[1] > k[1] / 2)
        return tk_node_fail(ctx, n, "padding (%lld, %lld) must be at most half of kernel_size "
                            "(%lld, %lld)", (long long)pad[0], (long long)pad[1],
                            (long long)k[0], (long long)k[1]);
    /* Argmax indices are stored as floats: exact up to 2^24. */
    if (x->d[2] * x->d[3] > ((int64_t)1 << 24))
        return tk_node_fail(ctx, n, "input of shape %s has planes too large to pool",
                            tk_shape_str(x, s, sizeof s));
    bool ceil_mode = tk_attr_int(n, "ceil_mode", 0) != 0;
    int64_t oh = pooled(x->d[2], k[0], pad[0], st[0], ceil_mode);
    int64_t ow = pooled(x->d[3], k[1], pad[1], st[1], ceil_mode);
    if (oh < 1 || ow < 1)
        return tk_node_fail(ctx, n, "kernel_size (%lld, %lld) with padding (%lld, %lld) does "
                            "not fit the input of shape %s", (long long)k[0], (long long)k[1],
                            (long long)pad[0], (long long)pad[1],
                            tk_shape_str(x, s, sizeof s));
    n->shape = (tk_shape){4, {x->d[0], x->d[1], oh, ow}};
    n->iattr[KERNEL] = pack(k[0], k[1]);
    n->iattr[STRIDE] = pack(st[0], st[1]);
    n->iattr[PAD] = pack(pad[0], pad[1]);
    n->iattr[IN_HW] = pack(x->d[2], x->d[3]);
    n->scratch = (size_t)tk_shape_numel(&n->shape);
    return TK_OK;
}

/* The first maximum of a window, or its last NaN: PyTorch's (v > m || isnan(v)) rule. */
static inline void take(const float *x, int i, float *m, int *best)
{
    float v = x[i];
    bool better = (v > *m) | (v != v);
    *m = better ? v : *m;
    *best = better ? i : *best;
}

/* 2x2 windows with stride 2 and no padding, the common case, without the general loop's
 * bounds arithmetic. */
static bool forward_2x2(const tk_kernel_args *a, const geom *q, size_t planes)
{
    if (q->kh != 2 || q->kw != 2 || q->sh != 2 || q->sw != 2 || q->ph || q->pw ||
        q->oh * 2 > q->h || q->ow * 2 > q->w)
        return false;
    size_t plane = (size_t)q->h * q->w, opix = (size_t)q->oh * q->ow;
    for (size_t p = 0; p < planes; p++) {
        const float *x = a->x[0] + p * plane;
        float *y = a->y + p * opix, *arg = a->scratch + p * opix;
        for (int oh = 0; oh < q->oh; oh++) {
            for (int ow = 0; ow < q->ow; ow++) {
                int i = 2 * oh * q->w + 2 * ow, best = i;
                float m = x[i];
                take(x, i + 1, &m, &best);
                take(x, i + q->w, &m, &best);
                take(x, i + q->w + 1, &m, &best);
                y[oh * q->ow + ow] = m;
                arg[oh * q->ow + ow] = (float)best;
            }
        }
    }
    return true;
}

static void forward(const tk_kernel_args *a)
{
    geom q = geom_of(a->node);
    size_t planes = (size_t)a->n * q.c, plane = (size_t)q.h * q.w, opix = (size_t)q.oh * q.ow;
    if (forward_2x2(a, &q, planes))
        return;
    for (size_t p = 0; p < planes; p++) {
        const float *x = a->x[0] + p * plane;
        float *y = a->y + p * opix, *arg = a->scratch + p * opix;
        for (int oh = 0; oh < q.oh; oh++) {
            int h0 = oh * q.sh - q.ph, h1 = h0 + q.kh < q.h ? h0 + q.kh : q.h;
            h0 = h0 > 0 ? h0 : 0;
            for (int ow = 0; ow < q.ow; ow++) {
                int w0 = ow * q.sw - q.pw, w1 = w0 + q.kw < q.w ? w0 + q.kw : q.w;
                w0 = w0 > 0 ? w0 : 0;
                /* PyTorch's rule: the first maximum, unless there is a NaN (then the last
                 * NaN). Arithmetic selects instead of branches, which random data defeats. */
                int best = h0 * q.w + w0, nan_at = -1;
                float m = -INFINITY;
                for (int ih = h0; ih < h1; ih++) {
                    for (int iw = w0; iw < w1; iw++) {
                        int i = ih * q.w + iw;
                        float v = x[i];
                        best += (v > m) * (i - best);
                        nan_at += isnan(v) * (i - nan_at);
                        m = v > m ? v : m;
                    }
                }
                best = nan_at >= 0 ? nan_at : best;
                y[oh * q.ow + ow] = x[best];
                arg[oh * q.ow + ow] = (float)best;
            }
        }
    }
}

static void backward(const tk_kernel_args *a)
{
    geom q = geom_of(a->node);
    size_t planes = (size_t)a->n * q.c, plane = (size_t)q.h * q.w, opix = (size_t)q.oh * q.ow;
    if (!a->dx_accumulate[0])
        memset(a->dx[0], 0, sizeof(float) * planes * plane);
    for (size_t p = 0; p < planes; p++) {
        float *dx = a->dx[0] + p * plane;
        const float *dy = a->dy + p * opix, *arg = a->scratch + p * opix;
        for (size_t i = 0; i < opix; i++)
            dx[(size_t)arg[i]] += dy[i];
    }
}

const tk_op_def tk_op_max_pool2d = {
    .name = "max_pool2d",
    .min_inputs = 1,
    .max_inputs = 1,
    .flags = 0,
    .infer = infer,
    .forward = forward,
    .backward = backward,
};
