/* exec.c - runs a compiled model: the train step (forward, loss, backward), the eval step,
 * gradient utilities and the optimizer update, plus the model's read-only tables (tensors,
 * layers, groups). Every step only walks precomputed kernel arguments: no allocation, no
 * shape work, no branching on op kinds. */
#include "tk_int.h"

#include <math.h>
#include <string.h>

static void run_forward(const tk_schedule *s, int n, uint64_t step, int64_t row0)
{
    for (int i = 0; i < s->n_fwd; i++) {
        tk_kernel_args *a = &s->args[s->fwd[i]];
        a->n = n;
        a->step = step;
        a->row0 = row0;
        a->node->op->forward(a);
    }
}

tk_status tk_model_forward_backward(tk_model *m, int n, float loss_scale, uint64_t step,
                                    float *loss, tk_ctx *ctx)
{
    if (n <= 0 || n > m->g->batch)
        return tk_fail(ctx, TK_ERR_RUNTIME, "batch of %d rows for a model planned for %d", n,
                       m->g->batch);
    const tk_schedule *s = &m->train;
    run_forward(s, n, step, m->row0);
    s->args[m->g->loss].loss_scale = loss_scale;
    for (int i = 0; i < s->n_bwd; i++) {
        const tk_kernel_args *a = &s->args[s->bwd[i]];
        a->node->op->backward(a);
    }
    m->grad_fresh = false;
    m->last = s;
    *loss = s->loss[0];
    return TK_OK;
}

tk_status tk_model_eval(tk_model *m, int n, float *loss, tk_ctx *ctx)
{
    if (n <= 0 || n > m->g->batch)
        return tk_fail(ctx, TK_ERR_RUNTIME, "batch of %d rows for a model planned for %d", n,
                       m->g->batch);
    run_forward(&m->eval, n, 0, 0);
    m->last = &m->eval;
    *loss = m->eval.loss[0];
    return TK_OK;
}

double tk_model_loss_weight(const tk_model *m, int n)
{
    const tk_node *loss = &m->g->nodes[m->g->loss];
    if (!loss->op->loss_weight)
        return (double)n;
    tk_kernel_args a = m->eval.args[m->g->loss];
    a.n = n;
    return loss->op->loss_weight(&a);
}

float *tk_model_input(tk_model *m)
{
    return m->input;
}

float *tk_model_target(tk_model *m)
{
    return m->target;
}

int tk_model_batch(const tk_model *m)
{
    return m->g->batch;
}

const float *tk_model_output(const tk_model *m)
{
    return m->last ? m->last->output : m->eval.output;
}

/* The per-parameter loops below run in chunks on the pool's threads; each element's result is
 * the same whatever the chunking, and the norm sums fixed blocks in a fixed order, so the
 * thread count changes no value. */
enum { GRAIN = 4096, NORM_BLOCK = 1 << 14 };

/* The next backward overwrites every gradient (tk_dparam_overwrite) instead of adding. */
void tk_model_zero_grad(tk_model *m)
{
    m->grad_fresh = true;
}

/* Eight independent partial sums let the compiler vectorise what a single running sum would
 * chain through one register; the sum of squares stays in double. */
TK_HOT static double sum_squares(const float *g, int64_t n)
{
    double part[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; k++)
            part[k] += (double)g[i + k] * g[i + k];
    double s = 0;
    for (; i < n; i++)
        s += (double)g[i] * g[i];
    for (int k = 0; k < 8; k++)
        s += part[k];
    return s;
}

typedef struct {
    const float *g;
    int64_t n, first;          /* first block of this round */
    double blocks[64];
} norm_job;

static void norm_task(int t, void *ud)
{
    norm_job *j = ud;
    int64_t lo = (j->first + t) * NORM_BLOCK, hi = lo + NORM_BLOCK < j->n ? lo + NORM_BLOCK : j->n;
    j->blocks[t] = sum_squares(j->g + lo, hi - lo);
}

static double span_squares(const float *g, int64_t n)
{
    int64_t n_blocks = (n + NORM_BLOCK - 1) / NORM_BLOCK;
    norm_job j = {.g = g, .n = n};
    double s = 0;
    for (j.first = 0; j.first < n_blocks; j.first += 64) {
        int round = n_blocks - j.first < 64 ? (int)(n_blocks - j.first) : 64;
        tk_parallel(round, norm_task, &j);
        for (int b = 0; b < round; b++)
            s += j.blocks[b];
    }
    return s;
}

/* While fusing, the fused weights' gradients are not stored (tk_model_check_fused has shown
 * them finite): the norm covers the rest. */
double tk_model_grad_norm(const tk_model *m)
{
    if (!m->fusing || m->fused_stored)
        return sqrt(span_squares(m->grad, m->n_train));
    double s = 0;
    for (int k = 0; k < m->n_plain; k++)
        s += span_squares(m->grad + m->plain[2 * k], m->plain[2 * k + 1] - m->plain[2 * k]);
    return sqrt(s);
}

typedef struct {
    float *g;
    float v;
} grad_job;

TK_HOT static void scale_range(int64_t lo, int64_t hi, void *ud)
{
    const grad_job *j = ud;
    for (int64_t i = lo; i < hi; i++)
        j->g[i] *= j->v;
}

void tk_model_scale_grad(tk_model *m, float s)
{
    grad_job j = {m->grad, s};
    tk_parallel_range(m->n_train, GRAIN, scale_range, &j);
}

static void clip_range(int64_t lo, int64_t hi, void *ud)
{
    const grad_job *j = ud;
    float v = j->v, *g = j->g;
    for (int64_t i = lo; i < hi; i++)
        g[i] = g[i] > v ? v : g[i] < -v ? -v : g[i];
}

void tk_model_clip_grad_value(tk_model *m, float v)
{
    grad_job j = {m->grad, v};
    tk_parallel_range(m->n_train, GRAIN, clip_range, &j);
}

typedef struct {
    tk_model *m;
    const double *lrs;
    int64_t base;              /* the chunks' offset into the trainable region */
} update_job;

/* The groups are contiguous slices of the trainable region: a chunk updates its part of each
 * group it overlaps, with that group's settings. */
static void update_range(int64_t lo, int64_t hi, void *ud)
{
    const update_job *j = ud;
    tk_model *m = j->m;
    lo += j->base;
    hi += j->base;
    for (int k = 0; k < m->n_groups; k++) {
        const tk_group_rec *g = &m->groups[k];
        int64_t a = g->offset > lo ? g->offset : lo;
        int64_t b = g->offset + g->size < hi ? g->offset + g->size : hi;
        if (a >= b)
            continue;
        float *slots[4];
        for (int s = 0; s < m->n_slots; s++)
            slots[s] = m->slot[s] + a;
        m->opt->update(&g->h, j->lrs[k], m->optim_steps, m->flat + a, m->grad + a, slots, b - a);
    }
}

void tk_model_update(tk_model *m, const double *lrs)
{
    m->optim_steps++;
    if (!m->fusing || m->fused_stored) {
        update_job j = {m, lrs, 0};
        tk_parallel_range(m->n_train, GRAIN, update_range, &j);
        m->fused_stored = false;
        return;
    }
    for (int k = 0; k < m->n_plain; k++) {
        update_job j = {m, lrs, m->plain[2 * k]};
        tk_parallel_range(m->plain[2 * k + 1] - m->plain[2 * k], GRAIN, update_range, &j);
    }
    tk_model_fused_steps(m, lrs);
}

int tk_model_tensor_count(const tk_model *m)
{
    return m->n_tensors;
}

tk_tensor_info tk_model_tensor(const tk_model *m, int i)
{
    const tk_tensor_rec *r = &m->tensors[i];
    return (tk_tensor_info){r->name, r->kind, r->shape, r->data, r->group};
}

int tk_model_find_tensor(const tk_model *m, const char *name)
{
    for (int i = 0; i < m->n_tensors; i++)
        if (strcmp(m->tensors[i].name, name) == 0)
            return i;
    return -1;
}

/* Layers: every op node but the loss, fused ones included (they are still layers). */
static int layer_node(const tk_model *m, int i)
{
    for (int v = 0; v < m->g->n_nodes; v++) {
        const tk_node *n = &m->g->nodes[v];
        if (!n->op || (n->op->flags & TK_OP_LOSS))
            continue;
        if (i-- == 0)
            return v;
    }
    return -1;
}

int tk_model_layer_count(const tk_model *m)
{
    int count = 0;
    while (layer_node(m, count) >= 0)
        count++;
    return count;
}

tk_layer_info tk_model_layer(const tk_model *m, int i)
{
    const tk_node *n = &m->g->nodes[layer_node(m, i)];
    int64_t params = 0;
    for (int k = 0; k < n->n_params; k++) {
        const tk_param_decl *p = &m->g->params[n->params[k]];
        /* A shared parameter counts once: at the node that declared it. */
        if (p->node == n->id && p->trainable)
            params += tk_shape_numel(&p->shape);
    }
    return (tk_layer_info){n->name, n->op->name, n->where, n->shape, params};
}

int64_t tk_model_param_count(const tk_model *m, bool trainable_only)
{
    int64_t total = 0;
    for (int i = 0; i < m->n_state; i++) {
        const tk_tensor_rec *r = &m->tensors[i];
        if (r->kind != TK_TENSOR_PARAM)
            continue;
        if (!trainable_only || r->group >= 0)
            total += tk_shape_numel(&r->shape);
    }
    return total;
}

size_t tk_model_arena_bytes(const tk_model *m)
{
    size_t a = m->train.arena_floats > m->eval.arena_floats ? m->train.arena_floats
                                                            : m->eval.arena_floats;
    return a * sizeof(float);
}

int tk_model_group_count(const tk_model *m)
{
    return m->n_groups;
}

tk_group_info tk_model_group(const tk_model *m, int g)
{
    const tk_group_rec *r = &m->groups[g];
    return (tk_group_info){r->tensors, r->size, r->h, r->patterns};
}

tk_task tk_model_task(const tk_model *m)
{
    return m->g->task;
}

const char *tk_model_optim_name(const tk_model *m)
{
    return m->opt->name;
}
