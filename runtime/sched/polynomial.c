/* polynomial.c - PolynomialLR: the lr times (1 - t / total_iters)^power over total_iters
 * steps (by default the run after the warmup), then 0. */
#include "common.h"

static const tk_sched_opt opts[] = {
    {"total_iters", TK_OPT_INT, TK_OPT_DURATION | TK_OPT_OPTIONAL},
    {"power", TK_OPT_NUM, TK_OPT_POSITIVE},
    {NULL, 0, 0},
};

typedef struct {
    int64_t span;
    double power;
} params;

static tk_status init(tk_sched *s, tk_ctx *ctx)
{
    params *p = s->p;
    p->power = tk_sched_num(s, "power");
    return tk_sched_span(s, "total_iters", &p->span, ctx);
}

static double lr(const tk_sched *s, int g, int64_t t)
{
    const params *p = s->p;
    const double done = (double)(t < p->span ? t : p->span);
    return s->base[g] * pow(1.0 - done / (double)p->span, p->power);
}

const tk_sched_def tk_sched_def_polynomial = {
    .name = "polynomial",
    .opts = opts,
    .size = sizeof(params),
    .init = init,
    .lr = lr,
};
