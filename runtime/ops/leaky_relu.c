/* leaky_relu.c - y = x for x > 0, negative_slope * x otherwise (nn.LeakyReLU). The backward
 * reads the input, not the output, because a negative slope would make y's sign ambiguous. */
#include "tk_int.h"
#include "common.h"

static tk_status infer(tk_graph *g, tk_node *n, tk_ctx *ctx)
{
    n->fattr[0] = tk_attr_float(n, "negative_slope", 0.01);
    return tk_infer_same_shape(g, n, ctx);
}

static void forward(const tk_kernel_args *a)
{
    size_t total = tk_kernel_numel(a);
    float slope = (float)a->node->fattr[0];
    const float *x = a->x[0];
    for (size_t i = 0; i < total; i++)
        a->y[i] = x[i] > 0.0f ? x[i] : x[i] * slope;
}

/* At x == 0 the slope side is taken, as PyTorch does. */
static inline float grad(float x, float dy, float slope)
{
    return x > 0.0f ? dy : dy * slope;
}

static void backward(const tk_kernel_args *a)
{
    float *dx = a->dx[0];
    if (!dx)
        return;
    size_t total = tk_kernel_numel(a);
    float slope = (float)a->node->fattr[0];
    const float *x = a->x[0], *dy = a->dy;
    if (a->dx_accumulate[0]) {
        for (size_t i = 0; i < total; i++)
            dx[i] += grad(x[i], dy[i], slope);
    } else {
        for (size_t i = 0; i < total; i++)
            dx[i] = grad(x[i], dy[i], slope);
    }
}

const tk_op_def tk_op_leaky_relu = {
    .name = "leaky_relu",
    .min_inputs = 1,
    .max_inputs = 1,
    .flags = TK_OP_BWD_NEEDS_INPUT,
    .infer = infer,
    .forward = forward,
    .backward = backward,
};
