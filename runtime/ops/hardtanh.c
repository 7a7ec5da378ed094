/* hardtanh.c - y = clamp(x, min_val, max_val) (nn.Hardtanh). The gradient passes only strictly
 * inside the range, as PyTorch's; the backward reads the input. */
#include "tk_int.h"
#include "common.h"

static tk_status infer(tk_graph *g, tk_node *n, tk_ctx *ctx)
{
    n->fattr[0] = tk_attr_float(n, "min_val", -1.0);
    n->fattr[1] = tk_attr_float(n, "max_val", 1.0);
    if (!(n->fattr[0] <= n->fattr[1]))
        return tk_node_fail(ctx, n, "min_val (%g) must not exceed max_val (%g)", n->fattr[0],
                            n->fattr[1]);
    return tk_infer_same_shape(g, n, ctx);
}

static void forward(const tk_kernel_args *a)
{
    size_t total = tk_kernel_numel(a);
    const float lo = (float)a->node->fattr[0], hi = (float)a->node->fattr[1];
    const float *x = a->x[0];
    for (size_t i = 0; i < total; i++)
        a->y[i] = x[i] < lo ? lo : x[i] > hi ? hi : x[i];
}

static void backward(const tk_kernel_args *a)
{
    float *dx = a->dx[0];
    if (!dx)
        return;
    size_t total = tk_kernel_numel(a);
    const float lo = (float)a->node->fattr[0], hi = (float)a->node->fattr[1];
    const float *x = a->x[0], *dy = a->dy;
    for (size_t i = 0; i < total; i++) {
        float g = x[i] > lo && x[i] < hi ? dy[i] : 0.0f;
        dx[i] = a->dx_accumulate[0] ? dx[i] + g : g;
    }
}

const tk_op_def tk_op_hardtanh = {
    .name = "hardtanh",
    .min_inputs = 1,
    .max_inputs = 1,
    .flags = TK_OP_BWD_NEEDS_INPUT,
    .infer = infer,
    .forward = forward,
    .backward = backward,
};
