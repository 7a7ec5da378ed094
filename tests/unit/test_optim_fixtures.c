/* test_optim_fixtures.c - the sgd and adam update rules against PyTorch 1.13. Each fixture
 * (tests/gen_fixtures.py) holds two parameters, ten steps of given gradients, and the
 * parameters and optimizer state torch.optim produced after every step; the hyper-parameters
 * come from its __metadata__. The steps are replayed through tk_optim_def_find(name)->update.
 *
 * Tolerance: every element of the parameters and slots after every step within relative error
 * 1e-5 of PyTorch's (|ours - torch| <= 1e-5 * |torch|, with |torch| floored at 1e-6 so an
 * element that crosses zero is not judged by a vanishing denominator). Both sides compute in
 * float32, so the gap is a few ulps of rounding order, far below this.
 * Not here: optimizer state in checkpoints, parameter groups, schedules. */
#include "check.h"
#include "tk_int.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define STEPS 10
#define N_PARAMS 2
#define RTOL 1e-5

static tk_ctx *ctx;

static double meta_num(const tk_st_file *f, const char *key)
{
    const char *v = tk_st_meta(f, key);
    CHECK_MSG(v != NULL, "missing metadata '%s'", key);
    return v ? strtod(v, NULL) : 0.0;
}

static bool meta_bool(const tk_st_file *f, const char *key)
{
    const char *v = tk_st_meta(f, key);
    CHECK_MSG(v != NULL, "missing metadata '%s'", key);
    return v && strcmp(v, "true") == 0;
}

static int64_t numel_of(tk_shape s)
{
    int64_t n = 1;
    for (int d = 0; d < s.ndim; d++)
        n *= s.d[d];
    return n;
}

/* The tensor `name` (with `n` elements), or NULL after a failed check. */
static const float *tensor(const tk_st_file *f, const char *name, int64_t n)
{
    int i = tk_st_find(f, name);
    CHECK_MSG(i >= 0, "fixture has no tensor '%s'", name);
    if (i < 0)
        return NULL;
    CHECK_MSG(numel_of(tk_st_shape(f, i)) == n, "'%s' has the wrong size", name);
    return numel_of(tk_st_shape(f, i)) == n ? tk_st_data(f, i) : NULL;
}

/* Largest relative error of ours against want; counts a failed check per bad element. */
static double compare(const float *ours, const float *want, int64_t n, const char *what)
{
    double worst = 0;
    for (int64_t j = 0; j < n; j++) {
        double err = fabs((double)ours[j] - want[j]) / fmax(fabs((double)want[j]), 1e-6);
        CHECK_MSG(err <= RTOL, "%s[%lld]: %.9g vs torch %.9g", what, (long long)j, ours[j],
                  want[j]);
        worst = fmax(worst, err);
    }
    return worst;
}

static void replay(const char *file, const char *kind)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", TK_FIXTURES, file);
    tk_st_file *f;
    CHECK_MSG(tk_st_load(path, &f, ctx) == TK_OK, "%s", tk_errmsg(ctx));
    if (!f)
        return;
    const char *ver = tk_st_meta(f, "torch");
    CHECK(ver && strncmp(ver, "1.13", 4) == 0);
    tk_optim_hparams h = {0};
    h.lr = meta_num(f, "lr");
    h.weight_decay = meta_num(f, "weight_decay");
    if (strcmp(kind, "sgd") == 0) {
        h.momentum = meta_num(f, "momentum");
        h.dampening = meta_num(f, "dampening");
        h.nesterov = meta_bool(f, "nesterov");
    } else {
        h.beta1 = meta_num(f, "beta1");
        h.beta2 = meta_num(f, "beta2");
        h.eps = meta_num(f, "eps");
        h.amsgrad = meta_bool(f, "amsgrad");
    }
    const tk_optim_def *def = tk_optim_def_find(kind);
    int n_slots = def->slots_for(&h);
    float *p[N_PARAMS], *g[N_PARAMS], *slots[N_PARAMS][4];
    int64_t n[N_PARAMS];
    for (int i = 0; i < N_PARAMS; i++) {
        char name[64];
        snprintf(name, sizeof name, "init.%d", i);
        int k = tk_st_find(f, name);
        CHECK_MSG(k >= 0, "%s: no %s", file, name);
        n[i] = k >= 0 ? numel_of(tk_st_shape(f, k)) : 0;
        p[i] = malloc((size_t)n[i] * sizeof(float) + 1);
        g[i] = malloc((size_t)n[i] * sizeof(float) + 1);
        if (k >= 0)
            memcpy(p[i], tk_st_data(f, k), (size_t)n[i] * sizeof(float));
        for (int s = 0; s < n_slots; s++) {
            slots[i][s] = malloc((size_t)n[i] * sizeof(float) + 1);
            for (int64_t j = 0; j < n[i]; j++)
                slots[i][s][j] = def->slot_init(&h, s);
        }
    }
    double worst = 0;
    for (int t = 1; t <= STEPS; t++) {
        for (int i = 0; i < N_PARAMS; i++) {
            char name[96], what[160];
            snprintf(name, sizeof name, "grad.%d.%d", t, i);
            const float *grad = tensor(f, name, n[i]);
            if (!grad)
                continue;
            memcpy(g[i], grad, (size_t)n[i] * sizeof(float)); /* update may scribble on g */
            def->update(&h, h.lr, t, p[i], g[i], slots[i], n[i]);
            snprintf(name, sizeof name, "param.%d.%d", t, i);
            snprintf(what, sizeof what, "%s %s", file, name);
            const float *want = tensor(f, name, n[i]);
            if (want)
                worst = fmax(worst, compare(p[i], want, n[i], what));
            for (int s = 0; s < n_slots; s++) {
                snprintf(name, sizeof name, "slot.%d.%d.%s", t, i, def->slot_names[s]);
                snprintf(what, sizeof what, "%s %s", file, name);
                want = tensor(f, name, n[i]);
                if (want)
                    worst = fmax(worst, compare(slots[i][s], want, n[i], what));
            }
        }
    }
    /* Every slot the fixture recorded is one the rule keeps (sgd_plain keeps none). */
    int recorded = 0;
    for (int k = 0; k < tk_st_count(f); k++)
        recorded += strncmp(tk_st_name(f, k), "slot.", 5) == 0;
    CHECK_MSG(recorded == STEPS * N_PARAMS * n_slots, "%s: %d slot tensors, rule keeps %d",
              file, recorded, n_slots);
    printf("%-28s worst relative error %.3g\n", file, worst);
    for (int i = 0; i < N_PARAMS; i++) {
        free(p[i]);
        free(g[i]);
        for (int s = 0; s < n_slots; s++)
            free(slots[i][s]);
    }
    tk_st_free(f);
}

int main(void)
{
    ctx = tk_ctx_new();
    replay("sgd_plain.safetensors", "sgd");
    replay("sgd_momentum.safetensors", "sgd");
    replay("sgd_nesterov.safetensors", "sgd");
    replay("adam.safetensors", "adam");
    replay("adam_wd.safetensors", "adam");
    tk_ctx_free(ctx);
    return check_summary();
}
