/* registry.c - the op registry: one line per op. Each op lives in its own file under ops/
 * with its shape rule, forward and backward; what several ops share is in common.c. */
#include "tk_int.h"

#include <string.h>

#define TK_OP_LIST(X) \
    X(linear)         \
    X(relu)           \
    X(flatten)        \
    X(dropout)        \
    X(cross_entropy)  \
    X(mse)            \
    X(leaky_relu)     \
    X(elu)            \
    X(gelu)           \
    X(silu)           \
    X(tanh)           \
    X(sigmoid)        \
    X(softplus)       \
    X(softmax)        \
    X(log_softmax)    \
    X(add)            \
    X(concat)         \
    X(reshape)        \
    X(nll)            \
    X(l1)             \
    X(smooth_l1)      \
    X(huber)          \
    X(bce_with_logits) \
    X(conv2d)         \
    X(max_pool2d)     \
    X(avg_pool2d)     \
    X(adaptive_avg_pool2d) \
    X(batch_norm1d)   \
    X(batch_norm2d)   \
    X(layer_norm)     \
    X(dropout2d)      \
    X(hardtanh)

#define DECLARE(name) extern const tk_op_def tk_op_##name;
TK_OP_LIST(DECLARE)
#define ENTRY(name) &tk_op_##name,
static const tk_op_def *const ops[] = {TK_OP_LIST(ENTRY)};

int tk_op_count(void)
{
    return (int)(sizeof ops / sizeof ops[0]);
}

const char *tk_op_name(int i)
{
    return i >= 0 && i < tk_op_count() ? ops[i]->name : NULL;
}

const tk_op_def *tk_op_find(const char *name)
{
    for (int i = 0; i < tk_op_count(); i++)
        if (strcmp(ops[i]->name, name) == 0)
            return ops[i];
    return NULL;
}


