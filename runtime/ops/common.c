/* common.c - the out-of-line helpers of common.h, shared by several ops so that each op file
 * keeps only what is its own. Not an op: nothing here is registered. */
#include "common.h"

tk_status tk_infer_same_shape(tk_graph *g, tk_node *n, tk_ctx *ctx)
{
    (void)ctx;
    n->shape = tk_graph_node(g, n->inputs[0])->shape;
    return TK_OK;
}
