/* test_onnx.c - tk_model_export_onnx on a small fused MLP, read back with a protobuf walker
 * written here: the ModelProto's IR version and opset, the nodes (the fused linear + relu
 * split again into Gemm and Relu), the initializers under the state_dict names with the
 * model's bytes, the input and output names. Then its failures: every allocation failing in
 * turn (an error, nothing written, nothing leaked), an output that depends on the targets,
 * an op without an ONNX form, a path that cannot be written. The numbers against
 * onnxruntime are tests/cli/export.sh's. */
#include "check.h"
#include "tk_int.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

enum { BATCH = 4, IN = 6, HIDDEN = 5, CLASSES = 3 };

/* ---------------------------------------------------------------- a protobuf walker */

typedef struct {
    const uint8_t *p, *end;
} span;

static uint64_t varint(span *s)
{
    uint64_t v = 0;
    for (int shift = 0; s->p < s->end && shift < 64; shift += 7) {
        uint8_t b = *s->p++;
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80))
            return v;
    }
    s->p = s->end + 1; /* malformed: marks the span as broken */
    return 0;
}

/* The next field of s: its number, wire type, varint value or length-delimited bytes.
 * False at the end or on malformed input. */
static bool next_field(span *s, int *field, uint64_t *value, span *bytes)
{
    if (s->p >= s->end)
        return false;
    uint64_t key = varint(s);
    *field = (int)(key >> 3);
    switch (key & 7) {
    case 0:
        *value = varint(s);
        break;
    case 2: {
        uint64_t n = varint(s);
        if (s->p > s->end || n > (uint64_t)(s->end - s->p))
            return false;
        *bytes = (span){s->p, s->p + n};
        s->p += n;
        break;
    }
    case 5:
        if (s->end - s->p < 4)
            return false;
        s->p += 4;
        break;
    default:
        return false;
    }
    return s->p <= s->end;
}

static bool span_is(span s, const char *str)
{
    return (size_t)(s.end - s.p) == strlen(str) && memcmp(s.p, str, strlen(str)) == 0;
}

/* The first length-delimited field `want` of s (empty span if none). */
static span sub(span s, int want)
{
    int f;
    uint64_t v;
    span b = {0};
    while (next_field(&s, &f, &v, &b))
        if (f == want)
            return b;
    return (span){0};
}

/* ---------------------------------------------------------------- the model */

typedef struct {
    tk_ctx *ctx;
    tk_graph *g;
    tk_model *m;
} net;

/* linear(5) -> relu -> linear(3) -> cross_entropy, compiled with fusion. */
static net build(void)
{
    net b = {tk_ctx_new(), NULL, NULL};
    b.g = tk_graph_new(b.ctx);
    tk_graph_set_batch(b.g, BATCH);
    int x = tk_graph_input(b.g, (tk_shape){1, {IN}});
    int t = tk_graph_target(b.g, (tk_shape){0, {0}});
    tk_attr hidden = {.key = "out_features", .kind = TK_ATTR_INT, .i = HIDDEN};
    tk_attr classes = {.key = "out_features", .kind = TK_ATTR_INT, .i = CLASSES};
    int v = tk_graph_op(b.g, "linear", &x, 1, &hidden, 1, "0", "t:1");
    v = tk_graph_op(b.g, "relu", &v, 1, NULL, 0, "1", "t:2");
    v = tk_graph_op(b.g, "linear", &v, 1, &classes, 1, "2", "t:3");
    int in[2] = {v, t};
    int loss = tk_graph_op(b.g, "cross_entropy", in, 2, NULL, 0, "loss", "t:4");
    tk_graph_set_output(b.g, v);
    tk_graph_set_loss(b.g, loss, TK_TASK_CLASSIFICATION);
    tk_optim_spec o = {.type = "sgd", .where = "t:5"};
    o.h.lr = 0.1;
    tk_compile_opts co = {.seed = 3, .fuse = true, .train = false};
    tk_status st = tk_compile(b.g, &o, &co, &b.m, b.ctx);
    CHECK_MSG(st == TK_OK, "%s", tk_errmsg(b.ctx));
    return b;
}

static void free_net(net *b)
{
    tk_model_free(b->m);
    tk_graph_free(b->g);
    tk_ctx_free(b->ctx);
}

static uint8_t *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *p = malloc((size_t)(n > 0 ? n : 1));
    *len = p && fread(p, 1, (size_t)n, f) == (size_t)n ? (size_t)n : 0;
    fclose(f);
    return p;
}

static void test_structure(const char *dir)
{
    net b = build();
    const char *path = check_path(dir, "mlp.onnx");
    CHECK_MSG(tk_model_export_onnx(b.m, path, b.ctx) == TK_OK, "%s", tk_errmsg(b.ctx));
    size_t len = 0;
    uint8_t *bytes = read_file(path, &len);
    CHECK(bytes && len > 0);
    span model = {bytes, bytes + len}, s = model, graph = {0}, field = {0};
    int f;
    uint64_t v;
    int64_t ir = -1, opset = -1;
    while (next_field(&s, &f, &v, &field)) {
        if (f == 1)
            ir = (int64_t)v;
        if (f == 7)
            graph = field;
        if (f == 8) {
            span o = field, x;
            int g;
            uint64_t w;
            while (next_field(&o, &g, &w, &x))
                if (g == 2)
                    opset = (int64_t)w;
        }
    }
    CHECK(s.p == s.end);
    CHECK(ir == 7);
    CHECK(opset == 13);
    char ops[128] = "", inits[128] = "";
    int weight_bytes_equal = 0;
    s = graph;
    while (next_field(&s, &f, &v, &field)) {
        if (f == 1) {
            span op = sub(field, 4);
            snprintf(ops + strlen(ops), sizeof ops - strlen(ops), "%.*s ",
                     (int)(op.end - op.p), (const char *)op.p);
        } else if (f == 5) {
            span name = sub(field, 8), raw = sub(field, 9);
            snprintf(inits + strlen(inits), sizeof inits - strlen(inits), "%.*s ",
                     (int)(name.end - name.p), (const char *)name.p);
            int t = tk_model_find_tensor(b.m, "0.weight");
            tk_tensor_info info = tk_model_tensor(b.m, t);
            if (span_is(name, "0.weight") &&
                (size_t)(raw.end - raw.p) == sizeof(float) * IN * HIDDEN &&
                memcmp(raw.p, info.data, sizeof(float) * IN * HIDDEN) == 0)
                weight_bytes_equal = 1;
        } else if (f == 11) {
            CHECK(span_is(sub(field, 1), "input"));
        } else if (f == 12) {
            CHECK(span_is(sub(field, 1), "output"));
        }
    }
    CHECK_MSG(strcmp(ops, "Gemm Relu Gemm ") == 0, "nodes: %s", ops);
    CHECK_MSG(strcmp(inits, "0.weight 0.bias 2.weight 2.bias ") == 0, "initializers: %s", inits);
    CHECK(weight_bytes_equal);
    free(bytes);
    free_net(&b);
}

/* Each allocation fails in turn: an out-of-memory error, no file, nothing left allocated. */
static void test_out_of_memory(const char *dir)
{
    net b = build();
    const char *path = check_path(dir, "oom.onnx");
    int failures = 0;
    for (long k = 0; k < 10000; k++) {
        remove(path);
        check_count_allocations();
        check_fail_after = k;
        tk_status st = tk_model_export_onnx(b.m, path, b.ctx);
        check_fail_after = -1;
        long live = check_live_blocks();
        tk_set_allocator(NULL);
        CHECK_MSG(live == 0, "%ld blocks left after failing allocation %ld", live, k);
        if (st == TK_OK)
            break;
        failures++;
        struct stat info;
        CHECK(st == TK_ERR_RUNTIME && tk_contains(tk_errmsg(b.ctx), "out of memory"));
        CHECK_MSG(stat(path, &info) != 0, "a failed export wrote %s", path);
    }
    CHECK_MSG(failures > 10, "only %d allocations could fail", failures);
    free_net(&b);
}

static void test_errors(const char *dir)
{
    net b = build();
    /* The model's output made the loss: it reads the targets, which ONNX has no input for. */
    int output = b.m->g->output;
    b.m->g->output = b.m->g->loss;
    CHECK(tk_model_export_onnx(b.m, check_path(dir, "x.onnx"), b.ctx) == TK_ERR_INPUT);
    CHECK_MSG(tk_contains(tk_errmsg(b.ctx), "layer 'target'") &&
              tk_contains(tk_errmsg(b.ctx), "depends on the targets"), "%s", tk_errmsg(b.ctx));
    b.m->g->output = output;
    /* A node whose op has no ONNX form (a loss standing in for a future op) names it. */
    tk_node *last = &b.m->g->nodes[output];
    const tk_op_def *op = last->op;
    last->op = tk_op_find("mse");
    CHECK(tk_model_export_onnx(b.m, check_path(dir, "x.onnx"), b.ctx) == TK_ERR_INPUT);
    CHECK_MSG(tk_contains(tk_errmsg(b.ctx), "t:3: layer '2' (mse): cannot be exported to ONNX"),
              "%s", tk_errmsg(b.ctx));
    last->op = op;
    struct stat info;
    CHECK(stat(check_path(dir, "x.onnx"), &info) != 0);
    const char *bad = check_path(dir, "no/such/dir/x.onnx");
    CHECK(tk_model_export_onnx(b.m, bad, b.ctx) == TK_ERR_RUNTIME);
    CHECK_MSG(tk_contains(tk_errmsg(b.ctx), "writing the ONNX model ") &&
              tk_contains(tk_errmsg(b.ctx), "no/such/dir/x.onnx: cannot write"), "%s",
              tk_errmsg(b.ctx));
    free_net(&b);
}

int main(void)
{
    const char *dir = check_tmpdir("onnx");
    test_structure(dir);
    test_out_of_memory(dir);
    test_errors(dir);
    return check_summary();
}
