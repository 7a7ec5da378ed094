/* concat.c - joins 2..8 inputs along dimension `dim` (torch.cat; default 1, dim 0 is the
 * batch and may not be used). Every other dimension must agree. Forward and backward are
 * block copies: per leading index, input k owns a contiguous run of the output row. */
#include "tk_int.h"
#include "common.h"

#include <string.h>

/* iattr[k]: floats of input k per leading index (its size along dim x the trailing dims). */

static tk_status infer(tk_graph *g, tk_node *n, tk_ctx *ctx)
{
    const tk_shape *first = &tk_graph_node(g, n->inputs[0])->shape;
    int64_t dim = tk_attr_dim(n, first, ctx);
    char s[96], t[96];
    if (dim == 0)
        return TK_ERR_INPUT;
    int64_t trailing = 1;
    for (int i = (int)dim + 1; i < first->ndim; i++)
        trailing *= first->d[i];
    tk_shape out = *first;
    out.d[dim] = 0;
    for (int k = 0; k < n->n_inputs; k++) {
        const tk_shape *in = &tk_graph_node(g, n->inputs[k])->shape;
        bool fits = in->ndim == first->ndim;
        for (int i = 0; fits && i < in->ndim; i++)
            fits = i == dim || in->d[i] == first->d[i];
        if (!fits)
            return tk_node_fail(ctx, n, "cannot concatenate input %d of shape %s with input 1 "
                                "of shape %s along dim %lld (all other dimensions must be "
                                "equal)", k + 1, tk_shape_str(in, t, sizeof t),
                                tk_shape_str(first, s, sizeof s), (long long)dim);
        out.d[dim] += in->d[dim];
        n->iattr[k] = in->d[dim] * trailing;
    }
    n->shape = out;
    return TK_OK;
}

/* The output's floats per leading index, and the number of leading indices in a->n rows. */
static size_t row_of(const tk_kernel_args *a, size_t *leading)
{
    size_t row = 0;
    for (int k = 0; k < a->node->n_inputs; k++)
        row += (size_t)a->node->iattr[k];
    *leading = tk_kernel_numel(a) / row;
    return row;
}

static void forward(const tk_kernel_args *a)
{
    size_t leading, row = row_of(a, &leading), off = 0;
    for (int k = 0; k < a->node->n_inputs; k++) {
        size_t len = (size_t)a->node->iattr[k];
        for (size_t o = 0; o < leading; o++)
            memcpy(a->y + o * row + off, a->x[k] + o * len, len * sizeof(float));
        off += len;
    }
}

static void backward(const tk_kernel_args *a)
{
    size_t leading, row = row_of(a, &leading), off = 0;
    for (int k = 0; k < a->node->n_inputs; k++) {
        size_t len = (size_t)a->node->iattr[k];
        float *dx = a->dx[k];
        if (dx && a->dx_accumulate[k]) {
            for (size_t o = 0; o < leading; o++) {
                const float *dy = a->dy + o * row + off;
                float *d = dx + o * len;
                for (size_t j = 0; j < len; j++)
                    d[j] += dy[j];
            }
        } else if (dx) {
            for (size_t o = 0; o < leading; o++)
                memcpy(dx + o * len, a->dy + o * row + off, len * sizeof(float));
        }
        off += len;
    }
}

const tk_op_def tk_op_concat = {
    .name = "concat",
    .min_inputs = 2,
    .max_inputs = TK_MAX_INPUTS,
    .flags = 0,
    .infer = infer,
    .forward = forward,
    .backward = backward,
};
