/* gelu.c - y = x * Phi(x) (nn.GELU): the exact form with erf (approximate = "none") or the
 * tanh approximation (approximate = "tanh"), with PyTorch's constants. */
#include "tk_int.h"
#include "common.h"

#include <math.h>
#include <string.h>

#define SQRT1_2 0.70710678118654752440f       /* 1 / sqrt(2) */
#define INV_SQRT_2PI 0.39894228040143267794f  /* 1 / sqrt(2 pi) */
#define SQRT_2_PI 0.79788456080286535588f     /* sqrt(2 / pi) */
#define KAPPA 0.044715f

static tk_status infer(tk_graph *g, tk_node *n, tk_ctx *ctx)
{
    const char *mode = tk_attr_str(n, "approximate", "none");
    if (strcmp(mode, "none") != 0 && strcmp(mode, "tanh") != 0)
        return tk_node_fail(ctx, n, "approximate must be 'none' or 'tanh', got '%s'", mode);
    n->iattr[0] = strcmp(mode, "tanh") == 0;
    return tk_infer_same_shape(g, n, ctx);
}

static inline float gelu_erf(float x)
{
    return 0.5f * x * (1.0f + erff(x * SQRT1_2));
}

static inline float gelu_tanh(float x)
{
    return 0.5f * x * (1.0f + tanhf(SQRT_2_PI * (x + KAPPA * x * x * x)));
}

static inline float grad_erf(float x, float dy)
{
    float cdf = 0.5f * (1.0f + erff(x * SQRT1_2));
    float pdf = expf(-0.5f * x * x) * INV_SQRT_2PI;
    return dy * (cdf + x * pdf);
}

static inline float grad_tanh(float x, float dy)
{
    float t = tanhf(SQRT_2_PI * (x + KAPPA * x * x * x));
    float dt = (1.0f - t * t) * SQRT_2_PI * (1.0f + 3.0f * KAPPA * x * x);
    return dy * (0.5f * (1.0f + t) + 0.5f * x * dt);
}

static void forward(const tk_kernel_args *a)
{
    size_t total = tk_kernel_numel(a);
    const float *x = a->x[0];
    float *y = a->y;
    if (a->node->iattr[0]) {
        for (size_t i = 0; i < total; i++)
            y[i] = gelu_tanh(x[i]);
    } else {
        for (size_t i = 0; i < total; i++)
            y[i] = gelu_erf(x[i]);
    }
}

static void backward(const tk_kernel_args *a)
{
    float *dx = a->dx[0];
    if (!dx)
        return;
    size_t total = tk_kernel_numel(a);
    const float *x = a->x[0], *dy = a->dy;
    bool acc = a->dx_accumulate[0];
    if (a->node->iattr[0]) {
        if (acc)
            for (size_t i = 0; i < total; i++)
                dx[i] += grad_tanh(x[i], dy[i]);
        else
            for (size_t i = 0; i < total; i++)
                dx[i] = grad_tanh(x[i], dy[i]);
    } else {
        if (acc)
            for (size_t i = 0; i < total; i++)
                dx[i] += grad_erf(x[i], dy[i]);
        else
            for (size_t i = 0; i < total; i++)
                dx[i] = grad_erf(x[i], dy[i]);
    }
}

const tk_op_def tk_op_gelu = {
    .name = "gelu",
    .min_inputs = 1,
    .max_inputs = 1,
    .flags = TK_OP_BWD_NEEDS_INPUT,
    .infer = infer,
    .forward = forward,
    .backward = backward,
};
