/* spec.h - what spec.c and spec_data.c share: reading the fields of a table the stdlib has
 * validated and resolved. Every default lives in the stdlib's schemas, so an absent field
 * means "not given" (0, false, NULL) and C adds none. Internal to lang/. */
#ifndef TK_SPEC_H
#define TK_SPEC_H

#include "lang.h"

#include <lauxlib.h>
#include <string.h>

static inline double num_at(lua_State *L, int t, const char *k)
{
    lua_getfield(L, t, k);
    double v = lua_isnumber(L, -1) ? lua_tonumber(L, -1) : 0;
    lua_pop(L, 1);
    return v;
}

static inline bool flag_at(lua_State *L, int t, const char *k)
{
    lua_getfield(L, t, k);
    bool v = lua_toboolean(L, -1);
    lua_pop(L, 1);
    return v;
}

/* The string stays valid while the table holds it. */
static inline const char *str_at(lua_State *L, int t, const char *k)
{
    lua_getfield(L, t, k);
    const char *v = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
    lua_pop(L, 1);
    return v;
}

static inline bool str_is(lua_State *L, int t, const char *k, const char *want)
{
    const char *v = str_at(L, t, k);
    return v && strcmp(v, want) == 0;
}

/* The script line a table came from, for messages. */
static inline const char *where_at(lua_State *L, int t, const char *fallback)
{
    const char *w = str_at(L, t, "_where");
    return w ? w : fallback;
}

static inline tk_status out_of_memory(tk_ctx *ctx)
{
    return tk_fail(ctx, TK_ERR_RUNTIME, "out of memory");
}

/* Load, split, normalise and augment the data = {...} of the pipeline table at `pipe` into
 * p->datasets and p->views, and note each split in p->data_note. `float_labels`: the task's
 * labels are numbers, not class ids. */
tk_status tk_spec_data(lua_State *L, int pipe, tk_pipeline *p, bool float_labels, tk_ctx *ctx);

#endif
