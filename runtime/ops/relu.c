/* relu.c - y = max(x, 0). The fusion pass folds it into a preceding linear when it can. */
#include "tk_int.h"
#include "common.h"

static void forward(const tk_kernel_args *a)
{
    size_t total = tk_kernel_numel(a);
    const float *x = a->x[0];
    for (size_t i = 0; i < total; i++)
        a->y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

static void backward(const tk_kernel_args *a)
{
    size_t total = tk_kernel_numel(a);
    float *restrict dx = a->dx[0];
    const float *restrict y = a->y, *restrict dy = a->dy;
    /* Loading dy unconditionally lets the select vectorise (a conditional load does not). */
    if (a->dx_accumulate[0]) {
        for (size_t i = 0; i < total; i++) {
            float g = dy[i];
            dx[i] += y[i] > 0.0f ? g : 0.0f;
        }
    } else {
        for (size_t i = 0; i < total; i++) {
            float g = dy[i];
            dx[i] = y[i] > 0.0f ? g : 0.0f;
        }
    }
}

const tk_op_def tk_op_relu = {
    .name = "relu",
    .min_inputs = 1,
    .max_inputs = 1,
    .flags = TK_OP_BWD_NEEDS_OUTPUT,
    .infer = tk_infer_same_shape,
    .forward = forward,
    .backward = backward,
};
