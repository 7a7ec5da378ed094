/* spec_data.c - the data = {...} part of the pipeline table into runtime datasets and views:
 * one loader per dataset kind of the stdlib (the `formats` table), the splits, normalisation,
 * augmentation, and the note.log lines about each split. Not here: the model and training
 * options (spec.c), the file formats themselves (runtime/data/). */
#include "spec.h"

#include <stdlib.h>
#include <zlib.h>

enum { TRAIN, VALID, TEST };
static const char *const split_names[3] = {"train", "valid", "test"};

/* The numbers at idx (a number or a list of them), in a new array of *n (freed by the
 * caller; NULL with *n 0 for none, NULL with *n -1 when out of memory). */
static double *number_list(lua_State *L, int idx, int *n)
{
    *n = 0;
    int len = lua_isnumber(L, idx) ? 1 : lua_istable(L, idx) ? (int)luaL_len(L, idx) : 0;
    if (len == 0)
        return NULL;
    double *v = malloc(sizeof(double) * (size_t)len);
    if (!v) {
        *n = -1;
        return NULL;
    }
    if (lua_isnumber(L, idx)) {
        v[0] = lua_tonumber(L, idx);
    } else {
        for (int i = 0; i < len; i++) {
            lua_rawgeti(L, idx, i + 1);
            v[i] = lua_tonumber(L, -1);
            lua_pop(L, 1);
        }
    }
    *n = len;
    return v;
}

static tk_colref colref_at(lua_State *L, int idx)
{
    tk_colref c = {NULL, 0};
    if (lua_isinteger(L, idx))
        c.index = (int)lua_tointeger(L, idx);
    else
        c.name = lua_tostring(L, idx);
    return c;
}

/* A column list field: a single name/index or a sequence of them, in a new array (*out NULL
 * when the field is absent; the names stay referenced by the spec table). */
static tk_status colrefs(lua_State *L, int t, const char *k, tk_colref **out, int *n,
                         tk_ctx *ctx)
{
    lua_getfield(L, t, k);
    int len = lua_istable(L, -1) ? (int)luaL_len(L, -1) : lua_isnil(L, -1) ? 0 : 1;
    *out = NULL;
    *n = 0;
    if (len > 0 && !(*out = malloc(sizeof(tk_colref) * (size_t)len))) {
        lua_pop(L, 1);
        return out_of_memory(ctx);
    }
    if (lua_istable(L, -1)) {
        for (int i = 1; i <= len; i++) {
            lua_rawgeti(L, -1, i);
            (*out)[i - 1] = colref_at(L, -1);
            lua_pop(L, 1);
        }
    } else if (len == 1) {
        (*out)[0] = colref_at(L, -1);
    }
    *n = len;
    lua_pop(L, 1);
    return TK_OK;
}

static char delimiter(lua_State *L, int t)
{
    const char *d = str_at(L, t, "delimiter");
    return d ? d[0] : '\0';
}

/* The splits the script draws from its train source: a streamed source must know them as
 * it is read (tk_csv_opts.stream_split); n is 0 for the other sources. */
typedef struct {
    const double *fractions;
    int n;
    uint64_t seed;
} split_plan;

/* One loader per dataset kind of the stdlib (data.<kind>); `float_labels`: the task's
 * labels are numbers, not class ids. */
typedef tk_status (*load_fn)(lua_State *L, int t, bool float_labels, const split_plan *sp,
                             tk_dataset **out, tk_ctx *ctx);

static tk_status load_csv(lua_State *L, int t, bool float_labels, const split_plan *sp,
                          tk_dataset **out, tk_ctx *ctx)
{
    tk_csv_opts o = {.path = str_at(L, t, "path"), .delimiter = delimiter(L, t),
                     .skip_rows = (int)num_at(L, t, "skip_rows"),
                     .header = flag_at(L, t, "header"), .regression = float_labels};
    tk_colref *features = NULL, *label = NULL;
    tk_status st = colrefs(L, t, "features", &features, &o.n_features, ctx);
    lua_getfield(L, t, "label");
    if (st == TK_OK && lua_istable(L, -1) && str_is(L, -1, "_kind", "data.csv")) {
        int lt = lua_gettop(L);
        o.label_path = str_at(L, lt, "path");
        o.label_delimiter = delimiter(L, lt);
        o.label_skip_rows = (int)num_at(L, lt, "skip_rows");
        o.label_header = flag_at(L, lt, "header");
        st = colrefs(L, lt, "label", &label, &o.n_label, ctx);
    } else if (st == TK_OK) {
        st = colrefs(L, t, "label", &label, &o.n_label, ctx);
    }
    o.features = features;
    o.label = label;
    o.stream = flag_at(L, t, "stream");
    o.shard_size = (int64_t)num_at(L, t, "shard_size");
    o.shuffle_buffer = (int64_t)num_at(L, t, "shuffle_buffer");
    o.stream_split = sp->fractions;
    o.n_stream_split = sp->n;
    o.stream_split_seed = sp->seed;
    if (st == TK_OK)
        st = tk_dataset_csv(&o, out, ctx);
    free(features);
    free(label);
    lua_pop(L, 1);
    return st;
}

static tk_status load_idx(lua_State *L, int t, bool float_labels, const split_plan *sp,
                          tk_dataset **out, tk_ctx *ctx)
{
    (void)float_labels;
    (void)sp;
    tk_idx_opts o = {str_at(L, t, "images"), str_at(L, t, "labels")};
    return tk_dataset_idx(&o, out, ctx);
}

static tk_status load_images(lua_State *L, int t, bool float_labels, const split_plan *sp,
                             tk_dataset **out, tk_ctx *ctx)
{
    (void)float_labels;
    tk_images_opts o = {.root = str_at(L, t, "root"), .channels = (int)num_at(L, t, "channels"),
                        .list = str_at(L, t, "list"), .header = flag_at(L, t, "header"),
                        .stream = flag_at(L, t, "stream"),
                        .shard_size = (int64_t)num_at(L, t, "shard_size"),
                        .shuffle_buffer = (int64_t)num_at(L, t, "shuffle_buffer"),
                        .stream_split = sp->fractions, .n_stream_split = sp->n,
                        .stream_split_seed = sp->seed};
    lua_getfield(L, t, "size");
    if (lua_istable(L, -1)) {
        lua_rawgeti(L, -1, 1);
        lua_rawgeti(L, -2, 2);
        o.height = (int)lua_tointeger(L, -2);
        o.width = (int)lua_tointeger(L, -1);
        lua_pop(L, 2);
    }
    lua_getfield(L, t, "path_column");
    o.path_column = colref_at(L, -1);
    lua_getfield(L, t, "label");
    o.label = colref_at(L, -1);
    tk_status st = tk_dataset_images(&o, out, ctx);
    lua_pop(L, 3);
    return st;
}

static tk_status load_npy(lua_State *L, int t, bool float_labels, const split_plan *sp,
                          tk_dataset **out, tk_ctx *ctx)
{
    (void)sp;
    tk_npy_opts o = {str_at(L, t, "x"), str_at(L, t, "y"), str_at(L, t, "npz"), float_labels};
    return tk_dataset_npy(&o, out, ctx);
}

static const struct {
    const char *kind;
    load_fn load;
} formats[] = {
    {"data.csv", load_csv},
    {"data.idx", load_idx},
    {"data.images", load_images},
    {"data.npy", load_npy},
};

static tk_status load_dataset(lua_State *L, int t, bool float_labels, const split_plan *sp,
                              tk_dataset **out, tk_ctx *ctx)
{
    const char *kind = str_at(L, t, "_kind");
    for (size_t i = 0; kind && i < sizeof formats / sizeof formats[0]; i++)
        if (strcmp(kind, formats[i].kind) == 0)
            return formats[i].load(L, t, float_labels, sp, out, ctx);
    return tk_fail(ctx, TK_ERR_INPUT, "%s: unknown dataset kind '%s'", where_at(L, t, "data"),
                   kind ? kind : "");
}

/* Apply the dataset spec's scale/normalize to view v; statistics come from `stats`. */
static tk_status normalize(lua_State *L, int t, tk_view *v, const tk_view *stats, tk_ctx *ctx)
{
    tk_norm_opts o = {.scale = num_at(L, t, "scale"), .kind = TK_NORM_NONE};
    double *mean = NULL, *std = NULL;
    tk_status st = TK_OK;
    lua_getfield(L, t, "normalize");
    if (lua_type(L, -1) == LUA_TSTRING) {
        o.kind = strcmp(lua_tostring(L, -1), "minmax") == 0 ? TK_NORM_MINMAX : TK_NORM_STANDARD;
    } else if (lua_istable(L, -1)) {
        int nt = lua_gettop(L), nm, ns;
        o.kind = TK_NORM_FIXED;
        lua_getfield(L, nt, "mean");
        mean = number_list(L, -1, &nm);
        lua_getfield(L, nt, "std");
        std = number_list(L, -1, &ns);
        lua_pop(L, 2);
        if (nm < 0 || ns < 0)
            st = out_of_memory(ctx);
        else if (nm != ns)
            st = tk_fail(ctx, TK_ERR_INPUT, "%s: normalize: %d means but %d stds",
                         where_at(L, t, "data"), nm, ns);
        o.mean = mean;
        o.std = std;
        o.n_stats = nm;
    }
    lua_pop(L, 1);
    if (st == TK_OK)
        st = tk_view_normalize(v, &o, stats, ctx);
    free(mean);
    free(std);
    return st;
}

/* The integers at field k of table t into out[0..cap) (a number or a list). */
static void ints_at(lua_State *L, int t, const char *k, int64_t *out, int cap)
{
    lua_getfield(L, t, k);
    if (lua_isnumber(L, -1) && cap > 0)
        out[0] = (int64_t)lua_tonumber(L, -1);
    for (int i = 0; lua_istable(L, -1) && i < cap && i < (int)luaL_len(L, -1); i++) {
        lua_rawgeti(L, -1, i + 1);
        out[i] = (int64_t)lua_tonumber(L, -1);
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
}

/* One augmentation step of the stdlib (data.random_crop, ...) at index t. */
static tk_augment augment_at(lua_State *L, int t)
{
    tk_augment op = {.fill = num_at(L, t, "fill")};
    if (str_is(L, t, "_kind", "data.random_crop")) {
        op.kind = TK_AUG_RANDOM_CROP;
        ints_at(L, t, "size", op.size, 2);
        ints_at(L, t, "padding", op.pad, 4);
    } else if (str_is(L, t, "_kind", "data.random_flip")) {
        op.kind = TK_AUG_RANDOM_FLIP;
        op.vertical = !flag_at(L, t, "horizontal");
        op.p = num_at(L, t, "p");
    } else {
        op.kind = TK_AUG_RANDOM_AFFINE;
        lua_getfield(L, t, "translate");
        for (int i = 0; lua_istable(L, -1) && i < 2; i++) {
            lua_rawgeti(L, -1, i + 1);
            op.translate[i] = lua_tonumber(L, -1);
            lua_pop(L, 1);
        }
        lua_pop(L, 1);
    }
    return op;
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
                           "samples are never augmented)", where_at(L, spec[s], "data"),
                           split_names[s]);
    }
    lua_getfield(L, spec[TRAIN], "augment");
    int list = lua_gettop(L);
    int n = lua_istable(L, list) ? (int)luaL_len(L, list) : 0;
    tk_augment *ops = calloc((size_t)(n ? n : 1), sizeof *ops);
    if (!ops) {
        lua_pop(L, 1);
        return out_of_memory(ctx);
    }
    for (int i = 0; i < n; i++) {
        lua_rawgeti(L, list, i + 1);
        ops[i] = augment_at(L, lua_gettop(L));
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    tk_status st = tk_view_augment(train, ops, n, ctx);
    free(ops);
    if (st) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", tk_errmsg(ctx));
        tk_fail(ctx, st, "%s: %s", where_at(L, spec[TRAIN], "data.train"), msg);
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
    const char *files[2] = {str_at(L, t, "images"), str_at(L, t, "labels")};
    if (!files[0]) {
        files[0] = str_at(L, t, "path");
        lua_getfield(L, t, "label");
        files[1] = lua_istable(L, -1) ? str_at(L, -1, "path") : NULL;
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
    snprintf(note + used, cap - used, "%s\n", tk_view_streamed(v) ? " (streamed)" : "");
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
    tk_view_class_counts(v, count, k);
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

tk_status tk_spec_data(lua_State *L, int pipe, tk_pipeline *p, bool float_labels, tk_ctx *ctx)
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
        if (spec[s] && str_is(L, spec[s], "_kind", "data.split")) {
            fractions[n_splits] = num_at(L, spec[s], "fraction");
            split_of[n_splits++] = s;
        }
    }
    /* Only the train source is split, and a streamed one must know how as it is read. */
    for (int s = TRAIN; s <= TEST; s++) {
        if (!spec[s] || str_is(L, spec[s], "_kind", "data.split"))
            continue;
        split_plan sp = {fractions, s == TRAIN ? n_splits : 0, (uint64_t)p->seed};
        if (st == TK_OK) {
            st = load_dataset(L, spec[s], float_labels, &sp, &p->datasets[s], ctx);
            if (st == TK_OK && !(p->views[s] = tk_view_all(p->datasets[s])))
                st = out_of_memory(ctx);
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
