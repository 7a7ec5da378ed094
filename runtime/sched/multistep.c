/* multistep.c - MultiStepLR: the lr times gamma at each milestone (ascending steps). */
#include "common.h"

#include <math.h>

static const tk_sched_opt opts[] = {
    {"milestones", TK_OPT_INTS, TK_OPT_DURATION},
    {"gamma", TK_OPT_NUM, TK_OPT_POSITIVE},
    {NULL, 0, 0},
};

typedef struct {
    const int64_t *milestones; /* the schedule's own copy, in steps */
    int n;
    double gamma;
} params;

static tk_status init(tk_sched *s, tk_ctx *ctx)
{
    params *p = s->p;
    p->milestones = tk_sched_ints(s, "milestones", &p->n);
    p->gamma = tk_sched_num(s, "gamma");
    if (p->n < 1)
        return tk_sched_fail(s, ctx, "milestones must list at least one step");
    for (int i = 0; i < p->n; i++) {
        if (p->milestones[i] <= 0)
            return tk_sched_fail(s, ctx, "milestones must be positive (milestone %d is %lld)",
                                 i + 1, (long long)p->milestones[i]);
        if (i > 0 && p->milestones[i] <= p->milestones[i - 1])
            return tk_sched_fail(s, ctx, "milestones must be increasing (%lld follows %lld)",
                                 (long long)p->milestones[i], (long long)p->milestones[i - 1]);
    }
    return TK_OK;
}

static double lr(const tk_sched *s, int g, int64_t t)
{
    const params *p = s->p;
    int passed = 0;
    while (passed < p->n && p->milestones[passed] <= t)
        passed++;
    return s->base[g] * pow(p->gamma, passed);
}

const tk_sched_def tk_sched_def_multistep = {
    .name = "multistep",
    .opts = opts,
    .size = sizeof(params),
    .init = init,
    .lr = lr,
};
