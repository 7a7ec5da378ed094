/* avg_pool2d.c - nn.AvgPool2d on NCHW float32: kernel_size, stride (default: the kernel),
 * padding, ceil_mode (PyTorch's output-size rule) and count_include_pad. The divisor follows
 * PyTorch's CPU kernel: the window clipped to the padded input, or to the input itself
 * without count_include_pad. Not here: divisor_override. */
#include "tk_int.h"
#include "common.h"

#include <limits.h>
#include <string.h>

enum { INCLUDE_PAD = TK_POOL_SLOTS };

static tk_status infer(tk_graph *g, tk_node *n, tk_ctx *ctx)
{
    tk_pool2d_window win;
    tk_status status = tk_pool2d_window_of(g, n, ctx, &win);
    if (status != TK_OK)
        return status;
    const tk_shape *x = &tk_graph_node(g, n->inputs[0])->shape;
    char s[96];
    if (x->d[2] > INT_MAX / 4 || x->d[3] > INT_MAX / 4)
        return tk_node_fail(ctx, n, "input of shape %s is too large to pool",
                            tk_shape_str(x, s, sizeof s));
    status = tk_pool2d_output(g, n, ctx, &win);
    if (status != TK_OK)
        return status;
    n->iattr[INCLUDE_PAD] = tk_attr_int(n, "count_include_pad", 1) != 0;
    return TK_OK;
}

/* Window (oh, ow) clipped to the input: rows [*h0, *h1), columns [*w0, *w1), and the count
 * it averages over. */
static float window(const tk_pool2d_geom *q, bool include_pad, int oh, int ow, int *h0,
                    int *h1, int *w0, int *w1)
{
    int a = oh * q->sh - q->ph, b = ow * q->sw - q->pw;
    int a1 = a + q->kh < q->h + q->ph ? a + q->kh : q->h + q->ph;
    int b1 = b + q->kw < q->w + q->pw ? b + q->kw : q->w + q->pw;
    int padded = (a1 - a) * (b1 - b);
    *h0 = a > 0 ? a : 0;
    *w0 = b > 0 ? b : 0;
    *h1 = a1 < q->h ? a1 : q->h;
    *w1 = b1 < q->w ? b1 : q->w;
    return (float)(include_pad ? padded : (*h1 - *h0) * (*w1 - *w0));
}

static void forward(const tk_kernel_args *a)
{
    tk_pool2d_geom q = tk_pool2d_geom_of(a->node);
    bool include_pad = a->node->iattr[INCLUDE_PAD] != 0;
    size_t planes = (size_t)a->n * q.c, plane = (size_t)q.h * q.w, opix = (size_t)q.oh * q.ow;
    for (size_t p = 0; p < planes; p++) {
        const float *x = a->x[0] + p * plane;
        float *y = a->y + p * opix;
        for (int oh = 0; oh < q.oh; oh++) {
            for (int ow = 0; ow < q.ow; ow++) {
                int h0, h1, w0, w1;
                float count = window(&q, include_pad, oh, ow, &h0, &h1, &w0, &w1), sum = 0.0f;
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
    tk_pool2d_geom q = tk_pool2d_geom_of(a->node);
    bool include_pad = a->node->iattr[INCLUDE_PAD] != 0;
    size_t planes = (size_t)a->n * q.c, plane = (size_t)q.h * q.w, opix = (size_t)q.oh * q.ow;
    if (!a->dx_accumulate[0])
        memset(a->dx[0], 0, sizeof(float) * planes * plane);
    for (size_t p = 0; p < planes; p++) {
        float *dx = a->dx[0] + p * plane;
        const float *dy = a->dy + p * opix;
        for (int oh = 0; oh < q.oh; oh++) {
            for (int ow = 0; ow < q.ow; ow++) {
                int h0, h1, w0, w1;
                float count = window(&q, include_pad, oh, ow, &h0, &h1, &w0, &w1);
                float g = dy[oh * q.ow + ow] / count;
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
