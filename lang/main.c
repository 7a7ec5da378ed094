/* main.c - the tkrun command line: the command table, the option table, parsing argv into a
 * tk_cli, help and version. A command is one file with its run function plus one line in
 * `commands`; an option is one line in `options`. Not here: what any command does. */
#include "cli.h"
#include "dist.h"

#include <lauxlib.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const tk_command commands[] = {
    {"train", "SCRIPT [options]", "train the pipeline SCRIPT returns (the default command)",
     "set epochs threads run-dir resume init quiet ranks", 0, tk_cmd_train},
    {"check", "SCRIPT [options]", "compile and validate everything, run no batch",
     "set epochs threads init", 0, tk_cmd_check},
    {"summary", "SCRIPT [options]", "torchinfo's table: shapes, parameters, mult-adds, sizes",
     "set threads", 0, tk_cmd_summary},
    {"repl", "SCRIPT [options]", "a Lua REPL over the compiled pipeline (also: tkrun -i SCRIPT)",
     "set epochs threads", 0, tk_cmd_repl},
    {"eval", "SCRIPT --weights W [options]", "loss, metrics, per-class table and confusion "
     "matrix of a split", "set threads weights split json", 0, tk_cmd_eval},
    {"predict", "SCRIPT --weights W INPUT... [options]", "top-k classes (or values) for "
     "images, CSV rows or .npy arrays", "set threads weights top json", -1, tk_cmd_predict},
    {"export", "SCRIPT --weights W --onnx OUT.onnx", "write the model as ONNX (opset 13)",
     "set threads weights onnx", 0, tk_cmd_export},
};
enum { N_COMMANDS = sizeof commands / sizeof commands[0] };

typedef enum { FLAG_BOOL, FLAG_STRING, FLAG_COUNT } flag_kind;

static const struct {
    const char *name, *value, *help;
    flag_kind kind;
    size_t offset;             /* of the field in tk_cli (strings, ints, bools) */
} options[] = {
    {"set", "KEY=VALUE", "override a script setting (optimizer.lr=3e-4, data.batch_size=32)",
     FLAG_STRING, 0},
    {"epochs", "N", "same as --set epochs=N", FLAG_STRING, 0},
    {"threads", "N", "worker threads (default: the script's threads, else all cores)",
     FLAG_COUNT, offsetof(tk_cli, threads)},
    {"run-dir", "DIR", "where the run goes (default: runs/<name>/<YYYYmmdd_HHMMSS>); must not "
     "exist yet", FLAG_STRING, offsetof(tk_cli, run_dir)},
    {"resume", "CKPT|RUN_DIR", "continue a run exactly where it stopped", FLAG_STRING,
     offsetof(tk_cli, resume)},
    {"init", "WEIGHTS", "start from these weights (fine-tuning; matched by name and shape)",
     FLAG_STRING, offsetof(tk_cli, init)},
    {"weights", "W", "the weights to use (a .safetensors file or a run directory)",
     FLAG_STRING, offsetof(tk_cli, weights)},
    {"split", "NAME", "which data split: train, valid or test (default: test)", FLAG_STRING,
     offsetof(tk_cli, split)},
    {"onnx", "OUT.onnx", "the ONNX file to write", FLAG_STRING, offsetof(tk_cli, onnx)},
    {"top", "K", "how many classes to show per input (default: 5)", FLAG_COUNT,
     offsetof(tk_cli, top_k)},
    {"json", NULL, "print the result as JSON", FLAG_BOOL, offsetof(tk_cli, json)},
    {"quiet", NULL, "no progress output, only the final lines", FLAG_BOOL,
     offsetof(tk_cli, quiet)},
    {"ranks", "N", "train data-parallel on N processes of this machine (runs mpirun -np N; "
     "batch_size stays the global batch)", FLAG_COUNT, offsetof(tk_cli, ranks)},
};
enum { N_OPTIONS = sizeof options / sizeof options[0] };

/* ---------------------------------------------------------------- help */

static const tk_command *find_command(const char *name)
{
    for (int i = 0; i < N_COMMANDS; i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

static bool accepts(const tk_command *cmd, const char *flag)
{
    size_t n = strlen(flag);
    for (const char *f = cmd->flags; (f = strstr(f, flag)) != NULL; f += n)
        if ((f == cmd->flags || f[-1] == ' ') && (f[n] == ' ' || f[n] == 0))
            return true;
    return false;
}

static void print_overview(FILE *f)
{
    fputs("usage: tkrun [COMMAND] SCRIPT [options]\n\ncommands:\n", f);
    for (int i = 0; i < N_COMMANDS; i++)
        fprintf(f, "  %-9s %s\n", commands[i].name, commands[i].summary);
    fputs("  help      tkrun help COMMAND shows a command's options\n\n"
          "tkrun --version prints the versions of tkrun, Lua and OpenBLAS.\n"
          "Exit codes: 0 done, 1 runtime failure, 2 usage/script/data error, 130 interrupted.\n",
          f);
}

static void print_command_help(FILE *f, const tk_command *cmd)
{
    fprintf(f, "usage: tkrun %s %s\n  %s\n\noptions:\n", cmd->name, cmd->args, cmd->summary);
    for (int i = 0; i < N_OPTIONS; i++) {
        if (!accepts(cmd, options[i].name))
            continue;
        char left[48];
        snprintf(left, sizeof left, "--%s%s%s", options[i].name, options[i].value ? " " : "",
                 options[i].value ? options[i].value : "");
        fprintf(f, "  %-24s %s\n", left, options[i].help);
    }
}

static int print_version(void)
{
    printf("tkrun %s\n%s\n%s\n", TK_VERSION, LUA_RELEASE, tk_blas_info());
    return 0;
}

/* The command name nearest to `word` (at most two edits), or NULL. */
static const char *nearest_command(const char *word)
{
    const char *best = NULL;
    int best_d = 3;
    for (int c = 0; c < N_COMMANDS; c++) {
        const char *b = commands[c].name;
        size_t n = strlen(word), m = strlen(b);
        if (n > 32)
            return NULL;
        int d[33][33];
        for (size_t i = 0; i <= n; i++)
            d[i][0] = (int)i;
        for (size_t j = 0; j <= m; j++)
            d[0][j] = (int)j;
        for (size_t i = 1; i <= n; i++)
            for (size_t j = 1; j <= m; j++) {
                int v = d[i - 1][j - 1] + (word[i - 1] != b[j - 1]);
                if (d[i - 1][j] + 1 < v)
                    v = d[i - 1][j] + 1;
                if (d[i][j - 1] + 1 < v)
                    v = d[i][j - 1] + 1;
                if (i > 1 && j > 1 && word[i - 1] == b[j - 2] && word[i - 2] == b[j - 1] &&
                    d[i - 2][j - 2] + 1 < v)
                    v = d[i - 2][j - 2] + 1;
                d[i][j] = v;
            }
        if (d[n][m] < best_d) {
            best_d = d[n][m];
            best = b;
        }
    }
    return best;
}

/* ---------------------------------------------------------------- parsing */

static void free_cli(tk_cli *c)
{
    for (int i = 0; i < c->n_owned; i++)
        free(c->owned[i]);
    free(c->owned);
    free(c->sets);
    free(c->inputs);
}

/* Appends to a growing array of pointers; false when out of memory. */
static bool push(void *array_ptr, int *n, void *item)
{
    void ***array = array_ptr;
    void **grown = realloc(*array, (size_t)(*n + 1) * sizeof(void *));
    if (!grown)
        return false;
    grown[(*n)++] = item;
    *array = grown;
    return true;
}

static int parse_value(const tk_command *cmd, int k, const char *value, tk_cli *c)
{
    const char *name = options[k].name;
    char *field = (char *)c + options[k].offset;
    if (strcmp(name, "set") == 0)
        return push(&c->sets, &c->n_sets, (void *)value) ? 0 : TK_ERR_RUNTIME;
    if (strcmp(name, "epochs") == 0) {
        char *s = malloc(strlen(value) + 8);
        if (!s || !push(&c->owned, &c->n_owned, s)) {
            free(s);
            return TK_ERR_RUNTIME;
        }
        sprintf(s, "epochs=%s", value);
        return push(&c->sets, &c->n_sets, s) ? 0 : TK_ERR_RUNTIME;
    }
    if (options[k].kind == FLAG_COUNT) {
        char *end;
        long n = strtol(value, &end, 10);
        if (!*value || *end || n < 1 || n > 1024)
            return tk_cli_usage_error(cmd->name, "--%s needs an integer in [1, 1024], got '%s'",
                                      name, value);
        *(int *)field = (int)n;
        return 0;
    }
    const char **slot = (const char **)field;
    if (*slot)
        return tk_cli_usage_error(cmd->name, "--%s is given twice ('%s' and '%s')", name, *slot,
                                  value);
    if (!*value)
        return tk_cli_usage_error(cmd->name, "--%s needs a non-empty value", name);
    *slot = value;
    return 0;
}

/* Reads one command's arguments (argv[i..]); returns 0 or an exit code. */
static int parse_args(const tk_command *cmd, int argc, char **argv, int i, tk_cli *c)
{
    c->command = cmd->name;
    for (; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            print_command_help(stdout, cmd);
            return -1;
        }
        if (a[0] != '-' || a[1] == 0) {
            if (!c->script)
                c->script = a;
            else if (cmd->max_inputs < 0 || c->n_inputs < cmd->max_inputs) {
                if (!push(&c->inputs, &c->n_inputs, (void *)a))
                    return TK_ERR_RUNTIME;
            } else
                return tk_cli_usage_error(cmd->name, "unexpected argument '%s' (tkrun %s takes "
                                          "%s)", a, cmd->name, cmd->args);
            continue;
        }
        const char *name = a[1] == '-' ? a + 2 : a + 1;
        char flag[64];
        const char *eq = strchr(name, '=');
        snprintf(flag, sizeof flag, "%.*s", (int)(eq ? (size_t)(eq - name) : strlen(name)),
                 name);
        int k = 0;
        while (k < N_OPTIONS && strcmp(options[k].name, flag) != 0)
            k++;
        if (k == N_OPTIONS)
            return tk_cli_usage_error(cmd->name, "unknown option '%s'", a);
        if (!accepts(cmd, flag))
            return tk_cli_usage_error(cmd->name, "tkrun %s does not take --%s", cmd->name, flag);
        if (options[k].kind == FLAG_BOOL) {
            if (eq)
                return tk_cli_usage_error(cmd->name, "--%s takes no value", flag);
            *((bool *)((char *)c + options[k].offset)) = true;
            continue;
        }
        const char *value = eq ? eq + 1 : (i + 1 < argc ? argv[++i] : NULL);
        if (!value)
            return tk_cli_usage_error(cmd->name, "--%s needs a value (%s)", flag,
                                      options[k].value);
        int rc = parse_value(cmd, k, value, c);
        if (rc)
            return rc;
    }
    if (!c->script)
        return tk_cli_usage_error(cmd->name, "no script given (tkrun %s %s)", cmd->name,
                                  cmd->args);
    if (c->resume && c->init)
        return tk_cli_usage_error(cmd->name, "--resume continues a run and --init starts one "
                                  "from weights: use one");
    if (c->resume && c->run_dir)
        return tk_cli_usage_error(cmd->name, "--resume continues in the run's own directory: "
                                  "drop --run-dir");
    return 0;
}

/* argv[1] is a command, a script, or a mistyped command: `tkrun trian x.lua`. */
static const tk_command *pick_command(int argc, char **argv, int *next, int *rc)
{
    *rc = 0;
    *next = 1;
    if (argc < 2)
        return &commands[0];
    const char *a = argv[1];
    if (strcmp(a, "-i") == 0)
        a = "repl";
    const tk_command *cmd = find_command(a);
    if (cmd) {
        *next = 2;
        return cmd;
    }
    struct stat st;
    bool looks_like_script = a[0] == '-' || strchr(a, '/') || strchr(a, '.') ||
                             stat(a, &st) == 0;
    if (looks_like_script)
        return &commands[0];
    const char *near = nearest_command(a);
    if (near)
        *rc = tk_cli_usage_error(NULL, "unknown command '%s' (did you mean '%s'?)", a, near);
    else
        *rc = tk_cli_usage_error(NULL, "unknown command '%s'", a);
    return NULL;
}

static int help(int argc, char **argv)
{
    if (argc < 3) {
        print_overview(stdout);
        return 0;
    }
    const tk_command *cmd = find_command(strcmp(argv[2], "-i") == 0 ? "repl" : argv[2]);
    if (!cmd) {
        const char *near = nearest_command(argv[2]);
        return near ? tk_cli_usage_error(NULL, "no command '%s' (did you mean '%s'?)", argv[2],
                                         near)
                    : tk_cli_usage_error(NULL, "no command '%s'", argv[2]);
    }
    print_command_help(stdout, cmd);
    return 0;
}

int main(int argc, char **argv)
{
    int rc;
    if (tk_dist_start(&argc, &argv, &rc))
        return rc;
    if (argc < 2) {
        print_overview(stderr);
        return tk_dist_end(TK_ERR_INPUT);
    }
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0)
        return tk_dist_end(print_version());
    if (strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0 ||
        strcmp(argv[1], "-h") == 0)
        return tk_dist_end(help(argc, argv));
    int next;
    const tk_command *cmd = pick_command(argc, argv, &next, &rc);
    if (!cmd)
        return tk_dist_end(rc);
    tk_cli c = {0};
    rc = parse_args(cmd, argc, argv, next, &c);
    if (rc == 0)
        rc = cmd->run(&c);
    else if (rc < 0)
        rc = 0;
    free_cli(&c);
    return tk_dist_end(rc);
}
