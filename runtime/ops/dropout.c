/* dropout.c - nn.Dropout: in training, zero each element with probability p and scale the
 * rest by 1/(1-p); in eval, identity. The mask is never stored: backward recomputes it from
 * the counter-based RNG keyed by (seed, node, step, element). */
#include "tk_int.h"
#include "common.h"

#include <string.h>

static tk_status infer(tk_graph *g, tk_node *n, tk_ctx *ctx)
{
    tk_status status = tk_attr_dropout_p(n, ctx);
    if (status != TK_OK)
        return status;
    return tk_infer_same_shape(g, n, ctx);
}

/* Each element's mask is its own counter's, so ranges of elements run on the pool's threads
 * with the same bits. */
enum { GRAIN = 4096 };

/* The factors are drawn SCALES at a time, four per generator block. */
enum { SCALES = 256 };

static void forward_range(int64_t lo, int64_t hi, void *ud)
{
    const tk_kernel_args *a = ud;
    size_t row = (size_t)tk_sample_numel(&a->node->shape);
    float k[SCALES];
    for (int64_t i = lo; i < hi; i += SCALES) {
        size_t n = hi - i < SCALES ? (size_t)(hi - i) : SCALES;
        tk_dropout_scales(a, (size_t)i, n, row, k);
        for (size_t e = 0; e < n; e++)
            a->y[i + e] = a->x[0][i + e] * k[e];
    }
}

static void forward(const tk_kernel_args *a)
{
    size_t total = tk_kernel_numel(a);
    if (!a->training || a->node->fattr[0] == 0.0) {
        memcpy(a->y, a->x[0], total * sizeof(float));
        return;
    }
    tk_parallel_range((int64_t)total, GRAIN, forward_range, (void *)a);
}

static void backward_range(int64_t lo, int64_t hi, void *ud)
{
    const tk_kernel_args *a = ud;
    size_t row = (size_t)tk_sample_numel(&a->node->shape);
    bool identity = a->node->fattr[0] == 0.0;
    float k[SCALES];
    for (int64_t i = lo; i < hi; i += SCALES) {
        size_t n = hi - i < SCALES ? (size_t)(hi - i) : SCALES;
        if (!identity)
            tk_dropout_scales(a, (size_t)i, n, row, k);
        for (size_t e = 0; e < n; e++) {
            float g = identity ? a->dy[i + e] : a->dy[i + e] * k[e];
            a->dx[0][i + e] = a->dx_accumulate[0] ? a->dx[0][i + e] + g : g;
        }
    }
}

static void backward(const tk_kernel_args *a)
{
    tk_parallel_range((int64_t)tk_kernel_numel(a), GRAIN, backward_range, (void *)a);
}

const tk_op_def tk_op_dropout = {
    .name = "dropout",
    .min_inputs = 1,
    .max_inputs = 1,
    .flags = TK_OP_RANDOM,
    .infer = infer,
    .forward = forward,
    .backward = backward,
};
