/* ltensor.c - the REPL's tensor userdata: shape, dtype, statistics (mean, std, min, max, sum,
 * norm), 1-based indexing and narrow (views), clone, totable, elementwise + - * / with a
 * tensor of the same shape or a number, and a tostring preview in PyTorch's print format
 * (4 decimals, scientific notation when the magnitudes call for it, "..." beyond 1000
 * elements, 80 columns). Not here: where tensors come from (lmodule.c). */
#include "lmodule.h"

#include <lauxlib.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const fields[] = {"shape", "dtype", "ndim", "numel", "mean", "std", "min",
                                    "max", "sum", "norm", "argmax", "narrow", "clone",
                                    "totable", "size", NULL};

int64_t tk_lt_numel(const tk_ltensor *t)
{
    int64_t n = 1;
    for (int i = 0; i < t->ndim; i++)
        n *= t->shape[i];
    return n;
}

static void contiguous_strides(tk_ltensor *t)
{
    int64_t s = 1;
    for (int i = t->ndim - 1; i >= 0; i--) {
        t->stride[i] = s;
        s *= t->shape[i];
    }
}

tk_ltensor *tk_lt_new(lua_State *L, int ndim, const int64_t *shape, bool ints)
{
    int64_t n = 1;
    for (int i = 0; i < ndim; i++)
        n *= shape[i];
    size_t head = (sizeof(tk_ltensor) + 63) / 64 * 64;
    tk_ltensor *t = lua_newuserdatauv(L, head + (size_t)n * sizeof(float), 1);
    memset(t, 0, head + (size_t)n * sizeof(float));
    t->data = (float *)((char *)t + head);
    t->ndim = ndim;
    memcpy(t->shape, shape, sizeof(int64_t) * (size_t)ndim);
    t->ints = ints;
    contiguous_strides(t);
    luaL_setmetatable(L, TK_LTENSOR);
    lua_pushvalue(L, -1); /* its own owner: views of it copy this reference */
    lua_setiuservalue(L, -2, 1);
    return t;
}

tk_ltensor *tk_lt_view(lua_State *L, float *data, const tk_shape *shape)
{
    tk_ltensor *t = lua_newuserdatauv(L, sizeof *t, 1);
    memset(t, 0, sizeof *t);
    t->data = data;
    t->ndim = shape->ndim;
    memcpy(t->shape, shape->d, sizeof(int64_t) * (size_t)shape->ndim);
    contiguous_strides(t);
    luaL_setmetatable(L, TK_LTENSOR);
    return t;
}

tk_ltensor *tk_lt_check(lua_State *L, int idx)
{
    return luaL_checkudata(L, idx, TK_LTENSOR);
}

/* A view of t (at idx) sharing its memory: the new userdata keeps t's owner alive (nil for
 * the model's memory, which lives as long as the session). */
static tk_ltensor *push_view_of(lua_State *L, int idx, const tk_ltensor *t)
{
    idx = lua_absindex(L, idx);
    tk_ltensor *v = lua_newuserdatauv(L, sizeof *v, 1);
    *v = *t;
    lua_getiuservalue(L, idx, 1);
    lua_setiuservalue(L, -2, 1);
    luaL_setmetatable(L, TK_LTENSOR);
    return v;
}

void tk_lt_gather(const tk_ltensor *t, float *dst)
{
    int64_t n = tk_lt_numel(t), idx[TK_MAX_DIMS] = {0};
    const float *p = t->data;
    for (int64_t k = 0; k < n; k++) {
        dst[k] = *p;
        for (int d = t->ndim - 1; d >= 0; d--) {
            p += t->stride[d];
            if (++idx[d] < t->shape[d])
                break;
            p -= t->stride[d] * t->shape[d];
            idx[d] = 0;
        }
    }
}

/* The elements as a contiguous block (a Lua-owned scratch userdata pushed on the stack). */
static float *elements(lua_State *L, const tk_ltensor *t, int64_t *n)
{
    *n = tk_lt_numel(t);
    float *buf = lua_newuserdatauv(L, (size_t)(*n ? *n : 1) * sizeof(float), 0);
    tk_lt_gather(t, buf);
    return buf;
}

/* ---------------------------------------------------------------- statistics */

static int stat(lua_State *L, int which)
{
    tk_ltensor *t = tk_lt_check(L, 1);
    int64_t n;
    float *x = elements(L, t, &n);
    if (n == 0)
        return luaL_error(L, "%s of an empty tensor", (const char *[]){"mean", "std", "min",
                          "max", "sum", "norm"}[which]);
    double sum = 0, sq = 0, lo = x[0], hi = x[0];
    for (int64_t i = 0; i < n; i++) {
        sum += x[i];
        sq += (double)x[i] * x[i];
        lo = x[i] < lo || isnan(x[i]) ? x[i] : lo;
        hi = x[i] > hi || isnan(x[i]) ? x[i] : hi;
    }
    double mean = sum / (double)n, v = 0;
    switch (which) {
    case 0: v = mean; break;
    case 1: /* unbiased, as torch.std */
        for (int64_t i = 0; i < n; i++)
            v += (x[i] - mean) * (x[i] - mean);
        v = n > 1 ? sqrt(v / (double)(n - 1)) : NAN;
        break;
    case 2: v = lo; break;
    case 3: v = hi; break;
    case 4: v = sum; break;
    case 5: v = sqrt(sq); break;
    }
    lua_pushnumber(L, v);
    return 1;
}

static int t_mean(lua_State *L) { return stat(L, 0); }
static int t_std(lua_State *L) { return stat(L, 1); }
static int t_min(lua_State *L) { return stat(L, 2); }
static int t_max(lua_State *L) { return stat(L, 3); }
static int t_sum(lua_State *L) { return stat(L, 4); }
static int t_norm(lua_State *L) { return stat(L, 5); }

/* argmax over the last dim: a tensor of 0-based indices (torch.argmax(t, -1)). */
static int t_argmax(lua_State *L)
{
    tk_ltensor *t = tk_lt_check(L, 1);
    if (t->ndim == 0 || t->shape[t->ndim - 1] == 0)
        return luaL_error(L, "argmax needs a non-empty last dimension");
    int64_t n;
    float *x = elements(L, t, &n);
    int64_t w = t->shape[t->ndim - 1];
    tk_ltensor *r = tk_lt_new(L, t->ndim - 1, t->shape, true);
    for (int64_t row = 0; row < n / w; row++) {
        int64_t best = 0;
        for (int64_t j = 1; j < w; j++)
            if (x[row * w + j] > x[row * w + best])
                best = j;
        r->data[row] = (float)best;
    }
    return 1;
}

/* ---------------------------------------------------------------- shape, views */

static void push_shape(lua_State *L, const tk_ltensor *t)
{
    lua_createtable(L, t->ndim, 0);
    for (int i = 0; i < t->ndim; i++) {
        lua_pushinteger(L, t->shape[i]);
        lua_rawseti(L, -2, i + 1);
    }
}

static int t_size(lua_State *L)
{
    tk_ltensor *t = tk_lt_check(L, 1);
    if (lua_isnoneornil(L, 2)) {
        push_shape(L, t);
        return 1;
    }
    lua_Integer d = luaL_checkinteger(L, 2);
    luaL_argcheck(L, d >= 1 && d <= t->ndim, 2, "dimension out of range");
    lua_pushinteger(L, t->shape[d - 1]);
    return 1;
}

static int t_numel(lua_State *L)
{
    lua_pushinteger(L, tk_lt_numel(tk_lt_check(L, 1)));
    return 1;
}

/* t:narrow(dim, start, length), 1-based dim and start, like torch.narrow. */
static int t_narrow(lua_State *L)
{
    tk_ltensor *t = tk_lt_check(L, 1);
    lua_Integer d = luaL_checkinteger(L, 2), start = luaL_checkinteger(L, 3),
                len = luaL_checkinteger(L, 4);
    if (d < 1 || d > t->ndim)
        return luaL_error(L, "narrow: dimension %d out of range (the tensor has %d)", (int)d,
                          t->ndim);
    int64_t size = t->shape[d - 1];
    if (start < 1 || len < 0 || start - 1 + len > size)
        return luaL_error(L, "narrow: elements %d to %d of dimension %d do not exist (size %d)",
                          (int)start, (int)(start + len - 1), (int)d, (int)size);
    tk_ltensor *v = push_view_of(L, 1, t);
    v->data += (start - 1) * t->stride[d - 1];
    v->shape[d - 1] = len;
    return 1;
}

static int t_clone(lua_State *L)
{
    tk_ltensor *t = tk_lt_check(L, 1);
    tk_ltensor *c = tk_lt_new(L, t->ndim, t->shape, t->ints);
    tk_lt_gather(t, c->data);
    return 1;
}

static void push_number(lua_State *L, const tk_ltensor *t, float v)
{
    if (t->ints)
        lua_pushinteger(L, (lua_Integer)v);
    else
        lua_pushnumber(L, v);
}

static void totable(lua_State *L, const tk_ltensor *t, const float *p, int dim)
{
    if (dim == t->ndim) {
        push_number(L, t, *p);
        return;
    }
    lua_createtable(L, (int)t->shape[dim], 0);
    for (int64_t i = 0; i < t->shape[dim]; i++) {
        totable(L, t, p + i * t->stride[dim], dim + 1);
        lua_rawseti(L, -2, i + 1);
    }
}

static int t_totable(lua_State *L)
{
    tk_ltensor *t = tk_lt_check(L, 1);
    luaL_checkstack(L, 2 * t->ndim + 4, "tensor too deep");
    totable(L, t, t->data, 0);
    return 1;
}

static const luaL_Reg methods[] = {
    {"mean", t_mean}, {"std", t_std}, {"min", t_min}, {"max", t_max}, {"sum", t_sum},
    {"norm", t_norm}, {"argmax", t_argmax}, {"narrow", t_narrow}, {"clone", t_clone},
    {"totable", t_totable}, {"size", t_size}, {"numel", t_numel}, {NULL, NULL},
};

/* t[i] (1-based; negative counts from the end): a number for a 1-D tensor, else a view. */
static int t_index(lua_State *L)
{
    tk_ltensor *t = tk_lt_check(L, 1);
    if (lua_type(L, 2) == LUA_TSTRING) {
        const char *k = lua_tostring(L, 2);
        if (strcmp(k, "shape") == 0) {
            push_shape(L, t);
        } else if (strcmp(k, "dtype") == 0) {
            lua_pushstring(L, t->ints ? "int64" : "float32");
        } else if (strcmp(k, "ndim") == 0) {
            lua_pushinteger(L, t->ndim);
        } else {
            lua_getfield(L, lua_upvalueindex(1), k);
        }
        return 1;
    }
    int isnum;
    lua_Integer i = lua_tointegerx(L, 2, &isnum);
    if (!isnum)
        return luaL_error(L, "a tensor is indexed by an integer (1-based) or a method name");
    if (t->ndim == 0)
        return luaL_error(L, "a 0-dimensional tensor has no elements to index");
    int64_t n = t->shape[0];
    if (i < 0)
        i += n + 1;
    if (i < 1 || i > n)
        return luaL_error(L, "index %d out of range for dimension 1 of size %d",
                          (int)lua_tointeger(L, 2), (int)n);
    const float *p = t->data + (i - 1) * t->stride[0];
    if (t->ndim == 1) {
        push_number(L, t, *p);
        return 1;
    }
    tk_ltensor *v = push_view_of(L, 1, t);
    v->data = (float *)p;
    v->ndim--;
    memmove(v->shape, v->shape + 1, sizeof(int64_t) * (size_t)v->ndim);
    memmove(v->stride, v->stride + 1, sizeof(int64_t) * (size_t)v->ndim);
    return 1;
}

static int t_newindex(lua_State *L)
{
    return luaL_error(L, "tensors are read-only here (P:load(path) replaces the weights)");
}

static int t_len(lua_State *L)
{
    tk_ltensor *t = tk_lt_check(L, 1);
    lua_pushinteger(L, t->ndim ? t->shape[0] : 0);
    return 1;
}

/* ---------------------------------------------------------------- arithmetic */

static int arith(lua_State *L, char op)
{
    tk_ltensor *a = luaL_testudata(L, 1, TK_LTENSOR), *b = luaL_testudata(L, 2, TK_LTENSOR);
    const tk_ltensor *shape = a ? a : b;
    if ((!a && !lua_isnumber(L, 1)) || (!b && !lua_isnumber(L, 2)))
        return luaL_error(L, "tensor arithmetic takes tensors and numbers");
    if (a && b && (a->ndim != b->ndim ||
                   memcmp(a->shape, b->shape, sizeof(int64_t) * (size_t)a->ndim) != 0))
        return luaL_error(L, "tensor arithmetic needs the same shapes (no broadcasting)");
    int64_t n = tk_lt_numel(shape);
    float *x = a ? elements(L, a, &n) : NULL, *y = b ? elements(L, b, &n) : NULL;
    float sa = a ? 0 : (float)lua_tonumber(L, 1), sb = b ? 0 : (float)lua_tonumber(L, 2);
    tk_ltensor *r = tk_lt_new(L, shape->ndim, shape->shape, false);
    for (int64_t i = 0; i < n; i++) {
        float u = x ? x[i] : sa, v = y ? y[i] : sb;
        r->data[i] = op == '+' ? u + v : op == '-' ? u - v : op == '*' ? u * v : u / v;
    }
    return 1;
}

static int t_add(lua_State *L) { return arith(L, '+'); }
static int t_sub(lua_State *L) { return arith(L, '-'); }
static int t_mul(lua_State *L) { return arith(L, '*'); }
static int t_div(lua_State *L) { return arith(L, '/'); }

static int t_unm(lua_State *L)
{
    lua_settop(L, 1);
    lua_pushnumber(L, -1);
    return arith(L, '*');
}

/* ---------------------------------------------------------------- printing */

enum { EDGE = 3, SUMMARIZE_OVER = 1000, LINEWIDTH = 80 };

typedef struct {
    bool ints, int_mode, sci;
    int width;
} formatter;

static int format(char *buf, size_t cap, const formatter *f, float v)
{
    if (f->ints)
        return snprintf(buf, cap, "%lld", (long long)v);
    if (!isfinite(v)) /* Python's spelling: no "-nan" */
        return snprintf(buf, cap, "%s", isnan(v) ? "nan" : v > 0 ? "inf" : "-inf");
    if (f->sci)
        return snprintf(buf, cap, "%.4e", (double)v);
    if (f->int_mode)
        return snprintf(buf, cap, isfinite(v) ? "%.0f." : "%.0f", (double)v);
    return snprintf(buf, cap, "%.4f", (double)v);
}

/* torch._tensor_str._Formatter over the values that will be shown. */
static formatter make_formatter(const float *x, int64_t n, bool ints)
{
    formatter f = {.ints = ints, .int_mode = true, .width = 1};
    double lo = INFINITY, hi = 0;
    bool any = false;
    for (int64_t i = 0; i < n; i++)
        if (isfinite(x[i]) && x[i] != 0) {
            double a = fabs((double)x[i]);
            lo = a < lo ? a : lo;
            hi = a > hi ? a : hi;
            any = true;
            if (x[i] != ceilf(x[i]))
                f.int_mode = false;
        }
    if (!ints && any)
        f.sci = f.int_mode ? hi / lo > 1000. || hi > 1e8
                           : hi / lo > 1000. || hi > 1e8 || lo < 1e-4;
    char buf[64];
    for (int64_t i = 0; i < n; i++) {
        if (!ints && !(isfinite(x[i]) && x[i] != 0))
            continue; /* PyTorch sizes the columns by the non-zero finite values */
        int w = format(buf, sizeof buf, &f, x[i]);
        f.width = w > f.width ? w : f.width;
    }
    return f;
}

typedef struct {
    luaL_Buffer *b;
    const formatter *f;
    const tk_ltensor *t;
} printer;

static void put_value(const printer *pr, float v)
{
    char buf[64];
    int w = format(buf, sizeof buf, pr->f, v);
    for (int i = w; i < pr->f->width; i++)
        luaL_addchar(pr->b, ' ');
    luaL_addstring(pr->b, buf);
}

static void put_sep(luaL_Buffer *b, int newlines, int indent)
{
    luaL_addchar(b, ',');
    for (int i = 0; i < newlines; i++)
        luaL_addchar(b, '\n');
    for (int i = 0; i < indent; i++)
        luaL_addchar(b, ' ');
}

static void put_tensor(const printer *pr, const float *p, int dim, int indent, bool summarize)
{
    const tk_ltensor *t = pr->t;
    luaL_Buffer *b = pr->b;
    int64_t n = t->shape[dim];
    bool elide = summarize && n > 2 * EDGE;
    luaL_addchar(b, '[');
    if (dim == t->ndim - 1) {
        int per_line = (LINEWIDTH - indent) / (pr->f->width + 2);
        per_line = per_line < 1 ? 1 : per_line;
        int64_t shown = elide ? 2 * EDGE + 1 : n;
        for (int64_t k = 0, on_line = 0; k < shown; k++) {
            if (k > 0) {
                if (on_line == per_line) {
                    put_sep(b, 1, indent + 1);
                    on_line = 0;
                } else {
                    luaL_addstring(b, ", ");
                }
            }
            on_line++;
            if (elide && k == EDGE) {
                luaL_addstring(b, " ...");
                continue;
            }
            int64_t i = elide && k > EDGE ? n - (shown - k) : k;
            put_value(pr, p[i * t->stride[dim]]);
        }
    } else {
        int64_t shown = elide ? 2 * EDGE + 1 : n;
        for (int64_t k = 0; k < shown; k++) {
            if (k > 0)
                put_sep(b, t->ndim - dim - 1, indent + 1);
            if (elide && k == EDGE) {
                luaL_addstring(b, "...");
                continue;
            }
            int64_t i = elide && k > EDGE ? n - (shown - k) : k;
            put_tensor(pr, p + i * t->stride[dim], dim + 1, indent + 1, summarize);
        }
    }
    luaL_addchar(b, ']');
}

/* The values the preview shows (every one, or the first and last EDGE of each dim). */
static int64_t shown_values(const tk_ltensor *t, const float *p, int dim, bool summarize,
                            float *out)
{
    if (dim == t->ndim) {
        *out = *p;
        return 1;
    }
    int64_t n = t->shape[dim], count = 0;
    bool elide = summarize && n > 2 * EDGE;
    for (int64_t i = 0; i < n; i++) {
        if (elide && i == EDGE)
            i = n - EDGE;
        count += shown_values(t, p + i * t->stride[dim], dim + 1, summarize, out + count);
    }
    return count;
}

static int t_tostring(lua_State *L)
{
    tk_ltensor *t = tk_lt_check(L, 1);
    int64_t n = tk_lt_numel(t);
    bool summarize = n > SUMMARIZE_OVER;
    int64_t cap = summarize ? 1 : n;
    if (summarize)
        for (int d = 0; d < t->ndim; d++)
            cap *= t->shape[d] > 2 * EDGE ? 2 * EDGE : t->shape[d];
    float *vals = lua_newuserdatauv(L, (size_t)(cap ? cap : 1) * sizeof(float), 0);
    int64_t m = shown_values(t, t->data, 0, summarize, vals);
    formatter f = make_formatter(vals, m, t->ints);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    luaL_addstring(&b, "tensor(");
    printer pr = {&b, &f, t};
    if (t->ndim == 0)
        put_value(&pr, *t->data);
    else if (n == 0)
        luaL_addstring(&b, "[]");
    else
        put_tensor(&pr, t->data, 0, 7, summarize);
    if (n == 0 && t->ndim != 1) {
        char shape[128];
        int o = snprintf(shape, sizeof shape, ", size=(");
        for (int d = 0; d < t->ndim && o < (int)sizeof shape - 24; d++)
            o += snprintf(shape + o, sizeof shape - (size_t)o, d ? ", %lld" : "%lld",
                          (long long)t->shape[d]);
        snprintf(shape + o, sizeof shape - (size_t)o, ")");
        luaL_addstring(&b, shape);
    }
    luaL_addchar(&b, ')');
    luaL_pushresult(&b);
    return 1;
}

/* ---------------------------------------------------------------- tensor{...} */

/* The shape of a nested table: the first element's, level by level. */
static int nested_shape(lua_State *L, int idx, int64_t *shape)
{
    int ndim = 0;
    lua_pushvalue(L, idx);
    while (lua_istable(L, -1)) {
        if (ndim == TK_MAX_DIMS)
            luaL_error(L, "tensor: more than %d dimensions", TK_MAX_DIMS);
        shape[ndim++] = (int64_t)luaL_len(L, -1);
        lua_rawgeti(L, -1, 1);
        lua_remove(L, -2);
    }
    lua_pop(L, 1);
    return ndim;
}

static void fill(lua_State *L, int idx, const int64_t *shape, int ndim, int dim, float **out)
{
    if (dim == ndim) {
        int ok;
        lua_Number v = lua_tonumberx(L, idx, &ok);
        if (!ok)
            luaL_error(L, "tensor: a %s where a number belongs", luaL_typename(L, idx));
        *(*out)++ = (float)v;
        return;
    }
    if (!lua_istable(L, idx) || (int64_t)luaL_len(L, idx) != shape[dim])
        luaL_error(L, "tensor: the rows are not all of one shape (dimension %d should have "
                   "%d elements)", dim + 1, (int)shape[dim]);
    for (int64_t i = 1; i <= shape[dim]; i++) {
        lua_rawgeti(L, idx, i);
        fill(L, lua_gettop(L), shape, ndim, dim + 1, out);
        lua_pop(L, 1);
    }
}

/* tensor(values [, dtype]): a number or nested lists of numbers; dtype "float32" (default)
 * or "int64". */
static int l_tensor(lua_State *L)
{
    static const char *const dtypes[] = {"float32", "int64", NULL};
    bool ints = luaL_checkoption(L, 2, "float32", dtypes) == 1;
    if (!lua_istable(L, 1) && !lua_isnumber(L, 1))
        return luaL_argerror(L, 1, "a number or a (nested) list of numbers");
    int64_t shape[TK_MAX_DIMS];
    int ndim = nested_shape(L, 1, shape);
    luaL_checkstack(L, 2 * ndim + 8, "tensor too deep");
    tk_ltensor *t = tk_lt_new(L, ndim, shape, ints);
    float *p = t->data;
    fill(L, 1, shape, ndim, 0, &p);
    if (ints)
        for (int64_t i = 0; i < tk_lt_numel(t); i++)
            t->data[i] = truncf(t->data[i]);
    return 1;
}

void tk_lt_open(lua_State *L)
{
    lua_pushcfunction(L, l_tensor);
    lua_setglobal(L, "tensor");
    static const luaL_Reg meta[] = {
        {"__newindex", t_newindex}, {"__len", t_len}, {"__tostring", t_tostring},
        {"__add", t_add}, {"__sub", t_sub}, {"__mul", t_mul}, {"__div", t_div},
        {"__unm", t_unm}, {NULL, NULL},
    };
    luaL_newmetatable(L, TK_LTENSOR);
    luaL_setfuncs(L, meta, 0);
    luaL_newlib(L, methods);
    lua_pushcclosure(L, t_index, 1);
    lua_setfield(L, -2, "__index");
    tk_set_fields(L, -1, fields);
    lua_pop(L, 1);
}
