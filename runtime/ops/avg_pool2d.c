/* avg_pool2d.c - nn.AvgPool2d on NCHW float32: kernel_size, stride (default: the kernel),
 * padding, ceil_mode (PyTorch's output-size rule) and count_include_pad. The divisor follows
 * PyTorch's CPU kernel: the window clipped to the padded input, or to the input itself
 * without count_include_pad. Not here: divisor_override. */
#include "tk_int.h"

#include <limits.h>
#include <string.h>

typedef struct {
    int c, h, w, oh, ow;
    int kh, kw, sh, sw, ph, pw;
    bool include_pad;
} geom;

enum { KERNEL, STRIDE, PAD, IN_HW, INCLUDE_PAD };

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
        .include_pad = i[INCLUDE_PAD] != 0,
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
    if (x->d[2] > INT_MAX / 4 || x->d[3] > INT_MAX / 4)
        return tk_node_fail(ctx, n, "input of shape %s is too large to pool",
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
    n->iattr[INCLUDE_PAD] = tk_attr_int(n, "count_include_pad", 1) != 0;
    return TK_OK;
}

/* Window (oh, ow) clipped to the input: rows [*h0, *h1), columns [*w0, *w1), and the count
 * it averages over. */
static float window(const geom *q, int oh, int ow, int *h0, int *h1, int *w0, int *w1)
{
    int a = oh * q->sh - q->ph, b = ow * q->sw - q->pw;
    int a1 = a + q->kh < q->h + q->ph ? a + q->kh : q->h + q->ph;
    int b1 = b + q->kw < q->w + q->pw ? b + q->kw : q->w + q->pw;
    int padded = (a1 - a) * (b1 - b);
    *h0 = a > 0 ? a : 0;
    *w0 = b > 0 ? b : 0;
    *h1 = a1 < q->h ? a1 : q->h;
    *w1 = b1 < q->w ? b1 : q->w;
    return (float)(q->include_pad ? padded : (*h1 - *h0) * (*w1 - *w0));
}

static void forward(const tk_kernel_args *a)
{
    geom q = geom_of(a->node);
    size_t planes = (size_t)a->n * q.c, plane = (size_t)q.h * q.w, opix = (size_t)q.oh * q.ow;
    for (size_t p = 0; p < planes; p++) {
        const float *x = a->x[0] + p * plane;
        float *y = a->y + p * opix;
        for (int oh = 0; oh < q.oh; oh++) {
            for (int ow = 0; ow < q.ow; ow++) {
                int h0, h1, w0, w1;
                float count = window(&q, oh, ow, &h0, &h1, &w0, &w1), sum = 0.0f;
                for (int ih = h0; ih < h1; ih++)
                    for (int iw = w0; iw < w1; iw++)
                        sum += x[ih * q.w + iw];
                y[oh * q.ow + ow] = sum / count;
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
        const float *dy = a->dy + p * opix;
        for (int oh = 0; oh < q.oh; oh++) {
            for (int ow = 0; ow < q.ow; ow++) {
                int h0, h1, w0, w1;
                float g = dy[oh * q.ow + ow] / window(&q, oh, ow, &h0, &h1, &w0, &w1);
                for (int ih = h0; ih < h1; ih++)
                    for (int iw = w0; iw < w1; iw++)
                        dx[ih * q.w + iw] += g;
            }
        }
    }
}

const tk_op_def tk_op_avg_pool2d = {
    .name = "avg_pool2d",
    .min_inputs = 1,
    .max_inputs = 1,
    .flags = 0,
    .infer = infer,
    .forward = forward,
    .backward = backward,
};
