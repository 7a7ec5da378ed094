/* fuzz_csv.c - libFuzzer target for the CSV reader: the first two bytes pick the options
 * (delimiter, skipped rows, header, regression, gzip, label and feature columns), the rest is
 * the file's content, plain or gzip-compressed. Every input must load or fail with a message;
 * a loaded dataset is split, normalised and batched. Not here: IDX (fuzz_idx.c). */
#include "fuzz_file.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    static const char delims[4] = {',', ';', ' ', '\t'};
    tk_colref label = {NULL, data[1] & 7}, features[2] = {{NULL, 0}, {"b", 0}};
    tk_csv_opts o = {.delimiter = delims[data[0] & 3], .skip_rows = (data[0] >> 2) & 3,
                     .header = data[0] & 16, .regression = data[0] & 32,
                     .label = &label, .n_label = (data[1] & 7) != 0,
                     .features = features, .n_features = (data[1] >> 3) & 3 ? 1 + (data[1] >> 4 & 1) : 0};
    o.path = fuzz_write(data + 2, size - 2, "csv", data[0] & 64);
    if (!o.path)
        return 0;
    tk_ctx *ctx = tk_ctx_new();
    tk_dataset *ds = NULL;
    tk_status st = tk_dataset_csv(&o, &ds, ctx);
    if (st != TK_OK && !tk_errmsg(ctx)[0])
        abort(); /* a failure without a message */
    if (ds) {
        fuzz_exercise(ds, ctx);
        tk_dataset_free(ds);
    }
    tk_ctx_free(ctx);
    return 0;
}
