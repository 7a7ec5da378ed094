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

/* A non-string error object (error({...}) in a script) as text: its __tostring, else a short
 * rendering of a table's fields, so the user sees what was raised. */
static void push_error_text(lua_State *L, int idx)
{
    idx = lua_absindex(L, idx);
    if (luaL_getmetafield(L, idx, "__tostring") != LUA_TNIL) {
        lua_pop(L, 1);
        luaL_tolstring(L, idx, NULL);
        return;
    }
    if (lua_type(L, idx) != LUA_TTABLE) {
        lua_pushfstring(L, "error object is a %s value", luaL_typename(L, idx));
        return;
    }
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    luaL_addstring(&b, "error object {");
    int n = 0;
    for (lua_pushnil(L); lua_next(L, idx); lua_pop(L, 1)) {
        if (n++ == 8) {
            luaL_addstring(&b, ", ...");
            lua_pop(L, 2);
            break;
        }
        if (n > 1)
            luaL_addstring(&b, ", ");
        /* Copies: luaL_tolstring on the key itself would confuse lua_next. */
        const char *key = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : NULL;
        if (key)
            lua_pushfstring(L, "%s = ", key);
        else
            lua_pushfstring(L, "[%s] = ", luaL_tolstring(L, -2, NULL));
        if (!key)
            lua_remove(L, -2);
        luaL_addvalue(&b);
        if (lua_type(L, -1) == LUA_TSTRING)
            lua_pushfstring(L, "\"%s\"", lua_tostring(L, -1));
        else if (lua_type(L, -1) == LUA_TTABLE)
            lua_pushstring(L, "{...}");
        else
            luaL_tolstring(L, -1, NULL);
        luaL_addvalue(&b);
    }
    luaL_addstring(&b, "}");
    luaL_pushresult(&b);
}

static int traceback_handler(lua_State *L)
{
    /* Script errors already carry "file:line:"; a traceback would only add noise. */
    if (lua_isstring(L, 1))
        return 1;
    /* Anything else carries no position: add the innermost script line that raised it. */
    lua_Debug ar;
    const char *where = "";
    for (int level = 1; lua_getstack(L, level, &ar); level++) {
        if (lua_getinfo(L, "Sl", &ar) && ar.currentline > 0) {
            where = lua_pushfstring(L, "%s:%d: ", ar.short_src, ar.currentline);
            break;
        }
    }
    push_error_text(L, 1);
    lua_pushfstring(L, "%s%s", where, lua_tostring(L, -1));
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

/* tk.<name> from the loaded module (nil if absent), whatever the script did to the global. */
static void push_tk_field(lua_State *L, const char *name)
{
    lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    if (lua_getfield(L, -1, "tk") == LUA_TTABLE)
        lua_getfield(L, -1, name);
    else
        lua_pushnil(L);
    lua_replace(L, -3);
    lua_pop(L, 1);
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
    lua_pushstring(L, path);
    lua_setfield(L, -2, "script_path");
    lua_setglobal(L, "tk");
    if (luaL_loadfile(L, path) != LUA_OK) {
        tk_fail(ctx, TK_ERR_INPUT, "%s", lua_tostring(L, -1));
        lua_pop(L, 1);
        return TK_ERR_INPUT;
    }
    if (pcall(L, 0, 1, ctx) != TK_OK)
        return TK_ERR_INPUT;
    /* The host goes on through the global `tk`, whatever the script assigned to it. */
    lua_getfield(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    lua_getfield(L, -1, "tk");
    lua_setglobal(L, "tk");
    lua_pop(L, 1);
    /* Only a table tk.pipeline built: spec.c reads its fields without checking them again. */
    push_tk_field(L, "is_pipeline");
    bool ok = false;
    if (lua_isfunction(L, -1)) {
        lua_pushvalue(L, -2);
        ok = lua_pcall(L, 1, 1, 0) == LUA_OK && lua_toboolean(L, -1);
    }
    lua_pop(L, 1);
    if (!ok) {
        int t = lua_type(L, -1);
        lua_pop(L, 1);
        return tk_fail(ctx, TK_ERR_INPUT, "%s: must return tk.pipeline{...} (it returned %s)",
                       path, t == LUA_TNIL ? "nothing" : t == LUA_TTABLE
                       ? "a table tk.pipeline did not build" : t == LUA_TNUMBER ? "a number"
                       : "another value");
    }
    return TK_OK;
}

tk_status tk_lua_set(lua_State *L, const char *assignment, tk_ctx *ctx)
{
    const char *eq = strchr(assignment, '=');
    if (!eq || eq == assignment)
        return tk_fail(ctx, TK_ERR_INPUT, "--set %s: expected key=value", assignment);
    push_tk_field(L, "set");
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
    push_tk_field(L, "describe");
    lua_pushvalue(L, -2);
    if (pcall(L, 1, 1, ctx) != TK_OK)
        return NULL;
    char *s = strdup(lua_tostring(L, -1) ? lua_tostring(L, -1) : "");
    lua_pop(L, 1);
    return s;
}
