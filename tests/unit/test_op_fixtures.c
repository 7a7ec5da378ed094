/* test_op_fixtures.c - forward and backward values of linear (plain and with the fused ReLU),
 * relu, dropout (eval against PyTorch; training masks by their statistics), cross-entropy
 * (incl. label smoothing and a row that overflows a naive softmax) and mse against PyTorch
 * 1.13 (tests/fixtures, made by tests/gen_fixtures.py).
 * Tolerance: |got - want| <= 1e-5 * |want| + 1e-6 (float32 sums in another order). */
#include "check.h"
#include "tk_int.h"
#include "ops/common.h"

#include <string.h>

#define RTOL 1e-5
#define ATOL 1e-6

static tk_st_file *load(const char *name)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", TK_FIXTURES, name);
    tk_ctx *ctx = tk_ctx_new();
    tk_st_file *f = NULL;
    tk_status st = tk_st_load(path, &f, ctx);
    CHECK_MSG(st == TK_OK, "%s", tk_errmsg(ctx));
    tk_ctx_free(ctx);
    return f;
}

static const float *tensor(const tk_st_file *f, const char *name, int64_t *numel)
{
    int i = tk_st_find(f, name);
    CHECK_MSG(i >= 0, "fixture tensor '%s' missing", name);
    if (i < 0)
        return NULL;
    tk_shape s = tk_st_shape(f, i);
    if (numel)
        *numel = tk_shape_numel(&s);
    return tk_st_data(f, i);
}

static void expect(const char *what, const float *got, const float *want, int64_t n)
{
    int bad = 0;
    for (int64_t i = 0; i < n; i++)
        if (!tk_close(got[i], want[i], RTOL, ATOL) && bad++ < 3)
            fprintf(stderr, "%s[%lld]: %.9g vs PyTorch %.9g\n", what, (long long)i, got[i],
                    want[i]);
    CHECK_MSG(bad == 0, "%s: %d of %lld values differ from PyTorch", what, bad, (long long)n);
}

/* One op on hand-made buffers: inputs x0 (and x1), params, dy -> y, dx0, dparams. */
typedef struct {
    tk_ctx *ctx;
    tk_graph *g;
    tk_node *n;
    tk_kernel_args a;
    float buf[8][256];
} kernel;

static bool setup(kernel *k, const char *op, const tk_attr *attrs, int n_attrs, int batch,
                  tk_shape s0, const tk_shape *s1)
{
    memset(k, 0, sizeof *k);
    k->ctx = tk_ctx_new();
    k->g = tk_graph_new(k->ctx);
    tk_graph_set_batch(k->g, batch);
    int in[2] = {tk_graph_source(k->g, s0, "x"), s1 ? tk_graph_source(k->g, *s1, "t") : -1};
    int id = tk_graph_op(k->g, op, in, s1 ? 2 : 1, attrs, n_attrs, "op", "test");
    CHECK_MSG(id >= 0, "%s", tk_errmsg(k->ctx));
    if (id < 0)
        return false;
    k->n = tk_graph_node(k->g, id);
    k->a = (tk_kernel_args){.node = k->n, .n = batch, .training = true, .loss_scale = 1.0f,
                            .y = k->buf[0], .dy = k->buf[1], .dx = {k->buf[2]}};
    for (int p = 0; p < k->n->n_params; p++) {
        k->a.param[p] = k->buf[3 + p];
        k->a.dparam[p] = k->buf[5 + p];
    }
    return true;
}

static void teardown(kernel *k)
{
    tk_graph_free(k->g);
    tk_ctx_free(k->ctx);
}

/* Copy fixture tensor `name` into dst; returns its element count. */
static int64_t copy(float *dst, const tk_st_file *f, const char *name)
{
    int64_t n = 0;
    const float *src = tensor(f, name, &n);
    if (src)
        memcpy(dst, src, sizeof(float) * (size_t)n);
    return n;
}

static void test_linear(bool relu)
{
    tk_st_file *f = load("linear.safetensors");
    if (!f)
        return;
    tk_attr out = {.key = "out_features", .kind = TK_ATTR_INT, .i = 3};
    kernel k;
    if (setup(&k, "linear", &out, 1, 4, (tk_shape){1, {5}}, NULL)) {
        if (relu)
            k.n->act = TK_ACT_RELU;
        int64_t nx;
        k.a.x[0] = tensor(f, "x", &nx);
        int64_t nw = copy(k.a.param[0], f, "weight"), nb = copy(k.a.param[1], f, "bias");
        int64_t ny = copy(k.a.dy, f, "dy");
        k.n->op->forward(&k.a);
        k.n->op->backward(&k.a);
        expect(relu ? "linear+relu y" : "linear y", k.a.y, tensor(f, relu ? "y_relu" : "y", 0), ny);
        expect("linear dx", k.a.dx[0], tensor(f, relu ? "dx_relu" : "dx", 0), nx);
        expect("linear dweight", k.a.dparam[0], tensor(f, relu ? "dweight_relu" : "dweight", 0), nw);
        expect("linear dbias", k.a.dparam[1], tensor(f, relu ? "dbias_relu" : "dbias", 0), nb);
    }
    teardown(&k);
    tk_st_free(f);
}

static void test_relu(void)
{
    tk_st_file *f = load("relu.safetensors");
    kernel k;
    if (f && setup(&k, "relu", NULL, 0, 4, (tk_shape){1, {6}}, NULL)) {
        int64_t n;
        k.a.x[0] = tensor(f, "x", &n);
        copy(k.a.dy, f, "dy");
        k.n->op->forward(&k.a);
        k.n->op->backward(&k.a);
        expect("relu y", k.a.y, tensor(f, "y", 0), n);
        expect("relu dx", k.a.dx[0], tensor(f, "dx", 0), n);
        teardown(&k);
    }
    tk_st_free(f);
}

static void test_dropout(void)
{
    tk_st_file *f = load("dropout_eval.safetensors");
    tk_attr p = {.key = "p", .kind = TK_ATTR_FLOAT, .f = 0.3};
    kernel k;
    if (f && setup(&k, "dropout", &p, 1, 4, (tk_shape){1, {6}}, NULL)) {
        int64_t n;
        k.a.x[0] = tensor(f, "x", &n);
        copy(k.a.dy, f, "dy");
        k.a.training = false;
        k.n->op->forward(&k.a);
        expect("dropout eval y", k.a.y, tensor(f, "y", 0), n);
        teardown(&k);
    }
    tk_st_free(f);
    /* Training: about p of the elements dropped, the rest scaled by 1/(1-p); the backward
     * recomputes the same mask; another step draws another mask. */
    enum { N = 64, D = 256 };
    tk_ctx *ctx = tk_ctx_new();
    tk_graph *g = tk_graph_new(ctx);
    tk_graph_set_batch(g, N);
    int in = tk_graph_source(g, (tk_shape){1, {D}}, "x");
    int id = tk_graph_op(g, "dropout", &in, 1, &p, 1, "d", "test");
    static float x[N * D], y[N * D], y2[N * D], dy[N * D], dx[N * D];
    for (int i = 0; i < N * D; i++)
        x[i] = dy[i] = 1.0f + (float)(i % 7);
    tk_kernel_args a = {.node = tk_graph_node(g, id), .n = N, .training = true, .seed = 9,
                        .step = 3, .x = {x}, .y = y, .dy = dy, .dx = {dx}};
    a.node->op->forward(&a);
    a.node->op->backward(&a);
    int dropped = 0, wrong = 0;
    for (int i = 0; i < N * D; i++) {
        dropped += y[i] == 0.0f;
        wrong += y[i] != 0.0f && !tk_close(y[i], x[i] / 0.7f, 1e-6, 0);
        wrong += dx[i] != y[i]; /* x == dy, so the same mask gives dx == y */
    }
    CHECK_MSG(dropped > 0.27 * N * D && dropped < 0.33 * N * D, "dropped %d of %d", dropped,
              N * D);
    CHECK_MSG(wrong == 0, "%d elements scaled wrong or masked differently in backward", wrong);
    a.y = y2;
    a.step = 4;
    a.node->op->forward(&a);
    CHECK(memcmp(y, y2, sizeof y) != 0);
    /* Each element's factor is its own counter's draw, however the draws are batched: the
     * rows of a shard that starts at row 3, 7 elements each, begin inside a generator block. */
    int in7 = tk_graph_source(g, (tk_shape){1, {7}}, "x7");
    int id7 = tk_graph_op(g, "dropout", &in7, 1, &p, 1, "d7", "test");
    tk_kernel_args b = {.node = tk_graph_node(g, id7), .n = N, .training = true, .seed = 9,
                        .step = 3, .row0 = 3, .x = {x}, .y = y, .dy = dy, .dx = {dx}};
    b.node->op->forward(&b);
    b.node->op->backward(&b);
    wrong = 0;
    for (int i = 0; i < N * 7; i++) {
        float k = tk_dropout_scale(&b, (size_t)i, 7);
        wrong += y[i] != x[i] * k || dx[i] != dy[i] * k;
    }
    CHECK_MSG(wrong == 0, "%d elements not scaled by their own counter's draw", wrong);
    tk_graph_free(g);
    tk_ctx_free(ctx);
}

static void test_cross_entropy(double smoothing, const char *loss_name, const char *grad_name)
{
    tk_st_file *f = load("cross_entropy.safetensors");
    tk_attr ls = {.key = "label_smoothing", .kind = TK_ATTR_FLOAT, .f = smoothing};
    tk_shape scalar = {0, {0}};
    kernel k;
    if (f && setup(&k, "cross_entropy", &ls, 1, 6, (tk_shape){1, {5}}, &scalar)) {
        int64_t n;
        k.a.x[0] = tensor(f, "logits", &n);
        k.a.x[1] = tensor(f, "labels", 0);
        k.n->op->forward(&k.a);
        k.n->op->backward(&k.a);
        expect(loss_name, k.a.y, tensor(f, loss_name, 0), 1);
        expect(grad_name, k.a.dx[0], tensor(f, grad_name, 0), n);
        teardown(&k);
    }
    tk_st_free(f);
}

static void test_mse(void)
{
    tk_st_file *f = load("mse.safetensors");
    tk_shape s = {1, {3}};
    kernel k;
    if (f && setup(&k, "mse", NULL, 0, 4, s, &s)) {
        int64_t n;
        k.a.x[0] = tensor(f, "pred", &n);
        k.a.x[1] = tensor(f, "target", 0);
        k.n->op->forward(&k.a);
        k.n->op->backward(&k.a);
        expect("mse loss", k.a.y, tensor(f, "loss", 0), 1);
        expect("mse dpred", k.a.dx[0], tensor(f, "dpred", 0), n);
        teardown(&k);
    }
    tk_st_free(f);
}

int main(void)
{
    tk_set_threads(1);
    test_linear(false);
    test_linear(true);
    test_relu();
    test_dropout();
    test_cross_entropy(0.0, "loss", "dlogits");
    test_cross_entropy(0.1, "loss_ls", "dlogits_ls");
    test_mse();
    return check_summary();
}
