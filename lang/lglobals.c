/* lglobals.c - the REPL's globals beside P: model, data and opt (plain tables describing the
 * compiled model, the splits and the optimizer; printing model or opt shows its report
 * table; opt.groups[i].lr reads and changes an lr live) and help(). Not here: P itself
 * (lmodule.c). */
#include "lmodule.h"

#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>

typedef tk_lpipeline pipeline;

/* ---------------------------------------------------------------- model, data, opt */

static void set_shape(lua_State *L, const char *key, tk_shape s)
{
    lua_createtable(L, s.ndim, 0);
    for (int i = 0; i < s.ndim; i++) {
        lua_pushinteger(L, s.d[i]);
        lua_rawseti(L, -2, i + 1);
    }
    lua_setfield(L, -2, key);
}

/* A table whose tostring is a report (model: the layer table, opt: the group table). */
static int report_tostring(lua_State *L)
{
    pipeline *p = luaL_checkudata(L, lua_upvalueindex(2), TK_LPIPELINE);
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    if (!f)
        return luaL_error(L, "out of memory");
    if (lua_toboolean(L, lua_upvalueindex(1)))
        tk_print_groups(f, p->s->p.model);
    else
        tk_print_layers(f, p->s->p.model);
    fclose(f);
    lua_pushlstring(L, text, len && text[len - 1] == '\n' ? len - 1 : len);
    free(text);
    return 1;
}

static void set_report_meta(lua_State *L, bool groups, int pidx)
{
    lua_newtable(L);
    lua_pushboolean(L, groups);
    lua_pushvalue(L, pidx);
    lua_pushcclosure(L, report_tostring, 2);
    lua_setfield(L, -2, "__tostring");
    lua_setmetatable(L, -2);
}

static void push_model(lua_State *L, const pipeline *p, int spec, int pidx)
{
    const tk_model *m = p->s->p.model;
    lua_newtable(L);
    lua_newtable(L);
    for (int i = 0; i < tk_model_layer_count(m); i++) {
        tk_layer_info l = tk_model_layer(m, i);
        lua_newtable(L);
        lua_pushstring(L, l.name);
        lua_setfield(L, -2, "name");
        lua_pushstring(L, l.type);
        lua_setfield(L, -2, "type");
        set_shape(L, "shape", l.shape);
        lua_pushinteger(L, l.params);
        lua_setfield(L, -2, "params");
        lua_pushstring(L, l.where);
        lua_setfield(L, -2, "where");
        lua_rawseti(L, -2, i + 1);
    }
    lua_setfield(L, -2, "layers");
    set_shape(L, "input_shape", tk_lp_input_shape(p));
    set_shape(L, "output_shape", tk_model_output_shape(m));
    lua_pushinteger(L, tk_model_param_count(m, false));
    lua_setfield(L, -2, "param_count");
    lua_getfield(L, spec, "model");
    lua_setfield(L, -2, "spec");
    set_report_meta(L, false, pidx);
}

static void push_data(lua_State *L, const pipeline *p, int spec)
{
    const tk_pipeline *pl = &p->s->p;
    lua_newtable(L);
    for (int k = 0; k < 3; k++) {
        if (!pl->views[k])
            continue;
        const tk_dataset *ds = tk_view_dataset(pl->views[k]);
        lua_newtable(L);
        lua_pushinteger(L, tk_view_len(pl->views[k]));
        lua_setfield(L, -2, "size");
        lua_pushinteger(L, tk_stepper_batches(p->st, k));
        lua_setfield(L, -2, "batches");
        set_shape(L, "sample_shape", tk_dataset_sample_shape(ds));
        lua_pushstring(L, tk_dataset_source(ds));
        lua_setfield(L, -2, "source");
        lua_setfield(L, -2, tk_split_names[k]);
    }
    lua_pushinteger(L, pl->train.batch_size);
    lua_setfield(L, -2, "batch_size");
    const tk_dataset *ds = tk_lp_train(p);
    if (tk_lp_classification(p)) {
        int c = tk_dataset_num_classes(ds);
        lua_createtable(L, c, 0);
        for (int i = 0; i < c; i++) {
            const char *name = tk_dataset_class_name(ds, i);
            if (name)
                lua_pushstring(L, name);
            else
                lua_pushinteger(L, i);
            lua_rawseti(L, -2, i + 1);
        }
        lua_setfield(L, -2, "classes");
    }
    lua_getfield(L, spec, "data");
    lua_setfield(L, -2, "spec");
}

/* opt.groups[i] (group i - 1 of the group table): its settings, and a live lr. */
static int group_index(lua_State *L)
{
    const char *k = luaL_checkstring(L, 2);
    if (strcmp(k, "lr") == 0) {
        pipeline *p = luaL_checkudata(L, lua_upvalueindex(3), TK_LPIPELINE);
        int n = tk_model_group_count(p->s->p.model);
        double lrs[n];
        tk_stepper_lrs(p->st, lrs);
        lua_pushnumber(L, lrs[lua_tointeger(L, lua_upvalueindex(1))]);
        return 1;
    }
    lua_getfield(L, lua_upvalueindex(2), k);
    return 1;
}

static int group_newindex(lua_State *L)
{
    const char *k = luaL_checkstring(L, 2);
    if (strcmp(k, "lr") != 0)
        return luaL_error(L, "only lr changes live ('%s' is compiled into the model: edit the "
                          "script)", k);
    pipeline *p = luaL_checkudata(L, lua_upvalueindex(3), TK_LPIPELINE);
    tk_lp_set_lr(L, p, lua_tointeger(L, lua_upvalueindex(1)), 3);
    return 0;
}

static int group_tostring(lua_State *L)
{
    pipeline *p = luaL_checkudata(L, lua_upvalueindex(3), TK_LPIPELINE);
    int g = (int)lua_tointeger(L, lua_upvalueindex(1));
    int n = tk_model_group_count(p->s->p.model);
    double lrs[n];
    tk_stepper_lrs(p->st, lrs);
    tk_group_info gi = tk_model_group(p->s->p.model, g);
    char text[512];
    snprintf(text, sizeof text, "group %d %s: lr %g, weight_decay %g, %d tensors", g,
             gi.patterns, lrs[g], gi.h.weight_decay, gi.tensors);
    lua_pushstring(L, text);
    return 1;
}

static void push_opt(lua_State *L, const pipeline *p, int spec, int pidx)
{
    static const char *const group_fields[] = {"lr", "group", "patterns", "tensors",
                                               "elements", "weight_decay", NULL};
    const tk_model *m = p->s->p.model;
    lua_newtable(L);
    lua_pushstring(L, tk_model_optim_name(m));
    lua_setfield(L, -2, "kind");
    lua_newtable(L);
    for (int g = 0; g < tk_model_group_count(m); g++) {
        tk_group_info gi = tk_model_group(m, g);
        lua_newtable(L);              /* the proxy */
        lua_newtable(L);              /* its metatable */
        lua_pushinteger(L, g);
        lua_newtable(L);              /* the settings */
        lua_pushinteger(L, g);
        lua_setfield(L, -2, "group");
        lua_pushstring(L, gi.patterns);
        lua_setfield(L, -2, "patterns");
        lua_pushinteger(L, gi.tensors);
        lua_setfield(L, -2, "tensors");
        lua_pushinteger(L, gi.elements);
        lua_setfield(L, -2, "elements");
        lua_pushnumber(L, gi.h.weight_decay);
        lua_setfield(L, -2, "weight_decay");
        lua_pushvalue(L, pidx);
        lua_pushvalue(L, -3);
        lua_pushvalue(L, -3);
        lua_pushvalue(L, -3);
        lua_pushvalue(L, -3);
        lua_pushvalue(L, -3);
        lua_pushvalue(L, -3);
        lua_pushcclosure(L, group_tostring, 3);
        lua_setfield(L, -8, "__tostring");
        lua_pushcclosure(L, group_index, 3);
        lua_setfield(L, -5, "__index");
        lua_pushcclosure(L, group_newindex, 3);
        lua_setfield(L, -2, "__newindex");
        tk_set_fields(L, -1, group_fields);
        lua_setmetatable(L, -2);
        lua_rawseti(L, -2, g + 1);
    }
    lua_setfield(L, -2, "groups");
    lua_getfield(L, spec, "optimizer");
    lua_setfield(L, -2, "spec");
    set_report_meta(L, true, pidx);
}

static const char help_text[] =
    "P is the compiled pipeline; model, data and opt describe it (print them).\n"
    "  P:layers()  P:groups()            the layer table; the parameter groups and lrs now\n"
    "  P.params[name]  P:param(name)     a parameter or buffer as a live tensor view\n"
    "  P.grads[name]   P:grad(name)      its gradient after the last step\n"
    "  t.shape t.dtype #t t[i] t:narrow(dim, start, len)   (1-based, like Lua)\n"
    "  t:mean() :std() :min() :max() :sum() :norm() :argmax() :clone() :totable()\n"
    "  x, y = P:batch(\"train\", i)          batch i of a split, in order\n"
    "  out, loss = P:forward(x [, y])    the model in eval mode (any number of rows)\n"
    "  ids, probs = P:predict(x)         classes (0-based) and softmax (+ names)\n"
    "  P:transform(x)                    raw features scaled/normalised as in training\n"
    "  loss, k = P:step(n)               n optimizer steps: their mean loss, updates made\n"
    "  P:fit{epochs = k}                 k epochs with valid passes; Ctrl-C stops at a step\n"
    "  P:evaluate(\"valid\")               {loss=, accuracy=, ...} of a split\n"
    "  P:lr()  P:set_lr(g, lr)  P:set_lr(lr)   lrs now; fix group g's lr (g as in\n"
    "      P:groups(), from 0; nil: back to the schedule); or opt.groups[g + 1].lr = lr\n"
    "  P:save(path)  P:load(path)        weights (.safetensors; a run directory loads)\n"
    "  P:state()                         epoch, batch, step so far\n"
    "  tensor{{5.1, 3.5, 1.4, 0.2}}      a tensor from nested lists (\"int64\" as 2nd arg)\n"
    "=expr or a bare expression prints its values; Tab completes fields (P:, model., tk.nn.).\n";

static int l_help(lua_State *L)
{
    (void)L;
    fputs(help_text, stdout);
    fflush(stdout);
    return 0;
}

void tk_lglobals_open(lua_State *L, int pidx, int spec)
{
    const pipeline *p = lua_touserdata(L, pidx);
    push_model(L, p, spec, pidx);
    lua_setglobal(L, "model");
    push_data(L, p, spec);
    lua_setglobal(L, "data");
    push_opt(L, p, spec, pidx);
    lua_setglobal(L, "opt");
    lua_pushcfunction(L, l_help);
    lua_setglobal(L, "help");
}
