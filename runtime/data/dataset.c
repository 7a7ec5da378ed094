/* dataset.c - what every dataset shares whatever its file format: accessors, freeing,
 * "where did sample i come from", and the gzip-or-plain file helpers the readers use.
 * The format readers are csv.c, idx.c, image_folder.c and npy.c; views and batches live in
 * split.c and loader.c. */
#include "dataset.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <string.h>

const char *tk_data_basename(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash && slash[1] ? slash + 1 : path;
}

tk_dataset *tk_dataset_alloc(const char *path, const char *unit)
{
    tk_dataset *ds = tk_calloc(1, sizeof *ds);
    if (!ds)
        return NULL;
    ds->path = tk_strdup(path);
    if (!ds->path) {
        tk_free(ds);
        return NULL;
    }
    ds->name = tk_data_basename(ds->path);
    ds->unit = unit;
    return ds;
}

void tk_dataset_free(tk_dataset *ds)
{
    if (!ds)
        return;
    if (ds->class_names)
        for (int i = 0; i < ds->n_classes; i++)
            tk_free(ds->class_names[i]);
    tk_free(ds->class_names);
    tk_free(ds->x8);
    tk_free(ds->x32);
    tk_free(ds->y);
    tk_free(ds->rows);
    tk_free(ds->label_path);
    tk_free(ds->label_rows);
    if (ds->files)
        for (int64_t i = 0; i < ds->n; i++)
            tk_free(ds->files[i]);
    tk_free(ds->files);
    tk_stream_free(ds->stream);
    tk_free(ds->path);
    tk_free(ds);
}

int64_t tk_dataset_len(const tk_dataset *ds)
{
    return ds->n;
}

tk_shape tk_dataset_sample_shape(const tk_dataset *ds)
{
    return ds->shape;
}

int tk_dataset_label_width(const tk_dataset *ds)
{
    return ds->label_width;
}

tk_label_kind tk_dataset_label_kind(const tk_dataset *ds)
{
    return ds->kind;
}

int tk_dataset_num_classes(const tk_dataset *ds)
{
    return ds->kind == TK_LABEL_CLASS ? ds->n_classes : 0;
}

float tk_dataset_label(const tk_dataset *ds, int64_t i, int k)
{
    if (i < 0 || i >= ds->n || k < 0 || k >= ds->label_width || !ds->y)
        return NAN;
    return ds->y[i * ds->label_width + k];
}

const char *tk_dataset_class_name(const tk_dataset *ds, int id)
{
    if (!ds->class_names || id < 0 || id >= ds->n_classes)
        return NULL;
    return ds->class_names[id];
}

char *tk_dataset_where(const tk_dataset *ds, int64_t i, char *buf, size_t cap)
{
    if (cap == 0)
        return buf;
    if (i < 0 || i >= ds->n) {
        snprintf(buf, cap, "%s (no sample %lld)", ds->name, (long long)i);
        return buf;
    }
    if (ds->files) {
        snprintf(buf, cap, "%s/%s", ds->name, ds->files[i]);
        return buf;
    }
    /* 1-based, like the line numbers editors show and `head -n` counts. */
    int64_t pos = ds->rows ? ds->rows[i] : i + 1;
    snprintf(buf, cap, "%s %s %lld", ds->name, ds->unit, (long long)pos);
    return buf;
}

char *tk_dataset_label_where(const tk_dataset *ds, int64_t i, char *buf, size_t cap)
{
    if (!ds->label_path || i < 0 || i >= ds->n || cap == 0)
        return tk_dataset_where(ds, i, buf, cap);
    snprintf(buf, cap, "%s %s %lld", tk_data_basename(ds->label_path), ds->unit,
             (long long)(ds->label_rows ? ds->label_rows[i] : i + 1));
    return buf;
}

const char *tk_dataset_source(const tk_dataset *ds)
{
    return ds->path;
}

gzFile tk_data_open(const char *path, tk_ctx *ctx)
{
    errno = 0;
    gzFile f = gzopen(path, "rb");
    if (!f) {
        tk_fail(ctx, TK_ERR_INPUT, "cannot open '%s': %s", path,
                errno ? strerror(errno) : "out of memory");
        return NULL;
    }
    gzbuffer(f, 1 << 17);
    return f;
}

int64_t tk_data_read(gzFile f, void *buf, size_t len, bool *cut, const char *name,
                     tk_ctx *ctx)
{
    unsigned char *p = buf;
    size_t got = 0;
    while (got < len) {
        size_t want = len - got;
        if (want > (size_t)INT_MAX / 2 + 1)
            want = (size_t)INT_MAX / 2 + 1;
        int r = gzread(f, p + got, (unsigned)want);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    int err = Z_OK;
    const char *msg = gzerror(f, &err);
    if (err == Z_BUF_ERROR && cut) {
        *cut = true;
        return (int64_t)got;
    }
    if (err == Z_BUF_ERROR)
        msg = "unexpected end of file";
    if (err != Z_OK) {
        if (err == Z_ERRNO)
            tk_fail(ctx, TK_ERR_INPUT, "%s: read error: %s", name, strerror(errno));
        else
            tk_fail(ctx, TK_ERR_INPUT, "%s: corrupt gzip data (%s)", name, msg);
        return -1;
    }
    return (int64_t)got;
}
