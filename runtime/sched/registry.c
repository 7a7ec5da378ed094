/* registry.c - the schedule registry: one line per learning-rate schedule. Each schedule
 * lives in its own file under sched/ with its options, checks and lr function (and state, if
 * it has any); what they share is in common.c. The names are the stdlib's tk.sched.* ones. */
#include "common.h"

#include <string.h>

#define TK_SCHED_LIST(X) \
    X(constant)          \
    X(step)              \
    X(multistep)         \
    X(exponential)       \
    X(cosine)            \
    X(cosine_restarts)   \
    X(linear)            \
    X(polynomial)        \
    X(onecycle)          \
    X(reduce_on_plateau) \
    /* one line per schedule, each ending in a backslash */

#define DECLARE(name) extern const tk_sched_def tk_sched_def_##name;
TK_SCHED_LIST(DECLARE)
#define ENTRY(name) &tk_sched_def_##name,
static const tk_sched_def *const defs[] = {TK_SCHED_LIST(ENTRY)};

const tk_sched_def *tk_sched_def_find(const char *name)
{
    for (size_t i = 0; i < sizeof defs / sizeof defs[0]; i++)
        if (strcmp(defs[i]->name, name) == 0)
            return defs[i];
    return NULL;
}
