/* runlog.c - what a run writes about itself: train.log and valid.log (one line per pass),
 * metrics.csv (the same numbers, machine-readable), and TensorBoard scalars. On resume the
 * logs are cut back to the checkpoint's epoch, so work that is redone is not logged twice.
 * Not here: note.log (the CLI writes it) and checkpoints (ckpt.c). */
#include "tk_int.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* Columns after loss: accuracy always (empty for regression), then the other scalar
 * metrics in the script's order. */
static bool extra_metric(const char *name)
{
    return strcmp(name, "accuracy") != 0 && strcmp(name, "confusion") != 0;
}

static void header(const tk_runlog *l, char *buf, size_t cap)
{
    size_t used = (size_t)snprintf(buf, cap, "epoch,step,split,loss,accuracy");
    for (int i = 0; i < l->o->n_metrics && used < cap; i++)
        if (extra_metric(l->o->metrics[i]))
            used += (size_t)snprintf(buf + used, cap - used, ",%s", l->o->metrics[i]);
    for (int g = 0; g < l->n_groups && used < cap; g++)
        used += (size_t)(g ? snprintf(buf + used, cap - used, ",lr_%d", g)
                           : snprintf(buf + used, cap - used, ",lr"));
    if (used < cap)
        snprintf(buf + used, cap - used, ",seconds\n");
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = n >= 0 ? tk_malloc((size_t)n + 1) : NULL;
    if (s && fread(s, 1, (size_t)n, f) != (size_t)n) {
        tk_free(s);
        s = NULL;
    }
    fclose(f);
    if (s) {
        s[n] = 0;
        *len = (size_t)n;
    }
    return s;
}

/* The epoch a log line belongs to, or -1 for lines that a resume always drops (test). */
static int64_t line_epoch(const char *line, bool csv)
{
    if (csv) {
        const char *split = strchr(line, ',');
        split = split ? strchr(split + 1, ',') : NULL;
        if (split && strncmp(split + 1, "test,", 5) == 0)
            return -1;
        return strtoll(line, NULL, 10);
    }
    if (strncmp(line, "epoch ", 6) == 0)
        return strtoll(line + 6, NULL, 10);
    return -1;
}

/* Keep the header (csv) and the lines of epochs <= keep_epoch. */
static tk_status cut_back(const char *path, bool csv, int64_t keep_epoch, tk_ctx *ctx)
{
    size_t len = 0;
    char *s = slurp(path, &len);
    if (!s)
        return TK_OK;
    char *out = tk_malloc(len + 1);
    if (!out) {
        tk_free(s);
        return tk_fail(ctx, TK_ERR_RUNTIME, "out of memory");
    }
    size_t used = 0;
    bool first = true;
    for (char *line = s; *line;) {
        char *nl = strchr(line, '\n');
        size_t n = nl ? (size_t)(nl - line + 1) : strlen(line);
        int64_t e = line_epoch(line, csv);
        if ((csv && first) || (e >= 1 && e <= keep_epoch)) {
            memcpy(out + used, line, n);
            used += n;
        }
        first = false;
        line += n;
    }
    tk_status st = tk_write_atomic(path, out, used, ctx);
    tk_free(out);
    tk_free(s);
    return st;
}

static FILE *open_append(const char *dir, const char *name, tk_ctx *ctx)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "a");
    if (!f)
        tk_fail(ctx, TK_ERR_RUNTIME, "cannot open %s for writing", path);
    return f;
}

tk_status tk_runlog_open(tk_runlog *l, const tk_train_opts *o, int n_groups, int64_t resume_epoch,
                         tk_ctx *ctx)
{
    memset(l, 0, sizeof *l);
    l->o = o;
    l->n_groups = n_groups;
    if (!o->run_dir)
        return TK_OK;
    const char *names[3] = {"train.log", "valid.log", "metrics.csv"};
    char path[4200];
    for (int i = 0; resume_epoch >= 0 && i < 3; i++) {
        snprintf(path, sizeof path, "%s/%s", o->run_dir, names[i]);
        if (cut_back(path, i == 2, resume_epoch, ctx) != TK_OK)
            return TK_ERR_RUNTIME;
    }
    snprintf(path, sizeof path, "%s/metrics.csv", o->run_dir);
    struct stat st;
    bool fresh = stat(path, &st) != 0 || st.st_size == 0;
    l->train = open_append(o->run_dir, "train.log", ctx);
    l->valid = l->train ? open_append(o->run_dir, "valid.log", ctx) : NULL;
    l->csv = l->valid ? open_append(o->run_dir, "metrics.csv", ctx) : NULL;
    if (!l->csv) {
        tk_runlog_close(l);
        return TK_ERR_RUNTIME;
    }
    if (fresh) {
        char h[2048];
        header(l, h, sizeof h);
        fputs(h, l->csv);
    }
    if (o->tensorboard && tk_events_open(o->run_dir, &l->events, ctx) != TK_OK) {
        tk_runlog_close(l);
        return TK_ERR_RUNTIME;
    }
    return TK_OK;
}

void tk_runlog_close(tk_runlog *l)
{
    FILE *files[] = {l->train, l->valid, l->csv};
    for (int i = 0; i < 3; i++)
        if (files[i])
            fclose(files[i]);
    tk_events_close(l->events);
    memset(l, 0, sizeof *l);
}

static void csv_number(FILE *f, double v)
{
    if (isnan(v))
        fputs(",", f);
    else
        fprintf(f, ",%.6f", v);
}

static void tb_scalar(tk_runlog *l, const char *split, const char *name, int64_t step, double v,
                      double wall)
{
    if (!l->events || isnan(v))
        return;
    char tag[128];
    snprintf(tag, sizeof tag, "%s/%s", split, name);
    /* A failed TensorBoard write must not end a training run: the logs stay the record. */
    tk_events_scalar(l->events, tag, step, v, wall, NULL);
}

/* fflush reports what buffered writes met (ENOSPC, EIO); ferror what earlier ones did. */
static tk_status flushed(FILE *f, const tk_runlog *l, const char *name, tk_ctx *ctx)
{
    if (fflush(f) == 0 && !ferror(f))
        return TK_OK;
    return tk_fail(ctx, TK_ERR_RUNTIME, "cannot write %s/%s: %s", l->o->run_dir, name,
                   strerror(errno ? errno : EIO));
}

tk_status tk_runlog_pass(tk_runlog *l, const tk_pass_log *p, tk_ctx *ctx)
{
    if (!l->csv)
        return TK_OK;
    bool train = strcmp(p->split, "train") == 0, test = strcmp(p->split, "test") == 0;
    FILE *human = train ? l->train : l->valid;
    if (test)
        fprintf(human, "test step %lld loss %.6f", (long long)p->step, p->loss);
    else
        fprintf(human, "epoch %lld/%lld step %lld loss %.6f", (long long)p->epoch,
                (long long)l->o->epochs, (long long)p->step, p->loss);
    fprintf(l->csv, "%lld,%lld,%s,%.6f", (long long)p->epoch, (long long)p->step, p->split,
            p->loss);
    double acc = tk_metrics_accuracy(p->metrics);
    if (!isnan(acc))
        fprintf(human, " accuracy %.6f", acc);
    csv_number(l->csv, acc);
    tb_scalar(l, p->split, "loss", p->step, p->loss, p->wall);
    tb_scalar(l, p->split, "accuracy", p->step, acc, p->wall);
    for (int i = 0; i < l->o->n_metrics; i++) {
        const char *name = l->o->metrics[i];
        if (!extra_metric(name))
            continue;
        double v = tk_metrics_value(p->metrics, name);
        if (!isnan(v))
            fprintf(human, " %s %.6f", name, v);
        csv_number(l->csv, v);
        tb_scalar(l, p->split, name, p->step, v, p->wall);
    }
    for (int g = 0; g < l->n_groups; g++) {
        if (train && g)
            fprintf(human, " lr_%d %.6g", g, p->lrs[g]);
        else if (train)
            fprintf(human, " lr %.6g", p->lrs[g]);
        fprintf(l->csv, ",%.6g", p->lrs[g]);
        if (train) {
            char name[32];
            snprintf(name, sizeof name, "group%d", g);
            tb_scalar(l, "lr", name, p->step, p->lrs[g], p->wall);
        }
    }
    if (train)
        fprintf(human, " samples/s %.0f data-wait %.1f%%", p->samples_per_sec,
                100.0 * p->wait_fraction);
    fprintf(human, " seconds %.3f\n", p->seconds);
    fprintf(l->csv, ",%.3f\n", p->seconds);
    errno = 0;
    tk_status st = flushed(human, l, train ? "train.log" : "valid.log", ctx);
    return st == TK_OK ? flushed(l->csv, l, "metrics.csv", ctx) : st;
}

void tk_runlog_step(tk_runlog *l, int64_t step, double loss, double wall)
{
    tb_scalar(l, "train", "loss_step", step, loss, wall);
}
