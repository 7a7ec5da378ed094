/* fuzz_image.c - libFuzzer target for the PNG/JPEG decoder: the first byte picks channels
 * (1 or 3) and the target size (the image's own, or one of a few resizes up and down), the
 * rest is the file's bytes. Every input must decode or fail with a message, never crash,
 * leak or read out of bounds (ASan + UBSan); the libpng/libjpeg longjmp paths are the point. */
#include "data/dataset.h"

#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const int sizes[4][2] = {{0, 0}, {7, 5}, {28, 28}, {3, 64}};
    if (size < 1)
        return 0;
    tk_ctx *ctx = tk_ctx_new();
    int channels = data[0] & 1 ? 3 : 1;
    const int *hw = sizes[(data[0] >> 1) & 3];
    unsigned char *px = NULL;
    int h = 0, w = 0;
    tk_status st = tk_image_decode(data + 1, size - 1, "fuzz", channels, hw[0], hw[1], &px,
                                   &h, &w, ctx);
    if (st == TK_OK) {
        /* the whole buffer must be there */
        volatile unsigned sum = 0;
        for (size_t i = 0; i < (size_t)channels * (size_t)h * (size_t)w; i++)
            sum += px[i];
        (void)sum;
        tk_free(px);
    } else if (!tk_errmsg(ctx)[0]) {
        abort(); /* a failure without a message */
    }
    tk_ctx_free(ctx);
    return 0;
}
