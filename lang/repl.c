/* repl.c - the repl command (tkrun repl SCRIPT, tkrun -i SCRIPT): lua.c's read-eval-print
 * loop over the session's Lua state: `=expr` and bare expressions print all their values,
 * a chunk cut short at <eof> continues on the next line, errors print a traceback and the
 * loop goes on. On a terminal: libedit line editing, a history file ($TKRUN_HISTORY, else
 * ~/.tkrun_history), Tab completion of fields (P:, model., tk.nn.); Ctrl-C stops a running
 * command (training at a step boundary) or clears the line. Piped stdin reads the same
 * commands with no prompts. Not here: the globals P, model, data, opt (lmodule.c). */
#include "lmodule.h"

#include <ctype.h>
#include <editline/readline.h>
#include <lauxlib.h>
#include <lualib.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

volatile int tk_repl_interrupted, tk_repl_training;

static lua_State *repl_L;          /* for the signal handler's hook and for completion */
static volatile sig_atomic_t running;

/* ---------------------------------------------------------------- signals */

/* Stops Lua code only: raising in a C function (the traceback handler, a method that is
 * reporting an error of its own) would replace that error. */
static void stop_hook(lua_State *L, lua_Debug *ar)
{
    if (lua_getinfo(L, "S", ar) && ar->what[0] == 'C')
        return;
    lua_sethook(L, NULL, 0, 0);
    luaL_error(L, "interrupted!");
}

/* While a command runs: the stepper sees the flag at its next step boundary; Lua code stops
 * at its next instruction (lua.c's way: a hook set from the handler, which is safe). */
static pthread_t repl_thread;

static void on_sigint(int sig)
{
    /* The kernel may hand the process's SIGINT to any thread that does not block it (the
     * runtime's threads block it, a library's may not); only the REPL's thread's read
     * returns early on it. */
    if (!pthread_equal(pthread_self(), repl_thread)) {
        pthread_kill(repl_thread, sig);
        return;
    }
    tk_repl_interrupted = 1;
    if (running && !tk_repl_training)
        lua_sethook(repl_L, stop_hook, LUA_MASKCALL | LUA_MASKRET | LUA_MASKCOUNT, 1);
}

/* Set while readline waits only: elsewhere a SIGCONT without SA_RESTART would cut short the
 * writes of a training run the REPL started. */
static volatile sig_atomic_t continued;

static void on_sigcont(int sig)
{
    (void)sig;
    continued = 1;
}

static void catch_sigcont(bool on)
{
    struct sigaction sa = {.sa_handler = on ? on_sigcont : SIG_DFL};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGCONT, &sa, NULL);
}

/* ---------------------------------------------------------------- running a chunk */

static int msghandler(lua_State *L)
{
    const char *msg = lua_tostring(L, 1);
    if (!msg) {
        if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
            return 1;
        msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
    }
    luaL_traceback(L, L, msg, 1);
    return 1;
}

static void report(lua_State *L, int status)
{
    if (status == LUA_OK)
        return;
    const char *msg = lua_tostring(L, -1);
    fprintf(stderr, "%s\n", msg ? msg : "(error object is not a string)");
    fflush(stderr);
    lua_pop(L, 1);
}

/* Calls the function at the top with no arguments, all results left on the stack. */
static int docall(lua_State *L)
{
    int base = lua_gettop(L);
    lua_pushcfunction(L, msghandler);
    lua_insert(L, base);
    tk_repl_interrupted = 0;
    tk_repl_training = 0;
    running = 1;
    int status = lua_pcall(L, 0, LUA_MULTRET, base);
    running = 0;
    lua_sethook(L, NULL, 0, 0);
    lua_remove(L, base);
    fflush(stdout);
    return status;
}

/* Tables print as their contents ({accuracy = 0.93, loss = 0.21}), three levels deep and
 * 40 entries wide; a tensor inside one shows as its shape. The rest as print shows it. */
static const char show_source[] =
    "local show\n"
    "local function key(k)\n"
    "  if type(k) == 'string' and k:match('^[%a_][%w_]*$') then return k end\n"
    "  return '[' .. show(k, 3) .. ']'\n"
    "end\n"
    "show = function(v, depth)\n"
    "  local mt = getmetatable(v)\n"
    "  if mt and mt.__name == 'tk.tensor' and depth > 0 then\n"
    "    return 'tensor(size=(' .. table.concat(v.shape, ', ') .. '), dtype=' .. v.dtype .. ')'\n"
    "  end\n"
    "  if type(v) == 'string' then return depth > 0 and string.format('%q', v) or v end\n"
    "  if type(v) ~= 'table' or (mt and mt.__tostring) then return tostring(v) end\n"
    "  if depth >= 3 then return '{...}' end\n"
    "  local parts, n, keys = {}, #v, {}\n"
    "  for i = 1, n do parts[#parts + 1] = show(v[i], depth + 1) end\n"
    "  for k in pairs(v) do\n"
    "    if not (math.type(k) == 'integer' and k >= 1 and k <= n) then keys[#keys + 1] = k end\n"
    "  end\n"
    "  table.sort(keys, function(a, b) return tostring(a) < tostring(b) end)\n"
    "  for _, k in ipairs(keys) do parts[#parts + 1] = key(k) .. ' = ' .. show(v[k], depth + 1) end\n"
    "  if #parts > 40 then parts = {table.unpack(parts, 1, 40)}; parts[41] = '...' end\n"
    "  return '{' .. table.concat(parts, ', ') .. '}'\n"
    "end\n"
    "return function(...)\n"
    "  local out = table.pack(...)\n"
    "  for i = 1, out.n do\n"
    "    if type(out[i]) == 'table' then out[i] = show(out[i], 0) end\n"
    "  end\n"
    "  return table.unpack(out, 1, out.n)\n"
    "end\n";
static int show_ref = LUA_NOREF;

/* Prints the values on the stack with the global print, as lua.c does (tables shown). */
static void print_results(lua_State *L)
{
    int n = lua_gettop(L);
    if (n == 0)
        return;
    luaL_checkstack(L, LUA_MINSTACK, "too many results to print");
    if (show_ref != LUA_NOREF) {
        lua_rawgeti(L, LUA_REGISTRYINDEX, show_ref);
        lua_insert(L, 1);
        if (lua_pcall(L, n, LUA_MULTRET, 0) != LUA_OK)
            lua_settop(L, 0); /* cannot happen short of memory: print nothing */
        n = lua_gettop(L);
    }
    lua_getglobal(L, "print");
    lua_insert(L, 1);
    if (lua_pcall(L, n, 0, 0) != LUA_OK)
        fprintf(stderr, "%s\n", lua_pushfstring(L, "error calling 'print' (%s)",
                                                lua_tostring(L, -1)));
    lua_settop(L, 0);
}

/* ---------------------------------------------------------------- reading lines */

static bool tty;

/* One line without its newline (malloc'd), or NULL at the end of input. */
static char *read_line(const char *prompt)
{
    if (tty) {
        for (;;) {
            tk_repl_interrupted = 0;
            continued = 0;
            catch_sigcont(true);
            char *line = readline(prompt);
            catch_sigcont(false);
            if (line || !(tk_repl_interrupted || continued))
                return line;
            /* Ctrl-C at the prompt ends readline early: a fresh prompt, not the end. After a
             * stop (Ctrl-Z, fg) the shell has put the terminal back in its own mode: readline
             * starts over, which sets up its mode again and redraws the prompt. */
            if (tk_repl_interrupted)
                fputc('\n', stdout);
        }
    }
    char *line = NULL;
    size_t cap = 0;
    ssize_t n = getline(&line, &cap, stdin);
    if (n < 0) {
        free(line);
        return NULL;
    }
    if (n > 0 && line[n - 1] == '\n')
        line[n - 1] = 0;
    return line;
}

/* A syntax error at <eof> means the chunk is unfinished (lua.c's test). */
static bool incomplete(lua_State *L, int status)
{
    if (status != LUA_ERRSYNTAX)
        return false;
    size_t len;
    const char *msg = lua_tolstring(L, -1, &len);
    static const char mark[] = "<eof>";
    if (len >= sizeof mark - 1 && strcmp(msg + len - (sizeof mark - 1), mark) == 0) {
        lua_pop(L, 1);
        return true;
    }
    return false;
}

/* Loads one command: "return <line>" if that compiles (so expressions print), else the
 * line as statements, reading more lines while it is unfinished. Leaves the function (or
 * the error message) on the stack; *text gets the whole command for the history. Returns
 * -1 at the end of input. */
static int load_command(lua_State *L, char **text)
{
    *text = read_line("> ");
    if (!*text)
        return -1;
    const char *line = (*text)[0] == '=' ? *text + 1 : *text;
    lua_pushfstring(L, "return %s;", line);
    size_t len;
    const char *ret = lua_tolstring(L, -1, &len);
    int status = luaL_loadbuffer(L, ret, len, "=stdin");
    lua_remove(L, -2);
    if (status == LUA_OK)
        return status;
    lua_pop(L, 1);
    if ((*text)[0] == '=') /* "=x" is always an expression: report its own error */
        memmove(*text, *text + 1, strlen(*text));
    for (;;) {
        status = luaL_loadbuffer(L, *text, strlen(*text), "=stdin");
        if (!incomplete(L, status))
            return status;
        char *more = read_line(">> ");
        if (!more)
            return status == LUA_OK ? status : (lua_pushstring(L, "unfinished chunk at the "
                                                               "end of input"), LUA_ERRSYNTAX);
        size_t a = strlen(*text), b = strlen(more);
        char *joined = malloc(a + b + 2);
        if (!joined) {
            free(more);
            lua_pushstring(L, "out of memory");
            return LUA_ERRMEM;
        }
        memcpy(joined, *text, a);
        joined[a] = '\n';
        memcpy(joined + a + 1, more, b + 1);
        free(*text);
        free(more);
        *text = joined;
    }
}

/* ---------------------------------------------------------------- tab completion */

static char **candidates;
static int n_candidates, next_candidate;

static void add_candidate(const char *prefix, size_t plen, const char *name)
{
    for (int i = 0; i < n_candidates; i++)
        if (strcmp(candidates[i] + plen, name) == 0)
            return;
    char **grown = realloc(candidates, sizeof *candidates * (size_t)(n_candidates + 1));
    char *s = malloc(plen + strlen(name) + 1);
    if (!grown || !s) {
        free(s);
        if (grown)
            candidates = grown;
        return;
    }
    candidates = grown;
    memcpy(s, prefix, plen);
    strcpy(s + plen, name);
    candidates[n_candidates++] = s;
}

static bool identifier(const char *s)
{
    if (!(isalpha((unsigned char)*s) || *s == '_'))
        return false;
    for (; *s; s++)
        if (!(isalnum((unsigned char)*s) || *s == '_'))
            return false;
    return true;
}

/* Collects the names the value at the top offers that start with `word`: its string keys
 * (a table), its metatable's __index table keys and __fields list. Runs protected: it may
 * call __index metamethods. Arguments: the text before the word (light userdata), its
 * length, the word, whether a method (':') is wanted. */
static void collect_keys(lua_State *L, int v, const char *prefix, size_t plen,
                         const char *word, bool methods)
{
    size_t wlen = strlen(word);
    int top = lua_gettop(L);
    for (int pass = 0; pass < 3; pass++) {
        lua_settop(L, top);
        int t;
        if (pass == 0) {
            if (!lua_istable(L, v))
                continue;
            t = v;
        } else {
            if (!lua_getmetatable(L, v))
                continue;
            if (lua_getfield(L, -1, pass == 1 ? "__index" : "__fields") != LUA_TTABLE)
                continue;
            t = lua_gettop(L);
        }
        for (lua_pushnil(L); lua_next(L, t); lua_pop(L, 1)) {
            const char *name = pass == 2 ? lua_tostring(L, -1)
                               : lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : NULL;
            if (!name || !identifier(name) || strncmp(name, word, wlen) != 0)
                continue;
            if (methods) {
                lua_pushvalue(L, v);
                int type = lua_getfield(L, -1, name);
                lua_pop(L, 2);
                if (type != LUA_TFUNCTION)
                    continue;
            }
            add_candidate(prefix, plen, name);
        }
    }
    lua_settop(L, top);
}

static int complete_protected(lua_State *L)
{
    const char *text = lua_touserdata(L, 1);
    size_t last = 0;
    bool methods = false;
    for (size_t i = 0; text[i]; i++)
        if (text[i] == '.' || text[i] == ':') {
            last = i + 1;
            methods = text[i] == ':';
        }
    lua_pushglobaltable(L);
    if (last == 0) {
        collect_keys(L, lua_gettop(L), "", 0, text, false);
        static const char *const keywords[] = {"and", "break", "do", "else", "elseif", "end",
                                               "false", "for", "function", "goto", "if", "in",
                                               "local", "nil", "not", "or", "repeat", "return",
                                               "then", "true", "until", "while", NULL};
        for (int k = 0; keywords[k]; k++)
            if (strncmp(keywords[k], text, strlen(text)) == 0)
                add_candidate("", 0, keywords[k]);
        return 0;
    }
    /* Walk a.b.c from the globals; a ':' may only come last. */
    char part[256];
    for (size_t i = 0; i + 1 < last;) {
        size_t n = strcspn(text + i, ".:");
        if (n == 0 || n >= sizeof part || (text[i + n] == ':' && i + n + 1 != last))
            return 0;
        memcpy(part, text + i, n);
        part[n] = 0;
        if (!identifier(part) || !(lua_istable(L, -1) || lua_isuserdata(L, -1) ||
                                   lua_isstring(L, -1)))
            return 0;
        lua_getfield(L, -1, part);
        i += n + 1;
    }
    collect_keys(L, lua_gettop(L), text, last, text + last, methods);
    return 0;
}

static char *generator(const char *text, int state)
{
    if (state == 0) {
        for (int i = next_candidate; i < n_candidates; i++)
            free(candidates[i]);
        n_candidates = next_candidate = 0;
        lua_State *L = repl_L;
        int top = lua_gettop(L);
        lua_pushcfunction(L, complete_protected);
        lua_pushlightuserdata(L, (void *)text);
        lua_pcall(L, 1, 0, 0); /* an error just means no candidates */
        lua_settop(L, top);
    }
    return next_candidate < n_candidates ? candidates[next_candidate++] : NULL;
}

static char **complete(const char *text, int start, int end)
{
    (void)start;
    (void)end;
    rl_attempted_completion_over = 1; /* never fall back to file names */
    return rl_completion_matches(text, generator);
}

/* ---------------------------------------------------------------- the loop */

static void history_path(char *buf, size_t cap)
{
    const char *env = getenv("TKRUN_HISTORY"), *home = getenv("HOME");
    if (env && *env)
        snprintf(buf, cap, "%s", env);
    else if (home && *home)
        snprintf(buf, cap, "%s/.tkrun_history", home);
    else
        buf[0] = 0;
}

static void loop(lua_State *L, const char *name)
{
    char history[4096];
    if (luaL_loadbuffer(L, show_source, sizeof show_source - 1, "=show") == LUA_OK &&
        lua_pcall(L, 0, 1, 0) == LUA_OK)
        show_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_settop(L, 0);
    if (tty) {
        history_path(history, sizeof history);
        /* libedit's signal handlers swap themselves with ours and raise each signal again; a
         * Ctrl-C at the prompt then now and then met no handler and killed the process. With
         * them off, on_sigint alone takes SIGINT and on_sigcont restarts the line after fg. */
        rl_catch_signals = 0;
        rl_readline_name = "tkrun";
        rl_attempted_completion_function = complete;
        rl_basic_word_break_characters = " \t\n\"\\'`@$><=;|&{}()[],+-*/%^~#";
        rl_completion_append_character = '\0';
        using_history();
        stifle_history(1000);
        if (history[0])
            read_history(history);
        printf("tkrun %s REPL (%s), P is the pipeline '%s': help() shows what it can do\n",
               TK_VERSION, LUA_RELEASE, name);
        fflush(stdout);
    }
    for (;;) {
        char *text = NULL;
        lua_settop(L, 0);
        int status = load_command(L, &text);
        if (status == -1)
            break;
        if (tty && text[0]) {
            add_history(text);
            if (history[0])
                write_history(history);
        }
        free(text);
        if (status == LUA_OK)
            status = docall(L);
        if (status == LUA_OK)
            print_results(L);
        else
            report(L, status);
    }
    lua_settop(L, 0);
    if (tty)
        fputc('\n', stdout);
}

int tk_cmd_repl(const tk_cli *c)
{
    tk_session s;
    tk_status st = tk_session_open(&s, c);
    if (st == TK_OK)
        st = tk_lmodule_open(s.L, &s);
    if (st == TK_OK) {
        repl_L = s.L;
        repl_thread = pthread_self();
        tty = isatty(STDIN_FILENO);
        struct sigaction sa = {.sa_handler = on_sigint}; /* no SA_RESTART: readline returns */
        sigemptyset(&sa.sa_mask);
        sigaction(SIGINT, &sa, NULL);
        loop(s.L, s.p.name);
        signal(SIGINT, SIG_DFL);
        tk_lmodule_close(s.L);
        for (int i = next_candidate; i < n_candidates; i++)
            free(candidates[i]);
        free(candidates);
    }
    int rc = tk_cli_exit(st, s.ctx);
    tk_session_close(&s);
    return rc;
}
