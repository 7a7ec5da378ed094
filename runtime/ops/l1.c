/* l1.c - mean absolute error (nn.L1Loss, mean or sum) between a prediction and a target
 * with the same number of values per sample. The gradient at prediction == target is 0
 * (sign(0), as PyTorch). */
#include "tk_int.h"

#include <math.h>
#include <string.h>

static tk_status infer(tk_graph *g, tk_node *n, tk_ctx *ctx)
{
    const tk_shape *x = &tk_graph_node(g, n->inputs[0])->shape;
    const tk_shape *t = &tk_graph_node(g, n->inputs[1])->shape;
    char s[96], u[96];
    if (tk_sample_numel(x) != tk_sample_numel(t) || x->d[0] != t->d[0])
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
    for (size_t i = 0; i < total; i++)
        s += fabs((double)a->x[0][i] - a->x[1][i]);
    a->y[0] = (float)(s / count(a));
}

static inline float grad(float p, float t, float scale)
{
    return p > t ? scale : p < t ? -scale : 0.0f;
}

static void backward(const tk_kernel_args *a)
{
    float *dx = a->dx[0];
    if (!dx)
        return;
    size_t total = (size_t)a->n * (size_t)a->node->iattr[1];
    float scale = (float)(a->loss_scale / count(a));
    const float *p = a->x[0], *t = a->x[1];
    if (a->dx_accumulate[0]) {
        for (size_t i = 0; i < total; i++)
            dx[i] += grad(p[i], t[i], scale);
    } else {
        for (size_t i = 0; i < total; i++)
            dx[i] = grad(p[i], t[i], scale);
    }
}

const tk_op_def tk_op_l1 = {
    .name = "l1",
    .min_inputs = 2,
    .max_inputs = 2,
    .flags = TK_OP_LOSS | TK_OP_BWD_NEEDS_INPUT | TK_OP_NOT_DIFF_INPUT1,
    .infer = infer,
    .forward = forward,
    .backward = backward,
};
