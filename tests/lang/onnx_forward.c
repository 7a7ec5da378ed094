/* onnx_forward.c - tkrun's own eval-mode forward pass for the ONNX export test
 * (tests/cli/export.sh): builds SCRIPT's pipeline the way tkrun does, loads WEIGHTS strictly,
 * runs N pseudo-random standard-normal samples (seeded, so every run sees the same ones)
 * and writes the inputs and the model's outputs as JSON, for onnxruntime to be compared with.
 *
 *     onnx_forward SCRIPT WEIGHTS N OUT.json
 *
 * Not a test by itself: export.sh asserts on what it writes. */
#include "lang.h"
#include "tk_int.h"

#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>

static void write_array(FILE *f, const char *key, const float *v, int64_t n)
{
    fprintf(f, "\"%s\": [", key);
    for (int64_t i = 0; i < n; i++)
        fprintf(f, i ? ", %.9g" : "%.9g", (double)v[i]);
    fputs("]", f);
}

static void write_shape(FILE *f, const char *key, const tk_shape *s, int n)
{
    fprintf(f, "\"%s\": [%d", key, n);
    for (int i = 1; i < s->ndim; i++)
        fprintf(f, ", %lld", (long long)s->d[i]);
    fputs("]", f);
}

int main(int argc, char **argv)
{
    if (argc != 5) {
        fprintf(stderr, "usage: onnx_forward SCRIPT WEIGHTS N OUT.json\n");
        return 2;
    }
    tk_set_threads(1);
    int n = atoi(argv[3]);
    tk_ctx *ctx = tk_ctx_new();
    lua_State *L = tk_lua_new();
    tk_pipeline p;
    memset(&p, 0, sizeof p);
    tk_status st = tk_lua_run_script(L, argv[1], ctx);
    if (st == TK_OK)
        st = tk_pipeline_build(L, &p, ctx);
    if (st == TK_OK)
        st = tk_model_load_weights(p.model, argv[2], NULL, 0, true, NULL, ctx);
    if (st == TK_OK && (n < 1 || n > tk_model_batch(p.model)))
        st = tk_fail(ctx, TK_ERR_INPUT, "N must be in [1, %d] (the script's batch size)",
                     tk_model_batch(p.model));
    FILE *f = NULL;
    if (st == TK_OK) {
        const tk_graph *g = p.model->g;
        const tk_shape *xs = &g->nodes[g->input].shape, *ys = &g->nodes[g->output].shape;
        int64_t in = (int64_t)n * tk_sample_numel(xs), out = (int64_t)n * tk_sample_numel(ys);
        float *x = tk_model_input(p.model), loss;
        tk_rng r = tk_rng_make(20261202, TK_STREAM_AUGMENT, 0, 0);
        for (int64_t i = 0; i < in; i++)
            x[i] = tk_rng_normal(&r);
        memset(tk_model_target(p.model), 0,
               sizeof(float) * (size_t)n * (size_t)tk_sample_numel(&g->nodes[g->target].shape));
        st = tk_model_eval(p.model, n, &loss, ctx);
        if (st == TK_OK && !(f = fopen(argv[4], "w")))
            st = tk_fail(ctx, TK_ERR_RUNTIME, "cannot write %s", argv[4]);
        if (st == TK_OK) {
            fputs("{", f);
            write_shape(f, "input_shape", xs, n);
            fputs(",\n", f);
            write_array(f, "input", x, in);
            fputs(",\n", f);
            write_shape(f, "output_shape", ys, n);
            fputs(",\n", f);
            write_array(f, "output", tk_model_output(p.model), out);
            fputs("}\n", f);
            if (fclose(f) != 0)
                st = tk_fail(ctx, TK_ERR_RUNTIME, "cannot write %s", argv[4]);
        }
    }
    if (st != TK_OK)
        fprintf(stderr, "onnx_forward: %s\n", tk_errmsg(ctx));
    tk_pipeline_free(&p);
    lua_close(L);
    tk_ctx_free(ctx);
    return st == TK_OK ? 0 : (int)st;
}
