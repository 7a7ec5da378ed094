/* common.h - helpers shared by several ops under ops/: the parts of shape rules and kernel
 * set-up that many op files used to write out alike, so that a fix to one reaches all.
 * Op files include it (the fusion pass and the exporter too, for a pooling's window); the op
 * interface itself is in tk_int.h. Not here: an op's own arithmetic loops (each op keeps them
 * so the compiler sees them whole) and anything only one op needs. */
#ifndef TK_OPS_COMMON_H
#define TK_OPS_COMMON_H

#include "tk_int.h"

/* ---------------------------------------------------------------- elementwise ops */

/* The shape rule of every op whose output has its input's shape (the activations, dropout):
 * usable directly as an op's infer, or as the last step of one that also reads attributes. */
tk_status tk_infer_same_shape(tk_graph *g, tk_node *n, tk_ctx *ctx);

/* The values of the node's output in this call (a->n rows, not the planned batch): the loop
 * bound of the elementwise kernels. Inline, as it is read once per kernel call. */
static inline size_t tk_kernel_numel(const tk_kernel_args *a)
{
    return (size_t)a->n * (size_t)tk_sample_numel(&a->node->shape);
}

/* dx = dy, or dx += dy when accumulating: the backward of the ops that pass values through
 * unchanged (flatten, reshape, add). */
void tk_pass_grad(float *dx, const float *dy, size_t n, bool accumulate);

/* The kernels of the ops that only give each sample a new shape (flatten, reshape): the
 * data is contiguous, so forward copies and backward passes the gradient through. */
void tk_copy_forward(const tk_kernel_args *a);
void tk_copy_backward(const tk_kernel_args *a);

/* ---------------------------------------------------------------- dropout */

/* dropout's and dropout2d's "p" (default 0.5), checked to be in [0, 1), into fattr[0]. */
tk_status tk_attr_dropout_p(tk_node *n, tk_ctx *ctx);

/* The factor of draw i (an element, or a channel counted over the batch) in this step: 0
 * with probability p, else 1/(1-p). Forward and backward redraw it from the counter-based
 * RNG instead of storing a mask. Draws are counted from the global batch's first row
 * (per_row draws a row), so a data-parallel shard draws what one process would. */
static inline float tk_dropout_scale(const tk_kernel_args *a, size_t i, size_t per_row)
{
    float p = (float)a->node->fattr[0];
    float u = tk_rng_uniform_at(a->seed, TK_STREAM_DROPOUT, (uint32_t)a->node->id,
                                (uint32_t)a->step, (uint64_t)a->row0 * per_row + i);
    return u < p ? 0.0f : 1.0f / (1.0f - p);
}

/* The factors of draws [i, i + n) (elements), as tk_dropout_scale gives each, four per
 * generator block. */
void tk_dropout_scales(const tk_kernel_args *a, size_t i, size_t n, size_t per_row, float *k);

/* ---------------------------------------------------------------- ops along one dimension */

/* The "dim" attribute of an op that works along one non-batch dimension of x (softmax,
 * log_softmax, concat): default 1, negative counts from the end. Returns it, or 0 (the batch,
 * never valid) with the message set. */
int64_t tk_attr_dim(const tk_node *n, const tk_shape *x, tk_ctx *ctx);

/* The iattr slots tk_infer_along_dim fills: the length of dim and the values after it. */
enum { TK_DIM_LEN, TK_DIM_INNER };

/* softmax's and log_softmax's shape rule: the input's shape, and the slots above. */
tk_status tk_infer_along_dim(tk_graph *g, tk_node *n, tk_ctx *ctx);

/* Their kernels see the data as outer x len x inner: each (outer, inner) pair is one run of
 * len values at stride inner. Returns outer for this call and sets *len and *inner. */
static inline size_t tk_dim_lanes(const tk_kernel_args *a, size_t *len, size_t *inner)
{
    *len = (size_t)a->node->iattr[TK_DIM_LEN];
    *inner = (size_t)a->node->iattr[TK_DIM_INNER];
    return tk_kernel_numel(a) / (*len * *inner);
}

/* ---------------------------------------------------------------- losses */

/* "reduction": "mean" (the default) or "sum"; *sum becomes 1 for "sum". Every loss takes it. */
tk_status tk_attr_reduction(tk_node *n, tk_ctx *ctx, int64_t *sum);

/* The iattr slots tk_infer_value_loss fills; an op's own slots start at TK_LOSS_SLOTS. */
enum { TK_LOSS_SUM, TK_LOSS_VALUES, TK_LOSS_SLOTS };

/* The shape rule the value-by-value losses (mse, l1, smooth_l1, huber, bce_with_logits)
 * share: a prediction (`what` names it in the error) and a target with the same batch and
 * values per sample, and the reduction. Fills TK_LOSS_SUM and TK_LOSS_VALUES; the output is
 * a scalar. Ops with more attributes check them after it. */
tk_status tk_infer_value_loss(tk_graph *g, tk_node *n, tk_ctx *ctx, const char *what);

/* The prediction's values in this call: the loop bound of a value loss's kernels. */
static inline size_t tk_loss_numel(const tk_kernel_args *a)
{
    return (size_t)a->n * (size_t)a->node->iattr[TK_LOSS_VALUES];
}

/* What a value loss's sum is divided by: 1 for "sum", the values in this call for "mean". */
static inline double tk_loss_divisor(const tk_kernel_args *a)
{
    return a->node->iattr[TK_LOSS_SUM] ? 1.0
                                       : (double)a->n * (double)a->node->iattr[TK_LOSS_VALUES];
}

/* The iattr slots tk_infer_class_loss fills; an op's own slots start at TK_CLASS_SLOTS. */
enum { TK_CLASS_COUNT, TK_CLASS_IGNORE, TK_CLASS_SLOTS };

/* The input checks the class losses (cross_entropy, nll) share: scores (batch, classes)
 * (`what` names them in the errors) and one class id per sample. Fills TK_CLASS_COUNT and
 * TK_CLASS_IGNORE (ignore_index, default -100 as in PyTorch). */
tk_status tk_infer_class_loss(tk_graph *g, tk_node *n, tk_ctx *ctx, const char *what);

/* The class of row i, or -1 when the row does not count (ignore_index, or an id that is out
 * of range or not an integer: the range is checked on the float, before any conversion). */
static inline int tk_class_of(const tk_kernel_args *a, int i)
{
    float t = a->x[1][i];
    if (!(t >= 0.0f && t < (float)a->node->iattr[TK_CLASS_COUNT]))
        return -1;
    int c = (int)t;
    return (float)c != t || c == a->node->iattr[TK_CLASS_IGNORE] ? -1 : c;
}

/* ---------------------------------------------------------------- 2-d spatial ops */

/* The input check the NCHW ops (conv2d, the poolings, dropout2d) start with. */
tk_status tk_expect_nchw(const tk_node *n, const tk_shape *x, tk_ctx *ctx);

/* An attribute given as one integer (both dims) or a list of one or two (height, width), or
 * dflt when absent; false unless it has one of those forms and both values are in
 * [lo, hi]. The spatial ops take kernel_size, stride, padding, ... this way. */
bool tk_attr_pair(const tk_node *n, const char *key, const int64_t dflt[2], int64_t lo,
                  int64_t hi, int64_t v[2]);

/* A pair of small non-negative values (a kernel's height and width, ...) in one iattr slot:
 * the spatial ops keep more settings than a node has slots. */
static inline int64_t tk_pair_pack(int64_t hi, int64_t lo)
{
    return hi * ((int64_t)1 << 32) + lo;
}

static inline int tk_pair_first(int64_t v)
{
    return (int)(v >> 32);
}

static inline int tk_pair_second(int64_t v)
{
    return (int)(v & 0xffffffff);
}

/* max_pool2d's and avg_pool2d's common settings: PyTorch's kernel_size, stride (default: the
 * kernel) and padding (at most half the kernel) with ceil_mode's output-size rule. */
typedef struct {
    int64_t k[2], st[2], pad[2];
} tk_pool2d_window;

/* The iattr slots tk_pool2d_output fills; an op's own slots start at TK_POOL_SLOTS. */
enum { TK_POOL_KERNEL, TK_POOL_STRIDE, TK_POOL_PAD, TK_POOL_IN_HW, TK_POOL_SLOTS };

/* A pooling's shape rule in two halves, so each op can check its own limits in between:
 * the NCHW input and the window attributes, then the output size (ceil_mode), which sets
 * n->shape and the TK_POOL_* slots. */
tk_status tk_pool2d_window_of(tk_graph *g, tk_node *n, tk_ctx *ctx, tk_pool2d_window *win);
tk_status tk_pool2d_output(tk_graph *g, tk_node *n, tk_ctx *ctx, const tk_pool2d_window *win);

/* The kernels' view of those slots: input and output planes and the window. */
typedef struct {
    int c, h, w, oh, ow;
    int kh, kw, sh, sw, ph, pw;
} tk_pool2d_geom;

tk_pool2d_geom tk_pool2d_geom_of(const tk_node *n);

/* 2x2 windows with stride 2 and no padding inside the input, the common case: max_pool2d's
 * fast path, and the pooling conv2d can run in its epilogue. */
bool tk_pool2d_is_2x2(const tk_pool2d_geom *q);

/* One plane's 2x2 max pooling: x has rows of w floats; y and arg have oh x ow. Each window's
 * argmax (the first maximum, or the last NaN, as PyTorch picks it) is its place in the
 * window: 0 and 1 in the upper row, 2 and 3 in the lower. */
void tk_max_pool_2x2_plane(const float *x, int w, int oh, int ow, float *y, uint8_t *arg);
/* The same over relu(x + b) (or x + b): a convolution's epilogue and its pooling in one pass,
 * the same values and argmaxes as the epilogue's plane pooled. */
void tk_max_pool_2x2_biased(const float *x, float b, bool relu, int w, int oh, int ow, float *y,
                            uint8_t *arg);

/* Its adjoint: the h x w plane dx gets dy (oh x ow) at each window's argmax and +0 wherever
 * no gradient goes (as zeros plus the gradient would), every element written; with y (the
 * pooled values) the gradient passes only where y > 0, a ReLU's mask before the pooling. */
void tk_max_unpool_2x2_plane(const float *dy, const uint8_t *arg, const float *y, int h, int w,
                             int oh, int ow, float *dx);

#endif
