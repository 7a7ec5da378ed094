/* dropout.c - nn.Dropout: in training, zero each element with probability p and scale the
 * rest by 1/(1-p); in eval, identity. The mask is never stored: backward recomputes it from
 * the counter-based RNG keyed by (seed, node, step, element). */
#include "tk_int.h"
#include "common.h"

#include <string.h>

static tk_status infer(tk_graph *g, tk_node *n, tk_ctx *ctx)
{
    tk_status status = tk_attr_dropout_p(n, ctx);
    if (status != TK_OK)
        return status;
    return tk_infer_same_shape(g, n, ctx);
}

static void forward(const tk_kernel_args *a)
{
    size_t total = tk_kernel_numel(a), row = (size_t)tk_sample_numel(&a->node->shape);
    if (!a->training || a->node->fattr[0] == 0.0) {
        memcpy(a->y, a->x[0], total * sizeof(float));
        return;
    }
    for (size_t i = 0; i < total; i++)
        a->y[i] = a->x[0][i] * tk_dropout_scale(a, i, row);
}

static void backward(const tk_kernel_args *a)
{
    size_t total = tk_kernel_numel(a), row = (size_t)tk_sample_numel(&a->node->shape);
    bool identity = a->node->fattr[0] == 0.0;
    for (size_t i = 0; i < total; i++) {
        float g = identity ? a->dy[i] : a->dy[i] * tk_dropout_scale(a, i, row);
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
