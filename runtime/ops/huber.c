/* huber.c - Huber loss (nn.HuberLoss): per value d = prediction - target, 0.5 d^2 where
 * |d| <= delta, else delta * (|d| - 0.5 delta); mean or sum. It equals delta * smooth_l1
 * with beta = delta. */
#include "tk_int.h"

#include <math.h>
#include <string.h>

enum { SUM, VALUES };

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
    n->fattr[0] = tk_attr_float(n, "delta", 1.0);
    if (!(n->fattr[0] > 0.0))
        return tk_node_fail(ctx, n, "delta must be positive, got %g", n->fattr[0]);
    n->iattr[SUM] = strcmp(red, "sum") == 0;
    n->iattr[VALUES] = tk_sample_numel(x);
    n->shape = (tk_shape){0, {0}};
    return TK_OK;
}

static double count(const tk_kernel_args *a)
{
    return a->node->iattr[SUM] ? 1.0 : (double)a->n * (double)a->node->iattr[VALUES];
}

static void forward(const tk_kernel_args *a)
{
    size_t total = (size_t)a->n * (size_t)a->node->iattr[VALUES];
    double delta = a->node->fattr[0], s = 0;
    for (size_t i = 0; i < total; i++) {
        double d = fabs((double)a->x[0][i] - a->x[1][i]);
        s += d <= delta ? 0.5 * d * d : delta * (d - 0.5 * delta);
    }
    a->y[0] = (float)(s / count(a));
}

/* The slope is d inside [-delta, delta] and clamps to +-delta outside. */
static inline float grad(float p, float t, float delta, float scale)
{
    float d = p - t;
    d = d > delta ? delta : d < -delta ? -delta : d;
    return d * scale;
}

static void backward(const tk_kernel_args *a)
{
    float *dx = a->dx[0];
    if (!dx)
        return;
    size_t total = (size_t)a->n * (size_t)a->node->iattr[VALUES];
    float delta = (float)a->node->fattr[0], scale = (float)(a->loss_scale / count(a));
    const float *p = a->x[0], *t = a->x[1];
    if (a->dx_accumulate[0]) {
        for (size_t i = 0; i < total; i++)
            dx[i] += grad(p[i], t[i], delta, scale);
    } else {
        for (size_t i = 0; i < total; i++)
            dx[i] = grad(p[i], t[i], delta, scale);
    }
}

const tk_op_def tk_op_huber = {
    .name = "huber",
    .min_inputs = 2,
    .max_inputs = 2,
    .flags = TK_OP_LOSS | TK_OP_BWD_NEEDS_INPUT | TK_OP_NOT_DIFF_INPUT1,
    .infer = infer,
    .forward = forward,
    .backward = backward,
};
