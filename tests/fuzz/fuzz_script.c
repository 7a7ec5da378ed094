/* fuzz_script.c - libFuzzer target for the script loader's value conversions: each input line
 * is one `--set key=value` applied to a pipeline that uses every kind of constructor, then the
 * pipeline is built (lang/spec.c reads the Lua tables into C specs, the data loads, the model
 * compiles) and described. Every input must build or fail with a message; nothing may crash,
 * leak or hang. Keys naming files (path, init, images, labels) are skipped: the file readers
 * have their own target (fuzz_data), and a fuzzed path could name /dev/zero.
 * Not here: running fuzzed Lua code (a script is the user's own program). */
#include "lang.h"

#include <lua.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char script[256];
/* One Lua state for every input: loading the stdlib costs more than an input does. Each input
 * runs the script afresh, so no table is shared between inputs. */
static lua_State *L;

static const char base_lua[] =
    "return tk.pipeline {\n"
    "  name = 'fuzz', seed = 3, threads = 1,\n"
    "  data = {\n"
    "    train = tk.data.csv { path = 'd.csv', normalize = 'standard' },\n"
    "    valid = tk.data.split { fraction = 0.25 },\n"
    "    batch_size = 4, shuffle = true,\n"
    "  },\n"
    "  model = tk.nn.sequential {\n"
    "    tk.nn.reshape { 1, 2, 2 }, tk.nn.conv2d { out_channels = 2, kernel_size = 1 },\n"
    "    tk.nn.batch_norm2d(), tk.nn.relu(), tk.nn.flatten(),\n"
    "    tk.nn.linear(6), tk.nn.dropout(0.1), tk.nn.linear(3),\n"
    "  },\n"
    "  loss = tk.loss.cross_entropy { label_smoothing = 0.1 },\n"
    "  optimizer = tk.optim.adamw { lr = 0.01, groups = { { match = '*.bias', weight_decay = 0 } } },\n"
    "  schedule = tk.sched.cosine { warmup_steps = 2 },\n"
    "  epochs = 2, metrics = { 'accuracy', 'f1' },\n"
    "  save = { best = 'valid.f1', every = 1, keep = 2 },\n"
    "  early_stop = { monitor = 'valid.loss', patience = 3 },\n"
    "}\n";

static void write_text(const char *dir, const char *name, const char *text)
{
    char path[256];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    static char dir[128];
    snprintf(dir, sizeof dir, "/tmp/tkfuzz_script.%d", (int)getpid());
    mkdir(dir, 0700);
    char csv[2048] = "";
    for (int i = 0; i < 24; i++) {
        char row[96];
        snprintf(row, sizeof row, "%d.%d,%d.5,%d,%d.25,%d\n", i % 3, i, i % 5, i % 7, i % 4,
                 i % 3);
        strcat(csv, row);
    }
    write_text(dir, "d.csv", csv);
    write_text(dir, "s.lua", base_lua);
    snprintf(script, sizeof script, "%s/s.lua", dir);
    L = tk_lua_new();
    return L ? 0 : 1;
}

static bool skipped_key(const char *line)
{
    const char *eq = strchr(line, '=');
    size_t n = eq ? (size_t)(eq - line) : strlen(line);
    static const char *const files[] = {"path", "init", "images", "labels"};
    for (size_t k = 0; k < sizeof files / sizeof files[0]; k++) {
        const char *hit = strstr(line, files[k]);
        if (hit && (size_t)(hit - line) < n)
            return true;
    }
    return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 4096 || memchr(data, 0, size))
        return 0;
    char *text = malloc(size + 1);
    memcpy(text, data, size);
    text[size] = 0;
    tk_ctx *ctx = tk_ctx_new();
    lua_settop(L, 0);
    tk_status st = tk_lua_run_script(L, script, ctx);
    if (st != TK_OK) {
        fprintf(stderr, "the base script failed: %s\n", tk_errmsg(ctx));
        abort();
    }
    int lines = 0;
    for (char *line = strtok(text, "\n"); line && lines < 8; line = strtok(NULL, "\n"), lines++) {
        if (skipped_key(line))
            continue;
        tk_clear_error(ctx);
        if (tk_lua_set(L, line, ctx) != TK_OK && !tk_errmsg(ctx)[0])
            abort();   /* an error without a message */
    }
    tk_pipeline p;
    memset(&p, 0, sizeof p);
    tk_clear_error(ctx);
    st = tk_pipeline_build(L, &p, ctx);
    if (st != TK_OK && !tk_errmsg(ctx)[0])
        abort();
    if (st == TK_OK)
        free(tk_lua_describe(L, ctx));
    tk_pipeline_free(&p);
    lua_settop(L, 0);
    lua_gc(L, LUA_GCCOLLECT);
    tk_ctx_free(ctx);
    free(text);
    return 0;
}
