/* bce_with_logits.c - binary cross-entropy on logits (nn.BCEWithLogitsLoss): per value
 * (1 - t) x + w (log1p(exp(-|x|)) + max(-x, 0)) with w = 1 + (pos_weight - 1) t, which never
 * overflows (the form PyTorch uses); mean or sum. Targets are floats in [0, 1] with the same
 * number of values per sample as the logits. pos_weight (optional) holds one value per output
 * (the last dimension) or a single value for all. */
#include "tk_int.h"
#include "common.h"

#include <math.h>

enum { PERIOD = TK_LOSS_SLOTS, PW_ATTR };

static tk_status infer(tk_graph *g, tk_node *n, tk_ctx *ctx)
{
    tk_status status = tk_infer_value_loss(g, n, ctx, "logits");
    if (status != TK_OK)
        return status;
    const tk_shape *x = &tk_graph_node(g, n->inputs[0])->shape;
    char s[96];
    int64_t outputs = x->ndim >= 2 ? x->d[x->ndim - 1] : 1;
    int pw = tk_attr_float_list(n, "pos_weight", ctx);
    if (pw == -2)
        return TK_ERR_RUNTIME;
    if (pw >= 0 && n->attrs[pw].kind != TK_ATTR_FLOATS)
        return tk_node_fail(ctx, n, "pos_weight must be a number or a list of numbers");
    if (pw >= 0 && n->attrs[pw].n != 1 && n->attrs[pw].n != outputs)
        return tk_node_fail(ctx, n, "pos_weight needs 1 or %lld values (one per output) for "
                            "logits of shape %s, got %d", (long long)outputs,
                            tk_shape_str(x, s, sizeof s), n->attrs[pw].n);
    n->iattr[PW_ATTR] = pw;
    /* pos_weight repeats every PERIOD values; without one (or with one value) the whole
     * sample is a single period with a constant weight. */
    n->iattr[PERIOD] = pw >= 0 && n->attrs[pw].n > 1 ? outputs : n->iattr[TK_LOSS_VALUES];
    return TK_OK;
}

/* The pos_weight values and their stride within a period (0: one value for all). */
static const double *pos_weight(const tk_node *n, size_t *stride)
{
    static const double one = 1.0;
    if (n->iattr[PW_ATTR] < 0) {
        *stride = 0;
        return &one;
    }
    const tk_attr *a = &n->attrs[n->iattr[PW_ATTR]];
    *stride = a->n > 1 ? 1 : 0;
    return a->floats;
}

static void forward(const tk_kernel_args *a)
{
    size_t period = (size_t)a->node->iattr[PERIOD], stride;
    size_t rows = tk_loss_numel(a) / period;
    const double *pw = pos_weight(a->node, &stride);
    double s = 0;
    for (size_t r = 0; r < rows; r++) {
        const float *x = a->x[0] + r * period, *t = a->x[1] + r * period;
        for (size_t j = 0; j < period; j++) {
            double xv = x[j], tv = t[j];
            double w = 1.0 + (pw[j * stride] - 1.0) * tv;
            s += (1.0 - tv) * xv + w * (log1p(exp(-fabs(xv))) + fmax(-xv, 0.0));
        }
    }
    a->y[0] = (float)(s / tk_loss_divisor(a));
}

/* d/dx = (1 + (pw - 1) t) sigmoid(x) - pw t. */
static inline float grad(float x, float t, double pw, double scale)
{
    double sig = 1.0 / (1.0 + exp(-(double)x));
    return (float)(((1.0 + (pw - 1.0) * t) * sig - pw * t) * scale);
}

static void backward(const tk_kernel_args *a)
{
    float *dx = a->dx[0];
    if (!dx)
        return;
    size_t period = (size_t)a->node->iattr[PERIOD], stride;
    size_t rows = tk_loss_numel(a) / period;
    const double *pw = pos_weight(a->node, &stride);
    double scale = a->loss_scale / tk_loss_divisor(a);
    for (size_t r = 0; r < rows; r++) {
        const float *x = a->x[0] + r * period, *t = a->x[1] + r * period;
        float *d = dx + r * period;
        if (a->dx_accumulate[0]) {
            for (size_t j = 0; j < period; j++)
                d[j] += grad(x[j], t[j], pw[j * stride], scale);
        } else {
            for (size_t j = 0; j < period; j++)
                d[j] = grad(x[j], t[j], pw[j * stride], scale);
        }
    }
}

const tk_op_def tk_op_bce_with_logits = {
    .name = "bce_with_logits",
    .min_inputs = 2,
    .max_inputs = 2,
    .flags = TK_OP_LOSS | TK_OP_BWD_NEEDS_INPUT | TK_OP_NOT_DIFF_INPUT1,
    .infer = infer,
    .forward = forward,
    .backward = backward,
};
