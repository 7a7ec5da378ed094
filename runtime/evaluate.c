/* evaluate.c - using a trained model outside the training loop: tk_evaluate (one eval-mode
 * pass over a view: loss and metrics), tk_model_predict (eval-mode forward on raw rows) and
 * tk_view_transform (the view's scale/normalisation applied to features read from elsewhere,
 * so a prediction input is prepared exactly as training batches were).
 * Not here: the training loop's own valid/test passes (train.c), printing (lang/).
 */
#include "data/dataset.h"

#include <math.h>
#include <string.h>
#include <time.h>

static double seconds_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int tk_model_output_width(const tk_model *m)
{
    return (int)tk_sample_numel(&m->g->nodes[m->g->output].shape);
}

tk_shape tk_model_input_shape(const tk_model *m)
{
    tk_shape s = m->g->nodes[m->g->input].shape;
    for (int k = 1; k < s.ndim; k++)
        s.d[k - 1] = s.d[k];
    s.ndim--;
    return s;
}

void tk_view_transform(const tk_view *v, float *x, int64_t n)
{
    const int64_t nf = v->ds->nfeat;
    for (int64_t i = 0; i < n; i++)
        for (int64_t f = 0; f < nf; f++)
            x[i * nf + f] = x[i * nf + f] * v->mul[f] + v->add[f];
}

void tk_eval_result_free(tk_eval_result *r)
{
    tk_metrics_free(r->metrics);
    tk_free(r->values);
    memset(r, 0, sizeof *r);
}

tk_status tk_evaluate(tk_model *m, tk_view *v, int batch_size, const char *const *metrics,
                      int n_metrics, tk_eval_result *out, tk_ctx *ctx)
{
    memset(out, 0, sizeof *out);
    const tk_dataset *ds = tk_view_dataset(v);
    if (batch_size <= 0 || batch_size > tk_model_batch(m))
        batch_size = tk_model_batch(m);
    if (tk_view_len(v) == 0)
        return tk_fail(ctx, TK_ERR_INPUT, "%s: no samples to evaluate", tk_dataset_source(ds));
    for (int k = 0; k < n_metrics; k++)
        if (tk_metric_check(metrics[k], tk_model_task(m), ctx) != TK_OK)
            return TK_ERR_INPUT;
    out->metrics = tk_metrics_for(m, ds);
    out->values = tk_calloc((size_t)(n_metrics > 0 ? n_metrics : 1), sizeof(double));
    tk_loader_opts lo = {.batch_size = batch_size, .prefetch = true};
    tk_loader *ld = NULL;
    tk_status st = out->metrics && out->values ? TK_OK
                                               : tk_fail(ctx, TK_ERR_RUNTIME, "out of memory");
    if (st == TK_OK)
        st = tk_loader_new(v, &lo, &ld, ctx);
    const double start = seconds_now();
    double loss_sum = 0, loss_weight = 0;
    if (st == TK_OK) {
        tk_loader_begin(ld, 0, 0);
        for (int n; st == TK_OK &&
                    (n = tk_loader_next(ld, tk_model_input(m), tk_model_target(m), NULL)) > 0;) {
            float loss;
            /* PyTorch's divisor (class weights, ignore_index): the pass's loss is the mean
             * over the whole pass, as training's own test pass reports it. */
            double weight = tk_model_loss_weight(m, n);
            st = tk_model_eval(m, n, &loss, ctx);
            if (st != TK_OK)
                break;
            tk_metrics_add(out->metrics, tk_model_output(m), tk_model_output_width(m),
                           tk_model_target(m), n);
            if (weight > 0) {
                loss_sum += (double)loss * weight;
                loss_weight += weight;
            }
            out->samples += n;
        }
        if (st == TK_OK && out->samples < tk_view_len(v))
            st = tk_loader_fail(ld, ctx);
    }
    tk_loader_free(ld);
    if (st != TK_OK) {
        tk_eval_result_free(out);
        return st;
    }
    out->seconds = seconds_now() - start;
    out->loss = loss_weight > 0 ? loss_sum / loss_weight : NAN;
    out->n_values = n_metrics;
    for (int k = 0; k < n_metrics; k++)
        out->values[k] = tk_metrics_value(out->metrics, metrics[k]);
    return TK_OK;
}

tk_status tk_model_predict(tk_model *m, const float *x, int64_t n, float *out, tk_ctx *ctx)
{
    const tk_shape in = tk_model_input_shape(m);
    const int64_t nf = tk_shape_numel(&in);
    const int width = tk_model_output_width(m);
    const int batch = tk_model_batch(m);
    /* The loss runs too; a zero target is valid for every loss (class 0, target 0.0). */
    const int64_t target_width = tk_sample_numel(&m->g->nodes[m->g->target].shape);
    memset(tk_model_target(m), 0, sizeof(float) * (size_t)(batch * target_width));
    for (int64_t done = 0; done < n;) {
        int rows = n - done < batch ? (int)(n - done) : batch;
        memcpy(tk_model_input(m), x + done * nf, sizeof(float) * (size_t)(rows * nf));
        float loss;
        if (tk_model_eval(m, rows, &loss, ctx) != TK_OK)
            return TK_ERR_RUNTIME;
        memcpy(out + done * width, tk_model_output(m), sizeof(float) * (size_t)rows * width);
        done += rows;
    }
    return TK_OK;
}
