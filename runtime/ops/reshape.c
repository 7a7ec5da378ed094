/* reshape.c - gives each sample a new shape with the same number of values (torch.reshape
 * on the dimensions after the batch). `shape` (a list of integers) excludes the batch dim;
 * one entry may be -1 and is inferred. The data is contiguous, so both directions copy
 * (common.c's kernels, shared with flatten). */
#include "tk_int.h"
#include "common.h"

#include <stdio.h>

/* "[2, -1, 4]" into buf. */
static const char *list_str(const int64_t *v, int n, char *buf, size_t cap)
{
    size_t used = (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < n && used < cap; i++)
        used += (size_t)snprintf(buf + used, cap - used, "%s%lld", i ? ", " : "",
                                 (long long)v[i]);
    if (used < cap)
        snprintf(buf + used, cap - used, "]");
    return buf;
}

static tk_status infer(tk_graph *g, tk_node *n, tk_ctx *ctx)
{
    const tk_shape *in = &tk_graph_node(g, n->inputs[0])->shape;
    const tk_attr *attr = tk_node_attr(n, "shape");
    char s[96], l[160];
    if (!attr || attr->kind != TK_ATTR_INTS || attr->n < 1)
        return tk_node_fail(ctx, n, "shape must be a non-empty list of integers (the sample "
                            "shape, without the batch dim)");
    if (attr->n + 1 > TK_MAX_DIMS)
        return tk_node_fail(ctx, n, "shape %s has more than %d dimensions",
                            list_str(attr->ints, attr->n, l, sizeof l), TK_MAX_DIMS - 1);
    int64_t values = tk_sample_numel(in), known = 1;
    int inferred = -1;
    for (int i = 0; i < attr->n; i++) {
        int64_t d = attr->ints[i];
        if (d == -1 && inferred < 0) {
            inferred = i;
        } else if (d < 1) {
            return tk_node_fail(ctx, n, "shape %s: entries must be positive, with at most one "
                                "-1", list_str(attr->ints, attr->n, l, sizeof l));
        } else {
            known *= d;
        }
    }
    tk_shape out = {attr->n + 1, {in->d[0]}};
    for (int i = 0; i < attr->n; i++)
        out.d[i + 1] = attr->ints[i];
    /* Left at -1 when it cannot divide evenly, which fails the count check below. */
    if (inferred >= 0 && values % known == 0)
        out.d[inferred + 1] = values / known;
    if (tk_sample_numel(&out) != values)
        return tk_node_fail(ctx, n, "cannot reshape an input of shape %s (%lld values per "
                            "sample) to %s", tk_shape_str(in, s, sizeof s), (long long)values,
                            list_str(attr->ints, attr->n, l, sizeof l));
    n->shape = out;
    return TK_OK;
}

const tk_op_def tk_op_reshape = {
    .name = "reshape",
    .min_inputs = 1,
    .max_inputs = 1,
    .flags = 0,
    .infer = infer,
    .forward = tk_copy_forward,
    .backward = tk_copy_backward,
};
