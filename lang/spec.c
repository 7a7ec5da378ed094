/* spec.c - turns the validated pipeline table (stdlib/tk) into runtime calls: the data
 * (spec_data.c), the lowered node list into a graph, the loss and its task, the optimizer
 * spec, the schedule and training options, compile.
 * It knows the table formats of the stdlib, never an op's attributes or an optimizer's
 * options: those pass through by name, so a new op or optimizer needs no change here. Every
 * default lives in the stdlib's schemas: a field the stdlib left out means "not given".
 * Re-entrant (the REPL builds and rebuilds pipelines): no static state, no fixed caps. */
#include "spec.h"

#include <stdlib.h>

enum { TRAIN, VALID, TEST };

/* ---------------------------------------------------------------- table access */

/* Copies kept for the pipeline's life: one growing block of NUL-terminated strings is
 * overkill here, so each copy is a small allocation chained through the first bytes. */
static const char *keep(tk_pipeline *p, const char *s)
{
    size_t n = strlen(s) + 1;
    char *block = malloc(sizeof(char *) + n);
    if (!block)
        return "";
    memcpy(block, &p->strings, sizeof(char *));
    memcpy(block + sizeof(char *), s, n);
    p->strings = block;
    return block + sizeof(char *);
}

/* n zeroed bytes kept for the pipeline's life, chained with keep's strings. */
static void *keep_block(tk_pipeline *p, size_t n)
{
    char *block = calloc(1, sizeof(char *) + n);
    if (!block)
        return NULL;
    memcpy(block, &p->strings, sizeof(char *));
    p->strings = block;
    return block + sizeof(char *);
}

/* ---------------------------------------------------------------- model */

/* The attributes of one node or loss; each list value owns its arrays. */
typedef struct {
    tk_attr *a;
    int n;
} attr_list;

static void attrs_free(attr_list *l)
{
    for (int i = 0; i < l->n; i++) {
        free((void *)l->a[i].ints);
        free((void *)l->a[i].floats);
    }
    free(l->a);
    *l = (attr_list){NULL, 0};
}

/* Convert one Lua value into an attribute: 1 done, 0 no attribute form, -1 out of memory.
 * Its strings and arrays are the Lua state's and malloc's (attrs_free), or with `kept`
 * copies that live as long as that pipeline. */
static int to_attr(lua_State *L, int idx, const char *key, tk_attr *a, tk_pipeline *kept)
{
    *a = (tk_attr){.key = key};
    switch (lua_type(L, idx)) {
    case LUA_TBOOLEAN:
        a->kind = TK_ATTR_INT;
        a->i = lua_toboolean(L, idx);
        return 1;
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx)) {
            a->kind = TK_ATTR_INT;
            a->i = lua_tointeger(L, idx);
        } else {
            a->kind = TK_ATTR_FLOAT;
            a->f = lua_tonumber(L, idx);
        }
        return 1;
    case LUA_TSTRING:
        a->kind = TK_ATTR_STR;
        a->s = kept ? keep(kept, lua_tostring(L, idx)) : lua_tostring(L, idx);
        return 1;
    case LUA_TTABLE: {
        int n = (int)luaL_len(L, idx);
        bool all_int = true;
        for (int i = 1; i <= n; i++) {
            lua_rawgeti(L, idx, i);
            bool number = lua_isnumber(L, -1);
            all_int = all_int && lua_isinteger(L, -1);
            lua_pop(L, 1);
            if (!number)
                return 0;
        }
        size_t ni = sizeof(int64_t) * (size_t)(n ? n : 1), nf = sizeof(double) * (size_t)(n ? n : 1);
        int64_t *ints = kept ? keep_block(kept, ni) : malloc(ni);
        double *floats = kept ? keep_block(kept, nf) : malloc(nf);
        if (!ints || !floats) {
            if (!kept) {
                free(ints);
                free(floats);
            }
            return -1;
        }
        for (int i = 1; i <= n; i++) {
            lua_rawgeti(L, idx, i);
            floats[i - 1] = lua_tonumber(L, -1);
            ints[i - 1] = lua_isinteger(L, -1) ? lua_tointeger(L, -1) : 0;
            lua_pop(L, 1);
        }
        a->kind = all_int ? TK_ATTR_INTS : TK_ATTR_FLOATS;
        a->ints = ints;
        a->floats = floats;
        a->n = n;
        return 1;
    }
    default:
        return 0;
    }
}

/* Attributes of the table at idx (a lowered node's attrs or a loss's). */
static tk_status read_attrs(lua_State *L, int idx, attr_list *out, const char *where,
                            tk_ctx *ctx)
{
    int cap = 0;
    for (lua_pushnil(L); lua_next(L, idx); lua_pop(L, 1))
        cap += lua_type(L, -2) == LUA_TSTRING;
    *out = (attr_list){calloc((size_t)(cap ? cap : 1), sizeof(tk_attr)), 0};
    if (!out->a)
        return out_of_memory(ctx);
    for (lua_pushnil(L); lua_next(L, idx); lua_pop(L, 1)) {
        if (lua_type(L, -2) != LUA_TSTRING)
            continue;
        const char *key = lua_tostring(L, -2);
        int done = to_attr(L, lua_gettop(L), key, &out->a[out->n], NULL);
        if (done <= 0) {
            lua_pop(L, 2);
            attrs_free(out);
            if (done < 0)
                return out_of_memory(ctx);
            return tk_fail(ctx, TK_ERR_INPUT, "%s: attribute '%s' has an unsupported value",
                           where, key);
        }
        out->n++;
    }
    return TK_OK;
}

/* Node i's inputs (indices into the lowered list, 0 the graph input) as graph node ids. */
static int *node_inputs(lua_State *L, int node, const int *ids, int i, int *n_in)
{
    lua_getfield(L, node, "inputs");
    int n = lua_istable(L, -1) ? (int)luaL_len(L, -1) : 0;
    int *inputs = malloc(sizeof(int) * (size_t)(n ? n : 1));
    for (int k = 0; inputs && k < n; k++) {
        lua_rawgeti(L, -1, k + 1);
        int ref = (int)lua_tointeger(L, -1);
        lua_pop(L, 1);
        inputs[k] = ref >= 0 && ref < i ? ids[ref] : -1;
    }
    lua_pop(L, 1);
    *n_in = n;
    return inputs;
}

/* Lower the model into graph nodes after `input`; *output receives the last node. */
static tk_status lower_model(lua_State *L, int pipe, tk_pipeline *p, int input, int *output,
                             tk_ctx *ctx)
{
    lua_getglobal(L, "tk");
    lua_getfield(L, -1, "lower");
    lua_remove(L, -2);
    lua_getfield(L, pipe, "model");
    if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
        tk_fail(ctx, TK_ERR_INPUT, "%s", lua_tostring(L, -1));
        lua_pop(L, 1);
        return TK_ERR_INPUT;
    }
    int list = lua_gettop(L);
    int n = (int)luaL_len(L, list);
    int *ids = malloc(sizeof(int) * (size_t)(n + 1));
    tk_status st = ids ? TK_OK : out_of_memory(ctx);
    if (ids)
        ids[0] = input;
    for (int i = 1; st == TK_OK && i <= n; i++) {
        lua_rawgeti(L, list, i);
        int node = lua_gettop(L), n_in;
        const char *where = str_at(L, node, "where");
        where = where ? where : "model";
        int *inputs = node_inputs(L, node, ids, i, &n_in);
        attr_list al = {NULL, 0};
        lua_getfield(L, node, "attrs");
        if (!inputs)
            st = out_of_memory(ctx);
        else if (lua_istable(L, -1))
            st = read_attrs(L, lua_gettop(L), &al, where, ctx);
        if (st == TK_OK) {
            const char *op = str_at(L, node, "op"), *name = str_at(L, node, "name");
            ids[i] = tk_graph_op(p->graph, op ? op : "?", inputs, n_in, al.a, al.n,
                                 name ? name : "", where);
            if (ids[i] < 0)
                st = TK_ERR_INPUT;
        }
        attrs_free(&al);
        free(inputs);
        lua_settop(L, list);
    }
    if (st == TK_OK) {
        *output = n > 0 ? ids[n] : input;
        tk_graph_set_output(p->graph, *output);
    }
    free(ids);
    lua_settop(L, list - 1);
    return st;
}

static tk_status add_loss(lua_State *L, int pipe, tk_pipeline *p, int output, int target,
                          tk_task task, tk_ctx *ctx)
{
    lua_getfield(L, pipe, "loss");
    int loss = lua_gettop(L);
    const char *where = where_at(L, loss, "loss"), *op = str_at(L, loss, "op");
    attr_list al = {NULL, 0};
    lua_getfield(L, loss, "attrs");
    tk_status st = lua_istable(L, -1) ? read_attrs(L, lua_gettop(L), &al, where, ctx) : TK_OK;
    if (st == TK_OK) {
        int in[2] = {output, target};
        int id = tk_graph_op(p->graph, op ? op : "?", in, 2, al.a, al.n, "loss", where);
        if (id < 0)
            st = TK_ERR_INPUT;
        else
            tk_graph_set_loss(p->graph, id, task);
    }
    attrs_free(&al);
    lua_settop(L, loss - 1);
    return st;
}

/* ---------------------------------------------------------------- optimizer */

/* The options optimizer `type` reads, from the resolved table t (the optimizer or a group,
 * which carries every option resolved). */
static tk_status hparams(lua_State *L, int t, const char *type, tk_optim_hparams *h,
                         const char *where, tk_ctx *ctx)
{
    *h = (tk_optim_hparams){0};
    const char *const *opts = tk_optim_options(type);
    if (!opts)
        return tk_fail(ctx, TK_ERR_INPUT, "%s: optimizer '%s' is not available", where,
                       type ? type : "");
    for (int i = 0; opts[i]; i++) {
        lua_getfield(L, t, opts[i]);
        double v[2] = {0, 0};
        int n = 0;
        if (lua_isboolean(L, -1)) {
            v[n++] = lua_toboolean(L, -1);
        } else if (lua_isnumber(L, -1)) {
            v[n++] = lua_tonumber(L, -1);
        } else if (lua_istable(L, -1)) {
            for (; n < 2 && n < (int)luaL_len(L, -1); n++) {
                lua_rawgeti(L, -1, n + 1);
                v[n] = lua_tonumber(L, -1);
                lua_pop(L, 1);
            }
        }
        lua_pop(L, 1);
        if (n == 0)
            return tk_fail(ctx, TK_ERR_INPUT, "%s: optimizer %s: option '%s' was not given "
                           "(the stdlib resolves every option)", where, type, opts[i]);
        if (tk_optim_set(h, opts[i], v, n, ctx) != TK_OK)
            return TK_ERR_INPUT;
    }
    return TK_OK;
}

/* Patterns: a string or a list of strings at field k, copied into the pipeline. */
static int patterns(lua_State *L, int t, const char *k, tk_pipeline *p, const char ***out)
{
    lua_getfield(L, t, k);
    int n = lua_istable(L, -1) ? (int)luaL_len(L, -1) : lua_isstring(L, -1) ? 1 : 0;
    const char **list = calloc((size_t)(n ? n : 1), sizeof *list);
    for (int i = 0; list && i < n; i++) {
        if (lua_istable(L, -1)) {
            lua_rawgeti(L, -1, i + 1);
            list[i] = keep(p, lua_tostring(L, -1) ? lua_tostring(L, -1) : "");
            lua_pop(L, 1);
        } else {
            list[i] = keep(p, lua_tostring(L, -1));
        }
    }
    lua_pop(L, 1);
    *out = list;
    return list ? n : 0;
}

static tk_status compile_model(lua_State *L, int pipe, tk_pipeline *p, tk_ctx *ctx)
{
    lua_getfield(L, pipe, "optimizer");
    int t = lua_gettop(L);
    const char *type = str_at(L, t, "type");
    tk_optim_spec o = {.type = type, .where = keep(p, where_at(L, t, "optimizer"))};
    tk_status st = hparams(L, t, type, &o.h, o.where, ctx);
    lua_getfield(L, t, "groups");
    int n_groups = lua_istable(L, -1) ? (int)luaL_len(L, -1) : 0;
    tk_group_spec *groups = calloc((size_t)(n_groups ? n_groups : 1), sizeof *groups);
    const char ***group_patterns = calloc((size_t)(n_groups ? n_groups : 1), sizeof(char **));
    for (int k = 0; st == TK_OK && groups && group_patterns && k < n_groups; k++) {
        lua_rawgeti(L, -1, k + 1);
        int gt = lua_gettop(L);
        groups[k].where = keep(p, where_at(L, gt, o.where));
        st = hparams(L, gt, type, &groups[k].h, groups[k].where, ctx);
        groups[k].n_patterns = patterns(L, gt, "match", p, &group_patterns[k]);
        groups[k].patterns = group_patterns[k];
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    o.groups = groups;
    o.n_groups = n_groups;
    const char **freeze = NULL;
    o.n_freeze = patterns(L, t, "freeze", p, &freeze);
    o.freeze = freeze;
    if (st == TK_OK && (!groups || !group_patterns || !freeze))
        st = out_of_memory(ctx);
    if (st == TK_OK) {
        tk_compile_opts co = {.seed = (uint64_t)p->seed, .fuse = true, .train = true};
        st = tk_compile(p->graph, &o, &co, &p->model, ctx);
    }
    for (int k = 0; group_patterns && k < n_groups; k++)
        free(group_patterns[k]);
    free(group_patterns);
    free(groups);
    free(freeze);
    lua_settop(L, t - 1);
    return st;
}

/* ---------------------------------------------------------------- training options */

/* The schedule's own options are every field of its table but type, unit and the stdlib's
 * _fields; their names and meanings are the runtime schedule's business. */
static bool sched_option(lua_State *L, int key_idx)
{
    if (lua_type(L, key_idx) != LUA_TSTRING)
        return false;
    const char *k = lua_tostring(L, key_idx);
    return k[0] != '_' && strcmp(k, "type") != 0 && strcmp(k, "unit") != 0;
}

/* The schedule table as its name and options, with the unit its durations count (steps per
 * epoch or 1): which options are durations, and everything they mean, is the runtime
 * schedule's (runtime/sched/), and every default the stdlib's. */
static tk_status build_sched(lua_State *L, int pipe, tk_pipeline *p, tk_ctx *ctx)
{
    tk_sched_spec *s = &p->sched;
    lua_getfield(L, pipe, "schedule");
    int t = lua_gettop(L);
    tk_status st = TK_OK;
    if (!lua_istable(L, t)) {
        lua_pop(L, 1);
        return TK_OK;
    }
    const char *where = where_at(L, t, "schedule");
    const char *type = str_at(L, t, "type"), *unit = str_at(L, t, "unit");
    type = type ? type : "";
    unit = unit ? unit : "";
    if (!tk_sched_known(type))
        st = tk_fail(ctx, TK_ERR_INPUT, "%s: unknown schedule '%s'", where, type);
    else if (strcmp(unit, "step") == 0)
        s->unit = 1;
    else if (strcmp(unit, "epoch") == 0)
        s->unit = tk_train_steps_per_epoch(&p->train);
    else
        st = tk_fail(ctx, TK_ERR_RUNTIME, "internal error: %s: schedule unit '%s'", where, unit);
    int n = 0;
    for (lua_pushnil(L); st == TK_OK && lua_next(L, t); lua_pop(L, 1))
        n += sched_option(L, -2);
    tk_attr *attrs = st == TK_OK ? keep_block(p, sizeof(tk_attr) * (size_t)(n + 1)) : NULL;
    if (st == TK_OK && !attrs)
        st = out_of_memory(ctx);
    s->n_attrs = 0;
    for (lua_pushnil(L); st == TK_OK && s->n_attrs < n && lua_next(L, t); lua_pop(L, 1)) {
        if (!sched_option(L, -2))
            continue;
        const char *key = lua_tostring(L, -2);
        int done = to_attr(L, lua_gettop(L), keep(p, key), &attrs[s->n_attrs++], p);
        if (done < 0)
            st = out_of_memory(ctx);
        else if (done == 0)
            st = tk_fail(ctx, TK_ERR_INPUT, "%s: schedule option '%s' has an unsupported value",
                         where, key);
    }
    if (st == TK_OK) {
        s->name = keep(p, type);
        s->where = keep(p, where);
        s->attrs = attrs;
        s->total_steps = p->train.epochs * tk_train_steps_per_epoch(&p->train);
        p->train.sched = s;
    }
    lua_settop(L, t - 1);
    return st;
}

/* A monitor record {monitor=, mode=} at field k of table t (false or nil: none). */
static tk_monitor monitor_at(lua_State *L, int t, const char *k, tk_pipeline *p)
{
    tk_monitor m = {NULL, false};
    lua_getfield(L, t, k);
    if (lua_istable(L, -1)) {
        const char *name = str_at(L, -1, "monitor");
        m.name = name ? keep(p, name) : NULL;
        m.maximize = str_is(L, -1, "mode", "max");
    }
    lua_pop(L, 1);
    return m;
}

/* The metrics list, copied into the pipeline. */
static tk_status metric_names(lua_State *L, int pipe, tk_pipeline *p, tk_ctx *ctx)
{
    tk_train_opts *o = &p->train;
    lua_getfield(L, pipe, "metrics");
    int n = lua_istable(L, -1) ? (int)luaL_len(L, -1) : 0;
    p->metrics = calloc((size_t)(n ? n : 1), sizeof *p->metrics);
    for (int i = 1; p->metrics && i <= n; i++) {
        lua_rawgeti(L, -1, i);
        p->metrics[o->n_metrics++] = keep(p, lua_tostring(L, -1) ? lua_tostring(L, -1) : "");
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    o->metrics = p->metrics;
    return p->metrics ? TK_OK : out_of_memory(ctx);
}

/* init = {path, strict, rename = {from = to, ...}}. */
static tk_status init_spec(lua_State *L, int pipe, tk_pipeline *p, tk_ctx *ctx)
{
    tk_status st = TK_OK;
    lua_getfield(L, pipe, "init");
    if (lua_istable(L, -1)) {
        int t = lua_gettop(L);
        const char *path = str_at(L, t, "path");
        p->init_path = keep(p, path ? path : "");
        p->init_strict = flag_at(L, t, "strict");
        lua_getfield(L, t, "rename");
        int r = lua_gettop(L), n = 0;
        for (lua_pushnil(L); lua_istable(L, r) && lua_next(L, r); lua_pop(L, 1))
            n += lua_type(L, -2) == LUA_TSTRING && lua_type(L, -1) == LUA_TSTRING;
        p->renames = calloc((size_t)(n ? n : 1), sizeof *p->renames);
        if (!p->renames)
            st = out_of_memory(ctx);
        for (lua_pushnil(L); p->renames && lua_istable(L, r) && lua_next(L, r); lua_pop(L, 1))
            if (lua_type(L, -2) == LUA_TSTRING && lua_type(L, -1) == LUA_TSTRING)
                p->renames[p->n_renames++] = (tk_rename){keep(p, lua_tostring(L, -2)),
                                                         keep(p, lua_tostring(L, -1))};
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    return st;
}

static tk_status build_policy(lua_State *L, int pipe, tk_pipeline *p, tk_ctx *ctx)
{
    tk_train_opts *o = &p->train;
    o->clip_grad_norm = num_at(L, pipe, "clip_grad_norm");
    o->clip_grad_value = num_at(L, pipe, "clip_grad_value");
    o->accumulate = (int)num_at(L, pipe, "accumulate");
    o->skip_nonfinite = str_is(L, pipe, "on_nonfinite", "skip");
    o->max_skips = (int64_t)num_at(L, pipe, "max_skips");
    o->tensorboard = flag_at(L, pipe, "tensorboard");
    o->log_every = (int64_t)num_at(L, pipe, "log_every");
    o->sync_batch_norm = flag_at(L, pipe, "sync_batch_norm");
    p->threads = (int)num_at(L, pipe, "threads");
    lua_getfield(L, pipe, "save");
    if (lua_istable(L, -1)) {
        int t = lua_gettop(L);
        o->best = monitor_at(L, t, "best", p);
        o->save_every = (int64_t)num_at(L, t, "every");
        o->keep = (int)num_at(L, t, "keep");
        o->save_last = flag_at(L, t, "last");
    }
    lua_pop(L, 1);
    lua_getfield(L, pipe, "early_stop");
    if (lua_istable(L, -1)) {
        int t = lua_gettop(L);
        o->stop = monitor_at(L, pipe, "early_stop", p);
        o->patience = (int64_t)num_at(L, t, "patience");
        o->min_delta = num_at(L, t, "min_delta");
        o->restore_best = flag_at(L, t, "restore_best");
    }
    lua_pop(L, 1);
    tk_status st = metric_names(L, pipe, p, ctx);
    return st == TK_OK ? init_spec(L, pipe, p, ctx) : st;
}

/* ---------------------------------------------------------------- pipeline */

tk_status tk_pipeline_build(lua_State *L, tk_pipeline *p, tk_ctx *ctx)
{
    memset(p, 0, sizeof *p);
    int pipe = lua_gettop(L);
    const char *name = str_at(L, pipe, "name");
    p->name = strdup(name ? name : "");
    p->seed = (int64_t)num_at(L, pipe, "seed");
    lua_getfield(L, pipe, "loss");
    const char *task_name = str_at(L, -1, "task");
    tk_task task;
    bool known = tk_task_parse(task_name, &task);
    lua_pop(L, 1);
    if (!p->name)
        return out_of_memory(ctx);
    if (!known)
        return tk_fail(ctx, TK_ERR_INPUT, "the loss declares no task ('%s': the stdlib's loss "
                       "constructors set classification, regression or multilabel)",
                       task_name ? task_name : "");
    const bool float_labels = task != TK_TASK_CLASSIFICATION;
    tk_status st = tk_spec_data(L, pipe, p, float_labels, ctx);
    if (st != TK_OK)
        return st;
    lua_getfield(L, pipe, "data");
    int batch = (int)num_at(L, -1, "batch_size");
    p->train = (tk_train_opts){
        .train = p->views[TRAIN], .valid = p->views[VALID], .test = p->views[TEST],
        .batch_size = batch, .shuffle = flag_at(L, -1, "shuffle"),
        .drop_last = flag_at(L, -1, "drop_last"), .epochs = (int64_t)num_at(L, pipe, "epochs"),
        .seed = (uint64_t)p->seed};
    lua_pop(L, 1);
    st = build_policy(L, pipe, p, ctx);
    if (st == TK_OK)
        st = build_sched(L, pipe, p, ctx);
    if (st != TK_OK)
        return st;
    tk_dataset *train = tk_view_dataset(p->views[TRAIN]);
    p->graph = tk_graph_new(ctx);
    if (!p->graph)
        return out_of_memory(ctx);
    tk_graph_set_batch(p->graph, batch);
    tk_shape target_shape = {0, {0}};
    if (float_labels)
        target_shape = (tk_shape){1, {tk_dataset_label_width(train)}};
    int input = tk_graph_input(p->graph, tk_dataset_sample_shape(train));
    int target = tk_graph_target(p->graph, target_shape);
    if (input < 0 || target < 0)
        return TK_ERR_INPUT;
    int output = -1;
    st = lower_model(L, pipe, p, input, &output, ctx);
    if (st == TK_OK)
        st = add_loss(L, pipe, p, output, target, task, ctx);
    if (st == TK_OK)
        st = compile_model(L, pipe, p, ctx);
    if (st == TK_OK)
        st = tk_preprocess_record(L, pipe, p, ctx);
    if (st == TK_OK)
        st = tk_check_data(p->model, &p->train, ctx);
    lua_settop(L, pipe);
    return st;
}

void tk_pipeline_free(tk_pipeline *p)
{
    tk_model_free(p->model);
    tk_graph_free(p->graph);
    for (int s = 0; s < 3; s++) {
        tk_view_free(p->views[s]);
        tk_dataset_free(p->datasets[s]);
    }
    while (p->strings) {
        char *next;
        memcpy(&next, p->strings, sizeof(char *));
        free(p->strings);
        p->strings = next;
    }
    free(p->metrics);
    free(p->renames);
    free(p->data_note);
    free(p->name);
    memset(p, 0, sizeof *p);
}
