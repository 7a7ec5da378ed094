/* test_sched.c - the learning-rate schedules against PyTorch 1.13 (tests/fixtures/
 * sched.safetensors, written by tests/gen_fixtures_sched.py): every kind with and without
 * warmup for 300 steps and reduce_on_plateau over 40 observations, two groups each. The spec
 * of every case comes from the fixture's __metadata__, so the cases live in one place.
 * Also: validation messages, the internal errors of specs the stdlib cannot produce
 * (a missing, unknown or mistyped option), durations in units of several steps, plateau
 * state round trips, and the edges PyTorch cannot produce (warmup from 0, a zero-length
 * onecycle warm-up, steps past the cycle).
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
#define MAX_ATTRS 24
/* Every schedule but reduce_on_plateau, which the fixture holds apart. */
#define N_STEPPED_KINDS 9

static tk_ctx *ctx;
static tk_st_file *fx;
static double base_lrs[MAX_GROUPS];

/* A spec parsed from "key=value" words: kind= names the schedule, total_steps= and unit= are
 * the spec's own (unit 1 unless given: the words count steps), every other word an option:
 * a list if it has a comma or is empty ("50,120"), else an integer, a number, or a string. */
typedef struct {
    tk_sched_spec s;
    char buf[1024];            /* the words, cut in place: keys and strings point into it */
    tk_attr attrs[MAX_ATTRS];
    int64_t ints[MAX_ATTRS][MAX_MILESTONES];
} parsed;

static bool has_attr(const parsed *p, const char *key)
{
    for (int i = 0; i < p->s.n_attrs; i++)
        if (strcmp(p->attrs[i].key, key) == 0)
            return true;
    return false;
}

static bool set_word(parsed *p, const char *k, char *v)
{
    char *end;
    if (strcmp(k, "kind") == 0)
        return p->s.name = v, true;
    if (strcmp(k, "total_steps") == 0)
        return p->s.total_steps = strtoll(v, NULL, 10), true;
    if (strcmp(k, "unit") == 0)
        return p->s.unit = strtoll(v, NULL, 10), true;
    if (p->s.n_attrs == MAX_ATTRS)
        return false;
    tk_attr *a = &p->attrs[p->s.n_attrs];
    /* The generator spells onecycle's anneal_strategy as PyTorch's keyword's stem. */
    *a = (tk_attr){.key = strcmp(k, "anneal") == 0 ? "anneal_strategy" : k};
    if (!v[0] || strchr(v, ',')) {
        a->kind = TK_ATTR_INTS;
        a->ints = p->ints[p->s.n_attrs];
        for (end = v; *end && a->n < MAX_MILESTONES; end += *end == ',')
            p->ints[p->s.n_attrs][a->n++] = strtoll(end, &end, 10);
    } else if ((a->i = strtoll(v, &end, 10)), !*end) {
        a->kind = TK_ATTR_INT;
    } else if ((a->f = strtod(v, &end)), !*end) {
        a->kind = TK_ATTR_FLOAT;
    } else {
        a->kind = TK_ATTR_STR;
        a->s = v;
    }
    p->s.n_attrs++;
    return true;
}

/* Fills *p in place (the spec points into it, so it is not returned by value). */
static void parse_words(parsed *p, const char *name, const char *words)
{
    memset(p, 0, sizeof *p);
    p->s.unit = 1;
    p->s.attrs = p->attrs;
    snprintf(p->buf, sizeof p->buf, "%s", words);
    char *save = NULL;
    for (char *w = strtok_r(p->buf, " ", &save); w; w = strtok_r(NULL, " ", &save)) {
        char *eq = strchr(w, '=');
        CHECK_MSG(eq != NULL, "%s: bad word '%s'", name, w);
        if (!eq)
            continue;
        *eq = 0;
        CHECK_MSG(set_word(p, w, eq + 1), "%s: too many words at '%s'", name, w);
    }
}

/* The stdlib's part: every option the words leave out takes what the fixture generator gave
 * PyTorch for it (no warmup, cosine annealing; PyTorch has no monitor names). */
static void parse(parsed *p, const char *name, const char *words)
{
    static const char *const fill[][3] = {
        {NULL, "warmup_steps", "0"}, {NULL, "warmup_start_factor", "0"},
        {"onecycle", "anneal_strategy", "cos"}, {"reduce_on_plateau", "monitor", "valid.loss"},
    };
    parse_words(p, name, words);
    for (size_t i = 0; i < sizeof fill / sizeof fill[0]; i++)
        if ((!fill[i][0] || (p->s.name && strcmp(fill[i][0], p->s.name) == 0)) &&
            !has_attr(p, fill[i][1]))
            CHECK(set_word(p, fill[i][1], (char *)fill[i][2]));
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
    CHECK_MSG(n_cases >= 2 * N_STEPPED_KINDS && n_plateau == 3, "%d cases, %d plateau",
              n_cases, n_plateau);
    printf("%d schedules: worst relative error %.3g; %d plateau: %.3g\n", n_cases, worst_sched,
           n_plateau, worst_plateau);
    tk_st_free(fx);
}

/* ---------------------------------------------------------------- validation */

static void expect_status(const char *words, int n, const double *lrs, tk_status want,
                          const char *msg)
{
    parsed p;
    parse(&p, words, words);
    tk_sched *s = (tk_sched *)&s; /* not NULL, so the check sees tk_sched_new clear it */
    CHECK_MSG(tk_sched_new(&p.s, n, lrs, &s, ctx) == want, "%s", words);
    CHECK(s == NULL);
    CHECK_MSG(tk_contains(tk_errmsg(ctx), msg), "'%s' lacks '%s'", tk_errmsg(ctx), msg);
}

static void expect_error(const char *words, int n, const double *lrs, const char *msg)
{
    expect_status(words, n, lrs, TK_ERR_INPUT, msg);
}

static void test_validation(void)
{
    const double lr[2] = {0.1, 0.01};
    expect_error("kind=step step_size=0 gamma=0.1", 2, lr,
                 "sched.step: step_size must be positive (got 0)");
    expect_error("kind=step step_size=5 gamma=0", 2, lr,
                 "sched.step: gamma must be a positive number");
    expect_error("kind=multistep milestones= gamma=0.1", 2, lr,
                 "sched.multistep: milestones must list at least one step");
    expect_error("kind=multistep milestones=100,50 gamma=0.1", 2, lr,
                 "sched.multistep: milestones must be increasing (50 follows 100)");
    expect_error("kind=multistep milestones=0,10 gamma=0.1", 2, lr,
                 "sched.multistep: milestones must be positive (milestone 1 is 0)");
    expect_error("kind=exponential gamma=nan", 2, lr,
                 "sched.exponential: gamma must be a positive number");
    expect_error("kind=cosine eta_min=0", 2, lr,
                 "sched.cosine: T_max is not given and the run's total_steps is unknown");
    expect_error("kind=cosine eta_min=0 total_steps=100 warmup_steps=100 "
                 "warmup_start_factor=0.1", 2, lr,
                 "sched.cosine: T_max defaults to total_steps - warmup_steps = 100 - 100");
    expect_error("kind=cosine T_max=10 eta_min=-1", 2, lr,
                 "sched.cosine: eta_min must be a number >= 0 (got -1)");
    expect_error("kind=cosine_restarts T_0=0 T_mult=1 eta_min=0", 2, lr,
                 "sched.cosine_restarts: T_0 must be positive (got 0)");
    expect_error("kind=cosine_restarts T_0=10 T_mult=0 eta_min=0", 2, lr,
                 "sched.cosine_restarts: T_mult must be positive (got 0)");
    expect_error("kind=linear start_factor=1.5 end_factor=1 total_iters=5", 2, lr,
                 "sched.linear: start_factor must be in [0, 1] (got 1.5)");
    expect_error("kind=linear start_factor=0.5 end_factor=1 total_iters=-3", 2, lr,
                 "sched.linear: total_iters must be positive (got -3)");
    expect_error("kind=polynomial total_iters=5 power=0", 2, lr,
                 "sched.polynomial: power must be a positive number (got 0)");
    expect_error("kind=onecycle max_lr=1 pct_start=0.3 div_factor=25 final_div_factor=1e4", 2,
                 lr, "sched.onecycle: total_steps must be positive (got 0)");
    expect_error("kind=onecycle total_steps=100 max_lr=1 pct_start=1 div_factor=25 "
                 "final_div_factor=1e4", 2, lr,
                 "sched.onecycle: pct_start must be between 0 and 1, both excluded (got 1)");
    expect_error("kind=onecycle total_steps=100 max_lr=1 pct_start=0.3 div_factor=0 "
                 "final_div_factor=1e4", 2, lr,
                 "sched.onecycle: div_factor must be a positive number (got 0)");
    expect_error("kind=onecycle total_steps=100 max_lr=0 pct_start=0.3 div_factor=25 "
                 "final_div_factor=1e4", 2, lr,
                 "sched.onecycle: max_lr must be a positive number (got 0)");
    expect_error("kind=onecycle total_steps=100 max_lr=1 pct_start=0.3 div_factor=25 "
                 "final_div_factor=1e4 warmup_steps=100", 2, lr,
                 "sched.onecycle: warmup_steps (100) leaves none of total_steps (100)");
    expect_error("kind=onecycle total_steps=100 max_lr=1 pct_start=0.3 div_factor=25 "
                 "final_div_factor=1e4 anneal=cosine", 2, lr,
                 "sched.onecycle: anneal_strategy must be 'cos' or 'linear' (got 'cosine')");
#define PLATEAU "kind=reduce_on_plateau mode=min threshold=1e-4 threshold_mode=rel "
    expect_error(PLATEAU "factor=1 patience=10 cooldown=0 min_lr=0", 2, lr,
                 "sched.reduce_on_plateau: factor must be between 0 and 1, both excluded");
    expect_error(PLATEAU "factor=0.1 patience=-1 cooldown=0 min_lr=0", 2, lr,
                 "sched.reduce_on_plateau: patience must be >= 0 (got -1)");
    expect_error(PLATEAU "factor=0.1 patience=0 cooldown=-2 min_lr=0", 2, lr,
                 "sched.reduce_on_plateau: cooldown must be >= 0 (got -2)");
    expect_error(PLATEAU "factor=0.1 patience=0 cooldown=0 min_lr=-1", 2, lr,
                 "sched.reduce_on_plateau: min_lr must be a number >= 0 (got -1)");
    expect_error("kind=reduce_on_plateau mode=low threshold=1e-4 threshold_mode=rel factor=0.1 "
                 "patience=0 cooldown=0 min_lr=0", 2, lr,
                 "sched.reduce_on_plateau: mode must be 'min' or 'max' (got 'low')");
#undef PLATEAU
    expect_error("kind=constant warmup_steps=-1", 2, lr,
                 "sched.constant: warmup_steps must be >= 0 (got -1)");
    expect_error("kind=constant warmup_steps=5 warmup_start_factor=2", 2, lr,
                 "sched.constant: warmup_start_factor must be in [0, 1] (got 2)");
    expect_error("kind=constant", 0, lr, "sched.constant: no parameter groups to schedule");
    const double neg[2] = {0.1, -0.5};
    expect_error("kind=constant", 2, neg, "sched.constant: parameter group 1 has lr -0.5");
    expect_error("kind=nope", 2, lr, "sched: unknown schedule 'nope'");
    /* Durations count the spec's unit; the product must fit. */
    expect_error("kind=step step_size=4611686018427387904 gamma=0.1 unit=4", 2, lr,
                 "sched.step: step_size = 4611686018427387904 epochs of 4 steps is more steps "
                 "than fit in 64 bits");
    expect_error("kind=multistep milestones=10,4611686018427387904 gamma=0.1 unit=3", 2, lr,
                 "sched.multistep: milestones = 4611686018427387904 epochs of 3 steps");

    /* Specs the stdlib cannot produce: internal errors naming the option (C has no defaults
     * to fill a missing one with). */
    expect_status("kind=step step_size=3", 2, lr, TK_ERR_RUNTIME,
                  "internal error: sched.step: option 'gamma' is missing");
    expect_status("kind=cosine_restarts T_0=3 eta_min=0", 2, lr, TK_ERR_RUNTIME,
                  "internal error: sched.cosine_restarts: option 'T_mult' is missing");
    expect_status("kind=exponential gamma=0.5 gama=0.5", 2, lr, TK_ERR_RUNTIME,
                  "internal error: sched.exponential: unknown option 'gama'");
    expect_status("kind=exponential gamma=0.5 gamma=0.6", 2, lr, TK_ERR_RUNTIME,
                  "internal error: sched.exponential: option 'gamma' is given twice");
    expect_status("kind=step step_size=2.5 gamma=0.5", 2, lr, TK_ERR_RUNTIME,
                  "internal error: sched.step: option 'step_size' must be an integer (got a "
                  "number)");
    expect_status("kind=exponential gamma=fast", 2, lr, TK_ERR_RUNTIME,
                  "internal error: sched.exponential: option 'gamma' must be a number (got a "
                  "string)");
    expect_status("kind=onecycle total_steps=100 max_lr=1 pct_start=0.3 div_factor=25 "
                  "final_div_factor=1e4 anneal=1", 2, lr, TK_ERR_RUNTIME,
                  "internal error: sched.onecycle: option 'anneal_strategy' must be a string");
    expect_status("kind=multistep milestones=3 gamma=0.5", 2, lr, TK_ERR_RUNTIME,
                  "internal error: sched.multistep: option 'milestones' must be a list of "
                  "integers (got an integer)");
    parsed p;
    parse_words(&p, "no warmup", "kind=constant");
    tk_sched *s = NULL;
    CHECK(tk_sched_new(&p.s, 2, lr, &s, ctx) == TK_ERR_RUNTIME && !s);
    CHECK(tk_contains(tk_errmsg(ctx), "sched.constant: option 'warmup_steps' is missing"));
}

/* Durations are in the spec's unit (steps per epoch, or 1), the rest as given. */
static void test_units(void)
{
    const double lr[2] = {0.1, 0.01};
    double a[2], b[2];
    parsed ep, st;
    parse(&ep, "epochs", "kind=multistep milestones=2,5 gamma=0.5 unit=10 warmup_steps=3 "
                         "warmup_start_factor=0.5");
    parse(&st, "steps", "kind=multistep milestones=20,50 gamma=0.5 warmup_steps=3 "
                        "warmup_start_factor=0.5");
    tk_sched *e = NULL, *s = NULL;
    CHECK_MSG(tk_sched_new(&ep.s, 2, lr, &e, ctx) == TK_OK, "%s", tk_errmsg(ctx));
    CHECK_MSG(tk_sched_new(&st.s, 2, lr, &s, ctx) == TK_OK, "%s", tk_errmsg(ctx));
    for (int64_t k = 0; e && s && k < 80; k++) {
        tk_sched_lrs(e, k, a);
        tk_sched_lrs(s, k, b);
        CHECK_MSG(a[0] == b[0] && a[1] == b[1], "step %lld: %g vs %g", (long long)k, a[0], b[0]);
    }
    tk_sched_free(e);
    tk_sched_free(s);
    /* A cosine with T_max in epochs (a float an integer) against the same in steps. */
    parse(&ep, "cosine epochs", "kind=cosine T_max=3.0 eta_min=0 unit=7");
    parse(&st, "cosine steps", "kind=cosine T_max=21 eta_min=0");
    CHECK(tk_sched_new(&ep.s, 2, lr, &e, ctx) == TK_OK);
    CHECK(tk_sched_new(&st.s, 2, lr, &s, ctx) == TK_OK);
    for (int64_t k = 0; e && s && k < 30; k++) {
        tk_sched_lrs(e, k, a);
        tk_sched_lrs(s, k, b);
        CHECK(a[0] == b[0] && a[1] == b[1]);
    }
    tk_sched_free(e);
    tk_sched_free(s);
    /* No spec: a constant lr. */
    CHECK(tk_sched_new(NULL, 2, lr, &s, ctx) == TK_OK);
    if (s) {
        tk_sched_lrs(s, 123, a);
        CHECK(a[0] == 0.1 && a[1] == 0.01 && tk_sched_state_size(s) == 0);
        tk_sched_free(s);
    }
}

/* The registry by name, and what a schedule observes. */
static void test_registry(void)
{
    static const char *const names[] = {"constant", "step", "multistep", "exponential",
                                        "cosine", "cosine_restarts", "linear", "polynomial",
                                        "onecycle", "reduce_on_plateau"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        CHECK_MSG(tk_sched_known(names[i]), "%s", names[i]);
    CHECK(!tk_sched_known("cosin") && !tk_sched_known(""));
    parsed p;
    bool max = true;
    parse(&p, "plateau", "kind=reduce_on_plateau monitor=valid.f1 mode=max");
    const char *m = tk_sched_monitor(&p.s, &max);
    CHECK(m && strcmp(m, "valid.f1") == 0 && max);
    parse(&p, "cosine", "kind=cosine eta_min=0");
    CHECK(tk_sched_monitor(&p.s, &max) == NULL && !max);
    CHECK(tk_sched_monitor(NULL, &max) == NULL);
}

/* ---------------------------------------------------------------- edges */

static tk_sched *make(const char *words, const double *lrs)
{
    parsed p;
    parse(&p, words, words);
    tk_sched *s = NULL;
    CHECK_MSG(tk_sched_new(&p.s, 2, lrs, &s, ctx) == TK_OK, "%s", tk_errmsg(ctx));
    return s;
}

static void test_edges(void)
{
    const double lr[2] = {0.1, 0.01};
    double out[2], end[2];
    /* Warmup from 0 (PyTorch's recursive LinearLR divides by zero there). */
    tk_sched *s = make("kind=constant warmup_steps=4 warmup_start_factor=0", lr);
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
    if ((s = make("kind=onecycle total_steps=10 max_lr=0.4 pct_start=0.1 div_factor=4 "
                  "final_div_factor=10", lr))) {
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
    if ((s = make("kind=cosine_restarts T_0=3 T_mult=3 eta_min=0", lr))) {
        tk_sched_lrs(s, INT64_MAX, out);
        CHECK(isfinite(out[0]) && out[0] >= 0 && out[0] <= 0.1);
        tk_sched_free(s);
    }
    if ((s = make("kind=step step_size=1 gamma=0.5", lr))) {
        tk_sched_lrs(s, INT64_MAX, out);
        CHECK(out[0] == 0.0);
        tk_sched_free(s);
    }

    /* Plateau under warmup: the ramp goes to the plateau's current lr. Other kinds ignore
     * observations and have no state. */
    if ((s = make("kind=reduce_on_plateau mode=min factor=0.5 patience=0 threshold=0 "
                  "threshold_mode=rel cooldown=0 min_lr=0 warmup_steps=10 "
                  "warmup_start_factor=0.2", lr))) {
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
    if ((s = make("kind=exponential gamma=0.5", lr))) {
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
    test_units();
    test_registry();
    test_edges();
    tk_ctx_free(ctx);
    return check_summary();
}
