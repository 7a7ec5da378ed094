/* common.c - what every learning-rate schedule shares: tk.h's tk_sched_* API, the reading of a
 * spec's options against the schedule's declared ones (kinds, presence, epochs to steps), the
 * checks common to all, the warmup composition and the observe/state calls that forward to
 * the schedule. Each schedule (runtime/sched/<name>.c) is the lr of PyTorch 1.13's
 * torch.optim.lr_scheduler after `step` calls of scheduler.step(); registry.c lists them.
 * Warmup composes with every schedule as SequentialLR([LinearLR(start, 1, W), main], [W]); a
 * main schedule's default length (T_max, total_iters, onecycle's cycle) is the run after it.
 * Where PyTorch raises or divides by zero, tkrun picks the limit (warmup from factor 0: 0).
 * Not here: the options' defaults (the stdlib schema resolves them all), deciding when to
 * observe (train.c). */
#include "common.h"

#include <math.h>
#include <stdarg.h>
#include <string.h>

/* The options every schedule takes besides its own. */
static const tk_sched_opt common_opts[] = {
    {"warmup_steps", TK_OPT_INT, 0},
    {"warmup_start_factor", TK_OPT_NUM, 0},
    {NULL, 0, 0},
};

/* ---------------------------------------------------------------- messages and checks */

tk_status tk_sched_fail(const tk_sched *s, tk_ctx *ctx, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return tk_fail(ctx, TK_ERR_INPUT, "%s%ssched.%s: %s", s->where ? s->where : "",
                   s->where ? ": " : "", s->def->name, msg);
}

/* A spec the stdlib cannot produce (a missing or mistyped option): lang/ and the stdlib
 * disagree, which no script can cause or fix. */
static tk_status internal(const char *name, tk_ctx *ctx, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static tk_status internal(const char *name, tk_ctx *ctx, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return tk_fail(ctx, TK_ERR_RUNTIME, "internal error: sched.%s: %s", name, msg);
}

static bool in_range(double v, double lo, double hi)
{
    return isfinite(v) && v >= lo && v <= hi;
}

/* A given option against the range its flags declare. */
static tk_status check_range(const tk_sched *s, const tk_sched_opt *o, const tk_sched_val *v,
                             tk_ctx *ctx)
{
    if (!v->given)
        return TK_OK;
    if (o->kind == TK_OPT_INT) {
        if (o->flags & TK_OPT_POSITIVE && v->i <= 0)
            return tk_sched_fail(s, ctx, "%s must be positive (got %lld)", o->key,
                                 (long long)v->i);
        if (o->flags & TK_OPT_NONNEG && v->i < 0)
            return tk_sched_fail(s, ctx, "%s must be >= 0 (got %lld)", o->key, (long long)v->i);
        return TK_OK;
    }
    if (o->kind != TK_OPT_NUM)
        return TK_OK;
    const double f = v->f;
    if (o->flags & TK_OPT_POSITIVE && !(isfinite(f) && f > 0))
        return tk_sched_fail(s, ctx, "%s must be a positive number (got %g)", o->key, f);
    if (o->flags & TK_OPT_NONNEG && !in_range(f, 0, INFINITY))
        return tk_sched_fail(s, ctx, "%s must be a number >= 0 (got %g)", o->key, f);
    if (o->flags & TK_OPT_UNIT && !in_range(f, 0, 1))
        return tk_sched_fail(s, ctx, "%s must be in [0, 1] (got %g)", o->key, f);
    if (o->flags & TK_OPT_OPEN_UNIT && !(in_range(f, 0, 1) && f > 0 && f < 1))
        return tk_sched_fail(s, ctx, "%s must be between 0 and 1, both excluded (got %g)",
                             o->key, f);
    return TK_OK;
}

tk_status tk_sched_span(const tk_sched *s, const char *opt, int64_t *span, tk_ctx *ctx)
{
    if (tk_sched_given(s, opt)) {
        *span = tk_sched_int(s, opt);
        if (*span > 0)
            return TK_OK;
        return tk_sched_fail(s, ctx, "%s must be positive (got %lld)", opt, (long long)*span);
    }
    *span = s->total_steps - s->warmup;
    if (*span > 0)
        return TK_OK;
    if (s->total_steps <= 0)
        return tk_sched_fail(s, ctx, "%s is not given and the run's total_steps is unknown "
                             "(%lld)", opt, (long long)s->total_steps);
    return tk_sched_fail(s, ctx, "%s defaults to total_steps - warmup_steps = %lld - %lld, "
                         "which leaves no steps", opt, (long long)s->total_steps,
                         (long long)s->warmup);
}

tk_status tk_sched_choice(const tk_sched *s, const char *opt, const char *const *choices,
                          int n, int *out, tk_ctx *ctx)
{
    const char *v = tk_sched_str(s, opt);
    for (int k = 0; k < n; k++)
        if (strcmp(v, choices[k]) == 0) {
            *out = k;
            return TK_OK;
        }
    return tk_sched_fail(s, ctx, "%s must be '%s' or '%s' (got '%s')", opt, choices[0],
                         choices[n - 1], v);
}

/* ---------------------------------------------------------------- options */

static int opt_index(const tk_sched_opt *opts, const char *key)
{
    for (int k = 0; opts[k].key; k++)
        if (strcmp(opts[k].key, key) == 0)
            return k;
    return -1;
}

static const tk_sched_val *val_of(const tk_sched *s, const char *key)
{
    static const tk_sched_val none;
    int k = opt_index(s->def->opts, key);
    return k >= 0 ? &s->vals[k] : &none;
}

bool tk_sched_given(const tk_sched *s, const char *key)
{
    return val_of(s, key)->given;
}

int64_t tk_sched_int(const tk_sched *s, const char *key)
{
    return val_of(s, key)->i;
}

double tk_sched_num(const tk_sched *s, const char *key)
{
    return val_of(s, key)->f;
}

const char *tk_sched_str(const tk_sched *s, const char *key)
{
    const char *v = val_of(s, key)->s;
    return v ? v : "";
}

const int64_t *tk_sched_ints(const tk_sched *s, const char *key, int *n)
{
    const tk_sched_val *v = val_of(s, key);
    *n = v->n;
    return v->ints;
}

static bool integral(double f)
{
    return isfinite(f) && f == trunc(f) && fabs(f) < 9.2e18;
}

static const char *const kind_names[] = {
    [TK_ATTR_INT] = "an integer", [TK_ATTR_FLOAT] = "a number", [TK_ATTR_STR] = "a string",
    [TK_ATTR_INTS] = "a list of integers", [TK_ATTR_FLOATS] = "a list of numbers",
};

/* A duration in the spec's unit, in optimizer steps. */
static tk_status to_steps(const char *name, const char *key, int64_t v, int64_t unit,
                          int64_t *out, tk_ctx *ctx)
{
    if (unit > 1 && (v > INT64_MAX / unit || v < -(INT64_MAX / unit)))
        return tk_fail(ctx, TK_ERR_INPUT, "sched.%s: %s = %lld epochs of %lld steps is more "
                       "steps than fit in 64 bits", name, key, (long long)v, (long long)unit);
    *out = v * unit;
    return TK_OK;
}

/* One option's value from its attribute: the declared kind, durations in steps. */
static tk_status convert(const char *name, const tk_sched_opt *o, const tk_attr *a,
                         int64_t unit, tk_sched_val *v, tk_ctx *ctx)
{
    const size_t n_kinds = sizeof kind_names / sizeof kind_names[0];
    const char *got = (size_t)a->kind < n_kinds ? kind_names[a->kind] : "?";
    v->given = true;
    switch (o->kind) {
    case TK_OPT_INT:
        if (a->kind == TK_ATTR_INT)
            v->i = a->i;
        else if (a->kind == TK_ATTR_FLOAT && integral(a->f))
            v->i = (int64_t)a->f;
        else
            return internal(name, ctx, "option '%s' must be an integer (got %s)", o->key, got);
        return o->flags & TK_OPT_DURATION ? to_steps(name, o->key, v->i, unit, &v->i, ctx)
                                          : TK_OK;
    case TK_OPT_NUM:
        if (a->kind != TK_ATTR_INT && a->kind != TK_ATTR_FLOAT)
            return internal(name, ctx, "option '%s' must be a number (got %s)", o->key, got);
        v->f = a->kind == TK_ATTR_INT ? (double)a->i : a->f;
        return TK_OK;
    case TK_OPT_STR:
        if (a->kind != TK_ATTR_STR || !a->s)
            return internal(name, ctx, "option '%s' must be a string (got %s)", o->key, got);
        v->s = a->s;
        return TK_OK;
    case TK_OPT_INTS:
        if (a->kind != TK_ATTR_INTS && a->kind != TK_ATTR_FLOATS)
            return internal(name, ctx, "option '%s' must be a list of integers (got %s)",
                            o->key, got);
        v->n = a->n > 0 ? a->n : 0;
        v->ints = tk_calloc((size_t)v->n + 1, sizeof(int64_t));
        if (!v->ints)
            return tk_fail(ctx, TK_ERR_RUNTIME, "out of memory");
        for (int k = 0; k < v->n; k++) {
            if (a->kind == TK_ATTR_INTS)
                v->ints[k] = a->ints[k];
            else if (integral(a->floats[k]))
                v->ints[k] = (int64_t)a->floats[k];
            else
                return internal(name, ctx, "option '%s' must be a list of integers (item %d "
                                "is %g)", o->key, k + 1, a->floats[k]);
            if (o->flags & TK_OPT_DURATION &&
                to_steps(name, o->key, v->ints[k], unit, &v->ints[k], ctx) != TK_OK)
                return TK_ERR_INPUT;
        }
        return TK_OK;
    }
    return internal(name, ctx, "option '%s' has no kind", o->key);
}

/* The first attribute named `key`, or NULL. */
static const tk_attr *attr_of(const tk_sched_spec *sp, const char *key)
{
    for (int i = 0; i < sp->n_attrs; i++)
        if (sp->attrs[i].key && strcmp(sp->attrs[i].key, key) == 0)
            return &sp->attrs[i];
    return NULL;
}

/* Every declared option read into vals[], and every given one declared (either list): an
 * option the stdlib knows and the runtime does not would otherwise be dropped silently. */
static tk_status read_opts(const tk_sched_spec *sp, const tk_sched_opt *opts,
                           tk_sched_val *vals, tk_ctx *ctx)
{
    for (int k = 0; opts[k].key; k++) {
        const tk_attr *a = attr_of(sp, opts[k].key);
        if (!a && !(opts[k].flags & TK_OPT_OPTIONAL))
            return internal(sp->name, ctx, "option '%s' is missing (the stdlib schema gives "
                            "every option its value)", opts[k].key);
        tk_status st = a ? convert(sp->name, &opts[k], a, sp->unit, &vals[k], ctx) : TK_OK;
        if (st != TK_OK)
            return st;
    }
    return TK_OK;
}

static tk_status check_attrs(const tk_sched_spec *sp, const tk_sched_def *def, tk_ctx *ctx)
{
    if (sp->n_attrs > 0 && !sp->attrs)
        return internal(sp->name, ctx, "%d options and no list of them", sp->n_attrs);
    for (int i = 0; i < sp->n_attrs; i++) {
        const char *key = sp->attrs[i].key ? sp->attrs[i].key : "";
        if (opt_index(def->opts, key) < 0 && opt_index(common_opts, key) < 0)
            return internal(sp->name, ctx, "unknown option '%s'", key);
        if (attr_of(sp, key) != &sp->attrs[i])
            return internal(sp->name, ctx, "option '%s' is given twice", key);
    }
    if (sp->unit < 0)
        return internal(sp->name, ctx, "unit of %lld steps", (long long)sp->unit);
    return TK_OK;
}

/* ---------------------------------------------------------------- construction */

static int count_opts(const tk_sched_opt *opts)
{
    int n = 0;
    while (opts[n].key)
        n++;
    return n;
}

static void free_vals(tk_sched_val *vals, int n)
{
    for (int k = 0; vals && k < n; k++)
        tk_free(vals[k].ints);
    tk_free(vals);
}

/* The common options and the groups, checked before the schedule's own. */
static tk_status check_common(const tk_sched *s, const double *base_lrs, tk_ctx *ctx)
{
    if (s->n < 1 || !base_lrs)
        return tk_sched_fail(s, ctx, "no parameter groups to schedule");
    for (int g = 0; g < s->n; g++)
        if (!(isfinite(base_lrs[g]) && base_lrs[g] >= 0))
            return tk_sched_fail(s, ctx, "parameter group %d has lr %g (must be a number >= 0)",
                                 g, base_lrs[g]);
    if (s->warmup < 0)
        return tk_sched_fail(s, ctx, "warmup_steps must be >= 0 (got %lld)",
                             (long long)s->warmup);
    if (s->warmup > 0 && !in_range(s->warmup_f0, 0, 1))
        return tk_sched_fail(s, ctx, "warmup_start_factor must be in [0, 1] (got %g)",
                             s->warmup_f0);
    return TK_OK;
}

/* The spec read into s (its def and group count set): options, then the checks, common ones
 * first; the schedule's init last. */
static tk_status setup(tk_sched *s, const tk_sched_spec *sp, const double *base_lrs,
                       tk_ctx *ctx)
{
    const int n_opts = count_opts(s->def->opts);
    tk_sched_val warm[2] = {{0}};
    s->vals = tk_calloc((size_t)n_opts + 1, sizeof *s->vals);
    s->base = tk_calloc((size_t)s->n + 1, sizeof(double));
    s->p = tk_calloc(1, s->def->size + s->def->per_group * (size_t)s->n + 1);
    if (!s->vals || !s->base || !s->p)
        return tk_fail(ctx, TK_ERR_RUNTIME, "out of memory");
    if (sp) {
        tk_status st = check_attrs(sp, s->def, ctx);
        if (st == TK_OK)
            st = read_opts(sp, common_opts, warm, ctx);
        if (st == TK_OK)
            st = read_opts(sp, s->def->opts, s->vals, ctx);
        if (st != TK_OK)
            return st;
        s->total_steps = sp->total_steps;
        s->warmup = warm[0].i;
        s->warmup_f0 = warm[1].f;
    }
    tk_status st = check_common(s, base_lrs, ctx);
    for (int k = 0; st == TK_OK && k < n_opts; k++)
        st = check_range(s, &s->def->opts[k], &s->vals[k], ctx);
    if (st != TK_OK)
        return st;
    memcpy(s->base, base_lrs, (size_t)s->n * sizeof(double));
    return s->def->init ? s->def->init(s, ctx) : TK_OK;
}

tk_status tk_sched_new(const tk_sched_spec *spec, int n_groups, const double *base_lrs,
                       tk_sched **out, tk_ctx *ctx)
{
    *out = NULL;
    const char *name = spec ? spec->name : "constant";
    const tk_sched_def *def = tk_sched_def_find(name ? name : "");
    if (!def)
        return tk_fail(ctx, TK_ERR_INPUT, "sched: unknown schedule '%s'", name ? name : "");
    tk_sched *s = tk_calloc(1, sizeof *s);
    if (!s)
        return tk_fail(ctx, TK_ERR_RUNTIME, "out of memory");
    s->def = def;
    s->where = spec ? spec->where : NULL;
    s->n = n_groups > 0 ? n_groups : 0;
    tk_status st = setup(s, spec, base_lrs, ctx);
    if (st != TK_OK) {
        tk_sched_free(s);
        return st;
    }
    *out = s;
    return TK_OK;
}

void tk_sched_free(tk_sched *s)
{
    if (!s)
        return;
    free_vals(s->vals, count_opts(s->def->opts));
    tk_free(s->base);
    tk_free(s->p);
    tk_free(s);
}

bool tk_sched_known(const char *name)
{
    return name && tk_sched_def_find(name);
}

const char *tk_sched_monitor(const tk_sched_spec *spec, bool *maximize)
{
    *maximize = false;
    const tk_sched_def *def = spec && spec->name ? tk_sched_def_find(spec->name) : NULL;
    if (!def || !def->observe)
        return NULL;
    const tk_attr *mode = attr_of(spec, "mode"), *monitor = attr_of(spec, "monitor");
    *maximize = mode && mode->kind == TK_ATTR_STR && mode->s && strcmp(mode->s, "max") == 0;
    return monitor && monitor->kind == TK_ATTR_STR ? monitor->s : NULL;
}

/* ---------------------------------------------------------------- lrs, observe, state */

void tk_sched_lrs(const tk_sched *s, int64_t step, double *lrs)
{
    const int64_t warm = s->warmup;
    if (step < 0)
        step = 0;
    for (int g = 0; g < s->n; g++) {
        if (step < warm) {
            /* LinearLR(start_factor, end_factor=1, total_iters=warm) in closed form. */
            const double f0 = s->warmup_f0;
            const double to = s->def->initial_lr ? s->def->initial_lr(s, g) : s->base[g];
            lrs[g] = to * (f0 + (1.0 - f0) * (double)step / (double)warm);
        } else {
            lrs[g] = s->def->lr(s, g, step - warm);
        }
    }
}

void tk_sched_observe(tk_sched *s, double value)
{
    if (s->def->observe)
        s->def->observe(s, value);
}

int tk_sched_state_size(const tk_sched *s)
{
    return s->def->state_size ? s->def->state_size(s) : 0;
}

void tk_sched_get_state(const tk_sched *s, double *out)
{
    if (s->def->get_state)
        s->def->get_state(s, out);
}

void tk_sched_set_state(tk_sched *s, const double *in)
{
    if (s->def->set_state)
        s->def->set_state(s, in);
}
