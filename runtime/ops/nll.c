/* nll.c - negative log-likelihood (nn.NLLLoss): loss = -w[y] * x[y] per row, for log-
 * probabilities (N, C) (typically a log_softmax) and class ids (N) stored as floats. Class
 * weights, ignore_index, mean or sum; the mean divides by the summed weights of the rows
 * that count, as PyTorch does. For logits use cross_entropy instead. */
#include "tk_int.h"
#include "common.h"

#include <math.h>
#include <string.h>

enum { WEIGHT_ATTR = TK_CLASS_SLOTS, SUM };

static tk_status infer(tk_graph *g, tk_node *n, tk_ctx *ctx)
{
    tk_status status = tk_infer_class_loss(g, n, ctx, "log-probabilities");
    if (status != TK_OK)
        return status;
    int64_t classes = n->iattr[TK_CLASS_COUNT];
    int w = tk_attr_float_list(n, "weight", ctx);
    if (w == -2)
        return TK_ERR_RUNTIME;
    if (w >= 0 && n->attrs[w].kind != TK_ATTR_FLOATS)
        return tk_node_fail(ctx, n, "weight must be a list of %lld numbers (one per class)",
                            (long long)classes);
    if (w >= 0 && n->attrs[w].n != classes)
        return tk_node_fail(ctx, n, "weight needs %lld values (one per class), got %d",
                            (long long)classes, n->attrs[w].n);
    n->iattr[WEIGHT_ATTR] = w;
    status = tk_attr_reduction(n, ctx, &n->iattr[SUM]);
    if (status != TK_OK)
        return status;
    n->shape = (tk_shape){0, {0}};
    return TK_OK;
}

static double weight_of(const tk_node *n, int c)
{
    return n->iattr[WEIGHT_ATTR] >= 0 ? n->attrs[n->iattr[WEIGHT_ATTR]].floats[c] : 1.0;
}

/* The mean's denominator: the summed weight of the rows that count. */
static double denominator(const tk_kernel_args *a)
{
    if (a->node->iattr[SUM])
        return 1.0;
    double d = 0;
    for (int i = 0; i < a->n; i++) {
        int c = tk_class_of(a, i);
        if (c >= 0)
            d += weight_of(a->node, c);
    }
    return d;
}

/* What forward and backward divide by: a data-parallel shard's mean is over the whole
 * batch, whose denominator the trainer gives (a->divisor); else the rows' own. */
static double divisor(const tk_kernel_args *a)
{
    return a->divisor > 0 && !a->node->iattr[SUM] ? a->divisor : denominator(a);
}

/* A pass's mean loss weighs each batch by its denominator; with "sum" by its rows. */
static double loss_weight(const tk_kernel_args *a)
{
    return a->node->iattr[SUM] ? (double)a->n : denominator(a);
}

static void forward(const tk_kernel_args *a)
{
    int classes = (int)a->node->iattr[TK_CLASS_COUNT];
    double total = 0;
    for (int i = 0; i < a->n; i++) {
        int c = tk_class_of(a, i);
        if (c >= 0)
            total -= weight_of(a->node, c) * a->x[0][(size_t)i * classes + c];
    }
    double d = divisor(a);
    /* Every row ignored: 0 / 0, NaN as in PyTorch. */
    a->y[0] = d > 0 ? (float)(total / d) : NAN;
}

static void backward(const tk_kernel_args *a)
{
    float *dx = a->dx[0];
    if (!dx)
        return;
    int classes = (int)a->node->iattr[TK_CLASS_COUNT];
    double d = divisor(a);
    double scale = d > 0 ? a->loss_scale / d : 0.0;
    if (!a->dx_accumulate[0])
        memset(dx, 0, sizeof(float) * (size_t)a->n * (size_t)classes);
    for (int i = 0; i < a->n; i++) {
        int c = tk_class_of(a, i);
        if (c >= 0)
            dx[(size_t)i * classes + c] -= (float)(weight_of(a->node, c) * scale);
    }
}

const tk_op_def tk_op_nll = {
    .name = "nll",
    .min_inputs = 2,
    .max_inputs = 2,
    /* BWD_NEEDS_INPUT: the backward reads the class ids. */
    .flags = TK_OP_LOSS | TK_OP_CLASS_TARGET | TK_OP_BWD_NEEDS_INPUT | TK_OP_NOT_DIFF_INPUT1,
    .infer = infer,
    .forward = forward,
    .backward = backward,
    .loss_weight = loss_weight,
};
