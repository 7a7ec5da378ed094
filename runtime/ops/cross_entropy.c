/* cross_entropy.c - softmax + cross-entropy fused into one numerically stable loss op
 * (nn.CrossEntropyLoss: class weights, ignore_index, label_smoothing, mean or sum).
 * Input 0: logits (N, C); input 1: class ids (N) stored as floats. The backward recomputes
 * the softmax from the logits instead of keeping it. */
#include "tk_int.h"
#include "common.h"

#include <math.h>
#include <string.h>

enum { WEIGHT_ATTR = TK_CLASS_SLOTS, SUM };

static tk_status infer(tk_graph *g, tk_node *n, tk_ctx *ctx)
{
    tk_status status = tk_infer_class_loss(g, n, ctx, "logits");
    if (status != TK_OK)
        return status;
    int64_t classes = n->iattr[TK_CLASS_COUNT];
    int wi = tk_attr_float_list(n, "weight", ctx);
    if (wi == -2)
        return TK_ERR_RUNTIME;
    if (wi >= 0 && (n->attrs[wi].kind != TK_ATTR_FLOATS || n->attrs[wi].n != classes))
        return tk_node_fail(ctx, n, "weight needs %lld values (one per class), got %d",
                            (long long)classes, n->attrs[wi].n);
    n->iattr[WEIGHT_ATTR] = wi;
    status = tk_attr_reduction(n, ctx, &n->iattr[SUM]);
    if (status != TK_OK)
        return status;
    n->fattr[0] = tk_attr_float(n, "label_smoothing", 0.0);
    if (!(n->fattr[0] >= 0.0 && n->fattr[0] <= 1.0))
        return tk_node_fail(ctx, n, "label_smoothing must be in [0, 1], got %g", n->fattr[0]);
    n->shape = (tk_shape){0, {0}};
    return TK_OK;
}

static const double *weights(const tk_node *n)
{
    return n->iattr[WEIGHT_ATTR] >= 0 ? n->attrs[n->iattr[WEIGHT_ATTR]].floats : NULL;
}

/* The mean's denominator: the summed weight of the rows that count (PyTorch's rule). */
static double denominator(const tk_kernel_args *a)
{
    if (a->node->iattr[SUM])
        return 1.0;
    const double *w = weights(a->node);
    double d = 0;
    for (int i = 0; i < a->n; i++) {
        int c = tk_class_of(a, i);
        if (c >= 0)
            d += w ? w[c] : 1.0;
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

static double log_sum_exp(const float *z, int classes)
{
    float m = z[0];
    for (int c = 1; c < classes; c++)
        m = z[c] > m ? z[c] : m;
    double s = 0;
    for (int c = 0; c < classes; c++)
        s += exp((double)(z[c] - m));
    return (double)m + log(s);
}

static void forward(const tk_kernel_args *a)
{
    int classes = (int)a->node->iattr[TK_CLASS_COUNT];
    double eps = a->node->fattr[0];
    const double *w = weights(a->node);
    double total = 0;
    for (int i = 0; i < a->n; i++) {
        int y = tk_class_of(a, i);
        if (y < 0)
            continue;
        const float *z = a->x[0] + (size_t)i * classes;
        double lse = log_sum_exp(z, classes);
        double nll = (w ? w[y] : 1.0) * (lse - z[y]);
        double smooth = 0;
        if (eps > 0) {
            for (int c = 0; c < classes; c++)
                smooth += (w ? w[c] : 1.0) * (lse - z[c]);
            smooth /= classes;
        }
        total += (1.0 - eps) * nll + eps * smooth;
    }
    double d = divisor(a);
    a->y[0] = d > 0 ? (float)(total / d) : NAN;
}

static void backward(const tk_kernel_args *a)
{
    int classes = (int)a->node->iattr[TK_CLASS_COUNT];
    double eps = a->node->fattr[0];
    const double *w = weights(a->node);
    double wsum = classes;
    if (w) {
        wsum = 0;
        for (int c = 0; c < classes; c++)
            wsum += w[c];
    }
    double d = divisor(a);
    double scale = d > 0 ? a->loss_scale / d : 0.0;
    for (int i = 0; i < a->n; i++) {
        float *dz = a->dx[0] + (size_t)i * classes;
        const float *z = a->x[0] + (size_t)i * classes;
        int y = tk_class_of(a, i);
        if (y < 0) {
            if (!a->dx_accumulate[0])
                memset(dz, 0, sizeof(float) * (size_t)classes);
            continue;
        }
        double lse = log_sum_exp(z, classes);
        double wy = w ? w[y] : 1.0;
        for (int c = 0; c < classes; c++) {
            double p = exp((double)z[c] - lse);
            double g = (1.0 - eps) * wy * (p - (c == y)) +
                       eps * (p * wsum - (w ? w[c] : 1.0)) / classes;
            float v = (float)(g * scale);
            dz[c] = a->dx_accumulate[0] ? dz[c] + v : v;
        }
    }
}

const tk_op_def tk_op_cross_entropy = {
    .name = "cross_entropy",
    .min_inputs = 2,
    .max_inputs = 2,
    .flags = TK_OP_LOSS | TK_OP_CLASS_TARGET | TK_OP_BWD_NEEDS_INPUT | TK_OP_NOT_DIFF_INPUT1,
    .infer = infer,
    .forward = forward,
    .backward = backward,
    .loss_weight = loss_weight,
};
