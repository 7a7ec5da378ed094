/* cli.h - what the tkrun commands share: the parsed command line, the command table (one line
 * per command in main.c, one file per command), opening a script into a built pipeline, and
 * turning statuses into messages and exit codes. Not here: any one command's work. */
#ifndef TK_CLI_H
#define TK_CLI_H

#include "lang.h"

#include <stdbool.h>

/* Everything the command line can say; each command accepts only the flags it lists. */
typedef struct {
    const char *command;
    const char *script;
    const char **sets;         /* --set KEY=VALUE (and --epochs N as "epochs=N"), in order */
    int n_sets;
    char **owned;              /* strings made here ("epochs=N"), freed with the cli */
    int n_owned;
    int threads;               /* --threads N (0: not given) */
    int ranks;                 /* --ranks N: dist.c execs mpirun before parsing reaches it */
    const char *run_dir, *resume, *init, *weights, *split, *onnx;
    const char **inputs;       /* positional arguments after SCRIPT (predict's files) */
    int n_inputs;
    int top_k;                 /* --top K (0: not given) */
    bool quiet, json;
} tk_cli;

typedef struct {
    const char *name;
    const char *args;          /* "SCRIPT [options]" */
    const char *summary;       /* one line for `tkrun help` */
    const char *flags;         /* the long options it accepts, space-separated ("set threads") */
    int max_inputs;            /* positional arguments after SCRIPT (-1: any number) */
    int (*run)(const tk_cli *c);
} tk_command;

/* A script opened for a command: the Lua state holding the pipeline table, and the built
 * pipeline (data loaded, model compiled, checked). */
typedef struct {
    tk_ctx *ctx;
    lua_State *L;
    tk_pipeline p;
} tk_session;

/* Runs the script, applies --set in order, builds the pipeline and applies the thread count.
 * On failure the message is in s->ctx; close the session either way. */
tk_status tk_session_open(tk_session *s, const tk_cli *c);
void tk_session_close(tk_session *s);

/* Loads --weights W into the session's model, strictly (every tensor present, same shapes):
 * W is a .safetensors file, or a run directory (its checkpoints/best.safetensors, else
 * checkpoints/last.safetensors). The path used is copied into `used` when not NULL. */
tk_status tk_session_load_weights(tk_session *s, const char *weights, char *used, size_t cap);

/* s as a JSON string literal (quotes, backslashes and control characters escaped). */
void tk_cli_json_string(FILE *f, const char *s);

/* Prints "tkrun: <message>" for a failed status and returns the exit code. */
int tk_cli_exit(tk_status st, tk_ctx *ctx);
/* Prints "tkrun: <message>" and the command's usage; returns exit code 2. */
int tk_cli_usage_error(const char *command, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The train and check commands (cmd_train.c), summary (cmd_summary.c). */
int tk_cmd_train(const tk_cli *c);
int tk_cmd_check(const tk_cli *c);
int tk_cmd_summary(const tk_cli *c);
/* The Lua REPL over the compiled pipeline (repl.c). */
int tk_cmd_repl(const tk_cli *c);
/* Training's progress output (progress.c): a tqdm-style bar on stderr when it is a terminal
 * (and not quiet), the epoch lines on stdout (--quiet: only the last one). Pass
 * tk_progress_out_report as the progress callback, the tk_progress_out as its user data. */
typedef struct {
    bool bar, quiet, has_valid, drawn;
    char pending[512];         /* the train half of an epoch line, waiting for valid */
    char last[720];            /* --quiet: the latest epoch line, shown once at the end */
    double last_draw;
} tk_progress_out;
void tk_progress_out_init(tk_progress_out *po, bool quiet, bool has_valid);
void tk_progress_out_report(const tk_progress *p, void *ud);
/* When training ends: clears the bar; under --quiet prints the last epoch line. */
void tk_progress_out_finish(tk_progress_out *po);

/* tkrun eval (cmd_eval.c). */
int tk_cmd_eval(const tk_cli *c);
/* tkrun predict (cmd_predict.c). */
int tk_cmd_predict(const tk_cli *c);
/* tkrun export (cmd_export.c). */
int tk_cmd_export(const tk_cli *c);

#endif
