/* test_pointwise_fixtures.c - forward and backward values of the activations, softmax and
 * log_softmax, add/concat/reshape and the nll, l1, smooth_l1, huber and bce_with_logits losses
 * against PyTorch 1.13 (tests/fixtures, made by tests/gen_fixtures_pointwise.py), including
 * inputs of magnitude 50-100 that overflow a naive exp in float32.
 *
 * Each op runs alone on hand-made buffers planned for two rows more than the fixture holds,
 * with a->n = the fixture's rows: the extra input rows are NaN and the extra output and
 * gradient rows must stay untouched, so a kernel that works on the planned batch instead of
 * a->n fails. Losses are also run with loss_scale 0.25 (the gradient must scale with it).
 * Last, the shape and attribute errors of these ops: each must name the offending shapes or
 * values and the script line.
 *
 * Tolerance: |got - want| <= 1e-5 * |want| + 1e-6 for every value (float32 on both sides;
 * sums in another order and double accumulation here differ by a few ulps). */
#include "check.h"
#include "tk_int.h"

#include <math.h>
#include <string.h>

#define RTOL 1e-5
#define ATOL 1e-6
#define EXTRA_ROWS 2
#define SENTINEL -777.0f

typedef struct {
    const char *file, *op;
    tk_attr attrs[3];
    int n_attrs;
    const char *in[3];         /* fixture names of the inputs */
    int n_in;
    const char *y;             /* the output (losses: the loss value) */
    const char *dy;            /* the upstream gradient; NULL for a loss */
    const char *dx[3];         /* expected gradient per input; NULL: not differentiable */
} fixture_case;

#define INT(k, v) {.key = k, .kind = TK_ATTR_INT, .i = v}
#define FLT(k, v) {.key = k, .kind = TK_ATTR_FLOAT, .f = v}
#define STR(k, v) {.key = k, .kind = TK_ATTR_STR, .s = v}
#define UNARY(file, op, y, dx) {file, op, {{0}}, 0, {"x"}, 1, y, "dy", {dx}}
#define UNARY1(file, op, attr, y, dx) {file, op, {attr}, 1, {"x"}, 1, y, "dy", {dx}}
#define LOSS(file, op, red, y, dx) \
    {file, op, {STR("reduction", red)}, 1, {"pred", "target"}, 2, y, NULL, {dx}}

static const fixture_case cases[] = {
    UNARY("leaky_relu", "leaky_relu", "y", "dx"),
    UNARY1("leaky_relu", "leaky_relu", FLT("negative_slope", 0.2), "y_s02", "dx_s02"),
    UNARY("elu", "elu", "y", "dx"),
    UNARY1("elu", "elu", FLT("alpha", 0.5), "y_a05", "dx_a05"),
    UNARY("gelu", "gelu", "y", "dx"),
    UNARY1("gelu", "gelu", STR("approximate", "tanh"), "y_tanh", "dx_tanh"),
    UNARY("silu", "silu", "y", "dx"),
    UNARY("hardtanh", "hardtanh", "y", "dx"),
    {"hardtanh", "hardtanh", {FLT("min_val", -2.0), FLT("max_val", 0.5)}, 2, {"x"}, 1, "y_r",
     "dy", {"dx_r"}},
    UNARY("tanh", "tanh", "y", "dx"),
    UNARY("sigmoid", "sigmoid", "y", "dx"),
    UNARY("softplus", "softplus", "y", "dx"),
    {"softplus", "softplus", {FLT("beta", 2.0), FLT("threshold", 10.0)}, 2, {"x"}, 1, "y_b2",
     "dy", {"dx_b2"}},
    UNARY("softmax", "softmax", "y", "dx"),
    {"softmax", "softmax", {INT("dim", 1)}, 1, {"x3"}, 1, "y3_d1", "dy3", {"dx3_d1"}},
    {"softmax", "softmax", {INT("dim", -1)}, 1, {"x3"}, 1, "y3_d2", "dy3", {"dx3_d2"}},
    UNARY("log_softmax", "log_softmax", "y", "dx"),
    {"log_softmax", "log_softmax", {INT("dim", 1)}, 1, {"x3"}, 1, "y3_d1", "dy3", {"dx3_d1"}},
    {"log_softmax", "log_softmax", {INT("dim", 2)}, 1, {"x3"}, 1, "y3_d2", "dy3", {"dx3_d2"}},
    {"add", "add", {{0}}, 0, {"a", "b"}, 2, "y", "dy", {"da", "db"}},
    {"concat", "concat", {{0}}, 0, {"a", "b"}, 2, "y", "dy", {"da", "db"}},
    {"concat", "concat", {INT("dim", -1)}, 1, {"p", "q", "r"}, 3, "y3", "dy3",
     {"dp", "dq", "dr"}},
    {"reshape", "reshape",
     {{.key = "shape", .kind = TK_ATTR_INTS, .ints = (const int64_t[]){2, -1, 2}, .n = 3}}, 1,
     {"x"}, 1, "y", "dy", {"dx"}},
    LOSS("nll", "nll", "mean", "loss_mean", "dpred_mean"),
    LOSS("nll", "nll", "sum", "loss_sum", "dpred_sum"),
    {"nll", "nll",
     {{.key = "weight", .kind = TK_ATTR_FLOATS, .floats = (const double[]){0.5, 1, 2, 1.5, 0.8},
       .n = 5}, INT("ignore_index", 2)},
     2, {"pred", "target"}, 2, "loss_w_mean", NULL, {"dpred_w_mean"}},
    {"nll", "nll",
     {{.key = "weight", .kind = TK_ATTR_FLOATS, .floats = (const double[]){0.5, 1, 2, 1.5, 0.8},
       .n = 5}, INT("ignore_index", 2), STR("reduction", "sum")},
     3, {"pred", "target"}, 2, "loss_w_sum", NULL, {"dpred_w_sum"}},
    LOSS("l1", "l1", "mean", "loss_mean", "dpred_mean"),
    LOSS("l1", "l1", "sum", "loss_sum", "dpred_sum"),
    LOSS("smooth_l1", "smooth_l1", "mean", "loss_mean", "dpred_mean"),
    LOSS("smooth_l1", "smooth_l1", "sum", "loss_sum", "dpred_sum"),
    {"smooth_l1", "smooth_l1", {FLT("beta", 0.5)}, 1, {"pred", "target"}, 2, "loss_b05_mean",
     NULL, {"dpred_b05_mean"}},
    {"smooth_l1", "smooth_l1", {FLT("beta", 0.5), STR("reduction", "sum")}, 2,
     {"pred", "target"}, 2, "loss_b05_sum", NULL, {"dpred_b05_sum"}},
    {"smooth_l1", "smooth_l1", {FLT("beta", 0.0)}, 1, {"pred", "target"}, 2, "loss_b0_mean",
     NULL, {"dpred_b0_mean"}},
    {"smooth_l1", "smooth_l1", {FLT("beta", 0.0), STR("reduction", "sum")}, 2,
     {"pred", "target"}, 2, "loss_b0_sum", NULL, {"dpred_b0_sum"}},
    LOSS("huber", "huber", "mean", "loss_mean", "dpred_mean"),
    LOSS("huber", "huber", "sum", "loss_sum", "dpred_sum"),
    {"huber", "huber", {FLT("delta", 0.5)}, 1, {"pred", "target"}, 2, "loss_d05_mean", NULL,
     {"dpred_d05_mean"}},
    {"huber", "huber", {FLT("delta", 0.5), STR("reduction", "sum")}, 2, {"pred", "target"}, 2,
     "loss_d05_sum", NULL, {"dpred_d05_sum"}},
    LOSS("bce_with_logits", "bce_with_logits", "mean", "loss_mean", "dpred_mean"),
    LOSS("bce_with_logits", "bce_with_logits", "sum", "loss_sum", "dpred_sum"),
    {"bce_with_logits", "bce_with_logits",
     {{.key = "pos_weight", .kind = TK_ATTR_FLOATS, .floats = (const double[]){2, 0.5, 3},
       .n = 3}}, 1, {"pred", "target"}, 2, "loss_pw_mean", NULL, {"dpred_pw_mean"}},
    {"bce_with_logits", "bce_with_logits",
     {{.key = "pos_weight", .kind = TK_ATTR_FLOATS, .floats = (const double[]){2, 0.5, 3},
       .n = 3}, STR("reduction", "sum")}, 2, {"pred", "target"}, 2, "loss_pw_sum", NULL,
     {"dpred_pw_sum"}},
    {"bce_with_logits", "bce_with_logits",
     {{.key = "pos_weight", .kind = TK_ATTR_FLOATS, .floats = (const double[]){2.5}, .n = 1}},
     1, {"pred", "target"}, 2, "loss_pw1_mean", NULL, {"dpred_pw1_mean"}},
    /* A lone number is a one-value list. */
    {"bce_with_logits", "bce_with_logits", {FLT("pos_weight", 2.5), STR("reduction", "sum")}, 2,
     {"pred", "target"}, 2, "loss_pw1_sum", NULL, {"dpred_pw1_sum"}},
};

static const float *tensor(const tk_st_file *f, const char *file, const char *name,
                           tk_shape *shape)
{
    int i = tk_st_find(f, name);
    CHECK_MSG(i >= 0, "%s.safetensors: tensor '%s' missing", file, name);
    if (i < 0)
        return NULL;
    if (shape)
        *shape = tk_st_shape(f, i);
    return tk_st_data(f, i);
}

static void expect(const char *what, const fixture_case *c, const float *got, const float *want,
                   int64_t n, float scale)
{
    int bad = 0;
    for (int64_t i = 0; i < n; i++)
        if (!tk_close(got[i], scale * want[i], RTOL, ATOL) && bad++ < 3)
            fprintf(stderr, "%s %s[%lld]: %.9g vs PyTorch %.9g\n", c->op, what, (long long)i,
                    got[i], scale * want[i]);
    CHECK_MSG(bad == 0, "%s (%s): %s: %d of %lld values differ from PyTorch", c->op, c->file,
              what, bad, (long long)n);
}

/* Nothing beyond the first `used` floats of a buffer of `cap` may be written. */
static void untouched(const char *what, const fixture_case *c, const float *buf, size_t used,
                      size_t cap)
{
    size_t bad = 0;
    for (size_t i = used; i < cap; i++)
        bad += buf[i] != SENTINEL;
    CHECK_MSG(bad == 0, "%s: %s: %zu values written beyond a->n rows", c->op, what, bad);
}

static float *fresh(size_t n, float fill, float **owned, int *n_owned)
{
    float *p = owned[(*n_owned)++] = tk_alloc_floats(n);
    for (size_t i = 0; i < n; i++)
        p[i] = fill;
    return p;
}

static void run_case(const fixture_case *c)
{
    char path[1024];
    snprintf(path, sizeof path, "%s/%s.safetensors", TK_FIXTURES, c->file);
    tk_ctx *ctx = tk_ctx_new();
    tk_st_file *f = NULL;
    tk_status st = tk_st_load(path, &f, ctx);
    CHECK_MSG(st == TK_OK, "%s", tk_errmsg(ctx));
    tk_graph *g = tk_graph_new(ctx);
    float *owned[16];
    int n_owned = 0;
    const float *src[3];
    tk_shape shape[3];
    bool ok = st == TK_OK;
    for (int k = 0; ok && k < c->n_in; k++)
        ok = (src[k] = tensor(f, c->file, c->in[k], &shape[k])) != NULL;
    if (!ok)
        goto done;
    int rows = (int)shape[0].d[0], planned = rows + EXTRA_ROWS;
    tk_graph_set_batch(g, planned);
    int ids[3];
    for (int k = 0; k < c->n_in; k++) {
        tk_shape sample = {shape[k].ndim - 1, {0}};
        for (int i = 1; i < shape[k].ndim; i++)
            sample.d[i - 1] = shape[k].d[i];
        ids[k] = tk_graph_source(g, sample, c->in[k]);
    }
    int id = tk_graph_op(g, c->op, ids, c->n_in, c->attrs, c->n_attrs, "op", "test");
    CHECK_MSG(id >= 0, "%s: %s", c->op, tk_errmsg(ctx));
    if (id < 0)
        goto done;
    const tk_node *n = tk_graph_node(g, id);
    bool loss = (n->op->flags & TK_OP_LOSS) != 0;
    tk_kernel_args a = {.node = n, .n = rows, .training = true, .loss_scale = 1.0f};
    size_t used_x[3], cap_x[3];
    for (int k = 0; k < c->n_in; k++) {
        used_x[k] = (size_t)tk_shape_numel(&shape[k]);
        cap_x[k] = used_x[k] / (size_t)rows * (size_t)planned;
        float *x = fresh(cap_x[k], NAN, owned, &n_owned);
        memcpy(x, src[k], used_x[k] * sizeof(float));
        a.x[k] = x;
        if (c->dx[k])
            a.dx[k] = fresh(cap_x[k], SENTINEL, owned, &n_owned);
    }
    size_t cap_y = (size_t)tk_shape_numel(&n->shape);
    size_t used_y = loss ? 1 : cap_y / (size_t)planned * (size_t)rows;
    a.y = fresh(cap_y, SENTINEL, owned, &n_owned);
    a.dy = fresh(cap_y, NAN, owned, &n_owned);
    if (n->scratch)
        a.scratch = fresh(n->scratch, NAN, owned, &n_owned);
    if (c->dy) {
        tk_shape ds;
        const float *dy = tensor(f, c->file, c->dy, &ds);
        CHECK_MSG(dy && (size_t)tk_shape_numel(&ds) == used_y, "%s: %s does not fit the output",
                  c->op, c->dy);
        if (!dy || (size_t)tk_shape_numel(&ds) != used_y)
            goto done;
        memcpy(a.dy, dy, used_y * sizeof(float));
    }
    tk_shape ys;
    const float *want_y = tensor(f, c->file, c->y, &ys);
    CHECK_MSG(want_y && (size_t)tk_shape_numel(&ys) == used_y, "%s: %s has the wrong size",
              c->op, c->y);
    if (!want_y || (size_t)tk_shape_numel(&ys) != used_y)
        goto done;
    n->op->forward(&a);
    expect(c->y, c, a.y, want_y, (int64_t)used_y, 1.0f);
    untouched(c->y, c, a.y, used_y, cap_y);
    /* A loss is the root of the backward pass: run it at two scales. */
    for (int pass = 0; pass < (loss ? 2 : 1); pass++) {
        a.loss_scale = pass ? 0.25f : 1.0f;
        n->op->backward(&a);
        for (int k = 0; k < c->n_in; k++) {
            if (!c->dx[k])
                continue;
            const float *want = tensor(f, c->file, c->dx[k], NULL);
            if (want)
                expect(c->dx[k], c, a.dx[k], want, (int64_t)used_x[k], a.loss_scale);
            untouched(c->dx[k], c, a.dx[k], used_x[k], cap_x[k]);
        }
    }
done:
    for (int i = 0; i < n_owned; i++)
        tk_free_aligned(owned[i]);
    tk_graph_free(g);
    tk_st_free(f);
    tk_ctx_free(ctx);
}

/* Build `op` over sources of the given sample shapes (batch 4); expect failure with a
 * message containing each of `needles`. */
static void expect_error(const char *op, const tk_attr *attrs, int n_attrs, const tk_shape *in,
                         int n_in, const char *const *needles, int n_needles)
{
    tk_ctx *ctx = tk_ctx_new();
    tk_graph *g = tk_graph_new(ctx);
    tk_graph_set_batch(g, 4);
    int ids[3];
    for (int k = 0; k < n_in; k++)
        ids[k] = tk_graph_source(g, in[k], "in");
    int id = tk_graph_op(g, op, ids, n_in, attrs, n_attrs, "bad", "model.lua:7");
    CHECK_MSG(id < 0, "%s: a bad node was accepted", op);
    CHECK_MSG(tk_contains(tk_errmsg(ctx), "model.lua:7"), "%s: %s", op, tk_errmsg(ctx));
    for (int i = 0; i < n_needles; i++)
        CHECK_MSG(tk_contains(tk_errmsg(ctx), needles[i]), "%s: '%s' not in: %s", op,
                  needles[i], tk_errmsg(ctx));
    tk_graph_free(g);
    tk_ctx_free(ctx);
}

#define COUNT(type, ...) (int)(sizeof((type[]){__VA_ARGS__}) / sizeof(type))
#define SHAPES(...) (const tk_shape[]){__VA_ARGS__}, COUNT(tk_shape, __VA_ARGS__)
#define NEEDLES(...) (const char *const[]){__VA_ARGS__}, COUNT(const char *, __VA_ARGS__)

static void test_errors(void)
{
    tk_shape s3 = {1, {3}}, s4 = {1, {4}}, s23 = {2, {2, 3}}, s33 = {2, {3, 3}}, none = {0, {0}};
    tk_attr dim2 = INT("dim", 2), dim0 = INT("dim", 0), tanh_bad = STR("approximate", "fast");
    tk_attr shape_bad = {.key = "shape", .kind = TK_ATTR_INTS, .ints = (const int64_t[]){4, -1},
                         .n = 2};
    tk_attr two_free = {.key = "shape", .kind = TK_ATTR_INTS, .ints = (const int64_t[]){-1, -1},
                        .n = 2};
    tk_attr weight3 = {.key = "weight", .kind = TK_ATTR_INTS, .ints = (const int64_t[]){1, 2, 3},
                       .n = 3};
    tk_attr pw2 = {.key = "pos_weight", .kind = TK_ATTR_FLOATS, .floats = (const double[]){1, 2},
                   .n = 2};
    tk_attr red = STR("reduction", "none");
    expect_error("add", NULL, 0, SHAPES(s3, s4), NEEDLES("(4, 3)", "(4, 4)"));
    expect_error("concat", &dim2, 1, SHAPES(s23, s33),
                 NEEDLES("(4, 2, 3)", "(4, 3, 3)", "dim 2"));
    expect_error("concat", &dim2, 1, SHAPES(s3, s3), NEEDLES("dim 2", "(4, 3)"));
    expect_error("softmax", &dim0, 1, SHAPES(s3), NEEDLES("dim 0", "batch"));
    expect_error("log_softmax", &dim2, 1, SHAPES(s3), NEEDLES("dim 2", "(4, 3)"));
    expect_error("gelu", &tanh_bad, 1, SHAPES(s3), NEEDLES("'fast'"));
    expect_error("reshape", &shape_bad, 1, SHAPES(s23), NEEDLES("(4, 2, 3)", "[4, -1]"));
    expect_error("reshape", &two_free, 1, SHAPES(s23), NEEDLES("[-1, -1]"));
    expect_error("reshape", NULL, 0, SHAPES(s23), NEEDLES("shape"));
    expect_error("l1", NULL, 0, SHAPES(s3, s4), NEEDLES("(4, 3)", "(4, 4)"));
    expect_error("smooth_l1", NULL, 0, SHAPES(s23, s3), NEEDLES("(4, 2, 3)", "(4, 3)"));
    expect_error("huber", &red, 1, SHAPES(s3, s3), NEEDLES("'none'"));
    expect_error("bce_with_logits", NULL, 0, SHAPES(s4, s3), NEEDLES("(4, 4)", "(4, 3)"));
    expect_error("bce_with_logits", &pw2, 1, SHAPES(s3, s3), NEEDLES("1 or 3 values", "got 2"));
    expect_error("nll", &weight3, 1, SHAPES(s4, none), NEEDLES("4 values", "got 3"));
    expect_error("nll", &red, 1, SHAPES(s4, none), NEEDLES("'none'"));
    expect_error("nll", NULL, 0, SHAPES(s23, none), NEEDLES("(4, 2, 3)"));
}

int main(void)
{
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        run_case(&cases[i]);
    test_errors();
    return check_summary();
}
