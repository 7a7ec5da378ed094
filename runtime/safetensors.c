/* safetensors.c - reading and writing safetensors files: a strict parser for the subset of
 * JSON the header uses, validation of every tensor against the data section, conversion of
 * the supported dtypes to float32. The writer is safetensors_write.c.
 *
 * Byte positions in error messages are offsets in the file (the header starts at byte 8), so
 * they can be looked up in a hex dump. The reader copies every tensor into one aligned float
 * arena: file offsets need not be 4-byte aligned, and the caller may free the bytes. Gaps
 * between tensors in the data section are tolerated (they harm nothing); overlaps are not.
 *
 * Not here: what the tensors mean (checkpoint layout, parameter names, slots).
 */
#include "tk_int.h"
#include "safetensors.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum { DT_F32, DT_F64, DT_F16, DT_BF16, DT_I64, DT_I32, DT_U8, DT_BOOL, N_DTYPES };

static const struct {
    const char *name;
    uint64_t size;
} dtypes[N_DTYPES] = {
    [DT_F32] = {"F32", 4}, [DT_F64] = {"F64", 8}, [DT_F16] = {"F16", 2}, [DT_BF16] = {"BF16", 2},
    [DT_I64] = {"I64", 8}, [DT_I32] = {"I32", 4}, [DT_U8] = {"U8", 1},   [DT_BOOL] = {"BOOL", 1},
};

/* The string member comes first in st_entry, st_meta and tk_st_tensor, so sort_keys can
 * index all three. */
typedef struct {
    char *name;
    size_t at;                 /* file offset of the entry's key, for messages */
    int dtype;
    tk_shape shape;
    uint64_t begin, end;       /* relative to the data section */
    float *data;               /* into the arena */
} st_entry;

typedef struct {
    char *key, *val;
    size_t at;
} st_meta;

struct tk_st_file {
    st_entry *t;
    int n, cap;
    st_meta *meta;
    int n_meta, cap_meta;
    st_key *by_name, *by_key;  /* sorted, for lookups */
    float *arena;
};

#define HEADER_BASE 8 /* file offset of the header's first byte */

tk_status tk_st_oom(tk_ctx *ctx, const char *label)
{
    return tk_fail(ctx, TK_ERR_RUNTIME, "%s: out of memory", label);
}

static uint64_t rd_le(const unsigned char *p, int n)
{
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

/* Room for element n of a growable array; returns the (moved) array, or NULL with `arr`
 * still valid. */
static void *grow(void *arr, int *cap, int n, size_t elem)
{
    if (n < *cap)
        return arr;
    if (*cap > INT32_MAX / 4)
        return NULL;
    int c = *cap ? 2 * *cap : 16;
    void *q = tk_realloc(arr, (size_t)*cap * elem, (size_t)c * elem);
    if (q)
        *cap = c;
    return q;
}

/* Length of the valid UTF-8 sequence at s (at most n bytes), or 0. Overlong forms and
 * surrogates are invalid, as for the reference implementation's Rust strings. */
static int utf8_len(const unsigned char *s, size_t n)
{
    unsigned c = s[0], lo = 0x80, hi = 0xbf;
    int len = c < 0x80 ? 1 : c >= 0xc2 && c <= 0xdf ? 2 : c >= 0xe0 && c <= 0xef ? 3
            : c >= 0xf0 && c <= 0xf4 ? 4 : 0;
    if (len <= 1)
        return len;
    if (c == 0xe0)
        lo = 0xa0;
    else if (c == 0xed)
        hi = 0x9f;
    else if (c == 0xf0)
        lo = 0x90;
    else if (c == 0xf4)
        hi = 0x8f;
    if ((size_t)len > n || s[1] < lo || s[1] > hi)
        return 0;
    for (int i = 2; i < len; i++)
        if (s[i] < 0x80 || s[i] > 0xbf)
            return 0;
    return len;
}

bool tk_st_utf8_valid(const char *s)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t n = strlen(s);
    for (size_t i = 0, k; i < n; i += k)
        if (!(k = (size_t)utf8_len(u + i, n - i)))
            return false;
    return true;
}

static int cmp_key(const void *a, const void *b)
{
    const st_key *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    return c ? c : (x->idx > y->idx) - (x->idx < y->idx);
}

static int cmp_key_name(const void *a, const void *b)
{
    return strcmp(((const st_key *)a)->key, ((const st_key *)b)->key);
}

st_key *tk_st_sort_keys(const void *base, size_t stride, int n, int *dup)
{
    st_key *k = tk_malloc((size_t)n * sizeof *k);
    *dup = -1;
    if (!k)
        return NULL;
    for (int i = 0; i < n; i++)
        k[i] = (st_key){*(const char *const *)((const char *)base + (size_t)i * stride), i};
    qsort(k, (size_t)n, sizeof *k, cmp_key);
    for (int i = 1; i < n; i++)
        if (strcmp(k[i - 1].key, k[i].key) == 0 && (*dup < 0 || k[i].idx < *dup))
            *dup = k[i].idx;
    return k;
}

/* ---------------------------------------------------------------- header JSON */

typedef struct {
    const unsigned char *s;    /* the header */
    size_t len, pos;
    const char *label;
    tk_ctx *ctx;
} jparser;

static tk_status jfail_at(jparser *p, size_t at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static tk_status jfail_at(jparser *p, size_t at, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return tk_fail(p->ctx, TK_ERR_INPUT, "%s: header: %s at byte %zu", p->label, msg,
                   HEADER_BASE + at);
}

/* Skip JSON whitespace; the next byte, or -1 at the end of the header. */
static int peek(jparser *p)
{
    while (p->pos < p->len && strchr(" \t\n\r", p->s[p->pos]) && p->s[p->pos])
        p->pos++;
    return p->pos < p->len ? p->s[p->pos] : -1;
}

static tk_status expect(jparser *p, int c)
{
    if (peek(p) != c)
        return jfail_at(p, p->pos, "expected '%c'", c);
    p->pos++;
    return TK_OK;
}

static int hex4(const unsigned char *s)
{
    int v = 0;
    for (int i = 0; i < 4; i++) {
        int c = s[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
              : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
        if (d < 0)
            return -1;
        v = v << 4 | d;
    }
    return v;
}

/* \uXXXX (and its low surrogate) at p->pos, just after the 'u', as UTF-8 into out. */
static tk_status parse_u_escape(jparser *p, size_t end, char *out, size_t *o)
{
    size_t at = p->pos - 2;
    int cp = p->pos + 4 <= end ? hex4(p->s + p->pos) : -1;
    if (cp < 0)
        return jfail_at(p, at, "invalid \\u escape");
    p->pos += 4;
    if (cp >= 0xd800 && cp <= 0xdbff) {
        int lo = p->pos + 6 <= end && p->s[p->pos] == '\\' && p->s[p->pos + 1] == 'u'
                     ? hex4(p->s + p->pos + 2) : -1;
        if (lo < 0xdc00 || lo > 0xdfff)
            return jfail_at(p, at, "lone surrogate in \\u escape");
        p->pos += 6;
        cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
    } else if (cp >= 0xdc00 && cp <= 0xdfff) {
        return jfail_at(p, at, "lone surrogate in \\u escape");
    }
    /* Names and values are C strings. */
    if (cp == 0)
        return jfail_at(p, at, "\\u0000 in a string");
    static const unsigned char lead[5] = {0, 0, 0xc0, 0xe0, 0xf0};
    int n = cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
    for (int i = n - 1; i > 0; i--, cp >>= 6)
        out[*o + (size_t)i] = (char)(0x80 | (cp & 0x3f));
    out[*o] = (char)(lead[n] | cp);
    *o += (size_t)n;
    return TK_OK;
}

/* A JSON string into a new NUL-terminated UTF-8 buffer. */
static tk_status parse_string(jparser *p, char **out)
{
    *out = NULL;
    if (peek(p) != '"')
        return jfail_at(p, p->pos, "expected a string");
    size_t open = p->pos++;
    /* Find the closing quote first: the decoded text is never longer than the raw text. */
    size_t end = p->pos;
    while (end < p->len && p->s[end] != '"')
        end += p->s[end] == '\\' ? 2 : 1;
    if (end >= p->len)
        return jfail_at(p, open, "unterminated string");
    char *buf = tk_malloc(end - p->pos + 1);
    if (!buf)
        return tk_st_oom(p->ctx, p->label);
    size_t o = 0;
    tk_status st = TK_OK;
    while (p->pos < end && st == TK_OK) {
        unsigned c = p->s[p->pos];
        int k;
        if (c < 0x20) {
            st = jfail_at(p, p->pos, "control character 0x%02x in a string", c);
        } else if (c == '\\') {
            static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
            unsigned e = p->s[p->pos + 1]; /* before `end`: the scan skipped escaped bytes */
            const char *hit = e ? strchr(from, (int)e) : NULL;
            p->pos += 2;
            if (e == 'u')
                st = parse_u_escape(p, end, buf, &o);
            else if (hit)
                buf[o++] = to[hit - from];
            else
                st = jfail_at(p, p->pos - 2, "invalid escape '\\%c'",
                              e >= 0x20 && e < 0x7f ? (char)e : '?');
        } else if ((k = utf8_len(p->s + p->pos, end - p->pos)) == 0) {
            st = jfail_at(p, p->pos, "invalid UTF-8 in a string");
        } else {
            memcpy(buf + o, p->s + p->pos, (size_t)k);
            o += (size_t)k;
            p->pos += (size_t)k;
        }
    }
    if (st != TK_OK) {
        tk_free(buf);
        return st;
    }
    buf[o] = 0;
    p->pos = end + 1;
    *out = buf;
    return TK_OK;
}

static bool is_digit(jparser *p, size_t i)
{
    return i < p->len && p->s[i] >= '0' && p->s[i] <= '9';
}

static tk_status parse_uint(jparser *p, int64_t *v)
{
    int c = peek(p);
    size_t at = p->pos;
    if (c == '-')
        return jfail_at(p, at, "expected a non-negative integer");
    if (!is_digit(p, at))
        return jfail_at(p, at, "expected an integer");
    if (c == '0' && is_digit(p, at + 1))
        return jfail_at(p, at, "leading zero in an integer");
    int64_t x = 0;
    while (is_digit(p, p->pos)) {
        int d = p->s[p->pos++] - '0';
        if (x > (INT64_MAX - d) / 10)
            return jfail_at(p, at, "integer too large");
        x = x * 10 + d;
    }
    if (p->pos < p->len && strchr(".eE", p->s[p->pos]) && p->s[p->pos])
        return jfail_at(p, at, "expected an integer, found a fraction or exponent");
    *v = x;
    return TK_OK;
}

/* [int, ...] with at most max values; `too_many` is the message when there are more. */
static tk_status parse_uint_array(jparser *p, int64_t *vals, int max, int *n,
                                  const char *too_many)
{
    tk_status st = expect(p, '[');
    *n = 0;
    if (st != TK_OK)
        return st;
    if (peek(p) == ']') {
        p->pos++;
        return TK_OK;
    }
    for (;;) {
        if (*n == max)
            return jfail_at(p, p->pos, "%s", too_many);
        if ((st = parse_uint(p, &vals[(*n)++])) != TK_OK)
            return st;
        int c = peek(p);
        p->pos++;
        if (c == ']')
            return TK_OK;
        if (c != ',')
            return jfail_at(p, p->pos - 1, "expected ',' or ']'");
    }
}

/* {"key": value, ...}: `member` parses each value, the key (which it owns) already read
 * with its ':'; `at` is the key's offset in the header. */
typedef tk_status (*member_fn)(jparser *p, char *key, size_t at, void *ud);

static tk_status parse_object(jparser *p, member_fn member, void *ud)
{
    tk_status st = expect(p, '{');
    if (st != TK_OK)
        return st;
    if (peek(p) == '}') {
        p->pos++;
        return TK_OK;
    }
    for (;;) {
        char *key;
        peek(p);
        size_t at = p->pos;
        if ((st = parse_string(p, &key)) != TK_OK)
            return st;
        if ((st = expect(p, ':')) != TK_OK) {
            tk_free(key);
            return st;
        }
        if ((st = member(p, key, at, ud)) != TK_OK)
            return st;
        int c = peek(p);
        if (c != ',' && c != '}')
            return jfail_at(p, p->pos, "expected ',' or '}'");
        p->pos++;
        if (c == '}')
            return TK_OK;
    }
}

static const char *const fields[3] = {"dtype", "shape", "data_offsets"};

typedef struct {
    st_entry *e;
    bool seen[3];
} tensor_ud;

/* One field of a tensor's object: dtype, shape or data_offsets, each exactly once. */
static tk_status tensor_member(jparser *p, char *key, size_t at, void *ud)
{
    tensor_ud *t = ud;
    st_entry *e = t->e;
    int k = 0;
    while (k < 3 && strcmp(key, fields[k]) != 0)
        k++;
    tk_status st = k == 3 ? jfail_at(p, at, "tensor '%.200s': unknown key '%.200s'", e->name, key)
                 : t->seen[k] ? jfail_at(p, at, "tensor '%.200s': duplicate key '%s'", e->name, key)
                 : TK_OK;
    tk_free(key);
    if (st != TK_OK)
        return st;
    t->seen[k] = true;
    peek(p);
    size_t vat = p->pos;
    if (k == 0) {
        char *dt;
        if ((st = parse_string(p, &dt)) != TK_OK)
            return st;
        for (e->dtype = 0; e->dtype < N_DTYPES; e->dtype++)
            if (strcmp(dt, dtypes[e->dtype].name) == 0)
                break;
        if (e->dtype == N_DTYPES)
            st = jfail_at(p, vat, "tensor '%.200s': unsupported dtype '%.40s' (supported: F32, "
                          "F64, F16, BF16, I64, I32, U8, BOOL)", e->name, dt);
        tk_free(dt);
        return st;
    }
    if (k == 1) {
        char msg[300];
        snprintf(msg, sizeof msg, "tensor '%.200s': more than %d dims", e->name, TK_MAX_DIMS);
        return parse_uint_array(p, e->shape.d, TK_MAX_DIMS, &e->shape.ndim, msg);
    }
    int64_t off[2];
    int n;
    if ((st = parse_uint_array(p, off, 2, &n, "data_offsets must be [begin, end]")) != TK_OK)
        return st;
    if (n != 2)
        return jfail_at(p, vat, "data_offsets must be [begin, end]");
    e->begin = (uint64_t)off[0];
    e->end = (uint64_t)off[1];
    return TK_OK;
}

static tk_status meta_member(jparser *p, char *key, size_t at, void *ud)
{
    tk_st_file *f = ud;
    char *val = NULL;
    tk_status st = peek(p) != '"'
        ? jfail_at(p, p->pos, "__metadata__: value of '%.200s' is not a string", key)
        : parse_string(p, &val);
    st_meta *m = st == TK_OK ? grow(f->meta, &f->cap_meta, f->n_meta, sizeof *m) : NULL;
    if (st == TK_OK && !m)
        st = tk_st_oom(p->ctx, p->label);
    if (st != TK_OK) {
        tk_free(key);
        tk_free(val);
        return st;
    }
    f->meta = m;
    f->meta[f->n_meta++] = (st_meta){key, val, at};
    return TK_OK;
}

typedef struct {
    tk_st_file *f;
    bool seen_meta;
} header_ud;

/* A top-level member: __metadata__ or a tensor. */
static tk_status header_member(jparser *p, char *key, size_t at, void *ud)
{
    header_ud *h = ud;
    tk_st_file *f = h->f;
    if (strcmp(key, "__metadata__") == 0) {
        tk_free(key);
        if (h->seen_meta)
            return jfail_at(p, at, "duplicate __metadata__");
        h->seen_meta = true;
        return parse_object(p, meta_member, f);
    }
    st_entry *t = grow(f->t, &f->cap, f->n, sizeof *t);
    if (!t) {
        tk_free(key);
        return tk_st_oom(p->ctx, p->label);
    }
    f->t = t;
    tensor_ud tu = {&f->t[f->n++], {false, false, false}};
    *tu.e = (st_entry){.name = key, .at = at, .dtype = -1};
    tk_status st = parse_object(p, tensor_member, &tu);
    for (int k = 0; k < 3 && st == TK_OK; k++)
        if (!tu.seen[k])
            st = jfail_at(p, p->pos - 1, "tensor '%.200s': missing '%s'", tu.e->name,
                          fields[k]);
    return st;
}

static tk_status parse_header(jparser *p, tk_st_file *f)
{
    header_ud h = {f, false};
    tk_status st = parse_object(p, header_member, &h);
    if (st != TK_OK)
        return st;
    /* The reference writer pads the header with spaces; anything else is garbage. */
    if (peek(p) != -1)
        return jfail_at(p, p->pos, "trailing characters after the header object");
    return TK_OK;
}

/* ---------------------------------------------------------------- validation, conversion */

typedef struct {
    uint64_t begin, end;
    int idx;
} st_range;

static int cmp_range(const void *a, const void *b)
{
    const st_range *x = a, *y = b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end)
        return x->end < y->end ? -1 : 1;
    return (x->idx > y->idx) - (x->idx < y->idx);
}

/* Shape, offsets and size of one tensor against a data section of data_len bytes. */
static tk_status check_tensor(const st_entry *e, uint64_t data_len, const char *label,
                              tk_ctx *ctx)
{
    int64_t numel = 1;
    bool empty = false;
    for (int d = 0; d < e->shape.ndim; d++) {
        /* A zero dim makes the tensor empty, but the others must still multiply safely. */
        if (e->shape.d[d] == 0)
            empty = true;
        else if (numel > INT64_MAX / e->shape.d[d])
            return tk_fail(ctx, TK_ERR_INPUT, "%s: tensor '%.200s': shape has too many elements",
                           label, e->name);
        else
            numel *= e->shape.d[d];
    }
    if (empty)
        numel = 0;
    uint64_t size = dtypes[e->dtype].size, b = e->begin, x = e->end;
    if (b > x)
        return tk_fail(ctx, TK_ERR_INPUT, "%s: tensor '%.200s': data_offsets [%llu, %llu] are "
                       "reversed", label, e->name, (unsigned long long)b, (unsigned long long)x);
    if (x > data_len)
        return tk_fail(ctx, TK_ERR_INPUT, "%s: tensor '%.200s': data_offsets [%llu, %llu] lie "
                       "beyond the data section (%llu bytes)", label, e->name,
                       (unsigned long long)b, (unsigned long long)x,
                       (unsigned long long)data_len);
    bool huge = (uint64_t)numel > UINT64_MAX / size;
    if (huge || x - b != (uint64_t)numel * size) {
        char need[32] = "more than 2^64";
        if (!huge)
            snprintf(need, sizeof need, "%llu", (unsigned long long)((uint64_t)numel * size));
        return tk_fail(ctx, TK_ERR_INPUT, "%s: tensor '%.200s': data_offsets [%llu, %llu] hold "
                       "%llu bytes but %lld elements of %s need %s", label, e->name,
                       (unsigned long long)b, (unsigned long long)x, (unsigned long long)(x - b),
                       (long long)numel, dtypes[e->dtype].name, need);
    }
    return TK_OK;
}

static tk_status check_overlaps(const tk_st_file *f, const char *label, tk_ctx *ctx)
{
    st_range *r = tk_malloc((size_t)f->n * sizeof *r);
    if (!r)
        return tk_st_oom(ctx, label);
    for (int i = 0; i < f->n; i++)
        r[i] = (st_range){f->t[i].begin, f->t[i].end, i};
    qsort(r, (size_t)f->n, sizeof *r, cmp_range);
    tk_status st = TK_OK;
    int far = 0; /* the range reaching furthest so far */
    for (int i = 1; i < f->n && st == TK_OK; i++) {
        if (r[i].begin < r[far].end)
            st = tk_fail(ctx, TK_ERR_INPUT, "%s: tensors '%.200s' and '%.200s' overlap in the "
                         "data section ([%llu, %llu] and [%llu, %llu])", label,
                         f->t[r[far].idx].name, f->t[r[i].idx].name,
                         (unsigned long long)r[far].begin, (unsigned long long)r[far].end,
                         (unsigned long long)r[i].begin, (unsigned long long)r[i].end);
        if (r[i].end > r[far].end)
            far = i;
    }
    tk_free(r);
    return st;
}

static float bits_to_float(uint32_t bits)
{
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

static float half_to_float(uint32_t h)
{
    uint32_t sign = (h >> 15) << 31, exp = h >> 10 & 0x1f, man = h & 0x3ff;
    if (exp == 0x1f)
        return bits_to_float(sign | 0x7f800000u | man << 13);
    if (exp)
        return bits_to_float(sign | (exp + 112) << 23 | man << 13);
    /* Zero or subnormal: man * 2^-24 is exact in float. */
    float v = (float)man * 0x1p-24f;
    return sign ? -v : v;
}

static void convert(float *dst, const unsigned char *src, int dtype, uint64_t n)
{
    int size = (int)dtypes[dtype].size;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t u = rd_le(src + i * (uint64_t)size, size);
        double d;
        int64_t i64;
        int32_t i32;
        uint32_t u32 = (uint32_t)u;
        switch (dtype) {
        case DT_F32: dst[i] = bits_to_float(u32); break;
        case DT_F64:
            memcpy(&d, &u, sizeof d);
            dst[i] = (float)d; /* IEEE (Annex F) conversion: rounds, overflows to inf */
            break;
        case DT_F16: dst[i] = half_to_float(u32); break;
        case DT_BF16: dst[i] = bits_to_float(u32 << 16); break;
        case DT_I64:
            memcpy(&i64, &u, sizeof i64);
            dst[i] = (float)i64;
            break;
        case DT_I32:
            memcpy(&i32, &u32, sizeof i32);
            dst[i] = (float)i32;
            break;
        case DT_U8: dst[i] = (float)u; break;
        default: dst[i] = u ? 1.0f : 0.0f; break; /* BOOL */
        }
    }
}

/* ---------------------------------------------------------------- reading */

void tk_st_free(tk_st_file *f)
{
    if (!f)
        return;
    for (int i = 0; i < f->n; i++)
        tk_free(f->t[i].name);
    for (int i = 0; i < f->n_meta; i++) {
        tk_free(f->meta[i].key);
        tk_free(f->meta[i].val);
    }
    tk_free(f->t);
    tk_free(f->meta);
    tk_free(f->by_name);
    tk_free(f->by_key);
    tk_free_aligned(f->arena);
    tk_free(f);
}

/* After the header parsed: duplicates, tensor checks, then the float arena. */
static tk_status finish(tk_st_file *f, const unsigned char *data, uint64_t data_len,
                        const char *label, tk_ctx *ctx)
{
    int dup, mdup;
    f->by_name = tk_st_sort_keys(f->t, sizeof *f->t, f->n, &dup);
    f->by_key = tk_st_sort_keys(f->meta, sizeof *f->meta, f->n_meta, &mdup);
    if (!f->by_name || !f->by_key)
        return tk_st_oom(ctx, label);
    if (dup >= 0)
        return tk_fail(ctx, TK_ERR_INPUT, "%s: header: duplicate tensor '%.200s' at byte %zu",
                       label, f->t[dup].name, HEADER_BASE + f->t[dup].at);
    if (mdup >= 0)
        return tk_fail(ctx, TK_ERR_INPUT, "%s: header: duplicate __metadata__ key '%.200s' at "
                       "byte %zu", label, f->meta[mdup].key, HEADER_BASE + f->meta[mdup].at);
    uint64_t total = 0;
    for (int i = 0; i < f->n; i++) {
        tk_status st = check_tensor(&f->t[i], data_len, label, ctx);
        if (st != TK_OK)
            return st;
        total += (f->t[i].end - f->t[i].begin) / dtypes[f->t[i].dtype].size;
    }
    tk_status st = check_overlaps(f, label, ctx);
    if (st != TK_OK)
        return st;
    /* total <= data_len (every element takes at least one byte), so it fits a size_t. */
    f->arena = tk_alloc_floats((size_t)total);
    if (!f->arena)
        return tk_st_oom(ctx, label);
    size_t at = 0;
    for (int i = 0; i < f->n; i++) {
        st_entry *e = &f->t[i];
        uint64_t numel = (e->end - e->begin) / dtypes[e->dtype].size;
        e->data = f->arena + at;
        convert(e->data, data + e->begin, e->dtype, numel);
        at += (size_t)numel;
    }
    return TK_OK;
}

tk_status tk_st_parse(const void *bytes, size_t len, const char *label, tk_st_file **out,
                      tk_ctx *ctx)
{
    const unsigned char *b = bytes;
    *out = NULL;
    if (!label)
        label = "<memory>";
    if (len < 8)
        return tk_fail(ctx, TK_ERR_INPUT, "%s: file is %zu bytes, too short for a safetensors "
                       "header", label, len);
    uint64_t n = rd_le(b, 8);
    if (n > len - 8)
        return tk_fail(ctx, TK_ERR_INPUT, "%s: header length %llu exceeds the file (%zu bytes "
                       "after the length field): truncated or not a safetensors file", label,
                       (unsigned long long)n, len - 8);
    tk_st_file *f = tk_calloc(1, sizeof *f);
    if (!f)
        return tk_st_oom(ctx, label);
    jparser p = {b + 8, (size_t)n, 0, label, ctx};
    tk_status st = parse_header(&p, f);
    if (st == TK_OK)
        st = finish(f, b + 8 + n, len - 8 - n, label, ctx);
    if (st != TK_OK) {
        tk_st_free(f);
        return st;
    }
    *out = f;
    return TK_OK;
}

tk_status tk_st_load(const char *path, tk_st_file **out, tk_ctx *ctx)
{
    *out = NULL;
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return tk_fail(ctx, TK_ERR_INPUT, "cannot open '%s': %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return tk_fail(ctx, TK_ERR_INPUT, "'%s' is not a regular file", path);
    }
    size_t len = (size_t)sb.st_size;
    unsigned char *buf = (uint64_t)sb.st_size <= SIZE_MAX ? tk_malloc(len) : NULL;
    if (!buf) {
        close(fd);
        return tk_st_oom(ctx, path);
    }
    for (size_t got = 0; got < len;) {
        ssize_t r = read(fd, buf + got, len - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            int e = errno;
            close(fd);
            tk_free(buf);
            return tk_fail(ctx, TK_ERR_RUNTIME, "cannot read '%s': %s", path,
                           r == 0 ? "the file shrank while being read" : strerror(e));
        }
        got += (size_t)r;
    }
    close(fd);
    tk_status st = tk_st_parse(buf, len, path, out, ctx);
    tk_free(buf);
    return st;
}

int tk_st_count(const tk_st_file *f)
{
    return f->n;
}

const char *tk_st_name(const tk_st_file *f, int i)
{
    return i >= 0 && i < f->n ? f->t[i].name : NULL;
}

tk_shape tk_st_shape(const tk_st_file *f, int i)
{
    return i >= 0 && i < f->n ? f->t[i].shape : (tk_shape){0, {0}};
}

const float *tk_st_data(const tk_st_file *f, int i)
{
    return i >= 0 && i < f->n ? f->t[i].data : NULL;
}

static int lookup(const st_key *keys, int n, const char *s)
{
    st_key k = {s, 0};
    const st_key *hit = n ? bsearch(&k, keys, (size_t)n, sizeof k, cmp_key_name) : NULL;
    return hit ? hit->idx : -1;
}

int tk_st_find(const tk_st_file *f, const char *name)
{
    return lookup(f->by_name, f->n, name);
}

const char *tk_st_meta(const tk_st_file *f, const char *key)
{
    int i = lookup(f->by_key, f->n_meta, key);
    return i < 0 ? NULL : f->meta[i].val;
}

int tk_st_meta_count(const tk_st_file *f)
{
    return f->n_meta;
}

const char *tk_st_meta_key(const tk_st_file *f, int i)
{
    return i >= 0 && i < f->n_meta ? f->meta[i].key : NULL;
}
