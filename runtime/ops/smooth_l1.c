/* smooth_l1.c - smooth L1 loss (nn.SmoothL1Loss): per value d = prediction - target,
 * 0.5 d^2 / beta where |d| < beta, else |d| - 0.5 beta; mean or sum. beta = 0 is the L1 loss
 * (the quadratic branch is then never taken, so nothing divides by zero). */
#include "tk_int.h"
#include "common.h"

#include <math.h>

static tk_status infer(tk_graph *g, tk_node *n, tk_ctx *ctx)
{
    tk_status status = tk_infer_value_loss(g, n, ctx, "prediction");
    if (status != TK_OK)
        return status;
    n->fattr[0] = tk_attr_float(n, "beta", 1.0);
    if (!(n->fattr[0] >= 0.0))
        return tk_node_fail(ctx, n, "beta must be >= 0, got %g", n->fattr[0]);
    return TK_OK;
}

static void forward(const tk_kernel_args *a)
{
    size_t total = tk_loss_numel(a);
    double beta = a->node->fattr[0], s = 0;
    for (size_t i = 0; i < total; i++) {
        double d = fabs((double)a->x[0][i] - a->x[1][i]);
        s += d < beta ? 0.5 * d * d / beta : d - 0.5 * beta;
    }
    a->y[0] = (float)(s / tk_loss_divisor(a));
}

/* PyTorch's branch order, kept so that ties agree: with beta = 0 a zero difference takes the
 * first branch (-1), unlike l1's sign(0) = 0. */
static inline float grad(float p, float t, float beta, float scale)
{
    float d = p - t;
    if (d <= -beta)
        return -scale;
    if (d >= beta)
        return scale;
    return d / beta * scale;
}

static void backward(const tk_kernel_args *a)
{
    float *dx = a->dx[0];
    if (!dx)
        return;
    size_t total = tk_loss_numel(a);
    float beta = (float)a->node->fattr[0], scale = (float)(a->loss_scale / tk_loss_divisor(a));
    const float *p = a->x[0], *t = a->x[1];
    if (a->dx_accumulate[0]) {
        for (size_t i = 0; i < total; i++)
            dx[i] += grad(p[i], t[i], beta, scale);
    } else {
        for (size_t i = 0; i < total; i++)
            dx[i] = grad(p[i], t[i], beta, scale);
    }
}

const tk_op_def tk_op_smooth_l1 = {
    .name = "smooth_l1",
    .min_inputs = 2,
    .max_inputs = 2,
    .flags = TK_OP_LOSS | TK_OP_BWD_NEEDS_INPUT | TK_OP_NOT_DIFF_INPUT1,
    .infer = infer,
    .forward = forward,
    .backward = backward,
};
