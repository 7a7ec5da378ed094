/* fuzz_npy.c - libFuzzer target for the .npy/.npz reader: the first byte picks a plain .npy
 * (read by tk_npy_read and as a features-only dataset) or an .npz with members x and y as a
 * dataset (class ids or regression targets); the rest is the file, written to a temporary
 * file because the readers take paths. Every input must load or fail with a message; a loaded
 * dataset is split, normalised and batched. */
#include "fuzz_file.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    const char *path = fuzz_write(data + 1, size - 1, "np", false);
    if (!path)
        return 0;
    tk_ctx *ctx = tk_ctx_new();
    tk_dataset *ds = NULL;
    tk_status st;
    if (data[0] & 1) {
        tk_npy_opts o = {.npz = path, .x = "x", .y = "y", .regression = data[0] & 2};
        st = tk_dataset_npy(&o, &ds, ctx);
    } else {
        tk_shape s;
        float *x = NULL;
        st = tk_npy_read(path, &s, &x, ctx);
        if (st == TK_OK) {
            volatile float sum = 0;
            for (int64_t i = 0; i < tk_shape_numel(&s); i++)
                sum += x[i];
            (void)sum;
            free(x);
            tk_npy_opts o = {.x = path};
            st = tk_dataset_npy(&o, &ds, ctx);
        }
    }
    if (st != TK_OK && !tk_errmsg(ctx)[0])
        abort();
    if (ds)
        fuzz_exercise(ds, ctx);
    tk_dataset_free(ds);
    tk_ctx_free(ctx);
    return 0;
}
