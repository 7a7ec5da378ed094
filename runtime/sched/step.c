/* step.c - StepLR: the lr times gamma every step_size steps. */
#include "common.h"

#include <math.h>

static const tk_sched_opt opts[] = {
    {"step_size", TK_OPT_INT, TK_OPT_DURATION},
    {"gamma", TK_OPT_NUM, 0},
    {NULL, 0, 0},
};

typedef struct {
    int64_t step_size;
    double gamma;
} params;

static tk_status init(tk_sched *s, tk_ctx *ctx)
{
    params *p = s->p;
    p->step_size = tk_sched_int(s, "step_size");
    p->gamma = tk_sched_num(s, "gamma");
    if (p->step_size <= 0)
        return tk_sched_fail(s, ctx, "step_size must be positive (got %lld)",
                             (long long)p->step_size);
    return tk_sched_check_positive(s, "gamma", p->gamma, ctx);
}

static double lr(const tk_sched *s, int g, int64_t t)
{
    const params *p = s->p;
    return s->base[g] * pow(p->gamma, (double)(t / p->step_size));
}

const tk_sched_def tk_sched_def_step = {
    .name = "step",
    .opts = opts,
    .size = sizeof(params),
    .init = init,
    .lr = lr,
};
