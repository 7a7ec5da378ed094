/* sched.c - learning-rate schedules: the lr of every parameter group for the update after
 * `step` updates, equal to torch.optim.lr_scheduler of PyTorch 1.13 after `step` calls of
 * scheduler.step(). Every kind but reduce_on_plateau is a pure function of the step (closed
 * forms, so a resumed run needs only the step count; PyTorch's recursive get_lr agrees with
 * them to ~1e-14, which tests/unit/test_sched.c checks at 1e-9 against fixtures).
 * reduce_on_plateau keeps each group's current lr as state, moved by tk_sched_observe.
 * Warmup composes with every kind as SequentialLR([LinearLR(start, 1, W), main], [W]); the
 * main schedule's default length (T_max, total_iters, onecycle's cycle) is the run after it.
 * Where PyTorch raises or divides by zero, tkrun picks the limit: warmup from factor 0,
 * a onecycle warm-up phase of zero length (its peak), steps past the cycle (its end).
 * reduce_on_plateau under warmup ramps up to the plateau's current lr.
 * Not here: converting epochs to steps (lang/), deciding when to observe (train.c). */
#include "tk_int.h"

#include <math.h>
#include <string.h>

struct tk_sched {
    tk_sched_spec spec;        /* spec.milestones points at the owned copy below */
    int64_t *milestones;
    int n;                     /* parameter groups */
    double *base;              /* each group's own lr */
    int64_t span;              /* steps of the main schedule: T_max, total_iters or the cycle */
    /* reduce_on_plateau state */
    double best;
    int64_t bad, cooldown_left;
    double *cur;               /* each group's current lr */
};

/* The PyTorch reduce_on_plateau ignores reductions smaller than this (its `eps`). */
#define PLATEAU_EPS 1e-8
#define PI 3.14159265358979323846

static const char *kind_name(tk_sched_kind k)
{
    static const char *const names[] = {
        [TK_SCHED_CONSTANT] = "constant", [TK_SCHED_STEP] = "step",
        [TK_SCHED_MULTISTEP] = "multistep", [TK_SCHED_EXPONENTIAL] = "exponential",
        [TK_SCHED_COSINE] = "cosine", [TK_SCHED_COSINE_RESTARTS] = "cosine_restarts",
        [TK_SCHED_LINEAR] = "linear", [TK_SCHED_POLYNOMIAL] = "polynomial",
        [TK_SCHED_ONECYCLE] = "onecycle", [TK_SCHED_PLATEAU] = "reduce_on_plateau",
    };
    return (unsigned)k < sizeof names / sizeof names[0] ? names[k] : "?";
}

/* ---------------------------------------------------------------- validation */

/* Messages read "sched.cosine: T_max must be ..." so they name the schedule and option. */
#define BAD(...) tk_fail(ctx, TK_ERR_INPUT, __VA_ARGS__)

static bool in_range(double v, double lo, double hi)
{
    return isfinite(v) && v >= lo && v <= hi;
}

static tk_status check_positive(const char *kind, const char *opt, double v, tk_ctx *ctx)
{
    if (isfinite(v) && v > 0)
        return TK_OK;
    return BAD("sched.%s: %s must be a positive number (got %g)", kind, opt, v);
}

static tk_status check_nonneg(const char *kind, const char *opt, double v, tk_ctx *ctx)
{
    if (isfinite(v) && v >= 0)
        return TK_OK;
    return BAD("sched.%s: %s must be a number >= 0 (got %g)", kind, opt, v);
}

/* The length of the main schedule: `given`, or by default the run after the warmup. */
static tk_status span_of(const tk_sched_spec *sp, const char *opt, int64_t given,
                         int64_t *span, tk_ctx *ctx)
{
    const char *kind = kind_name(sp->kind);
    if (given < 0)
        return BAD("sched.%s: %s must be positive (got %lld)", kind, opt, (long long)given);
    *span = given ? given : sp->total_steps - sp->warmup_steps;
    if (*span > 0)
        return TK_OK;
    if (sp->total_steps <= 0)
        return BAD("sched.%s: %s is not given and the run's total_steps is unknown (%lld)",
                   kind, opt, (long long)sp->total_steps);
    return BAD("sched.%s: %s defaults to total_steps - warmup_steps = %lld - %lld, which "
               "leaves no steps", kind, opt, (long long)sp->total_steps,
               (long long)sp->warmup_steps);
}

static tk_status check_kind(const tk_sched_spec *sp, int64_t *span, tk_ctx *ctx)
{
    const char *kind = kind_name(sp->kind);
    tk_status st = TK_OK;
    switch (sp->kind) {
    case TK_SCHED_CONSTANT:
        break;
    case TK_SCHED_STEP:
        if (sp->step_size <= 0)
            return BAD("sched.step: step_size must be positive (got %lld)",
                       (long long)sp->step_size);
        st = check_positive(kind, "gamma", sp->gamma, ctx);
        break;
    case TK_SCHED_MULTISTEP:
        if (sp->n_milestones < 1 || !sp->milestones)
            return BAD("sched.multistep: milestones must list at least one step");
        for (int i = 0; i < sp->n_milestones; i++) {
            if (sp->milestones[i] <= 0)
                return BAD("sched.multistep: milestones must be positive (milestone %d is "
                           "%lld)", i + 1, (long long)sp->milestones[i]);
            if (i > 0 && sp->milestones[i] <= sp->milestones[i - 1])
                return BAD("sched.multistep: milestones must be increasing (%lld follows "
                           "%lld)", (long long)sp->milestones[i],
                           (long long)sp->milestones[i - 1]);
        }
        st = check_positive(kind, "gamma", sp->gamma, ctx);
        break;
    case TK_SCHED_EXPONENTIAL:
        st = check_positive(kind, "gamma", sp->gamma, ctx);
        break;
    case TK_SCHED_COSINE:
        st = span_of(sp, "T_max", sp->T_max, span, ctx);
        if (st == TK_OK)
            st = check_nonneg(kind, "eta_min", sp->eta_min, ctx);
        break;
    case TK_SCHED_COSINE_RESTARTS:
        if (sp->T_0 < 1)
            return BAD("sched.cosine_restarts: T_0 must be a positive integer (got %lld)",
                       (long long)sp->T_0);
        if (sp->T_mult < 1)
            return BAD("sched.cosine_restarts: T_mult must be an integer >= 1 (got %lld)",
                       (long long)sp->T_mult);
        st = check_nonneg(kind, "eta_min", sp->eta_min, ctx);
        break;
    case TK_SCHED_LINEAR:
        if (!in_range(sp->start_factor, 0, 1))
            return BAD("sched.linear: start_factor must be in [0, 1] (got %g)",
                       sp->start_factor);
        if (!in_range(sp->end_factor, 0, 1))
            return BAD("sched.linear: end_factor must be in [0, 1] (got %g)", sp->end_factor);
        st = span_of(sp, "total_iters", sp->total_iters, span, ctx);
        break;
    case TK_SCHED_POLYNOMIAL:
        st = span_of(sp, "total_iters", sp->total_iters, span, ctx);
        if (st == TK_OK)
            st = check_positive(kind, "power", sp->power, ctx);
        break;
    case TK_SCHED_ONECYCLE:
        if (sp->total_steps <= 0)
            return BAD("sched.onecycle: total_steps must be positive (got %lld): the cycle "
                       "spans the whole run", (long long)sp->total_steps);
        if (sp->warmup_steps >= sp->total_steps)
            return BAD("sched.onecycle: warmup_steps (%lld) leaves none of total_steps (%lld) "
                       "for the cycle", (long long)sp->warmup_steps, (long long)sp->total_steps);
        *span = sp->total_steps - sp->warmup_steps;
        st = check_positive(kind, "max_lr", sp->max_lr, ctx);
        if (st == TK_OK && !(isfinite(sp->pct_start) && sp->pct_start > 0 && sp->pct_start < 1))
            st = BAD("sched.onecycle: pct_start must be between 0 and 1, both excluded "
                     "(got %g)", sp->pct_start);
        if (st == TK_OK)
            st = check_positive(kind, "div_factor", sp->div_factor, ctx);
        if (st == TK_OK)
            st = check_positive(kind, "final_div_factor", sp->final_div_factor, ctx);
        break;
    case TK_SCHED_PLATEAU:
        if (!(isfinite(sp->factor) && sp->factor > 0 && sp->factor < 1))
            return BAD("sched.reduce_on_plateau: factor must be between 0 and 1, both "
                       "excluded (got %g)", sp->factor);
        if (sp->patience < 0)
            return BAD("sched.reduce_on_plateau: patience must be >= 0 (got %lld)",
                       (long long)sp->patience);
        if (sp->cooldown < 0)
            return BAD("sched.reduce_on_plateau: cooldown must be >= 0 (got %lld)",
                       (long long)sp->cooldown);
        st = check_nonneg(kind, "threshold", sp->threshold, ctx);
        if (st == TK_OK)
            st = check_nonneg(kind, "min_lr", sp->min_lr, ctx);
        break;
    default:
        return BAD("sched: unknown schedule kind %d", (int)sp->kind);
    }
    return st;
}

static tk_status check_spec(const tk_sched_spec *sp, int n_groups, const double *base_lrs,
                            int64_t *span, tk_ctx *ctx)
{
    const char *kind = kind_name(sp->kind);
    if (n_groups < 1 || !base_lrs)
        return BAD("sched.%s: no parameter groups to schedule", kind);
    for (int g = 0; g < n_groups; g++)
        if (!(isfinite(base_lrs[g]) && base_lrs[g] >= 0))
            return BAD("sched.%s: parameter group %d has lr %g (must be a number >= 0)", kind,
                       g, base_lrs[g]);
    if (sp->warmup_steps < 0)
        return BAD("sched.%s: warmup_steps must be >= 0 (got %lld)", kind,
                   (long long)sp->warmup_steps);
    if (sp->warmup_steps > 0 && !in_range(sp->warmup_start_factor, 0, 1))
        return BAD("sched.%s: warmup_start_factor must be in [0, 1] (got %g)", kind,
                   sp->warmup_start_factor);
    *span = 0;
    return check_kind(sp, span, ctx);
}

#undef BAD

/* ---------------------------------------------------------------- construction */

tk_status tk_sched_new(const tk_sched_spec *spec, int n_groups, const double *base_lrs,
                       tk_sched **out, tk_ctx *ctx)
{
    *out = NULL;
    int64_t span;
    if (check_spec(spec, n_groups, base_lrs, &span, ctx) != TK_OK)
        return TK_ERR_INPUT;
    tk_sched *s = tk_calloc(1, sizeof *s);
    if (!s)
        return tk_fail(ctx, TK_ERR_RUNTIME, "out of memory");
    s->spec = *spec;
    s->n = n_groups;
    s->span = span;
    s->base = tk_calloc((size_t)n_groups, sizeof(double));
    s->cur = tk_calloc((size_t)n_groups, sizeof(double));
    bool multi = spec->kind == TK_SCHED_MULTISTEP;
    if (multi)
        s->milestones = tk_calloc((size_t)spec->n_milestones, sizeof(int64_t));
    if (!s->base || !s->cur || (multi && !s->milestones)) {
        tk_sched_free(s);
        return tk_fail(ctx, TK_ERR_RUNTIME, "out of memory");
    }
    if (multi)
        memcpy(s->milestones, spec->milestones, (size_t)spec->n_milestones * sizeof(int64_t));
    s->spec.milestones = s->milestones;
    if (!multi)
        s->spec.n_milestones = 0;
    memcpy(s->base, base_lrs, (size_t)n_groups * sizeof(double));
    memcpy(s->cur, base_lrs, (size_t)n_groups * sizeof(double));
    /* PyTorch's _reset: the worst value for the mode, so the first observation improves. */
    s->best = spec->mode_max ? -INFINITY : INFINITY;
    *out = s;
    return TK_OK;
}

void tk_sched_free(tk_sched *s)
{
    if (!s)
        return;
    tk_free(s->milestones);
    tk_free(s->base);
    tk_free(s->cur);
    tk_free(s);
}

/* ---------------------------------------------------------------- lrs */

/* The lr the main schedule starts from, which the warmup ramps up to: the group's own lr,
 * except that onecycle replaces it with max_lr / div_factor (PyTorch sets the group's
 * initial_lr, which SequentialLR then restores) and plateau keeps its current lr. */
static double initial_lr(const tk_sched *s, int g)
{
    if (s->spec.kind == TK_SCHED_ONECYCLE)
        return s->spec.max_lr / s->spec.div_factor;
    if (s->spec.kind == TK_SCHED_PLATEAU)
        return s->cur[g];
    return s->base[g];
}

static double cosine_between(double eta_min, double base, int64_t t, int64_t period)
{
    /* PyTorch's closed form, operation for operation. */
    return eta_min + (base - eta_min) * (1 + cos(PI * (double)t / (double)period)) / 2;
}

/* CosineAnnealingWarmRestarts stepped t times: T_cur since the last restart, T_i the
 * current period (PyTorch subtracts T_i from T_cur and multiplies T_i by T_mult whenever
 * T_cur reaches it). */
static double restarts_lr(const tk_sched_spec *sp, double base, int64_t t)
{
    int64_t cur = t, period = sp->T_0;
    if (sp->T_mult == 1) {
        cur = t % period;
    } else {
        while (cur >= period) {
            cur -= period;
            /* Saturate: a period past INT64_MAX is longer than any step count. */
            period = period > INT64_MAX / sp->T_mult ? INT64_MAX : period * sp->T_mult;
        }
    }
    return cosine_between(sp->eta_min, base, cur, period);
}

/* OneCycleLR (three_phase=False) at step t of a cycle of `total` steps. */
static double onecycle_lr(const tk_sched_spec *sp, int64_t total, int64_t t)
{
    /* PyTorch raises past the end of the cycle; the lr stays where it ended instead. */
    if (t > total)
        t = total;
    const double initial = sp->max_lr / sp->div_factor;
    const double min_lr = initial / sp->final_div_factor;
    const double end1 = sp->pct_start * (double)total - 1, end2 = (double)(total - 1);
    double start_step = 0, end_step = end1, from = initial, to = sp->max_lr;
    if ((double)t > end1) {
        start_step = end1;
        end_step = end2;
        from = sp->max_lr;
        to = min_lr;
    }
    /* A warm-up phase of zero length (pct_start * total == 1) is all peak, where PyTorch
     * divides 0 by 0. */
    double pct = end_step == start_step ? 1.0 : ((double)t - start_step) / (end_step - start_step);
    if (sp->anneal_linear)
        return (to - from) * pct + from;
    return to + (from - to) / 2.0 * (cos(PI * pct) + 1);
}

/* The main schedule's lr of group g after t of its own steps. */
static double main_lr(const tk_sched *s, int g, int64_t t)
{
    const tk_sched_spec *sp = &s->spec;
    const double base = s->base[g];
    switch (sp->kind) {
    case TK_SCHED_STEP:
        return base * pow(sp->gamma, (double)(t / sp->step_size));
    case TK_SCHED_MULTISTEP: {
        int passed = 0;
        while (passed < sp->n_milestones && sp->milestones[passed] <= t)
            passed++;
        return base * pow(sp->gamma, passed);
    }
    case TK_SCHED_EXPONENTIAL:
        return base * pow(sp->gamma, (double)t);
    case TK_SCHED_COSINE:
        return cosine_between(sp->eta_min, base, t, s->span);
    case TK_SCHED_COSINE_RESTARTS:
        return restarts_lr(sp, base, t);
    case TK_SCHED_LINEAR: {
        const double done = (double)(t < s->span ? t : s->span);
        return base * (sp->start_factor +
                       (sp->end_factor - sp->start_factor) * done / (double)s->span);
    }
    case TK_SCHED_POLYNOMIAL: {
        const double done = (double)(t < s->span ? t : s->span);
        return base * pow(1.0 - done / (double)s->span, sp->power);
    }
    case TK_SCHED_ONECYCLE:
        return onecycle_lr(sp, s->span, t);
    case TK_SCHED_PLATEAU:
        return s->cur[g];
    default:
        return base;
    }
}

void tk_sched_lrs(const tk_sched *s, int64_t step, double *lrs)
{
    const int64_t warm = s->spec.warmup_steps;
    if (step < 0)
        step = 0;
    for (int g = 0; g < s->n; g++) {
        if (step < warm) {
            /* LinearLR(start_factor, end_factor=1, total_iters=warm) in closed form. */
            const double f0 = s->spec.warmup_start_factor;
            lrs[g] = initial_lr(s, g) * (f0 + (1.0 - f0) * (double)step / (double)warm);
        } else {
            lrs[g] = main_lr(s, g, step - warm);
        }
    }
}

/* ---------------------------------------------------------------- reduce_on_plateau */

static bool improves(const tk_sched_spec *sp, double v, double best)
{
    /* PyTorch's is_better, including how it forms the relative thresholds. */
    if (!sp->mode_max)
        return sp->threshold_abs ? v < best - sp->threshold : v < best * (1. - sp->threshold);
    return sp->threshold_abs ? v > best + sp->threshold : v > best * (sp->threshold + 1.);
}

void tk_sched_observe(tk_sched *s, double value)
{
    const tk_sched_spec *sp = &s->spec;
    if (sp->kind != TK_SCHED_PLATEAU)
        return;
    if (improves(sp, value, s->best)) {
        s->best = value;
        s->bad = 0;
    } else {
        s->bad++;
    }
    if (s->cooldown_left > 0) {
        s->cooldown_left--;
        s->bad = 0; /* bad evaluations during the cooldown do not count */
    }
    if (s->bad > sp->patience) {
        for (int g = 0; g < s->n; g++) {
            const double old = s->cur[g], lr = fmax(old * sp->factor, sp->min_lr);
            if (old - lr > PLATEAU_EPS)
                s->cur[g] = lr;
        }
        s->cooldown_left = sp->cooldown;
        s->bad = 0;
    }
}

/* Plateau state: best, bad count, cooldown left, then every group's current lr (counts are
 * far below 2^53, so doubles hold them exactly). */
int tk_sched_state_size(const tk_sched *s)
{
    return s->spec.kind == TK_SCHED_PLATEAU ? 3 + s->n : 0;
}

void tk_sched_get_state(const tk_sched *s, double *out)
{
    if (s->spec.kind != TK_SCHED_PLATEAU)
        return;
    out[0] = s->best;
    out[1] = (double)s->bad;
    out[2] = (double)s->cooldown_left;
    memcpy(out + 3, s->cur, (size_t)s->n * sizeof(double));
}

/* A count read back from a checkpoint; anything that is not one (NaN, negative, huge)
 * becomes 0 rather than an undefined conversion. */
static int64_t count_of(double v)
{
    return v >= 0 && v < 9e15 ? (int64_t)v : 0;
}

void tk_sched_set_state(tk_sched *s, const double *in)
{
    if (s->spec.kind != TK_SCHED_PLATEAU)
        return;
    s->best = in[0];
    s->bad = count_of(in[1]);
    s->cooldown_left = count_of(in[2]);
    memcpy(s->cur, in + 3, (size_t)s->n * sizeof(double));
}
