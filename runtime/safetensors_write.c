/* safetensors_write.c - the safetensors writer (F32, and I64 for integer counters): header
 * JSON (tensors sorted by name, __metadata__ as a string map, padded with spaces to a multiple
 * of 8 as the reference implementation does), data, and one atomic write. Not here: reading
 * (safetensors.c). */
#include "tk_int.h"
#include "safetensors.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    unsigned char *p;
    size_t len, cap;
    bool oom;
} sbuf;

static void sb_put(sbuf *b, const void *s, size_t n)
{
    if (b->oom)
        return;
    if (n > b->cap - b->len) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap - b->len < n && cap < SIZE_MAX / 2)
            cap *= 2;
        unsigned char *p = cap - b->len >= n ? tk_realloc(b->p, b->len, cap) : NULL;
        if (!p) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

static void sb_puts(sbuf *b, const char *s)
{
    sb_put(b, s, strlen(s));
}

static void sb_putu(sbuf *b, uint64_t v)
{
    char tmp[24];
    snprintf(tmp, sizeof tmp, "%llu", (unsigned long long)v);
    sb_puts(b, tmp);
}

/* A JSON string: quotes, backslashes and control characters escaped; UTF-8 as is. */
static void sb_putjs(sbuf *b, const char *s)
{
    sb_put(b, "\"", 1);
    for (const unsigned char *u = (const unsigned char *)s; *u; u++) {
        const char *hit = strchr("\"\\\n\t\r\b\f", *u);
        char tmp[8];
        if (hit) {
            tmp[0] = '\\';
            tmp[1] = "\"\\ntrbf"[hit - "\"\\\n\t\r\b\f"];
            sb_put(b, tmp, 2);
        } else if (*u < 0x20) {
            snprintf(tmp, sizeof tmp, "\\u%04x", *u);
            sb_puts(b, tmp);
        } else {
            sb_put(b, u, 1);
        }
    }
    sb_put(b, "\"", 1);
}

/* Elements of a shape already checked by check_save_args. */
static int64_t shape_numel(const tk_shape *s)
{
    int64_t k = 1;
    for (int d = 0; d < s->ndim; d++)
        k *= s->d[d];
    return k;
}

/* Validate what tk_st_save was given; *data_len receives the data section's size. */
static tk_status check_save_args(const char *path, const tk_st_tensor *t, const bool *i64,
                                 int n, const char *const *mk, const char *const *mv, int n_meta,
                                 size_t *data_len, tk_ctx *ctx)
{
    *data_len = 0;
    if (n < 0 || n_meta < 0 || (n && !t) || (n_meta && (!mk || !mv)))
        return tk_fail(ctx, TK_ERR_INPUT, "%s: bad tensor or metadata list", path);
    for (int i = 0; i < n; i++) {
        if (!t[i].name || !tk_st_utf8_valid(t[i].name) || !strcmp(t[i].name, "__metadata__"))
            return tk_fail(ctx, TK_ERR_INPUT, "%s: tensor %d has an invalid name", path, i);
        const tk_shape *s = &t[i].shape;
        if (s->ndim < 0 || s->ndim > TK_MAX_DIMS)
            return tk_fail(ctx, TK_ERR_INPUT, "%s: tensor '%s': %d dims (at most %d)", path,
                           t[i].name, s->ndim, TK_MAX_DIMS);
        int64_t numel = 1;
        for (int d = 0; d < s->ndim; d++) {
            if (s->d[d] < 0 || (s->d[d] && numel > INT64_MAX / 4 / s->d[d]))
                return tk_fail(ctx, TK_ERR_INPUT, "%s: tensor '%s': bad shape", path, t[i].name);
            numel *= s->d[d];
        }
        if (numel && !t[i].data)
            return tk_fail(ctx, TK_ERR_INPUT, "%s: tensor '%s' has no data", path, t[i].name);
        size_t size = (i64 && i64[i]) ? 8 : 4;
        if ((uint64_t)numel > (SIZE_MAX / 2 - *data_len) / size)
            return tk_st_oom(ctx, path);
        *data_len += (size_t)numel * size;
    }
    for (int i = 0; i < n_meta; i++)
        if (!mk[i] || !mv[i] || !tk_st_utf8_valid(mk[i]) || !tk_st_utf8_valid(mv[i]))
            return tk_fail(ctx, TK_ERR_INPUT, "%s: metadata entry %d is not a pair of UTF-8 "
                           "strings", path, i);
    return TK_OK;
}

/* The header JSON, tensors in `order`, padded to a multiple of 8 like the reference writer
 * does, so the data section is aligned. */
static void build_header(sbuf *b, const tk_st_tensor *t, const bool *i64, const st_key *order,
                         int n, const char *const *mk, const char *const *mv, int n_meta)
{
    sb_puts(b, "{");
    if (n_meta) {
        sb_puts(b, "\"__metadata__\":{");
        for (int i = 0; i < n_meta; i++) {
            sb_puts(b, i ? "," : "");
            sb_putjs(b, mk[i]);
            sb_puts(b, ":");
            sb_putjs(b, mv[i]);
        }
        sb_puts(b, "}");
    }
    uint64_t off = 0;
    for (int k = 0; k < n; k++) {
        const tk_st_tensor *x = &t[order[k].idx];
        bool wide = i64 && i64[order[k].idx];
        uint64_t bytes = (uint64_t)shape_numel(&x->shape) * (wide ? 8 : 4);
        sb_puts(b, k || n_meta ? "," : "");
        sb_putjs(b, x->name);
        sb_puts(b, wide ? ":{\"dtype\":\"I64\",\"shape\":["
                          : ":{\"dtype\":\"F32\",\"shape\":[");
        for (int d = 0; d < x->shape.ndim; d++) {
            sb_puts(b, d ? "," : "");
            sb_putu(b, (uint64_t)x->shape.d[d]);
        }
        sb_puts(b, "],\"data_offsets\":[");
        sb_putu(b, off);
        sb_puts(b, ",");
        sb_putu(b, off + bytes);
        sb_puts(b, "]}");
        off += bytes;
    }
    sb_puts(b, "}");
    while (b->len % 8)
        sb_puts(b, " ");
}

tk_status tk_st_save(const char *path, const tk_st_tensor *tensors, int n,
                     const char *const *meta_keys, const char *const *meta_values, int n_meta,
                     tk_ctx *ctx)
{
    return tk_st_save_typed(path, tensors, NULL, n, meta_keys, meta_values, n_meta, ctx);
}

tk_status tk_st_save_typed(const char *path, const tk_st_tensor *tensors, const bool *i64,
                           int n, const char *const *meta_keys,
                           const char *const *meta_values, int n_meta, tk_ctx *ctx)
{
    size_t data_len;
    tk_status st = check_save_args(path, tensors, i64, n, meta_keys, meta_values, n_meta,
                                   &data_len, ctx);
    if (st != TK_OK)
        return st;
    /* Tensors go out sorted by name; the same sorts find duplicates. */
    int dup, kdup;
    st_key *order = tk_st_sort_keys(tensors, sizeof *tensors, n, &dup);
    st_key *korder = tk_st_sort_keys(meta_keys, sizeof *meta_keys, n_meta, &kdup);
    bool sorted = order && korder;
    tk_free(korder);
    if (!sorted) {
        tk_free(order);
        return tk_st_oom(ctx, path);
    }
    if (dup >= 0 || kdup >= 0) {
        tk_free(order);
        if (dup >= 0)
            return tk_fail(ctx, TK_ERR_INPUT, "%s: duplicate tensor name '%s'", path,
                           tensors[dup].name);
        return tk_fail(ctx, TK_ERR_INPUT, "%s: duplicate metadata key '%s'", path,
                       meta_keys[kdup]);
    }
    sbuf h = {0};
    build_header(&h, tensors, i64, order, n, meta_keys, meta_values, n_meta);
    size_t total = 8 + h.len + data_len;
    unsigned char *out = h.oom || h.len > SIZE_MAX / 2 ? NULL : tk_malloc(total);
    if (!out) {
        tk_free(order);
        tk_free(h.p);
        return tk_st_oom(ctx, path);
    }
    for (int i = 0; i < 8; i++)
        out[i] = (unsigned char)((uint64_t)h.len >> (8 * i));
    memcpy(out + 8, h.p, h.len);
    unsigned char *w = out + 8 + h.len;
    for (int k = 0; k < n; k++) {
        const tk_st_tensor *x = &tensors[order[k].idx];
        bool wide = i64 && i64[order[k].idx];
        int64_t numel = shape_numel(&x->shape);
        for (int64_t j = 0; j < numel; j++) {
            uint64_t bits = 0;
            if (wide) {
                int64_t v = (int64_t)llround((double)x->data[j]);
                memcpy(&bits, &v, sizeof v);
            } else {
                uint32_t b32;
                memcpy(&b32, &x->data[j], sizeof b32);
                bits = b32;
            }
            for (int i = 0; i < (wide ? 8 : 4); i++)
                *w++ = (unsigned char)(bits >> (8 * i));
        }
    }
    tk_free(order);
    tk_free(h.p);
    st = tk_write_atomic(path, out, total, ctx);
    tk_free(out);
    return st;
}
