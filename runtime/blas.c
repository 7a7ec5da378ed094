/* blas.c - the only file that includes cblas.h: matrix products through OpenBLAS, the thread
 * count, and a naive reference path that tests compare against. */
#include "tk_int.h"

#include <cblas.h>
#include <stdio.h>
#include <unistd.h>

static bool use_reference;
static int blas_threads = 1;

void tk_blas_use_reference(bool on)
{
    use_reference = on;
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

void tk_sgemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float *a,
              int lda, const float *b, int ldb, float beta, float *c, int ldc)
{
    if (m == 0 || n == 0)
        return;
    if (use_reference) {
        tk_sgemm_ref(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
        return;
    }
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                trans_b ? CblasTrans : CblasNoTrans, m, n, k, alpha, a, lda, b, ldb, beta, c,
                ldc);
}

void tk_set_threads(int n)
{
    if (n <= 0) {
        long cores = sysconf(_SC_NPROCESSORS_ONLN);
        n = cores > 0 ? (int)cores : 1;
    }
    blas_threads = n;
    openblas_set_num_threads(n);
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
