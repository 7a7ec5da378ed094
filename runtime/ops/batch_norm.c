/* batch_norm.c - nn.BatchNorm1d ((N, C) or (N, C, L)) and nn.BatchNorm2d ((N, C, H, W)), two
 * registered ops over one implementation: per-channel statistics over the batch and every
 * position. Training normalises with the batch statistics (biased variance) and moves the
 * running statistics by `momentum` with the unbiased variance; eval uses the running ones.
 * Parameters in PyTorch's state_dict order: weight, bias (if affine), then the buffers
 * running_mean, running_var, num_batches_tracked (a float holding an integer). The mean and
 * 1/std used by forward stay in scratch for backward. Sums are in double, as PyTorch's CPU
 * kernel does for float32. With sync_batch_norm (a->sync) the training statistics and
 * backward's two sums are those of every data-parallel rank's rows, as SyncBatchNorm's.
 * Not here: momentum=None (cumulative average), track_running_stats=false. */
#include "tk_int.h"

#include <math.h>

enum { CHANNELS, INNER, AFFINE, BUFFERS };
enum { EPS, MOMENTUM };

static tk_status infer_ndim(tk_graph *g, tk_node *n, tk_ctx *ctx, int min_ndim, int max_ndim,
                            const char *layout)
{
    const tk_shape *x = &tk_graph_node(g, n->inputs[0])->shape;
    char s[96];
    if (x->ndim < min_ndim || x->ndim > max_ndim)
        return tk_node_fail(ctx, n, "expects an input of shape %s, got %s", layout,
                            tk_shape_str(x, s, sizeof s));
    int64_t c = x->d[1], want = tk_attr_int(n, "num_features", 0);
    if (want > 0 && want != c)
        return tk_node_fail(ctx, n, "input of shape %s does not fit num_features=%lld (it "
                            "has %lld channels)", tk_shape_str(x, s, sizeof s),
                            (long long)want, (long long)c);
    int64_t inner = tk_sample_numel(x) / c;
    double eps = tk_attr_float(n, "eps", 1e-5), momentum = tk_attr_float(n, "momentum", 0.1);
    if (!(eps > 0))
        return tk_node_fail(ctx, n, "eps must be positive, got %g", eps);
    if (!(momentum >= 0 && momentum <= 1))
        return tk_node_fail(ctx, n, "momentum must be in [0, 1], got %g", momentum);
    bool affine = tk_attr_int(n, "affine", 1) != 0;
    tk_shape per_channel = {1, {c}};
    if (affine && (tk_node_param(g, n, "weight", per_channel, true, TK_INIT_ONES, 0) < 0 ||
                   tk_node_param(g, n, "bias", per_channel, true, TK_INIT_ZEROS, 0) < 0))
        return TK_ERR_INPUT;
    if (tk_node_param(g, n, "running_mean", per_channel, false, TK_INIT_ZEROS, 0) < 0 ||
        tk_node_param(g, n, "running_var", per_channel, false, TK_INIT_ONES, 0) < 0 ||
        tk_node_param(g, n, "num_batches_tracked", (tk_shape){0, {0}}, false, TK_INIT_ZEROS,
                      0) < 0)
        return TK_ERR_INPUT;
    n->shape = *x;
    n->iattr[CHANNELS] = c;
    n->iattr[INNER] = inner;
    n->iattr[AFFINE] = affine;
    n->iattr[BUFFERS] = affine ? 2 : 0;
    n->fattr[EPS] = eps;
    n->fattr[MOMENTUM] = momentum;
    n->scratch = 6 * (size_t)c + 2; /* mean, 1/std, then 1 + 2C doubles (sums_of) */
    return TK_OK;
}

static tk_status infer1d(tk_graph *g, tk_node *n, tk_ctx *ctx)
{
    return infer_ndim(g, n, ctx, 2, 3, "(batch, channels) or (batch, channels, length)");
}

static tk_status infer2d(tk_graph *g, tk_node *n, tk_ctx *ctx)
{
    return infer_ndim(g, n, ctx, 4, 4, "(batch, channels, height, width)");
}

/* Sums over one contiguous run in eight double lanes: they vectorise where one running sum
 * cannot, and differ from it only in the last bits. */
enum { LANES = 8 };

static double lanes_total(const double *lane, double tail)
{
    for (int l = 0; l < LANES; l++)
        tail += lane[l];
    return tail;
}

static double sum_of(const float *x, size_t n)
{
    double lane[LANES] = {0}, tail = 0;
    size_t i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int l = 0; l < LANES; l++)
            lane[l] += x[i + l];
    for (; i < n; i++)
        tail += x[i];
    return lanes_total(lane, tail);
}

/* Sum of (x - m)^2, each square rounded to float as PyTorch's kernel does. */
static double squares_of(const float *x, size_t n, float m)
{
    double lane[LANES] = {0}, tail = 0;
    size_t i = 0;
    for (; i + LANES <= n; i += LANES) {
        for (int l = 0; l < LANES; l++) {
            float d = x[i + l] - m;
            lane[l] += d * d;
        }
    }
    for (; i < n; i++) {
        float d = x[i] - m;
        tail += d * d;
    }
    return lanes_total(lane, tail);
}

/* Sum of (x - m) * dy. */
static double dot_of(const float *x, const float *dy, size_t n, float m)
{
    double lane[LANES] = {0}, tail = 0;
    size_t i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int l = 0; l < LANES; l++)
            lane[l] += (x[i + l] - m) * dy[i + l];
    for (; i < n; i++)
        tail += (x[i] - m) * dy[i];
    return lanes_total(lane, tail);
}

/* Per-channel sums in double after the mean and 1/std (scratch: 2C floats), at an 8-byte
 * boundary (the plan aligns scratch): [0] the batch's element count per channel, kept from
 * forward for backward, then the partial sums a call reduces (at most 2C). */
static double *sums_of(const tk_kernel_args *a)
{
    return (double *)(a->scratch + 2 * a->node->iattr[CHANNELS]);
}

/* With sync_batch_norm, the sums become those over every rank's rows (one fixed order, so
 * every rank gets the same bits); otherwise they stay this call's. */
static void sum_ranks(const tk_kernel_args *a, double *v, size_t n)
{
    tk_stat_sync *s = a->sync;
    if (s && s->st == TK_OK)
        s->st = s->dist->allreduce_doubles(v, n, s->dist->ud);
}

/* Batch statistics of every channel; updates the running statistics (PyTorch's order of
 * operations: float mean, variance from float deviations summed in double). Synchronised,
 * they are the global batch's, the two passes' sums each reduced once for all channels. */
static void batch_stats(const tk_kernel_args *a, float *mean, float *invstd)
{
    const tk_node *n = a->node;
    size_t channels = (size_t)n->iattr[CHANNELS], inner = (size_t)n->iattr[INNER];
    double *total = sums_of(a), *acc = total + 1;
    for (size_t c = 0; c < channels; c++) {
        acc[c] = 0;
        for (int s = 0; s < a->n; s++)
            acc[c] += sum_of(a->x[0] + ((size_t)s * channels + c) * inner, inner);
    }
    acc[channels] = (double)a->n * (double)inner;
    sum_ranks(a, acc, channels + 1);

    double count = *total = acc[channels];
    for (size_t c = 0; c < channels; c++)
        mean[c] = (float)(acc[c] / count);
    for (size_t c = 0; c < channels; c++) {
        acc[c] = 0;
        for (int s = 0; s < a->n; s++)
            acc[c] += squares_of(a->x[0] + ((size_t)s * channels + c) * inner, inner, mean[c]);
    }
    sum_ranks(a, acc, channels);
    float *running_mean = a->param[n->iattr[BUFFERS]];
    float *running_var = a->param[n->iattr[BUFFERS] + 1];
    float mom = (float)n->fattr[MOMENTUM];
    for (size_t c = 0; c < channels; c++) {
        float vs = (float)acc[c];
        invstd[c] = (float)(1.0 / sqrt((double)(vs / (float)count) + n->fattr[EPS]));
        running_mean[c] = mom * mean[c] + (1 - mom) * running_mean[c];
        /* A one-value batch has no unbiased variance (PyTorch refuses it): keep the old
         * one. */
        if (count > 1)
            running_var[c] = (float)(mom * (double)(vs / (float)(count - 1)) +
                                     (1 - mom) * (double)running_var[c]);
    }
}

static void forward(const tk_kernel_args *a)
{
    const tk_node *n = a->node;
    size_t channels = (size_t)n->iattr[CHANNELS], inner = (size_t)n->iattr[INNER];
    bool affine = n->iattr[AFFINE] != 0;
    float *mean = a->scratch, *invstd = a->scratch + channels;
    if (a->training)
        batch_stats(a, mean, invstd);
    for (size_t c = 0; c < channels; c++) {
        if (!a->training) {
            mean[c] = a->param[n->iattr[BUFFERS]][c];
            invstd[c] = 1.0f / sqrtf(a->param[n->iattr[BUFFERS] + 1][c] + (float)n->fattr[EPS]);
        }
        /* y = x * alpha + beta, the affine form PyTorch's kernel applies. */
        float alpha = invstd[c] * (affine ? a->param[0][c] : 1.0f);
        float beta = (affine ? a->param[1][c] : 0.0f) - mean[c] * alpha;
        for (int s = 0; s < a->n; s++) {
            size_t off = ((size_t)s * channels + c) * inner;
            const float *x = a->x[0] + off;
            float *y = a->y + off;
            for (size_t i = 0; i < inner; i++)
                y[i] = x[i] * alpha + beta;
        }
    }
    if (a->training)
        a->param[n->iattr[BUFFERS] + 2][0] += 1.0f;
}

/* dx = (dy - mean(dy) - xhat * mean(dy * xhat)) * invstd * weight in training, where the
 * batch statistics depend on x; dy * invstd * weight in eval. */
static void backward(const tk_kernel_args *a)
{
    const tk_node *n = a->node;
    size_t channels = (size_t)n->iattr[CHANNELS], inner = (size_t)n->iattr[INNER];
    bool affine = n->iattr[AFFINE] != 0;
    const float *mean = a->scratch, *invstd = a->scratch + channels;
    double *sum = sums_of(a) + 1, *dot = sum + channels;
    for (size_t c = 0; c < channels; c++) {
        sum[c] = dot[c] = 0;
        for (int s = 0; s < a->n; s++) {
            size_t off = ((size_t)s * channels + c) * inner;
            sum[c] += sum_of(a->dy + off, inner);
            dot[c] += dot_of(a->x[0] + off, a->dy + off, inner, mean[c]);
        }
        /* This rank's rows' share: the gradient sum over the ranks adds the others'. */
        if (affine && a->dparam[0])
            a->dparam[0][c] = (tk_dparam_overwrite(a, 0) ? 0.0f : a->dparam[0][c]) +
                              (float)(dot[c] * invstd[c]);
        if (affine && a->dparam[1])
            a->dparam[1][c] = (tk_dparam_overwrite(a, 1) ? 0.0f : a->dparam[1][c]) +
                              (float)sum[c];
    }
    if (!a->dx[0])
        return;
    /* dx depends on the statistics' rows, which synchronised are every rank's. */
    if (a->training)
        sum_ranks(a, sum, 2 * channels);
    double count = a->training ? sums_of(a)[0] : 1.0;
    for (size_t c = 0; c < channels; c++) {
        float m = mean[c], is = invstd[c], w = affine ? a->param[0][c] : 1.0f;
        float k = a->training ? (float)dot[c] * is * is / (float)count : 0.0f;
        float dmean = a->training ? (float)(sum[c] / count) : 0.0f;
        float scale = is * w;
        for (int s = 0; s < a->n; s++) {
            size_t off = ((size_t)s * channels + c) * inner;
            const float *x = a->x[0] + off, *dy = a->dy + off;
            float *dx = a->dx[0] + off;
            if (a->dx_accumulate[0])
                for (size_t i = 0; i < inner; i++)
                    dx[i] += (dy[i] - dmean - (x[i] - m) * k) * scale;
            else
                for (size_t i = 0; i < inner; i++)
                    dx[i] = (dy[i] - dmean - (x[i] - m) * k) * scale;
        }
    }
}

const tk_op_def tk_op_batch_norm1d = {
    .name = "batch_norm1d",
    .min_inputs = 1,
    .max_inputs = 1,
    .flags = TK_OP_BWD_NEEDS_INPUT,
    .infer = infer1d,
    .forward = forward,
    .backward = backward,
};

const tk_op_def tk_op_batch_norm2d = {
    .name = "batch_norm2d",
    .min_inputs = 1,
    .max_inputs = 1,
    .flags = TK_OP_BWD_NEEDS_INPUT,
    .infer = infer2d,
    .forward = forward,
    .backward = backward,
};
