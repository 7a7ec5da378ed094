/* tk_int.h - internal structures shared by the runtime's files: the allocator, the graph IR,
 * the op interface every file under ops/ implements, and the compiled model.
 * Not part of the public API (lang/ includes only tk.h).
 */
#ifndef TK_INT_H
#define TK_INT_H

#include "tk.h"

#include <stdio.h>

/* ---------------------------------------------------------------- memory, strings */

void *tk_malloc(size_t size);          /* NULL on failure (callers report) */
void *tk_calloc(size_t n, size_t size);
void *tk_realloc(void *p, size_t old_size, size_t new_size);
void tk_free(void *p);
char *tk_strdup(const char *s);
/* 64-byte aligned float buffer (freed with tk_free_aligned). */
float *tk_alloc_floats(size_t n);
void tk_free_aligned(void *p);

/* CRC-32C (Castagnoli). Chainable: pass 0 first, then the previous result. */
uint32_t tk_crc32c(uint32_t crc, const void *data, size_t n);

/* Glob match: '*' any run, '?' one character. */
bool tk_glob(const char *pattern, const char *s);

/* ---------------------------------------------------------------- compute threads (pool.c) */

/* tk_set_threads sizes one pool of compute threads (the caller is one of them). A job of
 * n tasks runs each task once, on any thread; tasks must write disjoint outputs, so results
 * never depend on which thread ran what. Only the thread that runs the steps may start jobs. */
typedef void (*tk_task_fn)(int task, void *ud);
typedef void (*tk_range_fn)(int64_t lo, int64_t hi, void *ud);
int tk_pool_resize(int n);     /* returns the threads it could start (>= 1) */
int tk_pool_size(void);
void tk_parallel(int n_tasks, tk_task_fn fn, void *ud);
/* fn over [0, n) in one chunk per thread (chunk bounds are multiples of grain); runs inline
 * when n <= grain or there is one thread. */
void tk_parallel_range(int64_t n, int64_t grain, tk_range_fn fn, void *ud);
/* The calling thread's index in [0, tk_pool_size()): 0 for the caller of the jobs. */
int tk_pool_thread(void);

/* ---------------------------------------------------------------- BLAS (blas.c only) */

/* C = alpha * op(A) @ op(B) + beta * C, row-major. */
void tk_sgemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float *a,
              int lda, const float *b, int ldb, float beta, float *c, int ldc);
/* C = op(A) @ op(B) + bias (one value per column, none if NULL), then max(C, 0) if relu: each
 * block of C is filled, multiplied and rectified by the thread that owns it, so C's lines stay
 * with that thread. The same bits as the three steps one after another. */
void tk_sgemm_bias_relu(bool trans_a, bool trans_b, int m, int n, int k, const float *a,
                        int lda, const float *b, int ldb, const float *bias, bool relu, float *c,
                        int ldc);
/* How tk_sgemm cuts an m x n output: into the returned number of blocks of *block columns
 * (*split_n) or rows, the last one shorter; 1 when it is not cut. A loop over a product's
 * output that cuts it the same way runs each block on the thread that wrote it. */
int tk_sgemm_blocks(int m, int n, bool *split_n, int *block);
/* One call on the calling thread, never split: for products inside a pool task (tk_parallel
 * does not nest), each task's product over its own columns or rows. */
void tk_sgemm_serial(bool trans_a, bool trans_b, int m, int n, int k, float alpha,
                     const float *a, int lda, const float *b, int ldb, float beta, float *c,
                     int ldc);
/* The naive reference path (tests compare against it). */
void tk_sgemm_ref(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float *a,
                  int lda, const float *b, int ldb, float beta, float *c, int ldc);
void tk_blas_use_reference(bool on);
/* Benchmarks: while set, every tk_sgemm and tk_sgemm_serial call appends its shape (up to
 * cap; *count counts all calls). NULL stops recording. */
typedef struct {
    bool trans_a, trans_b;
    int m, n, k;
    bool serial;               /* a tk_sgemm_serial call, one of a pool job's tasks */
} tk_gemm_shape;
void tk_blas_record(tk_gemm_shape *shapes, int cap, int *count);

/* ---------------------------------------------------------------- graph IR */

#define TK_MAX_INPUTS 8
#define TK_MAX_PARAMS 6

typedef enum { TK_INIT_ZEROS, TK_INIT_ONES, TK_INIT_KAIMING_UNIFORM, TK_INIT_UNIFORM_FAN_IN } tk_init_kind;

/* A parameter or buffer declared by an op's shape rule. */
typedef struct {
    char *name;                /* full PyTorch name: "<node name>.<local>" */
    tk_shape shape;
    bool trainable;            /* false: a buffer (running_mean, ...) */
    tk_init_kind init;
    int64_t fan_in;            /* for the fan-in based inits */
    int node;
} tk_param_decl;

typedef enum { TK_ACT_NONE, TK_ACT_RELU } tk_act;

typedef struct tk_node tk_node;
typedef struct tk_op_def tk_op_def;

struct tk_node {
    int id;
    const tk_op_def *op;       /* NULL for the input and target nodes */
    int inputs[TK_MAX_INPUTS];
    int n_inputs;
    tk_attr *attrs;            /* owned copies */
    int n_attrs;
    char *name, *where;
    tk_shape shape;            /* output, with the batch dim */
    int params[TK_MAX_PARAMS]; /* indices into graph->params, in the op's declaration order */
    int n_params;
    tk_act act;                /* fused epilogue (fusion pass) */
    int alias_of;              /* fused away: its value is node alias_of's (-1 if not) */
    int pool_epilogue;         /* conv2d: its 2x2 max pooling consumer, which it runs in its
                                  epilogue (fusion pass; -1: none); that pooling runs no
                                  kernel of its own */
    size_t scratch;            /* floats of scratch the kernels need (fwd and bwd) */
    int64_t iattr[8];          /* op-private values computed by the shape rule */
    double fattr[4];
};

/* Batch norm's statistics over every data-parallel rank's rows (sync_batch_norm): the train
 * schedule's batch-norm kernels sum their per-channel partial sums with dist (in its fixed
 * rank order); the first failed sum is kept in st, and the trainer ends the step with it. */
typedef struct {
    const tk_dist *dist;
    tk_status st;
} tk_stat_sync;

/* Kernel arguments, precomputed by the plan: every pointer is fixed for the model's life. */
typedef struct tk_kernel_args {
    const tk_node *node;
    int n;                     /* rows in this batch (<= the planned batch) */
    bool training;
    uint64_t seed, step;       /* for counter-based randomness */
    const float *x[TK_MAX_INPUTS];
    float *y;
    float *dx[TK_MAX_INPUTS];  /* NULL: no gradient needed for that input */
    bool dx_accumulate[TK_MAX_INPUTS]; /* add into dx instead of overwriting */
    float *dy;                 /* gradient of y (the kernel may overwrite it) */
    float *param[TK_MAX_PARAMS];
    float *dparam[TK_MAX_PARAMS];      /* NULL if frozen/buffer; see tk_dparam_overwrite */
    bool fused_weight;         /* backward leaves param 0's gradient to tk_model_update
                                  (fused_update.c) */
    bool dparam_first[TK_MAX_PARAMS];  /* this node writes that gradient first in backward */
    const bool *grad_fresh;    /* the model's: the gradients are stale, to be overwritten */
    float *scratch;
    const struct tk_kernel_args *pool; /* pool_epilogue's arguments (NULL: none) */
    float loss_scale;          /* loss ops: d(total)/d(this loss) */
    int64_t row0;              /* row 0's index in the global batch (data-parallel shards) */
    tk_stat_sync *sync;        /* batch norm: sum the statistics over the ranks (NULL: no) */
    double divisor;            /* class losses' mean: divide by this (the whole batch's weight
                                  when data-parallel) instead of the rows' own; 0: their own */
} tk_kernel_args;

/* Whether a kernel overwrites dparam[k] instead of adding to it: its first writer does on a
 * window's first micro-batch, so tk_model_zero_grad need not pass over the gradients (and a
 * product writes its gradient without reading the old one). Every element must be written. */
static inline bool tk_dparam_overwrite(const tk_kernel_args *a, int k)
{
    return a->dparam_first[k] && *a->grad_fresh;
}

enum {
    TK_OP_LOSS = 1 << 0,             /* inputs: prediction, target; output: () scalar */
    TK_OP_CLASS_TARGET = 1 << 1,     /* loss takes class ids in [0, C) */
    TK_OP_BWD_NEEDS_INPUT = 1 << 2,  /* backward reads x */
    TK_OP_BWD_NEEDS_OUTPUT = 1 << 3, /* backward reads y */
    TK_OP_RANDOM = 1 << 4,           /* uses the RNG (gradcheck fixes seed/step) */
    TK_OP_NOT_DIFF_INPUT1 = 1 << 5,  /* input 1 takes no gradient (targets) */
    TK_OP_RELU_EPILOGUE = 1 << 6,    /* honours node->act == TK_ACT_RELU (fusion pass) */
    TK_OP_FUSED_UPDATE = 1 << 7,     /* honours fused_weight; has grad_bound, weight_grad */
    TK_OP_POOL_EPILOGUE = 1 << 8,    /* honours node->pool_epilogue (fusion pass) */
};

enum { TK_WGRAD_ROWS = 64 };

/* Every element of a weight gradient product is at most scale x max|factor[0]| x
 * max|factor[1]| in magnitude, over the n[k] floats of each factor. */
typedef struct {
    double scale;
    const float *factor[2];
    int64_t n[2];
} tk_grad_bound;
typedef void (*tk_block_fn)(int64_t lo, int64_t hi, const float *block, void *ud);

struct tk_op_def {
    const char *name;
    int min_inputs, max_inputs;
    unsigned flags;
    /* Shape rule: set n->shape from the inputs and attributes, declare parameters with
     * tk_node_param, set n->scratch. Errors name the node (tk_node_fail). */
    tk_status (*infer)(tk_graph *g, tk_node *n, tk_ctx *ctx);
    void (*forward)(const tk_kernel_args *a);
    void (*backward)(const tk_kernel_args *a);
    /* Losses whose mean divides by something other than the row count (class weights,
     * ignored rows): that divisor for these rows, so a pass's loss is the mean over all its
     * rows (sum of per-batch totals / sum of divisors). NULL: the row count. */
    double (*loss_weight)(const tk_kernel_args *a);
    /* TK_OP_FUSED_UPDATE ops. weight_grad: param 0's gradient, product + beta x g, in the
     * same blocks of TK_WGRAD_ROWS rows of param 0 whoever calls it (so the same bits), each
     * on one pool thread and followed there by then(lo, hi, block, ud) over its elements
     * [lo, hi) (then may be NULL). Each block goes to g + lo, or with scratch (and beta 0) to
     * scratch + tk_pool_thread() x the block's size. grad_bound: after a backward that left
     * that gradient out, what bounds each element's magnitude (the product's operands); the
     * planner keeps them until the end of backward. */
    void (*weight_grad)(const tk_kernel_args *a, float beta, float *g, float *scratch,
                        tk_block_fn then, void *ud);
    tk_grad_bound (*grad_bound)(const tk_kernel_args *a);
};

struct tk_graph {
    tk_ctx *ctx;
    tk_node *nodes;
    int n_nodes, cap_nodes;
    tk_param_decl *params;
    int n_params, cap_params;
    int input, target, output, loss;
    tk_task task;              /* set with the loss */
    int batch;
};

const tk_op_def *tk_op_find(const char *name);
tk_node *tk_graph_node(const tk_graph *g, int id);
/* A data node (no op) of the given sample shape; the input and target are two of these. */
int tk_graph_source(tk_graph *g, tk_shape sample, const char *name);
/* Declare a parameter of node n; returns its index in n->params or -1 (message set). */
int tk_node_param(tk_graph *g, tk_node *n, const char *local, tk_shape shape, bool trainable,
                  tk_init_kind init, int64_t fan_in);
/* Fail with "<where>: <name> (<op>): <message>". */
tk_status tk_node_fail(tk_ctx *ctx, const tk_node *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Attribute lookup; `found` (may be NULL) tells whether it was given. */
const tk_attr *tk_node_attr(const tk_node *n, const char *key);
int64_t tk_attr_int(const tk_node *n, const char *key, int64_t dflt);
double tk_attr_float(const tk_node *n, const char *key, double dflt);
const char *tk_attr_str(const tk_node *n, const char *key, const char *dflt);
/* A list attribute arrives as INTS when every value is an integer ({2, 1} in a script) and a
 * lone number as INT or FLOAT: rewrite the node's own copy as FLOATS so kernels read one form.
 * Returns the attribute's index, -1 if absent, -2 on error (message set). */
int tk_attr_float_list(tk_node *n, const char *key, tk_ctx *ctx);

/* Micro-batches per optimizer step (accumulate = 0 or 1: one). */
static inline int tk_accumulation(const tk_train_opts *o)
{
    return o->accumulate > 1 ? o->accumulate : 1;
}

/* Shape helpers for kernels: rows = batch n, cols = per-sample numel. */
static inline int64_t tk_sample_numel(const tk_shape *s)
{
    int64_t k = 1;
    for (int i = 1; i < s->ndim; i++)
        k *= s->d[i];
    return k;
}

/* ---------------------------------------------------------------- optimizers */

typedef struct {
    const char *name;
    const char *options[12];   /* the hyper-parameters it reads (tk_optim_set's names) */
    const char *slot_names[4];
    /* Update params p (n elements) with gradient g and slots at step t (1-based). */
    void (*update)(const tk_optim_hparams *h, double lr, int64_t t, float *p, float *g,
                   float *const *slots, int64_t n);
    /* Number of slots given the settings (e.g. sgd without momentum has none). */
    int (*slots_for)(const tk_optim_hparams *h);
    /* Initial slot value (adagrad's initial_accumulator_value). */
    float (*slot_init)(const tk_optim_hparams *h, int slot);
} tk_optim_def;

const tk_optim_def *tk_optim_def_find(const char *name);

/* Metrics for the model's task over the dataset's labels. */
tk_metrics *tk_metrics_for(const tk_model *m, const tk_dataset *ds);

/* Loops that touch every parameter on every step (optimizer updates, gradient norms) are
 * compiled twice, for x86-64-v3 (AVX2 and FMA) and for baseline x86-64, and chosen at load
 * time: Debian builds for the baseline, and these loops are where the wider vectors and a
 * hardware FMA pay. (GCC only: clang's clones of external functions do not link the same
 * way, and sanitizer builds want one.) */
#if defined(__x86_64__) && !defined(__clang__) && !defined(__SANITIZE_ADDRESS__)
#define TK_HOT __attribute__((target_clones("arch=x86-64-v3", "default")))
#else
#define TK_HOT
#endif

/* a * b + c rounded once, as PyTorch's vectorised add(x, alpha=a) and addcmul do with FMA.
 * In a TK_HOT loop's x86-64-v3 clone this is one vfmadd; elsewhere it is libm's fmaf, which
 * rounds the same, so every build and CPU gives the same bits. */
static inline float tk_fma(float a, float b, float c)
{
    return __builtin_fmaf(a, b, c);
}

/* ---------------------------------------------------------------- compiled model */

tk_graph *tk_graph_clone(const tk_graph *g);

/* A stored tensor: a parameter or buffer of the graph, or an optimizer slot. */
typedef struct {
    char *name;
    tk_tensor_kind kind;
    tk_shape shape;
    float *data;
    float *grad;               /* trainable parameters only */
    int group;                 /* -1: frozen parameter or buffer */
    int64_t offset;            /* into the flat buffer */
    int fused_node;            /* >= 0 while fusing: the node that makes its gradient in
                                  tk_model_update (fused_update.c) */
} tk_tensor_rec;

typedef struct {
    int64_t offset, size;      /* a contiguous slice of the trainable region */
    int tensors;
    tk_optim_hparams h;
    char *patterns;
} tk_group_rec;

/* One compiled schedule: kernel arguments per node (fixed pointers) and the run order. */
typedef struct {
    tk_kernel_args *args;      /* indexed by node id */
    int *fwd, n_fwd;           /* node ids in forward order (the loss last) */
    int *bwd, n_bwd;           /* node ids in backward order */
    float *output, *loss;
    size_t arena_floats;
    size_t *offsets;           /* during compilation: arena offset per (buffer kind, node) */
} tk_schedule;

struct tk_model {
    tk_graph *g;               /* owned clone, after fusion */
    uint64_t seed;
    float *flat, *grad, *slot[4];
    int64_t n_flat, n_train;   /* trainable parameters come first in flat */
    int n_slots;
    tk_tensor_rec *tensors;    /* params and buffers in declaration order, then slots */
    int n_tensors, n_state;    /* n_state: params + buffers */
    int *param_tensor;         /* graph param index -> tensor index */
    tk_group_rec *groups;
    int n_groups;
    const tk_optim_def *opt;
    int64_t optim_steps;
    bool grad_fresh;           /* set by tk_model_zero_grad, cleared by a backward */
    float *arena, *input, *target;
    tk_schedule train, eval;
    const tk_schedule *last;   /* which schedule produced the current output */
    char **meta;               /* tk_model_set_meta: key, value, key, value ... */
    char *notes;               /* tk_model_notes */
    int n_meta;
    int64_t *plain;            /* fusing: [lo, hi) pairs of the trainable region left to
                                  the optimizer's own pass and the norm */
    int n_plain;
    bool fusing;               /* some tensor is fused (tk_model_fuse_update) */
    bool fused_stored;         /* this step's fused gradients went to the buffer after all */
    float *block_scratch;      /* fusing without keeping gradients: a block per thread */
    int64_t row0;              /* this rank's first row of the global batch (dist.c) */
    tk_stat_sync sync;         /* the train schedule's batch norms' (dist.c) */
};

/* The update fused with the weight gradients (fused_update.c). With on, every trained weight
 * whose one user is a TK_OP_FUSED_UPDATE op is left out of backward; tk_model_update makes
 * its gradient block by block and runs the optimizer over each block at once, while it is
 * still in cache, instead of in a pass of its own over every weight. The values are the plain
 * path's, bit for bit. With keep_grads the fused gradients are stored as well (the REPL shows
 * them); without, each block lives in a per-thread scratch block only. The caller must want
 * an update after every backward (no accumulation, clipping or data-parallel sum:
 * tk_train_fuses) and call tk_model_check_fused between the two. Returns how many tensors are
 * fused; off restores the plain path. The same arguments again change nothing. */
int tk_model_fuse_update(tk_model *m, bool on, bool keep_grads);
bool tk_train_fuses(const tk_train_opts *o);
/* Before the norm and the update: when some fused gradient cannot be shown finite from its
 * product's operands, make every fused gradient now, so that this step's norm, non-finite
 * check and update are the plain path's. Otherwise the norm covers the other gradients only
 * (the fused ones are finite). */
void tk_model_check_fused(tk_model *m);
/* For exec.c: the fused tensors' gradients and updates, after the optimizer's other work. */
void tk_model_fused_steps(tk_model *m, const double *lrs);
/* After backward: the largest bound on an element of a fused weight's gradient (inf if an
 * operand holds an inf or NaN), every operand's maximum taken in one pool job. */
double tk_model_fused_bound(const tk_model *m);

/* ---------------------------------------------------------------- checkpoints (ckpt.c) */

/* tk_st_save with a dtype per tensor: i64[i] stores tensor i as I64 (its values rounded to
 * integers), else F32. i64 == NULL: all F32. */
tk_status tk_st_save_typed(const char *path, const tk_st_tensor *tensors, const bool *i64,
                           int n, const char *const *meta_keys,
                           const char *const *meta_values, int n_meta, tk_ctx *ctx);

/* The trainer's state that a full checkpoint carries besides tensors. */
typedef struct {
    int64_t ranks;             /* data-parallel ranks when saved (0: older files) */
    int64_t stat_ranks;        /* the ranks one batch-norm statistic covered: 1 one process or
                                  sync_batch_norm, else ranks (older files: ranks) */
    int64_t epoch;             /* completed epochs */
    int64_t cursor;            /* micro-batches done of epoch + 1 (0: at an epoch boundary) */
    int64_t step;              /* optimizer updates */
    int64_t batches_seen;      /* micro-batches ever (keys dropout) */
    int64_t bad_epochs, best_epoch, skips, rows;
    double best, stop_best;    /* best values of save.best's and early_stop's monitors */
    double loss_sum;           /* the partial epoch's loss sum: batch losses times weights */
    double loss_weight;        /* their tk_model_loss_weight sum (the mean's divisor) */
    double *sched;             /* tk_sched state, n_sched values (caller's buffer) */
    int n_sched;
    double *metrics;           /* the partial epoch's tk_metrics state (caller's buffer) */
    int64_t n_metrics;
} tk_train_state;

/* Write the model's parameters and buffers (st == NULL: weights only, loadable by PyTorch)
 * or everything (with slots and st) to `path` atomically. `config` goes into the metadata. */
tk_status tk_ckpt_save(const tk_model *m, const char *path, const tk_train_state *st,
                       const char *config, tk_ctx *ctx);
/* Verify a full checkpoint (checksum, structure, optimizer, groups) and only then load it
 * into m and st. Errors name the file and what failed. */
tk_status tk_ckpt_load(tk_model *m, const char *path, tk_train_state *st, tk_ctx *ctx);

/* ---------------------------------------------------------------- run logs (runlog.c) */

typedef struct {
    const tk_train_opts *o;
    int n_groups;
    FILE *train, *valid, *csv;
    tk_events *events;
} tk_runlog;

/* One finished pass, as the logs record it. */
typedef struct {
    const char *split;
    int64_t epoch, step;
    double loss;
    const tk_metrics *metrics;
    const double *lrs;
    double seconds, samples_per_sec, wait_fraction, wall;
} tk_pass_log;

/* Open the logs of o->run_dir (nothing if NULL); resume_epoch >= 0 first cuts them back to
 * that epoch. */
tk_status tk_runlog_open(tk_runlog *l, const tk_train_opts *o, int n_groups,
                         int64_t resume_epoch, tk_ctx *ctx);
/* TK_ERR_RUNTIME (naming the file and errno) when a log line could not be written: a disk
 * that fills must not let a run end as a success with its record cut short. */
tk_status tk_runlog_pass(tk_runlog *l, const tk_pass_log *p, tk_ctx *ctx);
void tk_runlog_step(tk_runlog *l, int64_t step, double loss, double wall);
void tk_runlog_close(tk_runlog *l);

/* ---------------------------------------------------------------- data parallel (dist.c) */

bool tk_dist_on(const tk_dist *d);             /* more than one rank */
/* This rank's rows [lo, hi) of an n-row batch. */
void tk_dist_shard(const tk_dist *d, int n, int *lo, int *hi);
/* Move this rank's rows of the n-row batch in the input/target buffers to the front and set
 * m->row0 (and a class loss's divisor: the whole batch's); returns how many (may be 0 for a
 * short last batch). */
int tk_dist_take_rows(tk_model *m, const tk_dist *d, int n);
/* The weight of a shard's loss in its batch's loss (rows / n for a mean, 1 for a sum or a
 * class loss's mean, whose divisor is already the batch's). */
double tk_dist_loss_share(const tk_model *m, int rows, int n);
/* Refuse what sharding would change: more ranks than rows, a rank without rows in a
 * synchronised batch norm's sums. */
tk_status tk_dist_check(const tk_model *m, const tk_train_opts *o, tk_ctx *ctx);
/* The ranks whose rows one batch-norm statistic covers (1: the whole batch). */
int64_t tk_dist_stat_ranks(const tk_train_opts *o);
/* Refuse resuming a checkpoint written on `was` ranks with statistics over `stats_was` where
 * batch-norm statistics would change meaning. */
tk_status tk_dist_resume_check(const tk_model *m, const tk_train_opts *o, int64_t was,
                               int64_t stats_was, const char *path, tk_ctx *ctx);
/* Start (on) or end a run's use of the model: sync_batch_norm's hook in the train schedule,
 * no loss divisor left from a shard. */
void tk_dist_attach(tk_model *m, const tk_train_opts *o, bool on);
/* After a train step: the failure of a synchronised batch norm's reduction, if any. */
tk_status tk_dist_sync_status(const tk_model *m, tk_ctx *ctx);
/* Sum the gradients over the ranks, then copy rank 0's buffers to every rank. */
tk_status tk_dist_reduce_grad(tk_model *m, const tk_dist *d, tk_ctx *ctx);
tk_status tk_dist_reduce_metrics(tk_metrics *mt, const tk_dist *d, tk_ctx *ctx);
tk_status tk_dist_sum_doubles(const tk_dist *d, double *v, size_t n, const char *what,
                              tk_ctx *ctx);
/* Is `flag` set on any rank? (*st: the reduction's status) */
bool tk_dist_any(const tk_dist *d, bool flag, tk_ctx *ctx, tk_status *st);

/* ---------------------------------------------------------------- context */

struct tk_ctx {
    char msg[4096];
};

#endif
