/* tk.h - the whole public API of the tkrun runtime.
 *
 * The runtime is a C library with no Lua in it: it builds a graph of ops, compiles it into
 * a static plan (shapes, autodiff, fusion, memory plan, kernel schedule), loads data, and
 * runs the train/eval loop. It never prints, exits or aborts: every fallible call returns a
 * tk_status and leaves a one-paragraph message in the tk_ctx (tk_errmsg).
 *
 * Not here: the script language, the CLI, progress bars (all in lang/).
 */
#ifndef TK_H
#define TK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define TK_VERSION "0.1.0"

/* ---------------------------------------------------------------- status, context */

/* Values double as the CLI's exit codes. */
typedef enum {
    TK_OK = 0,
    TK_ERR_RUNTIME = 1,     /* failure while running (I/O, non-finite loss, ...) */
    TK_ERR_INPUT = 2,       /* bad script, shape, data file or checkpoint */
    TK_ERR_INTERRUPTED = 130,
} tk_status;

typedef struct tk_ctx tk_ctx;

tk_ctx *tk_ctx_new(void);
void tk_ctx_free(tk_ctx *ctx);
/* The message of the last failure ("" if none). */
const char *tk_errmsg(const tk_ctx *ctx);
/* Set the message and return `status` (so callers can `return tk_fail(...)`). */
tk_status tk_fail(tk_ctx *ctx, tk_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void tk_clear_error(tk_ctx *ctx);

/* Every allocation of the runtime goes through these hooks (tests count them). */
typedef struct {
    void *(*alloc)(size_t size, void *ud);
    void (*release)(void *ptr, void *ud);
    void *ud;
} tk_allocator;
void tk_set_allocator(const tk_allocator *a); /* NULL restores malloc/free */

/* OpenBLAS's thread count; the runtime starts no other compute threads. n <= 0: all cores. */
void tk_set_threads(int n);
int tk_threads(void);
const char *tk_blas_info(void); /* e.g. "OpenBLAS 0.3.21 ... (2 threads)" */

/* ---------------------------------------------------------------- shapes */

#define TK_MAX_DIMS 6
typedef struct {
    int ndim;
    int64_t d[TK_MAX_DIMS];
} tk_shape;

int64_t tk_shape_numel(const tk_shape *s);
/* "(64, 1, 28, 28)" into buf; returns buf. */
char *tk_shape_str(const tk_shape *s, char *buf, size_t cap);

/* ---------------------------------------------------------------- RNG */

/* Counter-based (Philox-4x32-10): every draw is a pure function of (seed, stream, a, b,
 * counter), so resume reproduces any random number without replaying earlier ones. */
enum { TK_STREAM_INIT = 1, TK_STREAM_SHUFFLE, TK_STREAM_SPLIT, TK_STREAM_DROPOUT, TK_STREAM_AUGMENT,
       TK_STREAM_WINDOW };
typedef struct {
    uint64_t seed;
    uint32_t stream, a, b;
    uint64_t counter;
} tk_rng;
tk_rng tk_rng_make(uint64_t seed, uint32_t stream, uint32_t a, uint32_t b);
uint32_t tk_rng_u32(tk_rng *r);
float tk_rng_uniform(tk_rng *r);               /* [0, 1) */
float tk_rng_normal(tk_rng *r);                /* standard normal */
uint64_t tk_rng_below(tk_rng *r, uint64_t n);  /* uniform in [0, n), unbiased */
/* The uniform at a given counter, without state (dropout masks, recomputed in backward). */
float tk_rng_uniform_at(uint64_t seed, uint32_t stream, uint32_t a, uint32_t b, uint64_t counter);
/* The uniforms at counters [4 * block, 4 * block + 4), from one generator block (what
 * tk_rng_uniform_at gives at each, at a quarter of the cost). */
void tk_rng_uniform4_at(uint64_t seed, uint32_t stream, uint32_t a, uint32_t b, uint64_t block,
                        float u[4]);

/* ---------------------------------------------------------------- data */

/* A dataset is samples in memory: features (float32 or uint8) of one sample shape, and labels
 * (class ids stored as floats, or regression targets). */
typedef struct tk_dataset tk_dataset;

typedef enum { TK_LABEL_CLASS, TK_LABEL_REGRESSION } tk_label_kind;

/* A column reference: by 1-based index (name == NULL) or by header name. */
typedef struct {
    const char *name;
    int index;
} tk_colref;

typedef struct {
    const char *path;          /* plain or .gz */
    char delimiter;            /* default ',' */
    int skip_rows;             /* rows dropped before the header/data */
    bool header;               /* first remaining row names the columns */
    const tk_colref *label;    /* label columns; n_label == 0: the last column */
    int n_label;
    const tk_colref *features; /* n_features == 0: every non-label column */
    int n_features;
    const char *label_path;    /* labels from another CSV (same row count); then `label` */
    char label_delimiter;      /*  and the fields below select its columns */
    int label_skip_rows;
    bool label_header;
    bool regression;           /* labels are float targets, not class ids */
    /* Prediction input: rows laid out like the CSV `like` was read from (the same column
     * count; features picked by the options above, label cells skipped), or holding only
     * its feature columns, in order. No labels are read. */
    const tk_dataset *like;
    /* Streamed: the rows stay in the (plain, uncompressed) file. One pass at load checks
     * every row and records where each shard of shard_size rows starts; loaders then read
     * windows of shuffle_buffer samples (whole shards) back. The split the script carves
     * from it is fixed now (stream_split fractions, seed): one membership draw per row. */
    bool stream;
    int64_t shard_size;        /* rows per shard; 0: 1024 */
    int64_t shuffle_buffer;    /* samples per shuffle window; 0: 16384 */
    const double *stream_split;
    int n_stream_split;
    uint64_t stream_split_seed;
} tk_csv_opts;

typedef struct {
    const char *images;        /* IDX file, plain or .gz: (N, H, W) or (N, D) uint8 */
    const char *labels;        /* IDX1 uint8 labels */
} tk_idx_opts;

tk_status tk_dataset_csv(const tk_csv_opts *o, tk_dataset **out, tk_ctx *ctx);
tk_status tk_dataset_idx(const tk_idx_opts *o, tk_dataset **out, tk_ctx *ctx);

typedef struct {
    const char *root;          /* one folder per class (sorted names); with `list`: its base */
    int channels;              /* 1 (grey) or 3 (RGB) */
    int height, width;         /* resize to this; 0: every image must have the first's size */
    const char *list;          /* or a CSV file: one image path and its label per row */
    tk_colref path_column, label; /* its columns (a name needs header) */
    bool header;               /* its first row names the columns */
    /* Streamed (as tk_csv_opts.stream): one pass at load decodes and checks every image and
     * keeps only paths and labels; loaders decode windows of shuffle_buffer images (shards
     * of shard_size) on their prefetch thread. */
    bool stream;
    int64_t shard_size, shuffle_buffer; /* 0: 64, 1024 */
    const double *stream_split;
    int n_stream_split;
    uint64_t stream_split_seed;
} tk_images_opts;
/* PNG/JPEG image folders (torchvision ImageFolder layout) or a list file decoded into a uint8
 * dataset of (channels, height, width) samples; the class names are the folder names (list:
 * the label strings, sorted, unless they are all integer ids). */
tk_status tk_dataset_images(const tk_images_opts *o, tk_dataset **out, tk_ctx *ctx);
typedef struct {
    const char *x;             /* features (N, ...): a .npy file, or a member of `npz` */
    const char *y;             /* labels (N) or (N, T) the same way; NULL: none */
    const char *npz;           /* an .npz archive holding both, or NULL */
    bool regression;           /* labels are float targets, not class ids */
} tk_npy_opts;
/* NumPy arrays (bool, int8..int64, uint8..uint64, float32/64; C order, little-endian):
 * uint8 features stay bytes, others become float32. */
tk_status tk_dataset_npy(const tk_npy_opts *o, tk_dataset **out, tk_ctx *ctx);
/* A .npy file's array as float32 (any supported dtype converted); the caller frees *data with
 * free(). */
tk_status tk_npy_read(const char *path, tk_shape *shape, float **data, tk_ctx *ctx);
/* Decode a PNG or JPEG file (by content, not extension) into channels x height x width floats in [0, 255]: grey/RGB conversion to `channels` (1 or 3) and a bilinear resize to height x width (PIL's default) when the size differs. */
tk_status tk_image_read(const char *path, int channels, int height, int width, float *out, tk_ctx *ctx);
void tk_dataset_free(tk_dataset *ds);

int64_t tk_dataset_len(const tk_dataset *ds);
tk_shape tk_dataset_sample_shape(const tk_dataset *ds); /* without the batch dim */
int tk_dataset_label_width(const tk_dataset *ds);       /* 1 for class ids */
tk_label_kind tk_dataset_label_kind(const tk_dataset *ds);
/* Number of classes: names count for string labels, else max id + 1 (0 if regression). */
int tk_dataset_num_classes(const tk_dataset *ds);
const char *tk_dataset_class_name(const tk_dataset *ds, int id); /* NULL if numeric */
/* "iris.csv row 17" / "train-images-idx3-ubyte.gz record 5" for sample i. */
char *tk_dataset_where(const tk_dataset *ds, int64_t i, char *buf, size_t cap);
/* The same for sample i's label: "train-labels-idx1-ubyte.gz record 5" when the labels come
 * from a file of their own. */
char *tk_dataset_label_where(const tk_dataset *ds, int64_t i, char *buf, size_t cap);
const char *tk_dataset_source(const tk_dataset *ds);
/* Label value k of sample i (a class id as a float, or a target). */
float tk_dataset_label(const tk_dataset *ds, int64_t i, int k);

/* A view is a subset of a dataset's samples plus the feature transform
 * x' = x * mul[f] + add[f] (f over the sample's features, or one value for all). */
typedef struct tk_view tk_view;

tk_view *tk_view_all(tk_dataset *ds);
/* Carve seeded, disjoint parts out of `from`: parts[k] gets round(fractions[k] * n) samples,
 * `from` keeps the rest. */
tk_status tk_view_split(tk_view *from, const double *fractions, int n_parts, uint64_t seed,
                        tk_view **parts, tk_ctx *ctx);
void tk_view_free(tk_view *v);
int64_t tk_view_len(const tk_view *v);
tk_dataset *tk_view_dataset(const tk_view *v);
int64_t tk_view_index(const tk_view *v, int64_t i); /* dataset index of view sample i */
/* True for a view of a streamed dataset (tk_csv_opts.stream): it has no sample indices. */
bool tk_view_streamed(const tk_view *v);
/* The first sample of v in file order whose class label `match`es: true, with the label and
 * "file row N" in where (streamed views answer from the counts their load pass took). */
bool tk_view_find_label(const tk_view *v, bool (*match)(float label, void *ud), void *ud,
                        float *label, char *where, size_t cap);
/* Samples of v per class id 0..k-1 (ids outside that are not counted). */
void tk_view_class_counts(const tk_view *v, int64_t *count, int k);
/* The view's transform: returns mul and sets *add (one value per feature of a sample). */
const float *tk_view_affine(const tk_view *v, const float **add);

typedef enum { TK_NORM_NONE, TK_NORM_FIXED, TK_NORM_STANDARD, TK_NORM_MINMAX } tk_norm_kind;
typedef struct {
    double scale;              /* applied first; 0 means 1 */
    tk_norm_kind kind;
    const double *mean, *std;  /* TK_NORM_FIXED: n_stats values (1 = all features) */
    int n_stats;
} tk_norm_opts;
/* Set v's transform. STANDARD/MINMAX take statistics from `stats_from` (the train split),
 * per feature. */
tk_status tk_view_normalize(tk_view *v, const tk_norm_opts *o, const tk_view *stats_from,
                            tk_ctx *ctx);

/* Per-sample augmentation of a view of (C, H, W) samples, applied by its loader as it gathers
 * each sample (on the raw values, before the view's transform). Every draw comes from the RNG
 * keyed by (loader seed, TK_STREAM_AUGMENT, epoch, dataset index): resume redraws the same.
 * Meant for the train view only; views without it are never augmented. */
typedef enum { TK_AUG_RANDOM_CROP, TK_AUG_RANDOM_FLIP, TK_AUG_RANDOM_AFFINE } tk_aug_kind;
typedef struct {
    tk_aug_kind kind;
    int64_t size[2];           /* crop: (H, W), which must be the sample's; {0, 0}: it */
    int64_t pad[4];            /* crop: left, top, right, bottom */
    bool vertical;             /* flip: top-bottom instead of left-right */
    double p;                  /* flip: probability */
    double translate[2];       /* affine: largest shift as a fraction of width, of height */
    double fill;               /* crop/affine: raw value of the pixels brought in */
} tk_augment;
#define TK_MAX_AUGMENT 8
tk_status tk_view_augment(tk_view *v, const tk_augment *ops, int n, tk_ctx *ctx);

/* Batches over a view. Shuffle order is a function of (seed, epoch). A prefetch thread
 * gathers the next batch while the caller computes. A streamed view's order: the shards
 * shuffled per epoch, cut into windows of shuffle_buffer samples, each window shuffled
 * whole; the prefetch thread and a helper read the next window ahead. */
typedef struct tk_loader tk_loader;
typedef struct {
    int batch_size;
    bool shuffle, drop_last;
    uint64_t seed;
    bool prefetch;
} tk_loader_opts;
tk_status tk_loader_new(tk_view *v, const tk_loader_opts *o, tk_loader **out, tk_ctx *ctx);
void tk_loader_free(tk_loader *l);
int64_t tk_loader_batches(const tk_loader *l); /* per epoch */
/* Start an epoch at batch `cursor` (0 = from the beginning). */
void tk_loader_begin(tk_loader *l, int64_t epoch, int64_t cursor);
/* Next batch into x (batch_size * features floats) and y (batch_size * label_width); returns
 * rows (0 at the end of the epoch). `rows_out` (may be NULL) receives dataset indices.
 * -1: a streamed file could not be read (tk_loader_fail says why). */
int tk_loader_next(tk_loader *l, float *x, float *y, int64_t *rows_out);
/* After next returned -1: the reader's message into ctx; returns TK_ERR_RUNTIME. */
tk_status tk_loader_fail(const tk_loader *l, tk_ctx *ctx);

/* ---------------------------------------------------------------- graph IR */

typedef enum { TK_ATTR_INT, TK_ATTR_FLOAT, TK_ATTR_STR, TK_ATTR_INTS, TK_ATTR_FLOATS } tk_attr_kind;
typedef struct {
    const char *key;
    tk_attr_kind kind;
    int64_t i;
    double f;
    const char *s;
    const int64_t *ints;
    const double *floats;
    int n;                     /* length of ints/floats */
} tk_attr;

typedef struct tk_graph tk_graph;
tk_graph *tk_graph_new(tk_ctx *ctx);
void tk_graph_free(tk_graph *g);

/* The sample input (shape without the batch dim); returns its node id. */
int tk_graph_input(tk_graph *g, tk_shape sample_shape);
/* The label input (shape without the batch dim: () for class ids, (T) for targets). */
int tk_graph_target(tk_graph *g, tk_shape sample_shape);
/* Add an op from the registry. `name` prefixes its parameters ("1" -> "1.weight"); `where`
 * ("model.lua:12") goes into every error about the node. Returns the node id, or -1 with the
 * message set (unknown op, bad attribute, shape error). */
int tk_graph_op(tk_graph *g, const char *op, const int *inputs, int n_inputs,
                const tk_attr *attrs, int n_attrs, const char *name, const char *where);
/* What the loss makes of the outputs, decided once from the loss (the stdlib's loss
 * constructors declare it) and read everywhere else through tk_model_task: class ids scored
 * by argmax, numbers scored by their error, or independent yes/no labels (a logit > 0 says
 * yes). Class ids are what the labels hold for a classification only. */
typedef enum { TK_TASK_CLASSIFICATION, TK_TASK_REGRESSION, TK_TASK_MULTILABEL } tk_task;
/* "classification", "regression", "multilabel"; false for anything else. */
bool tk_task_parse(const char *name, tk_task *out);
const char *tk_task_name(tk_task t);

/* Mark the model output (the prediction), and the loss node with the task it trains. */
void tk_graph_set_output(tk_graph *g, int node);
void tk_graph_set_loss(tk_graph *g, int node, tk_task task);
void tk_graph_set_batch(tk_graph *g, int batch);      /* before any node is added */

/* Names of all registered ops. */
int tk_op_count(void);
const char *tk_op_name(int i);

/* ---------------------------------------------------------------- optimizer spec */

typedef struct {
    double lr, weight_decay;
    double momentum, dampening;            /* sgd, rmsprop (momentum) */
    bool nesterov;
    double beta1, beta2, eps;              /* adam(w); eps also rmsprop/adagrad */
    bool amsgrad;
    double alpha;                          /* rmsprop */
    bool centered;
    double lr_decay, initial_accumulator_value; /* adagrad */
} tk_optim_hparams;

typedef struct {
    const char *const *patterns;           /* globs over parameter names */
    int n_patterns;
    tk_optim_hparams h;                    /* the group's full settings (defaults merged) */
    const char *where;                     /* script line, for errors */
} tk_group_spec;

typedef struct {
    const char *type;                      /* a registered optimizer: "sgd", "adam", ... */
    tk_optim_hparams h;                    /* for unmatched parameters (group 0) */
    const tk_group_spec *groups;           /* first match wins */
    int n_groups;
    const char *const *freeze;
    int n_freeze;
    const char *where;
} tk_optim_spec;

/* The options optimizer `type` reads, NULL-terminated, in the order its summary lists them;
 * NULL if no optimizer has that name. lang/ passes exactly these, resolved by the stdlib. */
const char *const *tk_optim_options(const char *type);
/* Set option `key` of h from n values (one; two for betas). */
tk_status tk_optim_set(tk_optim_hparams *h, const char *key, const double *v, int n,
                       tk_ctx *ctx);
/* "momentum=0.9 dampening=0 nesterov=false": h's options of `type` but lr and weight_decay. */
void tk_optim_describe(const char *type, const tk_optim_hparams *h, char *buf, size_t cap);

/* ---------------------------------------------------------------- compiled model */

typedef struct tk_model tk_model;

typedef struct {
    uint64_t seed;             /* parameter initialisation, dropout */
    bool fuse;                 /* fusion pass on (default true; tests compare both) */
    bool train;                /* build the backward schedule and optimizer slots */
} tk_compile_opts;

/* Run the compile passes. The graph must have an output, a loss and a target. On success
 * the model owns a copy of everything it needs; the graph may be freed. */
tk_status tk_compile(const tk_graph *g, const tk_optim_spec *opt, const tk_compile_opts *o,
                     tk_model **out, tk_ctx *ctx);
void tk_model_free(tk_model *m);

/* Buffers the caller fills before a step: batch rows of input and target. */
float *tk_model_input(tk_model *m);
float *tk_model_target(tk_model *m);
int tk_model_batch(const tk_model *m);
const float *tk_model_output(const tk_model *m); /* prediction of the last step */

/* Forward + loss + backward on the first n rows; gradients accumulate into the flat gradient
 * buffer (the first backward after tk_model_zero_grad overwrites it), scaled by loss_scale
 * (1/k for accumulation over k batches). Allocates nothing. */
tk_status tk_model_forward_backward(tk_model *m, int n, float loss_scale, uint64_t step,
                                    float *loss, tk_ctx *ctx);
/* Forward + loss in eval mode (dropout off, running statistics). */
tk_status tk_model_eval(tk_model *m, int n, float *loss, tk_ctx *ctx);
void tk_model_zero_grad(tk_model *m);
/* The weight of the first n rows now in the target buffer in the loss's mean: n, or for a
 * mean with class weights / ignore_index their summed weights (PyTorch's divisor). A pass's
 * loss is sum(batch loss * weight) / sum(weight), the loss of the whole pass at once. */
double tk_model_loss_weight(const tk_model *m, int n);
/* Global L2 norm of the trained gradients. */
double tk_model_grad_norm(const tk_model *m);
void tk_model_scale_grad(tk_model *m, float s);
void tk_model_clip_grad_value(tk_model *m, float v);
/* One optimizer update of every group at its lr (lrs[g] for group g). */
void tk_model_update(tk_model *m, const double *lrs);

/* Parameters and buffers by PyTorch name (state_dict order). */
typedef enum { TK_TENSOR_PARAM, TK_TENSOR_BUFFER, TK_TENSOR_SLOT } tk_tensor_kind;
typedef struct {
    const char *name;          /* "1.weight"; slots: "optim.1.weight.exp_avg" */
    tk_tensor_kind kind;
    tk_shape shape;
    float *data;
    int group;                 /* -1 frozen or buffer */
} tk_tensor_info;
int tk_model_tensor_count(const tk_model *m);
tk_tensor_info tk_model_tensor(const tk_model *m, int i);
int tk_model_find_tensor(const tk_model *m, const char *name); /* -1 if none */

/* The layer table. */
typedef struct {
    const char *name, *type, *where;
    tk_shape shape;
    int64_t params;
} tk_layer_info;
int tk_model_layer_count(const tk_model *m);
tk_layer_info tk_model_layer(const tk_model *m, int i);
int64_t tk_model_param_count(const tk_model *m, bool trainable_only);
size_t tk_model_arena_bytes(const tk_model *m);

/* The parameter-group table. */
typedef struct {
    int tensors;
    int64_t elements;
    tk_optim_hparams h;
    const char *patterns;      /* "*.bias, *bn*" or "(default)" */
} tk_group_info;
int tk_model_group_count(const tk_model *m);
tk_group_info tk_model_group(const tk_model *m, int g);
const char *tk_model_optim_name(const tk_model *m);
/* What the user should read about how the spec was applied, one "note: ..." line each ("" if
 * nothing): a parameter that several optimizer groups match goes to the first of them. */
const char *tk_model_notes(const tk_model *m);

/* ---------------------------------------------------------------- metrics */

/* Accumulates predictions over a pass: for classes a confusion matrix and a histogram of the
 * true class's rank (top-K for any K), for regression per-output error sums, for labels the
 * labels and samples right. */
typedef struct tk_metrics tk_metrics;
/* Classification: n_classes > 0 (pred is n x n_classes logits, target n class ids); the
 * others: n_classes 0, pred and target n x label_width. NULL if they disagree. */
tk_metrics *tk_metrics_new(tk_task task, int n_classes, int label_width);
void tk_metrics_reset(tk_metrics *mt);
void tk_metrics_add(tk_metrics *mt, const float *pred, int out_width, const float *target,
                    int n);
void tk_metrics_free(tk_metrics *mt);
int64_t tk_metrics_count(const tk_metrics *mt);
/* Classification: samples right; multi-label: labels right; NAN for regression. */
double tk_metrics_accuracy(const tk_metrics *mt);
/* Is `name` a metric of this task (classification: accuracy, top<K>, precision, recall, f1,
 * confusion; regression: mae, rmse, r2; multi-label: accuracy, exact_match)? Sets a
 * message naming the valid ones if not. */
tk_status tk_metric_check(const char *name, tk_task task, tk_ctx *ctx);
/* The i-th metric every report of the task shows (accuracy; mae, rmse, r2), NULL past them. */
const char *tk_metric_always(tk_task task, int i);
/* The value of a scalar metric (precision/recall/f1 are macro averages over the classes
 * that occur in targets or predictions, as sklearn's average='macro'; r2 is the uniform
 * average over outputs). NAN if it does not apply or nothing was counted. */
double tk_metrics_value(const tk_metrics *mt, const char *name);
/* Per-class scores (support = true count) and the confusion matrix (rows: true class). */
void tk_metrics_class(const tk_metrics *mt, int c, double *precision, double *recall,
                      double *f1, int64_t *support);
int64_t tk_metrics_confusion(const tk_metrics *mt, int true_class, int predicted);
/* The per-class table and the confusion matrix as text; class names from `ds` if it has
 * string labels. */
void tk_metrics_write_report(const tk_metrics *mt, const tk_dataset *ds, FILE *f);
/* Everything accumulated so far as doubles (counts are exact below 2^53): a checkpoint taken
 * mid-epoch carries the epoch's metrics this way. */
int64_t tk_metrics_state_size(const tk_metrics *mt);
void tk_metrics_get_state(const tk_metrics *mt, double *out);
void tk_metrics_set_state(tk_metrics *mt, const double *in);

/* ---------------------------------------------------------------- evaluation, prediction */

/* One eval-mode pass (dropout off, running statistics) over a view, in order. */
typedef struct {
    int64_t samples;
    double loss;               /* the loss's mean over the pass (its own weighting) */
    tk_metrics *metrics;       /* everything accumulated (report, per-class scores) */
    double *values;            /* the requested metrics' values, in order (NAN: not defined) */
    int n_values;
    double seconds;
} tk_eval_result;
/* batch_size <= 0 or above the model's: the model's batch. Metric names are checked against
 * the task (tk_metric_check) before any batch. Free the result with tk_eval_result_free. */
tk_status tk_evaluate(tk_model *m, tk_view *v, int batch_size, const char *const *metrics,
                      int n_metrics, tk_eval_result *out, tk_ctx *ctx);
void tk_eval_result_free(tk_eval_result *r);
/* Values per sample the model predicts (logits per class or label, or regression targets). */
int tk_model_output_width(const tk_model *m);
tk_task tk_model_task(const tk_model *m);
/* The sample shape the model takes (without the batch dim). */
tk_shape tk_model_input_shape(const tk_model *m);
/* Eval-mode forward of n samples x (already transformed, see tk_view_transform) into
 * out (n x tk_model_output_width floats), in batches of the model's batch. */
tk_status tk_model_predict(tk_model *m, const float *x, int64_t n, float *out, tk_ctx *ctx);
/* Apply v's feature transform (scale, normalisation: x * mul + add per feature) to n raw
 * samples of v's feature count, in place: inputs read from other files become what the
 * training batches were. */
void tk_view_transform(const tk_view *v, float *x, int64_t n);

/* ---------------------------------------------------------------- LR schedules */

/* A schedule by name (one of runtime/sched/registry.c, the names of the stdlib's tk.sched.*)
 * with its options as tk_attrs: numbers (INT or FLOAT), strings, lists of integers
 * (milestones). Every option is given, the stdlib having resolved the defaults (C states
 * none: a missing one is an internal error naming it), except the few whose absence means
 * something (T_max, total_iters: the run after the warmup). Besides its own options every
 * schedule takes warmup_steps (always optimizer steps) and warmup_start_factor. */
typedef struct {
    const char *name;
    const char *where;         /* the script line, prefixed to messages (NULL: none) */
    const tk_attr *attrs;
    int n_attrs;
    int64_t unit;              /* optimizer steps per unit of the durations each schedule
                                * declares (step_size, T_max, milestones, ...): steps per
                                * epoch, or 1 */
    int64_t total_steps;       /* the whole run: the default T_max, onecycle's cycle */
} tk_sched_spec;

/* Whether `name` is a registered schedule. */
bool tk_sched_known(const char *name);
/* The value the schedule observes after each evaluation (reduce_on_plateau's monitor, and
 * *maximize from its mode), or NULL when it observes nothing (or spec is NULL). */
const char *tk_sched_monitor(const tk_sched_spec *spec, bool *maximize);

typedef struct tk_sched tk_sched;
/* base_lrs: each group's own lr; spec NULL: a constant lr. Errors name the schedule and option
 * (e.g. step_size 0, onecycle without total_steps). */
tk_status tk_sched_new(const tk_sched_spec *spec, int n_groups, const double *base_lrs,
                       tk_sched **out, tk_ctx *ctx);
void tk_sched_free(tk_sched *s);
/* The lr of every group for the update after `step` updates (step 0: the first update),
 * equal to torch.optim.lr_scheduler after `step` calls of scheduler.step() (with warmup:
 * SequentialLR of LinearLR(warmup_start_factor, 1, warmup_steps) and the schedule). */
void tk_sched_lrs(const tk_sched *s, int64_t step, double *lrs);
/* The monitored value after an evaluation (schedules that observe nothing ignore it). */
void tk_sched_observe(tk_sched *s, double value);
/* State beyond the step count (reduce_on_plateau's best, counters and lrs), for checkpoints. */
int tk_sched_state_size(const tk_sched *s);
void tk_sched_get_state(const tk_sched *s, double *out);
void tk_sched_set_state(tk_sched *s, const double *in);

/* ---------------------------------------------------------------- training */

typedef struct {
    const char *split;         /* "train", "valid", "test" */
    int64_t epoch, epochs;     /* 1-based */
    int64_t batch, batches;    /* within the epoch, 1-based */
    int64_t step;              /* optimizer steps so far */
    double loss, accuracy;     /* running means over the epoch so far */
    double lr, seconds, samples_per_sec;
    bool done;                 /* the split's pass has finished */
} tk_progress;
typedef void (*tk_progress_fn)(const tk_progress *p, void *ud);
/* One line for the user ("resumed from ...", "skipped ... : corrupted"). */
typedef void (*tk_notice_fn)(const char *msg, void *ud);

/* A monitored value: "valid.loss", "valid.accuracy", "train.loss", "valid.f1", ... */
typedef struct {
    const char *name;          /* NULL: none */
    bool maximize;
} tk_monitor;

/* Data-parallel training over `size` processes (lang/dist_mpi.c implements it on MPI; the
 * runtime knows only these calls). Each rank computes its shard of every batch; the
 * reductions must leave bit-identical results on every rank, so every rank takes the same
 * decisions. A NULL tk_train_opts.dist, or size 1, is one process. */
typedef struct {
    int rank, size;
    /* buf[i] = sum over ranks of buf[i], in place. */
    tk_status (*allreduce_sum)(float *buf, size_t n, void *ud);
    tk_status (*allreduce_doubles)(double *buf, size_t n, void *ud);
    void *ud;
} tk_dist;

typedef struct {
    tk_view *train, *valid, *test;         /* valid/test may be NULL */
    int batch_size;
    bool shuffle, drop_last;
    int64_t epochs;
    uint64_t seed;
    const char *run_dir;                   /* logs, checkpoints/; NULL: none */
    const tk_sched_spec *sched;            /* NULL: constant lr */
    double clip_grad_norm, clip_grad_value; /* 0: off */
    int accumulate;                        /* update every k batches; 0 or 1: every batch */
    const char *const *metrics;            /* metrics.csv columns after loss and accuracy; */
    int n_metrics;                         /*  "confusion" only goes to the test report */
    tk_monitor best;                       /* save.best: best.safetensors by this value */
    int64_t save_every;                    /* epoch-NNNN.safetensors every N epochs (0: off) */
    int keep;                              /* of those, keep the newest N (0: all) */
    bool save_last;                        /* last.safetensors after every epoch */
    tk_monitor stop;                       /* early stopping */
    int64_t patience;                      /* 0: off */
    double min_delta;
    bool restore_best;                     /* end with best.safetensors' weights */
    bool skip_nonfinite;                   /* drop non-finite updates instead of stopping */
    int64_t max_skips;                     /* with skip: stop when more are skipped */
    const char *resume;                    /* a full checkpoint or a run directory */
    const char *config;                    /* resolved config text, kept in checkpoints */
    volatile int *interrupt;               /* set by a signal: save and stop after the step */
    bool tensorboard;
    int64_t log_every;                     /* train loss to TensorBoard every N steps (0: off) */
    FILE *report;                          /* the test pass's per-class report (may be NULL) */
    tk_progress_fn progress;               /* per batch and at the end of each pass */
    void *progress_ud;
    tk_notice_fn notice;
    void *notice_ud;
    /* Called (by rank 0) once what the run reads has verified, the resume checkpoint
     * included, and before anything is written: a refused run leaves no trace. The CLI
     * makes the run directory and writes note.log here. Its failure ends the run. */
    tk_status (*ready)(void *ud, tk_ctx *ctx);
    void *ready_ud;
    const tk_dist *dist;                   /* data-parallel ranks (NULL: one process); rank 0
                                              alone writes run_dir */
    bool sync_batch_norm;                  /* with dist: batch-norm statistics over every
                                              rank's rows (else each rank's own) */
} tk_train_opts;

/* Micro-batches and optimizer steps per epoch under these options. */
int64_t tk_train_batches_per_epoch(const tk_train_opts *o);
int64_t tk_train_steps_per_epoch(const tk_train_opts *o);
/* Validate data and options against the model before any batch: sample shapes, label kind and
 * range for the loss (names the file and row), metric and monitor names. */
tk_status tk_check_data(const tk_model *m, const tk_train_opts *o, tk_ctx *ctx);
/* The schedule's options against the run's length and the groups' lrs (tk_train checks them
 * too, before the first batch; `tkrun check` calls this so it finds the same mistakes). */
tk_status tk_check_schedule(const tk_model *m, const tk_train_opts *o, tk_ctx *ctx);
/* Train (or resume, with o->resume), then run the test split. TK_ERR_INTERRUPTED after a
 * signal, with last.safetensors written. */
tk_status tk_train(tk_model *m, const tk_train_opts *o, tk_ctx *ctx);

/* ---------------------------------------------------------------- stepping (the REPL) */

/* Training driven step by step (stepper.c): tk_train's updates, shuffle order and dropout
 * keys, continuing across calls; no logs, checkpoints or early stopping. The options (views,
 * batch, schedule, clipping, accumulation, on_nonfinite) are copied; the views must outlive
 * the stepper. */
typedef struct tk_stepper tk_stepper;
typedef struct {
    int64_t epoch;             /* completed epochs */
    int64_t cursor, batches;   /* micro-batches done of epoch + 1, of this many */
    int64_t step;              /* optimizer updates */
    int64_t skips;             /* updates dropped as non-finite (on_nonfinite = "skip") */
} tk_stepper_state;
typedef struct {
    int64_t steps;             /* updates applied by the call */
    double loss_sum;           /* sum of batch loss * weight over the call's micro-batches */
    double loss_weight;        /*  and of their tk_model_loss_weight: the mean's divisor */
    double loss, accuracy;     /* running means of the epoch's train pass so far */
    bool epoch_done;           /* the call ended an epoch */
} tk_stepper_result;
tk_status tk_stepper_new(tk_model *m, const tk_train_opts *o, tk_stepper **out, tk_ctx *ctx);
void tk_stepper_free(tk_stepper *s);
tk_stepper_state tk_stepper_get_state(const tk_stepper *s);
/* n updates (an epoch's end starts the next epoch), or the rest of the current epoch.
 * *interrupt set (a signal) stops at the next step boundary: TK_ERR_INTERRUPTED. */
tk_status tk_stepper_step(tk_stepper *s, int64_t n, volatile int *interrupt,
                          tk_stepper_result *r, tk_ctx *ctx);
tk_status tk_stepper_epoch(tk_stepper *s, volatile int *interrupt, tk_stepper_result *r,
                           tk_ctx *ctx);
/* The current epoch's train-pass metrics (reset when an epoch starts). */
const tk_metrics *tk_stepper_train_metrics(const tk_stepper *s);
/* reduce_on_plateau: the monitored value after an evaluation. */
void tk_stepper_observe(tk_stepper *s, double value);
/* The lr of every group for the next update: the schedule's, or the group's override. */
void tk_stepper_lrs(tk_stepper *s, double *lrs);
/* Fix group g's lr from now on (NAN: follow the schedule again). */
tk_status tk_stepper_set_lr(tk_stepper *s, int group, double lr, tk_ctx *ctx);
/* Split 0 train, 1 valid, 2 test, in order (no shuffle, every row), in eval mode. The
 * metrics stay valid until the next evaluate. */
tk_status tk_stepper_evaluate(tk_stepper *s, int split, double *loss,
                              const tk_metrics **metrics, tk_ctx *ctx);
int64_t tk_stepper_batches(const tk_stepper *s, int split); /* 0: no such split */
/* Batch i (0-based, in order) of a split into x (batch_size * features) and y; returns its
 * rows, or -1 with the message set. */
int tk_stepper_batch(tk_stepper *s, int split, int64_t i, float *x, float *y, tk_ctx *ctx);

/* The gradient of tensor i (tk_model_tensor's index); NULL for buffers, slots, frozen ones. */
float *tk_model_tensor_grad(const tk_model *m, int i);
/* The model's output (prediction) shape, with the compiled batch as the first dim. */
tk_shape tk_model_output_shape(const tk_model *m);

/* ---------------------------------------------------------------- weights */

/* Fine-tuning: copy tensors from a safetensors file by name (after the first matching rename,
 * "old.*" -> "new.*") where the shape fits; the report lists loaded, missing (kept at their
 * init), unexpected and shape-mismatched tensors. strict: any of the last three is an error
 * and nothing is loaded. */
typedef struct {
    const char *from, *to;
} tk_rename;
tk_status tk_model_load_weights(tk_model *m, const char *path, const tk_rename *renames,
                                int n_renames, bool strict, FILE *report, tk_ctx *ctx);
/* Parameters and buffers under their PyTorch names (weights only: PyTorch loads it). */
tk_status tk_model_save_weights(const tk_model *m, const char *path, tk_ctx *ctx);
/* A __metadata__ string that every checkpoint and weights file of this model carries from
 * now on (a key set again takes the new value): what the weights need around them. tkrun
 * records the data preprocessing under "data.*" (lang/preprocess.c lists the keys):
 * data.normalize, data.scale, data.mul and data.add (x' = x * mul[f] + add[f], the transform
 * the batches got), data.mean and data.std, the split seed, fractions, sizes and index
 * CRCs, and data.classes (the class-name -> id map as JSON). Read them back with tk_st_meta,
 * number lists with tk_meta_numbers. */
tk_status tk_model_set_meta(tk_model *m, const char *key, const char *value, tk_ctx *ctx);
/* Parse a comma-separated list of numbers (a metadata value) into out (at most cap);
 * returns how many there are, or -1 if the text is not such a list or holds more than cap. */
int64_t tk_meta_numbers(const char *s, double *out, int64_t cap);

/* The model's inference graph as an ONNX file (opset 13, IR version 7), written atomically:
 * input "input" and output "output" (the model's prediction; no loss) with a dynamic
 * "batch" first axis, parameters and buffers as initializers under their PyTorch names,
 * eval-mode semantics (dropout off, running statistics). An op without an ONNX form is an
 * error naming the layer. */
tk_status tk_model_export_onnx(const tk_model *m, const char *path, tk_ctx *ctx);

/* ---------------------------------------------------------------- safetensors */

/* A safetensors file read whole into memory and validated (header JSON, dtypes, shapes,
 * offsets inside the data, no overlaps). F32 tensors are served as they are; F64, F16, BF16,
 * I64, I32, U8 and BOOL are converted to float32 on load. */
typedef struct tk_st_file tk_st_file;
tk_status tk_st_load(const char *path, tk_st_file **out, tk_ctx *ctx);
tk_status tk_st_parse(const void *bytes, size_t len, const char *label, tk_st_file **out,
                      tk_ctx *ctx); /* label names the source in errors */
void tk_st_free(tk_st_file *f);
int tk_st_count(const tk_st_file *f);
const char *tk_st_name(const tk_st_file *f, int i); /* in file order */
tk_shape tk_st_shape(const tk_st_file *f, int i);
const float *tk_st_data(const tk_st_file *f, int i);
int tk_st_find(const tk_st_file *f, const char *name); /* -1 if absent */
/* __metadata__ value for key, or NULL. */
const char *tk_st_meta(const tk_st_file *f, const char *key);
int tk_st_meta_count(const tk_st_file *f);
const char *tk_st_meta_key(const tk_st_file *f, int i);

typedef struct {
    const char *name;
    tk_shape shape;
    const float *data;
} tk_st_tensor;
/* Write F32 tensors (sorted by name, as the format requires of readers' expectations) and
 * metadata pairs atomically (tk_write_atomic). */
tk_status tk_st_save(const char *path, const tk_st_tensor *tensors, int n,
                     const char *const *meta_keys, const char *const *meta_values, int n_meta,
                     tk_ctx *ctx);

/* ---------------------------------------------------------------- TensorBoard events */

typedef struct tk_events tk_events;
/* Open DIR/events.out.tfevents.<unix time>.<hostname>.<pid>.tkrun; the first record is the
 * file_version event "brain.Event:2". If DIR already holds a *.tkrun events file (a resumed
 * run), append to the newest one instead, first cutting off a record torn by a crash. */
tk_status tk_events_open(const char *dir, tk_events **out, tk_ctx *ctx);
/* One scalar summary: tag ("train/loss", "valid/accuracy", "lr/group0"), step, value (stored
 * as float32, as TensorBoard's simple_value is), wall time in seconds. Written and flushed so
 * TensorBoard sees it live. */
tk_status tk_events_scalar(tk_events *ev, const char *tag, int64_t step, double value,
                           double wall_time, tk_ctx *ctx);
void tk_events_close(tk_events *ev); /* NULL is fine */

/* ---------------------------------------------------------------- run directory */

/* Make DIR (and parents). */
tk_status tk_mkdirs(const char *dir, tk_ctx *ctx);
/* Write a file atomically: temp name, fsync, rename, fsync of the directory. */
tk_status tk_write_atomic(const char *path, const void *data, size_t len, tk_ctx *ctx);
/* Fault injection for crash tests: called with the temp file written and synced, just before
 * the rename. NULL removes it. */
void tk_set_write_hook(void (*hook)(const char *tmp_path, const char *path));

#endif
