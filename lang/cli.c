/* cli.c - what every command does the same way: open a script into a built pipeline, and turn
 * a status into a message and an exit code. Not here: parsing argv (main.c). */
#include "cli.h"

#include <stdarg.h>
#include <string.h>
#include <sys/stat.h>

tk_status tk_session_open(tk_session *s, const tk_cli *c)
{
    memset(s, 0, sizeof *s);
    tk_set_threads(c->threads);
    s->ctx = tk_ctx_new();
    s->L = s->ctx ? tk_lua_new() : NULL;
    if (!s->ctx || !s->L)
        return TK_ERR_RUNTIME;
    tk_status st = tk_lua_run_script(s->L, c->script, s->ctx);
    for (int i = 0; st == TK_OK && i < c->n_sets; i++)
        st = tk_lua_set(s->L, c->sets[i], s->ctx);
    if (st == TK_OK)
        st = tk_pipeline_build(s->L, &s->p, s->ctx);
    if (st == TK_OK && s->p.threads > 0 && c->threads == 0)
        tk_set_threads(s->p.threads);
    return st;
}

void tk_session_close(tk_session *s)
{
    tk_pipeline_free(&s->p);
    if (s->L)
        lua_close(s->L);
    tk_ctx_free(s->ctx);
    memset(s, 0, sizeof *s);
}

tk_status tk_session_load_weights(tk_session *s, const char *weights, char *used, size_t cap)
{
    char path[4200];
    struct stat st;
    if (stat(weights, &st) != 0)
        return tk_fail(s->ctx, TK_ERR_INPUT, "--weights %s: no such file or directory", weights);
    snprintf(path, sizeof path, "%s", weights);
    if (S_ISDIR(st.st_mode)) {
        snprintf(path, sizeof path, "%s/checkpoints/best.safetensors", weights);
        if (stat(path, &st) != 0)
            snprintf(path, sizeof path, "%s/checkpoints/last.safetensors", weights);
        if (stat(path, &st) != 0)
            return tk_fail(s->ctx, TK_ERR_INPUT, "--weights %s: a directory without "
                           "checkpoints/best.safetensors or checkpoints/last.safetensors",
                           weights);
    }
    if (used)
        snprintf(used, cap, "%s", path);
    return tk_model_load_weights(s->p.model, path, NULL, 0, true, NULL, s->ctx);
}

void tk_cli_json_string(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\')
            fprintf(f, "\\%c", c);
        else if (c < 0x20)
            fprintf(f, "\\u%04x", c);
        else
            fputc(c, f);
    }
    fputc('"', f);
}

int tk_cli_exit(tk_status st, tk_ctx *ctx)
{
    if (st != TK_OK && st != TK_ERR_INTERRUPTED)
        fprintf(stderr, "tkrun: %s\n", ctx ? tk_errmsg(ctx) : "out of memory");
    return (int)st;
}

int tk_cli_usage_error(const char *command, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("tkrun: ", stderr);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    if (command)
        fprintf(stderr, "\n(tkrun help %s shows its options)\n", command);
    else
        fputs("\n(tkrun help lists the commands)\n", stderr);
    return TK_ERR_INPUT;
}
