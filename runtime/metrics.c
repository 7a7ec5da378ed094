/* metrics.c - evaluation metrics accumulated over a pass (tk.h, "metrics").
 *
 * Classification keeps a confusion matrix [true][predicted] and a histogram of the rank of
 * the true class among the logits; accuracy, top-K for any K and the per-class and macro
 * precision/recall/f1 (sklearn's definitions, zero_division=0) all derive from those two.
 * Regression keeps, per output, the error sums and a Welford mean/M2 of the targets (r2).
 * Multi-label counts the labels and the samples it got right (a logit > 0 says yes, a
 * target > 0.5 is yes). Everything is allocated by tk_metrics_new: tk_metrics_add runs on
 * every training batch and allocates nothing. The metrics are one name-keyed table
 * (`registry`): a metric is its value function and one line there.
 *
 * Not here: the loss (ops/), logging of the values (train.c), printing to the terminal
 * (the report writes only to the FILE * it is given).
 */
#include "tk_int.h"

#include <limits.h>
#include <math.h>
#include <string.h>

struct tk_metrics {
    tk_task task;
    int n_classes, label_width;
    int64_t count;             /* samples counted (ignored class rows excluded) */
    int64_t correct;           /* classification: samples; multi-label: labels */
    int64_t exact;             /* multi-label: samples with every label right */
    /* classification */
    int64_t *confusion;        /* n_classes x n_classes, [true][predicted] */
    int64_t *rank;             /* rank[r]: samples whose true class ranked r (0 = top) */
    /* regression, label_width each (one allocation, `abs_err` owns it) */
    double *abs_err, *sq_err;  /* sums of |p - y| and (p - y)^2 */
    double *mean, *m2;         /* Welford: running mean of y and sum of squared deviations */
};

tk_metrics *tk_metrics_new(tk_task task, int n_classes, int label_width)
{
    if (n_classes < 0 || label_width < 0 || (task == TK_TASK_CLASSIFICATION) != (n_classes > 0))
        return NULL;
    tk_metrics *mt = tk_calloc(1, sizeof *mt);
    if (!mt)
        return NULL;
    mt->task = task;
    mt->n_classes = n_classes;
    mt->label_width = label_width;
    bool ok = true;
    if (task == TK_TASK_CLASSIFICATION) {
        size_t c = (size_t)n_classes;
        mt->confusion = tk_calloc(c * c, sizeof(int64_t));
        mt->rank = tk_calloc(c, sizeof(int64_t));
        ok = mt->confusion && mt->rank;
    } else if (task == TK_TASK_REGRESSION && label_width > 0) {
        size_t w = (size_t)label_width;
        mt->abs_err = tk_calloc(4 * w, sizeof(double));
        ok = mt->abs_err != NULL;
        if (ok) {
            mt->sq_err = mt->abs_err + w;
            mt->mean = mt->abs_err + 2 * w;
            mt->m2 = mt->abs_err + 3 * w;
        }
    }
    if (!ok) {
        tk_metrics_free(mt);
        return NULL;
    }
    return mt;
}

tk_metrics *tk_metrics_for(const tk_model *m, const tk_dataset *ds)
{
    const tk_task task = tk_model_task(m);
    return tk_metrics_new(task, task == TK_TASK_CLASSIFICATION ? tk_model_output_width(m) : 0,
                          tk_dataset_label_width(ds));
}

void tk_metrics_reset(tk_metrics *mt)
{
    mt->count = mt->correct = mt->exact = 0;
    if (mt->n_classes > 0) {
        size_t c = (size_t)mt->n_classes;
        memset(mt->confusion, 0, c * c * sizeof(int64_t));
        memset(mt->rank, 0, c * sizeof(int64_t));
    } else if (mt->abs_err) {
        memset(mt->abs_err, 0, 4 * (size_t)mt->label_width * sizeof(double));
    }
}

/* One pass over each row finds both the argmax (first maximum, like torch.argmax) and the
 * true class's rank. Ties count against the true class only when an earlier column holds the
 * same logit, so rank 0 means exactly "argmax == true class" and top1 == accuracy. */
static void add_classes(tk_metrics *mt, const float *pred, int out_width, const float *target,
                        int n)
{
    const int nc = mt->n_classes;
    /* Columns past n_classes have no row in the matrix; a narrower output can never predict
     * the missing classes (and a true class without a logit ranks after all of them). */
    const int w = out_width < nc ? out_width : nc;
    if (w <= 0)
        return;
    for (int i = 0; i < n; i++) {
        const float t = target[i];
        if (!(t >= 0 && t < (float)nc)) /* ignore_index rows, NaN included */
            continue;
        const int y = (int)t;
        const float *z = pred + (size_t)i * (size_t)out_width;
        const float zy = y < w ? z[y] : -INFINITY;
        int best = 0, rank = 0;
        for (int c = 0; c < w; c++) {
            const float v = z[c];
            if (v > z[best])
                best = c;
            rank += v > zy || (v == zy && c < y);
        }
        mt->count++;
        mt->correct += best == y;
        mt->confusion[(size_t)y * (size_t)nc + (size_t)best]++;
        mt->rank[rank]++;
    }
}

static void add_regression(tk_metrics *mt, const float *pred, int out_width,
                           const float *target, int n)
{
    const int lw = mt->label_width;
    /* Guards a narrower prediction; the model's check makes the widths equal. */
    const int w = out_width < lw ? out_width : lw;
    for (int i = 0; i < n; i++) {
        const float *p = pred + (size_t)i * (size_t)out_width;
        const float *y = target + (size_t)i * (size_t)lw;
        mt->count++;
        const double inv = 1.0 / (double)mt->count;
        for (int k = 0; k < w; k++) {
            const double yk = y[k], d = (double)p[k] - yk;
            mt->abs_err[k] += fabs(d);
            mt->sq_err[k] += d * d;
            /* Welford: sum y^2 - n mean^2 would cancel catastrophically for targets far from
             * zero (prices, years), which is exactly where r2 matters. */
            const double dm = yk - mt->mean[k];
            mt->mean[k] += dm * inv;
            mt->m2[k] += dm * (yk - mt->mean[k]);
        }
    }
}

static void add_labels(tk_metrics *mt, const float *pred, int out_width, const float *target,
                       int n)
{
    const int lw = mt->label_width;
    const int w = out_width < lw ? out_width : lw;
    for (int i = 0; i < n; i++) {
        const float *z = pred + (size_t)i * (size_t)out_width;
        const float *y = target + (size_t)i * (size_t)lw;
        int right = 0;
        for (int k = 0; k < w; k++)
            right += (z[k] > 0) == (y[k] > 0.5f);
        mt->count++;
        mt->correct += right;
        mt->exact += right == lw;
    }
}

void tk_metrics_add(tk_metrics *mt, const float *pred, int out_width, const float *target, int n)
{
    if (n <= 0)
        return;
    if (mt->task == TK_TASK_MULTILABEL)
        add_labels(mt, pred, out_width, target, n);
    else if (mt->n_classes > 0)
        add_classes(mt, pred, out_width, target, n);
    else if (mt->label_width > 0)
        add_regression(mt, pred, out_width, target, n);
}

void tk_metrics_free(tk_metrics *mt)
{
    if (!mt)
        return;
    tk_free(mt->confusion);
    tk_free(mt->rank);
    tk_free(mt->abs_err);
    tk_free(mt);
}

int64_t tk_metrics_count(const tk_metrics *mt)
{
    return mt->count;
}

double tk_metrics_accuracy(const tk_metrics *mt)
{
    if (mt->count == 0 || mt->task == TK_TASK_REGRESSION)
        return NAN;
    if (mt->task == TK_TASK_MULTILABEL)
        return mt->label_width ? (double)mt->correct / ((double)mt->count * mt->label_width) : NAN;
    return (double)mt->correct / (double)mt->count;
}

/* ---------------------------------------------------------------- names */

/* "top<K>": K is decimal digits only, saturating at INT_MAX (any K >= n_classes gives 1).
 * Returns false if `name` is not of that form; *k may then be 0 for "top0". */
static bool parse_topk(const char *name, int *k)
{
    if (strncmp(name, "top", 3) != 0 || name[3] == '\0')
        return false;
    long long v = 0;
    for (const char *s = name + 3; *s; s++) {
        if (*s < '0' || *s > '9')
            return false;
        v = v * 10 + (*s - '0');
        if (v > INT_MAX)
            v = INT_MAX;
    }
    *k = (int)v;
    return true;
}

/* ---------------------------------------------------------------- classification scores */

typedef struct {
    double precision, recall, f1;
    int64_t support, predicted;
    int width;                 /* report: the class's confusion-matrix column */
} class_score;

/* sklearn's precision_recall_fscore_support with zero_division=0: an undefined ratio is 0.
 * f1 = 2tp / (2tp + fp + fn), which equals 2pr / (p + r) whenever that is defined. */
static class_score score_of(const tk_metrics *mt, int c)
{
    const size_t nc = (size_t)mt->n_classes;
    class_score s = {0};
    for (size_t j = 0; j < nc; j++) {
        s.support += mt->confusion[(size_t)c * nc + j];
        s.predicted += mt->confusion[j * nc + (size_t)c];
    }
    const int64_t tp = mt->confusion[(size_t)c * nc + (size_t)c];
    if (s.predicted > 0)
        s.precision = (double)tp / (double)s.predicted;
    if (s.support > 0)
        s.recall = (double)tp / (double)s.support;
    if (s.support + s.predicted > 0)
        s.f1 = 2.0 * (double)tp / (double)(s.support + s.predicted);
    return s;
}

/* sklearn's average='macro' runs over the labels present in y_true or y_pred. */
static bool present(const class_score *s)
{
    return s->support > 0 || s->predicted > 0;
}

typedef enum { SCORE_PRECISION, SCORE_RECALL, SCORE_F1 } score_kind;

static double score_field(const class_score *s, score_kind k)
{
    return k == SCORE_PRECISION ? s->precision : k == SCORE_RECALL ? s->recall : s->f1;
}

static double macro(const tk_metrics *mt, score_kind k)
{
    double sum = 0;
    int n = 0;
    for (int c = 0; c < mt->n_classes; c++) {
        class_score s = score_of(mt, c);
        if (present(&s)) {
            sum += score_field(&s, k);
            n++;
        }
    }
    return n ? sum / n : NAN;
}

static double topk(const tk_metrics *mt, int k)
{
    int64_t hit = 0;
    for (int r = 0; r < k && r < mt->n_classes; r++)
        hit += mt->rank[r];
    return (double)hit / (double)mt->count;
}

/* ---------------------------------------------------------------- regression scores */

static double output_rmse(const tk_metrics *mt, int k)
{
    return sqrt(mt->sq_err[k] / (double)mt->count);
}

/* sklearn's r2_score (force_finite): constant targets give 1 if predicted exactly, else 0;
 * fewer than two samples leave it undefined. */
static double output_r2(const tk_metrics *mt, int k)
{
    if (mt->count < 2)
        return NAN;
    if (mt->m2[k] == 0)
        return mt->sq_err[k] == 0 ? 1.0 : 0.0;
    return 1.0 - mt->sq_err[k] / mt->m2[k];
}

typedef enum { REG_MAE, REG_RMSE, REG_R2 } reg_kind;

static double output_value(const tk_metrics *mt, int k, reg_kind kind)
{
    switch (kind) {
    case REG_MAE:
        return mt->abs_err[k] / (double)mt->count;
    case REG_RMSE:
        return output_rmse(mt, k);
    default:
        return output_r2(mt, k);
    }
}

/* multioutput='uniform_average': the plain mean of the per-output values. */
static double uniform(const tk_metrics *mt, reg_kind kind)
{
    double sum = 0;
    for (int k = 0; k < mt->label_width; k++)
        sum += output_value(mt, k, kind);
    return sum / mt->label_width;
}

/* ---------------------------------------------------------------- the registry */

/* A registry entry's value: `arg` is the line's own (which average) or top<K>'s K. */
static double accuracy_of(const tk_metrics *mt, int arg)
{
    (void)arg;
    return tk_metrics_accuracy(mt);
}

static double macro_of(const tk_metrics *mt, int arg)
{
    return macro(mt, (score_kind)arg);
}

static double uniform_of(const tk_metrics *mt, int arg)
{
    return uniform(mt, (reg_kind)arg);
}

static double exact_match_of(const tk_metrics *mt, int arg)
{
    (void)arg;
    return (double)mt->exact / (double)mt->count;
}

/* One line per metric. `top` takes its K from the name (top1, top5); `always`: every
 * report (eval, the REPL) shows it; `value` NULL: a table rather than a number. */
static const struct {
    const char *name;
    tk_task task;
    bool always;
    double (*value)(const tk_metrics *mt, int arg);
    int arg;
} registry[] = {
    {"accuracy", TK_TASK_CLASSIFICATION, true, accuracy_of, 0},
    {"top", TK_TASK_CLASSIFICATION, false, topk, 0},
    {"precision", TK_TASK_CLASSIFICATION, false, macro_of, SCORE_PRECISION},
    {"recall", TK_TASK_CLASSIFICATION, false, macro_of, SCORE_RECALL},
    {"f1", TK_TASK_CLASSIFICATION, false, macro_of, SCORE_F1},
    {"confusion", TK_TASK_CLASSIFICATION, false, NULL, 0},
    {"mae", TK_TASK_REGRESSION, true, uniform_of, REG_MAE},
    {"rmse", TK_TASK_REGRESSION, true, uniform_of, REG_RMSE},
    {"r2", TK_TASK_REGRESSION, true, uniform_of, REG_R2},
    {"accuracy", TK_TASK_MULTILABEL, true, accuracy_of, 0},
    {"exact_match", TK_TASK_MULTILABEL, false, exact_match_of, 0},
};

#define N_METRICS (int)(sizeof registry / sizeof registry[0])

/* The registry line of `name` for the task (for any task if `any`); top<K> sets *k. */
static int find_metric(const char *name, tk_task task, bool any, int *k)
{
    *k = 0;
    for (int i = 0; i < N_METRICS; i++) {
        if (!any && registry[i].task != task)
            continue;
        if (registry[i].value == topk ? parse_topk(name, k) : strcmp(name, registry[i].name) == 0)
            return i;
    }
    return -1;
}

/* "accuracy, top<K>, precision, ...": the task's metrics. */
static void list_metrics(tk_task task, char *buf, size_t cap)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; i < N_METRICS && used < cap; i++)
        if (registry[i].task == task)
            used += (size_t)snprintf(buf + used, cap - used, "%s%s%s", used ? ", " : "",
                                     registry[i].name, registry[i].value == topk ? "<K>" : "");
}

tk_status tk_metric_check(const char *name, tk_task task, tk_ctx *ctx)
{
    const char *nm = name ? name : "";
    int k;
    if (find_metric(nm, task, false, &k) < 0) {
        int other = find_metric(nm, task, true, &k);
        if (other >= 0)
            return tk_fail(ctx, TK_ERR_INPUT, "metrics: '%s' needs a %s loss", nm,
                           tk_task_name(registry[other].task));
        char valid[256];
        list_metrics(task, valid, sizeof valid);
        return tk_fail(ctx, TK_ERR_INPUT, "metrics: unknown metric '%s' (valid for %s: %s)",
                       nm, tk_task_name(task), valid);
    }
    if (parse_topk(nm, &k) && k < 1)
        return tk_fail(ctx, TK_ERR_INPUT, "metrics: '%s': K must be at least 1 (e.g. top5)",
                       nm);
    return TK_OK;
}

const char *tk_metric_always(tk_task task, int i)
{
    for (int r = 0; r < N_METRICS; r++)
        if (registry[r].task == task && registry[r].always && i-- == 0)
            return registry[r].name;
    return NULL;
}

double tk_metrics_value(const tk_metrics *mt, const char *name)
{
    int k;
    int i = name && mt->count > 0 ? find_metric(name, mt->task, false, &k) : -1;
    if (i < 0 || !registry[i].value || (registry[i].value == topk && k < 1))
        return NAN;
    if (mt->task == TK_TASK_REGRESSION && mt->label_width == 0)
        return NAN;
    return registry[i].value(mt, registry[i].value == topk ? k : registry[i].arg);
}

void tk_metrics_class(const tk_metrics *mt, int c, double *precision, double *recall,
                      double *f1, int64_t *support)
{
    class_score s = {0};
    if (c >= 0 && c < mt->n_classes)
        s = score_of(mt, c);
    if (precision)
        *precision = s.precision;
    if (recall)
        *recall = s.recall;
    if (f1)
        *f1 = s.f1;
    if (support)
        *support = s.support;
}

int64_t tk_metrics_confusion(const tk_metrics *mt, int true_class, int predicted)
{
    const int nc = mt->n_classes;
    if (true_class < 0 || true_class >= nc || predicted < 0 || predicted >= nc)
        return 0;
    return mt->confusion[(size_t)true_class * (size_t)nc + (size_t)predicted];
}

/* ---------------------------------------------------------------- report */

/* The dataset's name for class c, or its id. */
static const char *class_label(const tk_dataset *ds, int c, char *buf, size_t cap)
{
    const char *name = ds ? tk_dataset_class_name(ds, c) : NULL;
    if (name)
        return name;
    snprintf(buf, cap, "%d", c);
    return buf;
}

static int digits(int64_t v)
{
    int d = 1;
    while (v >= 10) {
        v /= 10;
        d++;
    }
    return d;
}

static int max_int(int a, int b)
{
    return a > b ? a : b;
}

static void write_score_row(FILE *f, int name_w, const char *name, double p, double r,
                            double f1, int sup_w, int64_t support)
{
    fprintf(f, "%*s %10.4f %10.4f %10.4f %*lld\n", name_w, name, p, r, f1, sup_w,
            (long long)support);
}

/* Like sklearn's classification_report: one row per class present in targets or
 * predictions (the classes the macro average runs over), then accuracy, macro and
 * support-weighted averages. */
static void write_class_table(const tk_metrics *mt, const class_score *sc, int name_w,
                              const tk_dataset *ds, FILE *f)
{
    char buf[16];
    name_w = max_int(name_w, (int)strlen("weighted avg"));
    const int sup_w = max_int(10, digits(mt->count));
    fprintf(f, "%*s %10s %10s %10s %*s\n\n", name_w, "", "precision", "recall", "f1", sup_w,
            "support");
    double wsum[3] = {0};
    for (int c = 0; c < mt->n_classes; c++) {
        if (!present(&sc[c]))
            continue;
        write_score_row(f, name_w, class_label(ds, c, buf, sizeof buf), sc[c].precision,
                        sc[c].recall, sc[c].f1, sup_w, sc[c].support);
        for (int k = 0; k < 3; k++)
            wsum[k] += score_field(&sc[c], (score_kind)k) * (double)sc[c].support;
    }
    const double n = (double)mt->count;
    fprintf(f, "\n%*s %10s %10s %10.4f %*lld\n", name_w, "accuracy", "", "",
            tk_metrics_accuracy(mt), sup_w, (long long)mt->count);
    write_score_row(f, name_w, "macro avg", macro(mt, SCORE_PRECISION),
                    macro(mt, SCORE_RECALL), macro(mt, SCORE_F1), sup_w, mt->count);
    write_score_row(f, name_w, "weighted avg", wsum[0] / n, wsum[1] / n, wsum[2] / n, sup_w,
                    mt->count);
}

/* Rows: true class, columns: predicted class, over the same classes as the table. Each
 * column is as wide as its header or its largest count, so long class names stay whole. */
static void write_confusion(const tk_metrics *mt, const class_score *sc, int name_w,
                            const tk_dataset *ds, FILE *f)
{
    const size_t nc = (size_t)mt->n_classes;
    char buf[16];
    fprintf(f, "\nconfusion matrix (rows: true, columns: predicted)\n%*s", name_w, "");
    for (int j = 0; j < mt->n_classes; j++)
        if (present(&sc[j]))
            fprintf(f, "  %*s", sc[j].width, class_label(ds, j, buf, sizeof buf));
    fputc('\n', f);
    for (size_t i = 0; i < nc; i++) {
        if (!present(&sc[i]))
            continue;
        fprintf(f, "%*s", name_w, class_label(ds, (int)i, buf, sizeof buf));
        for (size_t j = 0; j < nc; j++)
            if (present(&sc[j]))
                fprintf(f, "  %*lld", sc[j].width, (long long)mt->confusion[i * nc + j]);
        fputc('\n', f);
    }
}

/* Per output when there are several, then the uniform average ("overall"). */
static void write_regression(const tk_metrics *mt, FILE *f)
{
    fprintf(f, "%-8s %12s %12s %12s\n", "output", "mae", "rmse", "r2");
    if (mt->label_width > 1)
        for (int k = 0; k < mt->label_width; k++)
            fprintf(f, "%-8d %12.6g %12.6g %12.6g\n", k, output_value(mt, k, REG_MAE),
                    output_value(mt, k, REG_RMSE), output_value(mt, k, REG_R2));
    fprintf(f, "%-8s %12.6g %12.6g %12.6g\n", "overall", uniform(mt, REG_MAE),
            uniform(mt, REG_RMSE), uniform(mt, REG_R2));
}

void tk_metrics_write_report(const tk_metrics *mt, const tk_dataset *ds, FILE *f)
{
    if (mt->count == 0 || (mt->n_classes == 0 && mt->label_width == 0)) {
        fputs("no samples\n", f);
        return;
    }
    if (mt->task == TK_TASK_MULTILABEL) {
        fprintf(f, "labels %d, samples %lld: accuracy %.4f (per label), exact_match %.4f\n",
                mt->label_width, (long long)mt->count, tk_metrics_accuracy(mt),
                exact_match_of(mt, 0));
        return;
    }
    if (mt->n_classes == 0) {
        write_regression(mt, f);
        return;
    }
    /* Scores once per class: recomputing them inside the matrix loops would be cubic. */
    class_score *sc = tk_malloc((size_t)mt->n_classes * sizeof *sc);
    if (!sc) {
        fputs("metrics report: out of memory\n", f);
        return;
    }
    const size_t nc = (size_t)mt->n_classes;
    char buf[16];
    int name_w = 0;
    for (size_t c = 0; c < nc; c++) {
        sc[c] = score_of(mt, (int)c);
        int64_t col_max = 0;
        for (size_t r = 0; r < nc; r++)
            if (mt->confusion[r * nc + c] > col_max)
                col_max = mt->confusion[r * nc + c];
        int label_w = (int)strlen(class_label(ds, (int)c, buf, sizeof buf));
        sc[c].width = max_int(label_w, digits(col_max));
        if (present(&sc[c]))
            name_w = max_int(name_w, label_w);
    }
    write_class_table(mt, sc, name_w, ds, f);
    write_confusion(mt, sc, name_w, ds, f);
    tk_free(sc);
}

int64_t tk_metrics_state_size(const tk_metrics *mt)
{
    int64_t c = mt->n_classes;
    if (mt->task == TK_TASK_MULTILABEL)
        return 3;
    return 2 + (c > 0 ? c * c + c : 4 * (int64_t)mt->label_width);
}

void tk_metrics_get_state(const tk_metrics *mt, double *out)
{
    out[0] = (double)mt->count;
    out[1] = (double)mt->correct;
    if (mt->task == TK_TASK_MULTILABEL) {
        out[2] = (double)mt->exact;
    } else if (mt->n_classes > 0) {
        int64_t c = mt->n_classes;
        for (int64_t i = 0; i < c * c; i++)
            out[2 + i] = (double)mt->confusion[i];
        for (int64_t i = 0; i < c; i++)
            out[2 + c * c + i] = (double)mt->rank[i];
    } else if (mt->abs_err) {
        memcpy(out + 2, mt->abs_err, sizeof(double) * 4 * (size_t)mt->label_width);
    }
}

void tk_metrics_set_state(tk_metrics *mt, const double *in)
{
    mt->count = (int64_t)in[0];
    mt->correct = (int64_t)in[1];
    if (mt->task == TK_TASK_MULTILABEL) {
        mt->exact = (int64_t)in[2];
    } else if (mt->n_classes > 0) {
        int64_t c = mt->n_classes;
        for (int64_t i = 0; i < c * c; i++)
            mt->confusion[i] = (int64_t)in[2 + i];
        for (int64_t i = 0; i < c; i++)
            mt->rank[i] = (int64_t)in[2 + c * c + i];
    } else if (mt->abs_err) {
        memcpy(mt->abs_err, in + 2, sizeof(double) * 4 * (size_t)mt->label_width);
    }
}
