/* constant.c - the constant schedule: every group keeps its own lr (after the warmup, if any;
 * with warmup it is PyTorch's LinearLR warm-up alone). */
#include "common.h"

static const tk_sched_opt opts[] = {{NULL, 0, 0}};

static double lr(const tk_sched *s, int g, int64_t t)
{
    (void)t;
    return s->base[g];
}

const tk_sched_def tk_sched_def_constant = {
    .name = "constant",
    .opts = opts,
    .lr = lr,
};
