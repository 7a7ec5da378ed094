/* image_stream.c - image folders and lists bigger than memory (tk_images_opts.stream). The
 * load pass decodes every image once through tk_images_decode, keeping no pixels (so a
 * corrupt or truncated file, or one of another size, is an error at check time naming it),
 * and keeps the paths and labels only: shards are runs of shard_size samples in dataset order, and the split,
 * per-shard counts and per-class counts are taken as for a streamed CSV (csv_stream.c).
 * Loaders then decode a shard at a time on their prefetch thread.
 * Not here: decoding (image.c), the list and folder readers (image_list.c, image_folder.c).
 */
#include "dataset.h"

#include <string.h>

static tk_status oom(const tk_dataset *ds, tk_ctx *ctx)
{
    return tk_fail(ctx, TK_ERR_RUNTIME, "%s: out of memory", ds->name);
}

/* Counts per shard, part and class, from the labels in memory. */
static tk_status count(tk_dataset *ds, tk_stream *s, tk_ctx *ctx)
{
    const int np = s->n_parts + 1, k = ds->n_classes > 0 ? ds->n_classes : 1;
    s->shard_n = tk_calloc((size_t)(s->n_shards * np), sizeof *s->shard_n);
    s->id_count = tk_calloc((size_t)k * np, sizeof *s->id_count);
    s->id_line = tk_calloc((size_t)k * np, sizeof *s->id_line);
    s->id_value = tk_malloc((size_t)k * sizeof *s->id_value);
    if (!s->shard_n || !s->id_count || !s->id_line || !s->id_value)
        return oom(ds, ctx);
    s->n_ids = ds->n_classes;
    for (int c = 0; c < ds->n_classes; c++)
        s->id_value[c] = (float)c;
    for (int64_t i = 0; i < ds->n; i++) {
        int part = tk_stream_part(s, i), c = (int)ds->y[i];
        s->shard_n[i / s->shard_size * np + part]++;
        s->part_n[part]++;
        if (c >= 0 && c < ds->n_classes && s->id_count[c * np + part]++ == 0)
            s->id_line[c * np + part] = ds->rows ? ds->rows[i] : i + 1;
    }
    return TK_OK;
}

tk_status tk_images_stream(tk_dataset *ds, const tk_images_opts *o, char **paths,
                           tk_ctx *ctx)
{
    if (o->shard_size < 0 || o->shuffle_buffer < 0 || o->n_stream_split < 0 ||
        o->n_stream_split > 2)
        return tk_fail(ctx, TK_ERR_INPUT, "%s: shard_size and shuffle_buffer must be >= 1",
                       ds->name);
    tk_status st = tk_images_decode(ds, o, paths, false, ctx);
    if (st)
        return st;
    tk_stream *s = tk_calloc(1, sizeof *s);
    char **own = tk_calloc((size_t)ds->n, sizeof *own);
    if (!s || !own) {
        tk_free(s);
        tk_free(own);
        return oom(ds, ctx);
    }
    ds->stream = s;
    s->paths = own;
    s->n_paths = ds->n;
    for (int64_t i = 0; i < ds->n; i++)
        if (!(own[i] = tk_strdup(paths[i])))
            return oom(ds, ctx);
    s->channels = o->channels;
    s->height = (int)ds->shape.d[1];
    s->width = (int)ds->shape.d[2];
    s->shard_size = o->shard_size ? o->shard_size : 64;
    int64_t buffer = o->shuffle_buffer ? o->shuffle_buffer : 1024;
    s->n_shards = (ds->n + s->shard_size - 1) / s->shard_size;
    s->window = buffer / s->shard_size > 1 ? buffer / s->shard_size : 1;
    if (s->window > s->n_shards)
        s->window = s->n_shards;
    s->n_parts = o->n_stream_split;
    for (int k = 0; k < s->n_parts; k++)
        s->fractions[k] = o->stream_split[k];
    s->split_seed = o->stream_split_seed;
    return count(ds, s, ctx);
}

tk_status tk_image_read_shard(const tk_view *v, int64_t shard, float *x, float *y,
                              int64_t *rows, int64_t *count_out,
                              void (*fn)(void *ud, const float *x), void *ud, float *scratch,
                              tk_ctx *ctx)
{
    const tk_dataset *ds = v->ds;
    const tk_stream *s = ds->stream;
    const int64_t nf = ds->nfeat, end = (shard + 1) * s->shard_size < ds->n
                                            ? (shard + 1) * s->shard_size : ds->n;
    int64_t n = 0;
    for (int64_t i = shard * s->shard_size; i < end; i++) {
        if (v->part >= 0 && tk_stream_part(s, i) != v->part)
            continue;
        unsigned char *px;
        int ih, iw;
        tk_status st = tk_image_load(s->paths[i], s->channels, s->height, s->width, &px, &ih,
                                     &iw, ctx);
        if (st == TK_OK && (ih != s->height || iw != s->width)) {
            tk_free(px);
            st = tk_fail(ctx, TK_ERR_INPUT, "%s: now %d x %d, not %d x %d", s->paths[i], ih,
                         iw, s->height, s->width);
        }
        if (st) {
            char msg[1024];
            snprintf(msg, sizeof msg, "%s", tk_errmsg(ctx));
            return tk_fail(ctx, TK_ERR_RUNTIME, "%s (it has changed since it was checked at "
                           "the start of the run); the last checkpoint is intact", msg);
        }
        float *dst = fn ? scratch : x + n * nf;
        for (int64_t f = 0; f < nf; f++)
            dst[f] = (float)px[f];
        tk_free(px);
        if (fn) {
            fn(ud, dst);
            continue;
        }
        y[n] = ds->y[i];
        rows[n++] = i;
    }
    *count_out = n;
    return TK_OK;
}
