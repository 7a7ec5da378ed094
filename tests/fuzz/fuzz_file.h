/* fuzz_file.h - what the file-reading fuzz targets share: writing an input to a file (the
 * readers take paths; /dev/shm when there, so an execution costs no disk), optionally
 * as a well-formed gzip stream of the fuzzed content (so the zlib path reads it), and walking a
 * loaded dataset through split, normalisation and batching. Not a target itself. */
#ifndef TK_FUZZ_FILE_H
#define TK_FUZZ_FILE_H

#include "tk.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <zlib.h>

static void put_le32(FILE *f, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        fputc((int)(v >> (8 * i) & 0xff), f);
}

/* The path of this process's file `name`, written with the bytes; with gz, as a gzip stream
 * of stored deflate blocks (built here: zlib's deflate state costs more per input than the
 * whole read), whose CRC and length the reader checks. Each call's path has its own buffer
 * slot, so a target may hold two. NULL if it cannot be written. */
static const char *fuzz_write(const uint8_t *data, size_t size, const char *name, bool gz)
{
    static char paths[2][128];
    static int slot;
    char *path = paths[slot++ & 1];
    const char *dir = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
    snprintf(path, sizeof paths[0], "%s/tkfuzz.%d.%s%s", dir, (int)getpid(), name,
             gz ? ".gz" : "");
    FILE *f = fopen(path, "wb");
    if (!f)
        return NULL;
    if (!gz) {
        fwrite(data, 1, size, f);
        fclose(f);
        return path;
    }
    static const uint8_t header[10] = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3};
    fwrite(header, 1, sizeof header, f);
    size_t off = 0;
    do { /* blocks of at most 64 KiB - 1, the last one flagged */
        size_t n = size - off > 65535 ? 65535 : size - off;
        uint8_t block[5] = {off + n == size, (uint8_t)(n & 0xff), (uint8_t)(n >> 8),
                            (uint8_t)(~n & 0xff), (uint8_t)(~n >> 8 & 0xff)};
        fwrite(block, 1, sizeof block, f);
        fwrite(data + off, 1, n, f);
        off += n;
    } while (off < size);
    put_le32(f, (uint32_t)crc32(0L, data, (uInt)size));
    put_le32(f, (uint32_t)size);
    fclose(f);
    return path;
}

/* A loaded dataset through what training does with it: split, normalised, batched. */
static void fuzz_exercise(tk_dataset *ds, tk_ctx *ctx)
{
    tk_view *all = tk_view_all(ds), *part = NULL;
    double fraction = 0.25;
    if (all && tk_view_len(all) >= 4 &&
        tk_view_split(all, &fraction, 1, 7, &part, ctx) == TK_OK) {
        tk_norm_opts norm = {.scale = 1.0, .kind = TK_NORM_STANDARD};
        tk_loader *ld = NULL;
        tk_loader_opts lo = {.batch_size = 3, .shuffle = true, .seed = 1};
        if (tk_view_normalize(all, &norm, all, ctx) == TK_OK &&
            tk_loader_new(all, &lo, &ld, ctx) == TK_OK) {
            tk_shape s = tk_dataset_sample_shape(ds);
            int64_t feats = tk_shape_numel(&s);
            float *x = malloc(sizeof(float) * (size_t)(3 * feats));
            float *y = malloc(sizeof(float) * (size_t)(3 * (tk_dataset_label_width(ds) + 1)));
            tk_loader_begin(ld, 1, 0);
            while (x && y && tk_loader_next(ld, x, y, NULL) > 0) {
            }
            free(x);
            free(y);
            tk_loader_free(ld);
        }
        tk_view_free(part);
    }
    tk_view_free(all);
}

#endif
