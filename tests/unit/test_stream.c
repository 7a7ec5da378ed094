/* test_stream.c - streamed CSV datasets (csv_stream.c) and their loader (loader.c).
 * The load pass: counts, class table, a malformed row deep in the file named by line and
 * column, gzip refused. The loader: unshuffled batches byte-identical to the in-memory
 * loader's; shuffled epochs a permutation of every row, new each epoch, the same when asked
 * again, with and without the prefetch thread; begin() at a cursor gives the tail of the
 * straight epoch; a split drawn at load is disjoint, covers every row and counts its classes;
 * no allocation across whole epochs; a file changed under a loader is a failed batch with a
 * message, not a crash. Line ends CR LF, quoted fields with newlines, blank lines and lines
 * longer than the read buffer go through the same shards. */
#include "check.h"
#include "data/dataset.h"

#include <stdlib.h>
#include <string.h>
#include <zlib.h>

/* n rows "i,i*0.5,<text>,label" with a header; every 7th row quoted across two lines, every
 * 11th followed by a blank line, CR LF endings when crlf, one row of 100 000 characters. */
static void write_csv(const char *path, int n, bool crlf)
{
    FILE *f = fopen(path, "wb");
    const char *eol = crlf ? "\r\n" : "\n";
    fprintf(f, "a,b,note,label%s", eol);
    for (int i = 0; i < n; i++) {
        if (i % 7 == 3)
            fprintf(f, "%d,%g,\"two%slines\",%d%s", i, i * 0.5, eol, i % 3, eol);
        else if (i == 40) {
            fprintf(f, "%d,%g,", i, i * 0.5);
            for (int k = 0; k < 100000; k++)
                fputc('x', f);
            fprintf(f, ",%d%s", i % 3, eol);
        } else
            fprintf(f, "%d,%g, plain ,%d%s", i, i * 0.5, i % 3, eol);
        if (i % 11 == 5)
            fputs(eol, f);
    }
    fclose(f);
}

static tk_colref feats[2] = {{"a", 0}, {"b", 0}};
static tk_colref label = {"label", 0};

static tk_status load(const char *path, bool stream, const double *split, int n_split,
                      tk_dataset **out, tk_ctx *ctx)
{
    tk_csv_opts o = {.path = path, .header = true, .features = feats, .n_features = 2,
                     .label = &label, .n_label = 1, .stream = stream, .shard_size = 9,
                     .shuffle_buffer = 30, .stream_split = split, .n_stream_split = n_split,
                     .stream_split_seed = 99};
    return tk_dataset_csv(&o, out, ctx);
}

/* One epoch's batches: x (n * 2), y and rows, batch 8. Returns the rows gathered. */
static int64_t epoch(tk_view *v, bool shuffle, bool prefetch, int64_t ep, int64_t cursor,
                     float *x, float *y, int64_t *rows)
{
    tk_loader_opts lo = {.batch_size = 8, .shuffle = shuffle, .seed = 5, .prefetch = prefetch};
    tk_loader *l = NULL;
    tk_ctx *ctx = tk_ctx_new();
    CHECK(tk_loader_new(v, &lo, &l, ctx) == TK_OK);
    int64_t got = 0;
    if (l) {
        tk_loader_begin(l, ep, cursor);
        for (int n; (n = tk_loader_next(l, x + got * 2, y + got, rows + got)) > 0;)
            got += n;
    }
    tk_loader_free(l);
    tk_ctx_free(ctx);
    return got;
}

static void test_same_as_memory(const char *dir, tk_ctx *ctx)
{
    const char *path = check_path(dir, "crlf.csv");
    write_csv(path, 200, true);
    tk_dataset *mem = NULL, *st = NULL;
    CHECK(load(path, false, NULL, 0, &mem, ctx) == TK_OK);
    CHECK_MSG(load(path, true, NULL, 0, &st, ctx) == TK_OK, "%s", tk_errmsg(ctx));
    if (!mem || !st)
        return;
    CHECK(tk_dataset_len(st) == 200 && tk_dataset_num_classes(st) == 3);
    CHECK(st->stream->n_shards == 23 && st->stream->window == 3);
    tk_view *vm = tk_view_all(mem), *vs = tk_view_all(st);
    CHECK(tk_view_streamed(vs) && !tk_view_streamed(vm));
    float xm[400], xs[400], ym[200], ys[200];
    int64_t rm[200], rs[200];
    CHECK(epoch(vm, false, true, 0, 0, xm, ym, rm) == 200);
    CHECK(epoch(vs, false, true, 0, 0, xs, ys, rs) == 200);
    CHECK(memcmp(xm, xs, sizeof xm) == 0 && memcmp(ym, ys, sizeof ym) == 0);
    CHECK(memcmp(rm, rs, sizeof rm) == 0);
    int64_t cm[3], cs[3];
    tk_view_class_counts(vm, cm, 3);
    tk_view_class_counts(vs, cs, 3);
    CHECK(memcmp(cm, cs, sizeof cm) == 0 && cs[0] == 67);
    tk_view_free(vm);
    tk_view_free(vs);
    tk_dataset_free(mem);
    tk_dataset_free(st);
}

static void test_shuffled(const char *dir, tk_ctx *ctx)
{
    const char *path = check_path(dir, "lf.csv");
    write_csv(path, 300, false);
    tk_dataset *ds = NULL;
    CHECK(load(path, true, NULL, 0, &ds, ctx) == TK_OK);
    if (!ds)
        return;
    tk_view *v = tk_view_all(ds);
    static float x1[600], x2[600], x3[600], y1[300], y2[300], y3[300];
    static int64_t r1[300], r2[300], r3[300];
    CHECK(epoch(v, true, true, 1, 0, x1, y1, r1) == 300);
    CHECK(epoch(v, true, false, 1, 0, x2, y2, r2) == 300);
    CHECK(memcmp(x1, x2, sizeof x1) == 0 && memcmp(r1, r2, sizeof r1) == 0);
    int seen[300] = {0}, moved = 0;
    for (int i = 0; i < 300; i++) {
        if (r1[i] >= 0 && r1[i] < 300)
            seen[r1[i]]++;
        moved += r1[i] != i;
        CHECK(x1[2 * i] == (float)r1[i] && y1[i] == (float)(r1[i] % 3));
    }
    for (int i = 0; i < 300; i++)
        CHECK(seen[i] == 1);
    CHECK(moved > 250);
    CHECK(epoch(v, true, true, 2, 0, x3, y3, r3) == 300);
    CHECK(memcmp(r1, r3, sizeof r1) != 0);
    /* Resume at batch 13 (mid-window): the straight epoch's tail. */
    CHECK(epoch(v, true, true, 1, 13, x3, y3, r3) == 300 - 13 * 8);
    CHECK(memcmp(r3, r1 + 13 * 8, (300 - 13 * 8) * sizeof(int64_t)) == 0);
    CHECK(memcmp(x3, x1 + 13 * 8 * 2, (300 - 13 * 8) * 2 * sizeof(float)) == 0);

    /* Whole epochs allocate nothing once the loader exists. */
    tk_loader_opts lo = {.batch_size = 8, .shuffle = true, .seed = 5, .prefetch = true};
    tk_loader *l = NULL;
    CHECK(tk_loader_new(v, &lo, &l, ctx) == TK_OK);
    check_count_allocations();
    int64_t got = 0;
    for (int ep = 0; l && ep < 3; ep++) {
        tk_loader_begin(l, ep, ep == 1 ? 7 : 0);
        for (int n; (n = tk_loader_next(l, x1, y1, r1)) > 0;)
            got += n;
    }
    CHECK_MSG(check_allocs() == 0, "%ld allocations", check_allocs());
    tk_set_allocator(NULL);
    CHECK(got == 300 * 3 - 7 * 8);

    /* The file changes under the loader: a failed batch that says so. */
    FILE *f = fopen(path, "ab");
    fputs("1,2,x,0\n", f);
    fclose(f);
    tk_loader_begin(l, 4, 0);
    int n = tk_loader_next(l, x1, y1, r1);
    CHECK(n == -1);
    if (n == -1) {
        CHECK(tk_loader_fail(l, ctx) == TK_ERR_RUNTIME);
        CHECK_MSG(tk_contains(tk_errmsg(ctx), "lf.csv has changed since it was checked"), "%s",
                  tk_errmsg(ctx));
    }
    tk_loader_free(l);
    tk_view_free(v);
    tk_dataset_free(ds);
}

static void test_split(const char *dir, tk_ctx *ctx)
{
    const char *path = check_path(dir, "split.csv");
    write_csv(path, 500, false);
    tk_dataset *ds = NULL;
    const double fr[2] = {0.2, 0.1};
    CHECK(load(path, true, fr, 2, &ds, ctx) == TK_OK);
    if (!ds)
        return;
    tk_view *train = tk_view_all(ds), *parts[2] = {NULL, NULL};
    CHECK(tk_view_split(train, (double[]){0.2, 0.1}, 2, 98, parts, ctx) == TK_ERR_INPUT);
    CHECK(tk_contains(tk_errmsg(ctx), "the split must be given when it is loaded"));
    CHECK(tk_view_split(train, fr, 2, 99, parts, ctx) == TK_OK);
    if (!parts[0] || !parts[1])
        return;
    int64_t nv = tk_view_len(parts[0]), nt = tk_view_len(parts[1]), nr = tk_view_len(train);
    CHECK(nv + nt + nr == 500 && nv > 70 && nv < 130 && nt > 25 && nt < 80);
    static float x[1000], y[500];
    static int64_t rows[500];
    int owner[500];
    memset(owner, 0, sizeof owner);
    tk_view *all[3] = {train, parts[0], parts[1]};
    for (int k = 0; k < 3; k++) {
        int64_t got = epoch(all[k], k == 0, true, 3, 0, x, y, rows);
        CHECK(got == tk_view_len(all[k]));
        for (int64_t i = 0; i < got; i++)
            if (rows[i] >= 0 && rows[i] < 500)
                owner[rows[i]] += k + 1;
        int64_t c[3];
        tk_view_class_counts(all[k], c, 3);
        int64_t by_rows[3] = {0, 0, 0};
        for (int64_t i = 0; i < got; i++)
            by_rows[(int)y[i]]++;
        CHECK(memcmp(c, by_rows, sizeof c) == 0);
    }
    int once = 0;
    for (int i = 0; i < 500; i++)
        once += owner[i] >= 1 && owner[i] <= 3;
    CHECK(once == 500);
    for (int k = 0; k < 2; k++)
        tk_view_free(parts[k]);
    tk_view_free(train);
    tk_dataset_free(ds);
}

static void test_bad(const char *dir, tk_ctx *ctx)
{
    const char *path = check_path(dir, "bad.csv");
    FILE *f = fopen(path, "wb");
    fputs("a,b,note,label\n", f);
    for (int i = 0; i < 5000; i++)
        fprintf(f, i == 4321 ? "%d,oops,n,%d\n" : "%d,1.5,n,%d\n", i, i % 2);
    fclose(f);
    tk_dataset *ds = NULL;
    CHECK(load(path, true, NULL, 0, &ds, ctx) == TK_ERR_INPUT && !ds);
    CHECK_MSG(tk_contains(tk_errmsg(ctx), "bad.csv:4323: column 2: 'oops' is not a number"),
              "%s", tk_errmsg(ctx));
    const char *gz = check_path(dir, "small.csv.gz");
    gzFile g = gzopen(gz, "wb");
    gzputs(g, "a,b,note,label\n1,2,x,0\n");
    gzclose(g);
    CHECK(load(gz, true, NULL, 0, &ds, ctx) == TK_ERR_INPUT);
    CHECK(tk_contains(tk_errmsg(ctx), "stream = true reads plain files"));
}

int main(void)
{
    tk_ctx *ctx = tk_ctx_new();
    const char *dir = check_tmpdir("unit_stream");
    test_same_as_memory(dir, ctx);
    test_shuffled(dir, ctx);
    test_split(dir, ctx);
    test_bad(dir, ctx);
    tk_ctx_free(ctx);
    return check_summary();
}
