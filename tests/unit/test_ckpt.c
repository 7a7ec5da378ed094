/* test_ckpt.c - weights files as --init reads them: a file tkrun wrote is refused when one
 * bit of its tensor data flipped (its checksum), while a file with no checksum (as PyTorch's
 * save_file writes) still loads; a full checkpoint whose metadata changed (its own checksum)
 * or whose training counters are out of range is refused by name before anything loads.
 * Not here: the safetensors format itself (test_safetensors). */
#include "check.h"
#include "tk_int.h"

#include <string.h>

/* linear(3) on 4 features with SGD; *gp gets the graph, freed after the model. */
static tk_model *tiny_model(tk_graph **gp, tk_ctx *ctx)
{
    tk_graph *g = *gp = tk_graph_new(ctx);
    tk_graph_set_batch(g, 2);
    int x = tk_graph_input(g, (tk_shape){1, {4}});
    int t = tk_graph_target(g, (tk_shape){0, {0}});
    tk_attr out = {.key = "out_features", .kind = TK_ATTR_INT, .i = 3};
    int v = tk_graph_op(g, "linear", &x, 1, &out, 1, "0", "t:1");
    int in[2] = {v, t};
    int loss = tk_graph_op(g, "cross_entropy", in, 2, NULL, 0, "loss", "t:2");
    tk_graph_set_output(g, v);
    tk_graph_set_loss(g, loss, TK_TASK_CLASSIFICATION);
    tk_optim_spec o = {.type = "sgd", .where = "t:3"};
    o.h.lr = 0.1;
    tk_compile_opts co = {.seed = 3, .fuse = true, .train = true};
    tk_model *m = NULL;
    tk_status st = tk_compile(g, &o, &co, &m, ctx);
    CHECK_MSG(st == TK_OK, "%s", tk_errmsg(ctx));
    return m;
}

static void flip_last_byte(const char *path)
{
    FILE *f = fopen(path, "r+b");
    CHECK(f != NULL);
    if (!f)
        return;
    fseek(f, -1, SEEK_END);
    int c = fgetc(f);
    fseek(f, -1, SEEK_END);
    fputc(c ^ 0x10, f);
    fclose(f);
}

static void test_checksum_guards_init(const char *dir)
{
    tk_ctx *ctx = tk_ctx_new();
    tk_graph *g = NULL;
    tk_model *m = tiny_model(&g, ctx);
    if (!m) {
        tk_graph_free(g);
        tk_ctx_free(ctx);
        return;
    }
    const char *path = check_path(dir, "w.safetensors");
    CHECK_MSG(tk_model_save_weights(m, path, ctx) == TK_OK, "%s", tk_errmsg(ctx));
    CHECK_MSG(tk_model_load_weights(m, path, NULL, 0, true, NULL, ctx) == TK_OK, "%s",
              tk_errmsg(ctx));

    float before = m->tensors[0].data[0];
    flip_last_byte(path);
    tk_clear_error(ctx);
    CHECK(tk_model_load_weights(m, path, NULL, 0, false, NULL, ctx) == TK_ERR_INPUT);
    CHECK_MSG(tk_contains(tk_errmsg(ctx), "w.safetensors: corrupted: checksum of the tensor "
                          "data is"), "%s", tk_errmsg(ctx));
    CHECK(m->tensors[0].data[0] == before);

    /* The same tensors with no metadata at all: nothing to verify, so they load. */
    tk_st_tensor t[8];
    for (int i = 0; i < m->n_state && i < 8; i++)
        t[i] = (tk_st_tensor){m->tensors[i].name, m->tensors[i].shape, m->tensors[i].data};
    const char *plain = check_path(dir, "plain.safetensors");
    CHECK_MSG(tk_st_save(plain, t, m->n_state, NULL, NULL, 0, ctx) == TK_OK, "%s",
              tk_errmsg(ctx));
    CHECK_MSG(tk_model_load_weights(m, plain, NULL, 0, true, NULL, ctx) == TK_OK, "%s",
              tk_errmsg(ctx));
    tk_model_free(m);
    tk_graph_free(g);
    tk_ctx_free(ctx);
}

static void test_counters_in_range(const char *dir)
{
    tk_ctx *ctx = tk_ctx_new();
    tk_graph *g = NULL;
    tk_model *m = tiny_model(&g, ctx);
    if (!m) {
        tk_graph_free(g);
        tk_ctx_free(ctx);
        return;
    }
    const char *path = check_path(dir, "full.safetensors");
    tk_train_state good = {.epoch = 1, .cursor = 0, .step = 4, .batches_seen = 4, .rows = 8};
    CHECK_MSG(tk_ckpt_save(m, path, &good, "", ctx) == TK_OK, "%s", tk_errmsg(ctx));
    tk_train_state got = {.epoch = 0};
    CHECK_MSG(tk_ckpt_load(m, path, &got, ctx) == TK_OK, "%s", tk_errmsg(ctx));
    CHECK(got.epoch == 1 && got.step == 4);

    /* One digit of the step changed on disk: the metadata's checksum catches it. */
    FILE *f = fopen(path, "r+b");
    static char bytes[1 << 16];
    size_t len = f ? fread(bytes, 1, sizeof bytes, f) : 0;
    char *hit = NULL;
    for (size_t i = 0; !hit && i + 10 <= len; i++)
        if (memcmp(bytes + i, "\"step\":\"4\"", 10) == 0)
            hit = bytes + i;
    CHECK(hit != NULL);
    if (hit) {
        fseek(f, (long)(hit - bytes) + 8, SEEK_SET);
        fputc('5', f);
    }
    if (f)
        fclose(f);
    tk_clear_error(ctx);
    CHECK(tk_ckpt_load(m, path, &got, ctx) == TK_ERR_INPUT);
    CHECK_MSG(tk_contains(tk_errmsg(ctx), "full.safetensors: corrupted: checksum of the metadata"),
              "%s", tk_errmsg(ctx));

    tk_train_state bad[3] = {good, good, good};
    bad[0].cursor = -3;
    bad[1].step = -1;
    bad[2].cursor = 9;  /* more batches done this epoch than ever */
    const char *want[3] = {"cursor (-3) is out of range", "step (-1) is out of range",
                           "cursor (9) is out of range"};
    for (int i = 0; i < 3; i++) {
        CHECK_MSG(tk_ckpt_save(m, path, &bad[i], "", ctx) == TK_OK, "%s", tk_errmsg(ctx));
        tk_train_state after = {.epoch = 7};
        tk_clear_error(ctx);
        CHECK(tk_ckpt_load(m, path, &after, ctx) == TK_ERR_INPUT);
        CHECK_MSG(tk_contains(tk_errmsg(ctx), want[i]), "'%s' lacks '%s'", tk_errmsg(ctx),
                  want[i]);
        CHECK(after.epoch == 7);
    }
    tk_model_free(m);
    tk_graph_free(g);
    tk_ctx_free(ctx);
}

int main(void)
{
    const char *dir = check_tmpdir("ckpt");
    test_checksum_guards_init(dir);
    test_counters_in_range(dir);
    return check_summary();
}
