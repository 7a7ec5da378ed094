/* sgd.c - torch.optim.SGD's update (momentum, dampening, nesterov, weight_decay), in the
 * order and float32 precision of PyTorch 1.13's single-tensor path. */
#include "tk_int.h"

static void update(const tk_optim_hparams *h, double lr, int64_t t, float *p, float *g,
                   float *const *slots, int64_t n)
{
    const float wd = (float)h->weight_decay, mom = (float)h->momentum;
    const float damp = (float)(1.0 - h->dampening), neg_lr = (float)-lr;
    float *buf = slots[0];
    for (int64_t i = 0; i < n; i++) {
        float d = wd != 0.0f ? tk_fma(p[i], wd, g[i]) : g[i];
        if (mom != 0.0f) {
            /* The first step seeds the buffer with the gradient itself (no dampening). */
            buf[i] = t == 1 ? d : tk_fma(d, damp, buf[i] * mom);
            d = h->nesterov ? tk_fma(buf[i], mom, d) : buf[i];
        }
        p[i] = tk_fma(d, neg_lr, p[i]);
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
    .slot_names = {"momentum_buffer"},
    .update = update,
    .slots_for = slots_for,
    .slot_init = slot_init,
};
