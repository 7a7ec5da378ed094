/* spec.c - turns the validated pipeline table (stdlib/tk) into runtime calls: datasets,
 * splits and normalisation, the lowered node list into a graph, the optimizer spec, compile.
 * It knows the table formats of the stdlib, never an op's attributes: those pass through
 * generically, so a new op needs no change here. */
#include "lang.h"

#include <lauxlib.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

enum { TRAIN, VALID, TEST };
static const char *const split_names[3] = {"train", "valid", "test"};

/* ---------------------------------------------------------------- table access */

static double num_field(lua_State *L, int t, const char *k, double dflt)
{
    lua_getfield(L, t, k);
    double v = lua_isnumber(L, -1) ? lua_tonumber(L, -1) : dflt;
    lua_pop(L, 1);
    return v;
}

static bool bool_field(lua_State *L, int t, const char *k, bool dflt)
{
    lua_getfield(L, t, k);
    bool v = lua_isboolean(L, -1) ? lua_toboolean(L, -1) : dflt;
    lua_pop(L, 1);
    return v;
}

/* The string stays valid while the table holds it. */
static const char *str_field(lua_State *L, int t, const char *k, const char *dflt)
{
    lua_getfield(L, t, k);
    const char *v = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : dflt;
    lua_pop(L, 1);
    return v;
}

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

/* ---------------------------------------------------------------- data */

static tk_colref colref_at(lua_State *L, int idx)
{
    tk_colref c = {NULL, 0};
    if (lua_isinteger(L, idx))
        c.index = (int)lua_tointeger(L, idx);
    else
        c.name = lua_tostring(L, idx);
    return c;
}

/* A column list field: a single name/index or a sequence of them. */
static int colrefs(lua_State *L, int t, const char *k, tk_colref *out, int cap)
{
    lua_getfield(L, t, k);
    int n = 0;
    if (lua_istable(L, -1)) {
        int len = (int)luaL_len(L, -1);
        for (int i = 1; i <= len && n < cap; i++) {
            lua_rawgeti(L, -1, i);
            out[n++] = colref_at(L, -1);
            lua_pop(L, 1); /* strings stay referenced by the spec table */
        }
    } else if (!lua_isnil(L, -1)) {
        out[n++] = colref_at(L, -1);
    }
    lua_pop(L, 1);
    return n;
}

static char delimiter(lua_State *L, int t)
{
    const char *d = str_field(L, t, "delimiter", ",");
    return d[0] ? d[0] : ',';
}

static tk_status load_csv(lua_State *L, int t, bool regression, tk_dataset **out, tk_ctx *ctx)
{
    enum { MAXCOLS = 4096 };
    static tk_colref label[MAXCOLS], features[MAXCOLS];
    tk_csv_opts o = {.path = str_field(L, t, "path", ""), .delimiter = delimiter(L, t),
                     .skip_rows = (int)num_field(L, t, "skip_rows", 0),
                     .header = bool_field(L, t, "header", false), .regression = regression};
    o.n_features = colrefs(L, t, "features", features, MAXCOLS);
    o.features = features;
    lua_getfield(L, t, "label");
    if (lua_istable(L, -1) && str_field(L, -1, "_kind", NULL) &&
        strcmp(str_field(L, -1, "_kind", ""), "data.csv") == 0) {
        int lt = lua_gettop(L);
        o.label_path = str_field(L, lt, "path", "");
        o.label_delimiter = delimiter(L, lt);
        o.label_skip_rows = (int)num_field(L, lt, "skip_rows", 0);
        o.label_header = bool_field(L, lt, "header", false);
        o.n_label = colrefs(L, lt, "label", label, MAXCOLS);
    } else {
        o.n_label = colrefs(L, t, "label", label, MAXCOLS);
    }
    o.label = label;
    tk_status st = tk_dataset_csv(&o, out, ctx);
    lua_pop(L, 1);
    return st;
}

static tk_status load_dataset(lua_State *L, int t, bool regression, tk_dataset **out,
                              tk_ctx *ctx)
{
    const char *kind = str_field(L, t, "_kind", "");
    if (strcmp(kind, "data.csv") == 0)
        return load_csv(L, t, regression, out, ctx);
    if (strcmp(kind, "data.idx") == 0) {
        tk_idx_opts o = {str_field(L, t, "images", ""), str_field(L, t, "labels", "")};
        return tk_dataset_idx(&o, out, ctx);
    }
    if (strcmp(kind, "data.images") == 0) {
        tk_images_opts o = {.root = str_field(L, t, "root", ""),
                            .channels = (int)num_field(L, t, "channels", 3)};
        lua_getfield(L, t, "size");
        if (lua_istable(L, -1)) {
            lua_rawgeti(L, -1, 1);
            lua_rawgeti(L, -2, 2);
            o.height = (int)lua_tointeger(L, -2);
            o.width = (int)lua_tointeger(L, -1);
            lua_pop(L, 2);
        }
        lua_pop(L, 1);
        o.list = str_field(L, t, "list", NULL);
        o.header = bool_field(L, t, "header", true);
        lua_getfield(L, t, "path_column");
        o.path_column = colref_at(L, -1);
        lua_getfield(L, t, "label");
        o.label = colref_at(L, -1);
        lua_pop(L, 2);
        return tk_dataset_images(&o, out, ctx);
    }
    if (strcmp(kind, "data.npy") == 0) {
        tk_npy_opts o = {str_field(L, t, "x", ""), str_field(L, t, "y", NULL),
                         str_field(L, t, "npz", NULL), regression};
        return tk_dataset_npy(&o, out, ctx);
    }
    return tk_fail(ctx, TK_ERR_INPUT, "%s: unknown dataset kind '%s'",
                   str_field(L, t, "_where", "data"), kind);
}

static int number_list(lua_State *L, int idx, double *out, int cap)
{
    if (lua_isnumber(L, idx)) {
        out[0] = lua_tonumber(L, idx);
        return 1;
    }
    int n = 0;
    if (lua_istable(L, idx))
        for (int i = 1; i <= (int)luaL_len(L, idx) && n < cap; i++, n++) {
            lua_rawgeti(L, idx, i);
            out[n] = lua_tonumber(L, -1);
            lua_pop(L, 1);
        }
    return n;
}

/* Apply the dataset spec's scale/normalize to view v; statistics come from `stats`. */
static tk_status normalize(lua_State *L, int t, tk_view *v, const tk_view *stats, tk_ctx *ctx)
{
    enum { MAXSTATS = 4096 };
    static double mean[MAXSTATS], std[MAXSTATS];
    tk_norm_opts o = {.scale = num_field(L, t, "scale", 1.0), .kind = TK_NORM_NONE};
    lua_getfield(L, t, "normalize");
    if (lua_type(L, -1) == LUA_TSTRING) {
        o.kind = strcmp(lua_tostring(L, -1), "minmax") == 0 ? TK_NORM_MINMAX : TK_NORM_STANDARD;
    } else if (lua_istable(L, -1)) {
        int nt = lua_gettop(L);
        o.kind = TK_NORM_FIXED;
        lua_getfield(L, nt, "mean");
        int nm = number_list(L, -1, mean, MAXSTATS);
        lua_getfield(L, nt, "std");
        int ns = number_list(L, -1, std, MAXSTATS);
        lua_pop(L, 2);
        if (nm != ns) {
            lua_pop(L, 1);
            return tk_fail(ctx, TK_ERR_INPUT, "%s: normalize: %d means but %d stds",
                           str_field(L, t, "_where", "data"), nm, ns);
        }
        o.mean = mean;
        o.std = std;
        o.n_stats = nm;
    }
    lua_pop(L, 1);
    return tk_view_normalize(v, &o, stats, ctx);
}

/* The train source's augment list onto the train view. A valid or test source may not have
 * one: only training samples are augmented. */
static tk_status augment(lua_State *L, const int *spec, tk_view *train, tk_ctx *ctx)
{
    for (int s = VALID; s <= TEST; s++) {
        if (!spec[s])
            continue;
        lua_getfield(L, spec[s], "augment");
        bool has = !lua_isnil(L, -1);
        lua_pop(L, 1);
        if (has)
            return tk_fail(ctx, TK_ERR_INPUT, "%s: augment belongs on the train source (%s "
                           "samples are never augmented)", str_field(L, spec[s], "_where",
                           "data"), split_names[s]);
    }
    tk_augment ops[TK_MAX_AUGMENT];
    double v[4];
    lua_getfield(L, spec[TRAIN], "augment");
    int list = lua_gettop(L);
    int n = lua_istable(L, list) ? (int)luaL_len(L, list) : 0;
    for (int i = 0; i < n && i < TK_MAX_AUGMENT; i++) {
        lua_rawgeti(L, list, i + 1);
        int t = lua_gettop(L);
        const char *kind = str_field(L, t, "_kind", "");
        tk_augment *op = &ops[i];
        *op = (tk_augment){.fill = num_field(L, t, "fill", 0)};
        if (strcmp(kind, "data.random_crop") == 0) {
            op->kind = TK_AUG_RANDOM_CROP;
            lua_getfield(L, t, "size");
            for (int k = 0, m = number_list(L, -1, v, 2); k < m; k++)
                op->size[k] = (int64_t)v[k];
            lua_getfield(L, t, "padding");
            for (int k = 0, m = number_list(L, -1, v, 4); k < m; k++)
                op->pad[k] = (int64_t)v[k];
            lua_pop(L, 2);
        } else if (strcmp(kind, "data.random_flip") == 0) {
            op->kind = TK_AUG_RANDOM_FLIP;
            op->vertical = !bool_field(L, t, "horizontal", true);
            op->p = num_field(L, t, "p", 0.5);
        } else {
            op->kind = TK_AUG_RANDOM_AFFINE;
            lua_getfield(L, t, "translate");
            number_list(L, -1, op->translate, 2);
            lua_pop(L, 1);
        }
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    tk_status st = tk_view_augment(train, ops, n, ctx);
    if (st) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", tk_errmsg(ctx));
        tk_fail(ctx, st, "%s: %s", str_field(L, spec[TRAIN], "_where", "data.train"), msg);
    }
    return st;
}

/* CRC-32 of a file's bytes, so note.log pins the exact data a run saw (0 if unreadable). */
static unsigned long file_crc(const char *path)
{
    FILE *f = fopen(path, "rb");
    unsigned long crc = crc32(0L, Z_NULL, 0);
    unsigned char buf[1 << 16];
    size_t n;
    if (!f)
        return 0;
    while ((n = fread(buf, 1, sizeof buf, f)) > 0)
        crc = crc32(crc, buf, (uInt)n);
    fclose(f);
    return crc;
}

/* One line per split: samples, shape, and every file its dataset spec (at index t) read with
 * its CRC-32: IDX images and labels, a CSV and its separate label CSV. */
static void note_split(lua_State *L, tk_pipeline *p, int s, int t)
{
    tk_view *v = p->views[s];
    if (!v)
        return;
    const char *files[2] = {str_field(L, t, "images", NULL), str_field(L, t, "labels", NULL)};
    if (!files[0]) {
        files[0] = str_field(L, t, "path", NULL);
        lua_getfield(L, t, "label");
        files[1] = lua_istable(L, -1) ? str_field(L, -1, "path", NULL) : NULL;
        lua_pop(L, 1);
    }
    if (!files[0]) /* a source named otherwise (an image folder): what the dataset says */
        files[0] = tk_dataset_source(tk_view_dataset(v));
    tk_shape shape = tk_dataset_sample_shape(tk_view_dataset(v));
    char sh[96];
    size_t old = p->data_note ? strlen(p->data_note) : 0, cap = old + 256;
    for (int k = 0; k < 2; k++)
        cap += files[k] ? strlen(files[k]) + 32 : 0;
    char *note = realloc(p->data_note, cap);
    if (!note)
        return;
    size_t used = old + (size_t)snprintf(note + old, cap - old, "%-5s  %7lld samples  %s ",
                                         split_names[s], (long long)tk_view_len(v),
                                         tk_shape_str(&shape, sh, sizeof sh));
    for (int k = 0; k < 2; k++)
        if (files[k] && *files[k])
            used += (size_t)snprintf(note + used, cap - used, "%s %s (crc32 %08lx)",
                                     k ? "," : "", files[k], file_crc(files[k]));
    snprintf(note + used, cap - used, "\n");
    p->data_note = note;
}

/* Split s's samples per class (class labels only), as a line after its note_split line:
 * "classes  tshirt 36, trouser 40, ..." (names when the labels have them, else ids). */
static void note_classes(tk_pipeline *p, int s)
{
    enum { SHOWN = 20 };
    tk_view *v = p->views[s];
    tk_dataset *ds = v ? tk_view_dataset(v) : NULL;
    int k = ds ? tk_dataset_num_classes(ds) : 0;
    if (k <= 0 || tk_dataset_label_width(ds) != 1)
        return;
    int64_t *count = calloc((size_t)k, sizeof *count);
    size_t old = p->data_note ? strlen(p->data_note) : 0, cap = old + 64 + 72 * SHOWN;
    char *note = count ? realloc(p->data_note, cap) : NULL;
    if (!note) {
        free(count);
        return;
    }
    p->data_note = note;
    for (int64_t i = 0; i < tk_view_len(v); i++) {
        float id = tk_dataset_label(ds, tk_view_index(v, i), 0);
        if (id >= 0 && id < (float)k)
            count[(int)id]++;
    }
    size_t used = old + (size_t)snprintf(note + old, cap - old, "       classes ");
    for (int c = 0; c < k && c < SHOWN; c++) {
        const char *name = tk_dataset_class_name(ds, c);
        const char *sep = c ? ", " : " ";
        if (name)
            used += (size_t)snprintf(note + used, cap - used, "%s%.40s %lld", sep, name,
                                     (long long)count[c]);
        else
            used += (size_t)snprintf(note + used, cap - used, "%s%d: %lld", sep, c,
                                     (long long)count[c]);
    }
    free(count);
    if (k > SHOWN)
        snprintf(note + used, cap - used, ", ... (%d classes)\n", k);
    else
        snprintf(note + used, cap - used, "\n");
}

static tk_status build_data(lua_State *L, int pipe, tk_pipeline *p, bool regression,
                            tk_ctx *ctx)
{
    lua_getfield(L, pipe, "data");
    int data = lua_gettop(L);
    int spec[3];
    double fractions[2];
    int split_of[2], n_splits = 0;
    tk_status st = TK_OK;
    for (int s = TRAIN; s <= TEST; s++) {
        lua_getfield(L, data, split_names[s]);
        spec[s] = lua_istable(L, -1) ? lua_gettop(L) : 0;
        if (!spec[s])
            continue;
        if (strcmp(str_field(L, spec[s], "_kind", ""), "data.split") == 0) {
            fractions[n_splits] = num_field(L, spec[s], "fraction", 0.1);
            split_of[n_splits++] = s;
        } else if (st == TK_OK) {
            st = load_dataset(L, spec[s], regression, &p->datasets[s], ctx);
            if (st == TK_OK && !(p->views[s] = tk_view_all(p->datasets[s])))
                st = tk_fail(ctx, TK_ERR_RUNTIME, "out of memory");
        }
    }
    if (st == TK_OK && n_splits > 0) {
        tk_view *parts[2] = {NULL, NULL};
        st = tk_view_split(p->views[TRAIN], fractions, n_splits, (uint64_t)p->seed, parts, ctx);
        for (int k = 0; k < n_splits; k++)
            p->views[split_of[k]] = parts[k];
    }
    /* Train statistics normalise every split; a split carved from train uses train's spec. */
    for (int s = TRAIN; st == TK_OK && s <= TEST; s++) {
        if (!p->views[s])
            continue;
        int own = p->datasets[s] ? spec[s] : spec[TRAIN];
        st = normalize(L, own, p->views[s], p->views[TRAIN], ctx);
        note_split(L, p, s, own);
        note_classes(p, s);
    }
    if (st == TK_OK && spec[TRAIN] && p->views[TRAIN])
        st = augment(L, spec, p->views[TRAIN], ctx);
    lua_settop(L, data - 1);
    return st;
}

/* ---------------------------------------------------------------- model */

typedef struct {
    tk_attr attrs[32];
    int64_t ints[32][TK_MAX_DIMS * 2];
    double floats[32][256];
} attr_buf;

/* Convert one Lua value into an attribute; false if the value has no attribute form. */
static bool to_attr(lua_State *L, int idx, const char *key, tk_attr *a, int64_t *ints,
                    double *floats)
{
    *a = (tk_attr){.key = key};
    switch (lua_type(L, idx)) {
    case LUA_TBOOLEAN:
        a->kind = TK_ATTR_INT;
        a->i = lua_toboolean(L, idx);
        return true;
    case LUA_TNUMBER:
        if (lua_isinteger(L, idx)) {
            a->kind = TK_ATTR_INT;
            a->i = lua_tointeger(L, idx);
        } else {
            a->kind = TK_ATTR_FLOAT;
            a->f = lua_tonumber(L, idx);
        }
        return true;
    case LUA_TSTRING:
        a->kind = TK_ATTR_STR;
        a->s = lua_tostring(L, idx);
        return true;
    case LUA_TTABLE: {
        int n = (int)luaL_len(L, idx);
        bool all_int = true;
        if (n > 256)
            return false;
        for (int i = 1; i <= n; i++) {
            lua_rawgeti(L, idx, i);
            if (!lua_isnumber(L, -1)) {
                lua_pop(L, 1);
                return false;
            }
            all_int = all_int && lua_isinteger(L, -1) && i <= TK_MAX_DIMS * 2;
            floats[i - 1] = lua_tonumber(L, -1);
            if (i <= TK_MAX_DIMS * 2)
                ints[i - 1] = lua_isinteger(L, -1) ? lua_tointeger(L, -1) : 0;
            lua_pop(L, 1);
        }
        a->kind = all_int ? TK_ATTR_INTS : TK_ATTR_FLOATS;
        a->ints = ints;
        a->floats = floats;
        a->n = n;
        return true;
    }
    default:
        return false;
    }
}

/* Attributes of the table at idx (a lowered node's attrs or a loss's). */
static int read_attrs(lua_State *L, int idx, attr_buf *b, const char *where, tk_ctx *ctx)
{
    int n = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        if (lua_type(L, -2) == LUA_TSTRING && n < 32) {
            const char *key = lua_tostring(L, -2);
            if (!to_attr(L, lua_gettop(L), key, &b->attrs[n], b->ints[n], b->floats[n])) {
                lua_pop(L, 2);
                tk_fail(ctx, TK_ERR_INPUT, "%s: attribute '%s' has an unsupported value", where,
                        key);
                return -1;
            }
            n++;
        }
        lua_pop(L, 1);
    }
    return n;
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
    static attr_buf ab;
    tk_status st = ids ? TK_OK : tk_fail(ctx, TK_ERR_RUNTIME, "out of memory");
    if (ids)
        ids[0] = input;
    for (int i = 1; st == TK_OK && i <= n; i++) {
        lua_rawgeti(L, list, i);
        int node = lua_gettop(L);
        const char *where = str_field(L, node, "where", "model");
        int inputs[8], n_in = 0;
        lua_getfield(L, node, "inputs");
        for (int k = 1; k <= (int)luaL_len(L, -1) && n_in < 8; k++) {
            lua_rawgeti(L, -1, k);
            int ref = (int)lua_tointeger(L, -1);
            lua_pop(L, 1);
            inputs[n_in++] = ref >= 0 && ref < i ? ids[ref] : -1;
        }
        lua_pop(L, 1);
        lua_getfield(L, node, "attrs");
        int n_attrs = lua_istable(L, -1) ? read_attrs(L, lua_gettop(L), &ab, where, ctx) : 0;
        if (n_attrs < 0) {
            st = TK_ERR_INPUT;
        } else {
            ids[i] = tk_graph_op(p->graph, str_field(L, node, "op", "?"), inputs, n_in, ab.attrs,
                                 n_attrs, str_field(L, node, "name", ""), where);
            if (ids[i] < 0)
                st = TK_ERR_INPUT;
        }
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
                          tk_ctx *ctx)
{
    static attr_buf ab;
    lua_getfield(L, pipe, "loss");
    int loss = lua_gettop(L);
    const char *where = str_field(L, loss, "_where", "loss");
    lua_getfield(L, loss, "attrs");
    int n = lua_istable(L, -1) ? read_attrs(L, lua_gettop(L), &ab, where, ctx) : 0;
    tk_status st = n < 0 ? TK_ERR_INPUT : TK_OK;
    if (st == TK_OK) {
        int in[2] = {output, target};
        int id = tk_graph_op(p->graph, str_field(L, loss, "op", "?"), in, 2, ab.attrs, n, "loss",
                             where);
        if (id < 0)
            st = TK_ERR_INPUT;
        else
            tk_graph_set_loss(p->graph, id);
    }
    lua_settop(L, loss - 1);
    return st;
}

/* ---------------------------------------------------------------- optimizer */

static tk_optim_hparams hparams(lua_State *L, int t)
{
    tk_optim_hparams h = {0};
    h.lr = num_field(L, t, "lr", 1e-3);
    h.weight_decay = num_field(L, t, "weight_decay", 0);
    h.momentum = num_field(L, t, "momentum", 0);
    h.dampening = num_field(L, t, "dampening", 0);
    h.nesterov = bool_field(L, t, "nesterov", false);
    h.eps = num_field(L, t, "eps", 1e-8);
    h.amsgrad = bool_field(L, t, "amsgrad", false);
    h.alpha = num_field(L, t, "alpha", 0.99);
    h.centered = bool_field(L, t, "centered", false);
    h.lr_decay = num_field(L, t, "lr_decay", 0);
    h.initial_accumulator_value = num_field(L, t, "initial_accumulator_value", 0);
    double betas[2] = {0.9, 0.999};
    lua_getfield(L, t, "betas");
    number_list(L, lua_gettop(L), betas, 2);
    lua_pop(L, 1);
    h.beta1 = betas[0];
    h.beta2 = betas[1];
    return h;
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

static const struct {
    const char *name;
    tk_optim_kind kind;
} optimizers[] = {{"sgd", TK_OPT_SGD}, {"adam", TK_OPT_ADAM}, {"adamw", TK_OPT_ADAMW},
                  {"rmsprop", TK_OPT_RMSPROP}, {"adagrad", TK_OPT_ADAGRAD}};

static tk_status compile_model(lua_State *L, int pipe, tk_pipeline *p, tk_ctx *ctx)
{
    lua_getfield(L, pipe, "optimizer");
    int t = lua_gettop(L);
    tk_optim_spec o = {.h = hparams(L, t), .where = keep(p, str_field(L, t, "_where", "optimizer"))};
    const char *type = str_field(L, t, "type", "");
    bool known = false;
    for (size_t i = 0; i < sizeof optimizers / sizeof optimizers[0]; i++)
        if (strcmp(type, optimizers[i].name) == 0) {
            o.kind = optimizers[i].kind;
            known = true;
        }
    lua_getfield(L, t, "groups");
    int n_groups = lua_istable(L, -1) ? (int)luaL_len(L, -1) : 0;
    tk_group_spec *groups = calloc((size_t)(n_groups ? n_groups : 1), sizeof *groups);
    const char ***group_patterns = calloc((size_t)(n_groups ? n_groups : 1), sizeof(char **));
    for (int k = 0; groups && group_patterns && k < n_groups; k++) {
        lua_rawgeti(L, -1, k + 1);
        int gt = lua_gettop(L);
        groups[k].h = hparams(L, gt);
        groups[k].where = keep(p, str_field(L, gt, "_where", o.where));
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
    tk_status st;
    if (!known)
        st = tk_fail(ctx, TK_ERR_INPUT, "%s: optimizer '%s' is not available", o.where, type);
    else if (!groups || !group_patterns || !freeze)
        st = tk_fail(ctx, TK_ERR_RUNTIME, "out of memory");
    else {
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

static const struct {
    const char *name;
    tk_sched_kind kind;
} schedules[] = {{"constant", TK_SCHED_CONSTANT}, {"step", TK_SCHED_STEP},
                 {"multistep", TK_SCHED_MULTISTEP}, {"exponential", TK_SCHED_EXPONENTIAL},
                 {"cosine", TK_SCHED_COSINE}, {"cosine_restarts", TK_SCHED_COSINE_RESTARTS},
                 {"linear", TK_SCHED_LINEAR}, {"polynomial", TK_SCHED_POLYNOMIAL},
                 {"onecycle", TK_SCHED_ONECYCLE}, {"reduce_on_plateau", TK_SCHED_PLATEAU}};

/* The schedule table, with durations converted to optimizer steps. */
static tk_status build_sched(lua_State *L, int pipe, tk_pipeline *p, tk_ctx *ctx)
{
    tk_sched_spec *s = &p->sched;
    lua_getfield(L, pipe, "schedule");
    int t = lua_gettop(L);
    if (!lua_istable(L, t)) {
        lua_pop(L, 1);
        return TK_OK;
    }
    const char *type = str_field(L, t, "type", "constant");
    bool known = false;
    for (size_t i = 0; i < sizeof schedules / sizeof schedules[0]; i++)
        if (strcmp(type, schedules[i].name) == 0) {
            s->kind = schedules[i].kind;
            known = true;
        }
    if (!known) {
        lua_pop(L, 1);
        return tk_fail(ctx, TK_ERR_INPUT, "%s: unknown schedule '%s'",
                       str_field(L, t, "_where", "schedule"), type);
    }
    int64_t per_epoch = tk_train_steps_per_epoch(&p->train);
    int64_t unit = strcmp(str_field(L, t, "unit", "epoch"), "step") == 0 ? 1 : per_epoch;
    s->total_steps = p->train.epochs * per_epoch;
    s->step_size = (int64_t)num_field(L, t, "step_size", 0) * unit;
    s->gamma = num_field(L, t, "gamma", 0.1);
    s->T_max = (int64_t)num_field(L, t, "T_max", 0) * unit;
    s->eta_min = num_field(L, t, "eta_min", 0);
    s->T_0 = (int64_t)num_field(L, t, "T_0", 0) * unit;
    s->T_mult = (int64_t)num_field(L, t, "T_mult", 1);
    s->start_factor = num_field(L, t, "start_factor", 1.0 / 3.0);
    s->end_factor = num_field(L, t, "end_factor", 1.0);
    s->total_iters = (int64_t)num_field(L, t, "total_iters", 0) * unit;
    s->power = num_field(L, t, "power", 1.0);
    s->max_lr = num_field(L, t, "max_lr", 0);
    s->pct_start = num_field(L, t, "pct_start", 0.3);
    s->div_factor = num_field(L, t, "div_factor", 25);
    s->final_div_factor = num_field(L, t, "final_div_factor", 1e4);
    s->anneal_linear = strcmp(str_field(L, t, "anneal_strategy", "cos"), "linear") == 0;
    s->monitor = keep(p, str_field(L, t, "monitor", "valid.loss"));
    s->mode_max = strcmp(str_field(L, t, "mode", "min"), "max") == 0;
    s->factor = num_field(L, t, "factor", 0.1);
    s->threshold = num_field(L, t, "threshold", 1e-4);
    s->threshold_abs = strcmp(str_field(L, t, "threshold_mode", "rel"), "abs") == 0;
    s->patience = (int64_t)num_field(L, t, "patience", 10);
    s->cooldown = (int64_t)num_field(L, t, "cooldown", 0);
    s->min_lr = num_field(L, t, "min_lr", 0);
    s->warmup_steps = (int64_t)num_field(L, t, "warmup_steps", 0);
    s->warmup_start_factor = num_field(L, t, "warmup_start_factor", 0);
    lua_getfield(L, t, "milestones");
    for (int i = 1; lua_istable(L, -1) && i <= (int)luaL_len(L, -1) && i <= 64; i++) {
        lua_rawgeti(L, -1, i);
        p->milestones[s->n_milestones++] = (int64_t)lua_tonumber(L, -1) * unit;
        lua_pop(L, 1);
    }
    s->milestones = p->milestones;
    lua_pop(L, 2);
    p->train.sched = s;
    return TK_OK;
}

/* A monitor record {monitor=, mode=} at field k of table t (false or nil: none). */
static tk_monitor monitor_at(lua_State *L, int t, const char *k, tk_pipeline *p)
{
    tk_monitor m = {NULL, false};
    lua_getfield(L, t, k);
    if (lua_istable(L, -1)) {
        m.name = keep(p, str_field(L, -1, "monitor", "valid.loss"));
        m.maximize = strcmp(str_field(L, -1, "mode", "min"), "max") == 0;
    }
    lua_pop(L, 1);
    return m;
}

static void build_policy(lua_State *L, int pipe, tk_pipeline *p)
{
    tk_train_opts *o = &p->train;
    o->clip_grad_norm = num_field(L, pipe, "clip_grad_norm", 0);
    o->clip_grad_value = num_field(L, pipe, "clip_grad_value", 0);
    o->accumulate = (int)num_field(L, pipe, "accumulate", 1);
    o->skip_nonfinite = strcmp(str_field(L, pipe, "on_nonfinite", "stop"), "skip") == 0;
    o->max_skips = (int64_t)num_field(L, pipe, "max_skips", 0);
    o->tensorboard = bool_field(L, pipe, "tensorboard", true);
    o->log_every = (int64_t)num_field(L, pipe, "log_every", 0);
    o->sync_batch_norm = bool_field(L, pipe, "sync_batch_norm", false);
    p->threads = (int)num_field(L, pipe, "threads", 0);
    lua_getfield(L, pipe, "metrics");
    for (int i = 1; lua_istable(L, -1) && i <= (int)luaL_len(L, -1) && o->n_metrics < 32; i++) {
        lua_rawgeti(L, -1, i);
        p->metrics[o->n_metrics++] = keep(p, lua_tostring(L, -1) ? lua_tostring(L, -1) : "");
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    o->metrics = p->metrics;
    lua_getfield(L, pipe, "save");
    if (lua_istable(L, -1)) {
        int t = lua_gettop(L);
        o->best = monitor_at(L, t, "best", p);
        o->save_every = (int64_t)num_field(L, t, "every", 0);
        o->keep = (int)num_field(L, t, "keep", 0);
        o->save_last = bool_field(L, t, "last", true);
    }
    lua_pop(L, 1);
    lua_getfield(L, pipe, "early_stop");
    if (lua_istable(L, -1)) {
        int t = lua_gettop(L);
        o->stop = monitor_at(L, pipe, "early_stop", p);
        o->patience = (int64_t)num_field(L, t, "patience", 10);
        o->min_delta = num_field(L, t, "min_delta", 0);
        o->restore_best = bool_field(L, t, "restore_best", false);
    }
    lua_pop(L, 1);
    lua_getfield(L, pipe, "init");
    if (lua_istable(L, -1)) {
        int t = lua_gettop(L);
        p->init_path = keep(p, str_field(L, t, "path", ""));
        p->init_strict = bool_field(L, t, "strict", false);
        lua_getfield(L, t, "rename");
        int r = lua_gettop(L);
        if (lua_istable(L, r))
            for (lua_pushnil(L); lua_next(L, r); lua_pop(L, 1))
                if (lua_type(L, -2) == LUA_TSTRING && lua_type(L, -1) == LUA_TSTRING &&
                    p->n_renames < 32)
                    p->renames[p->n_renames++] = (tk_rename){keep(p, lua_tostring(L, -2)),
                                                             keep(p, lua_tostring(L, -1))};
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
}

/* ---------------------------------------------------------------- pipeline */

tk_status tk_pipeline_build(lua_State *L, tk_pipeline *p, tk_ctx *ctx)
{
    memset(p, 0, sizeof *p);
    int pipe = lua_gettop(L);
    p->name = strdup(str_field(L, pipe, "name", "run"));
    p->seed = (int64_t)num_field(L, pipe, "seed", 0);
    lua_getfield(L, pipe, "loss");
    const char *loss_op = str_field(L, -1, "op", "");
    bool regression = !tk_op_class_target(loss_op);
    lua_pop(L, 1);
    tk_status st = build_data(L, pipe, p, regression, ctx);
    if (st != TK_OK)
        return st;
    lua_getfield(L, pipe, "data");
    int batch = (int)num_field(L, -1, "batch_size", 32);
    p->train = (tk_train_opts){
        .train = p->views[TRAIN], .valid = p->views[VALID], .test = p->views[TEST],
        .batch_size = batch, .shuffle = bool_field(L, -1, "shuffle", true),
        .drop_last = bool_field(L, -1, "drop_last", false),
        .epochs = (int64_t)num_field(L, pipe, "epochs", 10), .seed = (uint64_t)p->seed};
    lua_pop(L, 1);
    build_policy(L, pipe, p);
    st = build_sched(L, pipe, p, ctx);
    if (st != TK_OK)
        return st;
    tk_dataset *train = tk_view_dataset(p->views[TRAIN]);
    p->graph = tk_graph_new(ctx);
    if (!p->graph)
        return tk_fail(ctx, TK_ERR_RUNTIME, "out of memory");
    tk_graph_set_batch(p->graph, batch);
    tk_shape target_shape = {0, {0}};
    if (regression)
        target_shape = (tk_shape){1, {tk_dataset_label_width(train)}};
    int input = tk_graph_input(p->graph, tk_dataset_sample_shape(train));
    int target = tk_graph_target(p->graph, target_shape);
    if (input < 0 || target < 0)
        return TK_ERR_INPUT;
    int output = -1;
    st = lower_model(L, pipe, p, input, &output, ctx);
    if (st == TK_OK)
        st = add_loss(L, pipe, p, output, target, ctx);
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
    free(p->data_note);
    free(p->name);
    memset(p, 0, sizeof *p);
}
