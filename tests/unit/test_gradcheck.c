/* test_gradcheck.c - the table-driven gradient check of every registered op: each op's
 * backward against central finite differences of L = sum(y * r) (losses: L = loss), for its
 * inputs and each parameter. An op missing from the table fails the test, so a new op cannot
 * skip it. Kernels run one at a time on hand-made buffers, outside any compiled plan. */
#include "check.h"
#include "tk_int.h"

#include <math.h>
#include <string.h>

typedef struct {
    const char *op;
    tk_attr attrs[6];
    int n_attrs;
    tk_shape inputs[3];        /* sample shapes, without the batch dim */
    int n_inputs;
    unsigned flags;            /* KINKED, DISTINCT */
} op_case;

enum {
    KINKED = 1,                /* piecewise op: keep inputs away from the kinks */
    DISTINCT = 2,              /* inputs 0.05 apart in random order (max pooling: no ties) */
};

#define INT(k, v) {.key = k, .kind = TK_ATTR_INT, .i = v}
#define FLT(k, v) {.key = k, .kind = TK_ATTR_FLOAT, .f = v}
#define STR(k, v) {.key = k, .kind = TK_ATTR_STR, .s = v}
#define SCALAR {0, {0}}
#define SHAPE(...) {sizeof((int64_t[]){__VA_ARGS__}) / sizeof(int64_t), {__VA_ARGS__}}

static const double ce_weight[4] = {0.5, 1.0, 2.0, 1.5};

/* One case file per family of ops; each adds rows to this table. */
static const op_case cases[] = {
    {"linear", {INT("out_features", 3)}, 1, {SHAPE(5)}, 1, 0},
    {"linear", {INT("out_features", 2), INT("bias", 0)}, 2, {SHAPE(2, 4)}, 1, 0},
    /* out >= 128 and >= rows: the input gradient is summed from two halves of out */
    {"linear", {INT("out_features", 130)}, 1, {SHAPE(3)}, 1, 0},
    {"relu", {{0}}, 0, {SHAPE(7)}, 1, KINKED},
    {"flatten", {{0}}, 0, {SHAPE(2, 3, 2)}, 1, 0},
    {"dropout", {FLT("p", 0.3)}, 1, {SHAPE(9)}, 1, 0},
    {"cross_entropy", {{0}}, 0, {SHAPE(4), SCALAR}, 2, 0},
    {"cross_entropy",
     {FLT("label_smoothing", 0.2), {.key = "weight", .kind = TK_ATTR_FLOATS, .floats = ce_weight, .n = 4},
      INT("ignore_index", 2)},
     3, {SHAPE(4), SCALAR}, 2, 0},
    {"cross_entropy", {STR("reduction", "sum")}, 1, {SHAPE(4), SCALAR}, 2, 0},
    {"mse", {{0}}, 0, {SHAPE(3), SHAPE(3)}, 2, 0},
#include "gradcheck_spatial.inc"
#include "gradcheck_pointwise.inc"
};

enum { BATCH = 3 };

static float randu(tk_rng *r, bool kinked)
{
    float u = 2.0f * tk_rng_uniform(r) - 1.0f;
    if (kinked && fabsf(u) < 0.2f)
        u = u < 0 ? u - 0.2f : u + 0.2f;
    return u;
}

typedef struct {
    tk_kernel_args a;
    float *r;                  /* the random cotangent of y */
    size_t ny;
    bool loss;
} harness;

static double objective(harness *h)
{
    h->a.node->op->forward(&h->a);
    if (h->loss)
        return h->a.y[0];
    double s = 0;
    for (size_t i = 0; i < h->ny; i++)
        s += (double)h->a.y[i] * h->r[i];
    return s;
}

/* Compare the analytic gradient `grad` of buffer `v` (n floats) with central differences. */
static void compare(harness *h, float *v, const float *grad, size_t n, const char *what,
                    const op_case *c)
{
    const float eps = 1e-2f;
    int bad = 0;
    for (size_t i = 0; i < n; i++) {
        float keep = v[i];
        v[i] = keep + eps;
        double up = objective(h);
        v[i] = keep - eps;
        double down = objective(h);
        v[i] = keep;
        double num = (up - down) / (2.0 * eps);
        if (!tk_close(grad[i], num, 2e-2, 2e-3)) {
            if (bad++ < 3)
                fprintf(stderr, "%s: %s[%zu]: analytic %.6g numeric %.6g\n", c->op, what, i,
                        grad[i], num);
        }
    }
    CHECK_MSG(bad == 0, "%s: %d of %zu gradients of %s differ", c->op, bad, n, what);
}

static void run_case(const op_case *c)
{
    tk_ctx *ctx = tk_ctx_new();
    tk_graph *g = tk_graph_new(ctx);
    tk_graph_set_batch(g, BATCH);
    int ins[3];
    for (int k = 0; k < c->n_inputs; k++)
        ins[k] = tk_graph_source(g, c->inputs[k], "in");
    int id = tk_graph_op(g, c->op, ins, c->n_inputs, c->attrs, c->n_attrs, "layer", "test");
    CHECK_MSG(id >= 0, "%s: %s", c->op, tk_errmsg(ctx));
    if (id < 0)
        goto done;
    const tk_node *n = tk_graph_node(g, id);
    harness h = {.loss = (n->op->flags & TK_OP_LOSS) != 0};
    tk_kernel_args *a = &h.a;
    a->node = n;
    a->n = BATCH;
    a->training = true;
    a->seed = 42;
    a->step = 7;
    a->loss_scale = 1.0f;
    tk_rng r = tk_rng_make(1234, 99, (uint32_t)(c - cases), 0);
    float *bufs[32];
    int nbufs = 0;
    size_t nx[3];
    for (int k = 0; k < c->n_inputs; k++) {
        nx[k] = (size_t)tk_shape_numel(&tk_graph_node(g, ins[k])->shape);
        float *x = bufs[nbufs++] = tk_alloc_floats(nx[k]);
        bool ids = k == 1 && (n->op->flags & TK_OP_CLASS_TARGET);
        int64_t classes = tk_graph_node(g, ins[0])->shape.d[1];
        for (size_t i = 0; i < nx[k]; i++)
            x[i] = ids ? (float)(i % (size_t)classes) : randu(&r, (c->flags & KINKED));
        /* Inside-out shuffle of evenly spaced values: no perturbation changes their order. */
        for (size_t i = 0; (c->flags & DISTINCT) && !ids && i < nx[k]; i++) {
            size_t j = (size_t)tk_rng_below(&r, i + 1);
            x[i] = x[j];
            x[j] = 0.05f * (float)i - 0.025f * (float)nx[k];
        }
        a->x[k] = x;
        bool diff = !(k == 1 && (n->op->flags & TK_OP_NOT_DIFF_INPUT1));
        a->dx[k] = diff ? (bufs[nbufs++] = tk_alloc_floats(nx[k])) : NULL;
    }
    h.ny = (size_t)tk_shape_numel(&n->shape);
    a->y = bufs[nbufs++] = tk_alloc_floats(h.ny);
    h.r = bufs[nbufs++] = tk_alloc_floats(h.ny);
    a->dy = bufs[nbufs++] = tk_alloc_floats(h.ny);
    for (size_t i = 0; i < h.ny; i++)
        h.r[i] = randu(&r, false);
    size_t np[TK_MAX_PARAMS];
    for (int k = 0; k < n->n_params; k++) {
        const tk_param_decl *p = &g->params[n->params[k]];
        np[k] = (size_t)tk_shape_numel(&p->shape);
        a->param[k] = bufs[nbufs++] = tk_alloc_floats(np[k]);
        a->dparam[k] = p->trainable ? (bufs[nbufs++] = tk_alloc_floats(np[k])) : NULL;
        for (size_t i = 0; i < np[k]; i++)
            a->param[k][i] = randu(&r, false);
    }
    if (n->scratch)
        a->scratch = bufs[nbufs++] = tk_alloc_floats(n->scratch);
    /* Analytic pass; dy is copied because kernels may overwrite it. */
    objective(&h);
    memcpy(a->dy, h.r, h.ny * sizeof(float));
    n->op->backward(a);
    for (int k = 0; k < c->n_inputs; k++)
        if (a->dx[k])
            compare(&h, (float *)a->x[k], a->dx[k], nx[k], "input", c);
    for (int k = 0; k < n->n_params; k++)
        if (a->dparam[k])
            compare(&h, a->param[k], a->dparam[k], np[k], g->params[n->params[k]].name, c);
    /* Accumulation: a second backward with dx_accumulate doubles the input gradient. */
    for (int k = 0; k < c->n_inputs; k++) {
        if (!a->dx[k])
            continue;
        float first = a->dx[k][0];
        a->dx_accumulate[k] = true;
        objective(&h);
        memcpy(a->dy, h.r, h.ny * sizeof(float));
        for (int p = 0; p < n->n_params; p++)
            if (a->dparam[p])
                memset(a->dparam[p], 0, np[p] * sizeof(float));
        n->op->backward(a);
        CHECK_MSG(tk_close(a->dx[k][0], 2 * first, 1e-5, 1e-7),
                  "%s: accumulate into input %d: %g vs 2 x %g", c->op, k, a->dx[k][0], first);
    }
    for (int i = 0; i < nbufs; i++)
        tk_free_aligned(bufs[i]);
done:
    tk_graph_free(g);
    tk_ctx_free(ctx);
}

int main(void)
{
    int n_cases = (int)(sizeof cases / sizeof cases[0]);
    for (int i = 0; i < tk_op_count(); i++) {
        bool covered = false;
        for (int k = 0; k < n_cases; k++)
            covered = covered || strcmp(cases[k].op, tk_op_name(i)) == 0;
        CHECK_MSG(covered, "registered op '%s' has no gradient-check case", tk_op_name(i));
    }
    for (int k = 0; k < n_cases; k++)
        run_case(&cases[k]);
    return check_summary();
}
