/* plan.c - the compile passes that turn a graph into a tk_model: fusion, autodiff (which
 * nodes run backward, which gradients exist, pruning of frozen prefixes), the parameter layout
 * (parameters, gradients and optimizer slots in one layout, groups contiguous), parameter
 * initialisation, and the memory plan (activations in one arena, offsets chosen by liveness)
 * with the kernel arguments of every step precomputed. Running the steps is exec.c's job. */
#include "tk_int.h"
#include "ops/common.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- fusion */

static int consumers_of(const tk_graph *g, int v, int *last)
{
    int count = 0;
    for (int i = 0; i < g->n_nodes; i++) {
        const tk_node *n = &g->nodes[i];
        if (n->alias_of >= 0)
            continue;
        for (int k = 0; k < n->n_inputs; k++) {
            if (n->inputs[k] == v) {
                count++;
                *last = i;
            }
        }
    }
    return count;
}

/* linear or conv2d -> relu becomes one op with a ReLU epilogue when the relu is its only
 * consumer; the relu's consumers then read the fused op's buffer. */
static void fuse(tk_graph *g)
{
    for (int v = 0; v < g->n_nodes; v++) {
        tk_node *lin = &g->nodes[v];
        if (!lin->op || !(lin->op->flags & TK_OP_RELU_EPILOGUE) || lin->act != TK_ACT_NONE ||
            v == g->output)
            continue;
        int r = -1;
        if (consumers_of(g, v, &r) != 1 || strcmp(g->nodes[r].op->name, "relu") != 0)
            continue;
        lin->act = TK_ACT_RELU;
        g->nodes[r].alias_of = v;
        for (int i = 0; i < g->n_nodes; i++)
            for (int k = 0; k < g->nodes[i].n_inputs; k++)
                if (g->nodes[i].inputs[k] == r)
                    g->nodes[i].inputs[k] = v;
        if (g->output == r)
            g->output = v;
    }
    /* conv2d (+ relu) -> 2x2 max pooling: the convolution pools in its epilogue, so the
     * full-size activation and its gradient are never written. */
    for (int v = 0; v < g->n_nodes; v++) {
        tk_node *conv = &g->nodes[v];
        if (!conv->op || !(conv->op->flags & TK_OP_POOL_EPILOGUE) || v == g->output)
            continue;
        int p = -1;
        if (consumers_of(g, v, &p) != 1 || strcmp(g->nodes[p].op->name, "max_pool2d") != 0)
            continue;
        tk_pool2d_geom q = tk_pool2d_geom_of(&g->nodes[p]);
        if (!tk_pool2d_is_2x2(&q))
            continue;
        conv->pool_epilogue = p;
    }
}

/* ---------------------------------------------------------------- parameter layout */

static int group_of(const tk_optim_spec *opt, const char *name)
{
    for (int k = 0; k < opt->n_groups; k++)
        for (int p = 0; p < opt->groups[k].n_patterns; p++)
            if (tk_glob(opt->groups[k].patterns[p], name))
                return k + 1;
    return 0;
}

static bool is_frozen(const tk_optim_spec *opt, const char *name)
{
    for (int k = 0; k < opt->n_freeze; k++)
        if (tk_glob(opt->freeze[k], name))
            return true;
    return false;
}

static void list_names(const tk_graph *g, char *buf, size_t cap)
{
    size_t used = 0;
    buf[0] = 0;
    for (int i = 0; i < g->n_params && used + 4 < cap; i++) {
        int w = snprintf(buf + used, cap - used, "%s%s", i ? ", " : "", g->params[i].name);
        used += w > 0 ? (size_t)w : 0;
    }
}

/* A group's patterns as "a, b" (quote: "'a', 'b'", for messages). */
static void join_group(const tk_group_spec *gs, char *buf, size_t cap, bool quote)
{
    size_t used = 0;
    buf[0] = 0;
    for (int p = 0; p < gs->n_patterns && used + 4 < cap; p++) {
        int w = snprintf(buf + used, cap - used, quote ? "%s'%s'" : "%s%s", p ? ", " : "",
                         gs->patterns[p]);
        used += w > 0 ? (size_t)w : 0;
    }
}

static char *join_patterns(const tk_optim_spec *opt, int group)
{
    char buf[512] = "(default)";
    if (group > 0)
        join_group(&opt->groups[group - 1], buf, sizeof buf, false);
    return tk_strdup(buf);
}

static tk_status check_patterns(const tk_graph *g, const tk_optim_spec *opt, tk_ctx *ctx)
{
    char names[1024];
    list_names(g, names, sizeof names);
    for (int k = 0; k < opt->n_groups; k++) {
        const tk_group_spec *gs = &opt->groups[k];
        bool any = false;
        for (int i = 0; i < g->n_params && !any; i++)
            for (int p = 0; p < gs->n_patterns; p++)
                any = any || tk_glob(gs->patterns[p], g->params[i].name);
        if (!any)
            return tk_fail(ctx, TK_ERR_INPUT,
                           "%s: optimizer group %d (match '%s') matches no parameter "
                           "(parameters: %s)", gs->where ? gs->where : opt->where, k + 1,
                           gs->n_patterns ? gs->patterns[0] : "", names);
    }
    for (int k = 0; k < opt->n_freeze; k++) {
        bool any = false;
        for (int i = 0; i < g->n_params && !any; i++)
            any = tk_glob(opt->freeze[k], g->params[i].name);
        if (!any)
            return tk_fail(ctx, TK_ERR_INPUT,
                           "%s: freeze pattern '%s' matches no parameter (parameters: %s)",
                           opt->where, opt->freeze[k], names);
    }
    /* Freezing everything leaves a run that changes nothing yet reports success. */
    int trainable = 0, frozen = 0;
    for (int i = 0; i < g->n_params; i++) {
        trainable += g->params[i].trainable;
        frozen += g->params[i].trainable && is_frozen(opt, g->params[i].name);
    }
    if (opt->n_freeze && trainable && frozen == trainable)
        return tk_fail(ctx, TK_ERR_INPUT, "%s: freeze covers every parameter (%s): nothing "
                       "would train (leave some parameters out of freeze)",
                       opt->where, names);
    return TK_OK;
}



static void init_param(const tk_param_decl *p, float *data, uint64_t seed, int index)
{
    int64_t n = tk_shape_numel(&p->shape);
    tk_rng r = tk_rng_make(seed, TK_STREAM_INIT, (uint32_t)index, 0);
    /* kaiming_uniform_(a=sqrt(5)) and the bias rule of nn.Linear/nn.Conv2d both come to
     * U(-1/sqrt(fan_in), 1/sqrt(fan_in)). */
    float bound = p->fan_in > 0 ? (float)(1.0 / sqrt((double)p->fan_in)) : 0.0f;
    for (int64_t i = 0; i < n; i++) {
        switch (p->init) {
        case TK_INIT_ZEROS:
            data[i] = 0.0f;
            break;
        case TK_INIT_ONES:
            data[i] = 1.0f;
            break;
        case TK_INIT_KAIMING_UNIFORM:
        case TK_INIT_UNIFORM_FAN_IN:
            data[i] = (2.0f * tk_rng_uniform(&r) - 1.0f) * bound;
            break;
        }
    }
}

/* The first group that matches a parameter takes it (DESIGN.md), so that a pattern for the
 * biases and one for a layer can be written without carving one out of the other. What a later
 * group also matched is kept as a note for check, note.log and the start of training: the rule
 * then applies in the open, never silently. */
static tk_status note_overlaps(tk_model *m, const tk_optim_spec *opt, tk_ctx *ctx)
{
    const tk_graph *g = m->g;
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f)
        return tk_fail(ctx, TK_ERR_RUNTIME, "out of memory");
    for (int i = 0; i < g->n_params; i++) {
        const char *name = g->params[i].name;
        int first = g->params[i].trainable && !is_frozen(opt, name) ? group_of(opt, name) : 0;
        for (int k = first; first && k < opt->n_groups; k++) {
            const tk_group_spec *gs = &opt->groups[k];
            bool hit = false;
            for (int p = 0; p < gs->n_patterns && !hit; p++)
                hit = tk_glob(gs->patterns[p], name);
            if (!hit)
                continue;
            char pa[512], pb[512];
            join_group(&opt->groups[first - 1], pa, sizeof pa, true);
            join_group(gs, pb, sizeof pb, true);
            fprintf(f, "note: parameter '%s' matches optimizer group %d (match %s) and group %d "
                    "(match %s): group %d applies (the first match wins)\n", name, first, pa,
                    k + 1, pb, first);
        }
    }
    if (fclose(f) != 0 || !text)
        return tk_fail(ctx, TK_ERR_RUNTIME, "out of memory");
    m->notes = tk_strdup(text);
    free(text);
    return m->notes ? TK_OK : tk_fail(ctx, TK_ERR_RUNTIME, "out of memory");
}

const char *tk_model_notes(const tk_model *m)
{
    return m->notes ? m->notes : "";
}

static tk_status layout(tk_model *m, const tk_optim_spec *opt, bool train, tk_ctx *ctx)
{
    tk_graph *g = m->g;
    m->opt = tk_optim_def_find(opt->type);
    if (!m->opt)
        return tk_fail(ctx, TK_ERR_INPUT, "%s: optimizer '%s' is not available", opt->where,
                       opt->type ? opt->type : "");
    if (check_patterns(g, opt, ctx) != TK_OK || note_overlaps(m, opt, ctx) != TK_OK)
        return TK_ERR_INPUT;
    m->n_groups = opt->n_groups + 1;
    m->groups = tk_calloc((size_t)m->n_groups, sizeof *m->groups);
    m->param_tensor = tk_calloc((size_t)(g->n_params ? g->n_params : 1), sizeof(int));
    int *group = tk_calloc((size_t)(g->n_params ? g->n_params : 1), sizeof(int));
    if (!m->groups || !m->param_tensor || !group) {
        tk_free(group);
        return tk_fail(ctx, TK_ERR_RUNTIME, "out of memory");
    }
    for (int k = 0; k < m->n_groups; k++) {
        m->groups[k].h = k ? opt->groups[k - 1].h : opt->h;
        m->groups[k].patterns = join_patterns(opt, k);
    }
    /* Trainable parameters first, ordered by group, then frozen ones, then buffers; the
     * gradients and slots mirror the trainable region element for element. */
    for (int i = 0; i < g->n_params; i++) {
        const tk_param_decl *p = &g->params[i];
        group[i] = !p->trainable || !train || is_frozen(opt, p->name) ? -1 : group_of(opt, p->name);
    }
    int64_t off = 0;
    for (int k = 0; k < m->n_groups; k++) {
        m->groups[k].offset = off;
        for (int i = 0; i < g->n_params; i++) {
            if (group[i] != k)
                continue;
            m->groups[k].tensors++;
            off += tk_shape_numel(&g->params[i].shape);
        }
        m->groups[k].size = off - m->groups[k].offset;
    }
    m->n_train = off;
    for (int k = 0; k < m->n_groups; k++)
        if (m->opt->slots_for(&m->groups[k].h) > m->n_slots)
            m->n_slots = m->opt->slots_for(&m->groups[k].h);
    int n_slot_tensors = 0;
    for (int i = 0; i < g->n_params; i++)
        if (group[i] >= 0)
            n_slot_tensors += m->opt->slots_for(&m->groups[group[i]].h);
    m->n_state = g->n_params;
    m->n_tensors = g->n_params + n_slot_tensors;
    m->tensors = tk_calloc((size_t)(m->n_tensors ? m->n_tensors : 1), sizeof *m->tensors);
    int64_t n_flat = off;
    for (int i = 0; i < g->n_params; i++)
        if (group[i] < 0)
            n_flat += tk_shape_numel(&g->params[i].shape);
    m->n_flat = n_flat;
    m->flat = tk_alloc_floats((size_t)(n_flat ? n_flat : 1));
    m->grad = tk_alloc_floats((size_t)(off ? off : 1));
    for (int s = 0; s < m->n_slots; s++)
        m->slot[s] = tk_alloc_floats((size_t)(off ? off : 1));
    bool ok = m->tensors && m->flat && m->grad;
    for (int s = 0; s < m->n_slots; s++)
        ok = ok && m->slot[s];
    if (!ok) {
        tk_free(group);
        return tk_fail(ctx, TK_ERR_RUNTIME, "out of memory for %lld parameters",
                       (long long)n_flat);
    }
    /* Offsets: walk groups in order for trainable ones, then the rest. */
    int64_t *cursor = tk_calloc((size_t)m->n_groups, sizeof(int64_t));
    if (!cursor) {
        tk_free(group);
        return tk_fail(ctx, TK_ERR_RUNTIME, "out of memory");
    }
    for (int k = 0; k < m->n_groups; k++)
        cursor[k] = m->groups[k].offset;
    int64_t rest = off;
    int t = g->n_params;
    for (int i = 0; i < g->n_params; i++) {
        const tk_param_decl *p = &g->params[i];
        tk_tensor_rec *r = &m->tensors[i];
        int64_t numel = tk_shape_numel(&p->shape);
        r->name = tk_strdup(p->name);
        r->kind = p->trainable ? TK_TENSOR_PARAM : TK_TENSOR_BUFFER;
        r->shape = p->shape;
        r->group = group[i];
        if (group[i] >= 0) {
            r->offset = cursor[group[i]];
            cursor[group[i]] += numel;
            r->grad = m->grad + r->offset;
        } else {
            r->offset = rest;
            rest += numel;
        }
        r->data = m->flat + r->offset;
        m->param_tensor[i] = i;
        init_param(p, r->data, m->seed, i);
        if (group[i] < 0)
            continue;
        int ns = m->opt->slots_for(&m->groups[group[i]].h);
        for (int s = 0; s < ns; s++, t++) {
            char name[600];
            snprintf(name, sizeof name, "optim.%s.%s", p->name, m->opt->slot_names[s]);
            tk_tensor_rec *q = &m->tensors[t];
            q->name = tk_strdup(name);
            q->kind = TK_TENSOR_SLOT;
            q->shape = p->shape;
            q->group = group[i];
            q->offset = r->offset;
            q->data = m->slot[s] + r->offset;
            float v = m->opt->slot_init(&m->groups[group[i]].h, s);
            for (int64_t e = 0; e < numel; e++)
                q->data[e] = v;
        }
    }
    tk_free(cursor);
    tk_free(group);
    for (int i = 0; i < m->n_tensors; i++)
        if (!m->tensors[i].name)
            return tk_fail(ctx, TK_ERR_RUNTIME, "out of memory");
    return TK_OK;
}

/* ---------------------------------------------------------------- memory plan */

typedef struct {
    size_t size, offset;       /* floats */
    int start, end;            /* schedule steps, inclusive */
    int node, kind;            /* kind: 0 value, 1 gradient, 2 scratch */
} buffer;

enum { VALUE, GRAD, SCRATCH };
#define NONE SIZE_MAX

static size_t padded(size_t floats)
{
    return (floats + 15) & ~(size_t)15;
}

static int by_size(const void *a, const void *b)
{
    const buffer *x = a, *y = b;
    if (x->size != y->size)
        return x->size < y->size ? 1 : -1;
    return x->node != y->node ? x->node - y->node : x->kind - y->kind;
}

/* Greedy best-offset placement: biggest first, each at the lowest offset that overlaps no
 * placed buffer whose lifetime intersects its own. */
static size_t place(buffer *b, int nb)
{
    qsort(b, (size_t)nb, sizeof *b, by_size);
    size_t total = 0;
    for (int i = 0; i < nb; i++) {
        size_t best = 0;
        for (bool moved = true; moved;) {
            moved = false;
            for (int j = 0; j < i; j++) {
                bool live = b[j].start <= b[i].end && b[i].start <= b[j].end;
                bool overlap = best < b[j].offset + b[j].size && b[j].offset < best + b[i].size;
                if (live && overlap) {
                    best = b[j].offset + b[j].size;
                    moved = true;
                }
            }
        }
        b[i].offset = best;
        if (best + b[i].size > total)
            total = best + b[i].size;
    }
    return total;
}

/* The convolution whose epilogue runs node v, a pooling (-1: none). */
static int pooled_by(const tk_graph *g, int v)
{
    const tk_node *n = &g->nodes[v];
    return n->n_inputs > 0 && g->nodes[n->inputs[0]].pool_epilogue == v ? n->inputs[0] : -1;
}

static bool runs(const tk_model *m, int v)
{
    const tk_node *n = &m->g->nodes[v];
    return n->op && n->alias_of < 0 && pooled_by(m->g, v) < 0;
}

/* A convolution that pools in its epilogue stores neither its value nor its gradient. */
static size_t value_floats(const tk_node *n)
{
    return n->pool_epilogue >= 0 ? 0 : (size_t)tk_shape_numel(&n->shape);
}

/* A weight gradient that the update may make after backward (fused_update.c) reads the
 * node's input and output gradient then: both live to the end of the train schedule. */
static bool fused_later(const tk_node *n)
{
    return n->op->flags & TK_OP_FUSED_UPDATE;
}

/* Build one schedule: train (forward + backward) or eval (forward only). */
static tk_status schedule(tk_model *m, tk_schedule *s, bool train, const bool *live,
                          const bool *rg, tk_ctx *ctx)
{
    tk_graph *g = m->g;
    int nn = g->n_nodes;
    int *fstep = tk_calloc((size_t)nn, sizeof(int)), *bstep = tk_calloc((size_t)nn, sizeof(int));
    buffer *bufs = tk_calloc((size_t)nn * 3, sizeof *bufs);
    s->args = tk_calloc((size_t)nn, sizeof *s->args);
    s->offsets = tk_calloc((size_t)nn * 3, sizeof(size_t));
    s->fwd = tk_calloc((size_t)nn, sizeof(int));
    s->bwd = tk_calloc((size_t)nn, sizeof(int));
    if (!fstep || !bstep || !bufs || !s->args || !s->offsets || !s->fwd || !s->bwd) {
        tk_free(fstep);
        tk_free(bstep);
        tk_free(bufs);
        return tk_fail(ctx, TK_ERR_RUNTIME, "out of memory");
    }
    for (int v = 0; v < nn; v++) {
        fstep[v] = bstep[v] = -1;
        if (live[v] && runs(m, v)) {
            fstep[v] = s->n_fwd;
            s->fwd[s->n_fwd++] = v;
        }
    }
    if (train)
        for (int v = nn - 1; v >= 0; v--)
            if (fstep[v] >= 0 && rg[v]) {
                bstep[v] = s->n_fwd + s->n_bwd;
                s->bwd[s->n_bwd++] = v;
            }
    /* A pooling run by its producer's kernels lives through the producer's steps. */
    for (int v = 0; v < nn; v++) {
        int c = pooled_by(g, v);
        if (c >= 0 && live[v]) {
            fstep[v] = fstep[c];
            bstep[v] = bstep[c];
        }
    }
    int last = s->n_fwd + s->n_bwd - 1;
    int nb = 0;
    int val[nn], grd[nn], scr[nn];
    for (int v = 0; v < nn; v++) {
        val[v] = grd[v] = scr[v] = -1;
        if (fstep[v] < 0)
            continue;
        const tk_node *n = &g->nodes[v];
        buffer *b = &bufs[nb];
        *b = (buffer){padded(value_floats(n)), 0, fstep[v], fstep[v], v, VALUE};
        if (bstep[v] >= 0 && ((n->op->flags & TK_OP_BWD_NEEDS_OUTPUT) ||
                              n->act != TK_ACT_NONE || pooled_by(g, v) >= 0))
            b->end = bstep[v];
        if (v == g->output || v == g->loss)
            b->end = last;
        val[v] = nb++;
        if (rg[v] && bstep[v] >= 0 && v != g->loss) {
            bufs[nb] = (buffer){padded(value_floats(n)), 0, bstep[v],
                                fused_later(n) ? last : bstep[v], v, GRAD};
            grd[v] = nb++;
        }
        if (n->scratch > 0) {
            bufs[nb] = (buffer){padded(n->scratch), 0, fstep[v],
                                bstep[v] >= 0 ? bstep[v] : fstep[v], v, SCRATCH};
            scr[v] = nb++;
        }
    }
    /* Extend lifetimes by the consumers: values to their last reader, gradients back to the
     * first backward step that writes them. */
    for (int c = 0; c < nn; c++) {
        if (fstep[c] < 0)
            continue;
        const tk_node *n = &g->nodes[c];
        for (int k = 0; k < n->n_inputs; k++) {
            int v = n->inputs[k];
            if (val[v] >= 0) {
                buffer *b = &bufs[val[v]];
                int end = fstep[c];
                if (bstep[c] >= 0 && (n->op->flags & TK_OP_BWD_NEEDS_INPUT))
                    end = fused_later(n) ? last : bstep[c];
                if (end > b->end)
                    b->end = end;
            }
            if (grd[v] >= 0 && bstep[c] >= 0 && bstep[c] < bufs[grd[v]].start)
                bufs[grd[v]].start = bstep[c];
        }
    }
    s->arena_floats = place(bufs, nb);
    /* Placement sorted the array; record each buffer's offset by (kind, node). */
    for (int i = 0; i < 3 * nn; i++)
        s->offsets[i] = NONE;
    for (int i = 0; i < nb; i++)
        s->offsets[bufs[i].kind * nn + bufs[i].node] = bufs[i].offset;
    tk_free(fstep);
    tk_free(bstep);
    tk_free(bufs);
    return TK_OK;
}

static float *at(const tk_model *m, const tk_schedule *s, int kind, int v)
{
    size_t off = s->offsets[kind * m->g->n_nodes + v];
    return off == NONE ? NULL : m->arena + off;
}

/* Once the arena exists: fix every kernel argument's pointers. */
static void finish_args(tk_model *m, tk_schedule *s, bool train, const bool *rg)
{
    tk_graph *g = m->g;
    for (int v = 0; v < g->n_nodes; v++) {
        tk_kernel_args *a = &s->args[v];
        a->node = &g->nodes[v];
        a->training = train;
        a->seed = m->seed;
        a->loss_scale = 1.0f;
        a->grad_fresh = &m->grad_fresh;
        a->y = at(m, s, VALUE, v);
        a->dy = at(m, s, GRAD, v);
        a->scratch = at(m, s, SCRATCH, v);
    }
    for (int v = 0; v < g->n_nodes; v++)
        if (g->nodes[v].pool_epilogue >= 0)
            s->args[v].pool = &s->args[g->nodes[v].pool_epilogue];
    s->args[g->input].y = m->input;
    s->args[g->target].y = m->target;
    bool written[g->n_nodes > 0 ? g->n_nodes : 1];
    memset(written, 0, sizeof written);
    for (int v = 0; v < g->n_nodes; v++) {
        tk_kernel_args *a = &s->args[v];
        const tk_node *n = &g->nodes[v];
        if (!n->op || n->alias_of >= 0)
            continue;
        for (int k = 0; k < n->n_inputs; k++)
            a->x[k] = s->args[n->inputs[k]].y;
        for (int k = 0; k < n->n_params; k++) {
            const tk_tensor_rec *t = &m->tensors[m->param_tensor[n->params[k]]];
            a->param[k] = t->data;
            a->dparam[k] = train ? t->grad : NULL;
        }
    }
    /* Backward order decides which writer of a gradient overwrites and which add. A
     * gradient no backward writes stays at the zero it starts with. */
    bool param_written[m->n_tensors > 0 ? m->n_tensors : 1];
    memset(param_written, 0, sizeof param_written);
    if (train)
        memset(m->grad, 0, sizeof(float) * (size_t)m->n_train);
    for (int i = 0; i < s->n_bwd; i++) {
        int v = s->bwd[i];
        tk_kernel_args *a = &s->args[v];
        const tk_node *n = &g->nodes[v];
        for (int k = 0; k < n->n_params; k++) {
            int t = m->param_tensor[n->params[k]];
            if (!a->dparam[k])
                continue;
            a->dparam_first[k] = !param_written[t];
            param_written[t] = true;
        }
        for (int k = 0; k < n->n_inputs; k++) {
            int u = n->inputs[k];
            bool diff = !(k == 1 && (n->op->flags & TK_OP_NOT_DIFF_INPUT1));
            if (!rg[u] || !diff || !s->args[u].dy)
                continue;
            a->dx[k] = s->args[u].dy;
            a->dx_accumulate[k] = written[u];
            written[u] = true;
        }
    }
    s->output = s->args[g->output].y;
    s->loss = s->args[g->loss].y;
    tk_free(s->offsets);
    s->offsets = NULL;
}

/* ---------------------------------------------------------------- compile */

tk_status tk_compile(const tk_graph *src, const tk_optim_spec *opt, const tk_compile_opts *o,
                     tk_model **out, tk_ctx *ctx)
{
    *out = NULL;
    if (src->output < 0 || src->loss < 0 || src->input < 0 || src->target < 0)
        return tk_fail(ctx, TK_ERR_INPUT, "the model needs an input, an output and a loss");
    /* Class ids are the targets of a classification and of nothing else. */
    const tk_node *loss = &src->nodes[src->loss];
    if (((loss->op->flags & TK_OP_CLASS_TARGET) != 0) != (src->task == TK_TASK_CLASSIFICATION))
        return tk_fail(ctx, TK_ERR_INPUT, "%s: loss %s cannot train a %s task", loss->where,
                       loss->op->name, tk_task_name(src->task));
    tk_model *m = tk_calloc(1, sizeof *m);
    if (!m || !(m->g = tk_graph_clone(src))) {
        tk_free(m);
        return tk_fail(ctx, TK_ERR_RUNTIME, "out of memory");
    }
    m->seed = o->seed;
    tk_graph *g = m->g;
    if (o->fuse)
        fuse(g);
    tk_status st = layout(m, opt, o->train, ctx);
    int nn = g->n_nodes;
    bool live[nn], rg[nn];
    memset(live, 0, sizeof live);
    memset(rg, 0, sizeof rg);
    if (st == TK_OK) {
        /* Live: ancestors of the loss and the output. Needs-grad: a trainable parameter
         * upstream; everything below a frozen prefix runs no backward at all. */
        live[g->loss] = live[g->output] = true;
        for (int v = nn - 1; v >= 0; v--)
            if (live[v])
                for (int k = 0; k < g->nodes[v].n_inputs; k++)
                    live[g->nodes[v].inputs[k]] = true;
        for (int v = 0; v < nn; v++) {
            const tk_node *n = &g->nodes[v];
            if (!n->op || n->alias_of >= 0)
                continue;
            for (int k = 0; k < n->n_params; k++)
                rg[v] = rg[v] || m->tensors[m->param_tensor[n->params[k]]].grad != NULL;
            for (int k = 0; k < n->n_inputs; k++)
                rg[v] = rg[v] || rg[n->inputs[k]];
        }
        st = schedule(m, &m->train, o->train, live, rg, ctx);
    }
    if (st == TK_OK)
        st = schedule(m, &m->eval, false, live, rg, ctx);
    if (st == TK_OK) {
        size_t arena = m->train.arena_floats > m->eval.arena_floats ? m->train.arena_floats
                                                                    : m->eval.arena_floats;
        m->arena = tk_alloc_floats(arena ? arena : 1);
        m->input = tk_alloc_floats((size_t)tk_shape_numel(&g->nodes[g->input].shape));
        m->target = tk_alloc_floats((size_t)tk_shape_numel(&g->nodes[g->target].shape));
        if (!m->arena || !m->input || !m->target)
            st = tk_fail(ctx, TK_ERR_RUNTIME, "out of memory for a %zu-float arena", arena);
    }
    if (st != TK_OK) {
        tk_model_free(m);
        return st;
    }
    finish_args(m, &m->train, o->train, rg);
    finish_args(m, &m->eval, false, rg);
    *out = m;
    return TK_OK;
}

static void free_schedule(tk_schedule *s)
{
    tk_free(s->args);
    tk_free(s->offsets);
    tk_free(s->fwd);
    tk_free(s->bwd);
}

void tk_model_free(tk_model *m)
{
    if (!m)
        return;
    for (int i = 0; i < m->n_tensors; i++)
        tk_free(m->tensors[i].name);
    for (int k = 0; k < m->n_groups; k++)
        tk_free(m->groups[k].patterns);
    tk_free(m->tensors);
    tk_free(m->groups);
    tk_free(m->param_tensor);
    tk_free(m->plain);
    tk_free_aligned(m->block_scratch);
    tk_free_aligned(m->flat);
    tk_free_aligned(m->grad);
    for (int s = 0; s < 4; s++)
        tk_free_aligned(m->slot[s]);
    tk_free_aligned(m->arena);
    tk_free_aligned(m->input);
    tk_free_aligned(m->target);
    free_schedule(&m->train);
    free_schedule(&m->eval);
    tk_graph_free(m->g);
    for (int i = 0; i < 2 * m->n_meta; i++)
        tk_free(m->meta[i]);
    tk_free(m->meta);
    tk_free(m->notes);
    tk_free(m);
}
