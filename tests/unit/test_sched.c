/* test_sched.c - the learning-rate schedules against PyTorch 1.13 (tests/fixtures/
 * sched.safetensors, written by tests/gen_fixtures_sched.py): every kind with and without
 * warmup for 300 steps and reduce_on_plateau over 40 observations, two groups each. The spec
 * of every case comes from the fixture's __metadata__, so the cases live in one place.
 * Also: validation messages, plateau state round trips, and the edges PyTorch cannot
 * produce (warmup from 0, a zero-length onecycle warm-up, steps past the cycle).
 *
 * Tolerance: relative error 1e-9 (|ours - torch| <= 1e-9 * max(|torch|, 1e-12)). The fixture
 * stores each lr as float32 plus its float32 residual, which together carry ~1e-14; tkrun's
 * closed forms differ from PyTorch's recursive get_lr only by rounding (~1e-14), so 1e-9
 * checks that they are the same functions with room to spare. */
#include "check.h"
#include "tk_int.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define RTOL 1e-9
#define MAX_GROUPS 2
#define MAX_MILESTONES 16

static tk_ctx *ctx;
static tk_st_file *fx;
static double base_lrs[MAX_GROUPS];

/* A spec parsed from the fixture's "key=value" words. */
typedef struct {
    tk_sched_spec s;
    int64_t milestones[MAX_MILESTONES];
} parsed;

static const char *const kinds[] = {
    [TK_SCHED_CONSTANT] = "constant", [TK_SCHED_STEP] = "step",
    [TK_SCHED_MULTISTEP] = "multistep", [TK_SCHED_EXPONENTIAL] = "exponential",
    [TK_SCHED_COSINE] = "cosine", [TK_SCHED_COSINE_RESTARTS] = "cosine_restarts",
    [TK_SCHED_LINEAR] = "linear", [TK_SCHED_POLYNOMIAL] = "polynomial",
    [TK_SCHED_ONECYCLE] = "onecycle", [TK_SCHED_PLATEAU] = "reduce_on_plateau",
};

static bool set_field(parsed *p, const char *k, const char *v)
{
    tk_sched_spec *s = &p->s;
    double d = strtod(v, NULL);
    int64_t i = strtoll(v, NULL, 10);
    if (strcmp(k, "kind") == 0) {
        for (size_t j = 0; j < sizeof kinds / sizeof kinds[0]; j++)
            if (strcmp(v, kinds[j]) == 0) {
                s->kind = (tk_sched_kind)j;
                return true;
            }
        return false;
    }
    if (strcmp(k, "milestones") == 0) {
        char *end = (char *)v;
        for (s->n_milestones = 0; *end && s->n_milestones < MAX_MILESTONES; end += *end == ',')
            p->milestones[s->n_milestones++] = strtoll(end, &end, 10);
        s->milestones = p->milestones;
        return true;
    }
#define INT(name) if (strcmp(k, #name) == 0) return s->name = i, true
#define DBL(name) if (strcmp(k, #name) == 0) return s->name = d, true
    INT(total_steps); INT(step_size); INT(T_max); INT(T_0); INT(T_mult); INT(total_iters);
    INT(patience); INT(cooldown); INT(warmup_steps);
    DBL(gamma); DBL(eta_min); DBL(start_factor); DBL(end_factor); DBL(power); DBL(max_lr);
    DBL(pct_start); DBL(div_factor); DBL(final_div_factor); DBL(factor); DBL(threshold);
    DBL(min_lr); DBL(warmup_start_factor);
#undef INT
#undef DBL
    if (strcmp(k, "anneal") == 0)
        return s->anneal_linear = strcmp(v, "linear") == 0, true;
    if (strcmp(k, "mode") == 0)
        return s->mode_max = strcmp(v, "max") == 0, true;
    if (strcmp(k, "threshold_mode") == 0)
        return s->threshold_abs = strcmp(v, "abs") == 0, true;
    return false;
}

/* Fills *p in place (spec.milestones points into it, so it is not returned by value). */
static void parse(parsed *p, const char *name, const char *words)
{
    memset(p, 0, sizeof *p);
    char buf[1024], *save = NULL;
    snprintf(buf, sizeof buf, "%s", words);
    for (char *w = strtok_r(buf, " ", &save); w; w = strtok_r(NULL, " ", &save)) {
        char *eq = strchr(w, '=');
        CHECK_MSG(eq != NULL, "%s: bad word '%s'", name, w);
        if (!eq)
            continue;
        *eq = 0;
        CHECK_MSG(set_field(p, w, eq + 1), "%s: unknown key or value '%s=%s'", name, w, eq + 1);
    }
    p->s.milestones = p->milestones;
}

/* Row-major (rows, MAX_GROUPS) lrs of `name`: float32 plus residual, back in double. */
static double *expected(const char *name, int rows)
{
    char key[128];
    snprintf(key, sizeof key, "%s.lr", name);
    int hi = tk_st_find(fx, key);
    snprintf(key, sizeof key, "%s.lr_lo", name);
    int lo = tk_st_find(fx, key);
    CHECK_MSG(hi >= 0 && lo >= 0, "fixture lacks %s.lr or %s.lr_lo", name, name);
    if (hi < 0 || lo < 0)
        return NULL;
    tk_shape sh = tk_st_shape(fx, hi);
    CHECK_MSG(sh.ndim == 2 && sh.d[0] == rows && sh.d[1] == MAX_GROUPS, "%s.lr shape", name);
    double *out = malloc(sizeof(double) * (size_t)rows * MAX_GROUPS);
    for (int i = 0; i < rows * MAX_GROUPS; i++)
        out[i] = (double)tk_st_data(fx, hi)[i] + (double)tk_st_data(fx, lo)[i];
    return out;
}

static double rel_err(double ours, double want)
{
    return fabs(ours - want) / fmax(fabs(want), 1e-12);
}

static double worst_sched = 0, worst_plateau = 0;

static void run_case(const char *name, const char *words, int steps)
{
    parsed p;
    parse(&p, name, words);
    tk_sched *s;
    tk_status st = tk_sched_new(&p.s, MAX_GROUPS, base_lrs, &s, ctx);
    CHECK_MSG(st == TK_OK, "%s: %s", name, tk_errmsg(ctx));
    double *want = expected(name, steps);
    if (st != TK_OK || !want) {
        free(want);
        return;
    }
    CHECK(tk_sched_state_size(s) == 0);
    double worst = 0;
    for (int k = 0; k < steps; k++) {
        double lrs[MAX_GROUPS];
        tk_sched_lrs(s, k, lrs);
        for (int g = 0; g < MAX_GROUPS; g++) {
            double w = want[k * MAX_GROUPS + g], e = rel_err(lrs[g], w);
            CHECK_MSG(e <= RTOL, "%s step %d group %d: %.17g vs torch %.17g", name, k, g,
                      lrs[g], w);
            worst = fmax(worst, e);
        }
    }
    worst_sched = fmax(worst_sched, worst);
    free(want);
    tk_sched_free(s);
}

static void compare_lrs(const char *what, const tk_sched *s, const double *want, double *worst)
{
    double lrs[MAX_GROUPS];
    tk_sched_lrs(s, 1000, lrs); /* any step: plateau lrs are state, not a function of it */
    for (int g = 0; g < MAX_GROUPS; g++) {
        double e = rel_err(lrs[g], want[g]);
        CHECK_MSG(e <= RTOL, "%s group %d: %.17g vs torch %.17g", what, g, lrs[g], want[g]);
        *worst = fmax(*worst, e);
    }
}

/* Observe every metric, comparing the lrs after each; halfway, a second schedule takes the
 * first's state and must then follow the fixture too (the checkpoint round trip). */
static void run_plateau(const char *name, const char *words, int steps)
{
    parsed p;
    parse(&p, name, words);
    char key[128];
    snprintf(key, sizeof key, "%s.metrics", name);
    int mi = tk_st_find(fx, key);
    CHECK_MSG(mi >= 0, "fixture lacks %s", key);
    double *want = expected(name, steps);
    tk_sched *s = NULL, *resumed = NULL;
    CHECK_MSG(tk_sched_new(&p.s, MAX_GROUPS, base_lrs, &s, ctx) == TK_OK, "%s", tk_errmsg(ctx));
    if (mi < 0 || !want || !s) {
        free(want);
        tk_sched_free(s);
        return;
    }
    /* The metrics are float64 in the fixture and float32 here: the same values for both
     * sides, since the comparisons they take part in are not near ties. */
    const float *metrics = tk_st_data(fx, mi);
    CHECK(tk_sched_state_size(s) == 3 + MAX_GROUPS);
    double worst = 0;
    for (int k = 0; k < steps; k++) {
        char what[160];
        tk_sched_observe(s, metrics[k]);
        snprintf(what, sizeof what, "%s after observation %d", name, k);
        compare_lrs(what, s, want + k * MAX_GROUPS, &worst);
        if (resumed) {
            tk_sched_observe(resumed, metrics[k]);
            snprintf(what, sizeof what, "%s resumed, after observation %d", name, k);
            compare_lrs(what, resumed, want + k * MAX_GROUPS, &worst);
        }
        if (k == steps / 2) {
            double state[3 + MAX_GROUPS], back[3 + MAX_GROUPS];
            tk_sched_get_state(s, state);
            CHECK(tk_sched_new(&p.s, MAX_GROUPS, base_lrs, &resumed, ctx) == TK_OK);
            tk_sched_set_state(resumed, state);
            tk_sched_get_state(resumed, back);
            CHECK(memcmp(state, back, sizeof state) == 0);
        }
    }
    worst_plateau = fmax(worst_plateau, worst);
    free(want);
    tk_sched_free(s);
    tk_sched_free(resumed);
}

static bool is_case(const char *key)
{
    return strcmp(key, "base_lrs") != 0 && strcmp(key, "steps") != 0 &&
           strcmp(key, "plateau_steps") != 0 && strcmp(key, "torch") != 0;
}

static void test_fixtures(void)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/sched.safetensors", TK_FIXTURES);
    CHECK_MSG(tk_st_load(path, &fx, ctx) == TK_OK, "%s", tk_errmsg(ctx));
    if (!fx)
        return;
    const char *ver = tk_st_meta(fx, "torch"), *lrs = tk_st_meta(fx, "base_lrs");
    const char *steps = tk_st_meta(fx, "steps"), *psteps = tk_st_meta(fx, "plateau_steps");
    CHECK(ver && strncmp(ver, "1.13", 4) == 0);
    CHECK(lrs && steps && psteps);
    if (!lrs || !steps || !psteps)
        return;
    char *end;
    base_lrs[0] = strtod(lrs, &end);
    base_lrs[1] = strtod(end + 1, NULL);
    int n_cases = 0, n_plateau = 0;
    for (int i = 0; i < tk_st_meta_count(fx); i++) {
        const char *key = tk_st_meta_key(fx, i), *words = tk_st_meta(fx, key);
        if (!is_case(key))
            continue;
        if (strstr(words, "kind=reduce_on_plateau")) {
            run_plateau(key, words, atoi(psteps));
            n_plateau++;
        } else {
            run_case(key, words, atoi(steps));
            n_cases++;
        }
    }
    /* Every kind, each with and without warmup, and three plateau configurations. */
    CHECK_MSG(n_cases >= 2 * (TK_SCHED_ONECYCLE + 1) && n_plateau == 3, "%d cases, %d plateau",
              n_cases, n_plateau);
    printf("%d schedules: worst relative error %.3g; %d plateau: %.3g\n", n_cases, worst_sched,
           n_plateau, worst_plateau);
    tk_st_free(fx);
}

/* ---------------------------------------------------------------- validation */

static void expect_error(const tk_sched_spec *sp, int n, const double *lrs, const char *msg)
{
    tk_sched *s = (tk_sched *)&s; /* not NULL, so the check sees tk_sched_new clear it */
    CHECK(tk_sched_new(sp, n, lrs, &s, ctx) == TK_ERR_INPUT);
    CHECK(s == NULL);
    CHECK_MSG(tk_contains(tk_errmsg(ctx), msg), "'%s' lacks '%s'", tk_errmsg(ctx), msg);
}

static void test_validation(void)
{
    const double lr[2] = {0.1, 0.01};
    const int64_t down[] = {100, 50}, zero[] = {0, 10};
    tk_sched_spec sp;
#define SPEC(...) (sp = (tk_sched_spec){__VA_ARGS__}, &sp)
    expect_error(SPEC(.kind = TK_SCHED_STEP, .gamma = 0.1), 2, lr,
                 "sched.step: step_size must be positive (got 0)");
    expect_error(SPEC(.kind = TK_SCHED_STEP, .step_size = 5, .gamma = 0), 2, lr,
                 "sched.step: gamma must be a positive number");
    expect_error(SPEC(.kind = TK_SCHED_MULTISTEP, .gamma = 0.1), 2, lr,
                 "sched.multistep: milestones must list at least one step");
    expect_error(SPEC(.kind = TK_SCHED_MULTISTEP, .milestones = down, .n_milestones = 2,
                      .gamma = 0.1), 2, lr,
                 "sched.multistep: milestones must be increasing (50 follows 100)");
    expect_error(SPEC(.kind = TK_SCHED_MULTISTEP, .milestones = zero, .n_milestones = 2,
                      .gamma = 0.1), 2, lr,
                 "sched.multistep: milestones must be positive (milestone 1 is 0)");
    expect_error(SPEC(.kind = TK_SCHED_EXPONENTIAL, .gamma = NAN), 2, lr,
                 "sched.exponential: gamma must be a positive number");
    expect_error(SPEC(.kind = TK_SCHED_COSINE), 2, lr,
                 "sched.cosine: T_max is not given and the run's total_steps is unknown");
    expect_error(SPEC(.kind = TK_SCHED_COSINE, .total_steps = 100, .warmup_steps = 100,
                      .warmup_start_factor = 0.1), 2, lr,
                 "sched.cosine: T_max defaults to total_steps - warmup_steps = 100 - 100");
    expect_error(SPEC(.kind = TK_SCHED_COSINE, .T_max = 10, .eta_min = -1), 2, lr,
                 "sched.cosine: eta_min must be a number >= 0 (got -1)");
    expect_error(SPEC(.kind = TK_SCHED_COSINE_RESTARTS, .T_mult = 1), 2, lr,
                 "sched.cosine_restarts: T_0 must be a positive integer (got 0)");
    expect_error(SPEC(.kind = TK_SCHED_COSINE_RESTARTS, .T_0 = 10), 2, lr,
                 "sched.cosine_restarts: T_mult must be an integer >= 1 (got 0)");
    expect_error(SPEC(.kind = TK_SCHED_LINEAR, .start_factor = 1.5, .end_factor = 1,
                      .total_iters = 5), 2, lr,
                 "sched.linear: start_factor must be in [0, 1] (got 1.5)");
    expect_error(SPEC(.kind = TK_SCHED_LINEAR, .start_factor = 0.5, .end_factor = 1,
                      .total_iters = -3), 2, lr,
                 "sched.linear: total_iters must be positive (got -3)");
    expect_error(SPEC(.kind = TK_SCHED_POLYNOMIAL, .total_iters = 5, .power = 0), 2, lr,
                 "sched.polynomial: power must be a positive number (got 0)");
    expect_error(SPEC(.kind = TK_SCHED_ONECYCLE, .max_lr = 1, .pct_start = 0.3,
                      .div_factor = 25, .final_div_factor = 1e4), 2, lr,
                 "sched.onecycle: total_steps must be positive (got 0)");
    expect_error(SPEC(.kind = TK_SCHED_ONECYCLE, .total_steps = 100, .max_lr = 1,
                      .pct_start = 1, .div_factor = 25, .final_div_factor = 1e4), 2, lr,
                 "sched.onecycle: pct_start must be between 0 and 1, both excluded (got 1)");
    expect_error(SPEC(.kind = TK_SCHED_ONECYCLE, .total_steps = 100, .max_lr = 1,
                      .pct_start = 0.3, .final_div_factor = 1e4), 2, lr,
                 "sched.onecycle: div_factor must be a positive number (got 0)");
    expect_error(SPEC(.kind = TK_SCHED_ONECYCLE, .total_steps = 100, .pct_start = 0.3,
                      .div_factor = 25, .final_div_factor = 1e4), 2, lr,
                 "sched.onecycle: max_lr must be a positive number (got 0)");
    expect_error(SPEC(.kind = TK_SCHED_ONECYCLE, .total_steps = 100, .max_lr = 1,
                      .pct_start = 0.3, .div_factor = 25, .final_div_factor = 1e4,
                      .warmup_steps = 100), 2, lr,
                 "sched.onecycle: warmup_steps (100) leaves none of total_steps (100)");
    expect_error(SPEC(.kind = TK_SCHED_PLATEAU, .factor = 1, .patience = 10), 2, lr,
                 "sched.reduce_on_plateau: factor must be between 0 and 1, both excluded");
    expect_error(SPEC(.kind = TK_SCHED_PLATEAU, .factor = 0.1, .patience = -1), 2, lr,
                 "sched.reduce_on_plateau: patience must be >= 0 (got -1)");
    expect_error(SPEC(.kind = TK_SCHED_PLATEAU, .factor = 0.1, .cooldown = -2), 2, lr,
                 "sched.reduce_on_plateau: cooldown must be >= 0 (got -2)");
    expect_error(SPEC(.kind = TK_SCHED_PLATEAU, .factor = 0.1, .min_lr = -1), 2, lr,
                 "sched.reduce_on_plateau: min_lr must be a number >= 0 (got -1)");
    expect_error(SPEC(.kind = TK_SCHED_CONSTANT, .warmup_steps = -1), 2, lr,
                 "sched.constant: warmup_steps must be >= 0 (got -1)");
    expect_error(SPEC(.kind = TK_SCHED_CONSTANT, .warmup_steps = 5, .warmup_start_factor = 2),
                 2, lr, "sched.constant: warmup_start_factor must be in [0, 1] (got 2)");
    expect_error(SPEC(.kind = TK_SCHED_CONSTANT), 0, lr,
                 "sched.constant: no parameter groups to schedule");
    const double neg[2] = {0.1, -0.5};
    expect_error(SPEC(.kind = TK_SCHED_CONSTANT), 2, neg,
                 "sched.constant: parameter group 1 has lr -0.5");
    expect_error(SPEC(.kind = (tk_sched_kind)99), 2, lr, "sched: unknown schedule kind 99");
#undef SPEC
}

/* ---------------------------------------------------------------- edges */

static tk_sched *make(const tk_sched_spec *sp, const double *lrs)
{
    tk_sched *s = NULL;
    CHECK_MSG(tk_sched_new(sp, 2, lrs, &s, ctx) == TK_OK, "%s", tk_errmsg(ctx));
    return s;
}

static void test_edges(void)
{
    const double lr[2] = {0.1, 0.01};
    double out[2], end[2];
    /* Warmup from 0 (PyTorch's recursive LinearLR divides by zero there). */
    tk_sched_spec sp = {.kind = TK_SCHED_CONSTANT, .warmup_steps = 4};
    tk_sched *s = make(&sp, lr);
    for (int k = 0; s && k <= 5; k++) {
        tk_sched_lrs(s, k, out);
        double f = k < 4 ? k / 4.0 : 1.0;
        CHECK_CLOSE(out[0], 0.1 * f, 1e-15, 0);
        CHECK_CLOSE(out[1], 0.01 * f, 1e-15, 0);
    }
    tk_sched_lrs(s, -3, out); /* before the first step: the first step's lr */
    CHECK(out[0] == 0.0 && out[1] == 0.0);
    tk_sched_free(s);

    /* onecycle: pct_start * total_steps == 1 makes a one-step warm-up phase: the peak at
     * step 0, where PyTorch divides 0 by 0. Past the cycle the lr stays at its end. */
    sp = (tk_sched_spec){.kind = TK_SCHED_ONECYCLE, .total_steps = 10, .max_lr = 0.4,
                         .pct_start = 0.1, .div_factor = 4, .final_div_factor = 10};
    if ((s = make(&sp, lr))) {
        tk_sched_lrs(s, 0, out);
        CHECK(out[0] == 0.4 && out[1] == 0.4); /* max_lr is every group's, as a scalar */
        tk_sched_lrs(s, 9, out);
        CHECK_CLOSE(out[0], 0.4 / 4 / 10, 1e-15, 0);
        tk_sched_lrs(s, 10, end);
        tk_sched_lrs(s, 1000000, out);
        CHECK(isfinite(out[0]) && out[0] == end[0]);
        tk_sched_free(s);
    }

    /* Huge steps stay finite: restarts with growing periods, and decays underflow to 0. */
    sp = (tk_sched_spec){.kind = TK_SCHED_COSINE_RESTARTS, .T_0 = 3, .T_mult = 3};
    if ((s = make(&sp, lr))) {
        tk_sched_lrs(s, INT64_MAX, out);
        CHECK(isfinite(out[0]) && out[0] >= 0 && out[0] <= 0.1);
        tk_sched_free(s);
    }
    sp = (tk_sched_spec){.kind = TK_SCHED_STEP, .step_size = 1, .gamma = 0.5};
    if ((s = make(&sp, lr))) {
        tk_sched_lrs(s, INT64_MAX, out);
        CHECK(out[0] == 0.0);
        tk_sched_free(s);
    }

    /* Plateau under warmup: the ramp goes to the plateau's current lr. Other kinds ignore
     * observations and have no state. */
    sp = (tk_sched_spec){.kind = TK_SCHED_PLATEAU, .factor = 0.5, .patience = 0,
                         .warmup_steps = 10, .warmup_start_factor = 0.2};
    if ((s = make(&sp, lr))) {
        tk_sched_observe(s, 1.0);
        tk_sched_observe(s, 2.0); /* worse, patience 0: halve */
        tk_sched_lrs(s, 5, out);
        CHECK_CLOSE(out[0], 0.05 * (0.2 + 0.8 * 5 / 10.0), 1e-15, 0);
        tk_sched_lrs(s, 10, out);
        CHECK(out[0] == 0.05 && out[1] == 0.005);
        /* A corrupted count in a checkpoint's state is not undefined behaviour. */
        double state[5] = {1.0, NAN, -4, 0.5, 0.25};
        tk_sched_set_state(s, state);
        tk_sched_get_state(s, state);
        CHECK(state[1] == 0 && state[2] == 0 && state[3] == 0.5);
        tk_sched_free(s);
    }
    sp = (tk_sched_spec){.kind = TK_SCHED_EXPONENTIAL, .gamma = 0.5};
    if ((s = make(&sp, lr))) {
        tk_sched_observe(s, 3.0);
        tk_sched_lrs(s, 2, out);
        CHECK(out[0] == 0.025 && tk_sched_state_size(s) == 0);
        tk_sched_free(s);
    }
}

int main(void)
{
    ctx = tk_ctx_new();
    test_fixtures();
    test_validation();
    test_edges();
    tk_ctx_free(ctx);
    return check_summary();
}
