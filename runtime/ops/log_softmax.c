/* log_softmax.c - y = x - log(sum(exp(x))) along one dimension (nn.LogSoftmax(dim); dim 0
 * is the batch and may not be used). Stable: the maximum is subtracted first, so no exp can
 * overflow. The backward needs only the output: dx = dy - exp(y) * sum(dy). */
#include "tk_int.h"

#include <math.h>

enum { LEN, INNER };

static tk_status infer(tk_graph *g, tk_node *n, tk_ctx *ctx)
{
    const tk_shape *in = &tk_graph_node(g, n->inputs[0])->shape;
    int64_t dim = tk_attr_int(n, "dim", 1);
    char s[96];
    if (dim < 0)
        dim += in->ndim;
    if (dim < 1 || dim >= in->ndim)
        return tk_node_fail(ctx, n, "dim %lld does not fit an input of shape %s (dim 0 is "
                            "the batch)", (long long)tk_attr_int(n, "dim", 1),
                            tk_shape_str(in, s, sizeof s));
    n->shape = *in;
    n->iattr[LEN] = in->d[dim];
    n->iattr[INNER] = 1;
    for (int i = (int)dim + 1; i < in->ndim; i++)
        n->iattr[INNER] *= in->d[i];
    return TK_OK;
}

/* The data is outer x len x inner: each (outer, inner) pair is one log-softmax of len values
 * at stride inner. */
static size_t outer_of(const tk_kernel_args *a)
{
    return (size_t)a->n * (size_t)tk_sample_numel(&a->node->shape) /
           (size_t)(a->node->iattr[LEN] * a->node->iattr[INNER]);
}

static void forward(const tk_kernel_args *a)
{
    size_t len = (size_t)a->node->iattr[LEN], inner = (size_t)a->node->iattr[INNER];
    size_t outer = outer_of(a);
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
    size_t len = (size_t)a->node->iattr[LEN], inner = (size_t)a->node->iattr[INNER];
    size_t outer = outer_of(a);
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
    .infer = infer,
    .forward = forward,
    .backward = backward,
};
