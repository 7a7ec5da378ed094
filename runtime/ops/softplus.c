/* softplus.c - y = log(1 + exp(beta * x)) / beta, and y = x where beta * x > threshold
 * (nn.Softplus, the same cut-over as PyTorch). Below the threshold it uses the overflow-free
 * form max(z, 0) + log1p(exp(-|z|)), so a large user threshold cannot produce inf. */
#include "tk_int.h"
#include "common.h"

#include <math.h>

enum { BETA, THRESHOLD };

static tk_status infer(tk_graph *g, tk_node *n, tk_ctx *ctx)
{
    n->fattr[BETA] = tk_attr_float(n, "beta", 1.0);
    n->fattr[THRESHOLD] = tk_attr_float(n, "threshold", 20.0);
    if (!(n->fattr[BETA] > 0.0))
        return tk_node_fail(ctx, n, "beta must be positive, got %g", n->fattr[BETA]);
    return tk_infer_same_shape(g, n, ctx);
}

static inline float softplus(float x, float beta, float threshold)
{
    float z = x * beta;
    if (z > threshold)
        return x;
    return (fmaxf(z, 0.0f) + log1pf(expf(-fabsf(z)))) / beta;
}

/* d/dx = sigmoid(beta * x), written with exp(-z) so it cannot become inf / inf. */
static inline float grad(float x, float dy, float beta, float threshold)
{
    float z = x * beta;
    return z > threshold ? dy : dy / (1.0f + expf(-z));
}

static void forward(const tk_kernel_args *a)
{
    size_t total = tk_kernel_numel(a);
    float beta = (float)a->node->fattr[BETA], threshold = (float)a->node->fattr[THRESHOLD];
    const float *x = a->x[0];
    for (size_t i = 0; i < total; i++)
        a->y[i] = softplus(x[i], beta, threshold);
}

static void backward(const tk_kernel_args *a)
{
    float *dx = a->dx[0];
    if (!dx)
        return;
    size_t total = tk_kernel_numel(a);
    float beta = (float)a->node->fattr[BETA], threshold = (float)a->node->fattr[THRESHOLD];
    const float *x = a->x[0], *dy = a->dy;
    if (a->dx_accumulate[0]) {
        for (size_t i = 0; i < total; i++)
            dx[i] += grad(x[i], dy[i], beta, threshold);
    } else {
        for (size_t i = 0; i < total; i++)
            dx[i] = grad(x[i], dy[i], beta, threshold);
    }
}

const tk_op_def tk_op_softplus = {
    .name = "softplus",
    .min_inputs = 1,
    .max_inputs = 1,
    .flags = TK_OP_BWD_NEEDS_INPUT,
    .infer = infer,
    .forward = forward,
    .backward = backward,
};
