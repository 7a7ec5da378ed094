/* cosine.c - CosineAnnealingLR: from each group's lr down to eta_min over T_max steps (by
 * default the run after the warmup), in PyTorch's closed form (its recursive get_lr agrees
 * with it to ~1e-14); past T_max it rises again, as PyTorch's does. */
#include "common.h"

static const tk_sched_opt opts[] = {
    {"T_max", TK_OPT_INT, TK_OPT_DURATION | TK_OPT_OPTIONAL},
    {"eta_min", TK_OPT_NUM, TK_OPT_NONNEG},
    {NULL, 0, 0},
};

typedef struct {
    int64_t span;
    double eta_min;
} params;

static tk_status init(tk_sched *s, tk_ctx *ctx)
{
    params *p = s->p;
    p->eta_min = tk_sched_num(s, "eta_min");
    return tk_sched_span(s, "T_max", &p->span, ctx);
}

static double lr(const tk_sched *s, int g, int64_t t)
{
    const params *p = s->p;
    return tk_sched_cosine_between(p->eta_min, s->base[g], t, p->span);
}

const tk_sched_def tk_sched_def_cosine = {
    .name = "cosine",
    .opts = opts,
    .size = sizeof(params),
    .init = init,
    .lr = lr,
};
