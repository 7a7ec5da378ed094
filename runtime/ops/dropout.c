/* dropout.c - nn.Dropout: in training, zero each element with probability p and scale the
 * rest by 1/(1-p); in eval, identity. The mask is never stored: backward recomputes it from
 * the counter-based RNG keyed by (seed, node, step, element). */
#include "tk_int.h"
#include "common.h"

#include <string.h>

static tk_status infer(tk_graph *g, tk_node *n, tk_ctx *ctx)
{
    double p = tk_attr_float(n, "p", 0.5);
    if (!(p >= 0.0 && p < 1.0))
        return tk_node_fail(ctx, n, "p must be in [0, 1), got %g", p);
    n->fattr[0] = p;
    return tk_infer_same_shape(g, n, ctx);
}

static float keep_scale(const tk_kernel_args *a, size_t i)
{
    float p = (float)a->node->fattr[0];
    float u = tk_rng_uniform_at(a->seed, TK_STREAM_DROPOUT, (uint32_t)a->node->id,
                                (uint32_t)a->step, i);
    return u < p ? 0.0f : 1.0f / (1.0f - p);
}

static void forward(const tk_kernel_args *a)
{
    size_t total = tk_kernel_numel(a);
    if (!a->training || a->node->fattr[0] == 0.0) {
        memcpy(a->y, a->x[0], total * sizeof(float));
        return;
    }
    for (size_t i = 0; i < total; i++)
        a->y[i] = a->x[0][i] * keep_scale(a, i);
}

static void backward(const tk_kernel_args *a)
{
    size_t total = tk_kernel_numel(a);
    bool identity = a->node->fattr[0] == 0.0;
    for (size_t i = 0; i < total; i++) {
        float g = identity ? a->dy[i] : a->dy[i] * keep_scale(a, i);
        a->dx[0][i] = a->dx_accumulate[0] ? a->dx[0][i] + g : g;
    }
}

const tk_op_def tk_op_dropout = {
    .name = "dropout",
    .min_inputs = 1,
    .max_inputs = 1,
    .flags = TK_OP_RANDOM,
    .infer = infer,
    .forward = forward,
    .backward = backward,
};
