/* dist.c - the CLI's side of data-parallel runs: `--ranks N` as a shorthand for mpirun on
 * localhost, the hand-over from the plain tkrun to tkrun-mpi under mpirun, the default thread
 * count per rank, and rank 0 alone printing. Holds no MPI: the backend (dist_mpi.c) comes
 * with tkrun-mpi. Not here: the reductions (the runtime's dist.c calls them). */
#include "dist.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static const tk_dist_backend *backend;
static const tk_dist *world;

void tk_dist_register(const tk_dist_backend *b)
{
    backend = b;
}

const tk_dist *tk_dist_world(void)
{
    return world;
}

/* The ranks of the job mpirun started us in (0: not started by mpirun). */
static long launched_ranks(void)
{
    const char *names[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE"};
    for (int i = 0; i < 3; i++) {
        const char *v = getenv(names[i]);
        if (v && *v)
            return strtol(v, NULL, 10);
    }
    return 0;
}

/* tkrun-mpi: ourselves in the MPI build, else the file next to this executable. */
static bool mpi_executable(char *out, size_t cap)
{
    ssize_t n = readlink("/proc/self/exe", out, cap - 1);
    if (n <= 0)
        return false;
    out[n] = 0;
    if (backend)
        return true;
    char *slash = strrchr(out, '/');
    size_t dir = slash ? (size_t)(slash - out) + 1 : 0;
    if (dir + sizeof "tkrun-mpi" > cap)
        return false;
    memcpy(out + dir, "tkrun-mpi", sizeof "tkrun-mpi");
    return access(out, X_OK) == 0;
}

static const char no_mpi[] = "this tkrun was built without MPI (no tkrun-mpi next to it): "
                             "install openmpi-bin and libopenmpi-dev, then rebuild";

/* Ctrl-C on mpirun itself aborts the job (SIGTERM to the ranks, SIGKILL a second later, exit
 * 1). So --ranks runs mpirun in a process group of its own and turns a Ctrl-C or SIGTERM into
 * SIGUSR1, which mpirun forwards to every rank as it is; there it is a SIGINT (save after the
 * step, the second one quits at once), and mpirun exits with the ranks' 130. */
static volatile pid_t mpirun_pid;

static void forward_signal(int sig)
{
    (void)sig;
    if (mpirun_pid > 0)
        kill(mpirun_pid, SIGUSR1);
}

static void usr1_as_sigint(int sig)
{
    (void)sig;
    raise(SIGINT);
}

static int run_mpirun(char **args)
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "tkrun: --ranks: cannot start mpirun: %s\n", strerror(errno));
        return TK_ERR_RUNTIME;
    }
    if (pid == 0) {
        setpgid(0, 0);
        execvp("mpirun", args);
        fprintf(stderr, "tkrun: --ranks: cannot run mpirun: %s (install openmpi-bin)\n",
                strerror(errno));
        _exit(TK_ERR_INPUT);
    }
    mpirun_pid = pid;
    struct sigaction sa = {.sa_handler = forward_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    int status;
    while (waitpid(pid, &status, 0) < 0)
        if (errno != EINTR)
            return TK_ERR_RUNTIME;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

/* `tkrun [...] --ranks N [...]`: mpirun -np N on localhost, N slots (so N may exceed the
 * cores), no core binding (each rank's BLAS threads may move), no stdin (mpirun is not in
 * the terminal's foreground group), the rest of argv unchanged. */
static int launch_ranks(int argc, char **argv, int at)
{
    const char *count = strchr(argv[at], '=') ? strchr(argv[at], '=') + 1
                                              : at + 1 < argc ? argv[at + 1] : "";
    char *end;
    long n = strtol(count, &end, 10);
    if (!*count || *end || n < 1 || n > 4096) {
        fprintf(stderr, "tkrun: --ranks needs a count from 1 to 4096, got '%s'\n", count);
        return TK_ERR_INPUT;
    }
    if (launched_ranks() > 0) {
        fprintf(stderr, "tkrun: --ranks inside a job mpirun started: use one or the other\n");
        return TK_ERR_INPUT;
    }
    char exe[4096], np[32], hosts[64];
    if (!mpi_executable(exe, sizeof exe)) {
        fprintf(stderr, "tkrun: --ranks: %s\n", no_mpi);
        return TK_ERR_INPUT;
    }
    snprintf(np, sizeof np, "%ld", n);
    snprintf(hosts, sizeof hosts, "localhost:%ld", n);
    char **args = calloc((size_t)argc + 14, sizeof *args);
    if (!args)
        return TK_ERR_RUNTIME;
    int k = 0;
    const char *lead[] = {"mpirun", "-np", np, "-H", hosts, "--bind-to", "none", "--stdin",
                          "none"};
    for (int i = 0; i < 9; i++)
        args[k++] = (char *)lead[i];
    if (geteuid() == 0)
        args[k++] = "--allow-run-as-root";
    args[k++] = exe;
    int skip = strchr(argv[at], '=') ? 1 : 2;
    for (int i = 1; i < argc; i++)
        if (i < at || i >= at + skip)
            args[k++] = argv[i];
    int rc = run_mpirun(args);
    free(args);
    return rc;
}

static bool is_train(int argc, char **argv)
{
    return argc > 1 && (strcmp(argv[1], "train") == 0 || strchr(argv[1], '.') ||
                        strchr(argv[1], '/'));
}

/* Without --threads, every rank on a node sharing all its cores would oversubscribe them:
 * each rank gets cores / ranks on this node. */
static void default_threads(int *argc, char ***argv)
{
    for (int i = 1; i < *argc; i++)
        if (strcmp((*argv)[i], "--threads") == 0 || strncmp((*argv)[i], "--threads=", 10) == 0)
            return;
    if (!is_train(*argc, *argv))
        return;
    const char *local = getenv("OMPI_COMM_WORLD_LOCAL_SIZE");
    long per_node = local ? strtol(local, NULL, 10) : world->size;
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    long threads = per_node > 0 && cores > per_node ? cores / per_node : 1;
    static char value[32];
    snprintf(value, sizeof value, "%ld", threads);
    /* static: the extended argv lives as long as the process, reachable (no leak at exit) */
    static char **args;
    args = calloc((size_t)*argc + 3, sizeof *args);
    if (!args)
        return;
    memcpy(args, *argv, sizeof *args * (size_t)*argc);
    args[(*argc)++] = "--threads";
    args[(*argc)++] = value;
    *argv = args;
}

bool tk_dist_start(int *argc, char ***argv, int *rc)
{
    for (int i = 1; i < *argc; i++)
        if (strcmp((*argv)[i], "--ranks") == 0 || strncmp((*argv)[i], "--ranks=", 8) == 0) {
            *rc = launch_ranks(*argc, *argv, i);
            return true;
        }
    long ranks = launched_ranks();
    if (ranks <= 0)
        return false;
    if (!backend) {
        char exe[4096];
        if (mpi_executable(exe, sizeof exe)) {
            fflush(stdout);
            execv(exe, *argv);
        }
        if (ranks == 1)
            return false; /* one process under mpirun: nothing to distribute */
        fprintf(stderr, "tkrun: started by mpirun with %ld ranks, but %s\n", ranks, no_mpi);
        *rc = TK_ERR_INPUT;
        return true;
    }
    world = backend->join(argc, argv);
    if (!world) {
        *rc = TK_ERR_RUNTIME;
        return true;
    }
    if (world->size > 1)
        default_threads(argc, argv);
    struct sigaction sa = {.sa_handler = usr1_as_sigint};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGUSR1, &sa, NULL);
    /* Rank 0 speaks for the job; the others keep stderr for what only they can say. */
    if (world->rank != 0 && !freopen("/dev/null", "w", stdout))
        fprintf(stderr, "tkrun: rank %d: cannot silence stdout\n", world->rank);
    return false;
}

tk_status tk_dist_share(char *buf, size_t cap, tk_ctx *ctx)
{
    if (!world || world->size <= 1)
        return TK_OK;
    if (backend->share(buf, cap) != TK_OK)
        return tk_fail(ctx, TK_ERR_RUNTIME, "rank %d: cannot receive the run directory from "
                       "rank 0", world->rank);
    return TK_OK;
}

int tk_dist_end(int rc)
{
    if (world && backend) {
        fflush(stdout);
        fflush(stderr);
        backend->end(rc);
    }
    return rc;
}
