/* npy.c - NumPy arrays: .npy files, .npz archives (zip, members stored or deflated) and
 * tk_dataset_npy, which pairs a features array with a labels array.
 *
 * A .npy file is "\x93NUMPY", a version (1.0: 2-byte header length; 2.0/3.0: 4-byte), then a
 * Python dict literal {'descr': '<f4', 'fortran_order': False, 'shape': (N, ...)} padded
 * with spaces, then the raw data. Little-endian (or byte-sized) bool, int8..int64,
 * uint8..uint64, float32 and float64 in C order are read; everything the header claims is
 * checked against the bytes that follow. An .npz is a zip of such files; the central
 * directory (with zip64 sizes, which numpy writes) locates each member, zlib inflates the
 * deflated ones with an exact size check. Not here: conversion per batch (loader.c).
 */
#include "dataset.h"

#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef enum { NP_BOOL, NP_INT, NP_UINT, NP_FLOAT } np_kind;

typedef struct {
    np_kind kind;
    int size;                  /* bytes per element */
    tk_shape shape;
    int64_t numel;
    const unsigned char *data; /* numel * size bytes, inside the caller's buffer */
} np_array;

/* ---------------------------------------------------------------- .npy header */

typedef struct {
    const char *p, *end;
} cursor;

static void skip_space(cursor *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n'))
        c->p++;
}

static bool eat(cursor *c, char ch)
{
    skip_space(c);
    if (c->p < c->end && *c->p == ch) {
        c->p++;
        return true;
    }
    return false;
}

/* A quoted Python string (no escapes: numpy's keys and descrs have none) into buf. */
static bool string_lit(cursor *c, char *buf, size_t cap)
{
    skip_space(c);
    if (c->p >= c->end || (*c->p != '\'' && *c->p != '"'))
        return false;
    char q = *c->p++;
    size_t n = 0;
    while (c->p < c->end && *c->p != q) {
        if (n + 1 >= cap || *c->p == '\\')
            return false;
        buf[n++] = *c->p++;
    }
    if (c->p >= c->end)
        return false;
    c->p++;
    buf[n] = '\0';
    return true;
}

static bool word(cursor *c, const char *w)
{
    skip_space(c);
    size_t n = strlen(w);
    if ((size_t)(c->end - c->p) >= n && memcmp(c->p, w, n) == 0) {
        c->p += n;
        return true;
    }
    return false;
}

/* (d0, d1, ...) with the optional trailing comma; () is a scalar. */
static bool shape_lit(cursor *c, tk_shape *s, bool *too_many)
{
    if (!eat(c, '('))
        return false;
    s->ndim = 0;
    for (;;) {
        skip_space(c);
        if (eat(c, ')'))
            return true;
        if (c->p >= c->end || *c->p < '0' || *c->p > '9')
            return false;
        int64_t v = 0;
        while (c->p < c->end && *c->p >= '0' && *c->p <= '9') {
            if (v > (INT64_MAX - 9) / 10)
                return false;
            v = v * 10 + (*c->p++ - '0');
        }
        if (c->p < c->end && *c->p == 'L')
            c->p++;
        if (s->ndim == TK_MAX_DIMS) {
            *too_many = true;
            return false;
        }
        s->d[s->ndim++] = v;
        if (!eat(c, ',')) {
            return eat(c, ')');
        }
    }
}

static tk_status parse_descr(const char *d, np_array *a, const char *name, tk_ctx *ctx)
{
    size_t n = strlen(d);
    if (n < 3 || n > 3)
        return tk_fail(ctx, TK_ERR_INPUT, "%s: dtype '%s' is not supported (bool, int8..int64, "
                       "uint8..uint64, float32 or float64)", name, d);
    char order = d[0], k = d[1];
    int size = d[2] - '0';
    if (order == '>' && size > 1)
        return tk_fail(ctx, TK_ERR_INPUT, "%s: big-endian arrays ('%s') are not supported "
                       "(save it with .astype('<%c%d'))", name, d, k, size);
    bool ok = order == '<' || order == '|' || order == '=' || order == '>';
    bool any_size = size == 1 || size == 2 || size == 4 || size == 8;
    switch (k) {
    case 'f':
        a->kind = NP_FLOAT;
        ok = ok && (size == 4 || size == 8);
        break;
    case 'i':
        a->kind = NP_INT;
        ok = ok && any_size;
        break;
    case 'u':
        a->kind = NP_UINT;
        ok = ok && any_size;
        break;
    case 'b':
        a->kind = NP_BOOL;
        ok = ok && size == 1;
        break;
    default:
        ok = false;
    }
    if (!ok)
        return tk_fail(ctx, TK_ERR_INPUT, "%s: dtype '%s' is not supported (bool, int8..int64, "
                       "uint8..uint64, float32 or float64)", name, d);
    a->size = size;
    return TK_OK;
}

static tk_status parse_header(const char *h, size_t len, np_array *a, const char *name,
                              tk_ctx *ctx)
{
    cursor c = {h, h + len};
    bool have_descr = false, have_order = false, have_shape = false, too_many = false;
    char key[32], descr[32];
    if (!eat(&c, '{'))
        return tk_fail(ctx, TK_ERR_INPUT, "%s: bad .npy header (not a dict)", name);
    while (!eat(&c, '}')) {
        if (!string_lit(&c, key, sizeof key) || !eat(&c, ':'))
            return tk_fail(ctx, TK_ERR_INPUT, "%s: bad .npy header (expected a quoted key)",
                           name);
        if (strcmp(key, "descr") == 0) {
            if (!string_lit(&c, descr, sizeof descr))
                return tk_fail(ctx, TK_ERR_INPUT, "%s: bad .npy header: 'descr' is not a "
                               "simple dtype string (structured arrays are not supported)",
                               name);
            tk_status st = parse_descr(descr, a, name, ctx);
            if (st)
                return st;
            have_descr = true;
        } else if (strcmp(key, "fortran_order") == 0) {
            if (word(&c, "True"))
                return tk_fail(ctx, TK_ERR_INPUT, "%s: the array is in Fortran order; save it "
                               "in C order (np.ascontiguousarray)", name);
            if (!word(&c, "False"))
                return tk_fail(ctx, TK_ERR_INPUT, "%s: bad .npy header: fortran_order is not "
                               "True or False", name);
            have_order = true;
        } else if (strcmp(key, "shape") == 0) {
            if (!shape_lit(&c, &a->shape, &too_many))
                return too_many ? tk_fail(ctx, TK_ERR_INPUT, "%s: arrays of more than %d "
                                          "dimensions are not supported", name, TK_MAX_DIMS)
                                : tk_fail(ctx, TK_ERR_INPUT, "%s: bad .npy header: shape is "
                                          "not a tuple of integers", name);
            have_shape = true;
        } else {
            return tk_fail(ctx, TK_ERR_INPUT, "%s: bad .npy header: unknown key '%s'", name,
                           key);
        }
        if (!eat(&c, ',')) {
            if (!eat(&c, '}'))
                return tk_fail(ctx, TK_ERR_INPUT, "%s: bad .npy header (expected ',' or '}')",
                               name);
            break;
        }
    }
    if (!have_descr || !have_order || !have_shape)
        return tk_fail(ctx, TK_ERR_INPUT, "%s: bad .npy header: no '%s'", name,
                       !have_descr ? "descr" : !have_order ? "fortran_order" : "shape");
    a->numel = 1;
    for (int i = 0; i < a->shape.ndim; i++) {
        if (a->shape.d[i] != 0 && a->numel > (INT64_MAX / 16) / a->shape.d[i])
            return tk_fail(ctx, TK_ERR_INPUT, "%s: shape too large", name);
        a->numel *= a->shape.d[i];
    }
    return TK_OK;
}

/* An .npy image in memory: header checked, data located (not copied). */
static tk_status parse_npy(const unsigned char *b, size_t len, np_array *a, const char *name,
                           tk_ctx *ctx)
{
    *a = (np_array){0};
    if (len < 10 || memcmp(b, "\x93NUMPY", 6) != 0)
        return tk_fail(ctx, TK_ERR_INPUT, "%s: not a .npy file (no \\x93NUMPY magic)", name);
    int major = b[6];
    size_t hlen, start;
    if (major == 1) {
        hlen = (size_t)b[8] | (size_t)b[9] << 8;
        start = 10;
    } else if (major == 2 || major == 3) {
        if (len < 12)
            return tk_fail(ctx, TK_ERR_INPUT, "%s: truncated .npy header", name);
        hlen = (size_t)b[8] | (size_t)b[9] << 8 | (size_t)b[10] << 16 | (size_t)b[11] << 24;
        start = 12;
    } else {
        return tk_fail(ctx, TK_ERR_INPUT, "%s: .npy format version %d.%d is not supported",
                       name, major, b[7]);
    }
    if (hlen > len - start)
        return tk_fail(ctx, TK_ERR_INPUT, "%s: truncated .npy header (%zu bytes claimed, %zu "
                       "present)", name, hlen, len - start);
    tk_status st = parse_header((const char *)b + start, hlen, a, name, ctx);
    if (st)
        return st;
    size_t have = len - start - hlen;
    uint64_t want = (uint64_t)a->numel * (uint64_t)a->size;
    if (want != have)
        return tk_fail(ctx, TK_ERR_INPUT, "%s: %s: shape %s needs %llu data bytes but the "
                       "file has %zu", name, want > have ? "truncated" : "extra data",
                       tk_shape_str(&a->shape, (char[96]){0}, 96), (unsigned long long)want,
                       have);
    a->data = b + start + hlen;
    return TK_OK;
}

static double element(const np_array *a, int64_t i)
{
    const unsigned char *p = a->data + i * a->size;
    uint64_t u = 0;
    for (int k = a->size - 1; k >= 0; k--)
        u = u << 8 | p[k];
    switch (a->kind) {
    case NP_FLOAT:
        if (a->size == 4) {
            uint32_t w = (uint32_t)u;
            float f;
            memcpy(&f, &w, 4);
            return f;
        } else {
            double d;
            memcpy(&d, &u, 8);
            return d;
        }
    case NP_INT: {
        int shift = 64 - 8 * a->size;
        return (double)((int64_t)(u << shift) >> shift);
    }
    case NP_UINT:
        return (double)u;
    case NP_BOOL:
        return u != 0;
    }
    return 0;
}

/* ---------------------------------------------------------------- .npz */

static uint32_t le16(const unsigned char *p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8; }
static uint32_t le32(const unsigned char *p) { return le16(p) | le16(p + 2) << 16; }
static uint64_t le64(const unsigned char *p) { return le32(p) | (uint64_t)le32(p + 4) << 32; }

/* Member `member` (or `member`.npy) of the zip in b; *out is tk_malloc'd when inflated, else
 * points into b (*owned false). */
static tk_status npz_member(const unsigned char *b, size_t len, const char *zipname,
                            const char *member, unsigned char **out, size_t *out_len,
                            bool *owned, tk_ctx *ctx)
{
    *out = NULL;
    *owned = false;
    if (len < 22)
        return tk_fail(ctx, TK_ERR_INPUT, "%s: not a zip (.npz) archive", zipname);
    size_t eocd = len - 22, stop = len > 22 + 65535 ? len - 22 - 65535 : 0;
    while (le32(b + eocd) != 0x06054b50) {
        if (eocd == stop)
            return tk_fail(ctx, TK_ERR_INPUT, "%s: not a zip (.npz) archive (no end of "
                           "central directory)", zipname);
        eocd--;
    }
    uint64_t count = le16(b + eocd + 10), cd = le32(b + eocd + 16);
    if (eocd >= 20 && le32(b + eocd - 20) == 0x07064b50) {
        uint64_t z = le64(b + eocd - 12);
        /* len < 56 first: a file shorter than the zip64 record made len - 56 wrap (fuzz_npy) */
        if (len < 56 || z > len - 56 || le32(b + z) != 0x06064b50)
            return tk_fail(ctx, TK_ERR_INPUT, "%s: corrupt zip64 directory", zipname);
        count = le64(b + z + 32);
        cd = le64(b + z + 48);
    }
    size_t mlen = strlen(member);
    char found[256];
    size_t pos = cd;
    for (uint64_t e = 0; e < count; e++) {
        if (pos > len || len - pos < 46 || le32(b + pos) != 0x02014b50)
            return tk_fail(ctx, TK_ERR_INPUT, "%s: corrupt zip central directory", zipname);
        uint32_t method = le16(b + pos + 10), crc = le32(b + pos + 16);
        uint64_t csize = le32(b + pos + 20), usize = le32(b + pos + 24);
        size_t nlen = le16(b + pos + 28), xlen = le16(b + pos + 30), clen = le16(b + pos + 32);
        uint64_t off = le32(b + pos + 42);
        if (len - pos - 46 < nlen + xlen + clen)
            return tk_fail(ctx, TK_ERR_INPUT, "%s: corrupt zip central directory", zipname);
        const char *nm = (const char *)b + pos + 46;
        bool match = (nlen == mlen && memcmp(nm, member, mlen) == 0) ||
                     (nlen == mlen + 4 && memcmp(nm, member, mlen) == 0 &&
                      memcmp(nm + mlen, ".npy", 4) == 0);
        /* zip64 extra field: the 32-bit fields that are all ones, in this order. */
        const unsigned char *x = b + pos + 46 + nlen, *xend = x + xlen;
        while (match && xend - x >= 4) {
            size_t fl = le16(x + 2);
            if ((size_t)(xend - x - 4) < fl)
                break;
            if (le16(x) == 1) {
                const unsigned char *f = x + 4, *fend = f + fl;
                if (usize == 0xFFFFFFFFu && fend - f >= 8)
                    usize = le64(f), f += 8;
                if (csize == 0xFFFFFFFFu && fend - f >= 8)
                    csize = le64(f), f += 8;
                if (off == 0xFFFFFFFFu && fend - f >= 8)
                    off = le64(f);
            }
            x += 4 + fl;
        }
        pos += 46 + nlen + xlen + clen;
        if (!match)
            continue;
        snprintf(found, sizeof found, "%s:%.*s", zipname, (int)nlen, nm);
        if (off > len || len - off < 30 || le32(b + off) != 0x04034b50)
            return tk_fail(ctx, TK_ERR_INPUT, "%s: corrupt zip local header", found);
        uint64_t data = off + 30 + le16(b + off + 26) + le16(b + off + 28);
        if (data > len || csize > len - data)
            return tk_fail(ctx, TK_ERR_INPUT, "%s: truncated zip member", found);
        if (le16(b + pos - 46 - nlen - xlen - clen + 8) & 1)
            return tk_fail(ctx, TK_ERR_INPUT, "%s: encrypted zip members are not supported",
                           found);
        if (method == 0) {
            if (usize != csize)
                return tk_fail(ctx, TK_ERR_INPUT, "%s: corrupt stored zip member", found);
            *out = (unsigned char *)b + data;
        } else if (method == 8) {
            /* deflate expands at most ~1032:1, which bounds what a lying size can cost */
            if (usize > csize * 1032 + 1024 || usize > ((uint64_t)1 << 30))
                return tk_fail(ctx, TK_ERR_INPUT, "%s: implausible uncompressed size %llu",
                               found, (unsigned long long)usize);
            unsigned char *u = tk_malloc(usize ? (size_t)usize : 1);
            if (!u)
                return tk_fail(ctx, TK_ERR_RUNTIME, "%s: out of memory", found);
            z_stream zs = {0};
            int rc = inflateInit2(&zs, -MAX_WBITS);
            if (rc == Z_OK) {
                zs.next_in = (unsigned char *)b + data;
                zs.avail_in = (uInt)csize;
                zs.next_out = u;
                zs.avail_out = (uInt)usize;
                rc = inflate(&zs, Z_FINISH);
                inflateEnd(&zs);
            }
            if (rc != Z_STREAM_END || zs.total_out != usize) {
                tk_free(u);
                return tk_fail(ctx, TK_ERR_INPUT, "%s: corrupt deflate data", found);
            }
            *out = u;
            *owned = true;
        } else {
            return tk_fail(ctx, TK_ERR_INPUT, "%s: zip compression method %u is not supported "
                           "(stored or deflated only)", found, method);
        }
        if (crc32(0L, *out, (uInt)usize) != crc) {
            if (*owned)
                tk_free(*out);
            *out = NULL;
            *owned = false;
            return tk_fail(ctx, TK_ERR_INPUT, "%s: CRC mismatch (corrupt archive)", found);
        }
        *out_len = (size_t)usize;
        return TK_OK;
    }
    return tk_fail(ctx, TK_ERR_INPUT, "%s: no member '%s' (or '%s.npy') in the archive",
                   zipname, member, member);
}

/* ---------------------------------------------------------------- entry points */

/* One array: from a .npy file, or member `member` of an .npz file when member != NULL. The
 * bytes stay alive in *keep (tk_free), which a.data points into. */
static tk_status load_array(const char *path, const char *member, np_array *a,
                            unsigned char **keep, char *label, size_t cap, tk_ctx *ctx)
{
    unsigned char *file;
    size_t len;
    *keep = NULL;
    tk_status st = tk_data_slurp(path, &file, &len, ctx);
    if (st)
        return st;
    const char *name = tk_data_basename(path);
    snprintf(label, cap, "%s", name);
    if (!member) {
        if (len >= 4 && memcmp(file, "PK\3\4", 4) == 0)
            st = tk_fail(ctx, TK_ERR_INPUT, "%s: a .npz archive, not a .npy file (name the "
                         "member: data.npy { npz = ..., x = ... })", name);
        else
            st = parse_npy(file, len, a, name, ctx);
        if (st)
            tk_free(file);
        else
            *keep = file;
        return st;
    }
    unsigned char *m;
    size_t mlen;
    bool owned;
    st = npz_member(file, len, name, member, &m, &mlen, &owned, ctx);
    if (!st) {
        snprintf(label, cap, "%s:%s", name, member);
        st = parse_npy(m, mlen, a, label, ctx);
    }
    if (!st && owned) {
        tk_free(file);
        *keep = m;
    } else {
        if (owned)
            tk_free(m);
        if (st)
            tk_free(file);
        else
            *keep = file;
    }
    return st;
}

tk_status tk_npy_read(const char *path, tk_shape *shape, float **data, tk_ctx *ctx)
{
    *data = NULL;
    np_array a;
    unsigned char *keep;
    char label[300];
    tk_status st = load_array(path, NULL, &a, &keep, label, sizeof label, ctx);
    if (st)
        return st;
    float *f = malloc((size_t)(a.numel ? a.numel : 1) * sizeof(float));
    if (!f) {
        tk_free(keep);
        return tk_fail(ctx, TK_ERR_RUNTIME, "%s: out of memory", label);
    }
    for (int64_t i = 0; i < a.numel; i++)
        f[i] = (float)element(&a, i);
    tk_free(keep);
    *shape = a.shape;
    *data = f;
    return TK_OK;
}

/* Labels of n samples from array a: class ids (integral, 0 <= id < 2^24) or targets. */
static tk_status read_labels(tk_dataset *ds, const np_array *a, const char *label, int64_t n,
                             bool regression, tk_ctx *ctx)
{
    const tk_shape *s = &a->shape;
    if (s->ndim == 0 || s->ndim > 2 || s->d[0] != n)
        return tk_fail(ctx, TK_ERR_INPUT, "%s: labels must have shape (%lld,) or (%lld, T) "
                       "to match the features (got %s)", label, (long long)n, (long long)n,
                       tk_shape_str(s, (char[96]){0}, 96));
    int64_t width = s->ndim == 2 ? s->d[1] : 1;
    if (width < 1 || width > 65536 || (!regression && width != 1))
        return tk_fail(ctx, TK_ERR_INPUT, "%s: class labels must be one id per sample (shape "
                       "(%lld,) or (%lld, 1)), got %s", label, (long long)n, (long long)n,
                       tk_shape_str(s, (char[96]){0}, 96));
    if (!(ds->y = tk_malloc((size_t)(n * width) * sizeof(float) + 1)))
        return tk_fail(ctx, TK_ERR_RUNTIME, "%s: out of memory", label);
    ds->label_width = (int)width;
    ds->kind = regression ? TK_LABEL_REGRESSION : TK_LABEL_CLASS;
    double max = -1;
    for (int64_t i = 0; i < n * width; i++) {
        double v = element(a, i);
        if (!regression && !(v >= 0 && v < (1 << 24) && v == floor(v)))
            return tk_fail(ctx, TK_ERR_INPUT, "%s: label %lld is %g, not a class id (an "
                           "integer >= 0; float targets need a regression loss)", label,
                           (long long)i, v);
        if (regression && !isfinite(v))
            return tk_fail(ctx, TK_ERR_INPUT, "%s: target %lld is %g", label, (long long)i, v);
        max = v > max ? v : max;
        ds->y[i] = (float)v;
    }
    ds->n_classes = regression ? 0 : (int)max + 1;
    return TK_OK;
}

tk_status tk_dataset_npy(const tk_npy_opts *o, tk_dataset **out, tk_ctx *ctx)
{
    *out = NULL;
    if (!o || !o->x || !*o->x)
        return tk_fail(ctx, TK_ERR_INPUT, "npy: no features array given");
    const char *npz = o->npz && *o->npz ? o->npz : NULL;
    const char *y = o->y && *o->y ? o->y : NULL;
    np_array xa, ya;
    unsigned char *xkeep = NULL, *ykeep = NULL;
    char xl[300], yl[300];
    tk_status st = load_array(npz ? npz : o->x, npz ? o->x : NULL, &xa, &xkeep, xl, sizeof xl,
                              ctx);
    if (!st && (xa.shape.ndim < 1 || xa.shape.d[0] == 0))
        st = tk_fail(ctx, TK_ERR_INPUT, "%s: features need shape (N, ...) with N > 0 (got %s)",
                     xl, tk_shape_str(&xa.shape, (char[96]){0}, 96));
    if (!st && xa.shape.ndim == 1)
        st = tk_fail(ctx, TK_ERR_INPUT, "%s: a 1-dimensional array holds one value per sample; "
                     "features need shape (N, D) or (N, C, H, W) (reshape it to (N, 1))", xl);
    if (!st && y)
        st = load_array(npz ? npz : y, npz ? y : NULL, &ya, &ykeep, yl, sizeof yl, ctx);
    tk_dataset *ds = NULL;
    if (!st && !(ds = tk_dataset_alloc(npz ? npz : o->x, "record")))
        st = tk_fail(ctx, TK_ERR_RUNTIME, "out of memory");
    if (!st) {
        ds->n = xa.shape.d[0];
        ds->nfeat = xa.numel / ds->n;
        ds->shape.ndim = xa.shape.ndim - 1;
        for (int i = 1; i < xa.shape.ndim; i++)
            ds->shape.d[i - 1] = xa.shape.d[i];
        ds->kind = o->regression ? TK_LABEL_REGRESSION : TK_LABEL_CLASS;
        if (ds->nfeat == 0)
            st = tk_fail(ctx, TK_ERR_INPUT, "%s: samples have no features (shape %s)", xl,
                         tk_shape_str(&xa.shape, (char[96]){0}, 96));
    }
    /* uint8 stays bytes (a quarter of the memory); everything else becomes float32. */
    if (!st && xa.kind == NP_UINT && xa.size == 1) {
        if ((ds->x8 = tk_malloc((size_t)xa.numel)))
            memcpy(ds->x8, xa.data, (size_t)xa.numel);
    } else if (!st && (ds->x32 = tk_malloc((size_t)xa.numel * sizeof(float)))) {
        for (int64_t i = 0; i < xa.numel; i++)
            ds->x32[i] = (float)element(&xa, i);
    }
    if (!st && !ds->x8 && !ds->x32)
        st = tk_fail(ctx, TK_ERR_RUNTIME, "%s: out of memory", xl);
    if (!st && y)
        st = read_labels(ds, &ya, yl, ds->n, o->regression, ctx);
    tk_free(xkeep);
    tk_free(ykeep);
    if (st) {
        tk_dataset_free(ds);
        return st;
    }
    *out = ds;
    return TK_OK;
}
