/* blas.c - the only file that includes cblas.h: matrix products through OpenBLAS, the thread
 * count, and a naive reference path that tests compare against. OpenBLAS runs single-threaded:
 * a product big enough to share is cut into one block of output rows or columns per thread of
 * the runtime's pool (pool.c), so one pool serves every phase of a step. */
#include "tk_int.h"

#include <cblas.h>
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>

static bool use_reference;
static tk_gemm_shape *recorded;
static int record_cap, *record_count;
static int blas_threads = 1;
static pthread_mutex_t record_lock = PTHREAD_MUTEX_INITIALIZER; /* serial calls run in tasks */

void tk_blas_use_reference(bool on)
{
    use_reference = on;
}

void tk_blas_record(tk_gemm_shape *shapes, int cap, int *count)
{
    recorded = shapes;
    record_cap = cap;
    record_count = count;
}

void tk_sgemm_ref(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float *a,
                  int lda, const float *b, int ldb, float beta, float *c, int ldc)
{
    for (int i = 0; i < m; i++) {
        for (int j = 0; j < n; j++) {
            double s = 0;
            for (int p = 0; p < k; p++) {
                float av = trans_a ? a[p * lda + i] : a[i * lda + p];
                float bv = trans_b ? b[j * ldb + p] : b[p * ldb + j];
                s += (double)av * bv;
            }
            /* beta == 0 must ignore C entirely (it may hold NaN garbage), as BLAS does. */
            float old = beta == 0.0f ? 0.0f : beta * c[i * ldc + j];
            c[i * ldc + j] = alpha * (float)s + old;
        }
    }
}

typedef struct {
    bool trans_a, trans_b, split_n;
    int m, n, k, lda, ldb, ldc, block;
    float alpha, beta;
    const float *a, *b;
    float *c;
} gemm_job;

static void gemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float *a,
                 int lda, const float *b, int ldb, float beta, float *c, int ldc)
{
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                trans_b ? CblasTrans : CblasNoTrans, m, n, k, alpha, a, lda, b, ldb, beta, c,
                ldc);
}

/* Block t: output columns (split_n) or rows [t * block, (t + 1) * block). */
static void gemm_block(int t, void *ud)
{
    const gemm_job *j = ud;
    int dim = j->split_n ? j->n : j->m, lo = t * j->block;
    int hi = lo + j->block < dim ? lo + j->block : dim;
    if (lo >= hi)
        return;
    if (j->split_n) {
        const float *b = j->trans_b ? j->b + (size_t)lo * j->ldb : j->b + lo;
        gemm(j->trans_a, j->trans_b, j->m, hi - lo, j->k, j->alpha, j->a, j->lda, b, j->ldb,
             j->beta, j->c + lo, j->ldc);
    } else {
        const float *a = j->trans_a ? j->a + lo : j->a + (size_t)lo * j->lda;
        gemm(j->trans_a, j->trans_b, hi - lo, j->n, j->k, j->alpha, a, j->lda, j->b, j->ldb,
             j->beta, j->c + (size_t)lo * j->ldc, j->ldc);
    }
}

/* Below this many multiply-adds a product is not worth waking a thread for. The blocks depend
 * on the shape alone, never on the thread count: OpenBLAS picks its kernel (and so its
 * rounding) by the size of each call, so the same calls on any number of threads give the
 * same bits. */
enum { SPLIT_MIN_WORK = 1 << 17, SPLIT_ALIGN = 16, SPLIT_MAX_PARTS = 8, SPLIT_MIN_BLOCK = 16 };

static void record(bool trans_a, bool trans_b, int m, int n, int k, bool serial)
{
    pthread_mutex_lock(&record_lock);
    if (*record_count < record_cap)
        recorded[*record_count] = (tk_gemm_shape){trans_a, trans_b, m, n, k, serial};
    ++*record_count;
    pthread_mutex_unlock(&record_lock);
}

void tk_sgemm_serial(bool trans_a, bool trans_b, int m, int n, int k, float alpha,
                     const float *a, int lda, const float *b, int ldb, float beta, float *c,
                     int ldc)
{
    if (m == 0 || n == 0)
        return;
    if (recorded)
        record(trans_a, trans_b, m, n, k, true);
    if (use_reference)
        tk_sgemm_ref(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    else
        gemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

void tk_sgemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float *a,
              int lda, const float *b, int ldb, float beta, float *c, int ldc)
{
    if (m == 0 || n == 0)
        return;
    if (recorded)
        record(trans_a, trans_b, m, n, k, false);
    if (use_reference) {
        tk_sgemm_ref(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
        return;
    }
    bool split_n = n >= m;
    int dim = split_n ? n : m;
    int parts = dim / SPLIT_MIN_BLOCK < SPLIT_MAX_PARTS ? dim / SPLIT_MIN_BLOCK : SPLIT_MAX_PARTS;
    if ((double)m * n * k < SPLIT_MIN_WORK || parts < 2) {
        gemm(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
        return;
    }
    int block = (dim + parts - 1) / parts;
    block = (block + SPLIT_ALIGN - 1) / SPLIT_ALIGN * SPLIT_ALIGN;
    gemm_job j = {trans_a, trans_b, split_n, m, n, k, lda, ldb, ldc, block, alpha, beta, a, b, c};
    tk_parallel((dim + block - 1) / block, gemm_block, &j);
}

/* The pthreads build of OpenBLAS starts its threads before main, with every signal
 * unblocked; once it runs single-threaded they only idle, and a signal the kernel hands one
 * of them runs its handler there (libedit's handlers assume the thread that reads). This is
 * the call OpenBLAS itself makes before a fork; weak, as other builds may not have it. */
extern int blas_thread_shutdown_(void) __attribute__((weak));

void tk_set_threads(int n)
{
    if (n <= 0) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        n = cores > 0 ? (int)cores : 1;
    }
    blas_threads = tk_pool_resize(n);
    openblas_set_num_threads(1);
    if (blas_thread_shutdown_)
        blas_thread_shutdown_();
}

int tk_threads(void)
{
    return blas_threads;
}

const char *tk_blas_info(void)
{
    static char info[256];
    snprintf(info, sizeof info, "%s (%d threads)", openblas_get_config(), blas_threads);
    return info;
}
