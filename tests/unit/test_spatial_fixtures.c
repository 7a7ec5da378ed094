/* test_spatial_fixtures.c - conv2d, max/avg/adaptive pooling, batch norm 1d/2d (train and
 * eval, incl. the running statistics and num_batches_tracked after the step), layer norm and
 * dropout2d's eval path against PyTorch 1.13 (tests/fixtures, made by
 * tests/gen_fixtures_spatial.py). Each case builds the op's node in a graph planned for one
 * more sample than the fixture holds (so kernels must honour n < planned batch), runs its
 * kernels on hand-made buffers, and checks: y; dx written over NaN garbage, then added to
 * existing values (dx_accumulate); parameter gradients added to existing values; buffers
 * after the step. Scratch starts as NaN garbage too: kernels may not rely on it. Also:
 * dropout2d's training masks (whole planes, rate p), the shape errors' messages, a small
 * CNN's gradients through a compiled plan against finite differences, and the 2x2 max
 * pooling's vector path against PyTorch's rule written out (ties and NaNs at every lane).
 * Tolerance |got - want| <= rtol * |want| + atol with rtol 1e-5, atol 1e-6 (float32 sums in
 * another order); conv2d rtol 1e-4, atol 1e-5 (longer sums through BLAS's blocking). */
#include "check.h"
#include "tk_int.h"
#include "ops/common.h"

#include <math.h>
#include <string.h>

#define INT(k, v) {.key = k, .kind = TK_ATTR_INT, .i = v}
#define FLT(k, v) {.key = k, .kind = TK_ATTR_FLOAT, .f = v}
#define STR(k, v) {.key = k, .kind = TK_ATTR_STR, .s = v}
#define INTS(k, ...)                                                                      \
    {.key = k, .kind = TK_ATTR_INTS, .ints = (const int64_t[]){__VA_ARGS__},              \
     .n = sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t)}

typedef struct {
    const char *file, *op;
    tk_attr attrs[6];
    int n_attrs;
    bool training;
    bool conv;                 /* the looser conv2d tolerance */
} fixture_case;

static const fixture_case cases[] = {
    {"conv2d_basic", "conv2d", {INT("out_channels", 4), INT("kernel_size", 3), INT("padding", 1)},
     3, true, true},
    {"conv2d_stride2_nobias", "conv2d",
     {INT("out_channels", 4), INTS("kernel_size", 3, 2), INT("stride", 2), INTS("padding", 1, 0),
      INT("bias", 0)},
     5, true, true},
    {"conv2d_groups_dilation", "conv2d",
     {INT("out_channels", 6), INT("kernel_size", 3), INT("dilation", 2), INT("groups", 2),
      INT("padding", 2), INT("in_channels", 4)},
     6, true, true},
    {"conv2d_same", "conv2d",
     {INT("out_channels", 3), INTS("kernel_size", 4, 3), INTS("dilation", 1, 2),
      STR("padding", "same")},
     4, true, true},
    {"conv2d_depthwise", "conv2d",
     {INT("out_channels", 6), INT("kernel_size", 3), INT("groups", 3), INTS("stride", 2, 1),
      INTS("padding", 0, 1)},
     5, true, true},
    {"conv2d_chunks", "conv2d", {INT("out_channels", 2), INT("kernel_size", 3), INT("padding", 1)},
     3, true, true},
    {"max_pool2d_basic", "max_pool2d", {INT("kernel_size", 2)}, 1, true, false},
    {"max_pool2d_ceil_pad", "max_pool2d",
     {INT("kernel_size", 3), INT("stride", 2), INT("padding", 1), INT("ceil_mode", 1)}, 4, true,
     false},
    {"max_pool2d_ties", "max_pool2d",
     {INTS("kernel_size", 3, 2), INTS("stride", 2, 1), INTS("padding", 1, 0), INT("ceil_mode", 1)},
     4, true, false},
    {"avg_pool2d_basic", "avg_pool2d", {INT("kernel_size", 2)}, 1, true, false},
    {"avg_pool2d_ceil_pad", "avg_pool2d",
     {INT("kernel_size", 3), INT("stride", 2), INT("padding", 1), INT("ceil_mode", 1)}, 4, true,
     false},
    {"avg_pool2d_exclude_pad", "avg_pool2d",
     {INT("kernel_size", 3), INT("stride", 2), INT("padding", 1), INT("ceil_mode", 1),
      INT("count_include_pad", 0)},
     5, true, false},
    {"adaptive_avg_pool2d_uneven", "adaptive_avg_pool2d", {INTS("output_size", 3, 2)}, 1, true,
     false},
    {"adaptive_avg_pool2d_upsample", "adaptive_avg_pool2d", {INTS("output_size", 4, 5)}, 1,
     true, false},
    {"adaptive_avg_pool2d_global", "adaptive_avg_pool2d", {INT("output_size", 1)}, 1, true,
     false},
    {"batch_norm1d_train", "batch_norm1d", {FLT("momentum", 0.1), INT("num_features", 4)}, 2,
     true, false},
    {"batch_norm1d_train_3d", "batch_norm1d", {FLT("momentum", 0.3), FLT("eps", 1e-3)}, 2, true,
     false},
    {"batch_norm1d_eval", "batch_norm1d", {{0}}, 0, false, false},
    {"batch_norm2d_train", "batch_norm2d", {FLT("momentum", 0.1)}, 1, true, false},
    {"batch_norm2d_train_noaffine", "batch_norm2d", {INT("affine", 0)}, 1, true, false},
    {"batch_norm2d_eval", "batch_norm2d", {FLT("eps", 1e-3)}, 1, false, false},
    {"layer_norm_last", "layer_norm", {INTS("normalized_shape", 5)}, 1, true, false},
    {"layer_norm_two_dims", "layer_norm", {INTS("normalized_shape", 4, 5), FLT("eps", 1e-3)}, 2,
     true, false},
    {"layer_norm_noaffine", "layer_norm", {INT("elementwise_affine", 0)}, 1, true, false},
    {"dropout2d_eval", "dropout2d", {FLT("p", 0.4)}, 1, false, false},
};

/* Prefilled gradient values: kernels must add parameter gradients and, when told, dx. */
#define DPARAM_START 0.25f
#define DX_START 0.5f

static const float *tensor(const tk_st_file *f, const char *file, const char *name,
                           tk_shape *shape)
{
    int i = tk_st_find(f, name);
    CHECK_MSG(i >= 0, "%s: fixture tensor '%s' missing", file, name);
    if (i < 0)
        return NULL;
    if (shape)
        *shape = tk_st_shape(f, i);
    return tk_st_data(f, i);
}

/* Compare got - offset with want. */
static void expect(const fixture_case *c, const char *what, const float *got, float offset,
                   const float *want, int64_t n)
{
    double rtol = c->conv ? 1e-4 : 1e-5, atol = c->conv ? 1e-5 : 1e-6;
    int bad = 0;
    for (int64_t i = 0; i < n; i++)
        if (!tk_close(got[i] - offset, want[i], rtol, atol) && bad++ < 3)
            fprintf(stderr, "%s %s[%lld]: %.9g vs PyTorch %.9g\n", c->file, what, (long long)i,
                    got[i] - offset, want[i]);
    CHECK_MSG(bad == 0, "%s: %s: %d of %lld values differ from PyTorch", c->file, what, bad,
              (long long)n);
}

typedef struct {
    float *bufs[32];
    int n;
} pool;

static float *take(pool *p, size_t n, float fill)
{
    float *b = tk_alloc_floats(n ? n : 1);
    for (size_t i = 0; i < n; i++)
        b[i] = fill;
    p->bufs[p->n++] = b;
    return b;
}

static void run_case(const fixture_case *c)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s.safetensors", TK_FIXTURES, c->file);
    tk_ctx *ctx = tk_ctx_new();
    tk_st_file *f = NULL;
    CHECK_MSG(tk_st_load(path, &f, ctx) == TK_OK, "%s", tk_errmsg(ctx));
    tk_graph *g = tk_graph_new(ctx);
    pool mem = {.n = 0};
    tk_shape xs, ys;
    const float *x = f ? tensor(f, c->file, "x", &xs) : NULL;
    const float *y = f ? tensor(f, c->file, "y", &ys) : NULL;
    const float *dy = f ? tensor(f, c->file, "dy", NULL) : NULL;
    const float *dx = f ? tensor(f, c->file, "dx", NULL) : NULL;
    if (!x || !y || !dy || !dx)
        goto done;
    int batch = (int)xs.d[0];
    tk_graph_set_batch(g, batch + 1);
    tk_shape sample = {xs.ndim - 1, {0}};
    memcpy(sample.d, xs.d + 1, sizeof(int64_t) * (size_t)sample.ndim);
    int in = tk_graph_source(g, sample, "x");
    int id = tk_graph_op(g, c->op, &in, 1, c->attrs, c->n_attrs, "op", "test");
    CHECK_MSG(id >= 0, "%s: %s", c->file, tk_errmsg(ctx));
    if (id < 0)
        goto done;
    const tk_node *n = tk_graph_node(g, id);
    bool same_shape = n->shape.ndim == ys.ndim;
    for (int i = 1; same_shape && i < ys.ndim; i++)
        same_shape = n->shape.d[i] == ys.d[i];
    CHECK_MSG(same_shape, "%s: output shape differs from PyTorch's", c->file);
    if (!same_shape)
        goto done;
    int64_t nx = tk_shape_numel(&xs), ny = tk_shape_numel(&ys);
    size_t planned_y = (size_t)tk_shape_numel(&n->shape);
    size_t planned_x = (size_t)(nx / batch * (batch + 1));
    tk_kernel_args a = {.node = n, .n = batch, .training = c->training, .seed = 1, .step = 1,
                        .loss_scale = 1.0f};
    a.x[0] = x;
    a.y = take(&mem, planned_y, NAN);
    a.dy = take(&mem, planned_y, 0.0f);
    a.dx[0] = take(&mem, planned_x, NAN);
    a.scratch = n->scratch ? take(&mem, n->scratch, NAN) : NULL;
    const char *local[TK_MAX_PARAMS];
    int64_t np[TK_MAX_PARAMS];
    float *initial[TK_MAX_PARAMS];
    for (int k = 0; k < n->n_params; k++) {
        const tk_param_decl *p = &g->params[n->params[k]];
        local[k] = p->name + strlen("op.");
        np[k] = tk_shape_numel(&p->shape);
        tk_shape fs;
        const float *v = tensor(f, c->file, local[k], &fs);
        CHECK_MSG(v && tk_shape_numel(&fs) == np[k], "%s: parameter %s", c->file, local[k]);
        if (!v || tk_shape_numel(&fs) != np[k])
            goto done;
        initial[k] = take(&mem, (size_t)np[k], 0.0f);
        memcpy(initial[k], v, sizeof(float) * (size_t)np[k]);
        a.param[k] = take(&mem, (size_t)np[k], 0.0f);
        memcpy(a.param[k], v, sizeof(float) * (size_t)np[k]);
        a.dparam[k] = p->trainable ? take(&mem, (size_t)np[k], DPARAM_START) : NULL;
    }
    /* Pass 1: forward, buffers after the step, backward overwriting dx. */
    memcpy(a.dy, dy, sizeof(float) * (size_t)ny);
    n->op->forward(&a);
    expect(c, "y", a.y, 0.0f, y, ny);
    for (int k = 0; k < n->n_params; k++) {
        char name[96];
        if (a.dparam[k])
            continue;
        snprintf(name, sizeof name, "%s_after", local[k]);
        const float *want = tensor(f, c->file, name, NULL);
        if (want)
            expect(c, name, a.param[k], 0.0f, want, np[k]);
    }
    n->op->backward(&a);
    expect(c, "dx", a.dx[0], 0.0f, dx, nx);
    for (int k = 0; k < n->n_params; k++) {
        char name[96];
        if (!a.dparam[k])
            continue;
        snprintf(name, sizeof name, "d%s", local[k]);
        const float *want = tensor(f, c->file, name, NULL);
        if (want)
            expect(c, name, a.dparam[k], DPARAM_START, want, np[k]);
    }
    /* Pass 2, from the same parameters and buffers: dx adds to what is there. */
    for (int k = 0; k < n->n_params; k++)
        memcpy(a.param[k], initial[k], sizeof(float) * (size_t)np[k]);
    for (int64_t i = 0; i < nx; i++)
        a.dx[0][i] = DX_START;
    a.dx_accumulate[0] = true;
    memcpy(a.dy, dy, sizeof(float) * (size_t)ny);
    n->op->forward(&a);
    n->op->backward(&a);
    expect(c, "dx (accumulated)", a.dx[0], DX_START, dx, nx);
done:
    for (int i = 0; i < mem.n; i++)
        tk_free_aligned(mem.bufs[i]);
    tk_graph_free(g);
    tk_st_free(f);
    tk_ctx_free(ctx);
}

/* Training dropout2d: each (sample, channel) plane is all zero or x / (1 - p), about a
 * fraction p of them zero, and a new step draws a new mask. */
static void test_dropout2d_train(void)
{
    enum { N = 8, C = 64, HW = 9 };
    tk_ctx *ctx = tk_ctx_new();
    tk_graph *g = tk_graph_new(ctx);
    tk_graph_set_batch(g, N);
    tk_attr p = FLT("p", 0.25);
    int in = tk_graph_source(g, (tk_shape){3, {C, 3, 3}}, "x");
    int id = tk_graph_op(g, "dropout2d", &in, 1, &p, 1, "op", "test");
    CHECK_MSG(id >= 0, "%s", tk_errmsg(ctx));
    static float x[N * C * HW], y[N * C * HW], y2[N * C * HW];
    for (int i = 0; i < N * C * HW; i++)
        x[i] = 1.0f + (float)(i % 7);
    tk_kernel_args a = {.node = tk_graph_node(g, id), .n = N, .training = true, .seed = 9,
                        .step = 3, .x = {x}, .y = y};
    a.node->op->forward(&a);
    int dropped = 0, mixed = 0, same_mask = 0;
    for (int ch = 0; ch < N * C; ch++) {
        int zeros = 0, scaled = 0;
        for (int i = ch * HW; i < (ch + 1) * HW; i++) {
            zeros += y[i] == 0.0f;
            scaled += tk_close(y[i], x[i] / 0.75, 1e-6, 0);
        }
        dropped += zeros == HW;
        mixed += !(zeros == HW || scaled == HW);
    }
    a.step = 4;
    a.y = y2;
    a.node->op->forward(&a);
    for (int ch = 0; ch < N * C; ch++)
        same_mask += (y[ch * HW] == 0.0f) == (y2[ch * HW] == 0.0f);
    CHECK_MSG(mixed == 0, "%d planes neither dropped nor scaled whole", mixed);
    CHECK_MSG(dropped > N * C / 8 && dropped < N * C * 3 / 8, "%d of %d planes dropped at p=0.25",
              dropped, N * C);
    CHECK_MSG(same_mask < N * C, "the next step drew the same mask");
    tk_graph_free(g);
    tk_ctx_free(ctx);
}

/* Shape errors name the layer and the shapes involved. */
static void expect_error(const char *op, tk_shape sample, const tk_attr *attrs, int n_attrs,
                         const char *want1, const char *want2)
{
    tk_ctx *ctx = tk_ctx_new();
    tk_graph *g = tk_graph_new(ctx);
    tk_graph_set_batch(g, 4);
    int in = tk_graph_source(g, sample, "x");
    CHECK(tk_graph_op(g, op, &in, 1, attrs, n_attrs, "conv1", "net.lua:7") < 0);
    const char *msg = tk_errmsg(ctx);
    CHECK_MSG(tk_contains(msg, "net.lua:7") && tk_contains(msg, "conv1") &&
              tk_contains(msg, want1) && tk_contains(msg, want2), "%s: message '%s'", op, msg);
    tk_graph_free(g);
    tk_ctx_free(ctx);
}

static void test_shape_errors(void)
{
    tk_attr in_ch[] = {INT("out_channels", 8), INT("kernel_size", 3), INT("in_channels", 3)};
    expect_error("conv2d", (tk_shape){3, {1, 28, 28}}, in_ch, 3, "(4, 1, 28, 28)",
                 "in_channels=3");
    tk_attr big[] = {INT("out_channels", 8), INT("kernel_size", 5), INT("dilation", 2)};
    expect_error("conv2d", (tk_shape){3, {1, 6, 6}}, big, 3, "(9, 9)", "(4, 1, 6, 6)");
    tk_attr groups[] = {INT("out_channels", 8), INT("kernel_size", 3), INT("groups", 2)};
    expect_error("conv2d", (tk_shape){3, {3, 8, 8}}, groups, 3, "(4, 3, 8, 8)", "groups (2)");
    tk_attr strided[] = {INT("out_channels", 8), INT("kernel_size", 3), INT("stride", 2),
                         STR("padding", "same")};
    expect_error("conv2d", (tk_shape){3, {3, 8, 8}}, strided, 4, "same", "stride");
    expect_error("conv2d", (tk_shape){1, {10}}, in_ch, 3, "(4, 10)", "(batch, channels");
    tk_attr pad[] = {INT("kernel_size", 2), INT("padding", 2)};
    expect_error("max_pool2d", (tk_shape){3, {1, 8, 8}}, pad, 2, "padding (2, 2)", "half");
    tk_attr bn = INT("num_features", 16);
    expect_error("batch_norm2d", (tk_shape){3, {8, 4, 4}}, &bn, 1, "(4, 8, 4, 4)",
                 "num_features=16");
    tk_attr ln = INTS("normalized_shape", 4, 5);
    expect_error("layer_norm", (tk_shape){2, {5, 4}}, &ln, 1, "(4, 5)", "(4, 5, 4)");
}

/* A small CNN with a residual branch, compiled: conv -> batch_norm2d -> tanh (smooth, unlike
 * relu, for the finite differences), a "same" conv on that added back to it (two consumers:
 * gradients accumulate), max pool, grouped conv, adaptive pool, flatten, layer norm, linear,
 * cross-entropy; run on fewer rows than planned.
 * Every parameter gradient against central differences of the training-mode loss, which
 * proves the plan keeps what each backward reads (scratch, inputs) until it runs. */
static void test_cnn_plan(void)
{
    enum { BATCH = 5, ROWS = 4 };
    tk_ctx *ctx = tk_ctx_new();
    tk_graph *g = tk_graph_new(ctx);
    tk_graph_set_batch(g, BATCH);
    int x = tk_graph_input(g, (tk_shape){3, {2, 8, 8}});
    int t = tk_graph_target(g, (tk_shape){0, {0}});
    tk_attr c0[] = {INT("out_channels", 4), INT("kernel_size", 3), INT("padding", 1)};
    tk_attr c1[] = {INT("out_channels", 4), INTS("kernel_size", 2, 3), STR("padding", "same")};
    tk_attr c2[] = {INT("out_channels", 6), INT("kernel_size", 3), INT("groups", 2)};
    tk_attr k2 = INT("kernel_size", 2), o1 = INT("output_size", 1), f3 = INT("out_features", 3);
    int v = tk_graph_op(g, "conv2d", &x, 1, c0, 3, "0", "t");
    v = tk_graph_op(g, "batch_norm2d", &v, 1, NULL, 0, "1", "t");
    int h = tk_graph_op(g, "tanh", &v, 1, NULL, 0, "2", "t");
    int r = tk_graph_op(g, "conv2d", &h, 1, c1, 3, "3", "t");
    int hr[2] = {h, r};
    v = tk_graph_op(g, "add", hr, 2, NULL, 0, "add", "t");
    v = tk_graph_op(g, "max_pool2d", &v, 1, &k2, 1, "4", "t");
    v = tk_graph_op(g, "conv2d", &v, 1, c2, 3, "5", "t");
    v = tk_graph_op(g, "adaptive_avg_pool2d", &v, 1, &o1, 1, "6", "t");
    v = tk_graph_op(g, "flatten", &v, 1, NULL, 0, "7", "t");
    v = tk_graph_op(g, "layer_norm", &v, 1, NULL, 0, "8", "t");
    v = tk_graph_op(g, "linear", &v, 1, &f3, 1, "9", "t");
    int vt[2] = {v, t};
    int loss = tk_graph_op(g, "cross_entropy", vt, 2, NULL, 0, "loss", "t");
    CHECK_MSG(loss >= 0, "%s", tk_errmsg(ctx));
    tk_graph_set_output(g, v);
    tk_graph_set_loss(g, loss, TK_TASK_CLASSIFICATION);
    tk_optim_spec o = {.type = "sgd", .where = "t", .h = {.lr = 0.1}};
    tk_compile_opts co = {.seed = 5, .fuse = true, .train = true};
    tk_model *m = NULL;
    if (loss < 0 || tk_compile(g, &o, &co, &m, ctx) != TK_OK) {
        CHECK_MSG(loss < 0, "%s", tk_errmsg(ctx));
        tk_graph_free(g);
        tk_ctx_free(ctx);
        return;
    }
    tk_rng rng = tk_rng_make(8, 1, 0, 0);
    for (int i = 0; i < BATCH * 2 * 8 * 8; i++)
        tk_model_input(m)[i] = tk_rng_normal(&rng);
    for (int i = 0; i < BATCH; i++)
        tk_model_target(m)[i] = (float)(i % 3);
    float l0, up, down;
    tk_model_zero_grad(m);
    CHECK(tk_model_forward_backward(m, ROWS, 1.0f, 0, &l0, ctx) == TK_OK);
    /* Keep the analytic gradients: every later step adds to the gradient buffer. */
    float *analytic = tk_alloc_floats((size_t)m->n_train);
    memcpy(analytic, m->grad, sizeof(float) * (size_t)m->n_train);
    int bad = 0, checked = 0, n_grad = 0;
    for (int ti = 0; ti < tk_model_tensor_count(m); ti++) {
        tk_tensor_rec *rec = &m->tensors[ti];
        if (rec->kind != TK_TENSOR_PARAM)
            continue;
        n_grad++;
        for (int64_t i = 0; i < tk_shape_numel(&rec->shape); i++) {
            float keep = rec->data[i], eps = 1e-4f;
            rec->data[i] = keep + eps;
            tk_model_forward_backward(m, ROWS, 1.0f, 0, &up, ctx);
            rec->data[i] = keep - eps;
            tk_model_forward_backward(m, ROWS, 1.0f, 0, &down, ctx);
            rec->data[i] = keep;
            double num = ((double)up - down) / (2 * eps);
            float got = analytic[rec->grad - m->grad + i];
            checked++;
            if (!tk_close(got, num, 2e-2, 2e-3) && bad++ < 3)
                fprintf(stderr, "cnn %s[%lld]: %g vs numeric %g\n", rec->name, (long long)i,
                        got, num);
        }
    }
    CHECK_MSG(n_grad == 12 && checked > 300, "%d trainable tensors, %d values", n_grad,
              checked);
    /* A max-pool window whose top two values lie within eps of each other breaks the finite
     * difference, not the gradient; a plan that loses a buffer breaks most of them. */
    CHECK_MSG(bad <= checked / 100, "cnn: %d of %d parameter gradients differ (loss %g)", bad,
              checked, l0);
    tk_free_aligned(analytic);
    tk_model_free(m);
    tk_graph_free(g);
    tk_ctx_free(ctx);
}

/* PyTorch's rule: scan the window in order, take v when v > max or v is NaN. arg: the index
 * in the plane; place: in the window (0, 1 upper row, 2, 3 lower). */
static void pool_2x2_reference(const float *x, int w, int oh, int ow, float *y, float *arg,
                               uint8_t *place)
{
    for (int r = 0; r < oh; r++)
        for (int c = 0; c < ow; c++) {
            int at[4] = {2 * r * w + 2 * c, 2 * r * w + 2 * c + 1, (2 * r + 1) * w + 2 * c,
                         (2 * r + 1) * w + 2 * c + 1};
            int best = 0;
            for (int k = 1; k < 4; k++)
                if (x[at[k]] > x[at[best]] || isnan(x[at[k]]))
                    best = k;
            y[r * ow + c] = x[at[best]];
            arg[r * ow + c] = (float)at[best];
            place[r * ow + c] = (uint8_t)best;
        }
}

/* The adjoint as the separate ops make it: zeros, then the gradient added at each argmax
 * (through the mask y > 0 when y is given). */
static void unpool_2x2_reference(const float *dy, const float *arg, const float *y, int h,
                                 int w, int oh, int ow, float *dx)
{
    for (int i = 0; i < h * w; i++)
        dx[i] = 0.0f;
    for (int i = 0; i < oh * ow; i++)
        dx[(int)arg[i]] += dy[i];
    if (y)
        for (int i = 0; i < oh * ow; i++)
            dx[(int)arg[i]] = y[i] > 0.0f ? dx[(int)arg[i]] : 0.0f;
}

/* Planes of every width up to 21 (one to ten windows a row: the scalar rows, whole groups
 * of four, the overlapping last group) and odd sizes, drawn from five values so that ties
 * and NaNs land in every position of the window; their gradients hold -0 (which the
 * separate ops turn into +0), and the mask is the pooled values'. */
static void test_max_pool_2x2_rule(void)
{
    static const float values[5] = {-1.0f, 0.0f, 2.0f, 2.0f, NAN};
    static const float grads[4] = {-0.0f, 0.5f, -3.0f, 1.0f};
    tk_rng rng = tk_rng_make(11, 0, 0, 0);
    float x[9 * 21], y[4 * 10], want_y[4 * 10], want_arg[4 * 10];
    uint8_t place[4 * 10], want_place[4 * 10];
    float dy[4 * 10], dx[9 * 21], want_dx[9 * 21];
    int bad = 0, bad_grad = 0;
    for (int h = 2; h <= 9; h++)
        for (int w = 2; w <= 21; w++)
            for (int round = 0; round < 20; round++) {
                for (int i = 0; i < h * w; i++) {
                    int k = (int)(tk_rng_uniform(&rng) * 5);
                    x[i] = values[k < 5 ? k : 4];
                }
                int oh = h / 2, ow = w / 2;
                tk_max_pool_2x2_plane(x, w, oh, ow, y, place);
                pool_2x2_reference(x, w, oh, ow, want_y, want_arg, want_place);
                bad += memcmp(y, want_y, sizeof(float) * (size_t)(oh * ow)) != 0 ||
                       memcmp(place, want_place, (size_t)(oh * ow)) != 0;
                for (int i = 0; i < oh * ow; i++)
                    dy[i] = grads[(int)(tk_rng_uniform(&rng) * 4) & 3];
                for (int masked = 0; masked < 2; masked++) {
                    for (int i = 0; i < h * w; i++)
                        dx[i] = NAN;
                    tk_max_unpool_2x2_plane(dy, want_place, masked ? want_y : NULL, h, w, oh,
                                            ow, dx);
                    unpool_2x2_reference(dy, want_arg, masked ? want_y : NULL, h, w, oh, ow,
                                         want_dx);
                    bad_grad += memcmp(dx, want_dx, sizeof(float) * (size_t)(h * w)) != 0;
                }
            }
    CHECK_MSG(bad == 0, "%d of %d planes pooled unlike PyTorch's rule", bad, 8 * 20 * 20);
    CHECK_MSG(bad_grad == 0, "%d of %d gradients unpooled unlike the separate ops", bad_grad,
              2 * 8 * 20 * 20);
}

int main(void)
{
    test_max_pool_2x2_rule();
    /* Three threads split the convolutions' products, im2col/col2im and pooling unevenly. */
    for (int threads = 3; threads >= 1; threads -= 2) {
        tk_set_threads(threads);
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
            run_case(&cases[i]);
    }
    test_dropout2d_train();
    test_shape_errors();
    test_cnn_plan();
    return check_summary();
}
