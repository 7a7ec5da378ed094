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

static void forward_range(int64_t lo, int64_t hi, void *ud)
{
    const tk_kernel_args *a = ud;
    size_t row = (size_t)tk_sample_numel(&a->node->shape);
    for (int64_t i = lo; i < hi; i++)
        a->y[i] = a->x[0][i] * tk_dropout_scale(a, (size_t)i, row);
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
    for (int64_t i = lo; i < hi; i++) {
        float g = identity ? a->dy[i] : a->dy[i] * tk_dropout_scale(a, (size_t)i, row);
        a->dx[0][i] = a->dx_accumulate[0] ? a->dx[0][i] + g : g;
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
