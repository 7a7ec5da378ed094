/* reduce_on_plateau.c - ReduceLROnPlateau: each group's current lr is state, multiplied by
 * factor (not below min_lr) when the monitored value has not improved for more than
 * `patience` evaluations, then left alone for `cooldown` evaluations. Under warmup the ramp
 * goes up to the current lr. The step count does not move it, so a checkpoint keeps the
 * state (tk_sched_get_state). Not here: which value is monitored and when (train.c). */
#include "common.h"

#include <string.h>

static const tk_sched_opt opts[] = {
    {"monitor", TK_OPT_STR, 0},
    {"mode", TK_OPT_STR, 0},
    {"factor", TK_OPT_NUM, TK_OPT_OPEN_UNIT},
    {"patience", TK_OPT_INT, TK_OPT_NONNEG},
    {"threshold", TK_OPT_NUM, TK_OPT_NONNEG},
    {"threshold_mode", TK_OPT_STR, 0},
    {"cooldown", TK_OPT_INT, TK_OPT_NONNEG},
    {"min_lr", TK_OPT_NUM, TK_OPT_NONNEG},
    {NULL, 0, 0},
};

static const char *const modes[] = {"min", "max"}, *const threshold_modes[] = {"rel", "abs"};

/* PyTorch ignores reductions smaller than this (its `eps`). */
#define PLATEAU_EPS 1e-8

typedef struct {
    int mode_max, threshold_abs; /* indices in modes, threshold_modes */
    double factor, threshold, min_lr;
    int64_t patience, cooldown;
    /* state */
    double best;
    int64_t bad, cooldown_left;
    double cur[];              /* each group's current lr */
} params;

static tk_status init(tk_sched *s, tk_ctx *ctx)
{
    params *p = s->p;
    p->factor = tk_sched_num(s, "factor");
    p->patience = tk_sched_int(s, "patience");
    p->threshold = tk_sched_num(s, "threshold");
    p->cooldown = tk_sched_int(s, "cooldown");
    p->min_lr = tk_sched_num(s, "min_lr");
    tk_status st = tk_sched_choice(s, "mode", modes, 2, &p->mode_max, ctx);
    if (st == TK_OK)
        st = tk_sched_choice(s, "threshold_mode", threshold_modes, 2, &p->threshold_abs, ctx);
    memcpy(p->cur, s->base, (size_t)s->n * sizeof(double));
    /* PyTorch's _reset: the worst value for the mode, so the first observation improves. */
    p->best = p->mode_max ? -INFINITY : INFINITY;
    return st;
}

static double current(const tk_sched *s, int g)
{
    const params *p = s->p;
    return p->cur[g];
}

static double lr(const tk_sched *s, int g, int64_t t)
{
    (void)t;
    return current(s, g);
}

static bool improves(const params *p, double v)
{
    /* PyTorch's is_better, including how it forms the relative thresholds. */
    if (!p->mode_max)
        return p->threshold_abs ? v < p->best - p->threshold : v < p->best * (1. - p->threshold);
    return p->threshold_abs ? v > p->best + p->threshold : v > p->best * (p->threshold + 1.);
}

static void observe(tk_sched *s, double value)
{
    params *p = s->p;
    if (improves(p, value)) {
        p->best = value;
        p->bad = 0;
    } else {
        p->bad++;
    }
    if (p->cooldown_left > 0) {
        p->cooldown_left--;
        p->bad = 0; /* bad evaluations during the cooldown do not count */
    }
    if (p->bad > p->patience) {
        for (int g = 0; g < s->n; g++) {
            const double old = p->cur[g], cut = fmax(old * p->factor, p->min_lr);
            if (old - cut > PLATEAU_EPS)
                p->cur[g] = cut;
        }
        p->cooldown_left = p->cooldown;
        p->bad = 0;
    }
}

/* best, bad count, cooldown left, then every group's current lr (counts are far below 2^53,
 * so doubles hold them exactly). */
static int state_size(const tk_sched *s)
{
    return 3 + s->n;
}

static void get_state(const tk_sched *s, double *out)
{
    const params *p = s->p;
    out[0] = p->best;
    out[1] = (double)p->bad;
    out[2] = (double)p->cooldown_left;
    memcpy(out + 3, p->cur, (size_t)s->n * sizeof(double));
}

/* A count read back from a checkpoint; anything that is not one (NaN, negative, huge)
 * becomes 0 rather than an undefined conversion. */
static int64_t count_of(double v)
{
    return v >= 0 && v < 9e15 ? (int64_t)v : 0;
}

static void set_state(tk_sched *s, const double *in)
{
    params *p = s->p;
    p->best = in[0];
    p->bad = count_of(in[1]);
    p->cooldown_left = count_of(in[2]);
    memcpy(p->cur, in + 3, (size_t)s->n * sizeof(double));
}

const tk_sched_def tk_sched_def_reduce_on_plateau = {
    .name = "reduce_on_plateau",
    .opts = opts,
    .size = sizeof(params),
    .per_group = sizeof(double),
    .init = init,
    .lr = lr,
    .initial_lr = current,
    .observe = observe,
    .state_size = state_size,
    .get_state = get_state,
    .set_state = set_state,
};
