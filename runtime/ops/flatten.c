/* flatten.c - merges dimensions start_dim..end_dim (nn.Flatten; dim 0 is the batch). The
 * data is already contiguous, so forward and backward are copies (common.c's, shared with
 * reshape). */
#include "tk_int.h"
#include "common.h"

static tk_status infer(tk_graph *g, tk_node *n, tk_ctx *ctx)
{
    const tk_shape *in = &tk_graph_node(g, n->inputs[0])->shape;
    int64_t start = tk_attr_int(n, "start_dim", 1), end = tk_attr_int(n, "end_dim", -1);
    if (start < 0)
        start += in->ndim;
    if (end < 0)
        end += in->ndim;
    if (start < 1 || end >= in->ndim || start > end) {
        char s[96];
        return tk_node_fail(ctx, n, "start_dim/end_dim do not fit an input of shape %s",
                            tk_shape_str(in, s, sizeof s));
    }
    tk_shape out = {0, {0}};
    for (int i = 0; i < in->ndim; i++) {
        if (i > start && i <= end)
            out.d[out.ndim - 1] *= in->d[i];
        else
            out.d[out.ndim++] = in->d[i];
    }
    n->shape = out;
    return TK_OK;
}

const tk_op_def tk_op_flatten = {
    .name = "flatten",
    .min_inputs = 1,
    .max_inputs = 1,
    .flags = 0,
    .infer = infer,
    .forward = tk_copy_forward,
    .backward = tk_copy_backward,
};
