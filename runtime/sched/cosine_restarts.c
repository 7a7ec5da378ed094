/* cosine_restarts.c - CosineAnnealingWarmRestarts: cosine annealing over periods of T_0,
 * T_0 * T_mult, ... steps, each restarting from the group's lr. */
#include "common.h"

static const tk_sched_opt opts[] = {
    {"T_0", TK_OPT_INT, TK_OPT_DURATION | TK_OPT_POSITIVE},
    {"T_mult", TK_OPT_INT, TK_OPT_POSITIVE},
    {"eta_min", TK_OPT_NUM, TK_OPT_NONNEG},
    {NULL, 0, 0},
};

typedef struct {
    int64_t T_0, T_mult;
    double eta_min;
} params;

static tk_status init(tk_sched *s, tk_ctx *ctx)
{
    (void)ctx; /* the option table's ranges are every check */
    params *p = s->p;
    p->T_0 = tk_sched_int(s, "T_0");
    p->T_mult = tk_sched_int(s, "T_mult");
    p->eta_min = tk_sched_num(s, "eta_min");
    return TK_OK;
}

/* Stepped t times: T_cur since the last restart, T_i the current period (PyTorch subtracts
 * T_i from T_cur and multiplies T_i by T_mult whenever T_cur reaches it). */
static double lr(const tk_sched *s, int g, int64_t t)
{
    const params *p = s->p;
    int64_t cur = t, period = p->T_0;
    if (p->T_mult == 1) {
        cur = t % period;
    } else {
        while (cur >= period) {
            cur -= period;
            /* Saturate: a period past INT64_MAX is longer than any step count. */
            period = period > INT64_MAX / p->T_mult ? INT64_MAX : period * p->T_mult;
        }
    }
    return tk_sched_cosine_between(p->eta_min, s->base[g], cur, period);
}

const tk_sched_def tk_sched_def_cosine_restarts = {
    .name = "cosine_restarts",
    .opts = opts,
    .size = sizeof(params),
    .init = init,
    .lr = lr,
};
