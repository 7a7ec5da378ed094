/* test_pool.c - the compute pool: every task runs exactly once for any thread count, ranges
 * are covered once, jobs can follow each other without a gap, a stalled thread's share is run
 * by the others, and the split matrix products and per-parameter loops give the same numbers
 * as one thread. */
#include "check.h"
#include "tk_int.h"

#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static atomic_int runs[1000];

static void count_task(int t, void *ud)
{
    (void)ud;
    atomic_fetch_add(&runs[t], 1);
}

static void count_range(int64_t lo, int64_t hi, void *ud)
{
    int64_t *grain = ud;
    CHECK_MSG(lo % *grain == 0, "chunk start %lld not a multiple of %lld", (long long)lo,
              (long long)*grain);
    for (int64_t i = lo; i < hi; i++)
        atomic_fetch_add(&runs[i], 1);
}

static void test_tasks_once(void)
{
    for (int threads = 1; threads <= 4; threads++) {
        CHECK(tk_pool_resize(threads) == threads);
        CHECK(tk_pool_size() == threads);
        /* many short jobs in a row: a late worker must never run a task of a finished job */
        for (int round = 0; round < 2000; round++) {
            int n = 1 + round % 37;
            for (int t = 0; t < n + 5; t++)
                atomic_store(&runs[t], 0);
            tk_parallel(n, count_task, NULL);
            int wrong = 0;
            for (int t = 0; t < n + 5; t++)
                wrong += atomic_load(&runs[t]) != (t < n);
            CHECK_MSG(wrong == 0, "threads %d, job of %d tasks: %d tasks ran != once", threads,
                      n, wrong);
            if (wrong)
                return;
        }
        for (int64_t grain = 1; grain <= 64; grain *= 4) {
            for (int t = 0; t < 1000; t++)
                atomic_store(&runs[t], 0);
            tk_parallel_range(997, grain, count_range, &grain);
            int wrong = 0;
            for (int t = 0; t < 1000; t++)
                wrong += atomic_load(&runs[t]) != (t < 997);
            CHECK_MSG(wrong == 0, "threads %d, grain %lld: %d items not covered once", threads,
                      (long long)grain, wrong);
        }
    }
}

static atomic_int finished;
static atomic_bool left_waiting;

static double seconds_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* On a worker, the first task waits until every other task of the job has run: only the
 * caller taking the worker's share lets it go on. */
static void stalling_task(int t, void *ud)
{
    int n = *(const int *)ud;
    atomic_fetch_add(&runs[t], 1);
    if (tk_pool_thread() != 0 && atomic_load(&finished) == 0)
        for (double t0 = seconds_now(); atomic_load(&finished) < n - 1;)
            if (seconds_now() - t0 > 5) {
                atomic_store(&left_waiting, true);
                break;
            }
    atomic_fetch_add(&finished, 1);
}

static void test_stalled_thread(void)
{
    CHECK(tk_pool_resize(2) == 2);
    for (int round = 0; round < 200 && !atomic_load(&left_waiting); round++) {
        int n = 2 + round % 15;
        atomic_store(&finished, 0);
        for (int t = 0; t < n; t++)
            atomic_store(&runs[t], 0);
        tk_parallel(n, stalling_task, &n);
        int wrong = 0;
        for (int t = 0; t < n; t++)
            wrong += atomic_load(&runs[t]) != 1;
        CHECK_MSG(wrong == 0, "job of %d tasks with a stalled worker: %d tasks ran != once", n,
                  wrong);
    }
    CHECK_MSG(!atomic_load(&left_waiting), "a stalled worker's share was left to it for 5 s");
}

static void fill(float *v, size_t n, unsigned seed)
{
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        v[i] = (float)((seed >> 8) & 0xffff) / 32768.0f - 1.0f;
    }
}

/* A product split into blocks of output rows or columns gives each element the same sum as
 * the whole product, bit for bit. */
static void test_gemm_split(void)
{
    static const int shapes[][3] = {{64, 512, 784}, {512, 784, 64}, {64, 10, 512},
                                    {33, 200, 70},  {9, 50000, 32}, {288, 1000, 64}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int m = shapes[s][0], n = shapes[s][1], k = shapes[s][2];
        for (int trans = 0; trans < 4; trans++) {
            bool ta = trans & 1, tb = trans & 2;
            float *a = malloc(sizeof(float) * (size_t)m * k);
            float *b = malloc(sizeof(float) * (size_t)k * n);
            float *c1 = malloc(sizeof(float) * (size_t)m * n);
            float *c3 = malloc(sizeof(float) * (size_t)m * n);
            fill(a, (size_t)m * k, 1 + (unsigned)s);
            fill(b, (size_t)k * n, 7 + (unsigned)s);
            fill(c1, (size_t)m * n, 3);
            memcpy(c3, c1, sizeof(float) * (size_t)m * n);
            int lda = ta ? m : k, ldb = tb ? k : n;
            tk_pool_resize(1);
            tk_sgemm(ta, tb, m, n, k, 1.0f, a, lda, b, ldb, 0.5f, c1, n);
            tk_pool_resize(3);
            tk_sgemm(ta, tb, m, n, k, 1.0f, a, lda, b, ldb, 0.5f, c3, n);
            size_t differ = 0;
            for (size_t i = 0; i < (size_t)m * n; i++)
                differ += c1[i] != c3[i];
            CHECK_MSG(differ == 0, "%dx%dx%d trans %d: %zu elements differ", m, n, k, trans,
                      differ);
            free(a);
            free(b);
            free(c1);
            free(c3);
        }
    }
}

/* A small model stepped with one and with three threads: identical norms and weights. */
static void test_model_threads(void)
{
    float weights[2][3000];
    double norms[2];
    for (int run = 0; run < 2; run++) {
        tk_pool_resize(run ? 3 : 1);
        tk_ctx *ctx = tk_ctx_new();
        tk_graph *g = tk_graph_new(ctx);
        tk_graph_set_batch(g, 16);
        int x = tk_graph_input(g, (tk_shape){1, {40}});
        int y = tk_graph_target(g, (tk_shape){0, {0}});
        tk_attr h_attr = {.key = "out_features", .kind = TK_ATTR_INT, .i = 60};
        int h = tk_graph_op(g, "linear", &x, 1, &h_attr, 1, "0", "test");
        int r = tk_graph_op(g, "relu", &h, 1, NULL, 0, "1", "test");
        tk_attr o_attr = {.key = "out_features", .kind = TK_ATTR_INT, .i = 5};
        int o = tk_graph_op(g, "linear", &r, 1, &o_attr, 1, "2", "test");
        int in[2] = {o, y};
        int loss = tk_graph_op(g, "cross_entropy", in, 2, NULL, 0, "loss", "test");
        tk_graph_set_output(g, o);
        tk_graph_set_loss(g, loss, TK_TASK_CLASSIFICATION);
        tk_optim_spec opt = {.type = "adam",
                             .h = {.lr = 1e-2, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8}};
        tk_model *m = NULL;
        tk_compile_opts co = {.seed = 3, .fuse = true, .train = true};
        CHECK(tk_compile(g, &opt, &co, &m, ctx) == TK_OK);
        if (!m)
            return;
        for (int step = 0; step < 5; step++) {
            fill(tk_model_input(m), 16 * 40, 11 + (unsigned)step);
            for (int i = 0; i < 16; i++)
                tk_model_target(m)[i] = (float)(i % 5);
            float l;
            tk_model_zero_grad(m);
            CHECK(tk_model_forward_backward(m, 16, 1.0f, (uint64_t)step, &l, ctx) == TK_OK);
            norms[run] = tk_model_grad_norm(m);
            tk_model_update(m, (double[]){1e-2});
        }
        int n = 0;
        for (int t = 0; t < tk_model_tensor_count(m); t++) {
            tk_tensor_info ti = tk_model_tensor(m, t);
            for (int64_t i = 0; i < tk_shape_numel(&ti.shape) && n < 3000; i++)
                weights[run][n++] = ti.data[i];
        }
        tk_model_free(m);
        tk_graph_free(g);
        tk_ctx_free(ctx);
    }
    CHECK_MSG(norms[0] == norms[1], "grad norm %.17g with 1 thread, %.17g with 3", norms[0],
              norms[1]);
    CHECK(memcmp(weights[0], weights[1], sizeof weights[0]) == 0);
}

int main(void)
{
    test_tasks_once();
    test_stalled_thread();
    test_gemm_split();
    test_model_threads();
    tk_pool_resize(1);
    return check_summary();
}
