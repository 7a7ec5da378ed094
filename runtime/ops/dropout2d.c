/* dropout2d.c - nn.Dropout2d on (N, C, H, W): in training, zero whole channels with
 * probability p (one draw per sample and channel) and scale the others by 1/(1-p); in eval,
 * identity. The mask is never stored: backward redraws it from the counter-based RNG keyed by
 * (seed, node, step, sample * C + channel). */
#include "tk_int.h"
#include "common.h"

#include <string.h>

static tk_status infer(tk_graph *g, tk_node *n, tk_ctx *ctx)
{
    const tk_shape *x = &tk_graph_node(g, n->inputs[0])->shape;
    tk_status status = tk_expect_nchw(n, x, ctx);
    if (status != TK_OK)
        return status;
    status = tk_attr_dropout_p(n, ctx);
    if (status != TK_OK)
        return status;
    n->shape = *x;
    return TK_OK;
}

static bool identity(const tk_kernel_args *a)
{
    return !a->training || a->node->fattr[0] == 0.0;
}

static void forward(const tk_kernel_args *a)
{
    size_t channels = (size_t)a->n * (size_t)a->node->shape.d[1];
    size_t plane = (size_t)(a->node->shape.d[2] * a->node->shape.d[3]);
    if (identity(a)) {
        memcpy(a->y, a->x[0], channels * plane * sizeof(float));
        return;
    }
    for (size_t ch = 0; ch < channels; ch++) {
        float k = tk_dropout_scale(a, ch, (size_t)a->node->shape.d[1]);
        const float *x = a->x[0] + ch * plane;
        float *y = a->y + ch * plane;
        for (size_t i = 0; i < plane; i++)
            y[i] = x[i] * k;
    }
}

static void backward(const tk_kernel_args *a)
{
    size_t channels = (size_t)a->n * (size_t)a->node->shape.d[1];
    size_t plane = (size_t)(a->node->shape.d[2] * a->node->shape.d[3]);
    bool same = identity(a);
    for (size_t ch = 0; ch < channels; ch++) {
        float k = same ? 1.0f : tk_dropout_scale(a, ch, (size_t)a->node->shape.d[1]);
        const float *dy = a->dy + ch * plane;
        float *dx = a->dx[0] + ch * plane;
        if (a->dx_accumulate[0])
            for (size_t i = 0; i < plane; i++)
                dx[i] += dy[i] * k;
        else
            for (size_t i = 0; i < plane; i++)
                dx[i] = dy[i] * k;
    }
}

const tk_op_def tk_op_dropout2d = {
    .name = "dropout2d",
    .min_inputs = 1,
    .max_inputs = 1,
    .flags = TK_OP_RANDOM,
    .infer = infer,
    .forward = forward,
    .backward = backward,
};
