/* graph.c - the graph IR builder: nodes with attributes, inputs and declared parameters.
 * Shape inference runs as each node is added (every op's shape rule), so a shape error names
 * the node and its script line at once. Compiling the graph into a plan is plan.c's job. */
#include "tk_int.h"

#include <stdarg.h>
#include <string.h>

tk_graph *tk_graph_new(tk_ctx *ctx)
{
    tk_graph *g = tk_calloc(1, sizeof *g);
    if (!g)
        return NULL;
    g->ctx = ctx;
    g->input = g->target = g->output = g->loss = -1;
    g->batch = 1;
    return g;
}

static void free_attrs(tk_attr *attrs, int n)
{
    for (int i = 0; i < n; i++) {
        tk_free((void *)attrs[i].key);
        tk_free((void *)attrs[i].s);
        tk_free((void *)attrs[i].ints);
        tk_free((void *)attrs[i].floats);
    }
    tk_free(attrs);
}

void tk_graph_free(tk_graph *g)
{
    if (!g)
        return;
    for (int i = 0; i < g->n_nodes; i++) {
        free_attrs(g->nodes[i].attrs, g->nodes[i].n_attrs);
        tk_free(g->nodes[i].name);
        tk_free(g->nodes[i].where);
    }
    for (int i = 0; i < g->n_params; i++)
        tk_free(g->params[i].name);
    tk_free(g->nodes);
    tk_free(g->params);
    tk_free(g);
}

void tk_graph_set_batch(tk_graph *g, int batch)
{
    g->batch = batch > 0 ? batch : 1;
}

tk_node *tk_graph_node(const tk_graph *g, int id)
{
    return id >= 0 && id < g->n_nodes ? &g->nodes[id] : NULL;
}

static tk_node *new_node(tk_graph *g)
{
    if (g->n_nodes == g->cap_nodes) {
        int cap = g->cap_nodes ? g->cap_nodes * 2 : 16;
        tk_node *nodes = tk_realloc(g->nodes, sizeof *nodes * (size_t)g->cap_nodes,
                                    sizeof *nodes * (size_t)cap);
        if (!nodes) {
            tk_fail(g->ctx, TK_ERR_RUNTIME, "out of memory");
            return NULL;
        }
        g->nodes = nodes;
        g->cap_nodes = cap;
    }
    tk_node *n = &g->nodes[g->n_nodes];
    memset(n, 0, sizeof *n);
    n->id = g->n_nodes++;
    n->alias_of = n->pool_epilogue = -1;
    return n;
}

int tk_graph_source(tk_graph *g, tk_shape sample, const char *name)
{
    if (sample.ndim + 1 > TK_MAX_DIMS) {
        tk_fail(g->ctx, TK_ERR_INPUT, "%s has too many dimensions", name);
        return -1;
    }
    tk_node *n = new_node(g);
    if (!n)
        return -1;
    n->name = tk_strdup(name);
    n->where = tk_strdup("data");
    n->shape.ndim = sample.ndim + 1;
    n->shape.d[0] = g->batch;
    for (int i = 0; i < sample.ndim; i++)
        n->shape.d[i + 1] = sample.d[i];
    return n->id;
}

int tk_graph_input(tk_graph *g, tk_shape sample_shape)
{
    g->input = tk_graph_source(g, sample_shape, "input");
    return g->input;
}

int tk_graph_target(tk_graph *g, tk_shape sample_shape)
{
    g->target = tk_graph_source(g, sample_shape, "target");
    return g->target;
}

void tk_graph_set_output(tk_graph *g, int node)
{
    g->output = node;
}

void tk_graph_set_loss(tk_graph *g, int node, tk_task task)
{
    g->loss = node;
    g->task = task;
}

static const char *const task_names[] = {
    [TK_TASK_CLASSIFICATION] = "classification", [TK_TASK_REGRESSION] = "regression",
    [TK_TASK_MULTILABEL] = "multilabel",
};

bool tk_task_parse(const char *name, tk_task *out)
{
    for (int t = 0; name && t < (int)(sizeof task_names / sizeof task_names[0]); t++)
        if (strcmp(name, task_names[t]) == 0)
            return *out = (tk_task)t, true;
    return false;
}

const char *tk_task_name(tk_task t)
{
    return (unsigned)t < sizeof task_names / sizeof task_names[0] ? task_names[t] : "?";
}

static bool copy_attr(tk_attr *dst, const tk_attr *src)
{
    *dst = *src;
    dst->key = tk_strdup(src->key);
    dst->s = src->s ? tk_strdup(src->s) : NULL;
    dst->ints = NULL;
    dst->floats = NULL;
    if (src->kind == TK_ATTR_INTS && src->n > 0) {
        int64_t *v = tk_malloc(sizeof *v * (size_t)src->n);
        if (v)
            memcpy(v, src->ints, sizeof *v * (size_t)src->n);
        dst->ints = v;
    }
    if (src->kind == TK_ATTR_FLOATS && src->n > 0) {
        double *v = tk_malloc(sizeof *v * (size_t)src->n);
        if (v)
            memcpy(v, src->floats, sizeof *v * (size_t)src->n);
        dst->floats = v;
    }
    return dst->key && (!src->s || dst->s) &&
           !(src->kind == TK_ATTR_INTS && src->n > 0 && !dst->ints) &&
           !(src->kind == TK_ATTR_FLOATS && src->n > 0 && !dst->floats);
}

int tk_graph_op(tk_graph *g, const char *op, const int *inputs, int n_inputs,
                const tk_attr *attrs, int n_attrs, const char *name, const char *where)
{
    const tk_op_def *def = tk_op_find(op);
    const char *w = where ? where : "model";
    if (!def) {
        tk_fail(g->ctx, TK_ERR_INPUT, "%s: unknown op '%s'", w, op);
        return -1;
    }
    if (n_inputs < def->min_inputs || n_inputs > def->max_inputs) {
        tk_fail(g->ctx, TK_ERR_INPUT, "%s: %s takes %d to %d inputs, got %d", w, op,
                def->min_inputs, def->max_inputs, n_inputs);
        return -1;
    }
    for (int i = 0; i < n_inputs; i++) {
        if (inputs[i] < 0 || inputs[i] >= g->n_nodes) {
            tk_fail(g->ctx, TK_ERR_INPUT, "%s: %s: input %d is not a node of the graph", w,
                    op, i + 1);
            return -1;
        }
    }
    tk_node *n = new_node(g);
    if (!n)
        return -1;
    n->op = def;
    n->n_inputs = n_inputs;
    memcpy(n->inputs, inputs, sizeof(int) * (size_t)n_inputs);
    n->name = tk_strdup(name ? name : "");
    n->where = tk_strdup(w);
    n->attrs = tk_calloc((size_t)(n_attrs ? n_attrs : 1), sizeof *n->attrs);
    if (!n->name || !n->where || !n->attrs) {
        tk_fail(g->ctx, TK_ERR_RUNTIME, "out of memory");
        return -1;
    }
    for (int i = 0; i < n_attrs; i++) {
        n->n_attrs = i + 1;
        if (!copy_attr(&n->attrs[i], &attrs[i])) {
            tk_fail(g->ctx, TK_ERR_RUNTIME, "out of memory");
            return -1;
        }
    }
    if (def->infer(g, n, g->ctx) != TK_OK)
        return -1;
    return n->id;
}

int tk_node_param(tk_graph *g, tk_node *n, const char *local, tk_shape shape, bool trainable,
                  tk_init_kind init, int64_t fan_in)
{
    if (n->n_params == TK_MAX_PARAMS) {
        tk_node_fail(g->ctx, n, "too many parameters");
        return -1;
    }
    if (g->n_params == g->cap_params) {
        int cap = g->cap_params ? g->cap_params * 2 : 16;
        tk_param_decl *p = tk_realloc(g->params, sizeof *p * (size_t)g->cap_params,
                                      sizeof *p * (size_t)cap);
        if (!p) {
            tk_fail(g->ctx, TK_ERR_RUNTIME, "out of memory");
            return -1;
        }
        g->params = p;
        g->cap_params = cap;
    }
    char full[512];
    if (n->name[0])
        snprintf(full, sizeof full, "%s.%s", n->name, local);
    else
        snprintf(full, sizeof full, "%s", local);
    /* A layer called twice in a graph shares its parameters: same name, same tensor. */
    for (int i = 0; i < g->n_params; i++) {
        if (strcmp(g->params[i].name, full) == 0) {
            tk_param_decl *p = &g->params[i];
            if (p->shape.ndim != shape.ndim ||
                memcmp(p->shape.d, shape.d, sizeof(int64_t) * (size_t)shape.ndim) != 0) {
                char a[96], b[96];
                tk_node_fail(g->ctx, n, "parameter '%s' is shared with shape %s but needed as %s",
                             full, tk_shape_str(&p->shape, a, sizeof a),
                             tk_shape_str(&shape, b, sizeof b));
                return -1;
            }
            n->params[n->n_params] = i;
            return n->n_params++;
        }
    }
    tk_param_decl *p = &g->params[g->n_params];
    p->name = tk_strdup(full);
    if (!p->name) {
        tk_fail(g->ctx, TK_ERR_RUNTIME, "out of memory");
        return -1;
    }
    p->shape = shape;
    p->trainable = trainable;
    p->init = init;
    p->fan_in = fan_in;
    p->node = n->id;
    n->params[n->n_params] = g->n_params++;
    return n->n_params++;
}

tk_status tk_node_fail(tk_ctx *ctx, const tk_node *n, const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    const char *name = n->name && n->name[0] ? n->name : "model";
    return tk_fail(ctx, TK_ERR_INPUT, "%s: layer '%s' (%s): %s", n->where ? n->where : "model",
                   name, n->op ? n->op->name : "input", msg);
}

const tk_attr *tk_node_attr(const tk_node *n, const char *key)
{
    for (int i = 0; i < n->n_attrs; i++)
        if (strcmp(n->attrs[i].key, key) == 0)
            return &n->attrs[i];
    return NULL;
}

int tk_attr_float_list(tk_node *n, const char *key, tk_ctx *ctx)
{
    const tk_attr *found = tk_node_attr(n, key);
    if (!found)
        return -1;
    tk_attr *a = &n->attrs[found - n->attrs];
    int len = a->kind == TK_ATTR_INTS ? a->n : 1;
    if (a->kind == TK_ATTR_FLOATS || a->kind == TK_ATTR_STR || len < 1)
        return (int)(a - n->attrs);
    double *v = tk_malloc(sizeof *v * (size_t)len);
    if (!v) {
        tk_fail(ctx, TK_ERR_RUNTIME, "out of memory");
        return -2;
    }
    for (int i = 0; i < len; i++)
        v[i] = a->kind == TK_ATTR_INTS ? (double)a->ints[i]
               : a->kind == TK_ATTR_INT ? (double)a->i : a->f;
    tk_free((void *)a->ints);
    a->ints = NULL;
    a->floats = v;
    a->n = len;
    a->kind = TK_ATTR_FLOATS;
    return (int)(a - n->attrs);
}

int64_t tk_attr_int(const tk_node *n, const char *key, int64_t dflt)
{
    const tk_attr *a = tk_node_attr(n, key);
    if (!a)
        return dflt;
    return a->kind == TK_ATTR_FLOAT ? (int64_t)a->f : a->i;
}

double tk_attr_float(const tk_node *n, const char *key, double dflt)
{
    const tk_attr *a = tk_node_attr(n, key);
    if (!a)
        return dflt;
    return a->kind == TK_ATTR_INT ? (double)a->i : a->f;
}

const char *tk_attr_str(const tk_node *n, const char *key, const char *dflt)
{
    const tk_attr *a = tk_node_attr(n, key);
    return a && a->kind == TK_ATTR_STR ? a->s : dflt;
}

int64_t tk_shape_numel(const tk_shape *s)
{
    int64_t k = 1;
    for (int i = 0; i < s->ndim; i++)
        k *= s->d[i];
    return k;
}

char *tk_shape_str(const tk_shape *s, char *buf, size_t cap)
{
    size_t used = 0;
    used += (size_t)snprintf(buf, cap, "(");
    for (int i = 0; i < s->ndim && used < cap; i++)
        used += (size_t)snprintf(buf + used, cap - used, i ? ", %lld" : "%lld",
                                 (long long)s->d[i]);
    if (used < cap)
        snprintf(buf + used, cap - used, "%s)", s->ndim == 1 ? "," : "");
    return buf;
}

tk_graph *tk_graph_clone(const tk_graph *g)
{
    tk_graph *c = tk_graph_new(g->ctx);
    if (!c)
        return NULL;
    c->nodes = tk_calloc((size_t)(g->n_nodes ? g->n_nodes : 1), sizeof *c->nodes);
    c->params = tk_calloc((size_t)(g->n_params ? g->n_params : 1), sizeof *c->params);
    if (!c->nodes || !c->params)
        goto fail;
    c->cap_nodes = g->n_nodes;
    c->cap_params = g->n_params;
    for (int i = 0; i < g->n_nodes; i++) {
        const tk_node *s = &g->nodes[i];
        tk_node *d = &c->nodes[i];
        *d = *s;
        d->attrs = NULL;
        d->n_attrs = 0;
        d->name = tk_strdup(s->name);
        d->where = tk_strdup(s->where);
        d->attrs = tk_calloc((size_t)(s->n_attrs ? s->n_attrs : 1), sizeof *d->attrs);
        c->n_nodes = i + 1;
        if (!d->name || !d->where || !d->attrs)
            goto fail;
        for (int k = 0; k < s->n_attrs; k++) {
            d->n_attrs = k + 1;
            if (!copy_attr(&d->attrs[k], &s->attrs[k]))
                goto fail;
        }
    }
    for (int i = 0; i < g->n_params; i++) {
        c->params[i] = g->params[i];
        c->params[i].name = tk_strdup(g->params[i].name);
        c->n_params = i + 1;
        if (!c->params[i].name)
            goto fail;
    }
    c->input = g->input;
    c->target = g->target;
    c->output = g->output;
    c->loss = g->loss;
    c->task = g->task;
    c->batch = g->batch;
    return c;
fail:
    tk_graph_free(c);
    return NULL;
}
