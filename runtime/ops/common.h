/* common.h - helpers shared by several ops under ops/: the parts of shape rules and kernel
 * set-up that many op files used to write out alike. Only op files include it; the op
 * interface itself is in tk_int.h. Not here: inner loops (each op keeps its own so the
 * compiler sees them whole) and anything only one op needs. */
#ifndef TK_OPS_COMMON_H
#define TK_OPS_COMMON_H

#include "tk_int.h"

/* ---------------------------------------------------------------- elementwise ops */

/* The shape rule of every op whose output has its input's shape (the activations, dropout):
 * usable directly as an op's infer, or as the last step of one that also reads attributes. */
tk_status tk_infer_same_shape(tk_graph *g, tk_node *n, tk_ctx *ctx);

/* The values of the node's output in this call (a->n rows, not the planned batch): the loop
 * bound of the elementwise kernels. Inline, as it is read once per kernel call. */
static inline size_t tk_kernel_numel(const tk_kernel_args *a)
{
    return (size_t)a->n * (size_t)tk_sample_numel(&a->node->shape);
}

/* ---------------------------------------------------------------- losses */

/* "reduction": "mean" (the default) or "sum"; *sum becomes 1 for "sum". Every loss takes it. */
tk_status tk_attr_reduction(tk_node *n, tk_ctx *ctx, int64_t *sum);

/* The iattr slots tk_infer_value_loss fills; an op's own slots start at TK_LOSS_SLOTS. */
enum { TK_LOSS_SUM, TK_LOSS_VALUES, TK_LOSS_SLOTS };

/* The shape rule the value-by-value losses (mse, l1, smooth_l1, huber, bce_with_logits)
 * share: a prediction (`what` names it in the error) and a target with the same batch and
 * values per sample, and the reduction. Fills TK_LOSS_SUM and TK_LOSS_VALUES; the output is
 * a scalar. Ops with more attributes check them after it. */
tk_status tk_infer_value_loss(tk_graph *g, tk_node *n, tk_ctx *ctx, const char *what);

/* The prediction's values in this call: the loop bound of a value loss's kernels. */
static inline size_t tk_loss_numel(const tk_kernel_args *a)
{
    return (size_t)a->n * (size_t)a->node->iattr[TK_LOSS_VALUES];
}

/* What a value loss's sum is divided by: 1 for "sum", the values in this call for "mean". */
static inline double tk_loss_divisor(const tk_kernel_args *a)
{
    return a->node->iattr[TK_LOSS_SUM] ? 1.0
                                       : (double)a->n * (double)a->node->iattr[TK_LOSS_VALUES];
}

/* The iattr slots tk_infer_class_loss fills; an op's own slots start at TK_CLASS_SLOTS. */
enum { TK_CLASS_COUNT, TK_CLASS_IGNORE, TK_CLASS_SLOTS };

/* The input checks the class losses (cross_entropy, nll) share: scores (batch, classes)
 * (`what` names them in the errors) and one class id per sample. Fills TK_CLASS_COUNT and
 * TK_CLASS_IGNORE (ignore_index, default -100 as in PyTorch). */
tk_status tk_infer_class_loss(tk_graph *g, tk_node *n, tk_ctx *ctx, const char *what);

#endif
