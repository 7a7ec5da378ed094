/* load.c - the Lua state: standard libraries, the stdlib (embedded in the binary, or read from
 * $TK_STDLIB_DIR for development), running the user's script in protected mode, and the
 * stdlib calls the CLI needs (--set, describe). Not here: turning the spec into C calls
 * (spec.c). */
#include "lang.h"

#include <lauxlib.h>
#include <lualib.h>
#include <stdlib.h>
#include <string.h>

extern const struct {
    const char *name;
    const char *src;
    size_t len;
} tk_stdlib_files[];

/* package.searchers entry for "tk" and "tk.*". */
static int search_stdlib(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
    char mod[256];
    if (strcmp(name, "tk") == 0)
        snprintf(mod, sizeof mod, "tk.init");
    else if (strncmp(name, "tk.", 3) == 0)
        snprintf(mod, sizeof mod, "%s", name);
    else
        return 0;
    const char *dir = getenv("TK_STDLIB_DIR");
    if (dir && dir[0]) {
        char path[4096];
        snprintf(path, sizeof path, "%s/tk/%s.lua", dir, mod + 3);
        if (luaL_loadfile(L, path) != LUA_OK)
            return lua_error(L);
        lua_pushstring(L, path);
        return 2;
    }
    for (int i = 0; tk_stdlib_files[i].name; i++) {
        if (strcmp(tk_stdlib_files[i].name, mod) != 0)
            continue;
        char chunk[300];
        snprintf(chunk, sizeof chunk, "=[tkrun stdlib %s]", mod);
        if (luaL_loadbuffer(L, tk_stdlib_files[i].src, tk_stdlib_files[i].len, chunk) != LUA_OK)
            return lua_error(L);
        lua_pushstring(L, mod);
        return 2;
    }
    lua_pushfstring(L, "\n\tno stdlib module '%s'", name);
    return 1;
}

lua_State *tk_lua_new(void)
{
    lua_State *L = luaL_newstate();
    if (!L)
        return NULL;
    luaL_openlibs(L);
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "searchers");
    lua_pushcfunction(L, search_stdlib);
    lua_rawseti(L, -2, 2); /* before the path searchers: the stdlib is not overridable */
    lua_pop(L, 2);
    return L;
}

static int traceback_handler(lua_State *L)
{
    /* Script errors already carry "file:line:"; a traceback would only add noise. */
    if (!lua_isstring(L, 1))
        lua_pushstring(L, "error object is not a string");
    return 1;
}

static tk_status pcall(lua_State *L, int nargs, int nresults, tk_ctx *ctx)
{
    int base = lua_gettop(L) - nargs;
    lua_pushcfunction(L, traceback_handler);
    lua_insert(L, base);
    int rc = lua_pcall(L, nargs, nresults, base);
    lua_remove(L, base);
    if (rc != LUA_OK) {
        tk_fail(ctx, TK_ERR_INPUT, "%s", lua_tostring(L, -1));
        lua_pop(L, 1);
        return TK_ERR_INPUT;
    }
    return TK_OK;
}

static tk_status require_tk(lua_State *L, tk_ctx *ctx)
{
    lua_getglobal(L, "require");
    lua_pushstring(L, "tk");
    return pcall(L, 1, 1, ctx);
}

tk_status tk_lua_run_script(lua_State *L, const char *path, tk_ctx *ctx)
{
    if (require_tk(L, ctx) != TK_OK)
        return TK_ERR_INPUT;
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = 0;
    else
        strcpy(dir, ".");
    lua_pushstring(L, dir);
    lua_setfield(L, -2, "script_dir");
    lua_setglobal(L, "tk");
    if (luaL_loadfile(L, path) != LUA_OK) {
        tk_fail(ctx, TK_ERR_INPUT, "%s", lua_tostring(L, -1));
        lua_pop(L, 1);
        return TK_ERR_INPUT;
    }
    if (pcall(L, 0, 1, ctx) != TK_OK)
        return TK_ERR_INPUT;
    lua_getfield(L, -1, "_kind");
    bool ok = lua_type(L, -1) == LUA_TSTRING && strcmp(lua_tostring(L, -1), "pipeline") == 0;
    lua_pop(L, 1);
    if (!ok) {
        lua_pop(L, 1);
        return tk_fail(ctx, TK_ERR_INPUT, "%s: the script must end with "
                       "`return tk.pipeline { ... }`", path);
    }
    return TK_OK;
}

tk_status tk_lua_set(lua_State *L, const char *assignment, tk_ctx *ctx)
{
    const char *eq = strchr(assignment, '=');
    if (!eq || eq == assignment)
        return tk_fail(ctx, TK_ERR_INPUT, "--set %s: expected key=value", assignment);
    lua_getglobal(L, "tk");
    lua_getfield(L, -1, "set");
    lua_remove(L, -2);
    lua_pushvalue(L, -2);
    lua_pushlstring(L, assignment, (size_t)(eq - assignment));
    lua_pushstring(L, eq + 1);
    if (pcall(L, 3, 1, ctx) != TK_OK)
        return TK_ERR_INPUT;
    lua_replace(L, -2);
    return TK_OK;
}

char *tk_lua_describe(lua_State *L, tk_ctx *ctx)
{
    lua_getglobal(L, "tk");
    lua_getfield(L, -1, "describe");
    lua_remove(L, -2);
    lua_pushvalue(L, -2);
    if (pcall(L, 1, 1, ctx) != TK_OK)
        return NULL;
    char *s = strdup(lua_tostring(L, -1) ? lua_tostring(L, -1) : "");
    lua_pop(L, 1);
    return s;
}
