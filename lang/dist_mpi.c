/* dist_mpi.c - tk_dist on MPI, linked only into tkrun-mpi (CMake builds it when it finds MPI):
 * joining the job, and sums that give every rank the same bits in an order fixed by rank
 * (independent of which algorithm the MPI library picks for MPI_Allreduce). Not here: what
 * is reduced or when (runtime/dist.c, runtime/train.c), the command line (dist.c). */
#include "dist.h"

#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static tk_dist world;
static void *scratch;          /* the chunks the other ranks send this one */
static size_t scratch_bytes;
static int *counts, *displs;   /* per rank: the chunk's elements and first element */

static void mpi_message(int code, const char *what)
{
    char text[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(code, text, &len);
    fprintf(stderr, "tkrun: rank %d: %s: %.*s\n", world.rank, what, len, text);
}

/* Rank r owns elements [n*r/P, n*(r+1)/P): every rank sends it its part of that chunk
 * (MPI_Alltoallv), r adds the P parts in rank order, and every rank gathers the owners'
 * sums (MPI_Allgatherv). Per rank that moves 2 (P-1)/P of the buffer, as a ring allreduce,
 * and the result is one fixed sum per element, identical everywhere. */
static tk_status grow_scratch(size_t need)
{
    if (need <= scratch_bytes)
        return TK_OK;
    void *grown = realloc(scratch, need);
    if (!grown) {
        fprintf(stderr, "tkrun: rank %d: out of memory for a reduction\n", world.rank);
        return TK_ERR_RUNTIME;
    }
    scratch = grown;
    scratch_bytes = need;
    return TK_OK;
}

/* out[e] = in[e] + in[m + e] + in[2m + e] + ..., the P parts of m values in rank order. */
static void add_parts(void *out, const void *in, size_t m, MPI_Datatype type)
{
    int p = world.size;
    if (type == MPI_FLOAT) {
        const float *x = in;
        float *y = out;
        for (size_t e = 0; e < m; e++)
            y[e] = x[e];
        for (int r = 1; r < p; r++)
            for (size_t e = 0; e < m; e++)
                y[e] += x[(size_t)r * m + e];
    } else {
        const double *x = in;
        double *y = out;
        for (size_t e = 0; e < m; e++)
            y[e] = x[e];
        for (int r = 1; r < p; r++)
            for (size_t e = 0; e < m; e++)
                y[e] += x[(size_t)r * m + e];
    }
}

/* A few values (a loss, a flag, metric counts): one MPI_Allgather, then every rank adds
 * the same parts in the same order. */
static tk_status gathered_sum(void *buf, size_t n, size_t elem, MPI_Datatype type)
{
    if (grow_scratch(n * elem * (size_t)world.size) != TK_OK)
        return TK_ERR_RUNTIME;
    int rc = MPI_Allgather(buf, (int)n, type, scratch, (int)n, type, MPI_COMM_WORLD);
    if (rc != MPI_SUCCESS) {
        mpi_message(rc, "MPI_Allgather");
        return TK_ERR_RUNTIME;
    }
    add_parts(buf, scratch, n, type);
    return TK_OK;
}

static tk_status ordered_sum(void *buf, size_t n, size_t elem, MPI_Datatype type)
{
    int p = world.size, me = world.rank;
    if (n * (size_t)p <= 4096)
        return gathered_sum(buf, n, elem, type);
    /* Two ranks: x0 + x1 is one rounding whichever rank adds, so the library's allreduce
     * (faster than the two collectives below) gives the same bits everywhere. */
    if (p == 2 && n <= (size_t)1 << 30) {
        int rc = MPI_Allreduce(MPI_IN_PLACE, buf, (int)n, type, MPI_SUM, MPI_COMM_WORLD);
        if (rc != MPI_SUCCESS) {
            mpi_message(rc, "MPI_Allreduce");
            return TK_ERR_RUNTIME;
        }
        return TK_OK;
    }
    size_t mine = (size_t)((uint64_t)n * (uint64_t)(me + 1) / (uint64_t)p) -
                  (size_t)((uint64_t)n * (uint64_t)me / (uint64_t)p);
    if (n > (size_t)1 << 30) {
        fprintf(stderr, "tkrun: rank %d: a reduction of %zu values is beyond the 32-bit "
                "counts of MPI\n", me, n);
        return TK_ERR_RUNTIME;
    }
    if (grow_scratch(mine * elem * (size_t)p) != TK_OK)
        return TK_ERR_RUNTIME;
    int *rcounts = counts + p, *rdispls = displs + p;
    for (int r = 0; r < p; r++) {
        displs[r] = (int)((uint64_t)n * (uint64_t)r / (uint64_t)p);
        counts[r] = (int)((uint64_t)n * (uint64_t)(r + 1) / (uint64_t)p) - displs[r];
        rcounts[r] = (int)mine;
        rdispls[r] = (int)mine * r;
    }
    int rc = MPI_Alltoallv(buf, counts, displs, type, scratch, rcounts, rdispls, type,
                           MPI_COMM_WORLD);
    if (rc != MPI_SUCCESS) {
        mpi_message(rc, "MPI_Alltoallv");
        return TK_ERR_RUNTIME;
    }
    add_parts((char *)buf + (size_t)displs[me] * elem, scratch, mine, type);
    rc = MPI_Allgatherv(MPI_IN_PLACE, 0, type, buf, counts, displs, type, MPI_COMM_WORLD);
    if (rc != MPI_SUCCESS) {
        mpi_message(rc, "MPI_Allgatherv");
        return TK_ERR_RUNTIME;
    }
    return TK_OK;
}

static tk_status sum_floats(float *buf, size_t n, void *ud)
{
    (void)ud;
    return ordered_sum(buf, n, sizeof(float), MPI_FLOAT);
}

static tk_status sum_doubles(double *buf, size_t n, void *ud)
{
    (void)ud;
    return ordered_sum(buf, n, sizeof(double), MPI_DOUBLE);
}

static const tk_dist *join(int *argc, char ***argv)
{
    /* A rank waiting in a collective yields its core instead of spinning: its own prefetch
     * thread (and the BLAS threads of ranks sharing the node) need it; spinning made 2 ranks
     * on 2 cores four times slower than yielding. The user's setting wins. */
    setenv("OMPI_MCA_mpi_yield_when_idle", "1", 0);
    int rc = MPI_Init(argc, argv);
    if (rc != MPI_SUCCESS) {
        fprintf(stderr, "tkrun: MPI_Init failed\n");
        return NULL;
    }
    /* Failures come back as codes, so a rank can say which reduction failed. */
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &world.rank);
    MPI_Comm_size(MPI_COMM_WORLD, &world.size);
    counts = calloc(2 * (size_t)world.size, sizeof *counts);
    displs = calloc(2 * (size_t)world.size, sizeof *displs);
    if (!counts || !displs) {
        fprintf(stderr, "tkrun: rank %d: out of memory\n", world.rank);
        return NULL;
    }
    world.allreduce_sum = sum_floats;
    world.allreduce_doubles = sum_doubles;
    return &world;
}

static tk_status share(char *buf, size_t cap)
{
    int rc = MPI_Bcast(buf, (int)cap, MPI_CHAR, 0, MPI_COMM_WORLD);
    if (rc != MPI_SUCCESS) {
        mpi_message(rc, "MPI_Bcast");
        return TK_ERR_RUNTIME;
    }
    buf[cap - 1] = 0;
    return TK_OK;
}

static void end(int rc)
{
    free(scratch);
    free(counts);
    free(displs);
    /* 0 and 130 are reached by every rank at the same step; any other code is this rank's
     * failure, and leaving without MPI_Finalize makes mpirun stop the others. */
    if (rc == TK_OK || rc == TK_ERR_INTERRUPTED)
        MPI_Finalize();
}

static const tk_dist_backend mpi_backend = {join, share, end};

__attribute__((constructor)) static void register_mpi(void)
{
    tk_dist_register(&mpi_backend);
}
