/* fused_update.c - the optimizer's update fused with the weight gradients. Backward leaves a
 * fused weight's gradient product out; tk_model_update makes it in blocks of rows and runs the
 * optimizer over each block right after its product, on the same thread, while the block is
 * in cache. The plain path writes every gradient, reads it back for the norm and again for
 * the update; for a small batch those passes over every weight cost as much as the products.
 * Both paths issue the same products (weight_grad's blocks are fixed) and the same
 * element-wise update, so they give the same bits. tk_train keeps each block in a per-thread
 * scratch block only, which also keeps the gradients out of the cache the weights and the
 * optimizer state need; the REPL's stepper stores them too, for P.grads.
 * The non-finite check stays exact without the gradients: a product of finite operands whose
 * magnitudes bound every element below FLT_MAX is finite; when that cannot be shown, the step
 * makes the fused gradients first and takes the plain path, norm and all.
 * What this is not: the products (ops with TK_OP_FUSED_UPDATE), the liveness (plan.c). */
#include "tk_int.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static void clear(tk_model *m)
{
    for (int i = 0; i < m->n_tensors; i++)
        m->tensors[i].fused_node = -1;
    for (int v = 0; m->train.args && v < m->g->n_nodes; v++)
        m->train.args[v].fused_weight = false;
    tk_free(m->plain);
    tk_free_aligned(m->block_scratch);
    m->plain = NULL;
    m->block_scratch = NULL;
    m->n_plain = 0;
    m->fusing = m->fused_stored = false;
}

static int by_offset(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

/* The trainable region less the fused tensors, as [lo, hi) pairs in offset order. */
static bool cut_plain(tk_model *m, int fused)
{
    int64_t *spans = tk_malloc(sizeof(int64_t) * 2 * (size_t)fused);
    m->plain = tk_malloc(sizeof(int64_t) * 2 * (size_t)(fused + 1));
    if (!spans || !m->plain) {
        tk_free(spans);
        return false;
    }
    int k = 0;
    for (int i = 0; i < m->n_tensors; i++)
        if (m->tensors[i].fused_node >= 0) {
            spans[2 * k] = m->tensors[i].offset;
            spans[2 * k + 1] = m->tensors[i].offset + tk_shape_numel(&m->tensors[i].shape);
            k++;
        }
    qsort(spans, (size_t)fused, 2 * sizeof(int64_t), by_offset);
    int64_t at = 0;
    for (k = 0; k <= fused; k++) {
        int64_t end = k < fused ? spans[2 * k] : m->n_train;
        if (end > at) {
            m->plain[2 * m->n_plain] = at;
            m->plain[2 * m->n_plain + 1] = end;
            m->n_plain++;
        }
        if (k < fused)
            at = spans[2 * k + 1];
    }
    tk_free(spans);
    return true;
}

/* A block per pool thread: TK_WGRAD_ROWS rows of the widest fused tensor. */
static bool make_scratch(tk_model *m)
{
    int64_t most = 0;
    for (int i = 0; i < m->n_tensors; i++) {
        const tk_tensor_rec *r = &m->tensors[i];
        if (r->fused_node >= 0) {
            int64_t floats = TK_WGRAD_ROWS * (tk_shape_numel(&r->shape) / r->shape.d[0]);
            most = floats > most ? floats : most;
        }
    }
    m->block_scratch = tk_alloc_floats((size_t)(most * tk_pool_size()));
    return m->block_scratch != NULL;
}

int tk_model_fuse_update(tk_model *m, bool on, bool keep_grads)
{
    if (on == m->fusing && (!on || keep_grads == !m->block_scratch)) {
        int fused = 0;
        for (int i = 0; on && i < m->n_tensors; i++)
            fused += m->tensors[i].fused_node >= 0;
        return fused;
    }
    clear(m);
    if (!on || !m->train.args)
        return 0;
    /* A weight another node reads (a shared layer) would be read after its update. */
    int users[m->n_tensors > 0 ? m->n_tensors : 1];
    memset(users, 0, sizeof users);
    for (int v = 0; v < m->g->n_nodes; v++) {
        const tk_node *n = &m->g->nodes[v];
        if (n->op && n->alias_of < 0)
            for (int k = 0; k < n->n_params; k++)
                users[m->param_tensor[n->params[k]]]++;
    }
    int fused = 0;
    for (int i = 0; i < m->train.n_bwd; i++) {
        int v = m->train.bwd[i];
        tk_kernel_args *a = &m->train.args[v];
        if (!(a->node->op->flags & TK_OP_FUSED_UPDATE) || !a->dparam[0])
            continue;
        int t = m->param_tensor[a->node->params[0]];
        if (users[t] != 1)
            continue;
        m->tensors[t].fused_node = v;
        a->fused_weight = true;
        fused++;
    }
    if (fused == 0 || !cut_plain(m, fused) || (!keep_grads && !make_scratch(m))) {
        clear(m);
        return 0;
    }
    m->fusing = true;
    return fused;
}

bool tk_train_fuses(const tk_train_opts *o)
{
    return !tk_dist_on(o->dist) && tk_accumulation(o) == 1 && !(o->clip_grad_norm > 0) &&
           !(o->clip_grad_value > 0);
}

void tk_model_check_fused(tk_model *m)
{
    m->fused_stored = false;
    if (!m->fusing)
        return;
    /* Every partial sum stays within twice the bound (float rounding adds far less). */
    if (tk_model_fused_bound(m) < 0.5 * FLT_MAX)
        return;
    for (int i = 0; i < m->n_tensors; i++)
        if (m->tensors[i].fused_node >= 0) {
            const tk_kernel_args *a = &m->train.args[m->tensors[i].fused_node];
            a->node->op->weight_grad(a, 0.0f, m->tensors[i].grad, NULL, NULL, NULL);
        }
    m->fused_stored = true;
}

typedef struct {
    tk_model *m;
    const tk_tensor_rec *r;
    double lr;
} block_job;

/* The optimizers only read the gradient they are given. */
static void update_block(int64_t lo, int64_t hi, const float *block, void *ud)
{
    const block_job *j = ud;
    const tk_model *m = j->m;
    int64_t at = j->r->offset + lo;
    float *slots[4];
    for (int s = 0; s < m->n_slots; s++)
        slots[s] = m->slot[s] + at;
    m->opt->update(&m->groups[j->r->group].h, j->lr, m->optim_steps, m->flat + at,
                   (float *)block, slots, hi - lo);
}

void tk_model_fused_steps(tk_model *m, const double *lrs)
{
    for (int i = 0; i < m->n_tensors; i++) {
        const tk_tensor_rec *r = &m->tensors[i];
        if (r->fused_node < 0)
            continue;
        block_job j = {m, r, lrs[r->group]};
        const tk_kernel_args *a = &m->train.args[r->fused_node];
        a->node->op->weight_grad(a, 0.0f, r->grad, m->block_scratch, update_block, &j);
    }
}

/* One operand's largest magnitude, as bits: NaN's are above inf's, and both are at least
 * 0x7f800000. */
typedef struct {
    const float *x;
    int64_t n;
    uint32_t top;
} operand;

typedef struct {
    operand *ops;
    int parts;                 /* tasks per operand */
} max_job;

/* Part t % parts of operand t / parts. */
TK_HOT static void max_task(int t, void *ud)
{
    const max_job *j = ud;
    operand *o = &j->ops[t / j->parts];
    int part = t % j->parts;
    int64_t lo = o->n * part / j->parts, hi = o->n * (part + 1) / j->parts;
    uint32_t top = 0;
    for (int64_t i = lo; i < hi; i++) {
        uint32_t u;
        memcpy(&u, o->x + i, sizeof u);
        u &= 0x7fffffffu;
        top = u > top ? u : top;
    }
    uint32_t seen = __atomic_load_n(&o->top, __ATOMIC_RELAXED);
    while (top > seen &&
           !__atomic_compare_exchange_n(&o->top, &seen, top, true, __ATOMIC_RELAXED,
                                        __ATOMIC_RELAXED)) {
    }
}

static double magnitude(uint32_t top)
{
    if (top >= 0x7f800000u)
        return INFINITY;
    float v;
    memcpy(&v, &top, sizeof v);
    return v;
}

/* One job for every operand: a step's operands are small, and a job per operand cost more in
 * waking threads than the scans. */
double tk_model_fused_bound(const tk_model *m)
{
    int fused = 0;
    operand ops[2 * m->n_tensors + 1];
    double scale[m->n_tensors + 1];
    for (int i = 0; i < m->n_tensors; i++)
        if (m->tensors[i].fused_node >= 0) {
            const tk_kernel_args *a = &m->train.args[m->tensors[i].fused_node];
            tk_grad_bound b = a->node->op->grad_bound(a);
            scale[fused] = b.scale;
            for (int f = 0; f < 2; f++)
                ops[2 * fused + f] = (operand){b.factor[f], b.n[f], 0};
            fused++;
        }
    max_job j = {ops, tk_pool_size()};
    tk_parallel(2 * fused * j.parts, max_task, &j);
    double most = 0;
    for (int k = 0; k < fused; k++) {
        double b = scale[k] * magnitude(ops[2 * k].top) * magnitude(ops[2 * k + 1].top);
        most = b > most || isnan(b) ? b : most;
    }
    return most;
}
