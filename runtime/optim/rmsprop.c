/* rmsprop.c - torch.optim.RMSprop (alpha, eps, weight_decay, momentum, centered), in the order
 * and float32 precision of PyTorch 1.13's single-tensor path. */
#include "tk_int.h"

#include <math.h>

TK_HOT static void update(const tk_optim_hparams *h, double lr, int64_t t, float *p, float *g,
                   float *const *slots, int64_t n)
{
    (void)t;
    const float wd = (float)h->weight_decay, alpha = (float)h->alpha;
    const float one_alpha = (float)(1.0 - h->alpha), eps = (float)h->eps;
    const float mom = (float)h->momentum, neg_lr = (float)-lr;
    float *sq = slots[0], *buf = slots[1], *avg_g = h->centered ? slots[2] : NULL;
    for (int64_t i = 0; i < n; i++) {
        float gi = wd != 0.0f ? tk_fma(p[i], wd, g[i]) : g[i];
        sq[i] = tk_fma(one_alpha * gi, gi, sq[i] * alpha);
        float avg;
        if (avg_g) {
            avg_g[i] = tk_fma(gi, one_alpha, avg_g[i] * alpha);
            avg = sqrtf(tk_fma(-avg_g[i], avg_g[i], sq[i])) + eps;
        } else {
            avg = sqrtf(sq[i]) + eps;
        }
        if (mom > 0.0f) {
            buf[i] = buf[i] * mom + gi / avg;
            p[i] = tk_fma(buf[i], neg_lr, p[i]);
        } else {
            p[i] += (neg_lr * gi) / avg;
        }
    }
}

static int slots_for(const tk_optim_hparams *h)
{
    return h->centered ? 3 : h->momentum > 0.0 ? 2 : 1;
}

static float slot_init(const tk_optim_hparams *h, int slot)
{
    (void)h;
    (void)slot;
    return 0.0f;
}

const tk_optim_def tk_optim_rmsprop = {
    .name = "rmsprop",
    .options = {"lr", "alpha", "eps", "weight_decay", "momentum", "centered"},
    .slot_names = {"square_avg", "momentum_buffer", "grad_avg"},
    .update = update,
    .slots_for = slots_for,
    .slot_init = slot_init,
};
