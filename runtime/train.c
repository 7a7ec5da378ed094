/* train.c - the training loop: epochs of train steps over a loader, a valid pass after each
 * epoch, a test pass at the end; train.log, valid.log and metrics.csv in the run directory;
 * progress reported through a callback (the library prints nothing). Also the data checks
 * that run before the first batch. */
#include "tk_int.h"

#include <math.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static const tk_node *loss_node(const tk_model *m)
{
    return &m->g->nodes[m->g->loss];
}

static int output_width(const tk_model *m)
{
    return (int)tk_sample_numel(&m->g->nodes[m->g->output].shape);
}

/* ---------------------------------------------------------------- checks before training */

static tk_status check_view(const tk_model *m, const tk_view *v, const char *split, tk_ctx *ctx)
{
    const tk_dataset *ds = tk_view_dataset(v);
    tk_shape want = m->g->nodes[m->g->input].shape, got = tk_dataset_sample_shape(ds);
    bool same = got.ndim + 1 == want.ndim;
    for (int i = 0; same && i < got.ndim; i++)
        same = got.d[i] == want.d[i + 1];
    char a[96], b[96];
    tk_shape ws = want;
    ws.ndim--;
    memmove(ws.d, ws.d + 1, sizeof(int64_t) * (size_t)ws.ndim);
    if (!same)
        return tk_fail(ctx, TK_ERR_INPUT, "%s: %s samples have shape %s but the model was "
                       "built for %s", split, tk_dataset_source(ds),
                       tk_shape_str(&got, a, sizeof a), tk_shape_str(&ws, b, sizeof b));
    const tk_node *loss = loss_node(m);
    bool class_ids = loss->op->flags & TK_OP_CLASS_TARGET;
    if (class_ids != (tk_dataset_label_kind(ds) == TK_LABEL_CLASS))
        return tk_fail(ctx, TK_ERR_INPUT, "%s: %s needs %s, but the labels of %s are %s",
                       loss->where, loss->op->name, class_ids ? "class ids" : "float targets",
                       tk_dataset_source(ds), class_ids ? "float targets" : "class ids");
    if (!class_ids) {
        int width = tk_dataset_label_width(ds);
        if (width != output_width(m))
            return tk_fail(ctx, TK_ERR_INPUT, "%s: %s: the model predicts %d values per sample "
                           "but %s has %d target columns", loss->where, loss->op->name,
                           output_width(m), tk_dataset_source(ds), width);
        return TK_OK;
    }
    int classes = output_width(m);
    int64_t ignore = tk_attr_int(loss, "ignore_index", -100);
    for (int64_t i = 0; i < tk_view_len(v); i++) {
        int64_t row = tk_view_index(v, i);
        float y = tk_dataset_label(ds, row, 0);
        if ((int64_t)y == ignore)
            continue;
        if (y < 0 || y >= (float)classes) {
            char where[512];
            const char *name = tk_dataset_class_name(ds, (int)y);
            return tk_fail(ctx, TK_ERR_INPUT, "%s: %s: label %lld%s%s%s out of range for %d "
                           "classes (%s); the last layer has %d outputs", loss->where,
                           loss->op->name, (long long)y, name ? " ('" : "", name ? name : "",
                           name ? "')" : "", classes,
                           tk_dataset_where(ds, row, where, sizeof where), classes);
        }
    }
    return TK_OK;
}

tk_status tk_check_data(const tk_model *m, const tk_train_opts *o, tk_ctx *ctx)
{
    if (!o->train || tk_view_len(o->train) == 0)
        return tk_fail(ctx, TK_ERR_INPUT, "the train split is empty");
    if (o->batch_size <= 0 || o->batch_size > tk_model_batch(m))
        return tk_fail(ctx, TK_ERR_INPUT, "batch_size %d does not fit the compiled model (%d)",
                       o->batch_size, tk_model_batch(m));
    if (o->drop_last && tk_view_len(o->train) < o->batch_size)
        return tk_fail(ctx, TK_ERR_INPUT, "drop_last with batch_size %d leaves no batch of the "
                       "%lld train samples", o->batch_size, (long long)tk_view_len(o->train));
    const struct {
        tk_view *v;
        const char *name;
    } splits[] = {{o->train, "train"}, {o->valid, "valid"}, {o->test, "test"}};
    for (int i = 0; i < 3; i++)
        if (splits[i].v && check_view(m, splits[i].v, splits[i].name, ctx) != TK_OK)
            return TK_ERR_INPUT;
    return TK_OK;
}

/* ---------------------------------------------------------------- logs */

typedef struct {
    FILE *train, *valid, *csv;
} run_logs;

static FILE *open_log(const char *dir, const char *name, const char *header, tk_ctx *ctx)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    struct stat st;
    bool fresh = stat(path, &st) != 0 || st.st_size == 0;
    FILE *f = fopen(path, "a");
    if (!f) {
        tk_fail(ctx, TK_ERR_RUNTIME, "cannot open %s for writing", path);
        return NULL;
    }
    if (fresh && header)
        fputs(header, f);
    return f;
}

static void close_logs(run_logs *l)
{
    FILE *files[] = {l->train, l->valid, l->csv};
    for (int i = 0; i < 3; i++)
        if (files[i])
            fclose(files[i]);
    memset(l, 0, sizeof *l);
}

static tk_status open_logs(run_logs *l, const char *dir, tk_ctx *ctx)
{
    memset(l, 0, sizeof *l);
    if (!dir)
        return TK_OK;
    if (tk_mkdirs(dir, ctx) != TK_OK)
        return TK_ERR_RUNTIME;
    l->train = open_log(dir, "train.log", NULL, ctx);
    l->valid = l->train ? open_log(dir, "valid.log", NULL, ctx) : NULL;
    l->csv = l->valid ? open_log(dir, "metrics.csv", "epoch,step,split,loss,accuracy,lr,seconds\n",
                                 ctx)
                      : NULL;
    if (!l->csv) {
        close_logs(l);
        return TK_ERR_RUNTIME;
    }
    return TK_OK;
}

static void fmt_accuracy(char *buf, size_t cap, double acc)
{
    if (isnan(acc))
        buf[0] = 0;
    else
        snprintf(buf, cap, "%.6f", acc);
}

static void log_pass(run_logs *l, FILE *human, const tk_progress *p, const tk_train_opts *o,
                     double wait_fraction)
{
    if (!l->csv)
        return;
    char acc[32];
    fmt_accuracy(acc, sizeof acc, p->accuracy);
    fprintf(human, "epoch %lld/%lld step %lld loss %.6f", (long long)p->epoch,
            (long long)o->epochs, (long long)p->step, p->loss);
    if (acc[0])
        fprintf(human, " accuracy %s", acc);
    if (human == l->train)
        fprintf(human, " lr %.6g samples/s %.0f data-wait %.1f%%", p->lr, p->samples_per_sec,
                100.0 * wait_fraction);
    fprintf(human, " seconds %.3f\n", p->seconds);
    fprintf(l->csv, "%lld,%lld,%s,%.6f,%s,%.6g,%.3f\n", (long long)p->epoch, (long long)p->step,
            p->split, p->loss, acc, p->lr, p->seconds);
    fflush(human);
    fflush(l->csv);
}

/* ---------------------------------------------------------------- passes */

typedef struct {
    tk_model *m;
    const tk_train_opts *o;
    tk_metrics *metrics;
    double *lrs;
    int64_t step;              /* optimizer steps */
    int64_t batches_seen;      /* keys dropout randomness */
    run_logs logs;
} trainer;

static void report(const trainer *t, tk_progress *p)
{
    if (t->o->progress)
        t->o->progress(p, t->o->progress_ud);
}

static tk_status train_epoch(trainer *t, tk_loader *ld, int64_t epoch, tk_ctx *ctx)
{
    tk_model *m = t->m;
    const int width = output_width(m);
    const double start = now();
    double wait = 0, loss_sum = 0;
    int64_t rows = 0, batch = 0;
    tk_metrics_reset(t->metrics);
    tk_loader_begin(ld, epoch, 0);
    tk_progress p = {.split = "train", .epoch = epoch, .epochs = t->o->epochs,
                     .batches = tk_loader_batches(ld), .lr = t->lrs[0]};
    for (;;) {
        double w0 = now();
        int n = tk_loader_next(ld, tk_model_input(m), tk_model_target(m), NULL);
        wait += now() - w0;
        if (n == 0)
            break;
        batch++;
        float loss;
        tk_model_zero_grad(m);
        if (tk_model_forward_backward(m, n, 1.0f, (uint64_t)t->batches_seen++, &loss, ctx))
            return TK_ERR_RUNTIME;
        if (!isfinite(loss))
            return tk_fail(ctx, TK_ERR_RUNTIME, "non-finite loss (%g) at epoch %lld, step %lld, "
                           "batch %lld: lower the learning rate or clip gradients", loss,
                           (long long)epoch, (long long)t->step + 1, (long long)batch);
        tk_model_update(m, t->lrs);
        t->step++;
        tk_metrics_add(t->metrics, tk_model_output(m), width, tk_model_target(m), n);
        loss_sum += (double)loss * n;
        rows += n;
        p.batch = batch;
        p.step = t->step;
        p.loss = loss_sum / (double)rows;
        p.accuracy = tk_metrics_accuracy(t->metrics);
        p.seconds = now() - start;
        p.samples_per_sec = p.seconds > 0 ? (double)rows / p.seconds : 0;
        report(t, &p);
    }
    p.done = true;
    p.seconds = now() - start;
    report(t, &p);
    log_pass(&t->logs, t->logs.train, &p, t->o, p.seconds > 0 ? wait / p.seconds : 0);
    return TK_OK;
}

static tk_status eval_pass(trainer *t, tk_loader *ld, const char *split, int64_t epoch,
                           tk_ctx *ctx)
{
    tk_model *m = t->m;
    const int width = output_width(m);
    const double start = now();
    double loss_sum = 0;
    int64_t rows = 0, batch = 0;
    tk_metrics_reset(t->metrics);
    tk_loader_begin(ld, 0, 0);
    tk_progress p = {.split = split, .epoch = epoch, .epochs = t->o->epochs,
                     .batches = tk_loader_batches(ld), .step = t->step, .lr = t->lrs[0]};
    for (int n; (n = tk_loader_next(ld, tk_model_input(m), tk_model_target(m), NULL)) > 0;) {
        float loss;
        if (tk_model_eval(m, n, &loss, ctx))
            return TK_ERR_RUNTIME;
        tk_metrics_add(t->metrics, tk_model_output(m), width, tk_model_target(m), n);
        loss_sum += (double)loss * n;
        rows += n;
        p.batch = ++batch;
        p.loss = loss_sum / (double)rows;
        p.accuracy = tk_metrics_accuracy(t->metrics);
        p.seconds = now() - start;
        report(t, &p);
    }
    p.done = true;
    p.seconds = now() - start;
    p.samples_per_sec = p.seconds > 0 ? (double)rows / p.seconds : 0;
    report(t, &p);
    log_pass(&t->logs, t->logs.valid, &p, t->o, 0);
    return TK_OK;
}

static tk_status make_loader(tk_view *v, const tk_train_opts *o, bool train, tk_loader **out,
                             tk_ctx *ctx)
{
    *out = NULL;
    if (!v)
        return TK_OK;
    tk_loader_opts lo = {.batch_size = o->batch_size, .shuffle = train && o->shuffle,
                         .drop_last = train && o->drop_last, .seed = o->seed, .prefetch = true};
    return tk_loader_new(v, &lo, out, ctx);
}

tk_status tk_train(tk_model *m, const tk_train_opts *o, tk_ctx *ctx)
{
    if (tk_check_data(m, o, ctx) != TK_OK)
        return TK_ERR_INPUT;
    trainer t = {.m = m, .o = o, .step = tk_model_optim_steps(m)};
    tk_loader *train = NULL, *valid = NULL, *test = NULL;
    const tk_dataset *ds = tk_view_dataset(o->train);
    tk_label_kind kind = tk_dataset_label_kind(ds);
    t.metrics = tk_metrics_new(kind == TK_LABEL_CLASS ? output_width(m) : 0,
                               tk_dataset_label_width(ds));
    t.lrs = tk_calloc((size_t)m->n_groups, sizeof(double));
    tk_status st = t.metrics && t.lrs ? TK_OK : tk_fail(ctx, TK_ERR_RUNTIME, "out of memory");
    for (int k = 0; st == TK_OK && k < m->n_groups; k++)
        t.lrs[k] = m->groups[k].h.lr;
    if (st == TK_OK)
        st = make_loader(o->train, o, true, &train, ctx);
    if (st == TK_OK)
        st = make_loader(o->valid, o, false, &valid, ctx);
    if (st == TK_OK)
        st = make_loader(o->test, o, false, &test, ctx);
    if (st == TK_OK)
        st = open_logs(&t.logs, o->run_dir, ctx);
    for (int64_t epoch = 1; st == TK_OK && epoch <= o->epochs; epoch++) {
        st = train_epoch(&t, train, epoch, ctx);
        if (st == TK_OK && valid)
            st = eval_pass(&t, valid, "valid", epoch, ctx);
    }
    if (st == TK_OK && test)
        st = eval_pass(&t, test, "test", o->epochs, ctx);
    close_logs(&t.logs);
    tk_loader_free(train);
    tk_loader_free(valid);
    tk_loader_free(test);
    tk_metrics_free(t.metrics);
    tk_free(t.lrs);
    return st;
}
