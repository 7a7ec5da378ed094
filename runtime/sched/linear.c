/* linear.c - LinearLR: the lr times a factor going linearly from start_factor to end_factor
 * over total_iters steps (by default the run after the warmup), then staying there. */
#include "common.h"

static const tk_sched_opt opts[] = {
    {"start_factor", TK_OPT_NUM, TK_OPT_UNIT},
    {"end_factor", TK_OPT_NUM, TK_OPT_UNIT},
    {"total_iters", TK_OPT_INT, TK_OPT_DURATION | TK_OPT_OPTIONAL},
    {NULL, 0, 0},
};

typedef struct {
    double start_factor, end_factor;
    int64_t span;
} params;

static tk_status init(tk_sched *s, tk_ctx *ctx)
{
    params *p = s->p;
    p->start_factor = tk_sched_num(s, "start_factor");
    p->end_factor = tk_sched_num(s, "end_factor");
    return tk_sched_span(s, "total_iters", &p->span, ctx);
}

static double lr(const tk_sched *s, int g, int64_t t)
{
    const params *p = s->p;
    const double done = (double)(t < p->span ? t : p->span);
    return s->base[g] * (p->start_factor +
                         (p->end_factor - p->start_factor) * done / (double)p->span);
}

const tk_sched_def tk_sched_def_linear = {
    .name = "linear",
    .opts = opts,
    .size = sizeof(params),
    .init = init,
    .lr = lr,
};
