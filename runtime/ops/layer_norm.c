/* layer_norm.c - nn.LayerNorm: each sample's trailing normalized_shape dims (default: the
 * last dim) normalised to zero mean and unit (biased) variance, then scaled and shifted by
 * weight and bias of shape normalized_shape when elementwise_affine. Mean and 1/std of each
 * normalised row stay in scratch for backward. Statistics are summed in double.
 * Not here: normalising dims other than trailing ones (that is a reshape first). */
#include "tk_int.h"

#include <math.h>
#include <string.h>

enum { WIDTH, ROWS, AFFINE };

static tk_status infer(tk_graph *g, tk_node *n, tk_ctx *ctx)
{
    const tk_shape *x = &tk_graph_node(g, n->inputs[0])->shape;
    char s[96];
    if (x->ndim < 2)
        return tk_node_fail(ctx, n, "needs an input with a feature dimension, got %s",
                            tk_shape_str(x, s, sizeof s));
    const tk_attr *a = tk_node_attr(n, "normalized_shape");
    tk_shape norm = {1, {x->d[x->ndim - 1]}};
    if (a && a->kind == TK_ATTR_INT) {
        norm.d[0] = a->i;
    } else if (a) {
        if (a->kind != TK_ATTR_INTS || a->n < 1 || a->n > x->ndim - 1)
            return tk_node_fail(ctx, n, "normalized_shape must be a list of 1 to %d integers "
                                "for an input of shape %s", x->ndim - 1,
                                tk_shape_str(x, s, sizeof s));
        norm.ndim = a->n;
        memcpy(norm.d, a->ints, sizeof(int64_t) * (size_t)a->n);
    }
    int lead = x->ndim - norm.ndim;
    if (lead < 1 || memcmp(norm.d, x->d + lead, sizeof(int64_t) * (size_t)norm.ndim) != 0) {
        char u[96];
        return tk_node_fail(ctx, n, "normalized_shape %s does not match the trailing "
                            "dimensions of the input of shape %s",
                            tk_shape_str(&norm, u, sizeof u), tk_shape_str(x, s, sizeof s));
    }
    double eps = tk_attr_float(n, "eps", 1e-5);
    if (!(eps > 0))
        return tk_node_fail(ctx, n, "eps must be positive, got %g", eps);
    bool affine = tk_attr_int(n, "elementwise_affine", 1) != 0;
    if (affine && (tk_node_param(g, n, "weight", norm, true, TK_INIT_ONES, 0) < 0 ||
                   tk_node_param(g, n, "bias", norm, true, TK_INIT_ZEROS, 0) < 0))
        return TK_ERR_INPUT;
    int64_t width = tk_shape_numel(&norm);
    n->shape = *x;
    n->iattr[WIDTH] = width;
    n->iattr[ROWS] = tk_sample_numel(x) / width;
    n->iattr[AFFINE] = affine;
    n->fattr[0] = eps;
    /* Mean and 1/std per row, then one row of dy * weight for backward. */
    n->scratch = 2 * (size_t)(x->d[0] * n->iattr[ROWS]) + (size_t)width;
    return TK_OK;
}

static void forward(const tk_kernel_args *a)
{
    const tk_node *n = a->node;
    size_t width = (size_t)n->iattr[WIDTH], rows = (size_t)a->n * (size_t)n->iattr[ROWS];
    const float *w = n->iattr[AFFINE] ? a->param[0] : NULL;
    const float *b = n->iattr[AFFINE] ? a->param[1] : NULL;
    float *mean = a->scratch, *rstd = a->scratch + rows;
    for (size_t r = 0; r < rows; r++) {
        const float *x = a->x[0] + r * width;
        float *y = a->y + r * width;
        double sum = 0, var = 0;
        for (size_t i = 0; i < width; i++)
            sum += x[i];
        double mu = sum / (double)width;
        for (size_t i = 0; i < width; i++)
            var += (x[i] - mu) * (x[i] - mu);
        mean[r] = (float)mu;
        rstd[r] = (float)(1.0 / sqrt(var / (double)width + n->fattr[0]));
        /* (x * rstd - rstd * mean) * weight + bias, PyTorch's order of operations. */
        float scale = rstd[r], shift = -rstd[r] * mean[r];
        if (w)
            for (size_t i = 0; i < width; i++)
                y[i] = (x[i] * scale + shift) * w[i] + b[i];
        else
            for (size_t i = 0; i < width; i++)
                y[i] = x[i] * scale + shift;
    }
}

static void backward(const tk_kernel_args *a)
{
    const tk_node *n = a->node;
    size_t width = (size_t)n->iattr[WIDTH], rows = (size_t)a->n * (size_t)n->iattr[ROWS];
    const float *w = n->iattr[AFFINE] ? a->param[0] : NULL;
    float *dw = n->iattr[AFFINE] ? a->dparam[0] : NULL;
    float *db = n->iattr[AFFINE] ? a->dparam[1] : NULL;
    const float *mean = a->scratch, *rstd = a->scratch + rows;
    float *g = a->scratch + 2 * (size_t)a->node->shape.d[0] * (size_t)n->iattr[ROWS];
    if (dw && tk_dparam_overwrite(a, 0))
        memset(dw, 0, sizeof(float) * width);
    if (db && tk_dparam_overwrite(a, 1))
        memset(db, 0, sizeof(float) * width);
    for (size_t r = 0; r < rows; r++) {
        const float *x = a->x[0] + r * width, *dy = a->dy + r * width;
        float m = mean[r], s = rstd[r];
        if (dw)
            for (size_t i = 0; i < width; i++)
                dw[i] += dy[i] * ((x[i] - m) * s);
        if (db)
            for (size_t i = 0; i < width; i++)
                db[i] += dy[i];
        if (!a->dx[0])
            continue;
        /* With g = dy * weight: dx = s * g + bx * x + c, where bx and c carry the gradient
         * through the row's mean and variance. */
        if (w)
            for (size_t i = 0; i < width; i++)
                g[i] = dy[i] * w[i];
        else
            memcpy(g, dy, sizeof(float) * width);
        double ds = 0, dsum = 0;
        for (size_t i = 0; i < width; i++) {
            ds += (double)g[i] * x[i];
            dsum += g[i];
        }
        double inv_width = 1.0 / (double)width;
        double bx = (dsum * m - ds) * s * s * s * inv_width;
        float fbx = (float)bx, c = (float)(-bx * m - dsum * s * inv_width);
        float *dx = a->dx[0] + r * width;
        if (a->dx_accumulate[0])
            for (size_t i = 0; i < width; i++)
                dx[i] += s * g[i] + fbx * x[i] + c;
        else
            for (size_t i = 0; i < width; i++)
                dx[i] = s * g[i] + fbx * x[i] + c;
    }
}

const tk_op_def tk_op_layer_norm = {
    .name = "layer_norm",
    .min_inputs = 1,
    .max_inputs = 1,
    .flags = TK_OP_BWD_NEEDS_INPUT,
    .infer = infer,
    .forward = forward,
    .backward = backward,
};
