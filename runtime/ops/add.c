/* add.c - y = a + b for two inputs of the same shape (the `+` of nn.graph and the skip of
 * nn.residual). No broadcasting: a shape mismatch is a model bug worth reporting. The same
 * node may be both inputs (x + x); the plan then makes the second gradient write add. */
#include "tk_int.h"
#include "common.h"

#include <string.h>

static tk_status infer(tk_graph *g, tk_node *n, tk_ctx *ctx)
{
    const tk_shape *x = &tk_graph_node(g, n->inputs[0])->shape;
    const tk_shape *u = &tk_graph_node(g, n->inputs[1])->shape;
    char s[96], t[96];
    if (x->ndim != u->ndim || memcmp(x->d, u->d, sizeof(int64_t) * (size_t)x->ndim) != 0)
        return tk_node_fail(ctx, n, "cannot add shapes %s and %s (they must be equal)",
                            tk_shape_str(x, s, sizeof s), tk_shape_str(u, t, sizeof t));
    n->shape = *x;
    return TK_OK;
}

static void forward(const tk_kernel_args *a)
{
    size_t total = tk_kernel_numel(a);
    const float *x = a->x[0], *u = a->x[1];
    for (size_t i = 0; i < total; i++)
        a->y[i] = x[i] + u[i];
}

static void backward(const tk_kernel_args *a)
{
    size_t total = tk_kernel_numel(a);
    for (int k = 0; k < 2; k++)
        if (a->dx[k])
            tk_pass_grad(a->dx[k], a->dy, total, a->dx_accumulate[k]);
}

const tk_op_def tk_op_add = {
    .name = "add",
    .min_inputs = 2,
    .max_inputs = 2,
    .flags = 0,
    .infer = infer,
    .forward = forward,
    .backward = backward,
};
