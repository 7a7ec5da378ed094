/* gemm_bound.c - the floor under an epoch: the time of its matrix products alone. Builds the
 * script's pipeline, records the shapes of every tk_sgemm call of one training step (and of
 * one eval step), then times those products over the epoch's step count on this machine, with
 * the same thread count and the same splitting as a real step (a run of products that the step
 * made inside one pool job, a task each, replays as one job). Prints
 *   train_gemm_seconds S  eval_gemm_seconds E  steps N  eval_batches M  gflop G
 * for bench/speed.sh. Usage: gemm_bound SCRIPT THREADS [--set k=v]... */
#include "cli.h"
#include "tk_int.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { MAX_SHAPES = 4096 };

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

typedef struct {
    const tk_gemm_shape *s;
    float *a, *b, *c;
} replay;

static void one(const tk_gemm_shape *s, const float *a, const float *b, float *c, bool serial)
{
    int lda = s->trans_a ? s->m : s->k, ldb = s->trans_b ? s->k : s->n;
    (serial ? tk_sgemm_serial : tk_sgemm)(s->trans_a, s->trans_b, s->m, s->n, s->k, 1.0f, a,
                                          lda, b, ldb, 0.0f, c, s->n);
}

static void replay_task(int t, void *ud)
{
    const replay *r = ud;
    size_t at = 0;
    for (int k = 0; k < t; k++)
        at += (size_t)r->s[k].m * r->s[k].n;
    one(&r->s[t], r->a, r->b, r->c + at, true);
}

static double time_shapes(const tk_gemm_shape *s, int n, int64_t repeats, float *a, float *b,
                          float *c, double *gflop)
{
    double t0 = now(), flop = 0;
    for (int64_t r = 0; r < repeats; r++)
        for (int i = 0; i < n;) {
            int run = 1;
            while (s[i].serial && i + run < n && s[i + run].serial)
                run++;
            if (s[i].serial)
                tk_parallel(run, replay_task, &(replay){s + i, a, b, c});
            else
                one(&s[i], a, b, c, false);
            for (int k = i; k < i + run; k++)
                flop += 2.0 * s[k].m * s[k].n * s[k].k;
            i += run;
        }
    *gflop += flop * 1e-9;
    return now() - t0;
}

static size_t largest(const tk_gemm_shape *s, int n, int which)
{
    size_t best = 1;
    for (int i = 0; i < n; i++) {
        size_t v = which == 0 ? (size_t)s[i].m * s[i].k
                   : which == 1 ? (size_t)s[i].k * s[i].n : (size_t)s[i].m * s[i].n;
        best = v > best ? v : best;
    }
    return best;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: gemm_bound SCRIPT THREADS [--set k=v]...\n");
        return 2;
    }
    tk_cli c = {.script = argv[1], .threads = atoi(argv[2])};
    const char *sets[64];
    for (int i = 3; i + 1 < argc && c.n_sets < 64; i += 2)
        if (strcmp(argv[i], "--set") == 0)
            sets[c.n_sets++] = argv[i + 1];
    c.sets = sets;
    tk_session s;
    if (tk_session_open(&s, &c) != TK_OK) {
        fprintf(stderr, "gemm_bound: %s\n", tk_errmsg(s.ctx));
        return 2;
    }
    tk_model *m = s.p.model;
    int batch = tk_model_batch(m);
    memset(tk_model_input(m), 0, sizeof(float) * 1);
    static tk_gemm_shape train[MAX_SHAPES], eval[MAX_SHAPES];
    int n_train = 0, n_eval = 0;
    float loss;
    tk_blas_record(train, MAX_SHAPES, &n_train);
    tk_model_zero_grad(m);
    tk_status st = tk_model_forward_backward(m, batch, 1.0f, 0, &loss, s.ctx);
    tk_blas_record(eval, MAX_SHAPES, &n_eval);
    if (st == TK_OK)
        st = tk_model_eval(m, batch, &loss, s.ctx);
    tk_blas_record(NULL, 0, NULL);
    if (st != TK_OK || n_train > MAX_SHAPES || n_eval > MAX_SHAPES) {
        fprintf(stderr, "gemm_bound: %s\n", st != TK_OK ? tk_errmsg(s.ctx) : "too many products");
        return 1;
    }
    size_t na = largest(train, n_train, 0), nb = largest(train, n_train, 1);
    /* The tasks of one job write outputs of their own, as in the step. */
    size_t nc = largest(train, n_train, 2);
    for (int i = 0; i < n_train; i++)
        nc += train[i].serial ? (size_t)train[i].m * train[i].n : 0;
    float *a = tk_alloc_floats(na), *b = tk_alloc_floats(nb), *cc = tk_alloc_floats(nc);
    for (size_t i = 0; i < na; i++)
        a[i] = (float)(i % 7) * 0.01f;
    for (size_t i = 0; i < nb; i++)
        b[i] = (float)(i % 5) * 0.01f;
    int64_t steps = tk_train_batches_per_epoch(&s.p.train);
    int64_t eval_rows = s.p.train.test ? tk_view_len(s.p.train.test) : 0;
    int64_t eval_batches = (eval_rows + batch - 1) / batch;
    double gflop = 0;
    double train_s = time_shapes(train, n_train, steps, a, b, cc, &gflop);
    double eval_s = time_shapes(eval, n_eval, eval_batches, a, b, cc, &gflop);
    printf("train_gemm_seconds %.3f eval_gemm_seconds %.3f steps %lld eval_batches %lld "
           "gflop %.1f\n", train_s, eval_s, (long long)steps, (long long)eval_batches, gflop);
    tk_free_aligned(a);
    tk_free_aligned(b);
    tk_free_aligned(cc);
    tk_session_close(&s);
    return 0;
}
