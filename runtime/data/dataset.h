/* dataset.h - the data layer's internal structures (datasets in memory and views over them)
 * and the small file helpers the readers share. Not public: lang/ sees only tk.h. The loader's
 * structure stays private to loader.c, the only file that touches its thread. */
#ifndef TK_DATA_DATASET_H
#define TK_DATA_DATASET_H

#include "tk_int.h"

#include <zlib.h>

/* A streamed CSV (csv_stream.c): its rows stay in the file, in shards of shard_size rows
 * whose starts the load pass recorded, with the counts that checks and splits need. */
typedef struct {
    int64_t offset;            /* byte offset of the shard's first row */
    int64_t line;              /* its physical line */
} tk_shard;

struct tk_sheet;
typedef struct tk_stream {
    int64_t shard_size;        /* rows per shard (the last may have fewer) */
    int64_t window;            /* shards per shuffle window */
    int64_t n_shards;
    tk_shard *shards;
    int64_t size, mtime_s, mtime_ns; /* the file as indexed: a changed file is refused */
    int n_parts;               /* the split drawn at load: parts 0.., the rest is n_parts */
    double fractions[2];
    uint64_t split_seed;
    int32_t *shard_n;          /* (n_parts + 1) x n_shards: samples of each part per shard */
    int64_t part_n[3];
    int n_ids;                 /* distinct class label cells (0: regression) */
    int64_t *id_count;         /* n_ids x (n_parts + 1): samples per label and part */
    int64_t *id_line;          /*  and the first line of each */
    float *id_value;           /* n_ids: each one's class id */
    struct tk_sheet *layout;   /* CSV: the resolved columns and labels, to re-read rows with */
    char **paths;              /* images (image_stream.c): every sample's file, else NULL */
    int64_t n_paths;
    int channels, height, width; /*  decoded as the load pass did (0 x 0: own size) */
} tk_stream;

/* Samples in memory. Features are kept as the file stores them (uint8 images take a quarter
 * of the memory of floats); the loader converts while it gathers a batch. */
struct tk_dataset {
    char *path;                /* as the caller gave it (tk_dataset_source) */
    const char *name;          /* its basename, inside `path`: what messages show */
    const char *unit;          /* "row" (CSV) or "record" (IDX) in tk_dataset_where */
    int64_t n;                 /* samples */
    int64_t nfeat;             /* features per sample = numel(shape) */
    tk_shape shape;            /* sample shape, without the batch dim */
    unsigned char *x8;         /* n * nfeat raw bytes, or NULL */
    float *x32;                /* n * nfeat floats, or NULL */
    float *y;                  /* n * label_width (class ids are exact small integers) */
    int label_width;           /* 0: no labels */
    int columns;               /* CSV: cells per row (a prediction input must match) */
    tk_label_kind kind;
    int n_classes;             /* 0 for regression */
    char **class_names;        /* n_classes names (string labels), else NULL */
    int64_t *rows;             /* 1-based line of each sample in its file; NULL: i + 1 */
    char **files;              /* the file each sample came from (image folders), or NULL */
    char *label_path;          /* labels from another file (tk_dataset_label_where), or NULL */
    int64_t *label_rows;       /* 1-based line of each label in it; NULL: i + 1 */
    tk_stream *stream;         /* streamed: no x/y/rows in memory */
};

/* A subset of a dataset plus the per-feature transform x' = x * mul[f] + add[f]. */
struct tk_view {
    tk_dataset *ds;
    int64_t *idx;              /* dataset indices; split keeps them ascending */
    int64_t n;
    float *mul, *add;          /* ds->nfeat each */
    tk_augment aug[TK_MAX_AUGMENT]; /* tk_view_augment; n_aug == 0: none */
    int n_aug;
    int part;                  /* streamed (idx NULL): its part of ds->stream, -1: all */
};

/* An empty dataset owning a copy of `path`; NULL if out of memory. */
tk_dataset *tk_dataset_alloc(const char *path, const char *unit);

/* The file name after the last '/': what messages show. */
const char *tk_data_basename(const char *path);

/* Open a file for reading, gzip or plain: zlib looks at the magic bytes, not the name.
 * NULL with the message set if it cannot be opened. */
gzFile tk_data_open(const char *path, tk_ctx *ctx);
/* Read up to len bytes; returns the count (short only at the end of the file), or -1 with
 * "name: corrupt gzip data (...)" set. A gzip stream cut short is that error too, unless
 * `cut` is given: then *cut is set and the bytes before the cut are returned. */
int64_t tk_data_read(gzFile f, void *buf, size_t len, bool *cut, const char *name,
                     tk_ctx *ctx);

/* A whole (plain) file into a tk_malloc'd buffer; at most 1 GiB. */
tk_status tk_data_slurp(const char *path, unsigned char **out, size_t *len, tk_ctx *ctx);

/* image.c: a PNG or JPEG in memory (`name` for messages) into channels x h x w bytes,
 * tk_malloc'd. height/width 0: the image's own size; else resized to it. */
tk_status tk_image_decode(const void *data, size_t len, const char *name, int channels,
                          int height, int width, unsigned char **out, int *out_h, int *out_w,
                          tk_ctx *ctx);
/* The same from a file. */
tk_status tk_image_load(const char *path, int channels, int height, int width,
                        unsigned char **out, int *out_h, int *out_w, tk_ctx *ctx);
/* image_folder.c: ds->n images at paths decoded and checked to have one size, which sets
 * ds->shape and ds->nfeat (o's channels and size); with `keep` their pixels into ds->x8. */
tk_status tk_images_decode(tk_dataset *ds, const tk_images_opts *o, char *const *paths,
                           bool keep, tk_ctx *ctx);
/* image_list.c: the list form of tk_dataset_images into ds (allocated, named after the list). */
tk_status tk_image_list(const tk_images_opts *o, tk_dataset *ds, tk_ctx *ctx);

/* augment.c: v's augmentations of dataset sample `sample` in epoch `epoch`, from its raw
 * values in a (b is scratch of the same size); returns a or b, whichever holds the result. */
float *tk_aug_apply(const tk_view *v, uint64_t seed, int64_t epoch, int64_t sample, float *a,
                    float *b);
/* The ops once their offsets are drawn, on c x h x w floats (in and out do not overlap):
 * the h x w window at (top, left) of the image padded by op->pad with op->fill; a mirror;
 * a shift by (tx, ty) pixels (right, down) bringing in `fill`. */
void tk_aug_crop(const float *in, float *out, int64_t c, int64_t h, int64_t w,
                 const tk_augment *op, int64_t top, int64_t left);
void tk_aug_flip(const float *in, float *out, int64_t c, int64_t h, int64_t w, bool vertical);
void tk_aug_shift(const float *in, float *out, int64_t c, int64_t h, int64_t w, int64_t tx,
                  int64_t ty, float fill);

/* csv_stream.c: tk_dataset_csv for o->stream. */
tk_status tk_csv_stream_index(const tk_csv_opts *o, tk_dataset **out, tk_ctx *ctx);
void tk_stream_free(tk_stream *s);
/* The part of stream row `row` (0-based data row): 0..n_parts-1, or n_parts for the rest. */
int tk_stream_part(const tk_stream *s, int64_t row);
/* Samples of view v in shard `shard`. */
int64_t tk_stream_shard_n(const tk_view *v, int64_t shard);
/* A reader of a streamed view's shards: its file, parser and buffers, allocated once. */
typedef struct tk_stream_reader tk_stream_reader;
tk_status tk_stream_reader_new(const tk_view *v, tk_stream_reader **out, tk_ctx *ctx);
void tk_stream_reader_free(tk_stream_reader *r);
/* The view's samples of shard `shard`, in file order, at x (nfeat each), y (label_width
 * each) and rows (dataset row); *count of them. Reads and allocates nothing else. */
tk_status tk_stream_read_shard(tk_stream_reader *r, int64_t shard, float *x, float *y,
                            int64_t *rows, int64_t *count, tk_ctx *ctx);
/* image_stream.c: the streamed form of tk_images_decode (paths are copied), and the
 * images of shard `shard` in view v decoded into x (or through fn, via scratch). */
tk_status tk_images_stream(tk_dataset *ds, const tk_images_opts *o, char **paths,
                           tk_ctx *ctx);
tk_status tk_image_read_shard(const tk_view *v, int64_t shard, float *x, float *y,
                              int64_t *rows, int64_t *count,
                              void (*fn)(void *ud, const float *x), void *ud, float *scratch,
                              tk_ctx *ctx);
/* Every sample of v in file order through fn (raw features). */
tk_status tk_stream_scan(const tk_view *v, void (*fn)(void *ud, const float *x), void *ud,
                         tk_ctx *ctx);

#endif
