/* train.c - the training loop: epochs of steps (gradient accumulation, clipping, the LR
 * schedule, non-finite checks), a valid pass per epoch, the save policy (last, every N, best),
 * early stopping, interrupts that save and stop, exact resume, and the final test pass.
 * Not here: the checks that run before the first batch (train_check.c). Progress goes through a callback; logs are
 * runlog.c's, checkpoint files ckpt.c's. The library prints nothing. */
#include "tk_int.h"

#include <dirent.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double wall_clock(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---------------------------------------------------------------- the trainer */

enum { TRAIN, VALID, TEST };

typedef struct {
    tk_model *m;
    const tk_train_opts *o;
    tk_ctx *ctx;
    tk_loader *loaders[3];
    tk_metrics *metrics[3];    /* each split's pass (test: NULL without a test split) */
    tk_sched *sched;
    double *lrs, *base_lrs;
    tk_train_state st;
    tk_runlog log;
    char ckpt_dir[4096];
    double eval_loss;          /* of the last eval pass */
    bool writer;               /* writes the run directory: rank 0 of a data-parallel run */
    bool stop_any;             /* a signal on some rank, as of the last train batch's sum */
    tk_train_opts silent;      /* the options other ranks open the logs with: no run_dir */
} trainer;

static void notice(const trainer *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void notice(const trainer *t, const char *fmt, ...)
{
    if (!t->o->notice)
        return;
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    t->o->notice(msg, t->o->notice_ud);
}

static void report(const trainer *t, tk_progress *p)
{
    if (t->o->progress)
        t->o->progress(p, t->o->progress_ud);
}

static tk_status save_full(trainer *t, const char *name)
{
    tk_status st = TK_OK;
    if (t->o->run_dir && t->writer) {
        char path[4400];
        snprintf(path, sizeof path, "%s/%s", t->ckpt_dir, name);
        t->st.ranks = tk_dist_on(t->o->dist) ? t->o->dist->size : 1;
        t->st.stat_ranks = tk_dist_stat_ranks(t->o);
        if (t->st.n_metrics)
            tk_metrics_get_state(t->metrics[TRAIN], t->st.metrics);
        if (t->st.n_sched)
            tk_sched_get_state(t->sched, t->st.sched);
        st = tk_ckpt_save(t->m, path, &t->st, t->o->config, t->ctx);
    }
    /* Every rank calls this at the same step and waits for rank 0's file: a rank that left
     * first (interrupted) would have mpirun stop rank 0 in the middle of writing. */
    if (st == TK_OK && tk_dist_on(t->o->dist))
        tk_dist_any(t->o->dist, false, t->ctx, &st);
    return st;
}

/* The value a monitor names, from the passes of the epoch that just ended. */
static double monitored(const trainer *t, const tk_monitor *mon)
{
    bool valid = strncmp(mon->name, "valid.", 6) == 0;
    const char *metric = mon->name + 6;
    if (strcmp(metric, "loss") == 0)
        return valid ? t->eval_loss : t->st.loss_sum / t->st.loss_weight;
    return tk_metrics_value(t->metrics[valid ? VALID : TRAIN], metric);
}

static bool improved(const tk_monitor *mon, double value, double best, double min_delta)
{
    if (isnan(value))
        return false;
    if (isnan(best))
        return true;
    return mon->maximize ? value > best + min_delta : value < best - min_delta;
}

/* ---------------------------------------------------------------- passes */

/* Handle a non-finite loss or gradient norm at the end of an accumulation window: stop with
 * a message naming where, or (skip) drop the update. Returns TK_OK to go on. */
static tk_status nonfinite(trainer *t, int64_t epoch, int64_t batch, float loss, double norm,
                           bool *skip)
{
    const char *what = !isfinite(loss) ? "loss" : "gradient norm";
    double v = !isfinite(loss) ? (double)loss : norm;
    if (!t->o->skip_nonfinite)
        return tk_fail(t->ctx, TK_ERR_RUNTIME, "non-finite %s (%g) at epoch %lld, step %lld, "
                       "batch %lld; the last good checkpoint is kept (lower the learning rate, "
                       "clip gradients, or set on_nonfinite = \"skip\")", what, v,
                       (long long)epoch, (long long)t->st.step + 1, (long long)batch);
    t->st.skips++;
    notice(t, "skipped the update at epoch %lld, batch %lld: non-finite %s (%g); %lld skipped "
           "so far", (long long)epoch, (long long)batch, what, v, (long long)t->st.skips);
    if (t->st.skips > t->o->max_skips)
        return tk_fail(t->ctx, TK_ERR_RUNTIME, "non-finite %s at epoch %lld, step %lld, batch "
                       "%lld: more than max_skips = %lld skipped updates; the last good "
                       "checkpoint is kept", what, (long long)epoch, (long long)t->st.step + 1,
                       (long long)batch, (long long)t->o->max_skips);
    *skip = true;
    return TK_OK;
}

/* Clip, schedule and apply one optimizer update from the accumulated gradients. */
static tk_status update(trainer *t, int64_t epoch, int64_t batch, float loss, int in_window)
{
    const tk_train_opts *o = t->o;
    int k = tk_accumulation(o);
    if (tk_dist_reduce_grad(t->m, o->dist, t->ctx) != TK_OK)
        return TK_ERR_RUNTIME;
    if (in_window < k)
        tk_model_scale_grad(t->m, (float)k / (float)in_window); /* a short last window */
    tk_model_check_fused(t->m);
    double norm = tk_model_grad_norm(t->m);
    bool skip = false;
    if ((!isfinite(loss) || !isfinite(norm)) &&
        nonfinite(t, epoch, batch, loss, norm, &skip) != TK_OK)
        return TK_ERR_RUNTIME;
    if (skip)
        return TK_OK;
    if (o->clip_grad_value > 0) {
        tk_model_clip_grad_value(t->m, (float)o->clip_grad_value);
        norm = tk_model_grad_norm(t->m);
    }
    /* torch.nn.utils.clip_grad_norm_: scale by max_norm / (norm + 1e-6) when below 1. */
    if (o->clip_grad_norm > 0) {
        double coef = o->clip_grad_norm / (norm + 1e-6);
        if (coef < 1.0)
            tk_model_scale_grad(t->m, (float)coef);
    }
    tk_sched_lrs(t->sched, t->st.step, t->lrs);
    tk_model_update(t->m, t->lrs);
    t->st.step++;
    if (o->log_every > 0 && t->st.step % o->log_every == 0)
        tk_runlog_step(&t->log, t->st.step, loss, wall_clock());
    return TK_OK;
}

/* One batch of n rows through the train (forward, backward) or eval schedule: when
 * data-parallel, this rank's shard of the rows, with the loss scaled by the shard's share so
 * the ranks' gradients sum to the batch's. Metrics count this rank's rows; *loss is the
 * batch's loss over all n rows, the same on every rank. */
static tk_status run_batch(trainer *t, bool train, int n, tk_metrics *mt, float *loss)
{
    tk_model *m = t->m;
    const tk_dist *d = t->o->dist;
    const int k = tk_accumulation(t->o), width = tk_model_output_width(m);
    const uint64_t step = train ? (uint64_t)t->st.batches_seen++ : 0;
    int rows = tk_dist_on(d) ? tk_dist_take_rows(m, d, n) : n;
    double share = tk_dist_on(d) ? tk_dist_loss_share(m, rows, n) : 1.0;
    float part = 0;
    if (rows > 0) {
        tk_status st = train ? tk_model_forward_backward(m, rows, (float)(share / k), step,
                                                         &part, t->ctx)
                             : tk_model_eval(m, rows, &part, t->ctx);
        if (st != TK_OK || (train && tk_dist_sync_status(m, t->ctx) != TK_OK))
            return TK_ERR_RUNTIME;
        tk_metrics_add(mt, tk_model_output(m), width, tk_model_target(m), rows);
    }
    if (!tk_dist_on(d)) {
        *loss = part;
        return TK_OK;
    }
    /* The interrupt flag rides along, so a step needs no reduction of its own for it. */
    double sum[2] = {rows > 0 ? (double)part * share : 0.0,
                     t->o->interrupt && *t->o->interrupt ? 1.0 : 0.0};
    if (tk_dist_sum_doubles(d, sum, 2, "the loss", t->ctx) != TK_OK)
        return TK_ERR_RUNTIME;
    *loss = (float)sum[0];
    if (train)
        t->stop_any = sum[1] > 0;
    return TK_OK;
}

/* A signal on any rank stops every rank at the same step: the flag is reduced (`fresh`), or
 * taken from the last train batch's reduction. */
static bool interrupted(trainer *t, bool fresh, tk_status *st)
{
    bool mine = t->o->interrupt && *t->o->interrupt;
    *st = TK_OK;
    if (!tk_dist_on(t->o->dist))
        return mine;
    return fresh ? tk_dist_any(t->o->dist, mine, t->ctx, st) : t->stop_any;
}

static tk_status train_epoch(trainer *t, int64_t epoch)
{
    tk_model *m = t->m;
    const tk_train_opts *o = t->o;
    tk_loader *ld = t->loaders[TRAIN];
    tk_metrics *mt = t->metrics[TRAIN];
    const int k = tk_accumulation(o);
    const double start = now();
    double wait = 0;
    if (t->st.cursor == 0) {
        tk_metrics_reset(mt);
        t->st.loss_sum = t->st.loss_weight = 0;
        t->st.rows = 0;
    }
    tk_loader_begin(ld, epoch, t->st.cursor);
    tk_progress p = {.split = "train", .epoch = epoch, .epochs = o->epochs,
                     .batches = tk_loader_batches(ld)};
    int64_t batch = t->st.cursor, rows_here = 0;
    int in_window = 0;
    for (;;) {
        double w0 = now();
        int n = tk_loader_next(ld, tk_model_input(m), tk_model_target(m), NULL);
        wait += now() - w0;
        if (n < 0)
            return tk_loader_fail(ld, t->ctx);
        if (n == 0)
            break;
        batch++;
        if (in_window++ == 0)
            tk_model_zero_grad(m);
        float loss;
        double weight = tk_model_loss_weight(m, n);
        if (run_batch(t, true, n, mt, &loss) != TK_OK)
            return TK_ERR_RUNTIME;
        if (weight > 0) {
            t->st.loss_sum += (double)loss * weight;
            t->st.loss_weight += weight;
        }
        t->st.rows += n;
        rows_here += n;
        if (in_window == k || batch == p.batches) {
            if (update(t, epoch, batch, loss, in_window) != TK_OK)
                return TK_ERR_RUNTIME;
            in_window = 0;
            t->st.cursor = batch;
        }
        p.batch = batch;
        p.step = t->st.step;
        p.lr = t->lrs[0];
        p.loss = t->st.loss_sum / t->st.loss_weight;
        p.accuracy = tk_metrics_accuracy(mt);
        p.seconds = now() - start;
        p.samples_per_sec = p.seconds > 0 ? (double)rows_here / p.seconds : 0;
        report(t, &p);
        tk_status ist = TK_OK;
        bool stop = in_window == 0 && batch < p.batches && interrupted(t, false, &ist);
        if (ist != TK_OK)
            return TK_ERR_RUNTIME;
        if (stop) {
            /* The checkpoint carries the epoch's metrics summed over the ranks (resume gives
             * them to rank 0). */
            if (tk_dist_reduce_metrics(mt, o->dist, t->ctx) != TK_OK ||
                save_full(t, "last.safetensors") != TK_OK)
                return TK_ERR_RUNTIME;
            return tk_fail(t->ctx, TK_ERR_INTERRUPTED, "interrupted at epoch %lld, batch %lld "
                           "(step %lld): state saved to %s/last.safetensors",
                           (long long)epoch, (long long)batch, (long long)t->st.step,
                           t->ckpt_dir);
        }
    }
    if (tk_dist_reduce_metrics(mt, o->dist, t->ctx) != TK_OK)
        return TK_ERR_RUNTIME;
    p.accuracy = tk_metrics_accuracy(mt);
    p.done = true;
    p.seconds = now() - start;
    report(t, &p);
    tk_pass_log pl = {"train", epoch, t->st.step, p.loss, mt, t->lrs, p.seconds,
                      p.samples_per_sec, p.seconds > 0 ? wait / p.seconds : 0, wall_clock()};
    return tk_runlog_pass(&t->log, &pl, t->ctx);
}

static tk_status eval_pass(trainer *t, int split, int64_t epoch)
{
    static const char *const names[3] = {"train", "valid", "test"};
    tk_model *m = t->m;
    tk_loader *ld = t->loaders[split];
    tk_metrics *mt = t->metrics[split];
    const double start = now();
    double loss_sum = 0, loss_weight = 0;
    int64_t rows = 0, batch = 0;
    tk_metrics_reset(mt);
    tk_loader_begin(ld, 0, 0);
    tk_progress p = {.split = names[split], .epoch = epoch, .epochs = t->o->epochs,
                     .batches = tk_loader_batches(ld), .step = t->st.step, .lr = t->lrs[0]};
    int n;
    while ((n = tk_loader_next(ld, tk_model_input(m), tk_model_target(m), NULL)) > 0) {
        float loss;
        double weight = tk_model_loss_weight(m, n);
        if (run_batch(t, false, n, mt, &loss) != TK_OK)
            return TK_ERR_RUNTIME;
        if (weight > 0) {
            loss_sum += (double)loss * weight;
            loss_weight += weight;
        }
        rows += n;
        p.batch = ++batch;
        p.loss = loss_sum / loss_weight;
        p.accuracy = tk_metrics_accuracy(mt);
        p.seconds = now() - start;
        report(t, &p);
    }
    if (n < 0)
        return tk_loader_fail(ld, t->ctx);
    if (tk_dist_reduce_metrics(mt, t->o->dist, t->ctx) != TK_OK)
        return TK_ERR_RUNTIME;
    p.accuracy = tk_metrics_accuracy(mt);
    p.done = true;
    p.seconds = now() - start;
    p.samples_per_sec = p.seconds > 0 ? (double)rows / p.seconds : 0;
    report(t, &p);
    t->eval_loss = p.loss;
    tk_pass_log pl = {names[split], epoch, t->st.step, p.loss, mt, t->lrs, p.seconds,
                      p.samples_per_sec, 0, wall_clock()};
    return tk_runlog_pass(&t->log, &pl, t->ctx);
}

/* ---------------------------------------------------------------- save policy */

static int by_name_desc(const void *a, const void *b)
{
    return strcmp(*(char *const *)b, *(char *const *)a);
}

/* Names of checkpoints/epoch-NNNN.safetensors, newest first (the caller frees them). */
static int list_epoch_files(const char *dir, char **names, int cap)
{
    DIR *d = opendir(dir);
    int n = 0;
    if (!d)
        return 0;
    for (struct dirent *e; (e = readdir(d)) != NULL && n < cap;) {
        size_t len = strlen(e->d_name);
        if (strncmp(e->d_name, "epoch-", 6) == 0 && len > 12 &&
            strcmp(e->d_name + len - 12, ".safetensors") == 0)
            names[n++] = tk_strdup(e->d_name);
    }
    closedir(d);
    qsort(names, (size_t)n, sizeof *names, by_name_desc);
    return n;
}

static void prune_epoch_files(trainer *t)
{
    char *names[1024];
    int n = list_epoch_files(t->ckpt_dir, names, 1024);
    for (int i = 0; i < n; i++) {
        if (names[i] && t->o->keep > 0 && i >= t->o->keep) {
            char path[4400];
            snprintf(path, sizeof path, "%s/%s", t->ckpt_dir, names[i]);
            unlink(path);
        }
        tk_free(names[i]);
    }
}

/* After an epoch's passes: the schedule's plateau, best weights, early stopping, periodic
 * and last checkpoints, in that order (a crash between two of them redoes the epoch). */
static tk_status end_epoch(trainer *t, int64_t epoch, bool *stop)
{
    const tk_train_opts *o = t->o;
    char path[4400];
    t->st.epoch = epoch;
    t->st.cursor = 0;
    tk_monitor watched = {NULL, false};
    if ((watched.name = tk_sched_monitor(o->sched, &watched.maximize)))
        tk_sched_observe(t->sched, monitored(t, &watched));
    if (o->best.name) {
        double v = monitored(t, &o->best);
        if (improved(&o->best, v, t->st.best, 0.0)) {
            t->st.best = v;
            t->st.best_epoch = epoch;
            snprintf(path, sizeof path, "%s/best.safetensors", t->ckpt_dir);
            if (o->run_dir && t->writer && tk_model_save_weights(t->m, path, t->ctx) != TK_OK)
                return TK_ERR_RUNTIME;
        }
    }
    if (o->stop.name && o->patience > 0) {
        double v = monitored(t, &o->stop);
        if (improved(&o->stop, v, t->st.stop_best, o->min_delta)) {
            t->st.stop_best = v;
            t->st.bad_epochs = 0;
        } else if (++t->st.bad_epochs >= o->patience) {
            *stop = true;
            notice(t, "early stop after epoch %lld: %s did not improve for %lld epochs (best "
                   "%g)", (long long)epoch, o->stop.name, (long long)t->st.bad_epochs,
                   t->st.stop_best);
        }
    }
    if (o->save_every > 0 && epoch % o->save_every == 0) {
        char name[64];
        snprintf(name, sizeof name, "epoch-%04lld.safetensors", (long long)epoch);
        if (save_full(t, name) != TK_OK)
            return TK_ERR_RUNTIME;
        if (t->writer)
            prune_epoch_files(t);
    }
    if (o->save_last && save_full(t, "last.safetensors") != TK_OK)
        return TK_ERR_RUNTIME;
    return TK_OK;
}

/* ---------------------------------------------------------------- resume */

typedef struct {
    char path[4400];
    int64_t step, cursor;
} candidate;

static int newest_first(const void *a, const void *b)
{
    const candidate *x = a, *y = b;
    if (x->step != y->step)
        return x->step < y->step ? 1 : -1;
    return x->cursor < y->cursor ? 1 : x->cursor > y->cursor ? -1 : 0;
}

/* Said before training, not only in note.log: which group took a parameter several groups
 * match, and a named optimizer group that took no tensor (frozen, or matched by an earlier
 * group), which is almost always a mistake in the script. */
static void group_notices(const trainer *t)
{
    for (const char *n = tk_model_notes(t->m); *n;) {
        const char *nl = strchr(n, '\n');
        int len = nl ? (int)(nl - n) : (int)strlen(n);
        notice(t, "%.*s", len, n);
        n += len + (nl ? 1 : 0);
    }
    for (int g = 1; g < tk_model_group_count(t->m); g++) {
        tk_group_info gi = tk_model_group(t->m, g);
        if (gi.tensors == 0)
            notice(t, "warning: optimizer group %d (%s) has no tensors: what it matches is "
                   "frozen or taken by an earlier group, so its settings apply to nothing", g,
                   gi.patterns);
    }
}

/* The state a checkpoint holds is global whatever the rank count (the cursor counts global
 * batches, random draws are keyed by step and global row, metrics are summed over ranks), so
 * another count continues a defined run, equal to the old count's within float rounding;
 * per-rank batch-norm statistics are the exception (tk_dist_resume_check). */
static tk_status resume_ranks(trainer *t, const char *path)
{
    int64_t now = tk_dist_on(t->o->dist) ? t->o->dist->size : 1;
    int64_t was = t->st.ranks > 0 ? t->st.ranks : 1;
    if (tk_dist_on(t->o->dist) && t->o->dist->rank != 0)
        tk_metrics_reset(t->metrics[TRAIN]); /* the saved sums are all ranks': rank 0's now */
    if (tk_dist_resume_check(t->m, t->o, was, t->st.stat_ranks, path, t->ctx) != TK_OK)
        return TK_ERR_INPUT;
    if (was == now)
        return TK_OK;
    notice(t, "notice: the checkpoint was written by %lld rank%s, this run has %lld: the "
           "result equals the %lld-rank run's within float rounding, not bit for bit",
           (long long)was, was > 1 ? "s" : "", (long long)now, (long long)was);
    return TK_OK;
}

/* A file, or the newest checkpoint of RUN_DIR/checkpoints that verifies. */
static tk_status resume(trainer *t)
{
    const char *from = t->o->resume;
    candidate c[1100];
    int n = 0;
    DIR *d = opendir(t->ckpt_dir);
    if (d && strcmp(from, t->o->run_dir) == 0) {
        for (struct dirent *e; (e = readdir(d)) != NULL && n < 1100;) {
            size_t len = strlen(e->d_name);
            if (len > 12 && strcmp(e->d_name + len - 12, ".safetensors") == 0 &&
                strcmp(e->d_name, "best.safetensors") != 0 &&
                strcmp(e->d_name, "final.safetensors") != 0)
                snprintf(c[n++].path, sizeof c[0].path, "%s/%s", t->ckpt_dir, e->d_name);
        }
    } else if (strcmp(from, t->o->run_dir) != 0) {
        snprintf(c[n++].path, sizeof c[0].path, "%s", from);
    }
    if (d)
        closedir(d);
    if (n == 0)
        return tk_fail(t->ctx, TK_ERR_INPUT, "%s: no checkpoint to resume from", from);
    /* Order by the step each file says it holds; unreadable ones sort last and fail below. */
    for (int i = 0; i < n; i++) {
        tk_st_file *f = NULL;
        c[i].step = c[i].cursor = -1;
        if (tk_st_load(c[i].path, &f, NULL) == TK_OK) {
            const char *s = tk_st_meta(f, "step"), *cur = tk_st_meta(f, "cursor");
            c[i].step = s ? strtoll(s, NULL, 10) : -1;
            c[i].cursor = cur ? strtoll(cur, NULL, 10) : -1;
            tk_st_free(f);
        }
    }
    qsort(c, (size_t)n, sizeof *c, newest_first);
    for (int i = 0; i < n; i++) {
        if (tk_ckpt_load(t->m, c[i].path, &t->st, t->ctx) == TK_OK) {
            if (t->st.n_metrics)
                tk_metrics_set_state(t->metrics[TRAIN], t->st.metrics);
            if (t->st.n_sched)
                tk_sched_set_state(t->sched, t->st.sched);
            notice(t, "resumed from %s: epoch %lld%s, step %lld", c[i].path,
                   (long long)t->st.epoch + (t->st.cursor ? 1 : 0),
                   t->st.cursor ? " (mid-epoch)" : " done", (long long)t->st.step);
            return resume_ranks(t, c[i].path);
        }
        if (n == 1)
            return TK_ERR_INPUT;
        notice(t, "skipped %s", tk_errmsg(t->ctx));
    }
    return tk_fail(t->ctx, TK_ERR_INPUT, "%s: none of its %d checkpoints verifies (see above)",
                   from, n);
}

/* ---------------------------------------------------------------- the run */

static void remove_stale_temps(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        if (strstr(e->d_name, ".safetensors.tmp.")) {
            char path[4400];
            snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
            unlink(path);
        }
    }
    closedir(d);
}

static tk_status setup(trainer *t)
{
    const tk_train_opts *o = t->o;
    tk_model *m = t->m;
    int n_groups = tk_model_group_count(m);
    const tk_dataset *ds = tk_view_dataset(o->train);
    for (int k = TRAIN; k <= TEST; k++)
        if (k != TEST || o->test)
            t->metrics[k] = tk_metrics_for(m, ds);
    t->lrs = tk_calloc((size_t)n_groups, sizeof(double));
    t->base_lrs = tk_calloc((size_t)n_groups, sizeof(double));
    if (!t->metrics[TRAIN] || !t->metrics[VALID] || (o->test && !t->metrics[TEST]) || !t->lrs ||
        !t->base_lrs)
        return tk_fail(t->ctx, TK_ERR_RUNTIME, "out of memory");
    for (int k = 0; k < n_groups; k++)
        t->lrs[k] = t->base_lrs[k] = tk_model_group(m, k).h.lr;
    if (tk_sched_new(o->sched, n_groups, t->base_lrs, &t->sched, t->ctx) != TK_OK)
        return TK_ERR_INPUT;
    t->st.best = t->st.stop_best = NAN;
    t->st.n_sched = tk_sched_state_size(t->sched);
    t->st.n_metrics = tk_metrics_state_size(t->metrics[TRAIN]);
    t->st.sched = tk_calloc((size_t)(t->st.n_sched + 1), sizeof(double));
    t->st.metrics = tk_calloc((size_t)(t->st.n_metrics + 1), sizeof(double));
    if (!t->st.sched || !t->st.metrics)
        return tk_fail(t->ctx, TK_ERR_RUNTIME, "out of memory");
    for (int s = TRAIN; s <= TEST; s++) {
        tk_view *v = s == TRAIN ? o->train : s == VALID ? o->valid : o->test;
        if (!v)
            continue;
        tk_loader_opts lo = {.batch_size = o->batch_size, .shuffle = s == TRAIN && o->shuffle,
                             .drop_last = s == TRAIN && o->drop_last, .seed = o->seed,
                             .prefetch = true};
        if (tk_loader_new(v, &lo, &t->loaders[s], t->ctx) != TK_OK)
            return TK_ERR_RUNTIME;
    }
    if (o->run_dir)
        snprintf(t->ckpt_dir, sizeof t->ckpt_dir, "%s/checkpoints", o->run_dir);
    /* Everything read verifies before the first write. */
    if (o->resume && resume(t) != TK_OK)
        return TK_ERR_INPUT;
    tk_status ready = t->writer && o->ready ? o->ready(o->ready_ud, t->ctx) : TK_OK;
    if (ready != TK_OK)
        return ready;
    if (o->run_dir && t->writer) {
        if (tk_mkdirs(t->ckpt_dir, t->ctx) != TK_OK)
            return TK_ERR_RUNTIME;
        remove_stale_temps(t->ckpt_dir);
    }
    tk_sched_lrs(t->sched, t->st.step, t->lrs);
    return tk_runlog_open(&t->log, t->writer ? o : &t->silent, n_groups,
                          o->resume ? t->st.epoch : -1, t->ctx);
}

/* Restore the best weights (if asked), keep the final ones, run the test split. */
static tk_status finish(trainer *t)
{
    const tk_train_opts *o = t->o;
    char path[4400];
    tk_status barrier = TK_OK;
    if (o->restore_best && o->run_dir && tk_dist_on(o->dist))
        tk_dist_any(o->dist, false, t->ctx, &barrier); /* rank 0 has written best */
    if (barrier != TK_OK)
        return TK_ERR_RUNTIME;
    if (o->restore_best && o->run_dir) {
        snprintf(path, sizeof path, "%s/best.safetensors", t->ckpt_dir);
        if (access(path, R_OK) == 0) {
            if (tk_model_load_weights(t->m, path, NULL, 0, true, NULL, t->ctx) != TK_OK)
                return TK_ERR_RUNTIME;
            notice(t, "restored the best weights: epoch %lld, %s %g",
                   (long long)t->st.best_epoch, o->best.name, t->st.best);
        }
    }
    if (o->run_dir && t->writer) {
        snprintf(path, sizeof path, "%s/final.safetensors", t->ckpt_dir);
        if (tk_model_save_weights(t->m, path, t->ctx) != TK_OK)
            return TK_ERR_RUNTIME;
    }
    if (!t->loaders[TEST])
        return TK_OK;
    if (eval_pass(t, TEST, t->st.epoch) != TK_OK)
        return TK_ERR_RUNTIME;
    if (o->report)
        tk_metrics_write_report(t->metrics[TEST], tk_view_dataset(o->test), o->report);
    return TK_OK;
}

tk_status tk_train(tk_model *m, const tk_train_opts *o, tk_ctx *ctx)
{
    if (tk_check_data(m, o, ctx) != TK_OK)
        return TK_ERR_INPUT;
    if (tk_dist_check(m, o, ctx) != TK_OK)
        return TK_ERR_INPUT;
    tk_dist_attach(m, o, true);
    trainer t = {.m = m, .o = o, .ctx = ctx, .silent = *o};
    t.writer = !tk_dist_on(o->dist) || o->dist->rank == 0;
    t.silent.run_dir = NULL;
    if (tk_dist_on(o->dist)) {
        int size = o->dist->size, b = o->batch_size;
        if (b % size)
            notice(&t, "data-parallel: %d ranks x %d-%d samples (global batch %d)", size,
                   b / size, b / size + 1, b);
        else
            notice(&t, "data-parallel: %d ranks x %d samples (global batch %d)", size,
                   b / size, b);
    }
    tk_status st = setup(&t);
    if (st == TK_OK)
        group_notices(&t);
    tk_model_fuse_update(m, tk_train_fuses(o), false);
    bool stop = o->patience > 0 && t.st.bad_epochs >= o->patience;
    for (int64_t epoch = t.st.epoch + 1; st == TK_OK && !stop && epoch <= o->epochs; epoch++) {
        st = train_epoch(&t, epoch);
        if (st == TK_OK && t.loaders[VALID])
            st = eval_pass(&t, VALID, epoch);
        if (st == TK_OK)
            st = end_epoch(&t, epoch, &stop);
        /* A signal during the epoch's last step or its valid pass stops at the boundary. */
        tk_status ist = TK_OK;
        if (st == TK_OK && epoch < o->epochs && !stop && interrupted(&t, true, &ist)) {
            st = o->save_last ? TK_OK : save_full(&t, "last.safetensors");
            if (st == TK_OK)
                st = tk_fail(ctx, TK_ERR_INTERRUPTED, "interrupted after epoch %lld (step %lld): "
                             "state saved to %s/last.safetensors", (long long)epoch,
                             (long long)t.st.step, t.ckpt_dir);
        }
        if (st == TK_OK)
            st = ist;
    }
    /* Skipping is for the odd bad batch: a run that never applied an update trained nothing,
     * and its final weights must not look like a result. */
    if (st == TK_OK && o->skip_nonfinite && t.st.skips > 0 && t.st.step == 0)
        st = tk_fail(ctx, TK_ERR_RUNTIME, "every update of %lld epochs was skipped (%lld "
                     "non-finite losses or gradients): nothing was trained",
                     (long long)t.st.epoch, (long long)t.st.skips);
    if (st == TK_OK)
        st = finish(&t);
    tk_runlog_close(&t.log);
    tk_model_fuse_update(m, false, false);
    tk_dist_attach(m, o, false);
    for (int s = TRAIN; s <= TEST; s++)
        tk_loader_free(t.loaders[s]);
    for (int k = TRAIN; k <= TEST; k++)
        tk_metrics_free(t.metrics[k]);
    tk_sched_free(t.sched);
    tk_free(t.lrs);
    tk_free(t.base_lrs);
    tk_free(t.st.sched);
    tk_free(t.st.metrics);
    return st;
}
