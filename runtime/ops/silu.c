/* silu.c - y = x * sigmoid(x) (nn.SiLU, "swish"). The backward recomputes the sigmoid from
 * the input rather than keeping it. */
#include "tk_int.h"
#include "common.h"

#include <math.h>

/* exp(-x) overflowing to inf for very negative x gives the right limits (y = -0, dx = 0). */
static void forward(const tk_kernel_args *a)
{
    size_t total = tk_kernel_numel(a);
    const float *x = a->x[0];
    for (size_t i = 0; i < total; i++)
        a->y[i] = x[i] / (1.0f + expf(-x[i]));
}

static inline float grad(float x, float dy)
{
    float s = 1.0f / (1.0f + expf(-x));
    return dy * s * (1.0f + x * (1.0f - s));
}

static void backward(const tk_kernel_args *a)
{
    float *dx = a->dx[0];
    if (!dx)
        return;
    size_t total = tk_kernel_numel(a);
    const float *x = a->x[0], *dy = a->dy;
    if (a->dx_accumulate[0]) {
        for (size_t i = 0; i < total; i++)
            dx[i] += grad(x[i], dy[i]);
    } else {
        for (size_t i = 0; i < total; i++)
            dx[i] = grad(x[i], dy[i]);
    }
}

const tk_op_def tk_op_silu = {
    .name = "silu",
    .min_inputs = 1,
    .max_inputs = 1,
    .flags = TK_OP_BWD_NEEDS_INPUT,
    .infer = tk_infer_same_shape,
    .forward = forward,
    .backward = backward,
};
