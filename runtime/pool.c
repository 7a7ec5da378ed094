/* pool.c - the runtime's compute threads: one persistent pool that the step's parallel parts
 * (matrix products split into blocks, im2col/col2im, pooling, the optimizer update, gradient
 * norms) share, so both cores work in every phase and no second pool (OpenBLAS's own) spins
 * against it. A job is a number of tasks; each task writes its own outputs, so which thread
 * runs a task never changes a result. Not here: what the tasks compute.
 *
 * Each thread owns a fixed share of every job's tasks (the k-th of n equal runs) and takes
 * the others' only once its own are done. Jobs over the same data cut it the same way, so a
 * block of weights, its gradient and its optimizer state stay in the cache of the thread that
 * used them last, step after step; on a VM whose two vCPUs sit on cores with no shared cache,
 * a line fetched from the other core costs several hundred nanoseconds.
 *
 * Workers spin briefly on their job counter before sleeping: a step issues many short jobs in
 * a row, and a condition-variable wake-up per job would cost more than the jobs gain. The spin
 * is bounded in time (a worker that spun on would take the core from the data loader's
 * thread), it never yields (on a kernel that hands a yielding thread's core to another job
 * for a whole time slice, the worker would be away when the next job comes), and the caller
 * waiting for a task that a worker holds yields after a while, since on a machine shared with
 * other jobs it may sit on the very core that worker needs. Tasks that no worker has picked up
 * yet are simply run by the caller, task by task. */
#include "tk_int.h"

#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <time.h>

/* A worker spins SPIN_NS after its last job (reading the clock every PAUSE_ROUNDS), then
 * sleeps; the caller spins CALLER_PAUSE_ROUNDS before it yields. */
enum { MAX_THREADS = 64, PAUSE_ROUNDS = 64, CALLER_PAUSE_ROUNDS = 1024 };
static const int64_t SPIN_NS = 300000;

/* Each thread's task counter carries the job's generation in its high half, so a worker that
 * wakes late can never claim a task of a job that is over: its compare-and-swap names the
 * generation it read the job under. Jobs alternate between two slots, so a late worker reads
 * the slot of its own generation, which the caller rewrites only two jobs later, after every
 * counter has moved on and that claim has failed. */
typedef struct {
    tk_task_fn fn;
    void *ud;
    uint32_t n_tasks, threads;
} job;

typedef struct {
    _Alignas(64) atomic_uint_fast64_t next; /* generation << 32 | next task of this share */
} share_counter;

/* The counters the threads write live on cache lines of their own, apart from what they only
 * read while spinning. */
static struct {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    pthread_t threads[MAX_THREADS];
    int n_workers; /* threads besides the caller */
    atomic_bool stop;
    job jobs[2];
    share_counter share[MAX_THREADS]; /* thread k's tasks: [k n / threads, (k+1) n / threads) */
    _Alignas(64) atomic_uint done;    /* tasks of the current job finished */
    _Alignas(64) atomic_int sleepers; /* changed under lock, read without */
    atomic_int started;               /* workers that took their index */
} pool = {.lock = PTHREAD_MUTEX_INITIALIZER, .wake = PTHREAD_COND_INITIALIZER};

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static inline uint32_t generation_of(uint_fast64_t v)
{
    return (uint32_t)(v >> 32);
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static uint32_t share_start(uint32_t n_tasks, uint32_t threads, uint32_t k)
{
    return (uint32_t)((uint64_t)n_tasks * k / threads);
}

static uint32_t current_generation(int thread)
{
    return generation_of(atomic_load(&pool.share[thread].next));
}

/* Claims and runs the tasks of thread k's share of job `gen` until none is left or the job is
 * over. */
static void run_share(uint32_t gen, const job *j, uint32_t k)
{
    uint32_t end = share_start(j->n_tasks, j->threads, k + 1);
    atomic_uint_fast64_t *next = &pool.share[k].next;
    uint_fast64_t v = atomic_load(next);
    while (generation_of(v) == gen && (uint32_t)v < end) {
        if (atomic_compare_exchange_weak(next, &v, v + 1)) {
            j->fn((int)(uint32_t)v, j->ud);
            atomic_fetch_add(&pool.done, 1);
            v = atomic_load(next);
        }
    }
}

/* Runs thread `self`'s share of job `gen`, then what is left of the others'. */
static void run_tasks(uint32_t gen, uint32_t self)
{
    job j = pool.jobs[gen & 1];
    for (uint32_t i = 0; i < j.threads; i++)
        run_share(gen, &j, (self + i) % j.threads);
}

static _Thread_local int thread_index; /* 0: the caller's thread */

int tk_pool_thread(void)
{
    return thread_index;
}

/* arg: the generation current when the thread was created, so that a thread that starts late
 * still sees every job (and the stop) published after that. */
static void *worker(void *arg)
{
    uint32_t seen = (uint32_t)(uintptr_t)arg;
    thread_index = atomic_fetch_add(&pool.started, 1) + 1;
    for (;;) {
        uint32_t now = current_generation(thread_index);
        for (int64_t t0 = now_ns(); now == seen && now_ns() - t0 < SPIN_NS;)
            for (int i = 0; now == seen && i < PAUSE_ROUNDS; i++) {
                cpu_relax();
                now = current_generation(thread_index);
            }
        if (now == seen) {
            /* The increment is ordered before the re-check (both seq_cst), and publish()
             * stores the generation before it reads sleepers: one of the two sees the
             * other, so no wake-up is lost. */
            pthread_mutex_lock(&pool.lock);
            atomic_fetch_add(&pool.sleepers, 1);
            while ((now = current_generation(thread_index)) == seen && !atomic_load(&pool.stop))
                pthread_cond_wait(&pool.wake, &pool.lock);
            atomic_fetch_sub(&pool.sleepers, 1);
            pthread_mutex_unlock(&pool.lock);
        }
        seen = now;
        if (atomic_load(&pool.stop))
            return NULL;
        run_tasks(now, (uint32_t)thread_index);
    }
}

/* Makes job `j` current under a new generation and wakes sleeping workers. The caller's own
 * counter moves last: a worker that finds another's counter still on the old generation only
 * leaves those tasks to their owner. */
static uint32_t publish(job j)
{
    uint32_t gen = current_generation(0) + 1;
    j.threads = (uint32_t)pool.n_workers + 1;
    pool.jobs[gen & 1] = j;
    atomic_store(&pool.done, 0);
    for (uint32_t k = j.threads; k-- > 0;)
        atomic_store(&pool.share[k].next,
                     (uint_fast64_t)gen << 32 | share_start(j.n_tasks, j.threads, k));
    if (atomic_load(&pool.sleepers)) {
        pthread_mutex_lock(&pool.lock);
        pthread_cond_broadcast(&pool.wake);
        pthread_mutex_unlock(&pool.lock);
    }
    return gen;
}

static void stop_workers(void)
{
    if (pool.n_workers == 0)
        return;
    atomic_store(&pool.stop, true);
    publish((job){NULL, NULL, 0, 0});
    for (int i = 0; i < pool.n_workers; i++)
        pthread_join(pool.threads[i], NULL);
    pool.n_workers = 0;
    atomic_store(&pool.stop, false);
}

int tk_pool_resize(int n)
{
    n = n < 1 ? 1 : n > MAX_THREADS ? MAX_THREADS : n;
    if (n - 1 == pool.n_workers)
        return n;
    stop_workers();
    uintptr_t gen = current_generation(0);
    /* Workers block every signal, so Ctrl-C always reaches the main thread (the REPL's
     * readline returns on it; a worker taking it left readline reading on, or ended it). */
    atomic_store(&pool.started, 0);
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    for (int i = 0; i < n - 1; i++) {
        if (pthread_create(&pool.threads[i], NULL, worker, (void *)gen) != 0)
            break; /* fewer threads: slower, still correct */
        pool.n_workers++;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return pool.n_workers + 1;
}

int tk_pool_size(void)
{
    return pool.n_workers + 1;
}

void tk_parallel(int n_tasks, tk_task_fn fn, void *ud)
{
    if (n_tasks <= 1 || pool.n_workers == 0) {
        for (int t = 0; t < n_tasks; t++)
            fn(t, ud);
        return;
    }
    uint32_t gen = publish((job){fn, ud, (uint32_t)n_tasks, 0});
    run_tasks(gen, 0);
    for (int i = 0; atomic_load(&pool.done) < (unsigned)n_tasks; i++) {
        if (i < CALLER_PAUSE_ROUNDS)
            cpu_relax();
        else
            sched_yield();
    }
}

/* ---------------------------------------------------------------- ranges */

typedef struct {
    tk_range_fn fn;
    void *ud;
    int64_t n, chunk;
} range_job;

static void range_task(int t, void *ud)
{
    const range_job *j = ud;
    int64_t lo = (int64_t)t * j->chunk, hi = lo + j->chunk < j->n ? lo + j->chunk : j->n;
    j->fn(lo, hi, j->ud);
}

void tk_parallel_range(int64_t n, int64_t grain, tk_range_fn fn, void *ud)
{
    int threads = tk_pool_size();
    if (grain < 1)
        grain = 1;
    if (threads == 1 || n <= grain) {
        if (n > 0)
            fn(0, n, ud);
        return;
    }
    int64_t chunk = (n + threads - 1) / threads;
    chunk = (chunk + grain - 1) / grain * grain;
    range_job j = {fn, ud, n, chunk};
    tk_parallel((int)((n + chunk - 1) / chunk), range_task, &j);
}
