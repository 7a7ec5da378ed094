/* test_safetensors.c - the safetensors reader and writer: round trips (tensors, metadata),
 * a file written by Python (tests/gen_fixtures.py), every rejection the parser promises, dtype
 * conversions, allocation-failure cleanup, and a seeded mutation loop (run it under ASan).
 * Not here: checkpoint contents (that is ckpt's test). */
#include "check.h"
#include "tk_int.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static tk_ctx *ctx;

/* ---------------------------------------------------------------- file images */

/* 8-byte little-endian header length, the header, then `dlen` data bytes. */
static unsigned char *image(const char *header, const void *data, size_t dlen, size_t *len)
{
    size_t n = strlen(header);
    unsigned char *b = malloc(8 + n + dlen + 1);
    for (int i = 0; i < 8; i++)
        b[i] = (unsigned char)((uint64_t)n >> (8 * i));
    memcpy(b + 8, header, n);
    if (dlen)
        memcpy(b + 8 + n, data, dlen);
    *len = 8 + n + dlen;
    return b;
}

static unsigned char *read_all(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return NULL;
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)n + 1);
    *len = fread(b, 1, (size_t)n, fp);
    fclose(fp);
    return b;
}

static void reject_bytes(const unsigned char *b, size_t len, const char *want, int line)
{
    tk_st_file *f = (tk_st_file *)1;
    tk_status st = tk_st_parse(b, len, "t.safetensors", &f, ctx);
    CHECK_MSG(st == TK_ERR_INPUT && f == NULL, "line %d: status %d", line, st);
    CHECK_MSG(strncmp(tk_errmsg(ctx), "t.safetensors: ", 15) == 0 &&
                  tk_contains(tk_errmsg(ctx), want),
              "line %d: want '%s', got '%s'", line, want, tk_errmsg(ctx));
    tk_st_free(st == TK_OK ? f : NULL);
}

static void reject(const char *header, const void *data, size_t dlen, const char *want, int line)
{
    size_t len;
    unsigned char *b = image(header, data, dlen, &len);
    reject_bytes(b, len, want, line);
    free(b);
}
#define REJECT(h, d, n, want) reject(h, d, n, want, __LINE__)
#define REJECT0(h, want) reject(h, NULL, 0, want, __LINE__)

static tk_st_file *accept(const char *header, const void *data, size_t dlen)
{
    size_t len;
    unsigned char *b = image(header, data, dlen, &len);
    tk_st_file *f = NULL;
    tk_status st = tk_st_parse(b, len, "t.safetensors", &f, ctx);
    CHECK_MSG(st == TK_OK, "%s: %s", header, tk_errmsg(ctx));
    free(b);
    return f;
}

static bool same_bits(const float *a, const float *b, size_t n)
{
    return memcmp(a, b, n * sizeof(float)) == 0;
}

/* ---------------------------------------------------------------- round trips */

static void test_round_trip(void)
{
    const char *dir = check_tmpdir("st_round_trip");
    char path[4200];
    snprintf(path, sizeof path, "%s/rt.safetensors", dir);
    float w[6] = {1.5f, -0.0f, INFINITY, NAN, 1e-45f, -3.25f};
    float bias[3] = {0.1f, 0.2f, 0.3f};
    float s = 42.0f;
    float z[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    tk_st_tensor t[5] = {
        {"b.weight", {2, {2, 3}}, w},
        {"a.bias", {1, {3}}, bias},
        {"scalar", {0, {0}}, &s},
        {"empty", {2, {0, 4}}, NULL},
        {"z", {6, {1, 2, 1, 2, 1, 2}}, z},
    };
    CHECK(tk_st_save(path, t, 5, NULL, NULL, 0, ctx) == TK_OK);
    tk_st_file *f;
    CHECK_MSG(tk_st_load(path, &f, ctx) == TK_OK, "%s", tk_errmsg(ctx));
    if (!f)
        return;
    CHECK(tk_st_count(f) == 5);
    /* File order is the writer's: sorted by name. */
    const char *want[5] = {"a.bias", "b.weight", "empty", "scalar", "z"};
    const int src[5] = {1, 0, 3, 2, 4};
    for (int i = 0; i < 5; i++) {
        CHECK(strcmp(tk_st_name(f, i), want[i]) == 0);
        CHECK(tk_st_find(f, want[i]) == i);
        tk_shape sh = tk_st_shape(f, i), orig = t[src[i]].shape;
        CHECK(sh.ndim == orig.ndim);
        CHECK(memcmp(sh.d, orig.d, (size_t)sh.ndim * sizeof sh.d[0]) == 0);
        int64_t numel = 1;
        for (int d = 0; d < sh.ndim; d++)
            numel *= sh.d[d];
        if (numel)
            CHECK(same_bits(tk_st_data(f, i), t[src[i]].data, (size_t)numel));
    }
    CHECK(tk_st_find(f, "nope") == -1);
    CHECK(tk_st_meta_count(f) == 0);
    CHECK(tk_st_meta(f, "format") == NULL);
    CHECK(tk_st_name(f, 5) == NULL && tk_st_data(f, -1) == NULL);
    tk_st_free(f);

    /* The layout the reference writer produces: header padded with spaces to 8 bytes. */
    size_t len;
    unsigned char *b = read_all(path, &len);
    CHECK(b != NULL);
    if (!b)
        return;
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--)
        n = n << 8 | b[i];
    CHECK(n % 8 == 0 && b[8] == '{');
    CHECK(len == 8 + n + 4 * (6 + 3 + 1 + 8));
    CHECK(tk_contains((const char *)b + 8,
                      "{\"a.bias\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12]},"));
    CHECK(tk_contains((const char *)b + 8, "\"scalar\":{\"dtype\":\"F32\",\"shape\":[],"));
    size_t last = 8 + (size_t)n - 1;
    while (b[last] == ' ')
        last--;
    CHECK(b[last] == '}' && last + 8 > 8 + n - 1);
    free(b);
}

static void test_metadata_round_trip(void)
{
    const char *dir = check_tmpdir("st_meta");
    char path[4200];
    snprintf(path, sizeof path, "%s/meta.safetensors", dir);
    const char *keys[4] = {"format", "note", "caf\xc3\xa9 \xf0\x9d\x84\x9e", "empty"};
    const char *vals[4] = {"pt", "quote \" backslash \\ nl \n tab \t cr \r ctl \x01\x1f del \x7f /",
                           "\xe2\x98\x95", ""};
    float x = 1.0f;
    tk_st_tensor t = {"x", {1, {1}}, &x};
    CHECK(tk_st_save(path, &t, 1, keys, vals, 4, ctx) == TK_OK);
    tk_st_file *f;
    CHECK_MSG(tk_st_load(path, &f, ctx) == TK_OK, "%s", tk_errmsg(ctx));
    if (!f)
        return;
    CHECK(tk_st_meta_count(f) == 4);
    for (int i = 0; i < 4; i++) {
        CHECK(strcmp(tk_st_meta_key(f, i), keys[i]) == 0); /* given order */
        CHECK(tk_st_meta(f, keys[i]) && strcmp(tk_st_meta(f, keys[i]), vals[i]) == 0);
    }
    CHECK(tk_st_meta(f, "missing") == NULL && tk_st_meta_key(f, 4) == NULL);
    CHECK(tk_st_count(f) == 1 && tk_st_data(f, 0)[0] == 1.0f);
    tk_st_free(f);

    /* No tensors, no metadata: the smallest valid file. */
    CHECK(tk_st_save(path, NULL, 0, NULL, NULL, 0, ctx) == TK_OK);
    CHECK(tk_st_load(path, &f, ctx) == TK_OK && tk_st_count(f) == 0);
    tk_st_free(f);
}

static void test_save_errors(void)
{
    const char *dir = check_tmpdir("st_save_errors");
    char path[4200];
    snprintf(path, sizeof path, "%s/bad.safetensors", dir);
    float x[2] = {1, 2};
    tk_st_tensor dup[2] = {{"a", {1, {1}}, x}, {"a", {1, {1}}, x + 1}};
    CHECK(tk_st_save(path, dup, 2, NULL, NULL, 0, ctx) == TK_ERR_INPUT);
    CHECK(tk_contains(tk_errmsg(ctx), "duplicate tensor name 'a'"));
    tk_st_tensor reserved = {"__metadata__", {1, {1}}, x};
    CHECK(tk_st_save(path, &reserved, 1, NULL, NULL, 0, ctx) == TK_ERR_INPUT);
    tk_st_tensor bad_utf8 = {"\xff", {1, {1}}, x};
    CHECK(tk_st_save(path, &bad_utf8, 1, NULL, NULL, 0, ctx) == TK_ERR_INPUT);
    tk_st_tensor neg = {"n", {1, {-1}}, x};
    CHECK(tk_st_save(path, &neg, 1, NULL, NULL, 0, ctx) == TK_ERR_INPUT);
    tk_st_tensor nodata = {"n", {1, {2}}, NULL};
    CHECK(tk_st_save(path, &nodata, 1, NULL, NULL, 0, ctx) == TK_ERR_INPUT);
    const char *k[2] = {"k", "k"}, *v[2] = {"1", "2"};
    CHECK(tk_st_save(path, NULL, 0, k, v, 2, ctx) == TK_ERR_INPUT);
    CHECK(tk_contains(tk_errmsg(ctx), "duplicate metadata key 'k'"));
    CHECK(read_all(path, &(size_t){0}) == NULL); /* nothing written by a failed save */
    snprintf(path, sizeof path, "%s/no/such/dir/x.safetensors", dir);
    CHECK(tk_st_save(path, dup, 1, NULL, NULL, 0, ctx) == TK_ERR_RUNTIME);
    CHECK(tk_contains(tk_errmsg(ctx), "no/such/dir"));
}

/* ---------------------------------------------------------------- the Python fixture */

static void test_python_file(void)
{
    tk_st_file *f;
    const char *path = TK_FIXTURES "/tiny_torch.safetensors";
    CHECK_MSG(tk_st_load(path, &f, ctx) == TK_OK, "%s", tk_errmsg(ctx));
    if (!f)
        return;
    static const struct {
        const char *name;
        int ndim;
        int64_t d0, d1;
        float v[6];
        int n;
    } want[] = {
        {"f32", 2, 2, 3, {-1.0f, -0.5f, 0.0f, 0.5f, 1.0f, 1.5f}, 6},
        {"f64", 1, 4, 0, {1.5f, -2.25f, 0.1f, INFINITY}, 4},
        {"i64", 2, 2, 2, {-3.0f, 0.0f, 7.0f, 1099511627776.0f}, 4},
        {"i32", 1, 2, 0, {-2147483648.0f, 5.0f}, 2},
        {"u8", 1, 3, 0, {0.0f, 255.0f, 17.0f}, 3},
        {"bool", 1, 3, 0, {1.0f, 0.0f, 1.0f}, 3},
        {"f16", 1, 6, 0, {1.0f, -2.5f, 65504.0f, 0x3p-24f, -0.0f, -INFINITY}, 6},
        {"bf16", 1, 4, 0, {1.0f, -3.0f, 0.10009765625f, 0x1.fep+127f}, 4},
        {"scalar", 0, 0, 0, {3.25f}, 1},
    };
    CHECK(tk_st_count(f) == (int)(sizeof want / sizeof want[0]));
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        int k = tk_st_find(f, want[i].name);
        CHECK_MSG(k >= 0, "%s", want[i].name);
        if (k < 0)
            continue;
        tk_shape s = tk_st_shape(f, k);
        CHECK_MSG(s.ndim == want[i].ndim && (s.ndim < 1 || s.d[0] == want[i].d0) &&
                      (s.ndim < 2 || s.d[1] == want[i].d1), "%s", want[i].name);
        CHECK_MSG(same_bits(tk_st_data(f, k), want[i].v, (size_t)want[i].n), "%s",
                  want[i].name);
    }
    CHECK(tk_st_meta(f, "format") && strcmp(tk_st_meta(f, "format"), "pt") == 0);
    /* Python's json escapes non-ASCII as \uXXXX: this exercises the decoder. */
    CHECK(tk_st_meta(f, "note") &&
          strcmp(tk_st_meta(f, "note"), "quote \" and caf\xc3\xa9 \xf0\x9d\x84\x9e") == 0);
    tk_st_free(f);
}

/* ---------------------------------------------------------------- rejections */

static void test_rejections(void)
{
    unsigned char d[64] = {0};
    /* The exact message format: label, "header", what, file offset. */
    size_t len;
    unsigned char *b = image("{\"a\" 1}", NULL, 0, &len);
    tk_st_file *f;
    CHECK(tk_st_parse(b, len, "x.safetensors", &f, ctx) == TK_ERR_INPUT);
    CHECK_MSG(strcmp(tk_errmsg(ctx), "x.safetensors: header: expected ':' at byte 13") == 0,
              "%s", tk_errmsg(ctx));
    free(b);

    /* Framing. */
    reject_bytes((const unsigned char *)"\x02\0\0\0\0", 5, "too short", __LINE__);
    b = image("{}", NULL, 0, &len);
    b[0] = 100;
    reject_bytes(b, len, "header length 100 exceeds the file (2 bytes", __LINE__);
    b[7] = 0x80; /* a length near 2^63 must not wrap any arithmetic */
    reject_bytes(b, len, "exceeds the file", __LINE__);
    free(b);
    REJECT0("", "expected '{' at byte 8");
    REJECT0("[]", "expected '{'");
    REJECT0("{} x", "trailing characters after the header object at byte 11");
    REJECT0("{}}", "trailing characters");
    b = image("{}  ", NULL, 0, &len);
    b[11] = 0; /* a NUL is not whitespace */
    reject_bytes(b, len, "trailing characters after the header object at byte 11", __LINE__);
    free(b);
    REJECT0("{\"a\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]}", "expected ','");
    REJECT0("{\"a\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]},}", "expected a string");
    REJECT0("{\"a\":5}", "expected '{'");

    /* Strings. */
    REJECT0("{\"a", "unterminated string at byte 9");
    REJECT0("{\"a\\\"}", "unterminated string");
    REJECT0("{\"\\q\":{}}", "invalid escape '\\q'");
    REJECT0("{\"\\u12G4\":{}}", "invalid \\u escape");
    REJECT0("{\"\\u12\":{}}", "invalid \\u escape");
    REJECT0("{\"\\ud800\":{}}", "lone surrogate");
    REJECT0("{\"\\ud800\\u0041\":{}}", "lone surrogate");
    REJECT0("{\"\\udc00\":{}}", "lone surrogate");
    REJECT0("{\"\\u0000\":{}}", "\\u0000 in a string");
    REJECT0("{\"a\nb\":{}}", "control character 0x0a");
    REJECT0("{\"\xff\":{}}", "invalid UTF-8");
    REJECT0("{\"\xc0\xaf\":{}}", "invalid UTF-8");         /* overlong '/' */
    REJECT0("{\"\xed\xa0\x80\":{}}", "invalid UTF-8");     /* encoded surrogate */
    REJECT0("{\"\xe2\x98\":{}}", "invalid UTF-8");         /* cut sequence */

    /* Integers and arrays. */
    REJECT0("{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,0]}}", "non-negative");
    REJECT0("{\"a\":{\"dtype\":\"F32\",\"shape\":[1.5],\"data_offsets\":[0,4]}}", "fraction");
    REJECT0("{\"a\":{\"dtype\":\"F32\",\"shape\":[1e3],\"data_offsets\":[0,4]}}", "exponent");
    REJECT0("{\"a\":{\"dtype\":\"F32\",\"shape\":[01],\"data_offsets\":[0,4]}}", "leading zero");
    REJECT0("{\"a\":{\"dtype\":\"F32\",\"shape\":[9223372036854775808],\"data_offsets\":[0,4]}}",
            "integer too large");
    REJECT0("{\"a\":{\"dtype\":\"F32\",\"shape\":[1 2],\"data_offsets\":[0,4]}}", "expected ',' or ']'");
    REJECT0("{\"a\":{\"dtype\":\"F32\",\"shape\":[1,],\"data_offsets\":[0,4]}}", "expected an integer");
    REJECT0("{\"a\":{\"dtype\":\"F32\",\"shape\":\"1\",\"data_offsets\":[0,4]}}", "expected '['");
    REJECT0("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}",
            "data_offsets must be [begin, end]");
    REJECT0("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4,8]}}",
            "data_offsets must be [begin, end]");
    REJECT0("{\"a\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,1,1,1],\"data_offsets\":[0,4]}}",
            "tensor 'a': more than 6 dims");

    /* Tensor objects. */
    REJECT0("{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", "tensor 'a': missing 'data_offsets'");
    REJECT0("{\"a\":{}}", "tensor 'a': missing 'dtype'");
    REJECT0("{\"a\":{\"dtype\":\"F32\",\"dtypes\":\"F32\"}}", "unknown key 'dtypes'");
    REJECT0("{\"a\":{\"shape\":[1],\"shape\":[1]}}", "duplicate key 'shape'");
    REJECT0("{\"a\":{\"dtype\":5}}", "expected a string");
    REJECT(("{\"a\":{\"dtype\":\"F8_E4M3\",\"shape\":[1],\"data_offsets\":[0,1]}}"), d, 1,
           "tensor 'a': unsupported dtype 'F8_E4M3'");
    REJECT(("{\"a\":{\"dtype\":\"f32\",\"shape\":[1],\"data_offsets\":[0,4]}}"), d, 4,
           "unsupported dtype 'f32'");

    /* Offsets against the data. */
    REJECT("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", d, 4,
           "tensor 'a': data_offsets [0, 8] lie beyond the data section (4 bytes)");
    REJECT("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", d, 8,
           "data_offsets [8, 0] are reversed");
    REJECT("{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", d, 8,
           "hold 8 bytes but 3 elements of F32 need 12");
    REJECT("{\"a\":{\"dtype\":\"F64\",\"shape\":[1],\"data_offsets\":[0,4]}}", d, 8,
           "1 elements of F64 need 8");
    REJECT("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
           "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", d, 12,
           "tensors 'a' and 'b' overlap in the data section ([0, 8] and [4, 12])");
    REJECT("{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
           "\"b\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,8]}}", d, 16, "overlap");
    REJECT("{\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]},"
           "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", d, 8, "overlap");
    REJECT("{\"a\":{\"dtype\":\"U8\",\"shape\":[4294967296,4294967296,4294967296],"
           "\"data_offsets\":[0,4]}}", d, 4, "tensor 'a': shape has too many elements");
    REJECT("{\"a\":{\"dtype\":\"U8\",\"shape\":[3037000500,3037000500],\"data_offsets\":[0,4]}}",
           d, 4, "too many elements");
    /* numel fits int64 but numel * size does not fit uint64. */
    REJECT("{\"a\":{\"dtype\":\"F64\",\"shape\":[2147483648,2147483648],\"data_offsets\":[0,8]}}",
           d, 8, "need more than 2^64");
    REJECT("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
           "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", d, 8,
           "header: duplicate tensor 'a' at byte 62");

    /* Metadata. */
    REJECT0("{\"__metadata__\":{\"epoch\":5}}", "__metadata__: value of 'epoch' is not a string");
    REJECT0("{\"__metadata__\":{\"k\":{}}}", "value of 'k' is not a string");
    REJECT0("{\"__metadata__\":{\"k\":null}}", "value of 'k' is not a string");
    REJECT0("{\"__metadata__\":[]}", "expected '{'");
    REJECT0("{\"__metadata__\":{},\"__metadata__\":{}}", "duplicate __metadata__ at byte 27");
    REJECT0("{\"__metadata__\":{\"k\":\"1\",\"k\":\"2\"}}", "duplicate __metadata__ key 'k'");
    REJECT0("{\"__metadata__\":{\"k\":\"1\" \"j\":\"2\"}}", "expected ','");
}

/* ---------------------------------------------------------------- accepted oddities */

static void test_accepts(void)
{
    unsigned char d[16] = {0, 0, 0x80, 0x3f, 0, 0x80, 0x3f, 0, 0, 0, 0, 0x40, 0, 0, 0, 0};
    tk_st_file *f = accept("{}", NULL, 0);
    CHECK(f && tk_st_count(f) == 0 && tk_st_meta_count(f) == 0 && tk_st_find(f, "a") == -1);
    tk_st_free(f);
    /* Whitespace anywhere JSON allows it, padding, escapes, gaps between tensors, an empty
     * tensor with huge other dims, a scalar, and an F32 at an unaligned offset. */
    f = accept(" {\n\t\"caf\\u00e9\\/\\ud834\\udd1e\" : { \"shape\" : [ ] ,\r\n"
               "\"data_offsets\" : [ 0 , 4 ] , \"dtype\" : \"F32\" } , \"__metadata__\":{},"
               "\"gap\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]},"
               "\"e\":{\"dtype\":\"F32\",\"shape\":[0,4611686018427387904],"
               "\"data_offsets\":[12,12]},"
               "\"odd\":{\"dtype\":\"BF16\",\"shape\":[1],\"data_offsets\":[5,7]}}       ",
               d, 16);
    if (f) {
        CHECK(tk_st_count(f) == 4);
        CHECK(strcmp(tk_st_name(f, 0), "caf\xc3\xa9/\xf0\x9d\x84\x9e") == 0);
        CHECK(tk_st_shape(f, 0).ndim == 0 && tk_st_data(f, 0)[0] == 1.0f);
        CHECK(tk_st_data(f, 1)[0] == 2.0f);
        CHECK(tk_st_shape(f, 2).ndim == 2 && tk_st_shape(f, 2).d[0] == 0);
        CHECK(tk_st_data(f, 3)[0] == 1.0f); /* BF16 at an odd offset */
        CHECK(tk_st_find(f, "e") == 2 && tk_st_find(f, "odd") == 3);
    }
    tk_st_free(f);
}

static void test_conversions(void)
{
    /* Little-endian encodings of known values, checked bit for bit after conversion. */
    static const unsigned char data[] = {
        /* F64 1.5, -0.1 */
        0, 0, 0, 0, 0, 0, 0xf8, 0x3f, 0x9a, 0x99, 0x99, 0x99, 0x99, 0x99, 0xb9, 0xbf,
        /* F16 1.0, -2.0, 2^-24 (smallest subnormal), 0x7e00 (NaN), 0xfc00 (-inf), 0x8000 */
        0x00, 0x3c, 0x00, 0xc0, 0x01, 0x00, 0x00, 0x7e, 0x00, 0xfc, 0x00, 0x80,
        /* BF16 1.0, -2.0 */
        0x80, 0x3f, 0x00, 0xc0,
        /* I64 -2, 2^53 + 1 (rounds to 2^53) */
        0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 1, 0, 0, 0, 0, 0, 0x20, 0,
        /* I32 -7 */
        0xf9, 0xff, 0xff, 0xff,
        /* U8 200, BOOL 0, 1, 2 */
        200, 0, 1, 2,
    };
    tk_st_file *f = accept(
        "{\"f64\":{\"dtype\":\"F64\",\"shape\":[2],\"data_offsets\":[0,16]},"
        "\"f16\":{\"dtype\":\"F16\",\"shape\":[2,3],\"data_offsets\":[16,28]},"
        "\"bf16\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[28,32]},"
        "\"i64\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[32,48]},"
        "\"i32\":{\"dtype\":\"I32\",\"shape\":[1],\"data_offsets\":[48,52]},"
        "\"u8\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[52,53]},"
        "\"bool\":{\"dtype\":\"BOOL\",\"shape\":[3],\"data_offsets\":[53,56]}}",
        data, sizeof data);
    if (!f)
        return;
    const float *x = tk_st_data(f, 0);
    CHECK(x[0] == 1.5f && x[1] == -0.1f);
    x = tk_st_data(f, 1);
    CHECK(x[0] == 1.0f && x[1] == -2.0f && x[2] == 0x1p-24f && isnan(x[3]));
    CHECK(isinf(x[4]) && x[4] < 0 && x[5] == 0.0f && signbit(x[5]));
    x = tk_st_data(f, 2);
    CHECK(x[0] == 1.0f && x[1] == -2.0f);
    x = tk_st_data(f, 3);
    CHECK(x[0] == -2.0f && x[1] == 9007199254740992.0f);
    CHECK(tk_st_data(f, 4)[0] == -7.0f && tk_st_data(f, 5)[0] == 200.0f);
    x = tk_st_data(f, 6);
    CHECK(x[0] == 0.0f && x[1] == 1.0f && x[2] == 1.0f);
    tk_st_free(f);
}

static void test_load_errors(void)
{
    tk_st_file *f = (tk_st_file *)1;
    CHECK(tk_st_load("/nonexistent/x.safetensors", &f, ctx) == TK_ERR_INPUT && f == NULL);
    CHECK(tk_contains(tk_errmsg(ctx), "cannot open '/nonexistent/x.safetensors'"));
    CHECK(tk_st_load(TK_FIXTURES, &f, ctx) == TK_ERR_INPUT);
    CHECK(tk_contains(tk_errmsg(ctx), "not a regular file"));

    /* Truncations of a real file: every cut fails cleanly and names the file. */
    const char *dir = check_tmpdir("st_truncated");
    char src[4200], cut[4200];
    snprintf(src, sizeof src, "%s/full.safetensors", dir);
    snprintf(cut, sizeof cut, "%s/cut.safetensors", dir);
    float v[4] = {1, 2, 3, 4};
    tk_st_tensor t = {"v", {1, {4}}, v};
    const char *k = "format", *val = "pt";
    CHECK(tk_st_save(src, &t, 1, &k, &val, 1, ctx) == TK_OK);
    size_t len;
    unsigned char *b = read_all(src, &len);
    if (!b)
        return;
    size_t cuts[] = {0, 7, 8, 20, len - 17, len - 16, len - 1};
    for (size_t i = 0; i < sizeof cuts / sizeof cuts[0]; i++) {
        FILE *fp = fopen(cut, "wb");
        fwrite(b, 1, cuts[i], fp);
        fclose(fp);
        CHECK(tk_st_load(cut, &f, ctx) == TK_ERR_INPUT);
        CHECK_MSG(tk_contains(tk_errmsg(ctx), "cut.safetensors: "), "%s", tk_errmsg(ctx));
    }
    CHECK(tk_contains(tk_errmsg(ctx), "lie beyond the data section"));
    free(b);
}

/* ---------------------------------------------------------------- robustness */

/* Every allocation failing in turn: the parser reports "out of memory" and leaks nothing. */
static void test_alloc_failures(void)
{
    size_t len;
    unsigned char *b = read_all(TK_FIXTURES "/tiny_torch.safetensors", &len);
    CHECK(b != NULL);
    if (!b)
        return;
    bool succeeded = false;
    for (long k = 0; k < 10000 && !succeeded; k++) {
        long before = check_live_blocks();
        tk_st_file *f;
        check_fail_after = k;
        tk_status st = tk_st_parse(b, len, "tiny", &f, ctx);
        check_fail_after = -1;
        if (st == TK_OK) {
            succeeded = true;
            tk_st_free(f);
        } else {
            CHECK_MSG(st == TK_ERR_RUNTIME && tk_contains(tk_errmsg(ctx), "tiny: out of memory"),
                      "k=%ld: %s", k, tk_errmsg(ctx));
        }
        CHECK_MSG(check_live_blocks() == before, "k=%ld: %ld blocks leaked", k,
                  check_live_blocks() - before);
    }
    CHECK(succeeded);
    free(b);
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t next_u64(void)
{
    /* xorshift64*: fixed seed, so every run mutates the same way. */
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 0x2545f4914f6cdd1dull;
}

static void test_mutations(void)
{
    size_t len;
    unsigned char *orig = read_all(TK_FIXTURES "/tiny_torch.safetensors", &len);
    CHECK(orig != NULL);
    if (!orig)
        return;
    size_t hlen = 8 + (size_t)orig[0] + ((size_t)orig[1] << 8);
    static const char tokens[] = "{}[],:\"\\ 0123456789-.eEu";
    int ok = 0, failed = 0;
    for (int it = 0; it < 300; it++) {
        unsigned char *b = malloc(len);
        memcpy(b, orig, len);
        size_t n = len;
        int kind = (int)(next_u64() % 4);
        int flips = 1 + (int)(next_u64() % 4);
        for (int j = 0; j < flips && kind < 2; j++) {
            /* Mostly inside the header, where the structure is. */
            size_t at = next_u64() % 4 ? next_u64() % hlen : next_u64() % len;
            if (kind == 0)
                b[at] ^= (unsigned char)(1u << (next_u64() % 8));
            else
                b[at] = (unsigned char)tokens[next_u64() % (sizeof tokens - 1)];
        }
        if (kind == 2)
            n = (size_t)(next_u64() % len);
        if (kind == 3)
            b[next_u64() % 8] = (unsigned char)next_u64();
        long before = check_live_blocks();
        tk_st_file *f = NULL;
        tk_status st = tk_st_parse(b, n, "mut.safetensors", &f, ctx);
        if (st == TK_OK) {
            ok++;
            /* Touch every element so ASan sees any bad pointer. */
            double sum = 0;
            for (int i = 0; i < tk_st_count(f); i++) {
                tk_shape s = tk_st_shape(f, i);
                int64_t numel = 1;
                for (int d = 0; d < s.ndim; d++)
                    numel = s.d[d] == 0 ? 0 : numel * s.d[d];
                for (int64_t e = 0; e < numel; e++)
                    sum += tk_st_data(f, i)[e];
                CHECK(tk_st_find(f, tk_st_name(f, i)) == i);
            }
            for (int i = 0; i < tk_st_meta_count(f); i++)
                CHECK(tk_st_meta(f, tk_st_meta_key(f, i)) != NULL);
            (void)sum;
            tk_st_free(f);
        } else {
            failed++;
            CHECK_MSG(st == TK_ERR_INPUT && f == NULL &&
                          strncmp(tk_errmsg(ctx), "mut.safetensors: ", 17) == 0,
                      "iteration %d: %d %s", it, st, tk_errmsg(ctx));
        }
        CHECK_MSG(check_live_blocks() == before, "iteration %d leaked", it);
        free(b);
    }
    CHECK(ok + failed == 300 && ok > 0 && failed > 0);
    printf("mutations: %d parsed, %d rejected\n", ok, failed);
    free(orig);
}

int main(void)
{
    check_count_allocations();
    ctx = tk_ctx_new();
    test_round_trip();
    test_metadata_round_trip();
    test_save_errors();
    test_python_file();
    test_rejections();
    test_accepts();
    test_conversions();
    test_load_errors();
    test_alloc_failures();
    test_mutations();
    tk_ctx_free(ctx);
    CHECK_MSG(check_live_blocks() == 0, "%ld blocks leaked", check_live_blocks());
    tk_set_allocator(NULL);
    return check_summary();
}
