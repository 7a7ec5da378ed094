/* adam.c - torch.optim.Adam (L2 weight decay added to the gradient, amsgrad) and AdamW
 * (decoupled decay), in the order and float32 precision of PyTorch 1.13's single-tensor
 * path. */
#include "tk_int.h"

#include <math.h>

/* The loop bodies are branch-free and the pointers restrict-qualified so the compiler
 * vectorises them: this update touches every parameter on every step. */
TK_HOT static void adam_core(const tk_optim_hparams *h, double lr, int64_t t, float *restrict p,
                      const float *restrict g, float *const *slots, int64_t n, float decay)
{
    const float b1 = (float)h->beta1, b2 = (float)h->beta2;
    const float one_b1 = (float)(1.0 - h->beta1), one_b2 = (float)(1.0 - h->beta2);
    const double bc1 = 1.0 - pow(h->beta1, (double)t), bc2 = 1.0 - pow(h->beta2, (double)t);
    const float neg_step = (float)-(lr / bc1), bc2_sqrt = (float)sqrt(bc2);
    const float eps = (float)h->eps;
    float *restrict m = slots[0], *restrict v = slots[1];
    if (h->amsgrad) {
        float *restrict vmax = slots[2];
        for (int64_t i = 0; i < n; i++) {
            float gi = tk_fma(p[i], decay, g[i]);
            m[i] = tk_fma(gi, one_b1, m[i] * b1);
            v[i] = tk_fma(one_b2 * gi, gi, v[i] * b2);
            vmax[i] = vmax[i] > v[i] ? vmax[i] : v[i];
            p[i] += (neg_step * m[i]) / (sqrtf(vmax[i]) / bc2_sqrt + eps);
        }
        return;
    }
    for (int64_t i = 0; i < n; i++) {
        float gi = tk_fma(p[i], decay, g[i]);
        m[i] = tk_fma(gi, one_b1, m[i] * b1);
        v[i] = tk_fma(one_b2 * gi, gi, v[i] * b2);
        p[i] += (neg_step * m[i]) / (sqrtf(v[i]) / bc2_sqrt + eps);
    }
}

static void adam_update(const tk_optim_hparams *h, double lr, int64_t t, float *p, float *g,
                        float *const *slots, int64_t n)
{
    adam_core(h, lr, t, p, g, slots, n, (float)h->weight_decay);
}

static void adamw_update(const tk_optim_hparams *h, double lr, int64_t t, float *p, float *g,
                         float *const *slots, int64_t n)
{
    if (h->weight_decay != 0.0) {
        const float keep = (float)(1.0 - lr * h->weight_decay);
        for (int64_t i = 0; i < n; i++)
            p[i] *= keep;
    }
    adam_core(h, lr, t, p, g, slots, n, 0.0f);
}

static int slots_for(const tk_optim_hparams *h)
{
    return h->amsgrad ? 3 : 2;
}

static float slot_init(const tk_optim_hparams *h, int slot)
{
    (void)h;
    (void)slot;
    return 0.0f;
}

const tk_optim_def tk_optim_adam = {
    .name = "adam",
    .options = {"lr", "betas", "eps", "weight_decay", "amsgrad"},
    .slot_names = {"exp_avg", "exp_avg_sq", "max_exp_avg_sq"},
    .update = adam_update,
    .slots_for = slots_for,
    .slot_init = slot_init,
};

const tk_optim_def tk_optim_adamw = {
    .name = "adamw",
    .options = {"lr", "betas", "eps", "weight_decay", "amsgrad"},
    .slot_names = {"exp_avg", "exp_avg_sq", "max_exp_avg_sq"},
    .update = adamw_update,
    .slots_for = slots_for,
    .slot_init = slot_init,
};
