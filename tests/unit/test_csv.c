/* test_csv.c - tk_dataset_csv: quoting, blank lines, CRLF, delimiters, skip_rows/header,
 * label selection (index, name, several, another file), class labels (numbers and sorted
 * names), gzip by magic bytes, every error message's file:line and column, and the real
 * sklearn iris/breast_cancer files when they are installed. Files are written by the test. */
#include "check.h"
#include "data/dataset.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

static const char *dir;

static const char *write_file(const char *name, const char *text)
{
    const char *p = check_path(dir, name);
    FILE *f = fopen(p, "wb");
    fputs(text, f);
    fclose(f);
    return p;
}

static const char *write_gz(const char *name, const char *text)
{
    const char *p = check_path(dir, name);
    gzFile f = gzopen(p, "wb");
    gzwrite(f, text, (unsigned)strlen(text));
    gzclose(f);
    return p;
}

/* Load with the given options; returns the dataset (NULL on failure, message in ctx). */
static tk_dataset *load(tk_csv_opts o, tk_ctx *ctx)
{
    tk_dataset *ds = NULL;
    tk_clear_error(ctx);
    tk_status st = tk_dataset_csv(&o, &ds, ctx);
    CHECK((st == TK_OK) == (ds != NULL));
    return ds;
}

/* Expect a failure whose message contains `want`. */
static void expect_error(tk_csv_opts o, const char *want, tk_ctx *ctx)
{
    tk_dataset *ds = load(o, ctx);
    CHECK_MSG(ds == NULL, "loaded although '%s' was expected", want);
    CHECK_MSG(tk_contains(tk_errmsg(ctx), want), "message '%s' lacks '%s'", tk_errmsg(ctx),
              want);
    tk_dataset_free(ds);
}

static const char *where(const tk_dataset *ds, int64_t i)
{
    static char buf[256];
    return tk_dataset_where(ds, i, buf, sizeof buf);
}

static void test_quotes_blank_crlf(tk_ctx *ctx)
{
    const char *p = write_file("q.csv",
                               "\"a\",\"b, or not\",label\r\n"
                               "1,\"2.5\",x\r\n"
                               "\r\n"
                               "  \"3\" , 4 ,\"y\"\r\n"
                               "5,6,\"two\r\nlines\"\r\n"
                               "7,8,x");
    tk_dataset *ds = load((tk_csv_opts){.path = p, .header = true}, ctx);
    CHECK_MSG(ds, "%s", tk_errmsg(ctx));
    if (!ds)
        return;
    CHECK(tk_dataset_len(ds) == 4);
    tk_shape s = tk_dataset_sample_shape(ds);
    CHECK(s.ndim == 1 && s.d[0] == 2);
    CHECK(ds->x32[0] == 1.0f && ds->x32[1] == 2.5f && ds->x32[2] == 3.0f);
    CHECK(ds->x32[3] == 4.0f && ds->x32[4] == 5.0f && ds->x32[7] == 8.0f);
    /* Names sort as "two\r\nlines" < "x" < "y". */
    CHECK(tk_dataset_label_kind(ds) == TK_LABEL_CLASS);
    CHECK(tk_dataset_num_classes(ds) == 3);
    CHECK(strcmp(tk_dataset_class_name(ds, 1), "x") == 0);
    CHECK(strcmp(tk_dataset_class_name(ds, 2), "y") == 0);
    CHECK(tk_dataset_class_name(ds, 3) == NULL);
    CHECK(ds->y[0] == 1 && ds->y[1] == 2 && ds->y[2] == 0 && ds->y[3] == 1);
    /* Physical lines: header 1, blank 3, the quoted newline makes the last row line 7. */
    CHECK(strcmp(where(ds, 0), "q.csv row 2") == 0);
    CHECK(strcmp(where(ds, 1), "q.csv row 4") == 0);
    CHECK(strcmp(where(ds, 2), "q.csv row 5") == 0);
    CHECK_MSG(strcmp(where(ds, 3), "q.csv row 7") == 0, "%s", where(ds, 3));
    CHECK(strcmp(tk_dataset_source(ds), p) == 0);
    tk_dataset_free(ds);

    /* A line number after a quoted newline, in an error. */
    p = write_file("q2.csv", "1,\"a\nb\"\n\n2,\n");
    expect_error((tk_csv_opts){.path = p}, "q2.csv:4: column 2: missing value", ctx);
}

static void test_errors(tk_ctx *ctx)
{
    const char *p = write_file("miss.csv", "a,b,c\n1,2,0\n1,,0\n");
    expect_error((tk_csv_opts){.path = p, .header = true}, "miss.csv:3: column 2: missing value",
                 ctx);
    p = write_file("short.csv", "1,2,0\n\n1,2\n");
    expect_error((tk_csv_opts){.path = p}, "short.csv:3: expected 3 columns, found 2", ctx);
    p = write_file("long.csv", "1,2,0\r\n1,2,3,4\r\n");
    expect_error((tk_csv_opts){.path = p}, "long.csv:2: expected 3 columns, found 4", ctx);
    p = write_file("nan.csv", "1,2,0\n1,2,0\n1,abc,0\n");
    expect_error((tk_csv_opts){.path = p}, "nan.csv:3: column 2: 'abc' is not a number", ctx);
    p = write_file("inf.csv", "1,1e999,0\n");
    expect_error((tk_csv_opts){.path = p}, "inf.csv:1: column 2: '1e999' is out of float32",
                 ctx);
    p = write_file("empty.csv", "");
    expect_error((tk_csv_opts){.path = p}, "empty.csv: no data rows", ctx);
    p = write_file("blank.csv", "\n\r\n  \n");
    expect_error((tk_csv_opts){.path = p}, "blank.csv: no data rows", ctx);
    p = write_file("hdr.csv", "a,b\n");
    expect_error((tk_csv_opts){.path = p, .header = true}, "hdr.csv: no data rows", ctx);
    expect_error((tk_csv_opts){.path = check_path(dir, "absent.csv")}, "cannot open", ctx);
    p = write_file("unterm.csv", "1,2\n3,\"4\n5,6\n");
    expect_error((tk_csv_opts){.path = p}, "unterm.csv:2: unterminated quoted field", ctx);
    p = write_file("badq.csv", "1,2\n3,4\"x\n");
    expect_error((tk_csv_opts){.path = p}, "badq.csv:2: malformed quoting", ctx);
    p = write_file("cls.csv", "1,0\n2,1\n3,2.5\n4,2.5\n");
    expect_error((tk_csv_opts){.path = p}, "cls.csv:3: column 2: '2.5' is not a class id", ctx);
    p = write_file("neg.csv", "1,0\n2,-1\n");
    expect_error((tk_csv_opts){.path = p}, "neg.csv:2: column 2: '-1' is not a class id", ctx);
    p = write_file("onecol.csv", "1\n2\n");
    expect_error((tk_csv_opts){.path = p}, "onecol.csv: no feature columns", ctx);
    p = write_file("reg.csv", "1,x\n");
    expect_error((tk_csv_opts){.path = p, .regression = true},
                 "reg.csv:1: column 2: 'x' is not a number", ctx);
}

static void test_delimiters(tk_ctx *ctx)
{
    const char *p = write_file("sp.csv", "  1   2.5  0\n3 4 1  \n\t5\t 6 1\n");
    tk_dataset *ds = load((tk_csv_opts){.path = p, .delimiter = ' '}, ctx);
    CHECK_MSG(ds, "%s", tk_errmsg(ctx));
    if (ds) {
        CHECK(tk_dataset_len(ds) == 3 && ds->nfeat == 2);
        CHECK(ds->x32[1] == 2.5f && ds->x32[4] == 5.0f && ds->x32[5] == 6.0f);
        CHECK(ds->y[0] == 0 && ds->y[2] == 1 && tk_dataset_num_classes(ds) == 2);
    }
    tk_dataset_free(ds);

    p = write_file("semi.csv", "x;y;z\n1,5;2;0\n3;4;1\n");
    expect_error((tk_csv_opts){.path = p, .delimiter = ';', .header = true},
                 "semi.csv:2: column 1: '1,5' is not a number", ctx);
    p = write_file("semi2.csv", "x;y;z\n1.5;2;0\n3;\"4\";1\n");
    ds = load((tk_csv_opts){.path = p, .delimiter = ';', .header = true}, ctx);
    CHECK_MSG(ds, "%s", tk_errmsg(ctx));
    if (ds)
        CHECK(tk_dataset_len(ds) == 2 && ds->x32[0] == 1.5f && ds->x32[3] == 4.0f);
    tk_dataset_free(ds);
}

static void test_columns(tk_ctx *ctx)
{
    const char *p = write_file("cols.csv",
                               "3,2,cat,dog,bird\n"
                               "a,species,b,c\n"
                               "1,cat,2,10\n"
                               "3,ant,4,20\n"
                               "5,bee,6,30\n"
                               "7,cat,8,40\n");
    tk_colref by_name = {.name = "species"};
    tk_dataset *ds = load((tk_csv_opts){.path = p, .skip_rows = 1, .header = true,
                                        .label = &by_name, .n_label = 1}, ctx);
    CHECK_MSG(ds, "%s", tk_errmsg(ctx));
    if (ds) {
        CHECK(tk_dataset_len(ds) == 4 && ds->nfeat == 3);
        CHECK(ds->x32[0] == 1 && ds->x32[1] == 2 && ds->x32[2] == 10);
        CHECK(tk_dataset_num_classes(ds) == 3);
        CHECK(strcmp(tk_dataset_class_name(ds, 0), "ant") == 0);
        CHECK(strcmp(tk_dataset_class_name(ds, 1), "bee") == 0);
        CHECK(strcmp(tk_dataset_class_name(ds, 2), "cat") == 0);
        CHECK(ds->y[0] == 2 && ds->y[1] == 0 && ds->y[2] == 1 && ds->y[3] == 2);
        CHECK(strcmp(where(ds, 0), "cols.csv row 3") == 0);
    }
    tk_dataset_free(ds);

    /* Features by index and name, in the order given. */
    tk_colref feats[] = {{.name = "c"}, {.index = 1}};
    tk_colref lab2 = {.index = 2};
    ds = load((tk_csv_opts){.path = p, .skip_rows = 1, .header = true, .label = &lab2,
                            .n_label = 1, .features = feats, .n_features = 2}, ctx);
    CHECK_MSG(ds, "%s", tk_errmsg(ctx));
    if (ds)
        CHECK(ds->nfeat == 2 && ds->x32[0] == 10 && ds->x32[1] == 1 && ds->x32[7] == 7);
    tk_dataset_free(ds);

    /* Several targets: regression of two columns. */
    tk_colref two[] = {{.name = "a"}, {.index = 4}};
    tk_colref one_feat = {.name = "b"};
    ds = load((tk_csv_opts){.path = p, .skip_rows = 1, .header = true, .label = two,
                            .n_label = 2, .features = &one_feat, .n_features = 1,
                            .regression = true}, ctx);
    CHECK_MSG(ds, "%s", tk_errmsg(ctx));
    if (ds) {
        CHECK(tk_dataset_label_width(ds) == 2);
        CHECK(tk_dataset_label_kind(ds) == TK_LABEL_REGRESSION);
        CHECK(tk_dataset_num_classes(ds) == 0);
        CHECK(ds->y[0] == 1 && ds->y[1] == 10 && ds->y[6] == 7 && ds->y[7] == 40);
        CHECK(tk_dataset_label(ds, 3, 1) == 40 && tk_dataset_label(ds, 1, 0) == 3);
        CHECK(isnan(tk_dataset_label(ds, 4, 0)) && isnan(tk_dataset_label(ds, 0, 2)));
        CHECK(ds->nfeat == 1 && ds->x32[3] == 8);
    }
    tk_dataset_free(ds);

    tk_colref bad = {.name = "petal_len"};
    expect_error((tk_csv_opts){.path = p, .skip_rows = 1, .header = true, .label = &bad,
                               .n_label = 1},
                 "cols.csv: no column named 'petal_len' (columns: a, species, b, c)", ctx);
    tk_colref seven = {.index = 7};
    expect_error((tk_csv_opts){.path = p, .skip_rows = 1, .header = true, .label = &seven,
                               .n_label = 1},
                 "cols.csv: label column 7 out of range (4 columns)", ctx);
    expect_error((tk_csv_opts){.path = p, .skip_rows = 2, .label = &bad, .n_label = 1},
                 "no header", ctx);
    expect_error((tk_csv_opts){.path = p, .skip_rows = 1, .header = true, .label = two,
                               .n_label = 2},
                 "regression", ctx);
    /* A long header is listed up to a limit. */
    char wide[8192] = "";
    for (int i = 0; i < 300; i++)
        sprintf(wide + strlen(wide), "%scolumn_number_%d", i ? "," : "", i);
    strcat(wide, "\n");
    for (int i = 0; i < 300; i++)
        strcat(wide, i ? ",1" : "1");
    const char *w = write_file("wide.csv", wide);
    expect_error((tk_csv_opts){.path = w, .header = true, .label = &bad, .n_label = 1},
                 "(columns: column_number_0, column_number_1, ", ctx);
    CHECK(tk_contains(tk_errmsg(ctx), ", ...)") && strlen(tk_errmsg(ctx)) < 1200);
    tk_colref both[] = {{.index = 2}};
    expect_error((tk_csv_opts){.path = p, .skip_rows = 1, .header = true, .label = &lab2,
                               .n_label = 1, .features = both, .n_features = 1},
                 "column 2 is both a feature and the label", ctx);
}

static void test_label_file(tk_ctx *ctx)
{
    const char *fp = write_file("feats.csv", "1,2\n3,4\n5,6\n");
    const char *lp = write_file("labels.csv", "id;y\n0;1\n1;0\n2;1\n");
    tk_colref y = {.name = "y"};
    tk_dataset *ds = load((tk_csv_opts){.path = fp, .label_path = lp, .label_delimiter = ';',
                                        .label_header = true, .label = &y, .n_label = 1},
                          ctx);
    CHECK_MSG(ds, "%s", tk_errmsg(ctx));
    if (ds) {
        CHECK(ds->nfeat == 2 && tk_dataset_len(ds) == 3);
        CHECK(ds->x32[4] == 5 && ds->x32[5] == 6);
        CHECK(ds->y[0] == 1 && ds->y[1] == 0 && ds->y[2] == 1);
        CHECK(strcmp(where(ds, 2), "feats.csv row 3") == 0);
    }
    tk_dataset_free(ds);
    lp = write_file("labels2.csv", "0\n1\n");
    expect_error((tk_csv_opts){.path = fp, .label_path = lp},
                 "labels2.csv has 2 rows but feats.csv has 3", ctx);
    lp = write_file("labels3.csv", "0\n1\n\n1.5\n");
    expect_error((tk_csv_opts){.path = fp, .label_path = lp},
                 "labels3.csv:4: column 1: '1.5' is not a class id", ctx);
}

static void test_gzip(tk_ctx *ctx)
{
    const char *text = "a,b,y\n1,2,0\n3,4,1\n\n5,6,2\n";
    const char *p = write_gz("g.csv.gz", text);
    /* No .gz in the name: zlib goes by the magic bytes. */
    const char *q = write_gz("g_no_suffix.csv", text);
    for (int k = 0; k < 2; k++) {
        tk_dataset *ds = load((tk_csv_opts){.path = k ? q : p, .header = true}, ctx);
        CHECK_MSG(ds, "%s", tk_errmsg(ctx));
        if (ds) {
            CHECK(tk_dataset_len(ds) == 3 && ds->x32[5] == 6 && ds->y[2] == 2);
            CHECK(strcmp(where(ds, 2), k ? "g_no_suffix.csv row 5" : "g.csv.gz row 5") == 0);
        }
        tk_dataset_free(ds);
    }

    /* A long gzip file cut in the middle. */
    char *big = malloc(200000);
    size_t len = 0;
    for (int i = 0; len < 190000; i++)
        len += (size_t)sprintf(big + len, "%d,%d,%d\n", i * 7919 % 1000, i % 13, i % 3);
    p = write_gz("cut.csv.gz", big);
    free(big);
    FILE *f = fopen(p, "rb");
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fclose(f);
    CHECK(truncate(p, size / 2) == 0);
    expect_error((tk_csv_opts){.path = p}, "cut.csv.gz: corrupt gzip data", ctx);

    /* Garbage after a gzip magic. */
    p = write_file("bad.csv.gz", "\x1f\x8b\x08\x00garbage that is not deflate data at all");
    expect_error((tk_csv_opts){.path = p}, "bad.csv.gz: corrupt gzip data", ctx);
}

static void test_sklearn(tk_ctx *ctx)
{
    const char *base = "/usr/lib/python3/dist-packages/sklearn/datasets/data/";
    char path[512];
    snprintf(path, sizeof path, "%siris.csv", base);
    if (access(path, R_OK) == 0) {
        tk_dataset *ds = load((tk_csv_opts){.path = path, .skip_rows = 1}, ctx);
        CHECK_MSG(ds, "%s", tk_errmsg(ctx));
        if (ds) {
            CHECK(tk_dataset_len(ds) == 150 && ds->nfeat == 4);
            CHECK(tk_dataset_num_classes(ds) == 3 && tk_dataset_label_width(ds) == 1);
            CHECK(ds->x32[0] == 5.1f && ds->x32[3] == 0.2f && ds->y[0] == 0 &&
                  ds->y[149] == 2);
            CHECK(strcmp(where(ds, 0), "iris.csv row 2") == 0);
        }
        tk_dataset_free(ds);
    } else {
        printf("skipped: %s not installed\n", path);
    }
    snprintf(path, sizeof path, "%sbreast_cancer.csv", base);
    if (access(path, R_OK) == 0) {
        tk_dataset *ds = load((tk_csv_opts){.path = path, .skip_rows = 1}, ctx);
        CHECK_MSG(ds, "%s", tk_errmsg(ctx));
        if (ds) {
            CHECK(tk_dataset_len(ds) == 569 && ds->nfeat == 30);
            CHECK(tk_dataset_num_classes(ds) == 2);
            CHECK(ds->x32[0] == 17.99f && ds->y[0] == 0);
        }
        tk_dataset_free(ds);
    } else {
        printf("skipped: %s not installed\n", path);
    }
}

/* Every allocation, libcsv's buffer included, goes through the hook and comes back. */
static void test_allocations(tk_ctx *ctx)
{
    const char *p = write_file("alloc.csv", "a,b,y\n1,\"a long quoted field, longer than "
                                            "libcsv's first block of 128 bytes, "
                                            "................................................"
                                            "..............\",x\n");
    tk_colref a = {.index = 1};
    check_count_allocations();
    tk_dataset *ds = load((tk_csv_opts){.path = p, .header = true, .features = &a,
                                        .n_features = 1}, ctx);
    tk_dataset_free(ds);
    expect_error((tk_csv_opts){.path = p, .header = true}, "is not a number", ctx);
    tk_set_allocator(NULL);
    CHECK(ds != NULL);
    CHECK(check_allocs() > 0);
    CHECK_MSG(check_live_blocks() == 0, "%ld allocations not freed", check_live_blocks());
}

/* A NUL byte would cut a cell short without a word (the cell "1\0abc" read as 1). */
static void test_nul_byte(tk_ctx *ctx)
{
    static const char text[] = "1,2,0\n3,\"x\ny\",1\n5,6\0abc,1\n";
    const char *p = check_path(dir, "nul.csv");
    FILE *f = fopen(p, "wb");
    fwrite(text, 1, sizeof text - 1, f);
    fclose(f);
    tk_colref a = {.index = 1};
    expect_error((tk_csv_opts){.path = p, .features = &a, .n_features = 1},
                 "nul.csv:4: column 2: a NUL byte inside the cell", ctx);
}

static double seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* A file of about `mb` MB of rows "1.5,2.5,0", with a stray quote opening the 3rd row's first
 * cell when `stray` (the rest of the file then reads as one quoted field). */
static const char *write_big(const char *name, int mb, bool stray)
{
    const char *p = check_path(dir, name);
    FILE *f = fopen(p, "wb");
    for (long i = 0, rows = (long)mb * (1 << 20) / 10; i < rows; i++)
        fputs(i == 2 && stray ? "\"1.5,2.5,0\n" : "1.5,2.5,0\n", f);
    fclose(f);
    return p;
}

/* Parse time of a file: the best of three, so a busy machine only makes it slower. */
static double parse_time(const char *path, const char *want, tk_ctx *ctx)
{
    double best = 1e30;
    for (int k = 0; k < 3; k++) {
        double t0 = seconds();
        tk_dataset *ds = load((tk_csv_opts){.path = path}, ctx);
        double t = seconds() - t0;
        best = t < best ? t : best;
        CHECK_MSG(want ? !ds && tk_contains(tk_errmsg(ctx), want) : ds != NULL, "%s: %s", path,
                  tk_errmsg(ctx));
        tk_dataset_free(ds);
    }
    return best;
}

/* Every path through the parser is linear in the input: twice the bytes, about twice the
 * time (a stray quote near the top of a 4 MB file used to take over 20 s: libcsv grew the
 * one long field 128 bytes at a time, each time copied). */
static void test_linear_time(tk_ctx *ctx)
{
    /* Well-formed rows cost more per byte (every cell is converted): smaller files. */
    const struct {
        bool stray;
        int mb;
        const char *want;
    } cases[] = {{true, 4, "unterminated quoted field"}, {false, 1, NULL}};
    for (int c = 0; c < 2; c++) {
        const char *small = write_big("small.csv", cases[c].mb, cases[c].stray);
        double t1 = parse_time(small, cases[c].want, ctx);
        const char *large = write_big("large.csv", 2 * cases[c].mb, cases[c].stray);
        double t2 = parse_time(large, cases[c].want, ctx);
        /* Linear gives 2, quadratic 4 (the stray quote took minutes); the floor keeps a busy
         * machine's noise on times of a few milliseconds out. */
        CHECK_MSG(t2 < 3.0 * t1 + 0.1, "%s: %d MB in %.3f s but %d MB in %.3f s",
                  cases[c].stray ? "stray quote" : "well-formed", cases[c].mb, t1,
                  2 * cases[c].mb, t2);
        /* The long field's buffer doubles: a few dozen allocations, not one per 128 bytes. */
        if (cases[c].stray) {
            check_count_allocations();
            tk_dataset_free(load((tk_csv_opts){.path = large}, ctx));
            tk_set_allocator(NULL);
            CHECK_MSG(check_allocs() < 200, "%ld allocations for one long field",
                      check_allocs());
        }
        unlink(small);
        unlink(large);
    }
}

int main(void)
{
    dir = check_tmpdir("csv");
    tk_ctx *ctx = tk_ctx_new();
    test_quotes_blank_crlf(ctx);
    test_errors(ctx);
    test_delimiters(ctx);
    test_columns(ctx);
    test_label_file(ctx);
    test_gzip(ctx);
    test_sklearn(ctx);
    test_allocations(ctx);
    test_nul_byte(ctx);
    test_linear_time(ctx);
    tk_ctx_free(ctx);
    return check_summary();
}
