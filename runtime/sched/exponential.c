/* exponential.c - ExponentialLR: the lr times gamma every step. */
#include "common.h"

#include <math.h>

static const tk_sched_opt opts[] = {
    {"gamma", TK_OPT_NUM, TK_OPT_POSITIVE},
    {NULL, 0, 0},
};

typedef struct {
    double gamma;
} params;

static tk_status init(tk_sched *s, tk_ctx *ctx)
{
    (void)ctx; /* the option table's ranges are every check */
    params *p = s->p;
    p->gamma = tk_sched_num(s, "gamma");
    return TK_OK;
}

static double lr(const tk_sched *s, int g, int64_t t)
{
    const params *p = s->p;
    return s->base[g] * pow(p->gamma, (double)t);
}

const tk_sched_def tk_sched_def_exponential = {
    .name = "exponential",
    .opts = opts,
    .size = sizeof(params),
    .init = init,
    .lr = lr,
};
