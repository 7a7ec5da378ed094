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

#endif
