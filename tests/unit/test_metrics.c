/* test_metrics.c - tk_metrics on small hand-checked sets: the confusion matrix, top-K from
 * the rank histogram (ties included), per-class and macro precision/recall/f1 as sklearn
 * defines them (a class never predicted, a class absent from targets, a class absent from
 * both, ignore_index rows), accumulation over several batches, reset, no allocation in
 * tk_metrics_add, regression mae/rmse/r2 (multi-output, constant targets, targets far from
 * zero), tk_metric_check's messages, and the text of the report. */
#include "check.h"
#include "data/dataset.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- the classification set */

/* Five classes. Rows (true -> argmax, rank of the true class):
 *   0 -> 0 r0 | 0 -> 0 r0 | 0 -> 1 r1 | 1 -> 1 r0 | 1 -> 3 r1
 *   2 -> 0 r3 | 2 -> 1 r1 (tie 3 == 3: the earlier column wins) | 1 -> 1 r0 (tie, true first)
 * plus three ignored rows (targets -100, 5 and NaN). Class 2 is never predicted, class 3
 * never a target, class 4 appears nowhere (so the macro average runs over 4 classes). */
enum { NC = 5, NROWS = 11 };
static const float logits[NROWS][NC] = {
    {3, 1, 0, 0, -9}, {2, 0, 1, 0, -9}, {1, 2, 0, 0, -9}, {0, 5, 1, 0, -9},
    {9, 9, 9, 9, 9},  /* ignored */
    {1, 2, 0, 3, -9}, {4, 3, 1, 2, -9},
    {0, 0, 0, 0, 9},  /* ignored */
    {1, 3, 3, 0, -9}, {0, 2, 2, 0, -9},
    {5, 0, 0, 0, 0},  /* ignored */
};
static float targets[NROWS] = {0, 0, 0, 1, -100, 1, 2, 5, 2, 1, 0 /* NaN, set in main */};

static tk_metrics *classified(int batches)
{
    tk_metrics *mt = tk_metrics_new(TK_TASK_CLASSIFICATION, NC, 1);
    /* Uneven batches that split the rows anywhere: the sums must not care. */
    static const int cuts[][4] = {{0, NROWS, NROWS, NROWS}, {0, 3, 5, NROWS}, {0, 1, 8, NROWS}};
    for (int b = 0; b < 3; b++) {
        const int *cut = cuts[batches];
        int lo = cut[b], hi = cut[b + 1];
        tk_metrics_add(mt, logits[lo], NC, targets + lo, hi - lo);
    }
    return mt;
}

static void test_confusion(void)
{
    tk_metrics *mt = classified(0);
    /* [true][pred]: row 0 = {2,1,0,0,0}, row 1 = {0,2,0,1,0}, row 2 = {1,1,0,0,0}. */
    static const int64_t want[NC][NC] = {
        {2, 1, 0, 0, 0}, {0, 2, 0, 1, 0}, {1, 1, 0, 0, 0}, {0}, {0}};
    for (int i = 0; i < NC; i++)
        for (int j = 0; j < NC; j++)
            CHECK_MSG(tk_metrics_confusion(mt, i, j) == want[i][j], "[%d][%d] = %lld", i, j,
                      (long long)tk_metrics_confusion(mt, i, j));
    CHECK(tk_metrics_confusion(mt, -1, 0) == 0 && tk_metrics_confusion(mt, 0, NC) == 0);
    CHECK(tk_metrics_count(mt) == 8);
    /* correct = 2 + 2 = 4 of 8 */
    CHECK_CLOSE(tk_metrics_accuracy(mt), 0.5, 0, 1e-15);
    CHECK_CLOSE(tk_metrics_value(mt, "accuracy"), 0.5, 0, 1e-15);
    tk_metrics_free(mt);
}

static void test_topk(void)
{
    tk_metrics *mt = classified(0);
    /* ranks 0,0,1,0,1,3,1,0: four at 0, three at 1, one at 3 */
    CHECK_CLOSE(tk_metrics_value(mt, "top1"), tk_metrics_accuracy(mt), 0, 0);
    CHECK_CLOSE(tk_metrics_value(mt, "top2"), 7.0 / 8, 0, 1e-15);  /* 4 + 3 */
    CHECK_CLOSE(tk_metrics_value(mt, "top3"), 7.0 / 8, 0, 1e-15);  /* nothing at rank 2 */
    CHECK_CLOSE(tk_metrics_value(mt, "top4"), 1.0, 0, 1e-15);      /* 4 + 3 + 1 */
    CHECK_CLOSE(tk_metrics_value(mt, "top5"), 1.0, 0, 1e-15);      /* K == C */
    CHECK_CLOSE(tk_metrics_value(mt, "top99999999999"), 1.0, 0, 1e-15);
    CHECK(isnan(tk_metrics_value(mt, "top0")));
    CHECK(isnan(tk_metrics_value(mt, "confusion")));
    CHECK(isnan(tk_metrics_value(mt, "r2")));
    CHECK(isnan(tk_metrics_value(mt, "acc")));
    tk_metrics_free(mt);
}

static void test_scores(void)
{
    tk_metrics *mt = classified(0);
    double p, r, f;
    int64_t s;
    /* class 0: tp 2, predicted 2+0+1 = 3, true 3 -> p 2/3, r 2/3, f1 2*2/(3+3) */
    tk_metrics_class(mt, 0, &p, &r, &f, &s);
    CHECK_CLOSE(p, 2.0 / 3, 0, 1e-15);
    CHECK_CLOSE(r, 2.0 / 3, 0, 1e-15);
    CHECK_CLOSE(f, 2.0 / 3, 0, 1e-15);
    CHECK(s == 3);
    /* class 1: tp 2, predicted 1+2+1 = 4, true 3 -> p 1/2, r 2/3, f1 4/(4+3) = 4/7 */
    tk_metrics_class(mt, 1, &p, &r, &f, &s);
    CHECK_CLOSE(p, 0.5, 0, 1e-15);
    CHECK_CLOSE(r, 2.0 / 3, 0, 1e-15);
    CHECK_CLOSE(f, 4.0 / 7, 0, 1e-15);
    CHECK(s == 3);
    /* class 2: never predicted -> p 0 (zero_division), r 0/2, f1 0 */
    tk_metrics_class(mt, 2, &p, &r, &f, &s);
    CHECK(p == 0 && r == 0 && f == 0 && s == 2);
    /* class 3: predicted once, never a target -> p 0/1, r 0 (zero_division), f1 0 */
    tk_metrics_class(mt, 3, &p, &r, &f, &s);
    CHECK(p == 0 && r == 0 && f == 0 && s == 0);
    tk_metrics_class(mt, 4, &p, &r, &f, &s);
    CHECK(p == 0 && r == 0 && f == 0 && s == 0);
    tk_metrics_class(mt, 99, &p, &r, &f, &s);
    CHECK(p == 0 && s == 0);
    /* Macro over the present classes 0..3 (4 appears nowhere), as sklearn 1.2.1 gives:
     * precision (2/3 + 1/2 + 0 + 0) / 4 = 7/24, recall (2/3 + 2/3) / 4 = 1/3,
     * f1 (2/3 + 4/7) / 4 = 13/42. */
    CHECK_CLOSE(tk_metrics_value(mt, "precision"), 7.0 / 24, 0, 1e-15);
    CHECK_CLOSE(tk_metrics_value(mt, "recall"), 1.0 / 3, 0, 1e-15);
    CHECK_CLOSE(tk_metrics_value(mt, "f1"), 13.0 / 42, 0, 1e-15);
    tk_metrics_free(mt);
}

static void test_batches_and_reset(void)
{
    static const char *const names[] = {"accuracy", "top1", "top2", "top4", "precision",
                                        "recall", "f1"};
    tk_metrics *one = classified(0);
    for (int b = 1; b < 3; b++) {
        tk_metrics *many = classified(b);
        CHECK(tk_metrics_count(many) == tk_metrics_count(one));
        for (int i = 0; i < NC; i++)
            for (int j = 0; j < NC; j++)
                CHECK(tk_metrics_confusion(many, i, j) == tk_metrics_confusion(one, i, j));
        for (size_t k = 0; k < sizeof names / sizeof *names; k++)
            CHECK_MSG(tk_metrics_value(many, names[k]) == tk_metrics_value(one, names[k]),
                      "%s", names[k]);
        tk_metrics_free(many);
    }
    tk_metrics_reset(one);
    CHECK(tk_metrics_count(one) == 0);
    CHECK(isnan(tk_metrics_accuracy(one)));
    CHECK(isnan(tk_metrics_value(one, "f1")) && isnan(tk_metrics_value(one, "top2")));
    CHECK(tk_metrics_confusion(one, 0, 0) == 0 && tk_metrics_confusion(one, 1, 3) == 0);
    /* After a reset the same rows give the same numbers again (no stale ranks). */
    tk_metrics_add(one, logits[0], NC, targets, NROWS);
    CHECK(tk_metrics_count(one) == 8);
    CHECK_CLOSE(tk_metrics_value(one, "top2"), 7.0 / 8, 0, 1e-15);
    CHECK_CLOSE(tk_metrics_value(one, "f1"), 13.0 / 42, 0, 1e-15);
    tk_metrics_free(one);
}

/* tk_metrics_add runs on every training batch: all its memory comes from tk_metrics_new. */
static void test_add_allocates_nothing(void)
{
    static const float y[2] = {1, 2}, p[2] = {0, 3};
    tk_metrics *cls = tk_metrics_new(TK_TASK_CLASSIFICATION, NC, 1), *reg = tk_metrics_new(TK_TASK_REGRESSION, 0, 1);
    check_count_allocations();
    for (int i = 0; i < 3; i++) {
        tk_metrics_add(cls, logits[0], NC, targets, NROWS);
        tk_metrics_add(reg, p, 1, y, 2);
    }
    tk_set_allocator(NULL);
    CHECK(check_allocs() == 0);
    CHECK(tk_metrics_count(cls) == 24 && tk_metrics_count(reg) == 6);
    tk_metrics_free(cls);
    tk_metrics_free(reg);
}

/* ---------------------------------------------------------------- regression */

static void test_regression(void)
{
    /* output 0: y 1,2,3,4  p 1,3,2,6  err 0,1,-1,2
     *   mae 4/4 = 1, mse 6/4 -> rmse sqrt(1.5), mean 2.5, SST 2.25+.25+.25+2.25 = 5,
     *   r2 1 - 6/5 = -0.2
     * output 1: y 2,4,6,8  p 2,4,6,9  err 0,0,0,1
     *   mae 1/4, mse 1/4 -> rmse 0.5, mean 5, SST 9+1+1+9 = 20, r2 1 - 1/20 = 0.95
     * uniform: mae 0.625, rmse (sqrt(1.5) + 0.5) / 2, r2 (-0.2 + 0.95) / 2 = 0.375
     * (sklearn 1.2.1: mean_absolute_error, mean_squared_error(squared=False), r2_score). */
    static const float y[4][2] = {{1, 2}, {2, 4}, {3, 6}, {4, 8}};
    static const float p[4][2] = {{1, 2}, {3, 4}, {2, 6}, {6, 9}};
    tk_metrics *mt = tk_metrics_new(TK_TASK_REGRESSION, 0, 2);
    tk_metrics_add(mt, p[0], 2, y[0], 1);
    tk_metrics_add(mt, p[1], 2, y[1], 3);
    CHECK(tk_metrics_count(mt) == 4);
    CHECK(isnan(tk_metrics_accuracy(mt)));
    CHECK(isnan(tk_metrics_value(mt, "accuracy")));
    CHECK_CLOSE(tk_metrics_value(mt, "mae"), 0.625, 0, 1e-15);
    CHECK_CLOSE(tk_metrics_value(mt, "rmse"), (sqrt(1.5) + 0.5) / 2, 0, 1e-15);
    CHECK_CLOSE(tk_metrics_value(mt, "r2"), 0.375, 0, 1e-15);

    /* Targets near 1e6 with the same errors: SST is still exactly 5 (sum y^2 - n mean^2
     * would lose it to cancellation), so r2 stays -0.2. */
    float yb[4], pb[4];
    static const float err[4] = {0, 1, -1, 2};
    for (int i = 0; i < 4; i++) {
        yb[i] = 1e6f + (float)(i + 1);
        pb[i] = yb[i] + err[i];
    }
    tk_metrics *big = tk_metrics_new(TK_TASK_REGRESSION, 0, 1);
    tk_metrics_add(big, pb, 1, yb, 4);
    CHECK_CLOSE(tk_metrics_value(big, "r2"), -0.2, 0, 1e-12);
    CHECK_CLOSE(tk_metrics_value(big, "mae"), 1.0, 0, 1e-15);
    tk_metrics_free(big);

    /* Constant targets: r2 1 if predicted exactly, else 0 (sklearn's force_finite). */
    static const float three[3] = {3, 3, 3}, off[3] = {3, 4, 3};
    tk_metrics *c = tk_metrics_new(TK_TASK_REGRESSION, 0, 1);
    tk_metrics_add(c, three, 1, three, 3);
    CHECK(tk_metrics_value(c, "r2") == 1.0 && tk_metrics_value(c, "mae") == 0.0);
    tk_metrics_reset(c);
    CHECK(isnan(tk_metrics_value(c, "mae")));
    tk_metrics_add(c, off, 1, three, 3);
    CHECK(tk_metrics_value(c, "r2") == 0.0);
    CHECK_CLOSE(tk_metrics_value(c, "rmse"), sqrt(1.0 / 3), 0, 1e-15);
    tk_metrics_reset(c);
    tk_metrics_add(c, off, 1, three, 1);  /* one sample: r2 undefined, as in sklearn */
    CHECK(isnan(tk_metrics_value(c, "r2")) && tk_metrics_value(c, "mae") == 0.0);
    tk_metrics_free(c);

    FILE *f;
    char *text = NULL;
    size_t len = 0;
    f = open_memstream(&text, &len);
    tk_metrics_write_report(mt, NULL, f);
    fclose(f);
    CHECK_MSG(tk_contains(text, "output            mae         rmse           r2\n"), "%s", text);
    CHECK_MSG(tk_contains(text, "0                   1      1.22474         -0.2\n"), "%s", text);
    CHECK_MSG(tk_contains(text, "1                0.25          0.5         0.95\n"), "%s", text);
    CHECK_MSG(tk_contains(text, "overall         0.625     0.862372        0.375\n"), "%s", text);
    free(text);
    tk_metrics_free(mt);
}

/* ---------------------------------------------------------------- names */

static void check_msg(const char *name, tk_task task, const char *want)
{
    tk_ctx *ctx = tk_ctx_new();
    tk_status st = tk_metric_check(name, task, ctx);
    if (want) {
        CHECK_MSG(st == TK_ERR_INPUT, "%s: status %d", name, (int)st);
        CHECK_MSG(strcmp(tk_errmsg(ctx), want) == 0, "%s: got '%s'", name, tk_errmsg(ctx));
    } else {
        CHECK_MSG(st == TK_OK, "%s: %s", name, tk_errmsg(ctx));
    }
    tk_ctx_free(ctx);
}

static void test_check(void)
{
    static const char *const ok_class[] = {"accuracy", "top1", "top5", "top10", "precision",
                                           "recall", "f1", "confusion"};
    for (size_t i = 0; i < sizeof ok_class / sizeof *ok_class; i++)
        check_msg(ok_class[i], TK_TASK_CLASSIFICATION, NULL);
    check_msg("mae", TK_TASK_REGRESSION, NULL);
    check_msg("rmse", TK_TASK_REGRESSION, NULL);
    check_msg("r2", TK_TASK_REGRESSION, NULL);
    const char *unknown_class = "(valid for classification: accuracy, top<K>, precision, "
                                "recall, f1, confusion)";
    char want[256];
    static const char *const bad[] = {"acc", "top", "top5x", "top-1", "Accuracy", ""};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        snprintf(want, sizeof want, "metrics: unknown metric '%s' %s", bad[i], unknown_class);
        check_msg(bad[i], TK_TASK_CLASSIFICATION, want);
    }
    check_msg("mse", TK_TASK_REGRESSION,
              "metrics: unknown metric 'mse' (valid for regression: mae, rmse, r2)");
    check_msg("r2", TK_TASK_CLASSIFICATION, "metrics: 'r2' needs a regression loss");
    check_msg("mae", TK_TASK_CLASSIFICATION, "metrics: 'mae' needs a regression loss");
    check_msg("accuracy", TK_TASK_REGRESSION, "metrics: 'accuracy' needs a classification loss");
    check_msg("top3", TK_TASK_REGRESSION, "metrics: 'top3' needs a classification loss");
    check_msg("confusion", TK_TASK_REGRESSION, "metrics: 'confusion' needs a classification loss");
    check_msg("top0", TK_TASK_CLASSIFICATION, "metrics: 'top0': K must be at least 1 (e.g. top5)");
    check_msg("accuracy", TK_TASK_MULTILABEL, NULL);
    check_msg("exact_match", TK_TASK_MULTILABEL, NULL);
    check_msg("f1", TK_TASK_MULTILABEL, "metrics: 'f1' needs a classification loss");
    check_msg("exact_match", TK_TASK_CLASSIFICATION, "metrics: 'exact_match' needs a multilabel loss");
    check_msg("top2", TK_TASK_MULTILABEL, "metrics: 'top2' needs a classification loss");
    check_msg("hamming", TK_TASK_MULTILABEL,
              "metrics: unknown metric 'hamming' (valid for multilabel: accuracy, exact_match)");
    CHECK(strcmp(tk_metric_always(TK_TASK_REGRESSION, 2), "r2") == 0);
    CHECK(tk_metric_always(TK_TASK_REGRESSION, 3) == NULL);
    CHECK(strcmp(tk_metric_always(TK_TASK_MULTILABEL, 0), "accuracy") == 0);
}

/* Multi-label: a logit > 0 says yes, a target > 0.5 is yes; accuracy over labels, exact_match
 * over samples, and both survive the checkpoint state. */
static void test_multilabel(void)
{
    CHECK(tk_metrics_new(TK_TASK_MULTILABEL, 3, 3) == NULL);
    tk_metrics *mt = tk_metrics_new(TK_TASK_MULTILABEL, 0, 3);
    const float pred[] = {2, -1, 0.5f, /* */ -3, -0.1f, 0, /* */ 1, 1, 1};
    const float target[] = {1, 0, 1, /* */ 0, 1, 0, /* */ 1, 1, 0.4f};
    tk_metrics_add(mt, pred, 3, target, 3);
    CHECK(tk_metrics_count(mt) == 3);
    CHECK(tk_close(tk_metrics_accuracy(mt), 7.0 / 9.0, 1e-15, 0));
    CHECK(tk_close(tk_metrics_value(mt, "exact_match"), 1.0 / 3.0, 1e-15, 0));
    CHECK(isnan(tk_metrics_value(mt, "mae")));
    CHECK(tk_metrics_state_size(mt) == 3);
    double state[3];
    tk_metrics_get_state(mt, state);
    tk_metrics *back = tk_metrics_new(TK_TASK_MULTILABEL, 0, 3);
    tk_metrics_set_state(back, state);
    CHECK(tk_metrics_value(back, "exact_match") == tk_metrics_value(mt, "exact_match"));
    CHECK(tk_metrics_accuracy(back) == tk_metrics_accuracy(mt));
    tk_metrics_free(back);
    tk_metrics_free(mt);
}


/* ---------------------------------------------------------------- report */

static char *report(const tk_metrics *mt, const tk_dataset *ds)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    tk_metrics_write_report(mt, ds, f);
    fclose(f);
    return text;
}

static void test_report(void)
{
    tk_metrics *mt = classified(0);
    /* Without a dataset the classes are their ids; class 4 (nowhere) has no row. */
    char *text = report(mt, NULL);
    static const char *const rows[] = {
        "              precision     recall         f1    support\n\n",
        "           0     0.6667     0.6667     0.6667          3\n",
        "           1     0.5000     0.6667     0.5714          3\n",
        "           2     0.0000     0.0000     0.0000          2\n",
        "           3     0.0000     0.0000     0.0000          0\n\n",
        /* accuracy 4/8; macro 7/24, 1/3, 13/42; weighted by support 3,3,2,0 over 8:
         * p (3*2/3 + 3*1/2) / 8 = 3.5/8, r (2 + 2) / 8 = 0.5, f1 (2 + 12/7) / 8 = 26/56 */
        "    accuracy                           0.5000          8\n",
        "   macro avg     0.2917     0.3333     0.3095          8\n",
        "weighted avg     0.4375     0.5000     0.4643          8\n",
        "\nconfusion matrix (rows: true, columns: predicted)\n"
        "   0  1  2  3\n0  2  1  0  0\n1  0  2  0  1\n2  1  1  0  0\n3  0  0  0  0\n",
    };
    for (size_t i = 0; i < sizeof rows / sizeof *rows; i++)
        CHECK_MSG(tk_contains(text, rows[i]), "row %zu missing from:\n%s", i, text);
    CHECK(!tk_contains(text, "           4 "));
    free(text);

    /* Class names from the dataset; columns as wide as their names. */
    tk_dataset *ds = tk_dataset_alloc("animals.csv", "row");
    static const char *const animals[NC] = {"cat", "dog", "bird", "hamster", "eel"};
    ds->n_classes = NC;
    ds->class_names = tk_calloc(NC, sizeof(char *));
    for (int c = 0; c < NC; c++)
        ds->class_names[c] = tk_strdup(animals[c]);
    text = report(mt, ds);
    static const char *const named[] = {
        "         cat     0.6667     0.6667     0.6667          3\n",
        "     hamster     0.0000     0.0000     0.0000          0\n",
        "\nconfusion matrix (rows: true, columns: predicted)\n"
        "         cat  dog  bird  hamster\n"
        "    cat    2    1     0        0\n"
        "    dog    0    2     0        1\n"
        "   bird    1    1     0        0\n"
        "hamster    0    0     0        0\n",
    };
    for (size_t i = 0; i < sizeof named / sizeof *named; i++)
        CHECK_MSG(tk_contains(text, named[i]), "row %zu missing from:\n%s", i, text);
    CHECK(!tk_contains(text, "eel"));
    free(text);
    tk_dataset_free(ds);

    tk_metrics_reset(mt);
    text = report(mt, NULL);
    CHECK_MSG(strcmp(text, "no samples\n") == 0, "%s", text);
    free(text);
    tk_metrics_free(mt);
}

int main(void)
{
    targets[NROWS - 1] = NAN;
    test_confusion();
    test_topk();
    test_scores();
    test_batches_and_reset();
    test_add_allocates_nothing();
    test_regression();
    test_check();
    test_multilabel();
    test_report();
    return check_summary();
}
