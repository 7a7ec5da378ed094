/* test_model.c - the compile passes and the executor on small graphs: fusion changes nothing
 * numerically, training lowers the loss, the train step allocates nothing (counting
 * allocator), frozen prefixes are pruned, groups are contiguous and their mistakes are
 * errors, the memory plan reuses memory, and shape errors name the layer and both shapes. */
#include "check.h"
#include "tk_int.h"

#include <float.h>
#include <math.h>
#include <string.h>

enum { BATCH = 8, IN = 6, CLASSES = 3 };

typedef struct {
    tk_ctx *ctx;
    tk_graph *g;
    int out;
} net;

/* flatten -> linear(16) -> relu -> dropout -> linear(16) -> relu -> linear(3) -> xent */
static net build(double dropout)
{
    net b = {tk_ctx_new(), NULL, -1};
    b.g = tk_graph_new(b.ctx);
    tk_graph_set_batch(b.g, BATCH);
    int x = tk_graph_input(b.g, (tk_shape){2, {2, IN / 2}});
    int t = tk_graph_target(b.g, (tk_shape){0, {0}});
    tk_attr h16 = {.key = "out_features", .kind = TK_ATTR_INT, .i = 16};
    tk_attr h3 = {.key = "out_features", .kind = TK_ATTR_INT, .i = CLASSES};
    tk_attr p = {.key = "p", .kind = TK_ATTR_FLOAT, .f = dropout};
    int v = tk_graph_op(b.g, "flatten", &x, 1, NULL, 0, "0", "t:1");
    v = tk_graph_op(b.g, "linear", &v, 1, &h16, 1, "1", "t:2");
    v = tk_graph_op(b.g, "relu", &v, 1, NULL, 0, "2", "t:3");
    v = tk_graph_op(b.g, "dropout", &v, 1, &p, 1, "3", "t:4");
    v = tk_graph_op(b.g, "linear", &v, 1, &h16, 1, "4", "t:5");
    v = tk_graph_op(b.g, "relu", &v, 1, NULL, 0, "5", "t:6");
    v = tk_graph_op(b.g, "linear", &v, 1, &h3, 1, "6", "t:7");
    b.out = v;
    int in[2] = {v, t};
    int loss = tk_graph_op(b.g, "cross_entropy", in, 2, NULL, 0, "loss", "t:8");
    tk_graph_set_output(b.g, v);
    tk_graph_set_loss(b.g, loss, TK_TASK_CLASSIFICATION);
    CHECK_MSG(loss >= 0, "%s", tk_errmsg(b.ctx));
    return b;
}

/* A CNN on (1, h, w) images, IN of them per row: `layers` times conv2d(4, 3x3, pad 1) ->
 * [relu] -> max_pool2d(pool), then flatten -> linear(3) -> xent. */
static net build_conv(int h, int w, int layers, bool relu, int pool)
{
    net b = {tk_ctx_new(), NULL, -1};
    b.g = tk_graph_new(b.ctx);
    tk_graph_set_batch(b.g, BATCH);
    int x = tk_graph_input(b.g, (tk_shape){3, {1, h, w}});
    int t = tk_graph_target(b.g, (tk_shape){0, {0}});
    static const int64_t k3[2] = {3, 3}, p1[2] = {1, 1};
    const int64_t kp[2] = {pool, pool};
    tk_attr conv[3] = {{.key = "out_channels", .kind = TK_ATTR_INT, .i = 4},
                       {.key = "kernel_size", .kind = TK_ATTR_INTS, .ints = k3, .n = 2},
                       {.key = "padding", .kind = TK_ATTR_INTS, .ints = p1, .n = 2}};
    tk_attr pooling = {.key = "kernel_size", .kind = TK_ATTR_INTS, .ints = kp, .n = 2};
    tk_attr h3 = {.key = "out_features", .kind = TK_ATTR_INT, .i = CLASSES};
    int v = x;
    static const char *names[2][3] = {{"0", "1", "2"}, {"3", "4", "5"}};
    for (int k = 0; k < layers; k++) {
        v = tk_graph_op(b.g, "conv2d", &v, 1, conv, 3, names[k][0], "t:1");
        if (relu)
            v = tk_graph_op(b.g, "relu", &v, 1, NULL, 0, names[k][1], "t:2");
        v = tk_graph_op(b.g, "max_pool2d", &v, 1, &pooling, 1, names[k][2], "t:3");
    }
    v = tk_graph_op(b.g, "flatten", &v, 1, NULL, 0, "6", "t:4");
    v = tk_graph_op(b.g, "linear", &v, 1, &h3, 1, "7", "t:5");
    b.out = v;
    int in[2] = {v, t};
    int loss = tk_graph_op(b.g, "cross_entropy", in, 2, NULL, 0, "loss", "t:6");
    tk_graph_set_output(b.g, v);
    tk_graph_set_loss(b.g, loss, TK_TASK_CLASSIFICATION);
    CHECK_MSG(loss >= 0, "%s", tk_errmsg(b.ctx));
    return b;
}

static tk_optim_spec sgd(double lr)
{
    tk_optim_spec o = {.type = "sgd", .where = "t:9"};
    o.h.lr = lr;
    o.h.momentum = 0.9;
    return o;
}

/* A fixed, learnable batch: the class is the sign pattern of two features. */
static void fill_batch(tk_model *m, int n)
{
    tk_rng r = tk_rng_make(7, 50, 0, 0);
    float *x = tk_model_input(m), *y = tk_model_target(m);
    int64_t in = tk_shape_numel(&m->g->nodes[m->g->input].shape) / m->g->batch;
    for (int i = 0; i < n; i++) {
        for (int64_t f = 0; f < in; f++)
            x[i * in + f] = 2.0f * tk_rng_uniform(&r) - 1.0f;
        y[i] = (float)((x[i * in] > 0) + (x[i * in + 1] > 0));
    }
}

static tk_model *compile(net *b, const tk_optim_spec *o, bool fuse)
{
    tk_compile_opts co = {.seed = 3, .fuse = fuse, .train = true};
    tk_model *m = NULL;
    tk_status st = tk_compile(b->g, o, &co, &m, b->ctx);
    CHECK_MSG(st == TK_OK, "%s", tk_errmsg(b->ctx));
    return m;
}

static bool same_floats(const float *a, const float *b, int64_t n)
{
    return memcmp(a, b, sizeof(float) * (size_t)n) == 0;
}

/* Fused epilogues (linear+relu, conv2d+relu, conv2d+max_pool2d) compute the very bits the
 * separate ops do: losses, outputs, gradients and updated weights, in train and eval. */
static void test_fusion_is_exact(net b, int folded)
{
    tk_optim_spec o = sgd(0.1);
    tk_model *fused = compile(&b, &o, true), *plain = compile(&b, &o, false);
    if (!fused || !plain)
        return;
    double lrs[1] = {0.1};
    int64_t outputs = (int64_t)BATCH * tk_model_output_width(fused);
    for (int step = 0; step < 5; step++) {
        float lf, lp;
        fill_batch(fused, BATCH);
        fill_batch(plain, BATCH);
        tk_model_zero_grad(fused);
        tk_model_zero_grad(plain);
        tk_model_forward_backward(fused, BATCH, 1.0f, (uint64_t)step, &lf, b.ctx);
        tk_model_forward_backward(plain, BATCH, 1.0f, (uint64_t)step, &lp, b.ctx);
        CHECK(same_floats(&lf, &lp, 1));
        CHECK(same_floats(tk_model_output(fused), tk_model_output(plain), outputs));
        CHECK(same_floats(fused->grad, plain->grad, fused->n_train));
        tk_model_update(fused, lrs);
        tk_model_update(plain, lrs);
        CHECK(same_floats(fused->flat, plain->flat, fused->n_train));
        tk_model_eval(fused, BATCH - 3, &lf, b.ctx);
        tk_model_eval(plain, BATCH - 3, &lp, b.ctx);
        CHECK(same_floats(&lf, &lp, 1));
    }
    /* The fused plan has fewer kernels: the relus and poolings folded into their producers. */
    CHECK_MSG(fused->train.n_fwd == plain->train.n_fwd - folded, "%d kernels, plain %d",
              fused->train.n_fwd, plain->train.n_fwd);
    tk_model_free(fused);
    tk_model_free(plain);
    tk_graph_free(b.g);
    tk_ctx_free(b.ctx);
}

/* A pooling epilogue leaves the full-size activation and its gradient unstored (the
 * columns, which stay, are the larger part of the arena). */
static void test_pool_epilogue_saves_memory(void)
{
    net b = build_conv(28, 28, 2, true, 2);
    tk_optim_spec o = sgd(0.1);
    tk_model *fused = compile(&b, &o, true), *plain = compile(&b, &o, false);
    if (fused && plain)
        CHECK_MSG(tk_model_arena_bytes(fused) < 0.9 * tk_model_arena_bytes(plain),
                  "arena %zu, plain %zu", tk_model_arena_bytes(fused),
                  tk_model_arena_bytes(plain));
    tk_model_free(fused);
    tk_model_free(plain);
    tk_graph_free(b.g);
    tk_ctx_free(b.ctx);
}

/* flatten -> linear(16) -> relu -> [linear "s"(16) -> relu] twice, one weight -> linear(3) */
static net build_shared(void)
{
    net b = {tk_ctx_new(), NULL, -1};
    b.g = tk_graph_new(b.ctx);
    tk_graph_set_batch(b.g, BATCH);
    int x = tk_graph_input(b.g, (tk_shape){2, {2, IN / 2}});
    int t = tk_graph_target(b.g, (tk_shape){0, {0}});
    tk_attr h16 = {.key = "out_features", .kind = TK_ATTR_INT, .i = 16};
    tk_attr h3 = {.key = "out_features", .kind = TK_ATTR_INT, .i = CLASSES};
    int v = tk_graph_op(b.g, "flatten", &x, 1, NULL, 0, "0", "t:1");
    v = tk_graph_op(b.g, "linear", &v, 1, &h16, 1, "1", "t:2");
    for (int k = 0; k < 2; k++) {
        v = tk_graph_op(b.g, "relu", &v, 1, NULL, 0, k ? "r2" : "r1", "t:3");
        v = tk_graph_op(b.g, "linear", &v, 1, &h16, 1, "s", "t:4");
    }
    v = tk_graph_op(b.g, "linear", &v, 1, &h3, 1, "6", "t:5");
    int in[2] = {v, t};
    int loss = tk_graph_op(b.g, "cross_entropy", in, 2, NULL, 0, "loss", "t:6");
    tk_graph_set_output(b.g, v);
    tk_graph_set_loss(b.g, loss, TK_TASK_CLASSIFICATION);
    CHECK_MSG(loss >= 0, "%s", tk_errmsg(b.ctx));
    return b;
}

/* One step as tk_train takes it; a non-finite norm skips the update, as on_nonfinite does.
 * *checked counts fused steps whose gradients had to be made to be checked, and were finite. */
static bool train_step(tk_model *m, int step, float scale, double lr, int *checked,
                       tk_ctx *ctx)
{
    float loss;
    tk_model_zero_grad(m);
    tk_model_forward_backward(m, BATCH, scale, (uint64_t)step, &loss, ctx);
    tk_model_check_fused(m);
    bool finite = isfinite(loss) && isfinite(tk_model_grad_norm(m));
    *checked += m->fused_stored && finite;
    if (finite)
        tk_model_update(m, &lr);
    return finite;
}

/* The bound the fused check takes, worked out here from each product's operands. */
static double largest_bound(const tk_model *m)
{
    double most = 0;
    for (int i = 0; i < m->train.n_bwd; i++) {
        const tk_kernel_args *a = &m->train.args[m->train.bwd[i]];
        if (!(a->node->op->flags & TK_OP_FUSED_UPDATE) || !a->dparam[0])
            continue;
        tk_grad_bound g = a->node->op->grad_bound(a);
        double b = g.scale;
        for (int f = 0; f < 2; f++) {
            double top = 0;
            for (int64_t e = 0; e < g.n[f]; e++)
                top = fmax(top, fabs(g.factor[f][e]));
            b *= top;
        }
        most = fmax(most, b);
    }
    return most;
}

/* The update fused with the weight gradients gives the plain path's bits: weights, optimizer
 * state and (kept) gradients, for each optimizer; the non-finite check decides alike on a NaN
 * input, on a product that overflows and on one whose bound passes FLT_MAX / 2 but whose
 * values do not (made and checked, then); and a weight two layers share stays unfused. */
static void test_fused_update_is_exact(void)
{
    static const char *const optims[] = {"sgd", "sgd momentum", "adam", "rmsprop"};
    for (int c = 0; c < 8; c++) {
        int o = c / 2;
        bool keep = c % 2 == 0;
        net b = build(0.25);
        tk_optim_spec spec = sgd(0.05);
        spec.h.momentum = o == 1 ? 0.9 : 0.0;
        spec.h.weight_decay = o == 1 ? 1e-3 : 0.0;
        if (o >= 2) {
            spec.type = optims[o];
            spec.h = (tk_optim_hparams){.lr = 1e-3, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8,
                                        .alpha = 0.99};
        }
        tk_model *fused = compile(&b, &spec, true), *plain = compile(&b, &spec, true);
        if (!fused || !plain)
            return;
        CHECK_MSG(tk_model_fuse_update(fused, true, keep) == 3, "%s", optims[o]);
        int agree = 0, checked = 0, unused = 0;
        for (int step = 0; step < 12; step++) {
            fill_batch(fused, BATCH);
            fill_batch(plain, BATCH);
            float scale = 1.0f;
            double lr = spec.h.lr;
            if (step == 8) {
                /* A large input and a loss scale that take the largest bound past FLT_MAX / 2
                 * while each gradient, at most that bound, stays finite; lr 0 keeps the
                 * weights. */
                float unscaled;
                tk_model_input(fused)[3] = tk_model_input(plain)[3] = 1e6f;
                tk_model_forward_backward(plain, BATCH, 1.0f, 8, &unscaled, b.ctx);
                scale = (float)(0.7 * FLT_MAX / largest_bound(plain));
                lr = 0;
            }
            if (step == 9 || step == 10) {
                tk_model_input(fused)[3] = tk_model_input(plain)[3] = step == 9 ? NAN : 1e30f;
                scale = step == 10 ? 1e29f : 1.0f;
            }
            bool a = train_step(fused, step, scale, lr, &checked, b.ctx);
            bool p = train_step(plain, step, scale, lr, &unused, b.ctx);
            /* One pool job finds every operand's maximum; a NaN operand bounds nothing. */
            double got = tk_model_fused_bound(fused), want = largest_bound(fused);
            CHECK_MSG(step == 9 ? !(got < FLT_MAX) : got == want, "%s step %d: bound %g, "
                      "not %g", optims[o], step, got, want);
            CHECK_MSG(a == p, "%s step %d: fused %d, plain %d", optims[o], step, a, p);
            CHECK_MSG(a == (step < 9 || step == 11), "%s step %d: finite %d", optims[o], step, a);
            agree += same_floats(fused->flat, plain->flat, fused->n_flat) &&
                     (!keep || same_floats(fused->grad, plain->grad, fused->n_train)) &&
                     (fused->n_slots == 0 ||
                      same_floats(fused->slot[0], plain->slot[0], fused->n_train));
        }
        CHECK_MSG(checked == 1, "%s: %d finite steps checked from their gradients", optims[o],
                  checked);
        CHECK_MSG(agree == 12, "%s: %d of 12 steps bit-equal", optims[o], agree);
        tk_model_fuse_update(fused, false, false);
        CHECK(!fused->fusing && !fused->block_scratch);
        tk_model_free(fused);
        tk_model_free(plain);
        tk_graph_free(b.g);
        tk_ctx_free(b.ctx);
    }
    net b = build_shared();
    tk_optim_spec spec = sgd(0.05);
    tk_model *m = compile(&b, &spec, true);
    if (m) {
        CHECK_MSG(tk_model_fuse_update(m, true, false) == 2, "the shared weight was fused");
        CHECK(m->tensors[tk_model_find_tensor(m, "s.weight")].fused_node < 0);
        tk_model_free(m);
    }
    tk_graph_free(b.g);
    tk_ctx_free(b.ctx);
}

static void test_learns_without_allocating(void)
{
    net b = build(0.0);
    tk_optim_spec o = sgd(0.05);
    tk_model *m = compile(&b, &o, true);
    if (!m)
        return;
    double lrs[1] = {0.05};
    float first = 0, loss = 0;
    check_count_allocations();
    for (int step = 0; step < 300; step++) {
        fill_batch(m, BATCH);
        tk_model_zero_grad(m);
        tk_model_forward_backward(m, BATCH, 1.0f, (uint64_t)step, &loss, b.ctx);
        tk_model_update(m, lrs);
        if (step == 0)
            first = loss;
    }
    float eval_loss;
    tk_model_eval(m, BATCH - 3, &eval_loss, b.ctx);
    long during = check_allocs();
    tk_set_allocator(NULL);
    CHECK_MSG(during == 0, "the step loop allocated %ld times", during);
    CHECK_MSG(loss < 0.5f * first, "loss %g did not fall from %g", loss, first);
    /* Liveness: the arena is smaller than every activation and gradient side by side. */
    size_t naive = 0;
    for (int v = 0; v < m->g->n_nodes; v++)
        if (m->g->nodes[v].op && m->g->nodes[v].alias_of < 0)
            naive += 2 * (size_t)tk_shape_numel(&m->g->nodes[v].shape) * sizeof(float);
    CHECK_MSG(tk_model_arena_bytes(m) < naive, "arena %zu vs %zu", tk_model_arena_bytes(m), naive);
    tk_model_free(m);
    tk_graph_free(b.g);
    tk_ctx_free(b.ctx);
}

static void test_freeze_and_groups(void)
{
    net b = build(0.0);
    const char *bias[] = {"*.bias"}, *last[] = {"6.weight"}, *frozen[] = {"1.*"};
    tk_group_spec groups[2] = {{bias, 1, {.lr = 0.01, .momentum = 0.9}, "t:20"},
                               {last, 1, {.lr = 0.5}, "t:21"}};
    tk_optim_spec o = sgd(0.1);
    o.groups = groups;
    o.n_groups = 2;
    o.freeze = frozen;
    o.n_freeze = 1;
    tk_model *m = compile(&b, &o, true);
    if (!m)
        return;
    CHECK(tk_model_group_count(m) == 3);
    /* default: 4.weight; group 1: 4.bias, 6.bias; group 2: 6.weight; 1.* frozen */
    CHECK(tk_model_group(m, 0).tensors == 1 && tk_model_group(m, 0).elements == 16 * 16);
    CHECK(tk_model_group(m, 1).tensors == 2 && tk_model_group(m, 1).elements == 16 + 3);
    CHECK(tk_model_group(m, 2).tensors == 1 && tk_model_group(m, 2).elements == 3 * 16);
    CHECK(tk_model_param_count(m, true) == 16 * 16 + 16 + 3 + 3 * 16);
    int w1 = tk_model_find_tensor(m, "1.weight");
    CHECK(w1 >= 0 && tk_model_tensor(m, w1).group == -1);
    CHECK(tk_model_find_tensor(m, "optim.1.weight.momentum_buffer") < 0);
    /* Slots follow each group's settings: group 2 has no momentum. */
    CHECK(tk_model_find_tensor(m, "optim.4.weight.momentum_buffer") >= 0);
    CHECK(tk_model_find_tensor(m, "optim.6.bias.momentum_buffer") >= 0);
    CHECK(tk_model_find_tensor(m, "optim.6.weight.momentum_buffer") < 0);
    /* Groups are contiguous slices in group order. */
    CHECK(m->groups[1].offset == m->groups[0].offset + m->groups[0].size);
    /* The frozen first linear runs no backward (nothing upstream trains). */
    bool first_linear_backward = false;
    for (int i = 0; i < m->train.n_bwd; i++)
        first_linear_backward = first_linear_backward || m->train.bwd[i] == 3;
    CHECK(!first_linear_backward);
    float before[16 * 3];
    memcpy(before, tk_model_tensor(m, w1).data, sizeof before);
    double lrs[3] = {0.1, 0.01, 0.5};
    float loss;
    fill_batch(m, BATCH);
    tk_model_zero_grad(m);
    tk_model_forward_backward(m, BATCH, 1.0f, 0, &loss, b.ctx);
    tk_model_update(m, lrs);
    CHECK(memcmp(before, tk_model_tensor(m, w1).data, sizeof before) == 0);
    tk_model_free(m);

    const char *typo[] = {"*.bais"};
    tk_group_spec bad = {typo, 1, {.lr = 0.01}, "mlp.lua:30"};
    o.groups = &bad;
    o.n_groups = 1;
    o.n_freeze = 0;
    tk_compile_opts co = {.seed = 1, .fuse = true, .train = true};
    CHECK(tk_compile(b.g, &o, &co, &m, b.ctx) == TK_ERR_INPUT);
    CHECK(tk_contains(tk_errmsg(b.ctx), "mlp.lua:30: optimizer group 1 (match '*.bais') "
                                        "matches no parameter"));
    const char *nothing[] = {"features.*"};
    o.n_groups = 0;
    o.freeze = nothing;
    o.n_freeze = 1;
    CHECK(tk_compile(b.g, &o, &co, &m, b.ctx) == TK_ERR_INPUT);
    CHECK(tk_contains(tk_errmsg(b.ctx), "freeze pattern 'features.*' matches no parameter"));
    /* A parameter two groups match goes to the first (DESIGN.md), and the model says so. */
    const char *wide[] = {"6.*"};
    tk_group_spec overlap[2] = {{bias, 1, {.lr = 0.01}, "t:20"}, {wide, 1, {.lr = 0.5}, "t:21"}};
    o.groups = overlap;
    o.n_groups = 2;
    o.n_freeze = 0;
    CHECK(tk_compile(b.g, &o, &co, &m, b.ctx) == TK_OK);
    if (m) {
        CHECK_MSG(tk_contains(tk_model_notes(m), "note: parameter '6.bias' matches optimizer "
                              "group 1 (match '*.bias') and group 2 (match '6.*'): group 1 "
                              "applies"), "%s", tk_model_notes(m));
        CHECK(tk_model_group(m, 1).h.lr == 0.01 && tk_model_group(m, 2).tensors == 1);
        tk_model_free(m);
        m = NULL;
    }
    /* Freezing every parameter leaves nothing to train: an error, not a silent no-op run. */
    const char *all[] = {"*"};
    o.n_groups = 0;
    o.freeze = all;
    o.n_freeze = 1;
    CHECK(tk_compile(b.g, &o, &co, &m, b.ctx) == TK_ERR_INPUT);
    CHECK(tk_contains(tk_errmsg(b.ctx), "freeze covers every parameter"));
    tk_graph_free(b.g);
    tk_ctx_free(b.ctx);
}

static void test_shape_error(void)
{
    tk_ctx *ctx = tk_ctx_new();
    tk_graph *g = tk_graph_new(ctx);
    tk_graph_set_batch(g, 64);
    int x = tk_graph_input(g, (tk_shape){1, {512}});
    tk_attr a[2] = {{.key = "out_features", .kind = TK_ATTR_INT, .i = 10},
                    {.key = "in_features", .kind = TK_ATTR_INT, .i = 784}};
    CHECK(tk_graph_op(g, "linear", &x, 1, a, 2, "3", "mlp.lua:14") < 0);
    CHECK(tk_contains(tk_errmsg(ctx), "mlp.lua:14: layer '3' (linear): input of shape (64, 512) "
                                      "does not fit in_features=784 (weight shape (10, 784))"));
    CHECK(tk_graph_op(g, "convolution", &x, 1, NULL, 0, "4", "mlp.lua:15") < 0);
    CHECK(tk_contains(tk_errmsg(ctx), "mlp.lua:15: unknown op 'convolution'"));
    tk_graph_free(g);
    tk_ctx_free(ctx);
}

int main(void)
{
    tk_set_threads(1);
    test_fusion_is_exact(build(0.25), 2);
    /* Odd planes leave a row and a column out of every pooling; two layers also route the
     * gradient through a fused pooling into the first convolution. */
    test_fusion_is_exact(build_conv(2, 3, 1, true, 2), 2);
    test_fusion_is_exact(build_conv(9, 7, 2, true, 2), 4);
    test_fusion_is_exact(build_conv(8, 8, 2, false, 2), 2);
    /* A 3x3 pooling is not fused; the relu still is. */
    test_fusion_is_exact(build_conv(9, 9, 1, true, 3), 1);
    test_pool_epilogue_saves_memory();
    test_fused_update_is_exact();
    test_learns_without_allocating();
    test_freeze_and_groups();
    test_shape_error();
    return check_summary();
}
