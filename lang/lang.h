/* lang.h - what lang/'s files share: the Lua state with the stdlib loaded, the pipeline built
 * from a script's spec table (data, compiled model, training options), and the reports the
 * CLI prints. Only runtime/tk.h is included from the runtime. */
#ifndef TK_LANG_H
#define TK_LANG_H

#include "tk.h"

#include <lua.h>
#include <stdio.h>

/* A Lua state with the standard libraries and `tk` preloaded (embedded stdlib, or the files
 * under $TK_STDLIB_DIR when set, for development). NULL if out of memory. */
lua_State *tk_lua_new(void);
/* Run SCRIPT and leave its pipeline table on the stack. On failure returns TK_ERR_INPUT with
 * the error in ctx (Lua's "file:line: message"). */
tk_status tk_lua_run_script(lua_State *L, const char *path, tk_ctx *ctx);
/* Apply `--set key=value` to the pipeline table at the top of the stack. */
tk_status tk_lua_set(lua_State *L, const char *assignment, tk_ctx *ctx);
/* tk.describe(pipeline) into a malloc'd string (the resolved config). */
char *tk_lua_describe(lua_State *L, tk_ctx *ctx);

typedef struct {
    char *name;
    int64_t seed;
    tk_dataset *datasets[3];   /* train, valid, test files (valid/test may be NULL) */
    tk_view *views[3];         /* train, valid, test */
    tk_graph *graph;
    tk_model *model;
    tk_train_opts train;
    tk_sched_spec sched;
    const char **metrics;      /* train.metrics points here */
    const char *init_path;     /* init = {...} of the script (NULL: none) */
    tk_rename *renames;
    int n_renames;
    bool init_strict;
    int threads;               /* threads = N of the script (0: not set) */
    char *data_note;           /* one line per split: source, samples, shape */
    char *strings;             /* owned copies of strings the specs point to */
} tk_pipeline;

/* Build everything from the pipeline table at the top of the stack: load and split the data,
 * lower the model, compile it with the optimizer. */
tk_status tk_pipeline_build(lua_State *L, tk_pipeline *p, tk_ctx *ctx);
void tk_pipeline_free(tk_pipeline *p);

/* Record the data preprocessing (transform, splits, classes) as "data.*" metadata on
 * p->model, for every checkpoint, and append it to p->data_note (preprocess.c). */
tk_status tk_preprocess_record(lua_State *L, int pipe, tk_pipeline *p, tk_ctx *ctx);

/* The layer table (name, type, output shape, params, script line) and the group table. */
void tk_print_layers(FILE *f, const tk_model *m);
void tk_print_groups(FILE *f, const tk_model *m);
/* torchinfo 1.8's summary of the model at the script's batch size: "Layer (type:depth-idx)",
 * Output Shape, Param #, Mult-Adds, then the totals and sizes in MB; `model_class` names the
 * top row ("Sequential"). */
void tk_print_summary(FILE *f, const tk_model *m, const char *model_class);

#endif
