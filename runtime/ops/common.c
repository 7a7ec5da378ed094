/* common.c - the out-of-line helpers of common.h, shared by several ops so that each op file
 * keeps only what is its own. Not an op: nothing here is registered. */
#include "common.h"

#include <string.h>

tk_status tk_infer_same_shape(tk_graph *g, tk_node *n, tk_ctx *ctx)
{
    (void)ctx;
    n->shape = tk_graph_node(g, n->inputs[0])->shape;
    return TK_OK;
}

tk_status tk_attr_reduction(tk_node *n, tk_ctx *ctx, int64_t *sum)
{
    const char *red = tk_attr_str(n, "reduction", "mean");
    if (strcmp(red, "mean") != 0 && strcmp(red, "sum") != 0)
        return tk_node_fail(ctx, n, "reduction must be 'mean' or 'sum', got '%s'", red);
    *sum = strcmp(red, "sum") == 0;
    return TK_OK;
}

tk_status tk_infer_value_loss(tk_graph *g, tk_node *n, tk_ctx *ctx, const char *what)
{
    const tk_shape *x = &tk_graph_node(g, n->inputs[0])->shape;
    const tk_shape *t = &tk_graph_node(g, n->inputs[1])->shape;
    char s[96], u[96];
    if (tk_sample_numel(x) != tk_sample_numel(t) || x->d[0] != t->d[0])
        return tk_node_fail(ctx, n, "%s shape %s does not match target shape %s", what,
                            tk_shape_str(x, s, sizeof s), tk_shape_str(t, u, sizeof u));
    tk_status status = tk_attr_reduction(n, ctx, &n->iattr[TK_LOSS_SUM]);
    if (status != TK_OK)
        return status;
    n->iattr[TK_LOSS_VALUES] = tk_sample_numel(x);
    n->shape = (tk_shape){0, {0}};
    return TK_OK;
}

tk_status tk_infer_class_loss(tk_graph *g, tk_node *n, tk_ctx *ctx, const char *what)
{
    const tk_shape *x = &tk_graph_node(g, n->inputs[0])->shape;
    const tk_shape *t = &tk_graph_node(g, n->inputs[1])->shape;
    char s[96], u[96];
    if (x->ndim != 2)
        return tk_node_fail(ctx, n, "expects %s of shape (batch, classes), got %s", what,
                            tk_shape_str(x, s, sizeof s));
    if (t->ndim != 1)
        return tk_node_fail(ctx, n, "expects one class id per sample, got targets of shape %s "
                            "for %s %s", tk_shape_str(t, u, sizeof u), what,
                            tk_shape_str(x, s, sizeof s));
    n->iattr[TK_CLASS_COUNT] = x->d[1];
    n->iattr[TK_CLASS_IGNORE] = tk_attr_int(n, "ignore_index", -100);
    return TK_OK;
}
