/* fuzz_idx.c - libFuzzer target for the IDX reader: the first byte says where the input is cut
 * into the images file and the labels file, the second whether each is gzip-compressed; the
 * rest is the two files' bytes. Every input must load or fail with a message; a loaded dataset
 * is split, normalised and batched. Not here: CSV (fuzz_csv.c). */
#include "fuzz_file.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    size_t body = size - 2, cut = body ? (size_t)data[0] * 4 % (body + 1) : 0;
    const char *images = fuzz_write(data + 2, cut, "images", data[1] & 1);
    const char *labels = fuzz_write(data + 2 + cut, body - cut, "labels", data[1] & 2);
    if (!images || !labels)
        return 0;
    tk_ctx *ctx = tk_ctx_new();
    tk_dataset *ds = NULL;
    tk_idx_opts o = {images, labels};
    if (tk_dataset_idx(&o, &ds, ctx) != TK_OK && !tk_errmsg(ctx)[0])
        abort(); /* a failure without a message */
    if (ds) {
        fuzz_exercise(ds, ctx);
        tk_dataset_free(ds);
    }
    tk_ctx_free(ctx);
    return 0;
}
