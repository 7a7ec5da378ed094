/* dataset.h - the data layer's internal structures (datasets in memory and views over them)
 * and the small file helpers the readers share. Not public: lang/ sees only tk.h. The loader's
 * structure stays private to loader.c, the only file that touches its thread. */
#ifndef TK_DATA_DATASET_H
#define TK_DATA_DATASET_H

#include "tk_int.h"

#include <zlib.h>

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
};

/* A subset of a dataset plus the per-feature transform x' = x * mul[f] + add[f]. */
struct tk_view {
    tk_dataset *ds;
    int64_t *idx;              /* dataset indices; split keeps them ascending */
    int64_t n;
    float *mul, *add;          /* ds->nfeat each */
    tk_augment aug[TK_MAX_AUGMENT]; /* tk_view_augment; n_aug == 0: none */
    int n_aug;
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
/* image_folder.c: ds->n images at paths into ds->x8 and ds->shape (o's channels and size). */
tk_status tk_images_decode(tk_dataset *ds, const tk_images_opts *o, char *const *paths,
                           tk_ctx *ctx);
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

#endif
