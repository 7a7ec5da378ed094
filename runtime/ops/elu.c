/* elu.c - y = x for x > 0, alpha * (exp(x) - 1) otherwise (nn.ELU). The backward reads the
 * input: with a negative alpha the output's sign no longer tells the two sides apart. */
#include "tk_int.h"
#include "common.h"

#include <math.h>

static tk_status infer(tk_graph *g, tk_node *n, tk_ctx *ctx)
{
    n->fattr[0] = tk_attr_float(n, "alpha", 1.0);
    return tk_infer_same_shape(g, n, ctx);
}

static void forward(const tk_kernel_args *a)
{
    size_t total = tk_kernel_numel(a);
    float alpha = (float)a->node->fattr[0];
    const float *x = a->x[0];
    /* expm1 keeps the relative precision of small negative inputs. */
    for (size_t i = 0; i < total; i++)
        a->y[i] = x[i] > 0.0f ? x[i] : alpha * expm1f(x[i]);
}

static inline float grad(float x, float dy, float alpha)
{
    return x > 0.0f ? dy : dy * alpha * expf(x);
}

static void backward(const tk_kernel_args *a)
{
    float *dx = a->dx[0];
    if (!dx)
        return;
    size_t total = tk_kernel_numel(a);
    float alpha = (float)a->node->fattr[0];
    const float *x = a->x[0], *dy = a->dy;
    if (a->dx_accumulate[0]) {
        for (size_t i = 0; i < total; i++)
            dx[i] += grad(x[i], dy[i], alpha);
    } else {
        for (size_t i = 0; i < total; i++)
            dx[i] = grad(x[i], dy[i], alpha);
    }
}

const tk_op_def tk_op_elu = {
    .name = "elu",
    .min_inputs = 1,
    .max_inputs = 1,
    .flags = TK_OP_BWD_NEEDS_INPUT,
    .infer = infer,
    .forward = forward,
    .backward = backward,
};
