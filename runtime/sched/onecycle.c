/* onecycle.c - OneCycleLR (three_phase=False, lrs only: tkrun does not cycle momentum): from
 * max_lr / div_factor up to max_lr over pct_start of the cycle, then down to
 * max_lr / div_factor / final_div_factor, by cosine or linearly. The cycle is the run after
 * the warmup. Where PyTorch raises or divides by zero, the limit: a warm-up phase of zero
 * length is its peak, and past the cycle the lr stays at its end. */
#include "common.h"

static const tk_sched_opt opts[] = {
    {"max_lr", TK_OPT_NUM, TK_OPT_POSITIVE},
    {"pct_start", TK_OPT_NUM, TK_OPT_OPEN_UNIT},
    {"anneal_strategy", TK_OPT_STR, 0},
    {"div_factor", TK_OPT_NUM, TK_OPT_POSITIVE},
    {"final_div_factor", TK_OPT_NUM, TK_OPT_POSITIVE},
    {NULL, 0, 0},
};

static const char *const strategies[] = {"cos", "linear"};

typedef struct {
    double max_lr, pct_start, div_factor, final_div_factor;
    int linear;                /* index in strategies */
    int64_t span;              /* the cycle */
} params;

static tk_status init(tk_sched *s, tk_ctx *ctx)
{
    params *p = s->p;
    p->max_lr = tk_sched_num(s, "max_lr");
    p->pct_start = tk_sched_num(s, "pct_start");
    p->div_factor = tk_sched_num(s, "div_factor");
    p->final_div_factor = tk_sched_num(s, "final_div_factor");
    if (s->total_steps <= 0)
        return tk_sched_fail(s, ctx, "total_steps must be positive (got %lld): the cycle spans "
                             "the whole run", (long long)s->total_steps);
    if (s->warmup >= s->total_steps)
        return tk_sched_fail(s, ctx, "warmup_steps (%lld) leaves none of total_steps (%lld) for "
                             "the cycle", (long long)s->warmup, (long long)s->total_steps);
    p->span = s->total_steps - s->warmup;
    return tk_sched_choice(s, "anneal_strategy", strategies, 2, &p->linear, ctx);
}

/* PyTorch sets every group's initial_lr to this (max_lr is a scalar for all groups), which
 * SequentialLR restores when the warmup hands over. */
static double initial_lr(const tk_sched *s, int g)
{
    (void)g;
    const params *p = s->p;
    return p->max_lr / p->div_factor;
}

static double lr(const tk_sched *s, int g, int64_t t)
{
    const params *p = s->p;
    const int64_t total = p->span;
    if (t > total)
        t = total;
    const double initial = initial_lr(s, g);
    const double min_lr = initial / p->final_div_factor;
    const double end1 = p->pct_start * (double)total - 1, end2 = (double)(total - 1);
    double start_step = 0, end_step = end1, from = initial, to = p->max_lr;
    if ((double)t > end1) {
        start_step = end1;
        end_step = end2;
        from = p->max_lr;
        to = min_lr;
    }
    /* A warm-up phase of zero length (pct_start * total == 1) is all peak, where PyTorch
     * divides 0 by 0. */
    double pct = end_step == start_step ? 1.0 : ((double)t - start_step) / (end_step - start_step);
    if (p->linear)
        return (to - from) * pct + from;
    return to + (from - to) / 2.0 * (cos(TK_SCHED_PI * pct) + 1);
}

const tk_sched_def tk_sched_def_onecycle = {
    .name = "onecycle",
    .opts = opts,
    .size = sizeof(params),
    .init = init,
    .lr = lr,
    .initial_lr = initial_lr,
};
