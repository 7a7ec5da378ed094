/* mse.c - mean squared error (nn.MSELoss, mean or sum) between a prediction and a target of
 * the same shape. */
#include "tk_int.h"

#include <string.h>

static tk_status infer(tk_graph *g, tk_node *n, tk_ctx *ctx)
{
    const tk_shape *x = &tk_graph_node(g, n->inputs[0])->shape;
    const tk_shape *t = &tk_graph_node(g, n->inputs[1])->shape;
    char s[96], u[96];
    if (tk_shape_numel(x) != tk_shape_numel(t) || x->d[0] != t->d[0])
        return tk_node_fail(ctx, n, "prediction shape %s does not match target shape %s",
                            tk_shape_str(x, s, sizeof s), tk_shape_str(t, u, sizeof u));
    const char *red = tk_attr_str(n, "reduction", "mean");
    if (strcmp(red, "mean") != 0 && strcmp(red, "sum") != 0)
        return tk_node_fail(ctx, n, "reduction must be 'mean' or 'sum', got '%s'", red);
    n->iattr[0] = strcmp(red, "sum") == 0;
    n->iattr[1] = tk_sample_numel(x);
    n->shape = (tk_shape){0, {0}};
    return TK_OK;
}

static double count(const tk_kernel_args *a)
{
    return a->node->iattr[0] ? 1.0 : (double)a->n * (double)a->node->iattr[1];
}

static void forward(const tk_kernel_args *a)
{
    size_t total = (size_t)a->n * (size_t)a->node->iattr[1];
    double s = 0;
    for (size_t i = 0; i < total; i++) {
        double d = (double)a->x[0][i] - a->x[1][i];
        s += d * d;
    }
    a->y[0] = (float)(s / count(a));
}

static void backward(const tk_kernel_args *a)
{
    size_t total = (size_t)a->n * (size_t)a->node->iattr[1];
    float scale = (float)(2.0 * a->loss_scale / count(a));
    for (size_t i = 0; i < total; i++) {
        float g = (a->x[0][i] - a->x[1][i]) * scale;
        a->dx[0][i] = a->dx_accumulate[0] ? a->dx[0][i] + g : g;
    }
}

const tk_op_def tk_op_mse = {
    .name = "mse",
    .min_inputs = 2,
    .max_inputs = 2,
    .flags = TK_OP_LOSS | TK_OP_BWD_NEEDS_INPUT | TK_OP_NOT_DIFF_INPUT1,
    .infer = infer,
    .forward = forward,
    .backward = backward,
};
