/* dist.h - data-parallel runs as the CLI sees them: `tkrun --ranks N` (mpirun on localhost),
 * joining the job mpirun started, the job's tk_dist, and sharing rank 0's run directory name.
 * The plain tkrun holds no MPI: under mpirun it hands over to tkrun-mpi (lang/dist_mpi.c,
 * built only when CMake finds MPI), which registers its backend here. */
#ifndef TK_DIST_H
#define TK_DIST_H

#include "tk.h"

#include <stdbool.h>
#include <stddef.h>

/* What an MPI build adds (dist_mpi.c registers it before main runs). */
typedef struct {
    /* Join the job (MPI_Init); NULL on failure, message printed. */
    const tk_dist *(*join)(int *argc, char ***argv);
    /* Rank 0's bytes of buf to every rank. */
    tk_status (*share)(char *buf, size_t cap);
    /* End the job at exit code rc: finalize when every rank ends alike (0, 130), else leave
     * at once so mpirun stops the other ranks. */
    void (*end)(int rc);
} tk_dist_backend;
void tk_dist_register(const tk_dist_backend *b);

/* First thing main() does: `--ranks N` runs mpirun (and returns its exit code, 130 after
 * Ctrl-C); launched by mpirun, the plain tkrun execs tkrun-mpi next to it, which joins the
 * job (and defaults --threads to the cores per rank). Returns true when main must return
 * *rc at once. */
bool tk_dist_start(int *argc, char ***argv, int *rc);
/* The job's ranks, or NULL for one process. */
const tk_dist *tk_dist_world(void);
/* Rank 0's string in buf on every rank (nothing to do for one process). */
tk_status tk_dist_share(char *buf, size_t cap, tk_ctx *ctx);
/* Last thing main() does; returns rc. */
int tk_dist_end(int rc);

#endif
