/* mse.c - mean squared error (nn.MSELoss, mean or sum) between a prediction and a target of
 * the same shape. */
#include "tk_int.h"
#include "common.h"

static tk_status infer(tk_graph *g, tk_node *n, tk_ctx *ctx)
{
    return tk_infer_value_loss(g, n, ctx, "prediction");
}

static void forward(const tk_kernel_args *a)
{
    size_t total = tk_loss_numel(a);
    double s = 0;
    for (size_t i = 0; i < total; i++) {
        double d = (double)a->x[0][i] - a->x[1][i];
        s += d * d;
    }
    a->y[0] = (float)(s / tk_loss_divisor(a));
}

static void backward(const tk_kernel_args *a)
{
    size_t total = tk_loss_numel(a);
    float scale = (float)(2.0 * a->loss_scale / tk_loss_divisor(a));
    for (size_t i = 0; i < total; i++) {
        float g = (a->x[0][i] - a->x[1][i]) * scale;
        a->dx[0][i] = a->dx_accumulate[0] ? a->dx[0][i] + g : g;
    }
}

const tk_op_def tk_op_mse = {
    .name = "mse",
    .min_inputs = 2,
    .max_inputs = 2,
    .flags = TK_OP_LOSS | TK_OP_BWD_NEEDS_INPUT | TK_OP_NOT_DIFF_INPUT1,
    .infer = infer,
    .forward = forward,
    .backward = backward,
};
