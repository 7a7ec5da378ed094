/* test_idx.c - tk_dataset_idx: small IDX files written by the test (plain and gzip, 3-d
 * images and 2-d rows) round-trip byte for byte; bad magic, unsupported type, truncation
 * (plain and gzip), padding, zero dimensions and image/label count mismatches are errors
 * that name the file. */
#include "check.h"
#include "data/dataset.h"

#include <string.h>
#include <unistd.h>
#include <zlib.h>

static const char *dir;

/* Header (magic type/ndim and dims) followed by `len` bytes of data. */
static const char *write_idx(const char *name, int type, int ndim, const uint32_t *dims,
                             const unsigned char *data, size_t len, bool gz)
{
    unsigned char hdr[4 + 4 * 4] = {0, 0, (unsigned char)type, (unsigned char)ndim};
    for (int i = 0; i < ndim; i++) {
        hdr[4 + 4 * i] = (unsigned char)(dims[i] >> 24);
        hdr[5 + 4 * i] = (unsigned char)(dims[i] >> 16);
        hdr[6 + 4 * i] = (unsigned char)(dims[i] >> 8);
        hdr[7 + 4 * i] = (unsigned char)dims[i];
    }
    const char *p = check_path(dir, name);
    if (gz) {
        gzFile f = gzopen(p, "wb");
        gzwrite(f, hdr, 4 + 4 * (unsigned)ndim);
        if (len)
            gzwrite(f, data, (unsigned)len);
        gzclose(f);
    } else {
        FILE *f = fopen(p, "wb");
        fwrite(hdr, 1, 4 + 4 * (size_t)ndim, f);
        fwrite(data, 1, len, f);
        fclose(f);
    }
    return p;
}

static void expect_error(const char *images, const char *labels, const char *want, tk_ctx *ctx)
{
    tk_dataset *ds = NULL;
    tk_clear_error(ctx);
    tk_status st = tk_dataset_idx(&(tk_idx_opts){images, labels}, &ds, ctx);
    CHECK_MSG(st == TK_ERR_INPUT && ds == NULL, "loaded although '%s' was expected", want);
    CHECK_MSG(tk_contains(tk_errmsg(ctx), want), "message '%s' lacks '%s'", tk_errmsg(ctx),
              want);
    tk_dataset_free(ds);
}

static unsigned char pixels[5 * 3 * 4];
static const unsigned char labels[5] = {3, 0, 7, 3, 1};

static void test_round_trip(tk_ctx *ctx)
{
    for (size_t i = 0; i < sizeof pixels; i++)
        pixels[i] = (unsigned char)(i * 37 + 11);
    for (int gz = 0; gz < 2; gz++) {
        const char *im = write_idx(gz ? "im.gz" : "im", 0x08, 3, (uint32_t[]){5, 3, 4}, pixels,
                                   sizeof pixels, gz);
        const char *lb = write_idx(gz ? "lb.gz" : "lb", 0x08, 1, (uint32_t[]){5}, labels, 5, gz);
        tk_dataset *ds = NULL;
        tk_status st = tk_dataset_idx(&(tk_idx_opts){im, lb}, &ds, ctx);
        CHECK_MSG(st == TK_OK, "%s", tk_errmsg(ctx));
        if (!ds)
            continue;
        CHECK(tk_dataset_len(ds) == 5);
        tk_shape s = tk_dataset_sample_shape(ds);
        CHECK(s.ndim == 3 && s.d[0] == 1 && s.d[1] == 3 && s.d[2] == 4);
        CHECK(ds->x8 && memcmp(ds->x8, pixels, sizeof pixels) == 0);
        CHECK(tk_dataset_label_width(ds) == 1 && tk_dataset_label_kind(ds) == TK_LABEL_CLASS);
        CHECK(tk_dataset_num_classes(ds) == 8);
        CHECK(tk_dataset_class_name(ds, 0) == NULL);
        for (int i = 0; i < 5; i++)
            CHECK(ds->y[i] == labels[i] && tk_dataset_label(ds, i, 0) == labels[i]);
        char buf[128];
        CHECK(strcmp(tk_dataset_where(ds, 0, buf, sizeof buf),
                     gz ? "im.gz record 1" : "im record 1") == 0);
        CHECK(strcmp(tk_dataset_where(ds, 4, buf, sizeof buf),
                     gz ? "im.gz record 5" : "im record 5") == 0);
        tk_dataset_free(ds);
    }

    /* Bigger than the first read buffer (1 MiB), through gzip. */
    static unsigned char many[3000 * 1000];
    static unsigned char many_labels[3000];
    for (size_t i = 0; i < sizeof many; i++)
        many[i] = (unsigned char)(i * 2654435761u >> 11);
    for (int i = 0; i < 3000; i++)
        many_labels[i] = (unsigned char)(i % 10);
    const char *big = write_idx("big.gz", 0x08, 2, (uint32_t[]){3000, 1000}, many,
                                sizeof many, true);
    const char *big_lb = write_idx("big_lb", 0x08, 1, (uint32_t[]){3000}, many_labels, 3000,
                                   false);
    tk_dataset *bd = NULL;
    CHECK_MSG(tk_dataset_idx(&(tk_idx_opts){big, big_lb}, &bd, ctx) == TK_OK, "%s",
              tk_errmsg(ctx));
    CHECK(bd && bd->nfeat == 1000 && memcmp(bd->x8, many, sizeof many) == 0);
    CHECK(bd && tk_dataset_num_classes(bd) == 10 && tk_dataset_label(bd, 2999, 0) == 9);
    tk_dataset_free(bd);

    /* (N, D) rows, and images without labels. */
    const char *im = write_idx("rows", 0x08, 2, (uint32_t[]){5, 12}, pixels, sizeof pixels,
                               false);
    tk_dataset *ds = NULL;
    CHECK(tk_dataset_idx(&(tk_idx_opts){im, NULL}, &ds, ctx) == TK_OK);
    if (ds) {
        tk_shape s = tk_dataset_sample_shape(ds);
        CHECK(s.ndim == 1 && s.d[0] == 12 && ds->nfeat == 12);
        CHECK(ds->x8[12] == pixels[12]);
        CHECK(tk_dataset_label_width(ds) == 0);
    }
    tk_dataset_free(ds);
    ds = NULL;
    CHECK(tk_dataset_idx(&(tk_idx_opts){im, ""}, &ds, ctx) == TK_OK);
    CHECK(ds && tk_dataset_label_width(ds) == 0 && tk_dataset_len(ds) == 5);
    tk_dataset_free(ds);
}

static void test_errors(tk_ctx *ctx)
{
    const char *lb = write_idx("lb", 0x08, 1, (uint32_t[]){5}, labels, 5, false);
    const char *p = check_path(dir, "magic");
    FILE *f = fopen(p, "wb");
    fputs("P5\n28 28\n255\n", f);
    fclose(f);
    expect_error(p, lb, "magic: not an IDX file (magic 0x50350a32)", ctx);

    p = write_idx("float", 0x0D, 3, (uint32_t[]){5, 3, 4}, pixels, sizeof pixels, false);
    expect_error(p, lb, "float: IDX data type 0x0d is not supported", ctx);

    p = write_idx("short", 0x08, 3, (uint32_t[]){5, 3, 4}, pixels, 50, false);
    expect_error(p, lb, "short: truncated: expected 60 bytes of data, found 50", ctx);
    p = write_idx("short.gz", 0x08, 3, (uint32_t[]){5, 3, 4}, pixels, 50, true);
    expect_error(p, lb, "short.gz: truncated: expected 60 bytes of data, found 50", ctx);

    /* A gzip stream cut in the middle: the bytes before the cut are counted. */
    static unsigned char big[100000];
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (unsigned char)(i * 2654435761u >> 13);
    p = write_idx("cut.gz", 0x08, 3, (uint32_t[]){1000, 10, 10}, big, sizeof big, true);
    FILE *g = fopen(p, "rb");
    fseek(g, 0, SEEK_END);
    long size = ftell(g);
    fclose(g);
    CHECK(truncate(p, size / 2) == 0);
    expect_error(p, NULL, "cut.gz: truncated: expected 100000 bytes of data, found", ctx);

    /* Every data byte present, only the gzip trailer (CRC and length) cut off. */
    p = write_idx("trailer.gz", 0x08, 3, (uint32_t[]){1000, 10, 10}, big, sizeof big, true);
    CHECK(truncate(p, size - 8) == 0);
    expect_error(p, NULL, "trailer.gz: truncated: the gzip stream ends before its checksum", ctx);

    p = write_idx("padded", 0x08, 3, (uint32_t[]){5, 3, 3}, pixels, sizeof pixels, false);
    expect_error(p, lb, "padded: more data than the header's 45 bytes", ctx);
    p = write_idx("zero", 0x08, 3, (uint32_t[]){5, 0, 4}, pixels, 0, false);
    expect_error(p, lb, "zero: dimension 2 is 0", ctx);
    p = write_idx("hdr", 0x08, 3, (uint32_t[]){5, 3, 4}, pixels, 0, false);
    CHECK(truncate(p, 10) == 0);
    expect_error(p, lb, "hdr: truncated: the header", ctx);
    p = write_idx("huge", 0x08, 3, (uint32_t[]){0xFFFFFFFFu, 0xFFFFFFFFu, 0xFFFFFFFFu},
                  pixels, 0, false);
    expect_error(p, lb, "huge: dimensions too large", ctx);
    /* A header that claims far more than the file holds fails without allocating it. */
    p = write_idx("claim", 0x08, 3, (uint32_t[]){0x7FFFFFFFu, 1000, 100}, pixels, 50, false);
    expect_error(p, lb, "claim: truncated: expected 214748364700000 bytes of data, found 50",
                 ctx);

    const char *im = write_idx("im", 0x08, 3, (uint32_t[]){5, 3, 4}, pixels, sizeof pixels,
                               false);
    const char *lb4 = write_idx("lb4", 0x08, 1, (uint32_t[]){4}, labels, 4, false);
    expect_error(im, lb4, "images have 5 records but labels have 4", ctx);
    expect_error(lb, lb, "holds labels, not images", ctx);
    expect_error(im, im, "im: labels must be a 1-dimensional IDX file", ctx);
    expect_error(check_path(dir, "absent"), lb, "cannot open", ctx);
    expect_error(im, check_path(dir, "absent"), "cannot open", ctx);
}

static void test_real_fashion_mnist(tk_ctx *ctx)
{
    const char *im = "/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz";
    const char *lb = "/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz";
    if (access(im, R_OK) != 0 || access(lb, R_OK) != 0) {
        printf("skipped: %s not installed\n", im);
        return;
    }
    tk_dataset *ds = NULL;
    CHECK_MSG(tk_dataset_idx(&(tk_idx_opts){im, lb}, &ds, ctx) == TK_OK, "%s", tk_errmsg(ctx));
    if (ds) {
        tk_shape s = tk_dataset_sample_shape(ds);
        CHECK(tk_dataset_len(ds) == 10000 && s.ndim == 3 && s.d[1] == 28 && s.d[2] == 28);
        CHECK(tk_dataset_num_classes(ds) == 10);
    }
    tk_dataset_free(ds);
}

int main(void)
{
    dir = check_tmpdir("idx");
    tk_ctx *ctx = tk_ctx_new();
    test_round_trip(ctx);
    test_errors(ctx);
    test_real_fashion_mnist(ctx);
    tk_ctx_free(ctx);
    return check_summary();
}
