/* conv2d.c - nn.Conv2d on NCHW float32: stride, padding (numbers, "valid" or PyTorch's "same"),
 * dilation, groups and an optional bias. im2col and products over the columns: the forward
 * (im2col, product, bias/ReLU epilogue, and a following 2x2 max pooling when the fusion pass
 * hands it one) and the input gradient (product, col2im) run as one pool task per chunk of
 * samples, so a chunk's columns and product stay in the core's cache between the phases and
 * the threads meet once per layer, not once per phase; the weight gradient is one tk_sgemm
 * over the whole batch (its sum runs over every sample). The chunks depend on the shape alone,
 * so the thread count changes no value. The node's scratch holds the batch's columns, kept
 * from forward to backward (so backward reads neither the input nor recomputes them), and a
 * channel-major copy of the output or its gradient that turns the per-sample layout into one
 * wide product. Not here: transposed convolution, other layouts. */
#include "tk_int.h"
#include "common.h"

#include <limits.h>
#include <string.h>

typedef struct {
    int c, h, w;               /* input planes */
    int o, oh, ow;             /* output planes */
    int groups;
    int kh, kw, sh, sw, dh, dw;
    int ph, pw;                /* top and left padding ("same" may pad more below/right) */
} geom;

enum { IN_C, GROUPS, KERNEL, STRIDE, DILATION, PAD, IN_HW };

static geom geom_of(const tk_node *n)
{
    const int64_t *i = n->iattr;
    return (geom){
        .c = (int)i[IN_C], .h = tk_pair_first(i[IN_HW]), .w = tk_pair_second(i[IN_HW]),
        .o = (int)n->shape.d[1], .oh = (int)n->shape.d[2], .ow = (int)n->shape.d[3],
        .groups = (int)i[GROUPS],
        .kh = tk_pair_first(i[KERNEL]), .kw = tk_pair_second(i[KERNEL]),
        .sh = tk_pair_first(i[STRIDE]), .sw = tk_pair_second(i[STRIDE]),
        .dh = tk_pair_first(i[DILATION]), .dw = tk_pair_second(i[DILATION]),
        .ph = tk_pair_first(i[PAD]), .pw = tk_pair_second(i[PAD]),
    };
}

/* kernel_size, stride and dilation: positive, and small enough that the products of the
 * shape rule stay ints. */
static bool positive_pair(const tk_node *n, const char *key, int64_t dflt, int64_t v[2])
{
    return tk_attr_pair(n, key, (int64_t[2]){dflt, dflt}, 1, INT_MAX / 2, v);
}

/* Padding before and after each spatial dim. */
static tk_status padding_of(const tk_node *n, const int64_t k[2], const int64_t st[2],
                            const int64_t dil[2], int64_t lo[2], int64_t hi[2], tk_ctx *ctx)
{
    const char *mode = tk_attr_str(n, "padding", NULL);
    if (mode && strcmp(mode, "same") == 0) {
        if (st[0] != 1 || st[1] != 1)
            return tk_node_fail(ctx, n, "padding='same' needs stride 1 (as in PyTorch), got "
                                "stride (%lld, %lld)", (long long)st[0], (long long)st[1]);
        /* PyTorch's rule: the odd extra row/column of padding goes below/right. */
        for (int i = 0; i < 2; i++) {
            int64_t total = dil[i] * (k[i] - 1);
            lo[i] = total / 2;
            hi[i] = total - lo[i];
        }
        return TK_OK;
    }
    if (mode && strcmp(mode, "valid") != 0)
        return tk_node_fail(ctx, n, "padding must be an integer, a pair, 'same' or 'valid', "
                            "got '%s'", mode);
    int64_t p[2] = {0, 0};
    if (!mode && !tk_attr_pair(n, "padding", (int64_t[2]){0, 0}, 0, INT_MAX / 4, p))
        return tk_node_fail(ctx, n, "padding must be a non-negative integer or a pair of them");
    for (int i = 0; i < 2; i++)
        lo[i] = hi[i] = p[i];
    return TK_OK;
}

static tk_status infer(tk_graph *g, tk_node *n, tk_ctx *ctx)
{
    const tk_shape *x = &tk_graph_node(g, n->inputs[0])->shape;
    char s[96];
    tk_status status = tk_expect_nchw(n, x, ctx);
    if (status != TK_OK)
        return status;
    int64_t c = x->d[1], out = tk_attr_int(n, "out_channels", 0);
    int64_t groups = tk_attr_int(n, "groups", 1), want_in = tk_attr_int(n, "in_channels", 0);
    int64_t k[2], st[2], dil[2], lo[2] = {0, 0}, hi[2] = {0, 0};
    if (out <= 0 || out > INT_MAX)
        return tk_node_fail(ctx, n, "out_channels must be a positive integer");
    if (!positive_pair(n, "kernel_size", 0, k))
        return tk_node_fail(ctx, n, "kernel_size must be a positive integer or a pair of them");
    if (!positive_pair(n, "stride", 1, st))
        return tk_node_fail(ctx, n, "stride must be a positive integer or a pair of them");
    if (!positive_pair(n, "dilation", 1, dil))
        return tk_node_fail(ctx, n, "dilation must be a positive integer or a pair of them");
    if (groups < 1 || out % groups != 0)
        return tk_node_fail(ctx, n, "out_channels (%lld) must be divisible by groups (%lld)",
                            (long long)out, (long long)groups);
    if (want_in > 0 && want_in != c)
        return tk_node_fail(ctx, n, "input of shape %s does not fit in_channels=%lld (it has "
                            "%lld)", tk_shape_str(x, s, sizeof s), (long long)want_in,
                            (long long)c);
    if (c % groups != 0)
        return tk_node_fail(ctx, n, "input of shape %s has %lld channels, not divisible by "
                            "groups (%lld)", tk_shape_str(x, s, sizeof s), (long long)c,
                            (long long)groups);
    status = padding_of(n, k, st, dil, lo, hi, ctx);
    if (status != TK_OK)
        return status;
    int64_t o[2];
    for (int i = 0; i < 2; i++) {
        int64_t span = dil[i] * (k[i] - 1) + 1, padded = x->d[2 + i] + lo[i] + hi[i];
        if (padded < span)
            return tk_node_fail(ctx, n, "kernel (%lld, %lld) with dilation (%lld, %lld) spans "
                                "(%lld, %lld), larger than the padded input (%lld, %lld) of "
                                "input shape %s", (long long)k[0], (long long)k[1],
                                (long long)dil[0], (long long)dil[1],
                                (long long)(dil[0] * (k[0] - 1) + 1),
                                (long long)(dil[1] * (k[1] - 1) + 1),
                                (long long)(x->d[2] + lo[0] + hi[0]),
                                (long long)(x->d[3] + lo[1] + hi[1]),
                                tk_shape_str(x, s, sizeof s));
        o[i] = (padded - span) / st[i] + 1;
    }
    /* Every product's dimension and leading dimension is an int for tk_sgemm. */
    int64_t rows = c * k[0] * k[1], cols = x->d[0] * o[0] * o[1];
    if (x->d[2] > INT_MAX / 2 || x->d[3] > INT_MAX / 2 || rows > INT_MAX || cols > INT_MAX)
        return tk_node_fail(ctx, n, "input of shape %s is too large to convolve",
                            tk_shape_str(x, s, sizeof s));
    n->shape = (tk_shape){4, {x->d[0], out, o[0], o[1]}};
    int64_t fan_in = c / groups * k[0] * k[1];
    if (tk_node_param(g, n, "weight", (tk_shape){4, {out, c / groups, k[0], k[1]}}, true,
                      TK_INIT_KAIMING_UNIFORM, fan_in) < 0)
        return TK_ERR_INPUT;
    if (tk_attr_int(n, "bias", 1) &&
        tk_node_param(g, n, "bias", (tk_shape){1, {out}}, true, TK_INIT_UNIFORM_FAN_IN,
                      fan_in) < 0)
        return TK_ERR_INPUT;
    n->iattr[IN_C] = c;
    n->iattr[GROUPS] = groups;
    n->iattr[KERNEL] = tk_pair_pack(k[0], k[1]);
    n->iattr[STRIDE] = tk_pair_pack(st[0], st[1]);
    n->iattr[DILATION] = tk_pair_pack(dil[0], dil[1]);
    n->iattr[PAD] = tk_pair_pack(lo[0], lo[1]);
    n->iattr[IN_HW] = tk_pair_pack(x->d[2], x->d[3]);
    n->scratch = (size_t)(rows + out) * (size_t)cols;
    return TK_OK;
}

/* The outputs o in [0, out) that read input position o * stride + off inside [0, in):
 * [*lo, *hi). Computing the range once keeps bounds tests out of the copy loops. */
static void inside(int off, int stride, int in, int out, int *lo, int *hi)
{
    int l = off >= 0 ? 0 : (-off + stride - 1) / stride;
    int h = in - off <= 0 ? 0 : (in - 1 - off) / stride + 1;
    h = h < out ? h : out;
    *lo = l < h ? l : h;
    *hi = h;
}

/* What kernel tap (i, j) reads, worked out once for im2col and its adjoint: output rows
 * [rlo, rhi) and columns [wlo, whi) read inside the input; output (oh, wlo) reads input row
 * oh * sh + ioff, column first_w. */
typedef struct {
    int ioff, first_w, rlo, rhi, wlo, whi;
} tap;

static tap tap_of(const geom *q, int i, int j)
{
    int ioff = i * q->dh - q->ph, joff = j * q->dw - q->pw, hlo, hhi, wlo, whi;
    inside(ioff, q->sh, q->h, q->oh, &hlo, &hhi);
    inside(joff, q->sw, q->w, q->ow, &wlo, &whi);
    /* No row is read if no column is. */
    return (tap){.ioff = ioff, .first_w = wlo * q->sw + joff, .rlo = hlo,
                 .rhi = wlo < whi ? hhi : hlo, .wlo = wlo, .whi = whi};
}

/* What the parallel parts of a conv step share: each task takes a range of column rows
 * (c, i, j), of channels, of samples or of output channels, whose outputs no other task
 * writes. */
typedef struct {
    const tk_kernel_args *a;
    geom q;
    tk_pool2d_geom pooled;     /* with a pooling epilogue (a->pool): its planes */
    float *cols, *t;
    int chunk;                 /* samples per task of the chunked phases */
} conv_job;

/* A chunk's columns and product (about CHUNK_BYTES) fit in a core's L2, and it has at least
 * MIN_COLUMNS columns, so the weights packed for its product serve enough of them. */
enum { CHUNK_BYTES = 512 << 10, MIN_COLUMNS = 512 };

static int chunk_of(const geom *q, int batch)
{
    size_t opix = (size_t)q->oh * q->ow;
    size_t per = ((size_t)q->c * q->kh * q->kw + (size_t)q->o) * opix * sizeof(float);
    size_t by_bytes = CHUNK_BYTES / per, by_columns = (MIN_COLUMNS + opix - 1) / opix;
    size_t s = by_bytes > by_columns ? by_bytes : by_columns;
    return s < (size_t)batch ? (int)s : batch;
}

/* cols[(c, i, j)][(n, oh, ow)] = x[n, c, oh*sh - ph + i*dh, ow*sw - pw + j*dw], 0 outside;
 * rows [r0, r1) of the (c, i, j) order, samples [n0, n1). */
static void im2col(const float *x, float *cols, const geom *q, int batch, int64_t r0, int64_t r1,
                   int n0, int n1)
{
    size_t plane = (size_t)q->h * q->w, opix = (size_t)q->oh * q->ow, np = batch * opix;
    int taps = q->kh * q->kw;
    for (int64_t r = r0; r < r1; r++) {
        int c = (int)(r / taps), i = (int)(r % taps) / q->kw, j = (int)(r % q->kw);
        float *row = cols + (size_t)r * np;
        tap t = tap_of(q, i, j);
        for (int n = n0; n < n1; n++) {
            const float *xc = x + ((size_t)n * q->c + c) * plane;
            float *dst = row + n * opix;
            memset(dst, 0, sizeof(float) * (size_t)t.rlo * q->ow);
            /* Plain loops: rows are often too short for memcpy calls to pay. */
            for (int oh = t.rlo; oh < t.rhi; oh++) {
                float *d = dst + (size_t)oh * q->ow;
                const float *src = xc + (size_t)(oh * q->sh + t.ioff) * q->w + t.first_w;
                for (int ow = 0; ow < t.wlo; ow++)
                    d[ow] = 0.0f;
                if (q->sw == 1)
                    for (int ow = t.wlo; ow < t.whi; ow++)
                        d[ow] = src[ow - t.wlo];
                else
                    for (int ow = t.wlo; ow < t.whi; ow++)
                        d[ow] = src[(size_t)(ow - t.wlo) * q->sw];
                for (int ow = t.whi; ow < q->ow; ow++)
                    d[ow] = 0.0f;
            }
            memset(dst + (size_t)t.rhi * q->ow, 0, sizeof(float) * (size_t)(q->oh - t.rhi) * q->ow);
        }
    }
}

/* The adjoint of im2col for channels [c0, c1) and samples [n0, n1): dx[n, c, ih, iw] += every
 * column entry that copied it. */
static void col2im(const float *cols, float *dx, const geom *q, int batch, int64_t c0, int64_t c1,
                   int n0, int n1)
{
    size_t plane = (size_t)q->h * q->w, opix = (size_t)q->oh * q->ow, np = batch * opix;
    const float *row = cols + (size_t)c0 * q->kh * q->kw * np;
    for (int64_t c = c0; c < c1; c++) {
        for (int i = 0; i < q->kh; i++) {
            for (int j = 0; j < q->kw; j++, row += np) {
                tap t = tap_of(q, i, j);
                for (int n = n0; n < n1; n++) {
                    float *xc = dx + ((size_t)n * q->c + c) * plane;
                    for (int oh = t.rlo; oh < t.rhi; oh++) {
                        const float *s = row + n * opix + (size_t)oh * q->ow + t.wlo;
                        float *d = xc + (size_t)(oh * q->sh + t.ioff) * q->w + t.first_w;
                        if (q->sw == 1)
                            for (int k = 0; k < t.whi - t.wlo; k++)
                                d[k] += s[k];
                        else
                            for (int k = 0; k < t.whi - t.wlo; k++)
                                d[(size_t)k * q->sw] += s[k];
                    }
                }
            }
        }
    }
}

/* Sum of n floats: blocks of 256 summed in eight float lanes (which vectorise; each lane
 * adds 32 values), the blocks added in double. */
static double row_sum(const float *v, int n)
{
    double total = 0;
    int i = 0;
    for (; i + 256 <= n; i += 256) {
        float lane[8] = {0};
        for (int k = 0; k < 256; k += 8)
            for (int l = 0; l < 8; l++)
                lane[l] += v[i + k + l];
        for (int l = 0; l < 8; l++)
            total += lane[l];
    }
    for (; i < n; i++)
        total += v[i];
    return total;
}

/* A plane biased and rectified in place, then pooled into the pooling's value and argmax:
 * the same values in the same windows as the separate ops. */
static void pool_plane(const conv_job *j, float *restrict v, float b, bool relu, size_t at)
{
    const tk_kernel_args *pool = j->a->pool;
    int opix = j->q.oh * j->q.ow;
    for (int p = 0; p < opix; p++) {
        float u = v[p] + b;
        v[p] = !relu || u > 0.0f ? u : 0.0f;
    }
    tk_max_pool_2x2_plane(v, j->q.ow, j->pooled.oh, j->pooled.ow, pool->y + at,
                          pool->scratch + at);
}

/* t is (o, n, pixel); y is (n, o, pixel): samples [n0, n1), with the bias and a fused ReLU
 * (and a fused pooling, whose planes then take the place of y). */
static void output_task(int64_t n0, int64_t n1, void *ud)
{
    const conv_job *j = ud;
    const tk_kernel_args *a = j->a;
    int opix = j->q.oh * j->q.ow, ppix = j->pooled.oh * j->pooled.ow;
    size_t np = (size_t)a->n * opix;
    const float *bias = a->node->n_params > 1 ? a->param[1] : NULL;
    bool relu = a->node->act == TK_ACT_RELU;
    for (int64_t n = n0; n < n1; n++) {
        for (int o = 0; o < j->q.o; o++) {
            float *restrict src = j->t + (size_t)o * np + (size_t)n * opix;
            float b = bias ? bias[o] : 0.0f;
            if (a->pool) {
                pool_plane(j, src, b, relu, ((size_t)n * j->q.o + o) * ppix);
                continue;
            }
            float *restrict dst = a->y + ((size_t)n * j->q.o + o) * opix;
            if (relu) {
                for (int p = 0; p < opix; p++) {
                    float v = src[p] + b;
                    dst[p] = v > 0.0f ? v : 0.0f;
                }
            } else {
                for (int p = 0; p < opix; p++)
                    dst[p] = src[p] + b;
            }
        }
    }
}

/* Samples [*n0, *n1) of chunk `task`. */
static void chunk_range(const conv_job *j, int task, int *n0, int *n1)
{
    *n0 = task * j->chunk;
    *n1 = *n0 + j->chunk < j->a->n ? *n0 + j->chunk : j->a->n;
}

/* One chunk's forward: its columns, their product with the weights, the epilogue. */
static void forward_task(int task, void *ud)
{
    const conv_job *j = ud;
    const tk_kernel_args *a = j->a;
    const geom *q = &j->q;
    int n0, n1;
    chunk_range(j, task, &n0, &n1);
    size_t opix = (size_t)q->oh * q->ow, np = (size_t)a->n * opix, at = (size_t)n0 * opix;
    int kg = q->c / q->groups * q->kh * q->kw, og = q->o / q->groups;
    im2col(a->x[0], j->cols, q, a->n, 0, (int64_t)q->c * q->kh * q->kw, n0, n1);
    for (int g = 0; g < q->groups; g++)
        tk_sgemm_serial(false, false, og, (int)((size_t)(n1 - n0) * opix), kg, 1.0f,
                        a->param[0] + (size_t)g * og * kg, kg, j->cols + g * kg * np + at,
                        (int)np, 0.0f, j->t + g * og * np + at, (int)np);
    output_task(n0, n1, ud);
}

/* The scratch: the batch's columns, then t. */
static conv_job job_of(const tk_kernel_args *a)
{
    geom q = geom_of(a->node);
    size_t np = (size_t)a->n * q.oh * q.ow;
    float *cols = a->scratch, *t = cols + (size_t)q.c * q.kh * q.kw * np;
    tk_pool2d_geom pooled = {0};
    if (a->pool)
        pooled = tk_pool2d_geom_of(a->pool->node);
    return (conv_job){a, q, pooled, cols, t, chunk_of(&q, a->n)};
}

static void forward(const tk_kernel_args *a)
{
    conv_job j = job_of(a);
    tk_parallel((a->n + j.chunk - 1) / j.chunk, forward_task, &j);
}

/* A fused pooling's gradient routed to each window's argmax through the ReLU's mask (the
 * pooled value is the rectified one there). */
static void unpool_plane(const conv_job *j, float *dst, bool relu, size_t at)
{
    const tk_kernel_args *pool = j->a->pool;
    tk_max_unpool_2x2_plane(pool->dy + at, pool->scratch + at, relu ? pool->y + at : NULL,
                            j->q.oh, j->q.ow, j->pooled.oh, j->pooled.ow, dst);
}

/* dy (n, o, pixel) into t (o, n, pixel) for samples [n0, n1), through the ReLU's mask. */
static void grad_task(int64_t n0, int64_t n1, void *ud)
{
    const conv_job *j = ud;
    const tk_kernel_args *a = j->a;
    int opix = j->q.oh * j->q.ow, ppix = j->pooled.oh * j->pooled.ow;
    size_t np = (size_t)a->n * opix;
    bool relu = a->node->act == TK_ACT_RELU;
    for (int64_t n = n0; n < n1; n++) {
        for (int o = 0; o < j->q.o; o++) {
            size_t at = ((size_t)n * j->q.o + o) * opix;
            float *restrict dst = j->t + (size_t)o * np + (size_t)n * opix;
            if (a->pool) {
                unpool_plane(j, dst, relu, ((size_t)n * j->q.o + o) * ppix);
                continue;
            }
            const float *restrict dy = a->dy + at, *restrict y = a->y + at;
            if (relu) {
                for (int p = 0; p < opix; p++) {
                    float g = dy[p];
                    dst[p] = y[p] > 0.0f ? g : 0.0f;
                }
            } else {
                memcpy(dst, dy, sizeof(float) * (size_t)opix);
            }
        }
    }
}

static void bias_task(int64_t o0, int64_t o1, void *ud)
{
    const conv_job *j = ud;
    size_t np = (size_t)j->a->n * j->q.oh * j->q.ow;
    float *db = j->a->dparam[1];
    bool over = tk_dparam_overwrite(j->a, 1);
    for (int64_t o = o0; o < o1; o++)
        db[o] = (over ? 0.0f : db[o]) + (float)row_sum(j->t + (size_t)o * np, (int)np);
}

/* One chunk's input gradient: the columns' gradient (over the spent columns), then col2im. */
static void input_grad_task(int task, void *ud)
{
    const conv_job *j = ud;
    const tk_kernel_args *a = j->a;
    const geom *q = &j->q;
    int n0, n1;
    chunk_range(j, task, &n0, &n1);
    size_t opix = (size_t)q->oh * q->ow, np = (size_t)a->n * opix, at = (size_t)n0 * opix;
    size_t sample = (size_t)q->c * q->h * q->w;
    int kg = q->c / q->groups * q->kh * q->kw, og = q->o / q->groups;
    for (int g = 0; g < q->groups; g++)
        tk_sgemm_serial(true, false, kg, (int)((size_t)(n1 - n0) * opix), og, 1.0f,
                        a->param[0] + (size_t)g * og * kg, kg, j->t + g * og * np + at,
                        (int)np, 0.0f, j->cols + g * kg * np + at, (int)np);
    if (!a->dx_accumulate[0])
        memset(a->dx[0] + n0 * sample, 0, sizeof(float) * (size_t)(n1 - n0) * sample);
    col2im(j->cols, a->dx[0], q, a->n, 0, q->c, n0, n1);
}

static void backward(const tk_kernel_args *a)
{
    conv_job j = job_of(a);
    geom q = j.q;
    int np = a->n * q.oh * q.ow, kg = q.c / q.groups * q.kh * q.kw, og = q.o / q.groups;
    float *cols = j.cols, *t = j.t;
    tk_parallel_range(a->n, 1, grad_task, &j);
    if (a->node->n_params > 1 && a->dparam[1])
        tk_parallel_range(q.o, 1, bias_task, &j);
    if (a->dparam[0])
        for (int g = 0; g < q.groups; g++)
            tk_sgemm(false, true, og, kg, np, 1.0f, t + (size_t)g * og * np, np,
                     cols + (size_t)g * kg * np, np, tk_dparam_overwrite(a, 0) ? 0.0f : 1.0f,
                     a->dparam[0] + (size_t)g * og * kg, kg);
    if (!a->dx[0])
        return;
    /* The columns are spent once dweight has them: their gradient overwrites them. */
    tk_parallel((a->n + j.chunk - 1) / j.chunk, input_grad_task, &j);
}

const tk_op_def tk_op_conv2d = {
    .name = "conv2d",
    .min_inputs = 1,
    .max_inputs = 1,
    .flags = TK_OP_RELU_EPILOGUE | TK_OP_POOL_EPILOGUE,
    .infer = infer,
    .forward = forward,
    .backward = backward,
};
