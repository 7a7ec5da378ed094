/* train_check.c - what tk_train's options and data are checked for before the first batch
 * (tk_check_data, and tk_check_schedule for `tkrun check`): sample shapes against the model,
 * labels against the loss's task and class count, metrics and monitors against the task and
 * splits; and the epoch's batch and step counts they share with the loop. Not here: the loop
 * (train.c), the data readers' own checks (data/). The library prints nothing. */
#include "tk_int.h"

#include <stdio.h>
#include <string.h>

static const tk_node *loss_node(const tk_model *m)
{
    return &m->g->nodes[m->g->loss];
}

int64_t tk_train_batches_per_epoch(const tk_train_opts *o)
{
    int64_t n = o->train ? tk_view_len(o->train) : 0, b = o->batch_size > 0 ? o->batch_size : 1;
    return o->drop_last ? n / b : (n + b - 1) / b;
}

int64_t tk_train_steps_per_epoch(const tk_train_opts *o)
{
    int64_t k = tk_accumulation(o);
    return (tk_train_batches_per_epoch(o) + k - 1) / k;
}

/* A class label outside [0, range[0]) that is not the ignore_index range[1]. */
static bool outside(float y, void *ud)
{
    const int64_t *range = ud;
    return (int64_t)y != range[1] && (y < 0 || y >= (float)range[0]);
}

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
    bool class_ids = tk_model_task(m) == TK_TASK_CLASSIFICATION;
    if (tk_dataset_label_width(ds) == 0)
        return tk_fail(ctx, TK_ERR_INPUT, "%s: %s has no labels to train on", split,
                       tk_dataset_source(ds));
    if (class_ids != (tk_dataset_label_kind(ds) == TK_LABEL_CLASS))
        return tk_fail(ctx, TK_ERR_INPUT, "%s: %s needs %s, but the labels of %s are %s",
                       loss->where, loss->op->name, class_ids ? "class ids" : "float targets",
                       tk_dataset_source(ds), class_ids ? "float targets" : "class ids");
    if (!class_ids) {
        int width = tk_dataset_label_width(ds);
        if (width != tk_model_output_width(m))
            return tk_fail(ctx, TK_ERR_INPUT, "%s: %s: the model predicts %d values per sample "
                           "but %s has %d target columns", loss->where, loss->op->name,
                           tk_model_output_width(m), tk_dataset_source(ds), width);
        return TK_OK;
    }
    int classes = tk_model_output_width(m);
    int64_t range[2] = {classes, tk_attr_int(loss, "ignore_index", -100)};
    char where[512];
    float y;
    if (tk_view_find_label(v, outside, range, &y, where, sizeof where)) {
        const char *name = tk_dataset_class_name(ds, (int)y);
        return tk_fail(ctx, TK_ERR_INPUT, "%s: %s: label %lld%s%s%s out of range for %d "
                       "classes (%s); the last layer has %d outputs", loss->where,
                       loss->op->name, (long long)y, name ? " ('" : "", name ? name : "",
                       name ? "')" : "", classes, where, classes);
    }
    return TK_OK;
}

static tk_status check_monitor(const tk_monitor *mon, const char *what, const tk_train_opts *o,
                               bool accuracy, tk_ctx *ctx)
{
    if (!mon->name)
        return TK_OK;
    const char *dot = strchr(mon->name, '.');
    bool split_ok = dot && ((dot - mon->name == 5 && strncmp(mon->name, "valid", 5) == 0 &&
                             o->valid) ||
                            (dot - mon->name == 5 && strncmp(mon->name, "train", 5) == 0));
    if (!split_ok)
        return tk_fail(ctx, TK_ERR_INPUT, "%s: monitor '%s' must be train.<metric> or "
                       "valid.<metric>%s", what, mon->name, o->valid ? "" : " (and there is no "
                       "valid split)");
    const char *metric = dot + 1;
    if (strcmp(metric, "loss") == 0 || (strcmp(metric, "accuracy") == 0 && accuracy))
        return TK_OK;
    for (int i = 0; i < o->n_metrics; i++)
        if (strcmp(o->metrics[i], metric) == 0 && strcmp(metric, "confusion") != 0)
            return TK_OK;
    return tk_fail(ctx, TK_ERR_INPUT, "%s: monitor '%s' names no metric this run produces "
                   "(loss%s and the metrics list)", what, mon->name,
                   accuracy ? ", accuracy" : "");
}

tk_status tk_check_schedule(const tk_model *m, const tk_train_opts *o, tk_ctx *ctx)
{
    int n = tk_model_group_count(m);
    double *lrs = tk_calloc((size_t)n, sizeof(double));
    if (!lrs)
        return tk_fail(ctx, TK_ERR_RUNTIME, "out of memory");
    for (int g = 0; g < n; g++)
        lrs[g] = tk_model_group(m, g).h.lr;
    tk_sched *s;
    tk_status st = tk_sched_new(o->sched, n, lrs, &s, ctx);
    tk_sched_free(s);
    tk_free(lrs);
    return st;
}

tk_status tk_check_data(const tk_model *m, const tk_train_opts *o, tk_ctx *ctx)
{
    if (!o->train || tk_view_len(o->train) == 0)
        return tk_fail(ctx, TK_ERR_INPUT, "the train split is empty");
    if (o->batch_size <= 0 || o->batch_size > tk_model_batch(m))
        return tk_fail(ctx, TK_ERR_INPUT, "batch_size %d does not fit the compiled model (%d)",
                       o->batch_size, tk_model_batch(m));
    if (tk_train_batches_per_epoch(o) == 0)
        return tk_fail(ctx, TK_ERR_INPUT, "drop_last with batch_size %d leaves no batch of the "
                       "%lld train samples", o->batch_size, (long long)tk_view_len(o->train));
    const struct {
        tk_view *v;
        const char *name;
    } splits[] = {{o->train, "train"}, {o->valid, "valid"}, {o->test, "test"}};
    for (int i = 0; i < 3; i++)
        if (splits[i].v && check_view(m, splits[i].v, splits[i].name, ctx) != TK_OK)
            return TK_ERR_INPUT;
    const tk_task task = tk_model_task(m);
    const bool classification = task == TK_TASK_CLASSIFICATION;
    /* metrics.csv always has an accuracy column: empty for a regression. */
    const bool accuracy = task != TK_TASK_REGRESSION;
    for (int i = 0; i < o->n_metrics; i++)
        if (strcmp(o->metrics[i], "accuracy") != 0 &&
            tk_metric_check(o->metrics[i], task, ctx) != TK_OK)
            return TK_ERR_INPUT;
    /* top-K over fewer than K classes is a mistake, not a metric (torchmetrics refuses it). */
    for (int i = 0, k; classification && i < o->n_metrics; i++)
        if (sscanf(o->metrics[i], "top%d", &k) == 1 && k > tk_model_output_width(m))
            return tk_fail(ctx, TK_ERR_INPUT, "metrics: '%s' needs at least %d classes, and "
                           "there are %d (the last layer's outputs)", o->metrics[i], k,
                           tk_model_output_width(m));
    tk_monitor watched = {NULL, false};
    watched.name = tk_sched_monitor(o->sched, &watched.maximize);
    if (check_monitor(&o->best, "save.best", o, accuracy, ctx) != TK_OK ||
        check_monitor(&o->stop, "early_stop", o, accuracy, ctx) != TK_OK ||
        check_monitor(&watched, watched.name ? o->sched->name : "schedule", o, accuracy,
                      ctx) != TK_OK)
        return TK_ERR_INPUT;
    if (o->restore_best && (!o->best.name || !o->stop.name ||
                            strcmp(o->best.name, o->stop.name) != 0 ||
                            o->best.maximize != o->stop.maximize))
        return tk_fail(ctx, TK_ERR_INPUT, "early_stop.restore_best restores best.safetensors, "
                       "so save.best must monitor the same value as early_stop ('%s')",
                       o->stop.name ? o->stop.name : "?");
    return TK_OK;
}

