/* test_npy.c - the .npy/.npz reader against files NumPy 1.24 wrote (tests/gen_fixtures_npy.py):
 * every dtype's values and shape, format 2.0, a scalar, stored and deflated .npz members as
 * datasets (uint8 features kept as bytes, class ids, regression targets); Fortran order,
 * big-endian, bad headers, truncation, extra bytes, a missing member, corrupt deflate data and
 * a CRC mismatch are errors that name the file. */
#include "check.h"
#include "data/dataset.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *dir;

static const char *fixture(const char *name)
{
    static char buf[4][512];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s/npy/%s", TK_FIXTURES, name);
    return buf[k];
}

static double expected(const char *name, int i)
{
    static const struct { const char *n; double m; int off; } t[] = {
        {"i1", 1, 12}, {"i2", 1000, 12}, {"i4", 100000, 12}, {"i8", 1e12, 12},
        {"u1", 10, 0}, {"u2", 2000, 0}, {"u4", 100000, 0}, {"u8", 1e12, 0},
    };
    if (name[0] == 'f' || strcmp(name, "v2") == 0)
        return i * 0.25 - 3;
    if (strcmp(name, "b1") == 0)
        return i % 3 == 0;
    for (size_t k = 0; k < sizeof t / sizeof *t; k++)
        if (strcmp(t[k].n, name) == 0)
            return (double)(i - t[k].off) * t[k].m;
    return NAN;
}

static void test_dtypes(void)
{
    const char *names[] = {"f4", "f8", "i1", "i2", "i4", "i8", "u1", "u2", "u4", "u8", "b1",
                           "v2"};
    tk_ctx *ctx = tk_ctx_new();
    for (size_t k = 0; k < sizeof names / sizeof *names; k++) {
        char file[32];
        snprintf(file, sizeof file, "%s.npy", names[k]);
        tk_shape s;
        float *x = NULL;
        tk_status st = tk_npy_read(fixture(file), &s, &x, ctx);
        CHECK_MSG(st == TK_OK, "%s: %s", file, tk_errmsg(ctx));
        if (st)
            continue;
        CHECK_MSG(s.ndim == 3 && s.d[0] == 2 && s.d[1] == 3 && s.d[2] == 4, "%s shape", file);
        int bad = 0;
        for (int i = 0; i < 24; i++)
            bad += x[i] != (float)expected(names[k], i);
        CHECK_MSG(bad == 0, "%s: %d values differ", file, bad);
        free(x);
    }
    tk_shape s;
    float *x = NULL;
    CHECK(tk_npy_read(fixture("scalar.npy"), &s, &x, ctx) == TK_OK);
    CHECK(s.ndim == 0 && x && x[0] == 2.5f);
    free(x);
    tk_ctx_free(ctx);
}

static void test_npz_datasets(void)
{
    const char *files[] = {"arrays.npz", "arrays_z.npz"};
    tk_ctx *ctx = tk_ctx_new();
    for (int k = 0; k < 2; k++) {
        tk_dataset *ds = NULL;
        tk_npy_opts o = {.npz = fixture(files[k]), .x = "x", .y = "y.npy"};
        CHECK_MSG(tk_dataset_npy(&o, &ds, ctx) == TK_OK, "%s", tk_errmsg(ctx));
        if (!ds)
            continue;
        tk_shape s = tk_dataset_sample_shape(ds);
        CHECK(tk_dataset_len(ds) == 6 && s.ndim == 3 && s.d[0] == 1 && s.d[1] == 2 &&
              s.d[2] == 2);
        CHECK(ds->x8 && !ds->x32); /* uint8 stays bytes */
        int bad = 0;
        for (int i = 0; ds->x8 && i < 24; i++)
            bad += ds->x8[i] != (i * 7) % 256;
        CHECK(bad == 0);
        CHECK(tk_dataset_label_kind(ds) == TK_LABEL_CLASS && tk_dataset_num_classes(ds) == 3);
        for (int i = 0; i < 6; i++)
            CHECK(tk_dataset_label(ds, i, 0) == i % 3);
        tk_dataset_free(ds);

        /* Float targets of width 2 for regression; features from a separate .npy file. */
        tk_npy_opts r = {.npz = fixture(files[k]), .x = "t", .y = "t", .regression = true};
        CHECK_MSG(tk_dataset_npy(&r, &ds, ctx) == TK_OK, "%s", tk_errmsg(ctx));
        if (ds) {
            CHECK(tk_dataset_label_width(ds) == 2 && ds->x32 && ds->x32[5] == 2.5f);
            CHECK(tk_dataset_label(ds, 5, 1) == 5.5f);
            tk_dataset_free(ds);
        }
        /* Float targets are not class ids. */
        tk_npy_opts c = {.npz = fixture(files[k]), .x = "t", .y = "t"};
        CHECK(tk_dataset_npy(&c, &ds, ctx) == TK_ERR_INPUT);
        CHECK(tk_contains(tk_errmsg(ctx), ":t: class labels must be one id per sample"));
        tk_npy_opts m = {.npz = fixture(files[k]), .x = "x", .y = "labels"};
        CHECK(tk_dataset_npy(&m, &ds, ctx) == TK_ERR_INPUT);
        CHECK_MSG(tk_contains(tk_errmsg(ctx), "no member 'labels'") &&
                  tk_contains(tk_errmsg(ctx), files[k]), "%s", tk_errmsg(ctx));
    }
    /* Features and labels as two .npy files; label count mismatch. */
    tk_dataset *ds = NULL;
    tk_npy_opts o = {.x = fixture("f4.npy"), .y = fixture("u1.npy")};
    CHECK(tk_dataset_npy(&o, &ds, ctx) == TK_ERR_INPUT);
    CHECK_MSG(tk_contains(tk_errmsg(ctx), "u1.npy: labels must have shape (2,) or (2, T)"), "%s",
              tk_errmsg(ctx));
    tk_npy_opts one = {.x = fixture("f4.npy")};
    CHECK(tk_dataset_npy(&one, &ds, ctx) == TK_OK);
    if (ds) {
        tk_shape s = tk_dataset_sample_shape(ds);
        CHECK(tk_dataset_len(ds) == 2 && s.ndim == 2 && s.d[0] == 3 && s.d[1] == 4);
        CHECK(tk_dataset_label_width(ds) == 0 && ds->x32[23] == 2.75f);
        tk_dataset_free(ds);
    }
    tk_ctx_free(ctx);
}

static const char *write_bytes(const char *name, const void *b, size_t len)
{
    const char *p = check_path(dir, name);
    FILE *f = fopen(p, "wb");
    fwrite(b, 1, len, f);
    fclose(f);
    return p;
}

static void check_bad(const char *path, const char *member, const char *what)
{
    tk_ctx *ctx = tk_ctx_new();
    tk_dataset *ds = NULL;
    tk_npy_opts o = {.x = member ? member : path, .npz = member ? path : NULL};
    tk_status st = tk_dataset_npy(&o, &ds, ctx);
    const char *name = strrchr(path, '/') + 1;
    CHECK_MSG(st == TK_ERR_INPUT && !ds, "%s: status %d", path, st);
    CHECK_MSG(tk_contains(tk_errmsg(ctx), name) && tk_contains(tk_errmsg(ctx), what),
              "'%s' lacks '%s'", tk_errmsg(ctx), what);
    tk_dataset_free(ds);
    tk_ctx_free(ctx);
}

static unsigned char *slurp(const char *path, size_t *len)
{
    unsigned char *b = NULL;
    tk_ctx *ctx = tk_ctx_new();
    CHECK(tk_data_slurp(path, &b, len, ctx) == TK_OK);
    tk_ctx_free(ctx);
    return b;
}

static void test_errors(void)
{
    check_bad(fixture("fortran.npy"), NULL, "Fortran order");
    check_bad(fixture("big.npy"), NULL, "big-endian");
    check_bad(fixture("arrays.npz"), NULL, "a .npz archive, not a .npy file");
    check_bad(fixture("scalar.npy"), NULL, "features need shape (N, ...)");
    size_t n;
    unsigned char *b = slurp(fixture("f4.npy"), &n);
    if (b) {
        check_bad(write_bytes("cut.npy", b, n - 3), NULL, "truncated: shape (2, 3, 4) needs 96");
        check_bad(write_bytes("head.npy", b, 40), NULL, "truncated .npy header");
        unsigned char *more = malloc(n + 4);
        memcpy(more, b, n);
        memcpy(more + n, "abcd", 4);
        check_bad(write_bytes("more.npy", more, n + 4), NULL, "extra data");
        free(more);
        char *h = (char *)b + 10;
        memcpy(strstr(h, "<f4"), "<c8", 3);
        check_bad(write_bytes("complex.npy", b, n), NULL, "dtype '<c8' is not supported");
        memcpy(strstr(h, "<c8"), "<f4", 3);
        memcpy(strstr(h, "(2, 3, 4)"), "(2, x, 4)", 9);
        check_bad(write_bytes("shape.npy", b, n), NULL, "shape is not a tuple of integers");
        memcpy(strstr(h, "(2, x, 4)"), "(2, 3, 4)", 9);
        memcpy(strstr(h, "'shape'"), "'shapf'", 7);
        check_bad(write_bytes("key.npy", b, n), NULL, "unknown key 'shapf'");
        b[0] = 'X';
        check_bad(write_bytes("magic.npy", b, n), NULL, "not a .npy file");
        free(b);
    }
    check_bad(write_bytes("empty.npy", "", 0), NULL, "not a .npy file");

    b = slurp(fixture("arrays_z.npz"), &n);
    if (b) {
        check_bad(write_bytes("cut.npz", b, n / 2), "x", "not a zip");
        b[60] ^= 0x5A; /* inside the first member's deflate stream */
        check_bad(write_bytes("flip.npz", b, n), "x", "flip.npz:x.npy: corrupt deflate data");
        free(b);
    }
    b = slurp(fixture("arrays.npz"), &n);
    if (b) {
        /* a stored member's data byte: only the CRC can tell */
        unsigned char *p = NULL;
        for (size_t k = 0; !p && k + 6 < n; k++)
            if (memcmp(b + k, "\x93NUMPY", 6) == 0)
                p = b + k;
        CHECK(p != NULL);
        if (p) {
            p[130] ^= 1; /* x.npy's first data byte (after a 128-byte header) */
            check_bad(write_bytes("crc.npz", b, n), "x", "CRC mismatch");
        }
        free(b);
    }
}

int main(void)
{
    dir = check_tmpdir("npy");
    test_dtypes();
    test_npz_datasets();
    test_errors();
    return check_summary();
}
