/* blas.c - the only file that includes cblas.h: matrix products through OpenBLAS, the thread
 * count, and a naive reference path that tests compare against. OpenBLAS runs single-threaded:
 * a product big enough to share is cut into one block of output rows or columns per thread of
 * the runtime's pool (pool.c), so one pool serves every phase of a step. */
#include "tk_int.h"

#include <cblas.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
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
    bool trans_a, trans_b, split_n, relu;
    int m, n, k, lda, ldb, ldc, block;
    float alpha, beta;
    const float *a, *b, *bias;
    float *c;
} gemm_job;

static void gemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float *a,
                 int lda, const float *b, int ldb, float beta, float *c, int ldc)
{
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                trans_b ? CblasTrans : CblasNoTrans, m, n, k, alpha, a, lda, b, ldb, beta, c,
                ldc);
}

/* C's rows [r0, r1) x columns [c0, c1) = op(A) op(B) + bias, rectified if relu: the product
 * with its bias laid in first and its ReLU after, on the thread that owns that part of C. */
static void gemm_region(const gemm_job *j, int r0, int r1, int c0, int c1)
{
    const float *a = j->trans_a ? j->a + r0 : j->a + (size_t)r0 * j->lda;
    const float *b = j->trans_b ? j->b + (size_t)c0 * j->ldb : j->b + c0;
    float *c = j->c + (size_t)r0 * j->ldc + c0;
    int rows = r1 - r0, cols = c1 - c0;
    if (j->bias)
        for (int r = 0; r < rows; r++)
            memcpy(c + (size_t)r * j->ldc, j->bias + c0, sizeof(float) * (size_t)cols);
    if (use_reference)
        tk_sgemm_ref(j->trans_a, j->trans_b, rows, cols, j->k, j->alpha, a, j->lda, b, j->ldb,
                     j->beta, c, j->ldc);
    else
        gemm(j->trans_a, j->trans_b, rows, cols, j->k, j->alpha, a, j->lda, b, j->ldb, j->beta,
             c, j->ldc);
    if (j->relu)
        for (int r = 0; r < rows; r++) {
            float *row = c + (size_t)r * j->ldc;
            for (int i = 0; i < cols; i++)
                row[i] = row[i] > 0.0f ? row[i] : 0.0f;
        }
}

/* Block t: output columns (split_n) or rows [t * block, (t + 1) * block). */
static void gemm_block(int t, void *ud)
{
    const gemm_job *j = ud;
    int dim = j->split_n ? j->n : j->m, lo = t * j->block;
    int hi = lo + j->block < dim ? lo + j->block : dim;
    if (lo >= hi)
        return;
    if (j->split_n)
        gemm_region(j, 0, j->m, lo, hi);
    else
        gemm_region(j, lo, hi, 0, j->n);
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

int tk_sgemm_blocks(int m, int n, bool *split_n, int *block)
{
    *split_n = n >= m;
    int dim = *split_n ? n : m;
    int parts = dim / SPLIT_MIN_BLOCK < SPLIT_MAX_PARTS ? dim / SPLIT_MIN_BLOCK : SPLIT_MAX_PARTS;
    if (parts < 2) {
        *block = dim;
        return 1;
    }
    *block = ((dim + parts - 1) / parts + SPLIT_ALIGN - 1) / SPLIT_ALIGN * SPLIT_ALIGN;
    return (dim + *block - 1) / *block;
}

static void split_gemm(gemm_job *j)
{
    if (j->m == 0 || j->n == 0)
        return;
    if (recorded)
        record(j->trans_a, j->trans_b, j->m, j->n, j->k, false);
    int blocks = tk_sgemm_blocks(j->m, j->n, &j->split_n, &j->block);
    if ((double)j->m * j->n * j->k < SPLIT_MIN_WORK || blocks < 2)
        gemm_region(j, 0, j->m, 0, j->n);
    else
        tk_parallel(blocks, gemm_block, j);
}

void tk_sgemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float *a,
              int lda, const float *b, int ldb, float beta, float *c, int ldc)
{
    gemm_job j = {.trans_a = trans_a, .trans_b = trans_b, .m = m, .n = n, .k = k, .lda = lda,
                  .ldb = ldb, .ldc = ldc, .alpha = alpha, .beta = beta, .a = a, .b = b, .c = c};
    split_gemm(&j);
}

void tk_sgemm_bias_relu(bool trans_a, bool trans_b, int m, int n, int k, const float *a,
                        int lda, const float *b, int ldb, const float *bias, bool relu, float *c,
                        int ldc)
{
    gemm_job j = {.trans_a = trans_a, .trans_b = trans_b, .relu = relu, .m = m, .n = n, .k = k,
                  .lda = lda, .ldb = ldb, .ldc = ldc, .alpha = 1.0f, .beta = bias ? 1.0f : 0.0f,
                  .a = a, .b = b, .bias = bias, .c = c};
    split_gemm(&j);
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
