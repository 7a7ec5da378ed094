/* safetensors.h - what the safetensors reader and writer share: a sorted name index, UTF-8
 * validation and the out-of-memory message. Internal to runtime/safetensors*.c. */
#ifndef TK_SAFETENSORS_H
#define TK_SAFETENSORS_H

#include "tk_int.h"

typedef struct {
    const char *key;
    int idx;
} st_key;

/* "<label>: out of memory", TK_ERR_RUNTIME. */
tk_status tk_st_oom(tk_ctx *ctx, const char *label);
/* Is s valid UTF-8 (no overlong forms, no surrogates, as Rust strings)? */
bool tk_st_utf8_valid(const char *s);
/* A sorted index over n records of `stride` bytes that start with a string pointer. *dup
 * receives the smallest index that repeats an earlier string, or -1. NULL when out of memory. */
st_key *tk_st_sort_keys(const void *base, size_t stride, int n, int *dup);

#endif
