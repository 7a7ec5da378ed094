/* fuzz_data.c - libFuzzer target for the data readers: the first byte picks CSV (with
 * options drawn from the next bytes) or IDX, the rest is the file's content, written to a
 * temporary file because the readers take paths (plain or gzip, found by magic bytes). Every
 * input must load or fail with a message; a loaded dataset is split, normalised and batched. */
#include "tk.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static const char *write_file(const uint8_t *data, size_t size, const char *name)
{
    static char path[256];
    snprintf(path, sizeof path, "/tmp/tkfuzz.%d.%s", (int)getpid(), name);
    FILE *f = fopen(path, "wb");
    if (!f)
        return NULL;
    fwrite(data, 1, size, f);
    fclose(f);
    return path;
}

static void exercise(tk_dataset *ds, tk_ctx *ctx)
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

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 4)
        return 0;
    tk_ctx *ctx = tk_ctx_new();
    tk_dataset *ds = NULL;
    if (data[0] & 1) {
        const char delims[4] = {',', ';', ' ', '\t'};
        tk_csv_opts o = {.delimiter = delims[data[1] & 3], .skip_rows = data[1] >> 6,
                         .header = data[2] & 1, .regression = data[2] & 2};
        o.path = write_file(data + 3, size - 3, "csv");
        if (o.path)
            tk_dataset_csv(&o, &ds, ctx);
    } else {
        size_t cut = 1 + data[1] % (size - 1);
        const char *img = write_file(data + 2, cut > 2 ? cut - 2 : 0, "img");
        char images[256];
        snprintf(images, sizeof images, "%s", img ? img : "");
        const char *lab = write_file(data + cut, size - cut, "lab");
        tk_idx_opts o = {images, lab};
        if (img && lab)
            tk_dataset_idx(&o, &ds, ctx);
    }
    if (ds) {
        exercise(ds, ctx);
        tk_dataset_free(ds);
    }
    tk_ctx_free(ctx);
    return 0;
}
