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
    double p = tk_attr_float(n, "p", 0.5);
    if (!(p >= 0.0 && p < 1.0))
        return tk_node_fail(ctx, n, "p must be in [0, 1), got %g", p);
    n->fattr[0] = p;
    n->shape = *x;
    return TK_OK;
}

/* The factor of channel `ch` (counted over the batch): 0 or 1/(1-p). */
static float keep_scale(const tk_kernel_args *a, size_t ch)
{
    float p = (float)a->node->fattr[0];
    float u = tk_rng_uniform_at(a->seed, TK_STREAM_DROPOUT, (uint32_t)a->node->id,
                                (uint32_t)a->step, ch);
    return u < p ? 0.0f : 1.0f / (1.0f - p);
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
        float k = keep_scale(a, ch);
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
        float k = same ? 1.0f : keep_scale(a, ch);
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
