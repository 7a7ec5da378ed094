/* linear.c - y = x W^T + b over the last dimension (nn.Linear), with an optional fused ReLU
 * epilogue set by the fusion pass; the weight's gradient product also serves the update fused
 * with it (fused_update.c). The products go through tk_sgemm. */
#include "tk_int.h"

#include <string.h>

static tk_status infer(tk_graph *g, tk_node *n, tk_ctx *ctx)
{
    const tk_node *x = tk_graph_node(g, n->inputs[0]);
    char s[96];
    if (x->shape.ndim < 2)
        return tk_node_fail(ctx, n, "needs an input with a feature dimension, got %s",
                            tk_shape_str(&x->shape, s, sizeof s));
    int64_t in = x->shape.d[x->shape.ndim - 1];
    int64_t out = tk_attr_int(n, "out_features", 0);
    int64_t want_in = tk_attr_int(n, "in_features", 0);
    if (out <= 0)
        return tk_node_fail(ctx, n, "out_features must be positive");
    if (want_in > 0 && want_in != in) {
        char w[96];
        tk_shape ws = {2, {out, want_in}};
        return tk_node_fail(ctx, n,
                            "input of shape %s does not fit in_features=%lld (weight shape %s)",
                            tk_shape_str(&x->shape, s, sizeof s), (long long)want_in,
                            tk_shape_str(&ws, w, sizeof w));
    }
    n->shape = x->shape;
    n->shape.d[n->shape.ndim - 1] = out;
    if (tk_node_param(g, n, "weight", (tk_shape){2, {out, in}}, true, TK_INIT_KAIMING_UNIFORM,
                      in) < 0)
        return TK_ERR_INPUT;
    if (tk_attr_int(n, "bias", 1) &&
        tk_node_param(g, n, "bias", (tk_shape){1, {out}}, true, TK_INIT_UNIFORM_FAN_IN, in) < 0)
        return TK_ERR_INPUT;
    n->iattr[0] = in;
    n->iattr[1] = out;
    /* Room for the input gradient's second half (input_grad). */
    int64_t rows = tk_shape_numel(&x->shape) / in;
    if (out >= 2 * TK_WGRAD_ROWS && out >= rows)
        n->scratch = (size_t)(rows * in);
    return TK_OK;
}

/* Rows of the product: every position before the last dimension, for n samples. */
static int rows_of(const tk_kernel_args *a)
{
    return (int)(a->n * tk_sample_numel(&a->node->shape) / a->node->iattr[1]);
}

static void forward(const tk_kernel_args *a)
{
    int in = (int)a->node->iattr[0], out = (int)a->node->iattr[1], rows = rows_of(a);
    const float *b = a->node->n_params > 1 ? a->param[1] : NULL;
    tk_sgemm_bias_relu(false, true, rows, out, in, a->x[0], in, a->param[0], in, b,
                       a->node->act == TK_ACT_RELU, a->y, out);
}

/* |dW[o][i]| = |sum over rows of dy[r][o] x[r][i]| <= rows max|dy| max|x|. */
static tk_grad_bound grad_bound(const tk_kernel_args *a)
{
    int in = (int)a->node->iattr[0], out = (int)a->node->iattr[1], rows = rows_of(a);
    return (tk_grad_bound){rows, {a->dy, a->x[0]}, {(int64_t)rows * out, (int64_t)rows * in}};
}

/* dW = dy^T x in blocks of TK_WGRAD_ROWS output rows: small enough that a block stays in
 * cache for the fused update after it, large enough for an efficient product. */
typedef struct {
    const tk_kernel_args *a;
    float beta;
    float *g, *scratch;
    tk_block_fn then;
    void *ud;
} wgrad_job;

static void wgrad_block(int t, void *ud)
{
    const wgrad_job *j = ud;
    const tk_kernel_args *a = j->a;
    int in = (int)a->node->iattr[0], out = (int)a->node->iattr[1], rows = rows_of(a);
    int lo = t * TK_WGRAD_ROWS, hi = lo + TK_WGRAD_ROWS < out ? lo + TK_WGRAD_ROWS : out;
    float *block = j->scratch ? j->scratch + (size_t)tk_pool_thread() * TK_WGRAD_ROWS * in
                              : j->g + (size_t)lo * in;
    tk_sgemm_serial(true, false, hi - lo, in, rows, 1.0f, a->dy + lo, out, a->x[0], in, j->beta,
                    block, in);
    if (j->then)
        j->then((int64_t)lo * in, (int64_t)hi * in, block, j->ud);
}

static void weight_grad(const tk_kernel_args *a, float beta, float *g, float *scratch,
                        tk_block_fn then, void *ud)
{
    int in = (int)a->node->iattr[0], out = (int)a->node->iattr[1], blocks =
        (out + TK_WGRAD_ROWS - 1) / TK_WGRAD_ROWS;
    wgrad_job j = {a, beta, g, scratch, then, ud};
    /* A small product is not worth waking a thread for; the blocks are the same either way. */
    if ((double)out * in * rows_of(a) < (1 << 17))
        for (int t = 0; t < blocks; t++)
            wgrad_block(t, &j);
    else
        tk_parallel(blocks, wgrad_block, &j);
}

/* Blocks of columns of a rows x cols output cut as tk_sgemm cuts it, so a loop over them runs
 * each on the thread that wrote it; one block of every column when tk_sgemm cuts rows. */
static int column_blocks(int rows, int cols, int *block)
{
    bool split_n;
    int blocks = tk_sgemm_blocks(rows, cols, &split_n, block);
    if (split_n)
        return blocks;
    *block = cols;
    return 1;
}

/* The ReLU's mask on dy and the bias gradient, columns [lo, hi) of dy. */
typedef struct {
    const tk_kernel_args *a;
    int rows, out, block;
    float *db; /* NULL: no bias gradient */
} dy_job;

static void dy_columns(int t, void *ud)
{
    const dy_job *j = ud;
    int lo = t * j->block, hi = lo + j->block < j->out ? lo + j->block : j->out;
    float *dy = j->a->dy, *db = j->db;
    const float *y = j->a->y;
    bool mask = j->a->node->act == TK_ACT_RELU;
    for (int r = 0; r < j->rows; r++) {
        float *restrict row = dy + (size_t)r * j->out;
        const float *restrict y_row = y + (size_t)r * j->out;
        if (mask)
            for (int c = lo; c < hi; c++)
                row[c] = y_row[c] > 0.0f ? row[c] : 0.0f;
        if (db)
            for (int c = lo; c < hi; c++)
                db[c] += row[c];
    }
}

/* dx = dy W with W at least as tall as dx (out >= rows: an MLP's hidden layers, the CNN's
 * first linear layer): cut along out at a weight-gradient block boundary, each half's rows of
 * W are read only by the thread that updates them (pool.c's shares), instead of every thread
 * reading a slice of columns across all of W's rows; the threads then exchange halves of the
 * two partial dx, which are no larger than W. dx = (beta dx + first half's product) + second
 * half's, whatever the thread count. */
typedef struct {
    const tk_kernel_args *a;
    int rows, in, out, half, block;
    float beta;
} dx_job;

static void input_grad_half(int t, void *ud)
{
    const dx_job *j = ud;
    const tk_kernel_args *a = j->a;
    int k0 = t ? j->half : 0, k = t ? j->out - j->half : j->half;
    tk_sgemm_serial(false, false, j->rows, j->in, k, 1.0f, a->dy + k0, j->out,
                    a->param[0] + (size_t)k0 * j->in, j->in, t ? 0.0f : j->beta,
                    t ? a->scratch : a->dx[0], j->in);
}

static void input_grad_sum(int t, void *ud)
{
    const dx_job *j = ud;
    int lo = t * j->block, hi = lo + j->block < j->in ? lo + j->block : j->in;
    for (int r = 0; r < j->rows; r++) {
        float *restrict dx = j->a->dx[0] + (size_t)r * j->in;
        const float *restrict second = j->a->scratch + (size_t)r * j->in;
        for (int c = lo; c < hi; c++)
            dx[c] += second[c];
    }
}

static void input_grad(const tk_kernel_args *a, int rows, int in, int out)
{
    float beta = a->dx_accumulate[0] ? 1.0f : 0.0f;
    if (!a->scratch) {
        tk_sgemm(false, false, rows, in, out, 1.0f, a->dy, out, a->param[0], in, beta, a->dx[0],
                 in);
        return;
    }
    int half = (out / 2 + TK_WGRAD_ROWS - 1) / TK_WGRAD_ROWS * TK_WGRAD_ROWS;
    dx_job j = {a, rows, in, out, half, in, beta};
    int blocks = column_blocks(rows, in, &j.block);
    tk_parallel(2, input_grad_half, &j);
    tk_parallel(blocks, input_grad_sum, &j);
}

/* Below this many elements of dy, the mask and bias sums are not worth waking a thread for. */
enum { DY_SPLIT_MIN = 1 << 14 };

static void backward(const tk_kernel_args *a)
{
    int in = (int)a->node->iattr[0], out = (int)a->node->iattr[1], rows = rows_of(a);
    dy_job j = {a, rows, out, out, NULL};
    if (a->node->n_params > 1 && a->dparam[1]) {
        j.db = a->dparam[1];
        if (tk_dparam_overwrite(a, 1))
            memset(j.db, 0, sizeof(float) * (size_t)out);
    }
    if (a->node->act == TK_ACT_RELU || j.db) {
        /* dy's columns cut as the product that wrote them (the next layer's input gradient)
         * cuts its output, so each thread masks and sums the lines it holds; each column's
         * sum still runs over the rows in order. */
        int blocks = column_blocks(rows, out, &j.block);
        if ((int64_t)rows * out < DY_SPLIT_MIN) {
            j.block = out;
            dy_columns(0, &j);
        } else
            tk_parallel(blocks, dy_columns, &j);
    }
    if (a->dx[0])
        input_grad(a, rows, in, out);
    if (a->dparam[0] && !a->fused_weight)
        weight_grad(a, tk_dparam_overwrite(a, 0) ? 0.0f : 1.0f, a->dparam[0], NULL, NULL, NULL);
}

const tk_op_def tk_op_linear = {
    .name = "linear",
    .min_inputs = 1,
    .max_inputs = 1,
    .flags = TK_OP_BWD_NEEDS_INPUT | TK_OP_RELU_EPILOGUE | TK_OP_FUSED_UPDATE,
    .infer = infer,
    .forward = forward,
    .backward = backward,
    .grad_bound = grad_bound,
    .weight_grad = weight_grad,
};
