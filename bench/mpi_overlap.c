/* mpi_overlap.c - would overlapping the gradient sum with backward pay on this machine? Each
 * of 2+ ranks does a fixed amount of compute (a 64x64 matrix product, REPS times: stand-in
 * for the backward that could run while gradients move) and sums N floats (the gradient
 * bytes), three ways: compute alone and the sum alone (the two costs), compute then
 * MPI_Allreduce (what tkrun does), and a bucketed sum: MPI_Iallreduce of the first EARLY
 * floats (the gradients backward has finished when the remaining compute starts) during the
 * compute, polled with MPI_Test every 4 products, then the rest. Prints rank 0's means over
 * ROUNDS. Not tkrun's own reduction: a measurement to decide whether it should overlap.
 *
 *   mpirun -np 2 --bind-to none build/mpi_overlap 669706 80 300           # all overlapped
 *   mpirun -np 2 --bind-to none build/mpi_overlap 669706 30 300 267274    # mlp.lua's case
 */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>

enum { DIM = 64 };

static float a[DIM * DIM], b[DIM * DIM], c[DIM * DIM];

static void compute(int reps, MPI_Request *poll)
{
    for (int r = 0; r < reps; r++) {
        for (int i = 0; i < DIM; i++)
            for (int k = 0; k < DIM; k++)
                for (int j = 0; j < DIM; j++)
                    c[i * DIM + j] += a[i * DIM + k] * b[k * DIM + j];
        int done;
        if (poll && r % 4 == 0)
            MPI_Test(poll, &done, MPI_STATUS_IGNORE);
    }
}

static double timed_sum(float *g, int n)
{
    double t = MPI_Wtime();
    MPI_Allreduce(MPI_IN_PLACE, g, n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    return MPI_Wtime() - t;
}

int main(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    int rank;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    if (argc != 4 && argc != 5) {
        if (rank == 0)
            fprintf(stderr, "usage: mpirun -np 2 mpi_overlap FLOATS REPS ROUNDS [EARLY]\n");
        MPI_Finalize();
        return 2;
    }
    int n = atoi(argv[1]), reps = atoi(argv[2]), rounds = atoi(argv[3]);
    int early = argc == 5 ? atoi(argv[4]) : n;
    float *g = calloc((size_t)n, sizeof *g);
    for (int i = 0; i < DIM * DIM; i++)
        a[i] = b[i] = 1e-3f * (float)(i % 7);
    double alone = 0, sum = 0, serial = 0, overlapped = 0;
    for (int k = 0; k < rounds; k++) {
        MPI_Barrier(MPI_COMM_WORLD);
        double t = MPI_Wtime();
        compute(reps, NULL);
        alone += MPI_Wtime() - t;
        MPI_Barrier(MPI_COMM_WORLD);
        sum += timed_sum(g, n);
        MPI_Barrier(MPI_COMM_WORLD);
        t = MPI_Wtime();
        compute(reps, NULL);
        timed_sum(g, n);
        serial += MPI_Wtime() - t;
        MPI_Barrier(MPI_COMM_WORLD);
        t = MPI_Wtime();
        MPI_Request req;
        MPI_Iallreduce(MPI_IN_PLACE, g, early, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, &req);
        compute(reps, &req);
        MPI_Wait(&req, MPI_STATUS_IGNORE);
        if (early < n)
            timed_sum(g + early, n - early);
        overlapped += MPI_Wtime() - t;
    }
    if (rank == 0)
        printf("%d floats (%d early), means of %d: compute %.2f ms, sum %.2f ms, compute "
               "then sum %.2f ms, overlapped %.2f ms\n", n, early, rounds,
               1e3 * alone / rounds, 1e3 * sum / rounds, 1e3 * serial / rounds,
               1e3 * overlapped / rounds);
    free(g);
    MPI_Finalize();
    return 0;
}
