/* test_ckpt_meta.c - what a checkpoint carries besides the weights (issue 16): I64 tensors
 * written and read back as values, a batch norm model's num_batches_tracked stored as I64,
 * the model's own metadata (tk_model_set_meta) in weights and full checkpoints, number lists
 * (tk_meta_numbers), and the loss weight a pass averages by (tk_model_loss_weight: class
 * weights and ignore_index as PyTorch's mean divides, rows otherwise). */
#include "check.h"
#include "tk_int.h"

#include <stdlib.h>
#include <string.h>

enum { BATCH = 4, IN = 3, CLASSES = 3 };

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = malloc(1 << 16);
    *len = fread(buf, 1, (1 << 16) - 1, f);
    buf[*len] = 0;
    fclose(f);
    return buf;
}

static void test_i64_round_trip(void)
{
    const char *dir = check_tmpdir("ckpt_meta");
    const char *path = check_path(dir, "i64.safetensors");
    float counts[3] = {0, 7, -2}, w[2] = {0.5f, -1.25f};
    tk_st_tensor t[2] = {{"n", {1, {3}}, counts}, {"w", {1, {2}}, w}};
    bool i64[2] = {true, false};
    tk_ctx *ctx = tk_ctx_new();
    CHECK_MSG(tk_st_save_typed(path, t, i64, 2, NULL, NULL, 0, ctx) == TK_OK, "%s",
              tk_errmsg(ctx));
    size_t len = 0;
    char *raw = slurp(path, &len);
    CHECK(raw && tk_contains(raw + 8, "\"n\":{\"dtype\":\"I64\",\"shape\":[3],"
                                      "\"data_offsets\":[0,24]}"));
    CHECK(raw && tk_contains(raw + 8, "\"w\":{\"dtype\":\"F32\",\"shape\":[2],"
                                      "\"data_offsets\":[24,32]}"));
    free(raw);
    tk_st_file *f = NULL;
    CHECK_MSG(tk_st_load(path, &f, ctx) == TK_OK, "%s", tk_errmsg(ctx));
    if (f) {
        const float *n = tk_st_data(f, tk_st_find(f, "n"));
        CHECK(n[0] == 0 && n[1] == 7 && n[2] == -2);
        CHECK(tk_st_data(f, tk_st_find(f, "w"))[1] == -1.25f);
        tk_st_free(f);
    }
    tk_ctx_free(ctx);
}

/* linear(3) -> [batch_norm1d] -> loss, with the loss's attributes. */
static tk_model *compile(const char *loss, const tk_attr *attrs, int n_attrs, bool bn,
                         tk_ctx *ctx)
{
    tk_graph *g = tk_graph_new(ctx);
    tk_graph_set_batch(g, BATCH);
    int x = tk_graph_input(g, (tk_shape){1, {IN}});
    int t = tk_graph_target(g, (tk_shape){0, {0}});
    tk_attr h = {.key = "out_features", .kind = TK_ATTR_INT, .i = CLASSES};
    int v = tk_graph_op(g, "linear", &x, 1, &h, 1, "0", "t:1");
    if (bn)
        v = tk_graph_op(g, "batch_norm1d", &v, 1, NULL, 0, "1", "t:2");
    if (strcmp(loss, "nll") == 0)
        v = tk_graph_op(g, "log_softmax", &v, 1, NULL, 0, "2", "t:3");
    int in[2] = {v, t};
    int l = tk_graph_op(g, loss, in, 2, attrs, n_attrs, "loss", "t:4");
    CHECK_MSG(l >= 0, "%s", tk_errmsg(ctx));
    tk_graph_set_output(g, v);
    tk_graph_set_loss(g, l, check_task_of(loss));
    tk_optim_spec o = {.type = "sgd", .where = "t:5"};
    o.h.lr = 0.1;
    tk_compile_opts co = {.seed = 1, .fuse = true, .train = true};
    tk_model *m = NULL;
    CHECK_MSG(tk_compile(g, &o, &co, &m, ctx) == TK_OK, "%s", tk_errmsg(ctx));
    tk_graph_free(g);
    return m;
}

static void test_loss_weight(void)
{
    tk_ctx *ctx = tk_ctx_new();
    static const double w[CLASSES] = {1, 2, 4};
    tk_attr weighted[2] = {
        {.key = "weight", .kind = TK_ATTR_FLOATS, .floats = w, .n = CLASSES},
        {.key = "ignore_index", .kind = TK_ATTR_INT, .i = 1},
    };
    tk_attr sum = {.key = "reduction", .kind = TK_ATTR_STR, .s = "sum"};
    const float y[BATCH] = {0, 1, 2, 2};
    struct {
        const char *op;
        const tk_attr *attrs;
        int n_attrs;
        double want4, want2;   /* for all four rows, the first two */
    } cases[] = {
        {"cross_entropy", NULL, 0, 4, 2},
        {"cross_entropy", weighted, 1, 1 + 2 + 4 + 4, 3},
        {"cross_entropy", weighted, 2, 1 + 4 + 4, 1},   /* class 1 ignored */
        {"nll", weighted, 2, 1 + 4 + 4, 1},
        {"nll", weighted, 1, 1 + 2 + 4 + 4, 3},
        {"cross_entropy", &sum, 1, 4, 2},               /* a sum weighs by rows */
        {"mse", NULL, 0, 4, 2},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        bool regression = strcmp(cases[k].op, "mse") == 0;
        tk_model *m;
        if (regression) {
            tk_graph *g = tk_graph_new(ctx);
            tk_graph_set_batch(g, BATCH);
            int x = tk_graph_input(g, (tk_shape){1, {IN}});
            int t = tk_graph_target(g, (tk_shape){1, {1}});
            tk_attr h = {.key = "out_features", .kind = TK_ATTR_INT, .i = 1};
            int v = tk_graph_op(g, "linear", &x, 1, &h, 1, "0", "t:1");
            int in[2] = {v, t};
            int l = tk_graph_op(g, "mse", in, 2, NULL, 0, "loss", "t:2");
            tk_graph_set_output(g, v);
            tk_graph_set_loss(g, l, TK_TASK_REGRESSION);
            tk_optim_spec o = {.type = "sgd", .where = "t:3"};
            o.h.lr = 0.1;
            tk_compile_opts co = {.seed = 1, .fuse = true, .train = true};
            m = NULL;
            CHECK_MSG(tk_compile(g, &o, &co, &m, ctx) == TK_OK, "%s", tk_errmsg(ctx));
            tk_graph_free(g);
        } else {
            m = compile(cases[k].op, cases[k].attrs, cases[k].n_attrs, false, ctx);
        }
        if (!m)
            continue;
        memcpy(tk_model_target(m), y, sizeof y);
        CHECK_MSG(tk_model_loss_weight(m, 4) == cases[k].want4, "case %zu: %g", k,
                  tk_model_loss_weight(m, 4));
        CHECK_MSG(tk_model_loss_weight(m, 2) == cases[k].want2, "case %zu: %g", k,
                  tk_model_loss_weight(m, 2));
        tk_model_free(m);
    }
    tk_ctx_free(ctx);
}

static void test_model_meta(void)
{
    tk_ctx *ctx = tk_ctx_new();
    tk_model *m = compile("cross_entropy", NULL, 0, true, ctx);
    if (!m) {
        tk_ctx_free(ctx);
        return;
    }
    CHECK(tk_model_set_meta(m, "data.classes", "{\"a\": 0}", ctx) == TK_OK);
    CHECK(tk_model_set_meta(m, "data.mean", "1,2", ctx) == TK_OK);
    CHECK(tk_model_set_meta(m, "data.mean", "3,4.5", ctx) == TK_OK);   /* replaced */
    CHECK(tk_model_set_meta(m, "checksum", "x", ctx) == TK_ERR_INPUT);
    CHECK(tk_contains(tk_errmsg(ctx), "'checksum' is the checkpoint's own"));
    int bn = tk_model_find_tensor(m, "1.num_batches_tracked");
    CHECK(bn >= 0);
    if (bn >= 0)
        tk_model_tensor(m, bn).data[0] = 12;
    const char *dir = check_tmpdir("ckpt_meta_model");
    const char *paths[2] = {check_path(dir, "weights.safetensors"),
                            check_path(dir, "full.safetensors")};
    tk_train_state st = {.best = 0, .stop_best = 0};
    CHECK(tk_model_save_weights(m, paths[0], ctx) == TK_OK);
    CHECK_MSG(tk_ckpt_save(m, paths[1], &st, NULL, ctx) == TK_OK, "%s", tk_errmsg(ctx));
    for (int k = 0; k < 2; k++) {
        size_t len = 0;
        char *raw = slurp(paths[k], &len);
        CHECK(raw && tk_contains(raw + 8, "\"1.num_batches_tracked\":{\"dtype\":\"I64\""));
        free(raw);
        tk_st_file *f = NULL;
        CHECK_MSG(tk_st_load(paths[k], &f, ctx) == TK_OK, "%s", tk_errmsg(ctx));
        if (!f)
            continue;
        const char *classes = tk_st_meta(f, "data.classes");
        CHECK(classes && strcmp(classes, "{\"a\": 0}") == 0);
        double v[4];
        CHECK(tk_meta_numbers(tk_st_meta(f, "data.mean"), v, 4) == 2 && v[0] == 3 && v[1] == 4.5);
        CHECK(tk_st_data(f, tk_st_find(f, "1.num_batches_tracked"))[0] == 12);
        tk_st_free(f);
    }
    /* A full checkpoint with an I64 counter loads back into the model. */
    if (bn >= 0)
        tk_model_tensor(m, bn).data[0] = 0;
    tk_train_state in = {0};
    CHECK_MSG(tk_ckpt_load(m, paths[1], &in, ctx) == TK_OK, "%s", tk_errmsg(ctx));
    CHECK(bn < 0 || tk_model_tensor(m, bn).data[0] == 12);
    tk_model_free(m);
    tk_ctx_free(ctx);
}

static void test_numbers(void)
{
    double v[3];
    CHECK(tk_meta_numbers("1,-2.5,0x1p-2", v, 3) == 3 && v[1] == -2.5 && v[2] == 0.25);
    CHECK(tk_meta_numbers("", v, 3) == 0);
    CHECK(tk_meta_numbers("1,,2", v, 3) == -1);
    CHECK(tk_meta_numbers("1,", v, 3) == -1);
    CHECK(tk_meta_numbers("1;2", v, 3) == -1);
    CHECK(tk_meta_numbers("1,2,3,4", v, 3) == -1);
    CHECK(tk_meta_numbers(NULL, v, 3) == -1);
}

int main(void)
{
    test_i64_round_trip();
    test_loss_weight();
    test_model_meta();
    test_numbers();
    return check_summary();
}
