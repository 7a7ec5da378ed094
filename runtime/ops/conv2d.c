/* conv2d.c - nn.Conv2d on NCHW float32: stride, padding (numbers, "valid" or PyTorch's "same"),
 * dilation, groups and an optional bias. im2col and products over the columns, one pool task
 * per chunk of samples in each direction, so a chunk's columns and product stay in the core's
 * cache between the phases and the threads meet once per layer, not once per phase. Forward:
 * im2col, product, bias/ReLU epilogue, and a following 2x2 max pooling when the fusion pass
 * hands it one. Backward: the output gradient, the chunk's shares of the bias and weight
 * gradients over columns made again from the input (cheaper than keeping the batch's columns
 * in memory from forward to backward), the columns' gradient and col2im; the shares are then
 * summed in chunk order. The chunks depend on the shape alone, so the thread count changes
 * no value. Not here: transposed convolution, other layouts. */
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

/* A chunk holds at least MIN_COLUMNS columns, or about CHUNK_BYTES of columns and product if
 * that is more: the products over fewer columns pack the weights too often (on the CNN
 * example, chunks of 3 samples, 588 columns, ran its epoch 5-10% slower than chunks of 8,
 * though those outgrow a 1 MiB L2). It is rounded up to a divisor of the batch when one is
 * near, so the chunks are equal and so are the threads' shares, and it leaves the batch at
 * least MIN_TASKS chunks to share. */
enum { CHUNK_BYTES = 512 << 10, MIN_COLUMNS = 1536, MIN_TASKS = 4 };

static int chunk_of(const geom *q, int batch)
{
    size_t opix = (size_t)q->oh * q->ow;
    size_t per = ((size_t)q->c * q->kh * q->kw + (size_t)q->o) * opix * sizeof(float);
    size_t by_bytes = CHUNK_BYTES / per, by_columns = (MIN_COLUMNS + opix - 1) / opix;
    size_t s = by_bytes > by_columns ? by_bytes : by_columns;
    size_t most = ((size_t)batch + MIN_TASKS - 1) / MIN_TASKS;
    s = s < most ? s : most;
    for (size_t d = s; d < 2 * s && d <= most; d++)
        if (batch % d == 0)
            return (int)d;
    return (int)s;
}

/* The scratch for a batch of n: a region per chunk (a job uses at most one per thread), a
 * weight gradient per chunk and a bias gradient per chunk. */
static size_t scratch_of(const geom *q, int n, bool bias)
{
    int chunk = chunk_of(q, n), tasks = (n + chunk - 1) / chunk;
    size_t rows = (size_t)q->c * q->kh * q->kw, kg = (size_t)q->c / q->groups * q->kh * q->kw;
    size_t region = (rows + (size_t)q->o) * (size_t)chunk * q->oh * q->ow;
    return (size_t)tasks * (region + (size_t)q->o * kg + (bias ? (size_t)q->o : 0));
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
    geom q = geom_of(n);
    n->scratch = scratch_of(&q, (int)x->d[0], n->n_params > 1);
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

/* What the parallel parts of a conv step share. Each task takes one chunk of samples: its
 * columns and product live in a region of the scratch (its thread's, so a thread reuses the
 * same cache lines chunk after chunk), and its shares of the weight and bias gradients go to
 * the chunk's own slot, summed in chunk order afterwards. */
typedef struct {
    const tk_kernel_args *a;
    geom q;
    tk_pool2d_geom pooled;     /* with a pooling epilogue (a->pool): its planes */
    int chunk;                 /* samples per task */
    int tasks;                 /* chunks of this batch */
    size_t region;             /* floats of one region: a chunk's columns, then its product */
    float *partial_dw;         /* a weight gradient per chunk */
    float *partial_db;         /* a bias gradient per chunk */
} conv_job;

/* Columns [from, to) of rows [r0, r1) of a plane width floats wide set to 0, column by
 * column: written row by row, each row's one or two zeros became a call to memset. */
static void zero_columns(float *plane, int width, int r0, int r1, int from, int to)
{
    for (int c = from; c < to; c++)
        for (int r = r0; r < r1; r++)
            plane[(size_t)r * width + c] = 0.0f;
}

/* Input and output rows equally wide and stride 1: a tap's rows are then one shifted run of
 * the plane, in im2col and in its adjoint. */
static bool contiguous(const geom *q, const tap *t)
{
    return q->sw == 1 && q->sh == 1 && q->ow == q->w && t->rlo < t->rhi;
}

/* One sample's plane of tap t: dst[oh, ow] = its input entry, 0 outside. */
static void tap_plane(const float *xc, float *dst, const geom *q, const tap *t)
{
    if (t->rlo > 0)
        memset(dst, 0, sizeof(float) * (size_t)t->rlo * q->ow);
    if (contiguous(q, t)) {
        /* One shifted copy, whose entries left and right of [wlo, whi) came from the row
         * beside (zeroed below). */
        size_t first = (size_t)t->rlo * q->ow + t->wlo;
        size_t last = (size_t)(t->rhi - 1) * q->ow + t->whi;
        memcpy(dst + first, xc + (size_t)(t->rlo + t->ioff) * q->w + t->first_w,
               sizeof(float) * (last - first));
    } else {
        /* Plain loops: rows are often too short for memcpy calls to pay. */
        for (int oh = t->rlo; oh < t->rhi; oh++) {
            float *d = dst + (size_t)oh * q->ow;
            const float *src = xc + (size_t)(oh * q->sh + t->ioff) * q->w + t->first_w;
            if (q->sw == 1)
                for (int ow = t->wlo; ow < t->whi; ow++)
                    d[ow] = src[ow - t->wlo];
            else
                for (int ow = t->wlo; ow < t->whi; ow++)
                    d[ow] = src[(size_t)(ow - t->wlo) * q->sw];
        }
    }
    zero_columns(dst, q->ow, t->rlo, t->rhi, 0, t->wlo);
    zero_columns(dst, q->ow, t->rlo, t->rhi, t->whi, q->ow);
    if (t->rhi < q->oh)
        memset(dst + (size_t)t->rhi * q->ow, 0, sizeof(float) * (size_t)(q->oh - t->rhi) * q->ow);
}

/* cols[(c, i, j)][(n - n0, oh, ow)] = x[n, c, oh*sh - ph + i*dh, ow*sw - pw + j*dw], 0 outside,
 * for samples [n0, n1); rows are ld floats apart. Taps outermost: each is worked out once. */
static void im2col(const float *x, float *cols, const geom *q, size_t ld, int n0, int n1)
{
    size_t plane = (size_t)q->h * q->w, opix = (size_t)q->oh * q->ow;
    int taps = q->kh * q->kw;
    for (int i = 0; i < q->kh; i++)
        for (int j = 0; j < q->kw; j++) {
            tap t = tap_of(q, i, j);
            for (int c = 0; c < q->c; c++) {
                float *row = cols + ((size_t)c * taps + (size_t)i * q->kw + j) * ld;
                for (int n = n0; n < n1; n++)
                    tap_plane(x + ((size_t)n * q->c + c) * plane, row + (size_t)(n - n0) * opix,
                              q, &t);
            }
        }
}

/* One sample's plane of tap t added into its plane of dx, or with first written there
 * instead: 0 + each term, 0 where the tap has none, as adding to a zeroed plane gives. */
static void tap_plane_adjoint(float *src, float *xc, const geom *q, const tap *t, bool first)
{
    size_t plane = (size_t)q->h * q->w;
    if (contiguous(q, t)) {
        /* One shifted run, as in im2col: the terms of padded positions in between would
         * land on the row beside, so they are set to 0 first (nothing reads them after);
         * adding +0 changes no value. With stride 1 a tap gives each entry at most one
         * term, so the first tap can write its run. */
        zero_columns(src, q->ow, t->rlo, t->rhi, 0, t->wlo);
        zero_columns(src, q->ow, t->rlo, t->rhi, t->whi, q->ow);
        size_t from = (size_t)t->rlo * q->ow + t->wlo;
        size_t n = (size_t)(t->rhi - 1) * q->ow + t->whi - from;
        size_t at = (size_t)(t->rlo + t->ioff) * q->w + t->first_w;
        const float *s = src + from;
        float *d = xc + at;
        if (first) {
            memset(xc, 0, sizeof(float) * at);
            for (size_t k = 0; k < n; k++)
                d[k] = 0.0f + s[k];
            memset(d + n, 0, sizeof(float) * (plane - at - n));
        } else {
            for (size_t k = 0; k < n; k++)
                d[k] += s[k];
        }
        return;
    }
    if (first)
        memset(xc, 0, sizeof(float) * plane);
    for (int oh = t->rlo; oh < t->rhi; oh++) {
        const float *s = src + (size_t)oh * q->ow + t->wlo;
        float *d = xc + (size_t)(oh * q->sh + t->ioff) * q->w + t->first_w;
        if (q->sw == 1)
            for (int k = 0; k < t->whi - t->wlo; k++)
                d[k] += s[k];
        else
            for (int k = 0; k < t->whi - t->wlo; k++)
                d[(size_t)k * q->sw] += s[k];
    }
}

/* The adjoint of im2col for samples [n0, n1): dx[n, c, ih, iw] += every column entry that
 * copied it, in tap order (taps outermost, as in im2col); with overwrite, dx's old values
 * are not read (the first tap writes each plane). The columns' entries for padded positions
 * are overwritten. */
static void col2im(float *cols, float *dx, const geom *q, size_t ld, int n0, int n1,
                   bool overwrite)
{
    size_t plane = (size_t)q->h * q->w, opix = (size_t)q->oh * q->ow;
    int taps = q->kh * q->kw;
    for (int i = 0; i < q->kh; i++)
        for (int j = 0; j < q->kw; j++) {
            tap t = tap_of(q, i, j);
            bool first = overwrite && i == 0 && j == 0;
            for (int c = 0; c < q->c; c++) {
                float *row = cols + ((size_t)c * taps + (size_t)i * q->kw + j) * ld;
                for (int n = n0; n < n1; n++)
                    tap_plane_adjoint(row + (size_t)(n - n0) * opix,
                                      dx + ((size_t)n * q->c + c) * plane, q, &t, first);
            }
        }
}

/* Sum of n floats: blocks of 256 (the last may be shorter) summed in eight float lanes
 * (which vectorise; each lane adds at most 32 values), the blocks added in double. */
static double row_sum(const float *v, size_t n)
{
    double total = 0;
    for (size_t i = 0; i < n; i += 256) {
        size_t m = n - i < 256 ? n - i : 256, k = 0;
        float lane[8] = {0};
        for (; k + 8 <= m; k += 8)
            for (int l = 0; l < 8; l++)
                lane[l] += v[i + k + l];
        for (int l = 0; k < m; k++, l++)
            lane[l] += v[i + k];
        for (int l = 0; l < 8; l++)
            total += lane[l];
    }
    return total;
}

/* A chunk's samples [n0, n1), its columns and its product t: (c, i, j) and (o) rows of
 * (n - n0, pixel) columns, ld of them. The region is the running thread's while the job
 * has at least one chunk per thread, else the chunk's own. */
typedef struct {
    int n0, n1;
    size_t ld;
    float *cols, *t;
} chunk;

static chunk chunk_at(const conv_job *j, int task)
{
    const geom *q = &j->q;
    int n0 = task * j->chunk, n1 = n0 + j->chunk < j->a->n ? n0 + j->chunk : j->a->n;
    int region = tk_pool_size() <= j->tasks ? tk_pool_thread() : task;
    size_t ld = (size_t)(n1 - n0) * q->oh * q->ow;
    float *cols = j->a->scratch + (size_t)region * j->region;
    return (chunk){n0, n1, ld, cols, cols + (size_t)q->c * q->kh * q->kw * ld};
}

/* The chunk's product t (o, n - n0, pixel) into y (n, o, pixel), with the bias and a fused
 * ReLU (and a fused pooling, whose planes then take the place of y). */
static void output_of(const conv_job *j, const chunk *k)
{
    const tk_kernel_args *a = j->a;
    int opix = j->q.oh * j->q.ow, ppix = j->pooled.oh * j->pooled.ow;
    const float *bias = a->node->n_params > 1 ? a->param[1] : NULL;
    bool relu = a->node->act == TK_ACT_RELU;
    uint8_t *places = a->pool ? (uint8_t *)a->pool->scratch : NULL;
    for (int n = k->n0; n < k->n1; n++) {
        for (int o = 0; o < j->q.o; o++) {
            const float *restrict src = k->t + (size_t)o * k->ld + (size_t)(n - k->n0) * opix;
            float b = bias ? bias[o] : 0.0f;
            if (a->pool) {
                size_t at = ((size_t)n * j->q.o + o) * ppix;
                tk_max_pool_2x2_biased(src, b, relu, j->q.ow, j->pooled.oh, j->pooled.ow,
                                       a->pool->y + at, places + at);
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

/* t = W @ cols, group by group: the columns are the chunk's (and the product's) width. */
static void product(const conv_job *j, const chunk *k, bool trans_w, float *dst, const float *src)
{
    const geom *q = &j->q;
    int kg = q->c / q->groups * q->kh * q->kw, og = q->o / q->groups, ld = (int)k->ld;
    for (int g = 0; g < q->groups; g++) {
        const float *w = j->a->param[0] + (size_t)g * og * kg;
        if (trans_w)
            tk_sgemm_serial(true, false, kg, ld, og, 1.0f, w, kg, src + (size_t)g * og * ld, ld,
                            0.0f, dst + (size_t)g * kg * ld, ld);
        else
            tk_sgemm_serial(false, false, og, ld, kg, 1.0f, w, kg, src + (size_t)g * kg * ld, ld,
                            0.0f, dst + (size_t)g * og * ld, ld);
    }
}

/* One chunk's forward: its columns, their product with the weights, the epilogue. */
static void forward_task(int task, void *ud)
{
    const conv_job *j = ud;
    chunk k = chunk_at(j, task);
    im2col(j->a->x[0], k.cols, &j->q, k.ld, k.n0, k.n1);
    product(j, &k, false, k.t, k.cols);
    output_of(j, &k);
}

static conv_job job_of(const tk_kernel_args *a)
{
    geom q = geom_of(a->node);
    tk_pool2d_geom pooled = {0};
    if (a->pool)
        pooled = tk_pool2d_geom_of(a->pool->node);
    /* The regions and slots are laid out for the planned batch's chunks; a smaller batch
     * takes chunks of the same size, a prefix of them. */
    int planned = (int)a->node->shape.d[0], chunk = chunk_of(&q, planned);
    int slots = (planned + chunk - 1) / chunk, tasks = (a->n + chunk - 1) / chunk;
    size_t region = ((size_t)q.c * q.kh * q.kw + q.o) * (size_t)chunk * q.oh * q.ow;
    float *partial_dw = a->scratch + (size_t)slots * region;
    float *partial_db = partial_dw + (size_t)slots * q.o * (q.c / q.groups) * q.kh * q.kw;
    return (conv_job){a, q, pooled, chunk, tasks, region, partial_dw, partial_db};
}

static void forward(const tk_kernel_args *a)
{
    conv_job j = job_of(a);
    tk_parallel(j.tasks, forward_task, &j);
}

/* A fused pooling's gradient routed to each window's argmax through the ReLU's mask (the
 * pooled value is the rectified one there). */
static void unpool_plane(const conv_job *j, float *dst, bool relu, size_t at)
{
    const tk_kernel_args *pool = j->a->pool;
    const uint8_t *places = (const uint8_t *)pool->scratch;
    tk_max_unpool_2x2_plane(pool->dy + at, places + at, relu ? pool->y + at : NULL, j->q.oh,
                            j->q.ow, j->pooled.oh, j->pooled.ow, dst);
}

/* The chunk's dy (n, o, pixel) into t (o, n - n0, pixel), through the ReLU's mask. */
static void grad_of(const conv_job *j, const chunk *k)
{
    const tk_kernel_args *a = j->a;
    int opix = j->q.oh * j->q.ow, ppix = j->pooled.oh * j->pooled.ow;
    bool relu = a->node->act == TK_ACT_RELU;
    for (int n = k->n0; n < k->n1; n++) {
        for (int o = 0; o < j->q.o; o++) {
            size_t at = ((size_t)n * j->q.o + o) * opix;
            float *restrict dst = k->t + (size_t)o * k->ld + (size_t)(n - k->n0) * opix;
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

/* One chunk's backward: the output gradient, the chunk's shares of the bias and weight
 * gradients (over columns made again from the input, still in cache for the input
 * gradient's product), then the columns' gradient and col2im. */
static void backward_task(int task, void *ud)
{
    const conv_job *j = ud;
    const tk_kernel_args *a = j->a;
    const geom *q = &j->q;
    chunk k = chunk_at(j, task);
    int kg = q->c / q->groups * q->kh * q->kw, og = q->o / q->groups, ld = (int)k.ld;
    grad_of(j, &k);
    if (a->node->n_params > 1 && a->dparam[1])
        for (int o = 0; o < q->o; o++)
            j->partial_db[(size_t)task * q->o + o] = (float)row_sum(k.t + (size_t)o * k.ld, k.ld);
    if (a->dparam[0]) {
        im2col(a->x[0], k.cols, q, k.ld, k.n0, k.n1);
        float *dw = j->partial_dw + (size_t)task * q->o * kg;
        for (int g = 0; g < q->groups; g++)
            tk_sgemm_serial(false, true, og, kg, ld, 1.0f, k.t + (size_t)g * og * ld, ld,
                            k.cols + (size_t)g * kg * ld, ld, 0.0f, dw + (size_t)g * og * kg, kg);
    }
    if (!a->dx[0])
        return;
    product(j, &k, true, k.cols, k.t);
    col2im(k.cols, a->dx[0], q, k.ld, k.n0, k.n1, !a->dx_accumulate[0]);
}

/* A gradient's chunk shares summed in chunk order, so no thread count changes a bit. */
typedef struct {
    const float *shares;
    float *g;
    size_t stride;
    int tasks;
    bool overwrite;
} share_sum;

/* SHARE_LANES entries at a time, each still added in chunk order: the lanes vectorise and
 * are independent, where one entry's running total was a chain of dependent adds. */
enum { SHARE_LANES = 32 };

static void share_sum_range(int64_t lo, int64_t hi, void *ud)
{
    const share_sum *s = ud;
    for (int64_t e = lo; e < hi; e += SHARE_LANES) {
        int lanes = hi - e < SHARE_LANES ? (int)(hi - e) : SHARE_LANES;
        float total[SHARE_LANES] = {0};
        for (int t = 0; t < s->tasks; t++) {
            const float *share = s->shares + (size_t)t * s->stride + e;
            if (lanes == SHARE_LANES)
                for (int l = 0; l < SHARE_LANES; l++)
                    total[l] += share[l];
            else
                for (int l = 0; l < lanes; l++)
                    total[l] += share[l];
        }
        for (int l = 0; l < lanes; l++)
            s->g[e + l] = s->overwrite ? total[l] : s->g[e + l] + total[l];
    }
}

static void sum_shares(const conv_job *j, int param, const float *shares, size_t numel)
{
    share_sum s = {shares, j->a->dparam[param], numel, j->tasks,
                   tk_dparam_overwrite(j->a, param)};
    tk_parallel_range((int64_t)numel, 1024, share_sum_range, &s);
}

static void backward(const tk_kernel_args *a)
{
    conv_job j = job_of(a);
    const geom *q = &j.q;
    tk_parallel(j.tasks, backward_task, &j);
    if (a->dparam[0])
        sum_shares(&j, 0, j.partial_dw, (size_t)q->o * (q->c / q->groups) * q->kh * q->kw);
    if (a->node->n_params > 1 && a->dparam[1])
        sum_shares(&j, 1, j.partial_db, (size_t)q->o);
}

const tk_op_def tk_op_conv2d = {
    .name = "conv2d",
    .min_inputs = 1,
    .max_inputs = 1,
    .flags = TK_OP_BWD_NEEDS_INPUT | TK_OP_RELU_EPILOGUE | TK_OP_POOL_EPILOGUE,
    .infer = infer,
    .forward = forward,
    .backward = backward,
};
