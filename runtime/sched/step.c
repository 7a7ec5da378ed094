/* step.c - StepLR: the lr times gamma every step_size steps. */
#include "common.h"

#include <math.h>

static const tk_sched_opt opts[] = {
    {"step_size", TK_OPT_INT, TK_OPT_DURATION | TK_OPT_POSITIVE},
    {"gamma", TK_OPT_NUM, TK_OPT_POSITIVE},
    {NULL, 0, 0},
};

typedef struct {
    int64_t step_size;
    double gamma;
} params;

static tk_status init(tk_sched *s, tk_ctx *ctx)
{
    (void)ctx; /* the option table's ranges are every check */
    params *p = s->p;
    p->step_size = tk_sched_int(s, "step_size");
    p->gamma = tk_sched_num(s, "gamma");
    return TK_OK;
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
