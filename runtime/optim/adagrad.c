/* adagrad.c - torch.optim.Adagrad (lr_decay, weight_decay, initial_accumulator_value, eps), in
 * the order and float32 precision of PyTorch 1.13's single-tensor path. */
#include "tk_int.h"

#include <math.h>

TK_HOT static void update(const tk_optim_hparams *h, double lr, int64_t t, float *p, float *g,
                   float *const *slots, int64_t n)
{
    const float wd = (float)h->weight_decay, eps = (float)h->eps;
    const float neg_clr = (float)-(lr / (1.0 + (double)(t - 1) * h->lr_decay));
    float *sum = slots[0];
    for (int64_t i = 0; i < n; i++) {
        float gi = wd != 0.0f ? tk_fma(p[i], wd, g[i]) : g[i];
        sum[i] = tk_fma(gi, gi, sum[i]);
        p[i] += (neg_clr * gi) / (sqrtf(sum[i]) + eps);
    }
}

static int slots_for(const tk_optim_hparams *h)
{
    (void)h;
    return 1;
}

static float slot_init(const tk_optim_hparams *h, int slot)
{
    (void)slot;
    return (float)h->initial_accumulator_value;
}

const tk_optim_def tk_optim_adagrad = {
    .name = "adagrad",
    .options = {"lr", "lr_decay", "weight_decay", "eps", "initial_accumulator_value"},
    .slot_names = {"sum"},
    .update = update,
    .slots_for = slots_for,
    .slot_init = slot_init,
};
