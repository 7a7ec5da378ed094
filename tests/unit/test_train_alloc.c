/* test_train_alloc.c - a whole tk_train allocates nothing per step: valid and test splits,
 * train.log, valid.log and metrics.csv, TensorBoard with the loss of every step, a warmup +
 * cosine schedule, Adam, metrics, gradient clipping, epoch/last/best checkpoints, early
 * stopping and the progress callback, all on. Allocations are counted twice: at tk_malloc
 * (the counting allocator) and at libc's malloc (this file replaces it, so stdio and the
 * rest of libc are counted too; not under ASan). The counts hold still across every pass's batches, a run
 * with three times the batches per epoch makes exactly as many allocations, and a second
 * epoch adds the same number whatever its batch count.
 * Not here: the step alone (test_model.c), the loader alone (test_loader.c). */
#include "check.h"
#include "data/dataset.h"

#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---------------------------------------------------------------- libc's allocations */

#if defined(__GLIBC__) && !defined(__SANITIZE_ADDRESS__)
/* glibc lets a program replace malloc (the manual's "Replacing malloc"); these forward to its
 * own allocator, so pointers from memalign and friends can still be freed here. Not under
 * ASan, whose allocator must own every block (its interceptors' strdup would be freed here). */
void *__libc_malloc(size_t n);
void *__libc_calloc(size_t n, size_t size);
void *__libc_realloc(void *p, size_t n);
void __libc_free(void *p);

static long libc_allocs;

void *malloc(size_t n)
{
    __atomic_add_fetch(&libc_allocs, 1, __ATOMIC_RELAXED);
    return __libc_malloc(n);
}

void *calloc(size_t n, size_t size)
{
    __atomic_add_fetch(&libc_allocs, 1, __ATOMIC_RELAXED);
    return __libc_calloc(n, size);
}

void *realloc(void *p, size_t n)
{
    __atomic_add_fetch(&libc_allocs, 1, __ATOMIC_RELAXED);
    return __libc_realloc(p, n);
}

void free(void *p)
{
    __libc_free(p);
}

static long libc_count(void)
{
    return __atomic_load_n(&libc_allocs, __ATOMIC_RELAXED);
}
#else
static long libc_count(void)
{
    return 0; /* only tk_malloc is counted (not glibc, or built with ASan) */
}
#endif

typedef struct {
    long tk, libc;
} counts;

static counts now_counts(void)
{
    return (counts){check_allocs(), libc_count()};
}

/* ---------------------------------------------------------------- the run */

enum { BATCH = 4, IN = 6, CLASSES = 3, ROWS_PER_K = 40 };

/* 40k rows; the class is the sign pattern of two features. Splits of 20% valid and 20%
 * test leave 6k train batches, 2k valid and 2k test ones. */
static tk_dataset *make_dataset(int k)
{
    int64_t n = (int64_t)ROWS_PER_K * k;
    tk_dataset *ds = tk_dataset_alloc("synthetic.csv", "row");
    ds->n = n;
    ds->nfeat = IN;
    ds->shape = (tk_shape){1, {IN}};
    ds->x32 = tk_malloc((size_t)(n * IN) * sizeof(float));
    ds->y = tk_malloc((size_t)n * sizeof(float));
    ds->label_width = 1;
    ds->kind = TK_LABEL_CLASS;
    ds->n_classes = CLASSES;
    tk_rng r = tk_rng_make(11, 60, (uint32_t)k, 0);
    for (int64_t i = 0; i < n; i++) {
        float *x = ds->x32 + i * IN;
        for (int f = 0; f < IN; f++)
            x[f] = 2.0f * tk_rng_uniform(&r) - 1.0f;
        ds->y[i] = (float)((x[0] > 0) + (x[1] > 0));
    }
    return ds;
}

/* linear(16) -> relu -> dropout -> linear(3) -> cross_entropy, Adam. */
static tk_model *build(tk_ctx *ctx)
{
    tk_graph *g = tk_graph_new(ctx);
    tk_graph_set_batch(g, BATCH);
    int x = tk_graph_input(g, (tk_shape){1, {IN}});
    int t = tk_graph_target(g, (tk_shape){0, {0}});
    tk_attr h16 = {.key = "out_features", .kind = TK_ATTR_INT, .i = 16};
    tk_attr h3 = {.key = "out_features", .kind = TK_ATTR_INT, .i = CLASSES};
    tk_attr p = {.key = "p", .kind = TK_ATTR_FLOAT, .f = 0.1};
    int v = tk_graph_op(g, "linear", &x, 1, &h16, 1, "0", "t:1");
    v = tk_graph_op(g, "relu", &v, 1, NULL, 0, "1", "t:2");
    v = tk_graph_op(g, "dropout", &v, 1, &p, 1, "2", "t:3");
    v = tk_graph_op(g, "linear", &v, 1, &h3, 1, "3", "t:4");
    int in[2] = {v, t};
    int loss = tk_graph_op(g, "cross_entropy", in, 2, NULL, 0, "loss", "t:5");
    tk_graph_set_output(g, v);
    tk_graph_set_loss(g, loss, TK_TASK_CLASSIFICATION);
    CHECK_MSG(loss >= 0, "%s", tk_errmsg(ctx));
    tk_optim_spec o = {.type = "adam", .where = "t:6"};
    o.h.lr = 0.01;
    o.h.beta1 = 0.9;
    o.h.beta2 = 0.999;
    o.h.eps = 1e-8;
    tk_compile_opts co = {.seed = 3, .fuse = true, .train = true};
    tk_model *m = NULL;
    CHECK_MSG(tk_compile(g, &o, &co, &m, ctx) == TK_OK, "%s", tk_errmsg(ctx));
    tk_graph_free(g);
    return m;
}

/* What the progress callback saw: the counts at each pass's first report, and the first
 * report (of any pass) at which they had moved since. */
typedef struct {
    counts first;
    int reports;
    bool moved;
    char where[160];
} watch;

static void on_progress(const tk_progress *p, void *ud)
{
    watch *w = ud;
    counts c = now_counts();
    w->reports++;
    if (p->batch == 1 && !p->done) {
        w->first = c;
        return;
    }
    if (!w->moved && (c.tk != w->first.tk || c.libc != w->first.libc)) {
        w->moved = true;
        snprintf(w->where, sizeof w->where, "%s pass of epoch %lld, batch %lld of %lld%s: "
                 "%ld tk_malloc and %ld malloc since its first batch", p->split,
                 (long long)p->epoch, (long long)p->batch, (long long)p->batches,
                 p->done ? " (done)" : "", c.tk - w->first.tk, c.libc - w->first.libc);
    }
}

typedef struct {
    counts during;             /* allocations inside tk_train */
    int64_t steps_per_epoch;
    off_t events_bytes;
    bool improved;             /* the valid loss fell in every epoch after the first */
} run_result;

static off_t events_size(const char *dir)
{
    char cmd[4400];
    snprintf(cmd, sizeof cmd, "cat '%s'/events.out.tfevents.* | wc -c", dir);
    FILE *p = popen(cmd, "r");
    long long n = -1;
    if (p) {
        if (fscanf(p, "%lld", &n) != 1)
            n = -1;
        pclose(p);
    }
    return (off_t)n;
}

/* Did each epoch's valid loss (valid.log) beat the one before? */
static bool valid_loss_falls(const char *path)
{
    FILE *f = fopen(path, "r");
    char line[512];
    double last = 0, loss;
    bool falls = f != NULL, first = true;
    while (f && fgets(line, sizeof line, f)) {
        const char *at = strstr(line, " loss ");
        if (strncmp(line, "epoch ", 6) != 0 || !at || sscanf(at, " loss %lf", &loss) != 1)
            continue;
        falls = falls && (first || loss < last);
        last = loss;
        first = false;
    }
    if (f)
        fclose(f);
    return falls;
}

static int lines_of(const char *path)
{
    FILE *f = fopen(path, "r");
    int n = 0;
    if (!f)
        return -1;
    for (int c; (c = fgetc(f)) != EOF;)
        n += c == '\n';
    fclose(f);
    return n;
}

/* tk_train over 40k rows for `epochs` epochs, in a fresh TK_TEST_TMP/<name>. */
static run_result run(const char *name, int k, int64_t epochs)
{
    run_result res = {{-1, -1}, 0, -1, false};
    tk_ctx *ctx = tk_ctx_new();
    tk_dataset *ds = make_dataset(k);
    tk_view *train = tk_view_all(ds), *parts[2] = {NULL, NULL};
    CHECK(tk_view_split(train, (double[]){0.2, 0.2}, 2, 5, parts, ctx) == TK_OK);
    tk_model *m = build(ctx);
    const char *dir = check_tmpdir(name);
    FILE *report = fopen(check_path(dir, "report.txt"), "w");
    if (!m || !parts[0] || !report) {
        tk_model_free(m);
        tk_view_free(parts[0]);
        tk_view_free(parts[1]);
        tk_view_free(train);
        tk_dataset_free(ds);
        tk_ctx_free(ctx);
        return res;
    }
    static const char *const metrics[] = {"f1", "precision", "top2", "confusion"};
    watch w = {{0, 0}, 0, false, ""};
    tk_train_opts o = {.train = train, .valid = parts[0], .test = parts[1],
                       .batch_size = BATCH, .shuffle = true, .epochs = epochs, .seed = 9,
                       .run_dir = dir, .clip_grad_norm = 0.5, .metrics = metrics,
                       .n_metrics = 4, .best = {"valid.loss", false}, .save_every = 1,
                       .keep = 1, .save_last = true, .stop = {"valid.loss", false},
                       .patience = 50, .restore_best = true, .config = "{}",
                       .tensorboard = true, .log_every = 1, .report = report,
                       .progress = on_progress, .progress_ud = &w};
    res.steps_per_epoch = tk_train_steps_per_epoch(&o);
    const tk_attr cosine[] = {
        {.key = "eta_min", .kind = TK_ATTR_FLOAT, .f = 0},
        {.key = "warmup_steps", .kind = TK_ATTR_INT, .i = 2},
        {.key = "warmup_start_factor", .kind = TK_ATTR_FLOAT, .f = 0.1},
    };
    tk_sched_spec sched = {.name = "cosine", .attrs = cosine, .n_attrs = 3, .unit = 1,
                           .total_steps = epochs * res.steps_per_epoch};
    o.sched = &sched;

    check_count_allocations();
    counts before = now_counts();
    tk_status st = tk_train(m, &o, ctx);
    counts after = now_counts();
    long live = check_live_blocks();
    tk_set_allocator(NULL);
    fclose(report);
    res.during = (counts){after.tk - before.tk, after.libc - before.libc};

    CHECK_MSG(st == TK_OK, "%s", tk_errmsg(ctx));
    CHECK_MSG(live == 0, "%s: tk_train left %ld blocks allocated", name, live);
    CHECK_MSG(!w.moved, "%s: allocation in the step loop: %s", name, w.where);
    /* Every pass reported every batch and its end: the callback watched the whole loop. */
    int64_t passes_reports = epochs * (6 * k + 1 + 2 * k + 1) + 2 * k + 1;
    CHECK_MSG(w.reports == passes_reports, "%d reports, expected %lld", w.reports,
              (long long)passes_reports);
    /* The features the loop had on made their output. */
    CHECK(lines_of(check_path(dir, "train.log")) == epochs);
    CHECK(lines_of(check_path(dir, "valid.log")) == epochs + 1);
    CHECK(lines_of(check_path(dir, "metrics.csv")) == 1 + 2 * epochs + 1);
    struct stat s;
    CHECK(stat(check_path(dir, "checkpoints/last.safetensors"), &s) == 0);
    CHECK(stat(check_path(dir, "checkpoints/best.safetensors"), &s) == 0);
    CHECK(stat(check_path(dir, "checkpoints/final.safetensors"), &s) == 0);
    res.improved = valid_loss_falls(check_path(dir, "valid.log"));
    res.events_bytes = events_size(dir);
    CHECK(res.events_bytes > 0);

    tk_model_free(m);
    tk_view_free(train);
    tk_view_free(parts[0]);
    tk_view_free(parts[1]);
    tk_dataset_free(ds);
    tk_ctx_free(ctx);
    return res;
}

int main(void)
{
    tk_set_threads(2);
    /* First-use costs (the thread pool, stdio, libc's lazy tables) go to a run not counted. */
    run("warmup", 1, 1);
    run_result one = run("k1e1", 1, 1), three = run("k3e1", 3, 1);
    run_result one2 = run("k1e2", 1, 2), three2 = run("k3e2", 3, 2);
    CHECK(one.steps_per_epoch == 6 && three.steps_per_epoch == 18);
    /* 12 more loss_step events per epoch: the per-step logging really ran. */
    CHECK(three.events_bytes > one.events_bytes);

    printf("tk_train allocations, tk_malloc / malloc:\n"
           "  1 epoch:  %ld / %ld at 6 steps per epoch, %ld / %ld at 18\n"
           "  2 epochs: %ld / %ld at 6 steps per epoch, %ld / %ld at 18\n",
           one.during.tk, one.during.libc, three.during.tk, three.during.libc,
           one2.during.tk, one2.during.libc, three2.during.tk, three2.during.libc);
    CHECK_MSG(three.during.tk == one.during.tk, "%ld tk_malloc for 12 more steps",
              three.during.tk - one.during.tk);
    CHECK_MSG(three2.during.tk == one2.during.tk, "%ld tk_malloc for 24 more steps",
              three2.during.tk - one2.during.tk);
    CHECK_MSG(three.during.libc == one.during.libc, "%ld malloc for 12 more steps",
              three.during.libc - one.during.libc);
    CHECK_MSG(three2.during.libc == one2.during.libc, "%ld malloc for 24 more steps",
              three2.during.libc - one2.during.libc);
    /* The second epoch's extra is a constant, the same at 6 and 18 steps: its two full
     * checkpoints (epoch-0002, last), best.safetensors and listing the epoch files to prune;
     * the passes and their log lines add nothing. A best.safetensors that one run writes
     * and the other does not would differ by a checkpoint, so both must improve. */
    long epoch_tk = one2.during.tk - one.during.tk, epoch_libc = one2.during.libc -
                                                                 one.during.libc;
    printf("  a second epoch adds %ld / %ld\n", epoch_tk, epoch_libc);
    CHECK_MSG(one2.improved && three2.improved, "the valid loss of epoch 2 did not fall "
              "below epoch 1's in both runs (see valid.log): the comparison needs it to");
    CHECK(three2.during.tk - three.during.tk == epoch_tk);
    CHECK(three2.during.libc - three.during.libc == epoch_libc);
    return check_summary();
}
