/* tanh.c - y = tanh(x) (nn.Tanh). The backward needs only the output: dy * (1 - y^2). */
#include "tk_int.h"

#include <math.h>

static tk_status infer(tk_graph *g, tk_node *n, tk_ctx *ctx)
{
    (void)ctx;
    n->shape = tk_graph_node(g, n->inputs[0])->shape;
    return TK_OK;
}

static size_t count(const tk_kernel_args *a)
{
    return (size_t)a->n * (size_t)tk_sample_numel(&a->node->shape);
}

static void forward(const tk_kernel_args *a)
{
    size_t total = count(a);
    const float *x = a->x[0];
    for (size_t i = 0; i < total; i++)
        a->y[i] = tanhf(x[i]);
}

static void backward(const tk_kernel_args *a)
{
    float *dx = a->dx[0];
    if (!dx)
        return;
    size_t total = count(a);
    const float *y = a->y, *dy = a->dy;
    if (a->dx_accumulate[0]) {
        for (size_t i = 0; i < total; i++)
            dx[i] += dy[i] * (1.0f - y[i] * y[i]);
    } else {
        for (size_t i = 0; i < total; i++)
            dx[i] = dy[i] * (1.0f - y[i] * y[i]);
    }
}

const tk_op_def tk_op_tanh = {
    .name = "tanh",
    .min_inputs = 1,
    .max_inputs = 1,
    .flags = TK_OP_BWD_NEEDS_OUTPUT,
    .infer = infer,
    .forward = forward,
    .backward = backward,
};
