/* softmax.c - y = exp(x) / sum(exp(x)) along one dimension (nn.Softmax(dim); dim 0 is the
 * batch and may not be used). Stable: the maximum is subtracted first. The backward needs
 * only the output: dx = y * (dy - sum(dy * y)). For cross-entropy training use the
 * cross_entropy loss on logits, which fuses this with the log. */
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
            for (size_t j = 0; j < len; j++) {
                y[j * inner] = expf(x[j * inner] - m);
                sum += y[j * inner];
            }
            float r = (float)(1.0 / sum);
            for (size_t j = 0; j < len; j++)
                y[j * inner] *= r;
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
            double dot = 0;
            for (size_t j = 0; j < len; j++)
                dot += (double)dy[j * inner] * y[j * inner];
            float d = (float)dot;
            if (acc) {
                for (size_t j = 0; j < len; j++)
                    dx[j * inner] += y[j * inner] * (dy[j * inner] - d);
            } else {
                for (size_t j = 0; j < len; j++)
                    dx[j * inner] = y[j * inner] * (dy[j * inner] - d);
            }
        }
    }
}

const tk_op_def tk_op_softmax = {
    .name = "softmax",
    .min_inputs = 1,
    .max_inputs = 1,
    .flags = TK_OP_BWD_NEEDS_OUTPUT,
    .infer = tk_infer_along_dim,
    .forward = forward,
    .backward = backward,
};
