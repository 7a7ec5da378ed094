/* cmd_train.c - the train and check commands: the run directory and its note.log, resume
 * and init, the progress callback (progress.c draws the bar and the epoch lines), signals.
 * Not here: parsing the command line (main.c, cli.c). */
#include "cli.h"
#include "dist.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---------------------------------------------------------------- run directory */

/* The run directory a new run will make (made only once everything verified): --run-dir,
 * which must not hold anything yet (a second run there would mix with the first), or
 * runs/<name>/<stamp>. */
static tk_status choose_run_dir(const tk_cli *c, const tk_pipeline *p, char *out, size_t cap,
                                tk_ctx *ctx)
{
    struct stat st;
    if (c->run_dir) {
        snprintf(out, cap, "%s", c->run_dir);
        if (stat(out, &st) != 0)
            return TK_OK;
        if (!S_ISDIR(st.st_mode))
            return tk_fail(ctx, TK_ERR_INPUT, "--run-dir %s: exists and is not a directory",
                           out);
        DIR *d = opendir(out);
        struct dirent *e = NULL;
        while (d && (e = readdir(d)) != NULL &&
               (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0))
            ;
        if (d)
            closedir(d);
        if (!d || e)
            return tk_fail(ctx, TK_ERR_INPUT, "--run-dir %s: already exists and is not empty "
                           "(a run there would mix with what it holds); continue that run "
                           "with --resume %s, or choose a new directory", out, out);
        return TK_OK;
    }
    char stamp[32];
    time_t t = time(NULL);
    strftime(stamp, sizeof stamp, "%Y%m%d_%H%M%S", localtime(&t));
    snprintf(out, cap, "runs/%s/%s", p->name, stamp);
    for (int k = 2; stat(out, &st) == 0; k++)
        snprintf(out, cap, "runs/%s/%s_%d", p->name, stamp, k);
    return TK_OK;
}

/* Makes the chosen directory; a --run-dir that cannot be made (a file on the way, no
 * permission, a read-only place) is the user's to fix: exit 2. */
static tk_status make_run_dir(const tk_cli *c, const char *dir, tk_ctx *ctx)
{
    if (tk_mkdirs(dir, ctx) == TK_OK)
        return TK_OK;
    if (!c->run_dir)
        return TK_ERR_RUNTIME;
    char why[1024];
    snprintf(why, sizeof why, "%s", tk_errmsg(ctx));
    return tk_fail(ctx, TK_ERR_INPUT, "--run-dir %s: %s", dir, why);
}

static tk_status write_note(const char *dir, lua_State *L, const tk_pipeline *p,
                            const char *init_report, tk_ctx *ctx)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/note.log", dir);
    FILE *f = fopen(path, "a");
    if (!f)
        return tk_fail(ctx, TK_ERR_RUNTIME, "cannot write %s", path);
    char stamp[64];
    time_t t = time(NULL);
    strftime(stamp, sizeof stamp, "%Y-%m-%d %H:%M:%S", localtime(&t));
    lua_getglobal(L, "_VERSION");
    fprintf(f, "tkrun %s  started %s\n%s, %s\nseed %lld, threads %d\n\n", TK_VERSION,
            stamp, lua_tostring(L, -1), tk_blas_info(), (long long)p->seed, tk_threads());
    lua_pop(L, 1);
    fprintf(f, "data\n%s\n", p->data_note ? p->data_note : "");
    if (init_report)
        fprintf(f, "%s\n", init_report);
    char *config = tk_lua_describe(L, ctx);
    fprintf(f, "config\n%s\n\n", config ? config : "(unavailable)");
    free(config);
    tk_print_layers(f, p->model);
    fputc('\n', f);
    tk_print_groups(f, p->model);
    fputc('\n', f);
    return fclose(f) == 0 ? TK_OK : tk_fail(ctx, TK_ERR_RUNTIME, "cannot write %s", path);
}

/* ---------------------------------------------------------------- resume, init */

/* --init WEIGHTS, else the script's init, loaded into the model; the report (tensors
 * matched, renamed, left out) is printed and kept in *text for note.log (free it). check
 * and train share it, so check refuses exactly the files training would. */
static tk_status load_init(const tk_cli *c, tk_pipeline *p, char **text, tk_ctx *ctx)
{
    *text = NULL;
    const char *init = c->init ? c->init : p->init_path;
    if (!init)
        return TK_OK;
    size_t len = 0;
    FILE *report = open_memstream(text, &len);
    tk_status st = tk_model_load_weights(p->model, init, p->renames, c->init ? 0 : p->n_renames,
                                         p->init_strict, report, ctx);
    if (report)
        fclose(report);
    if (*text)
        fputs(*text, stdout);
    return st;
}

/* The runtime calls this once the data and the resume checkpoint have verified and before
 * it writes anything: only then is the run directory made and note.log written, so a
 * refused run leaves nothing behind. */
typedef struct {
    const tk_cli *c;
    lua_State *L;
    const tk_pipeline *p;
    const char *dir, *init_text;
} ready_state;

static tk_status on_ready(void *ud, tk_ctx *ctx)
{
    const ready_state *r = ud;
    if (!r->c->resume) {
        tk_status st = make_run_dir(r->c, r->dir, ctx);
        if (st != TK_OK)
            return st;
        printf("run directory: %s\n", r->dir);
    }
    return write_note(r->dir, r->L, r->p, r->init_text, ctx);
}

/* The run directory a resume continues in: RUN for RUN or RUN/checkpoints/FILE. */
static bool resume_run_dir(const char *from, char *out, size_t cap)
{
    struct stat st;
    if (stat(from, &st) != 0)
        return false;
    snprintf(out, cap, "%s", from);
    if (S_ISDIR(st.st_mode))
        return true;
    char *slash = strrchr(out, '/');
    if (!slash)
        return snprintf(out, cap, ".") > 0;
    *slash = 0;
    slash = strrchr(out, '/');
    const char *last = slash ? slash + 1 : out;
    if (strcmp(last, "checkpoints") == 0) {
        if (slash)
            *slash = 0;
        else
            snprintf(out, cap, ".");
    }
    return true;
}

/* The resolved config (tk.describe) as (key path, value) pairs: "optimizer.lr" -> "0.01".
 * Indentation (two spaces a level) gives the parent keys; "(file:N)" tags are dropped, so a
 * line added to the script, which moves every later tag, changes no value. */
typedef struct {
    char *path, *value;
} config_entry;

static void strip_tags(char *s)
{
    char *w = s;
    for (const char *r = s; *r;) {
        const char *e = r + 1;
        while (*r == '(' && *e && !strchr("() ", *e))
            e++;
        const char *digits = e;
        while (digits > r + 1 && digits[-1] >= '0' && digits[-1] <= '9')
            digits--;
        if (*r == '(' && *e == ')' && digits < e && digits > r + 2 && digits[-1] == ':') {
            while (w > s && w[-1] == ' ')
                w--;
            r = e + 1;
        } else {
            *w++ = *r++;
        }
    }
    while (w > s && w[-1] == ' ')
        w--;
    *w = 0;
}

static void free_entries(config_entry *e, int n)
{
    for (int i = 0; e && i < n; i++) {
        free(e[i].path);
        free(e[i].value);
    }
    free(e);
}

/* One entry per line of `text`; NULL when out of memory. */
static config_entry *config_entries(const char *text, int *n)
{
    enum { DEPTH = 32 };
    char *parents[DEPTH] = {0};
    size_t lines = 1;
    for (const char *c = text; *c; c++)
        lines += *c == '\n';
    config_entry *e = calloc(lines, sizeof *e);
    bool oom = !e;
    *n = 0;
    for (const char *line = text; !oom && *line;) {
        const char *nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line) : strlen(line), indent = 0;
        while (indent < len && line[indent] == ' ')
            indent++;
        int depth = indent / 2 < DEPTH ? (int)(indent / 2) : DEPTH - 1;
        char *body = strndup(line + indent, len - indent);
        line += len + (nl ? 1 : 0);
        if ((oom = !body))
            break;
        strip_tags(body);
        /* "key: value", "key:" (a parent), or a model node "#3 2 = linear(...) <- #2". */
        char *sep = body[0] == '#' ? strchr(body, ' ') : strchr(body, ':');
        const char *value = "";
        if (sep) {
            *sep = 0;
            value = sep[1] == ' ' ? sep + 2 : sep + 1;
        }
        for (int k = depth; k < DEPTH; k++) {
            free(parents[k]);
            parents[k] = NULL;
        }
        parents[depth] = strdup(body);
        size_t plen = 1;
        for (int k = 0; k <= depth; k++)
            plen += (parents[k] ? strlen(parents[k]) : 0) + 1;
        char *path = malloc(plen), *v = strdup(value);
        free(body);
        if ((oom = !path || !v || !parents[depth])) {
            free(path);
            free(v);
            break;
        }
        path[0] = 0;
        for (int k = 0; k <= depth; k++)
            if (parents[k])
                strcat(strcat(path, path[0] ? "." : ""), parents[k]);
        e[(*n)++] = (config_entry){path, v};
    }
    for (int k = 0; k < DEPTH; k++)
        free(parents[k]);
    if (oom) {
        free_entries(e, *n);
        return NULL;
    }
    return e;
}

static const config_entry *find_entry(const config_entry *e, int n, const char *path)
{
    for (int i = 0; i < n; i++)
        if (strcmp(e[i].path, path) == 0)
            return &e[i];
    return NULL;
}

/* Print what the script changed since the checkpoint, value by key path:
 * "optimizer.lr: 0.05 -> 0.01", "- key: old", "+ key: new". Structural changes are refused
 * later by the runtime; this only tells. */
static void print_config_changes(const char *run_dir, const char *config)
{
    char path[4400];
    snprintf(path, sizeof path, "%s/checkpoints/last.safetensors", run_dir);
    tk_st_file *f = NULL;
    if (!config || tk_st_load(path, &f, NULL) != TK_OK)
        return;
    const char *old = tk_st_meta(f, "config");
    int na = 0, nb = 0;
    config_entry *a = old ? config_entries(old, &na) : NULL, *b = config_entries(config, &nb);
    bool any = false;
    for (int i = 0; a && b && i < na + nb; i++) {
        bool was = i < na;
        const config_entry *e = was ? &a[i] : &b[i - na];
        const config_entry *other = find_entry(was ? b : a, was ? nb : na, e->path);
        if (other && (!was || strcmp(other->value, e->value) == 0))
            continue;
        if (!any)
            printf("the script changed since the checkpoint:\n");
        any = true;
        if (other)
            printf("  %s: %s -> %s\n", e->path, e->value, other->value);
        else
            printf("  %s %s%s%s\n", was ? "-" : "+", e->path, e->value[0] ? ": " : "", e->value);
    }
    free_entries(a, na);
    free_entries(b, nb);
    tk_st_free(f);
}

/* ---------------------------------------------------------------- signals, notices */

static volatile int interrupted;

static void on_signal(int sig)
{
    if (interrupted && sig == SIGINT)
        _exit(TK_ERR_INTERRUPTED); /* second Ctrl-C: now, touching no checkpoint */
    interrupted = 1;
    static const char msg[] = "\ntkrun: interrupted: finishing the step and saving "
                              "(Ctrl-C again to quit at once)\n";
    ssize_t w = write(STDERR_FILENO, msg, sizeof msg - 1);
    (void)w;
}

static void on_notice(const char *msg, void *ud)
{
    (void)ud;
    printf("%s\n", msg);
    fflush(stdout);
}

/* Crash tests only: TK_TEST_CRASH=step:N kills the process (SIGKILL) when step N is done,
 * save:N while the Nth checkpoint (.safetensors) is written but not yet renamed into place; int:N and
 * int2:N send one or two SIGINTs (as Ctrl-C would) when step N is done. */
static long crash_step = -1, crash_save = -1, saves, interrupt_step = -1, interrupts;

static void crash_in_save(const char *tmp, const char *path)
{
    (void)tmp;
    size_t n = strlen(path);
    if (n > 12 && strcmp(path + n - 12, ".safetensors") == 0 && ++saves == crash_save)
        raise(SIGKILL);
}

static void setup_crash_test(void)
{
    const char *spec = getenv("TK_TEST_CRASH");
    if (!spec)
        return;
    if (strncmp(spec, "step:", 5) == 0)
        crash_step = strtol(spec + 5, NULL, 10);
    if (strncmp(spec, "int:", 4) == 0 || strncmp(spec, "int2:", 5) == 0) {
        interrupts = spec[3] == '2' ? 2 : 1;
        interrupt_step = strtol(strchr(spec, ':') + 1, NULL, 10);
    }
    if (strncmp(spec, "save:", 5) == 0) {
        crash_save = strtol(spec + 5, NULL, 10);
        tk_set_write_hook(crash_in_save);
    }
}

static void progress_and_crash(const tk_progress *p, void *ud)
{
    tk_progress_out_report(p, ud);
    if (strcmp(p->split, "train") != 0)
        return;
    if (crash_step >= 0 && p->step == crash_step)
        raise(SIGKILL);
    if (interrupt_step >= 0 && p->step == interrupt_step)
        for (; interrupts > 0; interrupts--)
            raise(SIGINT);
}

/* ---------------------------------------------------------------- commands */

/* An argument as the shell reads it back: quoted unless it is plain. */
static void put_arg(FILE *f, const char *a)
{
    bool plain = *a != 0;
    for (const char *c = a; *c && plain; c++)
        plain = strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                       "_-+=.,/:@%", *c) != NULL;
    if (plain) {
        fprintf(f, " %s", a);
        return;
    }
    fputs(" '", f);
    for (const char *c = a; *c; c++)
        fputs(*c == '\'' ? "'\\''" : (char[2]){*c, 0}, f);
    fputc('\'', f);
}

/* The command that continues this run as an uninterrupted one would have gone: the same
 * thread count (bit-exactness depends on it) and every --set/--epochs of this invocation. */
static void print_resume_hint(const tk_cli *c, const char *dir, const char *msg)
{
    fprintf(stderr, "tkrun: %s\ntkrun: resume with: tkrun", msg);
    const tk_dist *dist = tk_dist_world();
    if (dist && dist->size > 1)
        fprintf(stderr, " --ranks %d", dist->size); /* or mpirun -np N as before */
    put_arg(stderr, c->script);
    fputs(" --resume", stderr);
    put_arg(stderr, dir);
    fprintf(stderr, " --threads %d", tk_threads());
    for (int i = 0; i < c->n_sets; i++) {
        fputs(" --set", stderr);
        put_arg(stderr, c->sets[i]);
    }
    fputc('\n', stderr);
}

static tk_status train(const tk_cli *c, lua_State *L, tk_pipeline *p, tk_ctx *ctx)
{
    char dir[4096] = "";
    tk_status st = TK_OK;
    /* Data-parallel: rank 0 alone makes and writes the run directory; all read its name. */
    const tk_dist *dist = tk_dist_world();
    bool writer = !dist || dist->rank == 0;
    if (c->resume) {
        if (!resume_run_dir(c->resume, dir, sizeof dir))
            return tk_fail(ctx, TK_ERR_INPUT, "--resume %s: no such file or directory",
                           c->resume);
    } else {
        tk_status chosen = writer ? choose_run_dir(c, p, dir, sizeof dir, ctx) : TK_OK;
        if (chosen != TK_OK)
            dir[0] = 0;
        st = tk_dist_share(dir, sizeof dir, ctx);
        if (st == TK_OK && !dir[0])
            st = writer ? chosen
                        : tk_fail(ctx, TK_ERR_RUNTIME, "rank 0 could not make the run "
                                  "directory");
    }
    char *config = st == TK_OK ? tk_lua_describe(L, ctx) : NULL;
    if (st == TK_OK && !config)
        st = TK_ERR_INPUT;
    char *init_text = NULL;
    if (st == TK_OK)
        st = load_init(c, p, &init_text, ctx);
    ready_state ready = {c, L, p, dir, init_text};
    if (st == TK_OK) {
        tk_progress_out ps;
        tk_progress_out_init(&ps, c->quiet, p->train.valid != NULL);
        tk_train_opts *o = &p->train;
        o->run_dir = dir;
        o->resume = c->resume ? c->resume : NULL;
        o->config = config;
        o->interrupt = &interrupted;
        o->progress = progress_and_crash;
        o->progress_ud = &ps;
        o->notice = on_notice;
        o->dist = dist;
        o->ready = on_ready;     /* rank 0's: makes the directory, writes note.log */
        o->ready_ud = &ready;
        char *report = NULL;
        size_t report_len = 0;
        o->report = open_memstream(&report, &report_len);
        if (c->resume)
            print_config_changes(dir, config);
        setup_crash_test();
        struct sigaction sa = {.sa_handler = on_signal};
        sigemptyset(&sa.sa_mask);
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);
        st = tk_train(p->model, o, ctx);
        tk_progress_out_finish(&ps);
        if (o->report)
            fclose(o->report);
        /* The test split's per-class table and confusion matrix: shown and kept. */
        if (report && report_len && writer) {
            fputs(report, stdout);
            char path[4200];
            snprintf(path, sizeof path, "%s/test_report.txt", dir);
            FILE *f = fopen(path, "w");
            if (f) {
                fputs(report, f);
                fclose(f);
            }
        }
        free(report);
        if (st == TK_ERR_INTERRUPTED && writer)
            print_resume_hint(c, dir, tk_errmsg(ctx));
    }
    free(init_text);
    free(config);
    return st;
}


int tk_cmd_train(const tk_cli *c)
{
    tk_session s;
    tk_status st = tk_session_open(&s, c);
    if (st == TK_OK)
        st = train(c, s.L, &s.p, s.ctx);
    int rc = tk_cli_exit(st, s.ctx);
    tk_session_close(&s);
    return rc;
}

int tk_cmd_check(const tk_cli *c)
{
    tk_session s;
    tk_status st = tk_session_open(&s, c);
    char *init_text = NULL;
    if (st == TK_OK)
        st = load_init(c, &s.p, &init_text, s.ctx);
    free(init_text);
    if (st == TK_OK)
        st = tk_check_schedule(s.p.model, &s.p.train, s.ctx);
    if (st == TK_OK) {
        tk_print_layers(stdout, s.p.model);
        printf("\n");
        tk_print_groups(stdout, s.p.model);
        printf("\ndata\n%s", s.p.data_note ? s.p.data_note : "");
        printf("\n%s: ok (nothing was run)\n", c->script);
    }
    int rc = tk_cli_exit(st, s.ctx);
    tk_session_close(&s);
    return rc;
}
