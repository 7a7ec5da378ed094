/* log_softmax.c - y = x - log(sum(exp(x))) along one dimension (nn.LogSoftmax(dim); dim 0
 * is the batch and may not be used). Stable: the maximum is subtracted first, so no exp can
 * overflow. The backward needs only the output: dx = dy - exp(y) * sum(dy). */
#include "tk_int.h"
#include "common.h"

#include <math.h>

static void forward(const tk_kernel_args *a)
{
    size_t len, inner, outer = tk_dim_lanes(a, &len, &inner);
    for (size_t o = 0; o < outer; o++) {
        for (size_t k = 0; k < inner; k++) {
            const float *x = a->x[0] + o * len * inner + k;
            float *y = a->y + o * len * inner + k;
            float m = x[0];
            for (size_t j = 1; j < len; j++)
                m = x[j * inner] > m ? x[j * inner] : m;
            double sum = 0;
            for (size_t j = 0; j < len; j++)
                sum += exp((double)(x[j * inner] - m));
            float lse = (float)log(sum);
            for (size_t j = 0; j < len; j++)
                y[j * inner] = x[j * inner] - m - lse;
        }
    }
}

static void backward(const tk_kernel_args *a)
{
    if (!a->dx[0])
        return;
    size_t len, inner, outer = tk_dim_lanes(a, &len, &inner);
    bool acc = a->dx_accumulate[0];
    for (size_t o = 0; o < outer; o++) {
        for (size_t k = 0; k < inner; k++) {
            size_t base = o * len * inner + k;
            const float *y = a->y + base, *dy = a->dy + base;
            float *dx = a->dx[0] + base;
            double sum = 0;
            for (size_t j = 0; j < len; j++)
                sum += dy[j * inner];
            float s = (float)sum;
            if (acc) {
                for (size_t j = 0; j < len; j++)
                    dx[j * inner] += dy[j * inner] - expf(y[j * inner]) * s;
            } else {
                for (size_t j = 0; j < len; j++)
                    dx[j * inner] = dy[j * inner] - expf(y[j * inner]) * s;
            }
        }
    }
}

const tk_op_def tk_op_log_softmax = {
    .name = "log_softmax",
    .min_inputs = 1,
    .max_inputs = 1,
    .flags = TK_OP_BWD_NEEDS_OUTPUT,
    .infer = tk_infer_along_dim,
    .forward = forward,
    .backward = backward,
};
