/* tanh.c - y = tanh(x) (nn.Tanh). The backward needs only the output: dy * (1 - y^2). */
#include "tk_int.h"
#include "common.h"

#include <math.h>

static void forward(const tk_kernel_args *a)
{
    size_t total = tk_kernel_numel(a);
    const float *x = a->x[0];
    for (size_t i = 0; i < total; i++)
        a->y[i] = tanhf(x[i]);
}

static void backward(const tk_kernel_args *a)
{
    float *dx = a->dx[0];
    if (!dx)
        return;
    size_t total = tk_kernel_numel(a);
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
    .infer = tk_infer_same_shape,
    .forward = forward,
    .backward = backward,
};
