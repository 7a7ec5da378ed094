/* cmd_eval.c - tkrun eval: a script's model with trained weights, one eval-mode pass over a
 * split (test by default): loss, accuracy or mae/rmse/r2, the script's metrics, and for
 * classification the per-class table and confusion matrix; as text or --json.
 * Not here: the pass itself (runtime tk_evaluate), the --weights resolution (cli.c). */
#include "cli.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const split_names[3] = {"train", "valid", "test"};

/* The metric names to report: the ones every report of the task shows, then the script's,
 * each once. */
static int metric_list(const tk_pipeline *p, const char **out, int cap)
{
    int n = 0;
    for (const char *m; n < cap && (m = tk_metric_always(tk_model_task(p->model), n));)
        out[n++] = m;
    for (int i = 0; i < p->train.n_metrics && n < cap; i++) {
        const char *m = p->metrics[i];
        bool dup = strcmp(m, "confusion") == 0;
        for (int k = 0; k < n && !dup; k++)
            dup = strcmp(out[k], m) == 0;
        if (!dup)
            out[n++] = m;
    }
    return n;
}

static void json_number(FILE *f, double v)
{
    if (isfinite(v))
        fprintf(f, "%.17g", v);
    else
        fputs("null", f);
}

static void print_json(const tk_cli *c, const char *weights, const char *split,
                       const tk_eval_result *r, const char **names, const tk_dataset *ds,
                       int n_classes)
{
    fputs("{\"script\": ", stdout);
    tk_cli_json_string(stdout, c->script);
    fputs(", \"weights\": ", stdout);
    tk_cli_json_string(stdout, weights);
    fputs(", \"split\": ", stdout);
    tk_cli_json_string(stdout, split);
    printf(", \"samples\": %lld, \"loss\": ", (long long)r->samples);
    json_number(stdout, r->loss);
    fputs(", \"metrics\": {", stdout);
    for (int k = 0; k < r->n_values; k++) {
        fputs(k ? ", " : "", stdout);
        tk_cli_json_string(stdout, names[k]);
        fputs(": ", stdout);
        json_number(stdout, r->values[k]);
    }
    fputc('}', stdout);
    if (n_classes > 0) {
        fputs(", \"classes\": [", stdout);
        for (int k = 0; k < n_classes; k++) {
            double precision, recall, f1;
            int64_t support;
            tk_metrics_class(r->metrics, k, &precision, &recall, &f1, &support);
            const char *name = tk_dataset_class_name(ds, k);
            printf("%s{\"id\": %d, \"name\": ", k ? ", " : "", k);
            if (name)
                tk_cli_json_string(stdout, name);
            else
                printf("\"%d\"", k);
            fputs(", \"precision\": ", stdout);
            json_number(stdout, precision);
            fputs(", \"recall\": ", stdout);
            json_number(stdout, recall);
            fputs(", \"f1\": ", stdout);
            json_number(stdout, f1);
            printf(", \"support\": %lld}", (long long)support);
        }
        fputs("], \"confusion\": [", stdout);
        for (int t = 0; t < n_classes; t++) {
            fputs(t ? ", [" : "[", stdout);
            for (int k = 0; k < n_classes; k++)
                printf("%s%lld", k ? ", " : "", (long long)tk_metrics_confusion(r->metrics, t, k));
            fputc(']', stdout);
        }
        fputc(']', stdout);
    }
    fputs("}\n", stdout);
}

static int run_eval(const tk_cli *c, tk_session *s)
{
    const char *split = c->split ? c->split : "test";
    int which = -1;
    for (int k = 0; k < 3; k++)
        if (strcmp(split, split_names[k]) == 0 && s->p.views[k])
            which = k;
    if (which < 0) {
        char have[64] = "";
        for (int k = 0; k < 3; k++)
            if (s->p.views[k])
                snprintf(have + strlen(have), sizeof have - strlen(have), "%s%s",
                         have[0] ? ", " : "", split_names[k]);
        return tk_cli_usage_error("eval", "--split %s: %s has no such split (it has: %s)", split,
                                  c->script, have);
    }
    char used[4200];
    tk_status st = tk_session_load_weights(s, c->weights, used, sizeof used);
    if (st != TK_OK)
        return tk_cli_exit(st, s->ctx);
    tk_view *v = s->p.views[which];
    const tk_dataset *ds = tk_view_dataset(v);
    bool classification = tk_model_task(s->p.model) == TK_TASK_CLASSIFICATION;
    int cap = s->p.train.n_metrics + 4;
    const char **names = malloc(sizeof *names * (size_t)cap);
    if (!names)
        return tk_cli_exit(tk_fail(s->ctx, TK_ERR_RUNTIME, "out of memory"), s->ctx);
    int n = metric_list(&s->p, names, cap);
    tk_eval_result r;
    st = tk_evaluate(s->p.model, v, s->p.train.batch_size, names, n, &r, s->ctx);
    if (st != TK_OK) {
        free(names);
        return tk_cli_exit(st, s->ctx);
    }
    if (c->json) {
        print_json(c, used, split, &r, names, ds,
                   classification ? tk_model_output_width(s->p.model) : 0);
    } else {
        printf("%s: %s split, %lld samples, weights %s\nloss %.4f", c->script, split,
               (long long)r.samples, used, r.loss);
        for (int k = 0; k < r.n_values; k++)
            printf("  %s %.4f", names[k], r.values[k]);
        printf("\n\n");
        tk_metrics_write_report(r.metrics, ds, stdout);
    }
    tk_eval_result_free(&r);
    free(names);
    return 0;
}

int tk_cmd_eval(const tk_cli *c)
{
    if (!c->weights)
        return tk_cli_usage_error("eval", "tkrun eval needs --weights W (a .safetensors file or "
                                  "a run directory)");
    tk_session s;
    tk_status st = tk_session_open(&s, c);
    int rc = st == TK_OK ? run_eval(c, &s) : tk_cli_exit(st, s.ctx);
    tk_session_close(&s);
    return rc;
}
