/* adaptive_avg_pool2d.c - nn.AdaptiveAvgPool2d on NCHW float32: output_size (an int or a
 * pair) with PyTorch's windows start = floor(i*H/oh), end = ceil((i+1)*H/oh), which may
 * overlap when H is not a multiple of oh; output_size 1 is global average pooling.
 * Not here: None entries in output_size (keep that input dim). */
#include "tk_int.h"
#include "common.h"

#include <limits.h>
#include <string.h>

typedef struct {
    int c, h, w, oh, ow;
} geom;

static geom geom_of(const tk_node *n)
{
    return (geom){.c = (int)n->shape.d[1], .h = (int)n->iattr[0], .w = (int)n->iattr[1],
                  .oh = (int)n->shape.d[2], .ow = (int)n->shape.d[3]};
}

static tk_status infer(tk_graph *g, tk_node *n, tk_ctx *ctx)
{
    const tk_shape *x = &tk_graph_node(g, n->inputs[0])->shape;
    char s[96];
    tk_status status = tk_expect_nchw(n, x, ctx);
    if (status != TK_OK)
        return status;
    int64_t o[2];
    if (!tk_attr_pair(n, "output_size", (int64_t[2]){0, 0}, 1, INT64_MAX, o))
        return tk_node_fail(ctx, n, "output_size must be a positive integer or a pair of them");
    if (x->d[2] > INT_MAX / 4 || x->d[3] > INT_MAX / 4 || o[0] > INT_MAX / 4 ||
        o[1] > INT_MAX / 4 || x->d[2] * o[0] > INT_MAX / 2 || x->d[3] * o[1] > INT_MAX / 2)
        return tk_node_fail(ctx, n, "input of shape %s is too large to pool",
                            tk_shape_str(x, s, sizeof s));
    n->shape = (tk_shape){4, {x->d[0], x->d[1], o[0], o[1]}};
    n->iattr[0] = x->d[2];
    n->iattr[1] = x->d[3];
    return TK_OK;
}

static int start_of(int i, int out, int in)
{
    return i * in / out;
}

static int end_of(int i, int out, int in)
{
    return ((i + 1) * in + out - 1) / out;
}

static void forward(const tk_kernel_args *a)
{
    geom q = geom_of(a->node);
    size_t planes = (size_t)a->n * q.c, plane = (size_t)q.h * q.w, opix = (size_t)q.oh * q.ow;
    for (size_t p = 0; p < planes; p++) {
        const float *x = a->x[0] + p * plane;
        float *y = a->y + p * opix;
        for (int oh = 0; oh < q.oh; oh++) {
            int h0 = start_of(oh, q.oh, q.h), h1 = end_of(oh, q.oh, q.h);
            for (int ow = 0; ow < q.ow; ow++) {
                int w0 = start_of(ow, q.ow, q.w), w1 = end_of(ow, q.ow, q.w);
                float sum = 0.0f;
                for (int ih = h0; ih < h1; ih++)
                    for (int iw = w0; iw < w1; iw++)
                        sum += x[ih * q.w + iw];
                /* Two divisions, as PyTorch's CPU kernel does. */
                y[oh * q.ow + ow] = sum / (float)(h1 - h0) / (float)(w1 - w0);
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
            int h0 = start_of(oh, q.oh, q.h), h1 = end_of(oh, q.oh, q.h);
            for (int ow = 0; ow < q.ow; ow++) {
                int w0 = start_of(ow, q.ow, q.w), w1 = end_of(ow, q.ow, q.w);
                float g = dy[oh * q.ow + ow] / (float)(h1 - h0) / (float)(w1 - w0);
                for (int ih = h0; ih < h1; ih++)
                    for (int iw = w0; iw < w1; iw++)
                        dx[ih * q.w + iw] += g;
            }
        }
    }
}

const tk_op_def tk_op_adaptive_avg_pool2d = {
    .name = "adaptive_avg_pool2d",
    .min_inputs = 1,
    .max_inputs = 1,
    .flags = 0,
    .infer = infer,
    .forward = forward,
    .backward = backward,
};
