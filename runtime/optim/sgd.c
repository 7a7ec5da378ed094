/* sgd.c - torch.optim.SGD's update (momentum, dampening, nesterov, weight_decay), in the
 * order and float32 precision of PyTorch 1.13's single-tensor path. */
#include "tk_int.h"

/* One branch-free loop per variant (restrict pointers) so each vectorises. Adding
 * weight_decay * p when the decay is 0 changes nothing but the sign of a zero gradient. */
TK_HOT static void update(const tk_optim_hparams *h, double lr, int64_t t, float *restrict p,
                   float *restrict g, float *const *slots, int64_t n)
{
    const float wd = (float)h->weight_decay, mom = (float)h->momentum;
    const float damp = (float)(1.0 - h->dampening), neg_lr = (float)-lr;
    float *restrict buf = slots[0];
    if (mom == 0.0f) {
        for (int64_t i = 0; i < n; i++)
            p[i] = tk_fma(tk_fma(p[i], wd, g[i]), neg_lr, p[i]);
    } else if (t == 1) {
        /* The first step seeds the buffer with the gradient itself (no dampening). */
        for (int64_t i = 0; i < n; i++) {
            float d = tk_fma(p[i], wd, g[i]);
            buf[i] = d;
            p[i] = tk_fma(h->nesterov ? tk_fma(d, mom, d) : d, neg_lr, p[i]);
        }
    } else if (h->nesterov) {
        for (int64_t i = 0; i < n; i++) {
            float d = tk_fma(p[i], wd, g[i]);
            buf[i] = tk_fma(d, damp, buf[i] * mom);
            p[i] = tk_fma(tk_fma(buf[i], mom, d), neg_lr, p[i]);
        }
    } else {
        for (int64_t i = 0; i < n; i++) {
            buf[i] = tk_fma(tk_fma(p[i], wd, g[i]), damp, buf[i] * mom);
            p[i] = tk_fma(buf[i], neg_lr, p[i]);
        }
    }
}

static int slots_for(const tk_optim_hparams *h)
{
    return h->momentum != 0.0 ? 1 : 0;
}

static float slot_init(const tk_optim_hparams *h, int slot)
{
    (void)h;
    (void)slot;
    return 0.0f;
}

const tk_optim_def tk_optim_sgd = {
    .name = "sgd",
    .options = {"lr", "momentum", "dampening", "weight_decay", "nesterov"},
    .slot_names = {"momentum_buffer"},
    .update = update,
    .slots_for = slots_for,
    .slot_init = slot_init,
};
