/* test_sched_spec.c - schedules from a script to the runtime, the way tkrun builds them: every
 * tk.sched.* with its durations in epochs gives, step for step, the same lrs as the same
 * schedule in steps (durations times the steps per epoch), so the conversion follows each
 * schedule's own declaration of its durations; the options' defaults are the stdlib's; a
 * long milestone list is not cut short; reduce_on_plateau's monitor and inferred mode reach
 * the runtime; and the stdlib's schedules are the runtime registry's. */
#include "check.h"
#include "lang.h"

#include <lauxlib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EPOCHS 120
static const double base[2] = {0.1, 0.01};
static char script[1024];

/* The pipeline of tests/bad_inputs/_common/base.lua (18 train rows in batches of 4: 5 steps
 * an epoch) with `schedule`; its lr schedule into *out. */
static bool build(const char *schedule, tk_sched **out, int64_t *total, int64_t *per_epoch,
                  char *monitor, bool *maximize)
{
    FILE *f = fopen(script, "w");
    if (!f)
        return false;
    fprintf(f, "return tk.pipeline {\n  name = 's', seed = 1,\n"
               "  data = { train = tk.data.csv { path = '%s/tests/bad_inputs/_common/d.csv' },\n"
               "           valid = tk.data.split { fraction = 0.25 }, batch_size = 4 },\n"
               "  model = tk.nn.sequential { tk.nn.linear(3) },\n"
               "  loss = tk.loss.cross_entropy {}, optimizer = tk.optim.sgd { lr = 0.1 },\n"
               "  metrics = { 'f1' }, epochs = %d,\n  schedule = %s,\n}\n",
            TK_SOURCE_DIR, EPOCHS, schedule);
    fclose(f);
    tk_ctx *ctx = tk_ctx_new();
    lua_State *L = tk_lua_new();
    tk_pipeline p;
    memset(&p, 0, sizeof p);
    tk_status st = tk_lua_run_script(L, script, ctx);
    if (st == TK_OK)
        st = tk_pipeline_build(L, &p, ctx);
    CHECK_MSG(st == TK_OK, "%s: %s", schedule, tk_errmsg(ctx));
    *out = NULL;
    if (st == TK_OK) {
        CHECK_MSG(tk_sched_new(p.train.sched, 2, base, out, ctx) == TK_OK, "%s: %s", schedule,
                  tk_errmsg(ctx));
        *total = p.sched.total_steps;
        *per_epoch = tk_train_steps_per_epoch(&p.train);
        const char *m = tk_sched_monitor(p.train.sched, maximize);
        snprintf(monitor, 64, "%s", m ? m : "");
    }
    tk_pipeline_free(&p);
    lua_close(L);
    tk_ctx_free(ctx);
    return *out != NULL;
}

/* `in_epochs` and `in_steps` (a format with %lld for each duration, given in steps) give the
 * same lr at every step of the run and past it. Returns the steps per epoch. */
static int64_t same(const char *in_epochs, const char *in_steps, int n_durations,
                    const long long *durations)
{
    tk_sched *e, *s = NULL;
    int64_t total = 0, per_epoch = 0;
    char monitor[64], steps[512];
    bool max;
    if (!build(in_epochs, &e, &total, &per_epoch, monitor, &max))
        return 0;
    long long d[4] = {0};
    for (int i = 0; i < n_durations && i < 4; i++)
        d[i] = durations[i] * per_epoch;
    snprintf(steps, sizeof steps, in_steps, d[0], d[1], d[2], d[3]);
    if (build(steps, &s, &total, &per_epoch, monitor, &max)) {
        int bad = 0;
        for (int64_t k = 0; k < total + 10; k++) {
            double a[2], b[2];
            tk_sched_lrs(e, k, a);
            tk_sched_lrs(s, k, b);
            if ((a[0] != b[0] || a[1] != b[1]) && bad++ < 3)
                fprintf(stderr, "%s vs %s, step %lld: %.17g vs %.17g\n", in_epochs, steps,
                        (long long)k, a[0], b[0]);
        }
        CHECK_MSG(bad == 0, "%s: %d steps differ from %s", in_epochs, bad, steps);
    }
    tk_sched_free(e);
    tk_sched_free(s);
    return per_epoch;
}

static double lr_at(const char *schedule, int64_t step)
{
    tk_sched *s;
    int64_t total, per_epoch;
    char monitor[64];
    bool max;
    double lrs[2] = {NAN, NAN};
    if (build(schedule, &s, &total, &per_epoch, monitor, &max))
        tk_sched_lrs(s, step, lrs);
    tk_sched_free(s);
    return lrs[0];
}

static void test_units(void)
{
    const long long d[] = {3, 4, 2, 6};
    int64_t spe = same("tk.sched.step(3)", "tk.sched.step { step_size = %lld, unit = 'step' }",
                       1, d);
    CHECK_MSG(spe == 5, "%lld steps per epoch", (long long)spe);
    same("tk.sched.cosine { T_max = 4, eta_min = 1e-3, warmup_steps = 7 }",
         "tk.sched.cosine { T_max = %lld, eta_min = 1e-3, warmup_steps = 7, unit = 'step' }", 1,
         d + 1);
    same("tk.sched.cosine()", "tk.sched.cosine { unit = 'step' }", 0, d);
    same("tk.sched.cosine_restarts { T_0 = 2, T_mult = 2 }",
         "tk.sched.cosine_restarts { T_0 = %lld, T_mult = 2, unit = 'step' }", 1, d + 2);
    same("tk.sched.linear { total_iters = 6 }",
         "tk.sched.linear { total_iters = %lld, unit = 'step' }", 1, d + 3);
    same("tk.sched.linear { start_factor = 0.5 }",
         "tk.sched.linear { start_factor = 0.5, unit = 'step' }", 0, d);
    same("tk.sched.polynomial { total_iters = 6, power = 2 }",
         "tk.sched.polynomial { total_iters = %lld, power = 2, unit = 'step' }", 1, d + 3);
    same("tk.sched.polynomial()", "tk.sched.polynomial { unit = 'step' }", 0, d);
    same("tk.sched.exponential(0.99)", "tk.sched.exponential { gamma = 0.99, unit = 'step' }",
         0, d);
    same("tk.sched.onecycle { max_lr = 0.5, warmup_steps = 3 }",
         "tk.sched.onecycle { max_lr = 0.5, warmup_steps = 3, unit = 'step' }", 0, d);
    same("tk.sched.onecycle { max_lr = 0.5, anneal_strategy = 'linear' }",
         "tk.sched.onecycle { max_lr = 0.5, anneal_strategy = 'linear', unit = 'step' }", 0, d);
    same("tk.sched.constant { warmup_steps = 9, warmup_start_factor = 0.25 }",
         "tk.sched.constant { warmup_steps = 9, warmup_start_factor = 0.25, unit = 'step' }", 0,
         d);
    same("tk.sched.reduce_on_plateau()", "tk.sched.reduce_on_plateau { unit = 'step' }", 0, d);
    const long long ms[] = {2, 5};
    same("tk.sched.multistep { milestones = {2, 5}, gamma = 0.5 }",
         "tk.sched.multistep { milestones = {%lld, %lld}, gamma = 0.5, unit = 'step' }", 2, ms);
}

/* The defaults come from the stdlib (step's gamma 0.1, cosine's eta_min 0). */
static void test_defaults(void)
{
    CHECK(lr_at("tk.sched.step(3)", 14) == 0.1);
    CHECK_CLOSE(lr_at("tk.sched.step(3)", 15), 0.1 * 0.1, 1e-15, 0);
    CHECK_CLOSE(lr_at("tk.sched.cosine { T_max = 2 }", 10), 0.0, 0, 1e-18);
}

/* 100 milestones, all of them counted (spec.c once kept the first 64). */
static void test_many_milestones(void)
{
    char sched[2048] = "tk.sched.multistep { gamma = 0.9, milestones = {";
    for (int i = 1; i <= 100; i++)
        snprintf(sched + strlen(sched), sizeof sched - strlen(sched), "%d,", i);
    snprintf(sched + strlen(sched), sizeof sched - strlen(sched), "} }");
    CHECK_CLOSE(lr_at(sched, 100 * 5 - 1), 0.1 * pow(0.9, 99), 1e-12, 0);
    CHECK_CLOSE(lr_at(sched, 100 * 5), 0.1 * pow(0.9, 100), 1e-12, 0);
}

/* What reduce_on_plateau watches, with the mode the stdlib infers from it. */
static void test_monitor(void)
{
    tk_sched *s;
    int64_t total, per_epoch;
    char monitor[64];
    bool max = false;
    if (build("tk.sched.reduce_on_plateau { monitor = 'valid.f1', patience = 0 }", &s, &total,
              &per_epoch, monitor, &max)) {
        CHECK(strcmp(monitor, "valid.f1") == 0 && max);
        CHECK(tk_sched_state_size(s) == 3 + 2);
        tk_sched_observe(s, 0.5);
        tk_sched_observe(s, 0.4); /* worse for a maximised f1, patience 0: reduce */
        double lrs[2];
        tk_sched_lrs(s, 0, lrs);
        CHECK_CLOSE(lrs[0], 0.1 * 0.1, 1e-15, 0);
        tk_sched_free(s);
    }
    if (build("tk.sched.cosine()", &s, &total, &per_epoch, monitor, &max)) {
        CHECK(monitor[0] == 0);
        tk_sched_free(s);
    }
}

/* tk.sched's constructors and the runtime registry name the same schedules. */
static void test_names(void)
{
    lua_State *L = tk_lua_new();
    int n = 0;
    if (luaL_dostring(L, "local n = {} for k in pairs(require('tk').sched) do n[#n + 1] = k end "
                         "table.sort(n) return n") == LUA_OK) {
        n = (int)luaL_len(L, -1);
        for (int i = 1; i <= n; i++) {
            lua_rawgeti(L, -1, i);
            CHECK_MSG(tk_sched_known(lua_tostring(L, -1)), "tk.sched.%s is not in the runtime "
                      "registry", lua_tostring(L, -1));
            lua_pop(L, 1);
        }
    }
    CHECK_MSG(n > 0, "%d schedules in tk.sched", n);
    lua_close(L);
}

int main(void)
{
    tk_ctx *ctx = tk_ctx_new();
    CHECK_MSG(tk_mkdirs(TK_TEST_TMP, ctx) == TK_OK, "%s", tk_errmsg(ctx));
    tk_ctx_free(ctx);
    snprintf(script, sizeof script, "%s/sched_spec.lua", TK_TEST_TMP);
    test_units();
    test_defaults();
    test_many_milestones();
    test_monitor();
    test_names();
    return check_summary();
}
