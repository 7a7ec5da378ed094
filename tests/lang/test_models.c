/* test_models.c - the example CNN and residual network, compiled from their scripts, equal
 * their PyTorch 1.13 twins (tests/gen_fixtures_models.py): PyTorch's state_dict loads
 * strictly (same names and shapes) and one input batch gives the same logits in eval mode.
 * Tolerance: |got - want| <= 1e-4 * |want| + 1e-4 (conv sums in another order). */
#include "check.h"
#include "lang.h"

#include <lauxlib.h>
#include <string.h>

static void compare_logits(const char *name)
{
    char script[1024], weights[1024], io[1024];
    snprintf(script, sizeof script, "%s/examples/fashion_mnist/%s.lua", TK_SOURCE_DIR, name);
    snprintf(weights, sizeof weights, "%s/model_%s_weights.safetensors", TK_FIXTURES, name);
    snprintf(io, sizeof io, "%s/model_%s_io.safetensors", TK_FIXTURES, name);
    tk_ctx *ctx = tk_ctx_new();
    lua_State *L = tk_lua_new();
    tk_pipeline p;
    memset(&p, 0, sizeof p);
    tk_st_file *f = NULL;
    tk_status st = tk_lua_run_script(L, script, ctx);
    if (st == TK_OK)
        st = tk_pipeline_build(L, &p, ctx);
    CHECK_MSG(st == TK_OK, "%s: %s", name, tk_errmsg(ctx));
    if (st == TK_OK) {
        st = tk_model_load_weights(p.model, weights, NULL, 0, true, NULL, ctx);
        CHECK_MSG(st == TK_OK, "%s: PyTorch's state_dict does not load strictly: %s", name,
                  tk_errmsg(ctx));
    }
    if (st == TK_OK && tk_st_load(io, &f, ctx) == TK_OK) {
        int xi = tk_st_find(f, "input"), yi = tk_st_find(f, "logits");
        tk_shape xs = tk_st_shape(f, xi);
        int n = (int)xs.d[0];
        memcpy(tk_model_input(p.model), tk_st_data(f, xi),
               sizeof(float) * (size_t)tk_shape_numel(&xs));
        memset(tk_model_target(p.model), 0, sizeof(float) * (size_t)n);
        float loss;
        CHECK(tk_model_eval(p.model, n, &loss, ctx) == TK_OK);
        const float *got = tk_model_output(p.model), *want = tk_st_data(f, yi);
        int bad = 0;
        for (int i = 0; i < n * 10; i++)
            if (!tk_close(got[i], want[i], 1e-4, 1e-4) && bad++ < 3)
                fprintf(stderr, "%s logits[%d]: %.7g vs PyTorch %.7g\n", name, i, got[i],
                        want[i]);
        CHECK_MSG(bad == 0, "%s: %d of %d logits differ from PyTorch", name, bad, n * 10);
    }
    tk_st_free(f);
    tk_pipeline_free(&p);
    lua_close(L);
    tk_ctx_free(ctx);
}

int main(void)
{
    tk_set_threads(1);
    compare_logits("cnn");
    compare_logits("resnet");
    return check_summary();
}
