/* test_plan_gradcheck.c - ops inside compiled plans: parameter gradients of whole graphs
 * (branches joined by add and concat, reshapes, softmax, several losses, a batch smaller
 * than the planned one) against central finite differences of the eval loss. Where the per-op
 * gradient check proves each kernel, this proves the memory plan keeps what every backward
 * reads (the ops' flags) and accumulates gradients where a value has several consumers. */
#include "check.h"
#include "tk_int.h"

#include <math.h>
#include <string.h>

enum { BATCH = 6, IN = 6 };
#define A_INT(k, v) {.key = k, .kind = TK_ATTR_INT, .i = v}
#define A_STR(k, v) {.key = k, .kind = TK_ATTR_STR, .s = v}

static int op(tk_graph *g, const char *name, int *in, int n_in, const tk_attr *at, int na,
              const char *nm)
{
    int v = tk_graph_op(g, name, in, n_in, at, na, nm, "t");
    CHECK_MSG(v >= 0, "%s", tk_errmsg(g->ctx));
    return v;
}

static tk_graph *build(tk_ctx *ctx, int variant)
{
    tk_graph *g = tk_graph_new(ctx);
    tk_graph_set_batch(g, BATCH);
    int x = tk_graph_input(g, (tk_shape){1, {IN}});
    int t = tk_graph_target(g, variant == 0 ? (tk_shape){0, {0}} : (tk_shape){1, {3}});
    tk_attr h8 = A_INT("out_features", 8), h3 = A_INT("out_features", 3);
    int a = op(g, "linear", &x, 1, &h8, 1, "0");
    const char *act1[] = {"gelu", "elu", "leaky_relu", "silu"};
    const char *act2[] = {"tanh", "sigmoid", "softplus", "gelu"};
    a = op(g, act1[variant], &a, 1, NULL, 0, "0a");
    int b = op(g, "linear", &a, 1, &h8, 1, "1");
    b = op(g, act2[variant], &b, 1, NULL, 0, "1a");
    int ab[2] = {a, b};
    int c = op(g, "add", ab, 2, NULL, 0, "add");
    int ca[3] = {c, a, b};
    int d = op(g, "concat", ca, 3, NULL, 0, "cat");           /* (N, 24) */
    tk_attr shp = {.key = "shape", .kind = TK_ATTR_INTS, .ints = (const int64_t[]){3, -1},
                   .n = 2};
    int e = op(g, "reshape", &d, 1, &shp, 1, "rs");           /* (N, 3, 8) */
    tk_attr dim1 = A_INT("dim", 1);
    e = op(g, variant & 1 ? "softmax" : "log_softmax", &e, 1, &dim1, 1, "sm");
    tk_attr shp2 = {.key = "shape", .kind = TK_ATTR_INTS, .ints = (const int64_t[]){24},
                    .n = 1};
    e = op(g, "reshape", &e, 1, &shp2, 1, "rs2");
    int out = op(g, "linear", &e, 1, &h3, 1, "2");
    int lin[2];
    int loss;
    const char *ln[] = {NULL, "huber", "bce_with_logits", "smooth_l1"};
    if (variant == 0) {
        int lp = op(g, "log_softmax", &out, 1, NULL, 0, "ls");
        lin[0] = lp;
        lin[1] = t;
        tk_attr w = {.key = "weight", .kind = TK_ATTR_INTS, .ints = (const int64_t[]){1, 2, 3},
                     .n = 3};
        loss = op(g, "nll", lin, 2, &w, 1, "loss");
    } else {
        lin[0] = out;
        lin[1] = t;
        tk_attr r = A_STR("reduction", "sum");
        loss = op(g, ln[variant], lin, 2, &r, 1, "loss");
    }
    tk_graph_set_output(g, out);
    tk_graph_set_loss(g, loss, variant == 0 ? TK_TASK_CLASSIFICATION : check_task_of(ln[variant]));
    return g;
}

static void fill(tk_model *m, int variant)
{
    tk_rng r = tk_rng_make(3, 5, 0, 0);
    float *x = tk_model_input(m), *y = tk_model_target(m);
    for (int i = 0; i < BATCH * IN; i++)
        x[i] = 2 * tk_rng_uniform(&r) - 1;
    for (int i = 0; i < BATCH * (variant ? 3 : 1); i++)
        y[i] = variant ? tk_rng_uniform(&r) : (float)(i % 3);
}

int main(void)
{
    for (int variant = 0; variant < 4; variant++) {
        tk_ctx *ctx = tk_ctx_new();
        tk_graph *g = build(ctx, variant);
        tk_optim_spec o = {.type = "sgd", .where = "t"};
        o.h.lr = 0.1;
        tk_compile_opts co = {.seed = 11, .fuse = true, .train = true};
        tk_model *m = NULL;
        tk_status st = tk_compile(g, &o, &co, &m, ctx);
        CHECK_MSG(st == TK_OK, "%s", tk_errmsg(ctx));
        if (st != TK_OK) {
            tk_graph_free(g);
            tk_ctx_free(ctx);
            continue;
        }
        fill(m, variant);
        int n = BATCH - 2;
        float loss;
        tk_model_zero_grad(m);
        tk_model_forward_backward(m, n, 1.0f, 0, &loss, ctx);
        int bad = 0, total = 0;
        for (int ti = 0; ti < tk_model_tensor_count(m); ti++) {
            tk_tensor_info info = tk_model_tensor(m, ti);
            if (info.kind != TK_TENSOR_PARAM)
                continue;
            tk_tensor_rec *rec = &m->tensors[ti];
            int64_t ne = tk_shape_numel(&info.shape);
            for (int64_t i = 0; i < ne; i++) {
                float keep = info.data[i], eps = 1e-2f, up, down;
                info.data[i] = keep + eps;
                tk_model_eval(m, n, &up, ctx);
                info.data[i] = keep - eps;
                tk_model_eval(m, n, &down, ctx);
                info.data[i] = keep;
                double num = ((double)up - down) / (2 * eps);
                total++;
                if (!tk_close(rec->grad[i], num, 3e-2, 3e-3) && bad++ < 3)
                    fprintf(stderr, "variant %d %s[%lld]: %g vs numeric %g\n", variant,
                            info.name, (long long)i, rec->grad[i], num);
            }
        }
        CHECK_MSG(bad == 0, "variant %d: %d of %d gradients differ (loss %g)", variant, bad,
                  total, loss);
        tk_model_free(m);
        tk_graph_free(g);
        tk_ctx_free(ctx);
    }
    return check_summary();
}
