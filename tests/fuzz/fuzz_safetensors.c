/* fuzz_safetensors.c - libFuzzer target: any bytes through the safetensors parser must parse
 * or fail cleanly (built by `make fuzz` with clang, ASan and UBSan). */
#include "tk.h"

#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    tk_ctx *ctx = tk_ctx_new();
    tk_st_file *f = NULL;
    if (tk_st_parse(data, size, "fuzz", &f, ctx) == TK_OK) {
        for (int i = 0; i < tk_st_count(f); i++) {
            tk_shape s = tk_st_shape(f, i);
            const float *v = tk_st_data(f, i);
            volatile float sink = 0;
            for (int64_t k = 0; k < tk_shape_numel(&s); k++)
                sink += v[k];
            (void)sink;
        }
        tk_st_free(f);
    }
    tk_ctx_free(ctx);
    return 0;
}
