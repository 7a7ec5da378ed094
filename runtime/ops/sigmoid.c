/* sigmoid.c - y = 1 / (1 + exp(-x)) (nn.Sigmoid). The backward needs only the output:
 * dy * y * (1 - y). */
#include "tk_int.h"
#include "common.h"

#include <math.h>

/* For very negative x, exp(-x) overflows to inf and y is exactly 0, as in PyTorch. */
static void forward(const tk_kernel_args *a)
{
    size_t total = tk_kernel_numel(a);
    const float *x = a->x[0];
    for (size_t i = 0; i < total; i++)
        a->y[i] = 1.0f / (1.0f + expf(-x[i]));
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
            dx[i] += dy[i] * (1.0f - y[i]) * y[i];
    } else {
        for (size_t i = 0; i < total; i++)
            dx[i] = dy[i] * (1.0f - y[i]) * y[i];
    }
}

const tk_op_def tk_op_sigmoid = {
    .name = "sigmoid",
    .min_inputs = 1,
    .max_inputs = 1,
    .flags = TK_OP_BWD_NEEDS_OUTPUT,
    .infer = tk_infer_same_shape,
    .forward = forward,
    .backward = backward,
};
