/* common.h - what the learning-rate schedules under runtime/sched/ share with common.c: the
 * definition each one registers (its options, its lr function, its state if any), the
 * schedule object those functions see, and the option readers and checks they use.
 * Internal to the runtime; the public API is tk.h's tk_sched_*. Not here: the registry's
 * list (registry.c) and the warmup composition (common.c). */
#ifndef TK_SCHED_COMMON_H
#define TK_SCHED_COMMON_H

#include "tk_int.h"

#include <math.h>

typedef enum {
    TK_OPT_INT,   /* an integer (an integral float is accepted) */
    TK_OPT_NUM,   /* a number (an integer is accepted) */
    TK_OPT_STR,
    TK_OPT_INTS,  /* a list of integers */
} tk_sched_opt_kind;

enum {
    /* Counts the spec's unit (epochs or steps): common.c multiplies it by tk_sched_spec.unit,
     * so the schedule reads optimizer steps. */
    TK_OPT_DURATION = 1 << 0,
    /* May be absent, which means something (T_max: the rest of the run). Every other option
     * must be given: the stdlib schema resolves every default, C states none. */
    TK_OPT_OPTIONAL = 1 << 1,
    /* The range common.c checks a given value for (after durations become steps), with one
     * message per kind: > 0, >= 0, in [0, 1], in (0, 1). */
    TK_OPT_POSITIVE = 1 << 2,
    TK_OPT_NONNEG = 1 << 3,
    TK_OPT_UNIT = 1 << 4,
    TK_OPT_OPEN_UNIT = 1 << 5,
};

typedef struct {
    const char *key;
    tk_sched_opt_kind kind;
    unsigned flags;
} tk_sched_opt;

/* An option's value after common.c checked its kind and converted its durations. */
typedef struct {
    bool given;
    int64_t i;
    double f;
    const char *s;     /* the spec's string, read during tk_sched_new only */
    int64_t *ints;     /* owned by the schedule */
    int n;
} tk_sched_val;

typedef struct tk_sched_def tk_sched_def;

struct tk_sched {
    const tk_sched_def *def;
    const char *where;         /* the script line, for messages (NULL: none) */
    int n;                     /* parameter groups */
    double *base;              /* each group's own lr */
    int64_t total_steps;       /* the whole run, in optimizer steps */
    int64_t warmup;            /* warmup_steps */
    double warmup_f0;          /* warmup_start_factor */
    tk_sched_val *vals;        /* def->opts' values, in their order */
    void *p;                   /* the schedule's own: def->size + def->per_group * n bytes */
};

struct tk_sched_def {
    const char *name;          /* "cosine": tk.sched.cosine in the stdlib */
    const tk_sched_opt *opts;  /* its options, ended by {NULL} */
    size_t size, per_group;    /* bytes of its parameters and state (zeroed) */
    /* Check what the option table's ranges do not (messages through tk_sched_fail) and fill
     * s->p. NULL: nothing to do. */
    tk_status (*init)(tk_sched *s, tk_ctx *ctx);
    /* Group g's lr after t steps of this schedule (the warmup's steps not counted). */
    double (*lr)(const tk_sched *s, int g, int64_t t);
    /* The lr the warmup ramps up to. NULL: the group's own lr. */
    double (*initial_lr)(const tk_sched *s, int g);
    /* A monitored value after an evaluation. A schedule that observes takes the options
     * `monitor` (the value's name) and `mode` ("min" or "max"); see tk_sched_monitor.
     * NULL: it observes nothing. */
    void (*observe)(tk_sched *s, double value);
    /* State beyond the step count, as doubles, for checkpoints. NULL: none. */
    int (*state_size)(const tk_sched *s);
    void (*get_state)(const tk_sched *s, double *out);
    void (*set_state)(tk_sched *s, const double *in);
};

/* The registry (registry.c): the definition named `name`, or NULL. */
const tk_sched_def *tk_sched_def_find(const char *name);

/* Option values by key (a key of s->def->opts). */
bool tk_sched_given(const tk_sched *s, const char *key);
int64_t tk_sched_int(const tk_sched *s, const char *key);
double tk_sched_num(const tk_sched *s, const char *key);
const char *tk_sched_str(const tk_sched *s, const char *key);
const int64_t *tk_sched_ints(const tk_sched *s, const char *key, int *n);

/* Fail with "sched.<name>: <message>" (TK_ERR_INPUT). */
tk_status tk_sched_fail(const tk_sched *s, tk_ctx *ctx, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The length of a schedule whose optional duration `opt` (T_max, total_iters) defaults to
 * the run after the warmup. */
tk_status tk_sched_span(const tk_sched *s, const char *opt, int64_t *span, tk_ctx *ctx);
/* String option `opt` as the index of one of `n` choices. */
tk_status tk_sched_choice(const tk_sched *s, const char *opt, const char *const *choices,
                          int n, int *out, tk_ctx *ctx);

#define TK_SCHED_PI 3.14159265358979323846

/* Cosine annealing from base to eta_min over `period` steps, at step t: PyTorch's closed
 * form operation for operation (cosine and cosine_restarts). */
static inline double tk_sched_cosine_between(double eta_min, double base, int64_t t,
                                             int64_t period)
{
    return eta_min + (base - eta_min) * (1 + cos(TK_SCHED_PI * (double)t / (double)period)) / 2;
}

#endif
