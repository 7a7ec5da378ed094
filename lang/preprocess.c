/* preprocess.c - what the weights need around them to be used on new data: the feature
 * transform (scale, normalize and its train statistics), how the splits were drawn (seed,
 * fractions, sizes, a CRC of each split's indices) and the class-name -> id map. Recorded
 * as "data.*" metadata on the model, so best, last, epoch and final checkpoints all carry
 * it, and as lines of the data section note.log and `tkrun check` print.
 * Keys (all strings; number lists comma-separated):
 *   data.normalize        none | fixed | standard | minmax
 *   data.scale            the scale applied before normalising
 *   data.features         features per sample
 *   data.mul, data.add    per feature: x' = x * mul + add, exactly what the batches got
 *   data.mean, data.std   per feature: x' = (x * scale - mean) / std (minmax: min, range)
 *   data.split_seed       the seed the splits were drawn with
 *   data.<split>.samples, data.<split>.indices_crc32, data.<split>.fraction (drawn splits)
 *   data.classes          {"name": id, ...} (class labels; numeric ids map to themselves)
 * Not here: loading or normalising the data (spec.c, runtime/data). */
#include "lang.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

static const char *const split_names[3] = {"train", "valid", "test"};

/* A growing string; NULL text after an allocation failure. */
typedef struct {
    char *text;
    size_t len, cap;
} buf;

static void add(buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void add(buf *b, const char *fmt, ...)
{
    if (!b->text && b->cap)
        return;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if (b->len + (size_t)n + 1 > b->cap) {
        size_t cap = (b->len + (size_t)n + 1) * 2;
        char *grown = realloc(b->text, cap);
        if (!grown) {
            free(b->text);
            *b = (buf){NULL, 0, 1};
            return;
        }
        b->text = grown;
        b->cap = cap;
    }
    va_start(ap, fmt);
    vsnprintf(b->text + b->len, b->cap - b->len, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
}

/* A JSON string (quotes, backslashes and control characters escaped). */
static void add_json(buf *b, const char *s)
{
    add(b, "\"");
    for (const unsigned char *u = (const unsigned char *)s; *u; u++) {
        if (*u == '"' || *u == '\\')
            add(b, "\\%c", *u);
        else if (*u < 0x20)
            add(b, "\\u%04x", *u);
        else
            add(b, "%c", *u);
    }
    add(b, "\"");
}

/* Sets one key; its value is taken from (and frees) the buffer. */
static tk_status put(tk_model *m, const char *key, buf *b, tk_ctx *ctx)
{
    tk_status st = b->text ? tk_model_set_meta(m, key, b->text, ctx)
                           : tk_fail(ctx, TK_ERR_RUNTIME, "out of memory");
    free(b->text);
    *b = (buf){0};
    return st;
}

/* note.log shows the first few values of a per-feature list. */
static void add_list(buf *note, const char *label, const double *v, int64_t n)
{
    add(note, " %s [", label);
    for (int64_t f = 0; f < n && f < 6; f++)
        add(note, f ? ", %.6g" : "%.6g", v[f]);
    if (n > 6)
        add(note, ", ... (%lld values)", (long long)n);
    add(note, "]");
}

static tk_status record_transform(lua_State *L, int train_spec, tk_pipeline *p, buf *note,
                                  tk_ctx *ctx)
{
    tk_view *v = p->views[0];
    tk_shape shape = tk_dataset_sample_shape(tk_view_dataset(v));
    int64_t nf = tk_shape_numel(&shape);
    const float *add_v, *mul = tk_view_affine(v, &add_v);
    lua_getfield(L, train_spec, "scale");
    double scale = lua_isnumber(L, -1) ? lua_tonumber(L, -1) : 1.0;
    lua_getfield(L, train_spec, "normalize");
    const char *kind = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1)
                       : lua_istable(L, -1)           ? "fixed"
                                                      : "none";
    char kind_copy[16];
    snprintf(kind_copy, sizeof kind_copy, "%s", kind);
    lua_pop(L, 2);
    double *mean = malloc(sizeof(double) * (size_t)(nf ? 2 * nf : 1));
    if (!mean)
        return tk_fail(ctx, TK_ERR_RUNTIME, "out of memory");
    double *std = mean + nf;
    /* x * mul + add = (x * scale - mean) / std */
    for (int64_t f = 0; f < nf; f++) {
        std[f] = (double)(scale == 0 ? 1 : scale) / (double)mul[f];
        mean[f] = -(double)add_v[f] * std[f];
    }
    buf b = {0};
    tk_status st = TK_OK;
    add(&b, "%s", kind_copy);
    st = put(p->model, "data.normalize", &b, ctx);
    add(&b, "%.17g", scale);
    if (st == TK_OK)
        st = put(p->model, "data.scale", &b, ctx);
    add(&b, "%lld", (long long)nf);
    if (st == TK_OK)
        st = put(p->model, "data.features", &b, ctx);
    const char *keys[4] = {"data.mul", "data.add", "data.mean", "data.std"};
    for (int k = 0; k < 4 && st == TK_OK; k++) {
        for (int64_t f = 0; f < nf; f++) {
            if (k < 2)
                add(&b, f ? ",%.9g" : "%.9g", (double)(k ? add_v[f] : mul[f]));
            else
                add(&b, f ? ",%.17g" : "%.17g", k == 2 ? mean[f] : std[f]);
        }
        st = put(p->model, keys[k], &b, ctx);
    }
    add(note, "normalize %s, scale %g", kind_copy, scale);
    if (strcmp(kind_copy, "none") != 0) {
        add(note, "%s", strcmp(kind_copy, "fixed") == 0 ? ":" : " (train statistics):");
        add_list(note, strcmp(kind_copy, "minmax") == 0 ? "min" : "mean", mean, nf);
        add_list(note, strcmp(kind_copy, "minmax") == 0 ? "range" : "std", std, nf);
    }
    add(note, "\n");
    free(mean);
    return st;
}

/* The CRC-32 of a view's dataset indices, as little-endian int64 in view order. A streamed
 * view has none: its rows are a function of the seed and the fractions, also recorded. */
static unsigned long indices_crc(const tk_view *v)
{
    unsigned long crc = crc32(0L, Z_NULL, 0);
    if (tk_view_streamed(v))
        return crc;
    for (int64_t i = 0; i < tk_view_len(v); i++) {
        uint64_t x = (uint64_t)tk_view_index(v, i);
        unsigned char le[8];
        for (int k = 0; k < 8; k++)
            le[k] = (unsigned char)(x >> (8 * k));
        crc = crc32(crc, le, 8);
    }
    return crc;
}

static tk_status record_splits(lua_State *L, int data, tk_pipeline *p, buf *note, tk_ctx *ctx)
{
    buf b = {0};
    add(&b, "%lld", (long long)p->seed);
    tk_status st = put(p->model, "data.split_seed", &b, ctx);
    add(note, "splits (seed %lld):", (long long)p->seed);
    for (int s = 0; s < 3 && st == TK_OK; s++) {
        if (!p->views[s])
            continue;
        char key[64];
        unsigned long crc = indices_crc(p->views[s]);
        add(&b, "%lld", (long long)tk_view_len(p->views[s]));
        snprintf(key, sizeof key, "data.%s.samples", split_names[s]);
        st = put(p->model, key, &b, ctx);
        add(&b, "%08lx", crc);
        snprintf(key, sizeof key, "data.%s.indices_crc32", split_names[s]);
        if (st == TK_OK)
            st = put(p->model, key, &b, ctx);
        add(note, "%s %s %lld", s ? "," : "", split_names[s], (long long)tk_view_len(p->views[s]));
        lua_getfield(L, data, split_names[s]);
        if (lua_istable(L, -1)) {
            lua_getfield(L, -1, "fraction");
            if (lua_isnumber(L, -1) && st == TK_OK) {
                add(&b, "%.17g", lua_tonumber(L, -1));
                snprintf(key, sizeof key, "data.%s.fraction", split_names[s]);
                st = put(p->model, key, &b, ctx);
                add(note, " (fraction %g of train)", lua_tonumber(L, -1));
            }
            lua_pop(L, 1);
        }
        lua_pop(L, 1);
        add(note, " indices crc32 %08lx", crc);
    }
    add(note, "\n");
    return st;
}

static tk_status record_classes(tk_pipeline *p, buf *note, tk_ctx *ctx)
{
    const tk_dataset *ds = tk_view_dataset(p->views[0]);
    if (tk_dataset_label_kind(ds) != TK_LABEL_CLASS)
        return TK_OK;
    int n = tk_dataset_num_classes(ds);
    buf b = {0};
    add(&b, "{");
    add(note, "classes %d:", n);
    for (int c = 0; c < n; c++) {
        const char *name = tk_dataset_class_name(ds, c);
        char id[16];
        snprintf(id, sizeof id, "%d", c);
        add(&b, "%s", c ? ", " : "");
        add_json(&b, name ? name : id);
        add(&b, ": %d", c);
        if (c < 12)
            add(note, " %s=%d", name ? name : id, c);
    }
    add(&b, "}");
    add(note, "%s", n > 12 ? " ...\n" : "\n");
    return put(p->model, "data.classes", &b, ctx);
}

tk_status tk_preprocess_record(lua_State *L, int pipe, tk_pipeline *p, tk_ctx *ctx)
{
    buf note = {0};
    lua_getfield(L, pipe, "data");
    int data = lua_gettop(L);
    lua_getfield(L, data, "train");
    tk_status st = record_transform(L, lua_gettop(L), p, &note, ctx);
    lua_pop(L, 1);
    if (st == TK_OK)
        st = record_splits(L, data, p, &note, ctx);
    if (st == TK_OK)
        st = record_classes(p, &note, ctx);
    lua_settop(L, data - 1);
    if (st == TK_OK && !note.text)
        st = tk_fail(ctx, TK_ERR_RUNTIME, "out of memory");
    if (st == TK_OK) {
        size_t old = p->data_note ? strlen(p->data_note) : 0;
        char *grown = realloc(p->data_note, old + note.len + 1);
        if (!grown)
            st = tk_fail(ctx, TK_ERR_RUNTIME, "out of memory");
        else {
            memcpy(grown + old, note.text, note.len + 1);
            p->data_note = grown;
        }
    }
    free(note.text);
    return st;
}
