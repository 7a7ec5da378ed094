/* max_pool2d.c - nn.MaxPool2d on NCHW float32: kernel_size, stride (default: the kernel),
 * padding (implicit -inf) and ceil_mode with PyTorch's output-size rule. Each window's argmax
 * (the first maximum, or a NaN, as PyTorch picks it) goes into the node's scratch, so backward
 * routes the gradient without the input: for 2x2 windows of stride 2 as a byte, its place in
 * the window (ops/common.c), else as a float holding the index within the input plane. Not
 * here: dilation, return_indices, max_unpool. */
#include "tk_int.h"
#include "common.h"

#include <math.h>
#include <string.h>

static tk_status infer(tk_graph *g, tk_node *n, tk_ctx *ctx)
{
    tk_pool2d_window win;
    tk_status status = tk_pool2d_window_of(g, n, ctx, &win);
    if (status != TK_OK)
        return status;
    const tk_shape *x = &tk_graph_node(g, n->inputs[0])->shape;
    char s[96];
    /* Argmax indices are stored as floats: exact up to 2^24. */
    if (x->d[2] * x->d[3] > ((int64_t)1 << 24))
        return tk_node_fail(ctx, n, "input of shape %s has planes too large to pool",
                            tk_shape_str(x, s, sizeof s));
    status = tk_pool2d_output(g, n, ctx, &win);
    if (status != TK_OK)
        return status;
    size_t windows = (size_t)tk_shape_numel(&n->shape);
    tk_pool2d_geom q = tk_pool2d_geom_of(n);
    n->scratch = tk_pool2d_is_2x2(&q) ? (windows + sizeof(float) - 1) / sizeof(float) : windows;
    return TK_OK;
}

/* Planes (n, c) are independent: each pass takes a range of them on the pool's threads. */
typedef struct {
    const tk_kernel_args *a;
    tk_pool2d_geom q;
} pool_job;

static void forward_task(int64_t p0, int64_t p1, void *ud)
{
    const pool_job *j = ud;
    const tk_kernel_args *a = j->a;
    tk_pool2d_geom q = j->q;
    size_t plane = (size_t)q.h * q.w, opix = (size_t)q.oh * q.ow;
    /* The common case without the general loop's bounds arithmetic. */
    if (tk_pool2d_is_2x2(&q)) {
        for (int64_t p = p0; p < p1; p++)
            tk_max_pool_2x2_plane(a->x[0] + p * plane, q.w, q.oh, q.ow, a->y + p * opix,
                                  (uint8_t *)a->scratch + p * opix);
        return;
    }
    for (int64_t p = p0; p < p1; p++) {
        const float *x = a->x[0] + p * plane;
        float *y = a->y + p * opix, *arg = a->scratch + p * opix;
        for (int oh = 0; oh < q.oh; oh++) {
            int h0 = oh * q.sh - q.ph, h1 = h0 + q.kh < q.h ? h0 + q.kh : q.h;
            h0 = h0 > 0 ? h0 : 0;
            for (int ow = 0; ow < q.ow; ow++) {
                int w0 = ow * q.sw - q.pw, w1 = w0 + q.kw < q.w ? w0 + q.kw : q.w;
                w0 = w0 > 0 ? w0 : 0;
                /* PyTorch's rule: the first maximum, unless there is a NaN (then the last
                 * NaN). Arithmetic selects instead of branches, which random data defeats. */
                int best = h0 * q.w + w0, nan_at = -1;
                float m = -INFINITY;
                for (int ih = h0; ih < h1; ih++) {
                    for (int iw = w0; iw < w1; iw++) {
                        int i = ih * q.w + iw;
                        float v = x[i];
                        best += (v > m) * (i - best);
                        nan_at += isnan(v) * (i - nan_at);
                        m = v > m ? v : m;
                    }
                }
                best = nan_at >= 0 ? nan_at : best;
                y[oh * q.ow + ow] = x[best];
                arg[oh * q.ow + ow] = (float)best;
            }
        }
    }
}

static void forward(const tk_kernel_args *a)
{
    pool_job j = {a, tk_pool2d_geom_of(a->node)};
    tk_parallel_range((int64_t)a->n * j.q.c, 1, forward_task, &j);
}

static void backward_task(int64_t p0, int64_t p1, void *ud)
{
    const pool_job *j = ud;
    const tk_kernel_args *a = j->a;
    const tk_pool2d_geom *q = &j->q;
    size_t plane = (size_t)q->h * q->w, opix = (size_t)q->oh * q->ow;
    /* The common case writes each plane whole, so needs no zeros first. */
    if (tk_pool2d_is_2x2(q)) {
        const uint8_t *places = (const uint8_t *)a->scratch;
        for (int64_t p = p0; p < p1; p++) {
            float *dx = a->dx[0] + p * plane;
            const float *dy = a->dy + p * opix;
            const uint8_t *place = places + p * opix;
            if (!a->dx_accumulate[0]) {
                tk_max_unpool_2x2_plane(dy, place, NULL, q->h, q->w, q->oh, q->ow, dx);
                continue;
            }
            for (int r = 0; r < q->oh; r++)
                for (int c = 0; c < q->ow; c++) {
                    int k = place[r * q->ow + c];
                    dx[(size_t)(2 * r + k / 2) * q->w + 2 * c + k % 2] += dy[r * q->ow + c];
                }
        }
        return;
    }
    if (!a->dx_accumulate[0])
        memset(a->dx[0] + p0 * plane, 0, sizeof(float) * (size_t)(p1 - p0) * plane);
    for (int64_t p = p0; p < p1; p++) {
        float *dx = a->dx[0] + p * plane;
        const float *dy = a->dy + p * opix, *arg = a->scratch + p * opix;
        for (size_t i = 0; i < opix; i++)
            dx[(size_t)arg[i]] += dy[i];
    }
}

static void backward(const tk_kernel_args *a)
{
    pool_job j = {a, tk_pool2d_geom_of(a->node)};
    tk_parallel_range((int64_t)a->n * j.q.c, 1, backward_task, &j);
}

const tk_op_def tk_op_max_pool2d = {
    .name = "max_pool2d",
    .min_inputs = 1,
    .max_inputs = 1,
    .flags = 0,
    .infer = infer,
    .forward = forward,
    .backward = backward,
};
