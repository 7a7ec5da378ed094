/* l1.c - mean absolute error (nn.L1Loss, mean or sum) between a prediction and a target
 * with the same number of values per sample. The gradient at prediction == target is 0
 * (sign(0), as PyTorch). */
#include "tk_int.h"
#include "common.h"

#include <math.h>

static tk_status infer(tk_graph *g, tk_node *n, tk_ctx *ctx)
{
    return tk_infer_value_loss(g, n, ctx, "prediction");
}

static void forward(const tk_kernel_args *a)
{
    size_t total = tk_loss_numel(a);
    double s = 0;
    for (size_t i = 0; i < total; i++)
        s += fabs((double)a->x[0][i] - a->x[1][i]);
    a->y[0] = (float)(s / tk_loss_divisor(a));
}

static inline float grad(float p, float t, float scale)
{
    return p > t ? scale : p < t ? -scale : 0.0f;
}

static void backward(const tk_kernel_args *a)
{
    float *dx = a->dx[0];
    if (!dx)
        return;
    size_t total = tk_loss_numel(a);
    float scale = (float)(a->loss_scale / tk_loss_divisor(a));
    const float *p = a->x[0], *t = a->x[1];
    if (a->dx_accumulate[0]) {
        for (size_t i = 0; i < total; i++)
            dx[i] += grad(p[i], t[i], scale);
    } else {
        for (size_t i = 0; i < total; i++)
            dx[i] = grad(p[i], t[i], scale);
    }
}

const tk_op_def tk_op_l1 = {
    .name = "l1",
    .min_inputs = 2,
    .max_inputs = 2,
    .flags = TK_OP_LOSS | TK_OP_BWD_NEEDS_INPUT | TK_OP_NOT_DIFF_INPUT1,
    .infer = infer,
    .forward = forward,
    .backward = backward,
};
