/* idx.c - tk_dataset_idx: MNIST-style IDX files (plain or gzip) into a uint8 dataset.
 *
 * An IDX file is a 4-byte magic (0, 0, type, ndim), ndim big-endian uint32 sizes, then the
 * data. Images are (N, H, W) -> samples (1, H, W), or (N, D) -> samples (D); labels are (N).
 * Only unsigned bytes (type 0x08) are read. Everything in the header is checked against the
 * bytes that follow, so a wrong, truncated or padded file is an error, never a short dataset.
 * Not here: conversion to float and scaling (the loader does both per batch).
 */
#include "dataset.h"

#include <string.h>

#define IDX_UBYTE 0x08
#define READ_START (1 << 20)

typedef struct {
    const char *name;          /* basename, for messages */
    int ndim;
    int64_t dims[3];
    unsigned char *data;       /* numel bytes, owned */
    int64_t numel;
} idx_file;

static bool known_type(int t)
{
    /* The types the format defines: ubyte, byte, short, int, float, double. */
    return t == 0x08 || t == 0x09 || t == 0x0B || t == 0x0C || t == 0x0D || t == 0x0E;
}

static tk_status read_header(gzFile f, idx_file *x, tk_ctx *ctx)
{
    unsigned char m[4];
    bool cut = false;
    int64_t got = tk_data_read(f, m, 4, &cut, x->name, ctx);
    if (got < 0)
        return TK_ERR_INPUT;
    if (got < 4)
        return tk_fail(ctx, TK_ERR_INPUT, "%s: not an IDX file (%lld bytes long)", x->name,
                       (long long)got);
    uint32_t magic = (uint32_t)m[0] << 24 | (uint32_t)m[1] << 16 | (uint32_t)m[2] << 8 | m[3];
    if (m[0] || m[1] || !known_type(m[2]) || m[3] == 0)
        return tk_fail(ctx, TK_ERR_INPUT, "%s: not an IDX file (magic 0x%08x)", x->name,
                       (unsigned)magic);
    if (m[2] != IDX_UBYTE)
        return tk_fail(ctx, TK_ERR_INPUT,
                       "%s: IDX data type 0x%02x is not supported (only unsigned bytes, 0x08)",
                       x->name, m[2]);
    if (m[3] > 3)
        return tk_fail(ctx, TK_ERR_INPUT,
                       "%s: IDX files with %d dimensions are not supported (at most 3)",
                       x->name, m[3]);
    x->ndim = m[3];
    unsigned char d[12];
    got = tk_data_read(f, d, 4 * (size_t)x->ndim, &cut, x->name, ctx);
    if (got < 0)
        return TK_ERR_INPUT;
    if (got < 4 * x->ndim)
        return tk_fail(ctx, TK_ERR_INPUT, "%s: truncated: the header ends after %lld bytes",
                       x->name, (long long)got + 4);
    x->numel = 1;
    for (int i = 0; i < x->ndim; i++) {
        const unsigned char *b = d + 4 * i;
        x->dims[i] = (int64_t)b[0] << 24 | (int64_t)b[1] << 16 | (int64_t)b[2] << 8 | b[3];
        if (x->dims[i] == 0)
            return tk_fail(ctx, TK_ERR_INPUT, "%s: dimension %d is 0", x->name, i + 1);
        /* Sizes are < 2^32 each; keep the product within what a size_t and int64 hold. */
        if (x->numel > (INT64_MAX / 2) / x->dims[i] || (uint64_t)x->numel > SIZE_MAX / 2)
            return tk_fail(ctx, TK_ERR_INPUT, "%s: dimensions too large", x->name);
        x->numel *= x->dims[i];
    }
    return TK_OK;
}

/* The data after the header, x->numel bytes. The buffer grows as bytes arrive, so a header
 * that claims terabytes costs only what the file really holds before it is found short. */
static tk_status read_data(gzFile f, idx_file *x, tk_ctx *ctx)
{
    const size_t want = (size_t)x->numel;
    size_t cap = want < READ_START ? want : READ_START, got = 0;
    bool cut = false;
    if (!(x->data = tk_malloc(cap)))
        return tk_fail(ctx, TK_ERR_RUNTIME, "%s: out of memory", x->name);
    for (;;) {
        int64_t r = tk_data_read(f, x->data + got, cap - got, &cut, x->name, ctx);
        if (r < 0)
            return TK_ERR_INPUT;
        got += (size_t)r;
        if (got < cap || got == want)
            break;
        size_t next = cap < want / 2 ? cap * 2 : want;
        unsigned char *p = tk_realloc(x->data, got, next);
        if (!p)
            return tk_fail(ctx, TK_ERR_RUNTIME, "%s: out of memory for %lld bytes", x->name,
                           (long long)next);
        x->data = p;
        cap = next;
    }
    if (got < want)
        return tk_fail(ctx, TK_ERR_INPUT, "%s: truncated: expected %lld bytes of data, found "
                       "%lld", x->name, (long long)want, (long long)got);
    unsigned char extra;
    int64_t r = tk_data_read(f, &extra, 1, &cut, x->name, ctx);
    if (r < 0)
        return TK_ERR_INPUT;
    if (r > 0)
        return tk_fail(ctx, TK_ERR_INPUT, "%s: more data than the header's %lld bytes (a "
                       "wrong header?)", x->name, (long long)want);
    /* All the bytes arrived but the gzip trailer (its CRC) did not: nothing vouches for them. */
    if (cut)
        return tk_fail(ctx, TK_ERR_INPUT, "%s: truncated: the gzip stream ends before its "
                       "checksum", x->name);
    return TK_OK;
}

static tk_status read_idx(const char *path, idx_file *x, tk_ctx *ctx)
{
    *x = (idx_file){.name = tk_data_basename(path)};
    gzFile f = tk_data_open(path, ctx);
    if (!f)
        return TK_ERR_INPUT;
    tk_status st = read_header(f, x, ctx);
    if (!st)
        st = read_data(f, x, ctx);
    gzclose(f);
    if (st) {
        tk_free(x->data);
        x->data = NULL;
    }
    return st;
}

tk_status tk_dataset_idx(const tk_idx_opts *o, tk_dataset **out, tk_ctx *ctx)
{
    *out = NULL;
    if (!o || !o->images)
        return tk_fail(ctx, TK_ERR_INPUT, "idx: no images file given");
    /* No labels file (NULL or ""): images only, for prediction. */
    const char *labels = o->labels && *o->labels ? o->labels : NULL;
    idx_file im, lb = {0};
    tk_status st = read_idx(o->images, &im, ctx);
    if (st)
        return st;
    if (im.ndim == 1)
        st = tk_fail(ctx, TK_ERR_INPUT, "%s: a 1-dimensional IDX file holds labels, not "
                     "images", im.name);
    if (!st && labels) {
        st = read_idx(labels, &lb, ctx);
        if (!st && lb.ndim != 1)
            st = tk_fail(ctx, TK_ERR_INPUT, "%s: labels must be a 1-dimensional IDX file "
                         "(found %d dimensions)", lb.name, lb.ndim);
        if (!st && lb.dims[0] != im.dims[0])
            st = tk_fail(ctx, TK_ERR_INPUT, "images have %lld records but labels have %lld "
                         "(%s, %s)", (long long)im.dims[0], (long long)lb.dims[0], im.name,
                         lb.name);
    }
    tk_dataset *ds = st ? NULL : tk_dataset_alloc(o->images, "record");
    if (!st && !ds)
        st = tk_fail(ctx, TK_ERR_RUNTIME, "%s: out of memory", im.name);
    if (!st && labels && (!(ds->y = tk_malloc((size_t)lb.numel * sizeof(float))) ||
                          !(ds->label_path = tk_strdup(labels))))
        st = tk_fail(ctx, TK_ERR_RUNTIME, "%s: out of memory", lb.name);
    if (st) {
        tk_free(im.data);
        tk_free(lb.data);
        tk_dataset_free(ds);
        return st;
    }
    ds->n = im.dims[0];
    ds->nfeat = im.numel / im.dims[0];
    ds->shape = im.ndim == 3 ? (tk_shape){3, {1, im.dims[1], im.dims[2]}}
                             : (tk_shape){1, {im.dims[1]}};
    ds->x8 = im.data;
    ds->kind = TK_LABEL_CLASS;
    if (labels) {
        int max = -1;
        for (int64_t i = 0; i < lb.numel; i++) {
            ds->y[i] = lb.data[i];
            max = lb.data[i] > max ? lb.data[i] : max;
        }
        ds->label_width = 1;
        ds->n_classes = max + 1;
        tk_free(lb.data);
    }
    *out = ds;
    return TK_OK;
}
