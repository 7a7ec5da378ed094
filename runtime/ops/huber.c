/* huber.c - Huber loss (nn.HuberLoss): per value d = prediction - target, 0.5 d^2 where
 * |d| <= delta, else delta * (|d| - 0.5 delta); mean or sum. It equals delta * smooth_l1
 * with beta = delta. */
#include "tk_int.h"
#include "common.h"

#include <math.h>

static tk_status infer(tk_graph *g, tk_node *n, tk_ctx *ctx)
{
    tk_status status = tk_infer_value_loss(g, n, ctx, "prediction");
    if (status != TK_OK)
        return status;
    n->fattr[0] = tk_attr_float(n, "delta", 1.0);
    if (!(n->fattr[0] > 0.0))
        return tk_node_fail(ctx, n, "delta must be positive, got %g", n->fattr[0]);
    return TK_OK;
}

static void forward(const tk_kernel_args *a)
{
    size_t total = tk_loss_numel(a);
    double delta = a->node->fattr[0], s = 0;
    for (size_t i = 0; i < total; i++) {
        double d = fabs((double)a->x[0][i] - a->x[1][i]);
        s += d <= delta ? 0.5 * d * d : delta * (d - 0.5 * delta);
    }
    a->y[0] = (float)(s / tk_loss_divisor(a));
}

/* The slope is d inside [-delta, delta] and clamps to +-delta outside. */
static inline float grad(float p, float t, float delta, float scale)
{
    float d = p - t;
    d = d > delta ? delta : d < -delta ? -delta : d;
    return d * scale;
}

static void backward(const tk_kernel_args *a)
{
    float *dx = a->dx[0];
    if (!dx)
        return;
    size_t total = tk_loss_numel(a);
    float delta = (float)a->node->fattr[0], scale = (float)(a->loss_scale / tk_loss_divisor(a));
    const float *p = a->x[0], *t = a->x[1];
    if (a->dx_accumulate[0]) {
        for (size_t i = 0; i < total; i++)
            dx[i] += grad(p[i], t[i], delta, scale);
    } else {
        for (size_t i = 0; i < total; i++)
            dx[i] = grad(p[i], t[i], delta, scale);
    }
}

const tk_op_def tk_op_huber = {
    .name = "huber",
    .min_inputs = 2,
    .max_inputs = 2,
    .flags = TK_OP_LOSS | TK_OP_BWD_NEEDS_INPUT | TK_OP_NOT_DIFF_INPUT1,
    .infer = infer,
    .forward = forward,
    .backward = backward,
};
