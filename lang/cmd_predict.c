/* cmd_predict.c - tkrun predict: a script's model with trained weights applied to inputs given
 * on the command line: PNG/JPEG images (converted to the model's channels and size), CSV rows
 * (the training file's delimiter, header and columns, or only its feature columns) and .npy
 * arrays (one sample or a batch). Every input is prepared like the training batches: the
 * scale and normalisation the weights recorded (data.mul/data.add), else the training view's,
 * are applied to the raw values.
 * Prints the top-k classes with softmax probabilities (class names when the labels were
 * strings), each label's probability for a multi-label model, or the regression values;
 * --json for machines. Not here: the forward pass
 * (runtime tk_model_predict), file decoding (runtime image, npy, csv readers). */
#include "cli.h"

#include <lauxlib.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

typedef enum { INPUT_IMAGE, INPUT_NPY, INPUT_CSV } input_kind;

/* By content, not by name: a PNG or JPEG signature, NumPy's magic, else delimited text. */
static input_kind sniff(const char *path)
{
    unsigned char b[8] = {0};
    FILE *f = fopen(path, "rb");
    size_t n = f ? fread(b, 1, sizeof b, f) : 0;
    if (f)
        fclose(f);
    if (n >= 8 && memcmp(b, "\x89PNG\r\n\x1a\n", 8) == 0)
        return INPUT_IMAGE;
    if (n >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF)
        return INPUT_IMAGE;
    if (n >= 6 && memcmp(b, "\x93NUMPY", 6) == 0)
        return INPUT_NPY;
    return INPUT_CSV;
}

/* ---------------------------------------------------------------- CSV options of training */

enum { MAXCOLS = 4096 };
static tk_colref feature_refs[MAXCOLS], label_refs[MAXCOLS];

static int colrefs(lua_State *L, int t, const char *k, tk_colref *out)
{
    lua_getfield(L, t, k);
    int n = 0;
    int top = lua_gettop(L);
    int len = lua_istable(L, top) ? (int)luaL_len(L, top) : !lua_isnil(L, top);
    for (int i = 1; i <= len && n < MAXCOLS; i++) {
        if (lua_istable(L, top))
            lua_rawgeti(L, top, i);
        else
            lua_pushvalue(L, top);
        if (lua_isinteger(L, -1))
            out[n++] = (tk_colref){NULL, (int)lua_tointeger(L, -1)};
        else if (lua_type(L, -1) == LUA_TSTRING)
            out[n++] = (tk_colref){lua_tostring(L, -1), 0}; /* kept alive by the spec */
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    return n;
}

/* The training file's reading options from the script's data.train = data.csv{...} (the
 * pipeline table is at the top of the stack); false if training data is not a CSV. */
static bool train_csv_opts(lua_State *L, tk_csv_opts *o)
{
    memset(o, 0, sizeof *o);
    lua_getfield(L, -1, "data");
    lua_getfield(L, -1, "train");
    int t = lua_gettop(L);
    lua_getfield(L, t, "_kind");
    bool csv = lua_type(L, -1) == LUA_TSTRING && strcmp(lua_tostring(L, -1), "data.csv") == 0;
    lua_pop(L, 1);
    if (csv) {
        lua_getfield(L, t, "delimiter");
        const char *d = lua_tostring(L, -1);
        o->delimiter = d && d[0] ? d[0] : ',';
        /* skip_rows is not applied: it describes the training file (iris.csv's count row),
         * and skipping a prediction input's first rows would drop them silently. */
        lua_getfield(L, t, "header");
        o->header = lua_toboolean(L, -1);
        lua_pop(L, 2);
        o->n_features = colrefs(L, t, "features", feature_refs);
        o->features = feature_refs;
        lua_getfield(L, t, "label");
        bool own_file = lua_istable(L, -1) && (lua_getfield(L, -1, "_kind"), lua_isstring(L, -1));
        if (own_file)
            lua_pop(L, 1);
        lua_pop(L, 1);
        /* Labels from a file of their own: the features file has no label column. */
        o->label_path = own_file ? "" : NULL;
        o->n_label = own_file ? 0 : colrefs(L, t, "label", label_refs);
        o->label = label_refs;
    }
    lua_pop(L, 2);
    return csv;
}

/* ---------------------------------------------------------------- inputs */

/* Samples of one input file, transformed; `where` names each one for the output. */
typedef struct {
    float *x;
    int64_t n;
    char **where;
} batch;

static void free_batch(batch *b)
{
    for (int64_t i = 0; b->where && i < b->n; i++)
        free(b->where[i]);
    free(b->where);
    free(b->x);
    memset(b, 0, sizeof *b);
}

static tk_status name_samples(batch *b, const char *path, const int64_t *lines, tk_ctx *ctx)
{
    b->where = calloc((size_t)b->n, sizeof *b->where);
    if (!b->where)
        return tk_fail(ctx, TK_ERR_RUNTIME, "out of memory");
    for (int64_t i = 0; i < b->n; i++) {
        char buf[4200];
        if (lines)
            snprintf(buf, sizeof buf, "%s:%lld", path, (long long)lines[i]);
        else if (b->n > 1)
            snprintf(buf, sizeof buf, "%s[%lld]", path, (long long)i);
        else
            snprintf(buf, sizeof buf, "%s", path);
        if (!(b->where[i] = strdup(buf)))
            return tk_fail(ctx, TK_ERR_RUNTIME, "out of memory");
    }
    return TK_OK;
}

static tk_status read_image(const char *path, tk_shape in, batch *b, tk_ctx *ctx)
{
    int c = in.ndim == 3 ? (int)in.d[0] : 1;
    if (!(in.ndim == 2 || (in.ndim == 3 && (c == 1 || c == 3)))) {
        char sh[96];
        return tk_fail(ctx, TK_ERR_INPUT, "%s: an image, but the model takes samples of shape "
                       "%s (images need (H, W) or (C, H, W) with C = 1 or 3)", path,
                       tk_shape_str(&in, sh, sizeof sh));
    }
    int h = (int)in.d[in.ndim - 2], w = (int)in.d[in.ndim - 1];
    b->n = 1;
    b->x = malloc(sizeof(float) * (size_t)c * (size_t)h * (size_t)w);
    if (!b->x)
        return tk_fail(ctx, TK_ERR_RUNTIME, "out of memory");
    tk_status st = tk_image_read(path, c, h, w, b->x, ctx);
    return st == TK_OK ? name_samples(b, path, NULL, ctx) : st;
}

/* The shape without its 1-long dimensions: (28, 28) and (1, 28, 28) hold the same sample. */
static tk_shape squeezed(const tk_shape *s, int from)
{
    tk_shape q = {0, {0}};
    for (int k = from; k < s->ndim; k++)
        if (s->d[k] != 1)
            q.d[q.ndim++] = s->d[k];
    return q;
}

static bool same_shape(tk_shape a, tk_shape b)
{
    return a.ndim == b.ndim && memcmp(a.d, b.d, sizeof(int64_t) * (size_t)a.ndim) == 0;
}

static tk_status read_npy(const char *path, tk_shape in, batch *b, tk_ctx *ctx)
{
    tk_shape s;
    float *data = NULL;
    tk_status st = tk_npy_read(path, &s, &data, ctx);
    if (st != TK_OK)
        return st;
    tk_shape want = squeezed(&in, 0);
    bool one = same_shape(squeezed(&s, 0), want);
    bool many = !one && s.ndim >= 1 && s.d[0] > 0 && same_shape(squeezed(&s, 1), want);
    if (!one && !many) {
        char a[96], m[96];
        free(data);
        tk_shape_str(&in, m, sizeof m);
        return tk_fail(ctx, TK_ERR_INPUT, "%s: an array of shape %s, but the model takes "
                       "samples of shape %s (give one sample %s or a batch (N, ...))", path,
                       tk_shape_str(&s, a, sizeof a), m, m);
    }
    b->n = one ? 1 : s.d[0];
    b->x = data;
    return name_samples(b, path, NULL, ctx);
}

static tk_status read_csv(const char *path, lua_State *L, const tk_dataset *train, batch *b,
                          tk_ctx *ctx)
{
    tk_csv_opts o;
    if (!train_csv_opts(L, &o))
        return tk_fail(ctx, TK_ERR_INPUT, "%s: read as CSV rows (it is no PNG, JPEG or .npy), "
                       "but the script's training data is not a CSV file", path);
    o.path = path;
    o.like = train;
    tk_dataset *ds = NULL;
    tk_view *v = NULL;
    tk_loader *ld = NULL;
    int64_t *rows = NULL;
    tk_status st = tk_dataset_csv(&o, &ds, ctx);
    if (st == TK_OK && !(v = tk_view_all(ds)))
        st = tk_fail(ctx, TK_ERR_RUNTIME, "out of memory");
    /* One batch of every row, in file order, through the loader (no transform of its own). */
    int64_t n = ds ? tk_dataset_len(ds) : 0;
    tk_loader_opts lo = {.batch_size = (int)n};
    if (st == TK_OK && n > 1 << 24)
        st = tk_fail(ctx, TK_ERR_INPUT, "%s: more than %d rows to predict", path, 1 << 24);
    if (st == TK_OK)
        st = tk_loader_new(v, &lo, &ld, ctx);
    if (st == TK_OK) {
        b->n = n;
        tk_shape shape = tk_dataset_sample_shape(ds);
        b->x = malloc(sizeof(float) * (size_t)n * (size_t)tk_shape_numel(&shape));
        rows = malloc(sizeof(int64_t) * (size_t)n);
        b->where = calloc((size_t)n, sizeof *b->where);
        if (!b->x || !rows || !b->where)
            st = tk_fail(ctx, TK_ERR_RUNTIME, "out of memory");
    }
    if (st == TK_OK) {
        float no_labels;
        tk_loader_begin(ld, 0, 0);
        tk_loader_next(ld, b->x, &no_labels, rows);
        for (int64_t i = 0; st == TK_OK && i < n; i++) {
            char buf[4200];
            tk_dataset_where(ds, rows[i], buf, sizeof buf);
            if (!(b->where[i] = strdup(buf)))
                st = tk_fail(ctx, TK_ERR_RUNTIME, "out of memory");
        }
    }
    free(rows);
    tk_loader_free(ld);
    tk_view_free(v);
    tk_dataset_free(ds);
    return st;
}

/* ---------------------------------------------------------------- output */

typedef struct {
    bool json, first;
    tk_task task;
    int top, width;
    const tk_dataset *train;
} printer;

static void class_label(const printer *pr, int id, char *buf, size_t cap)
{
    const char *name = tk_dataset_class_name(pr->train, id);
    if (name)
        snprintf(buf, cap, "%s", name);
    else
        snprintf(buf, cap, "%d", id);
}

/* One sample: the top-k classes by softmax probability, each label's probability (sigmoid),
 * or the regression values. */
static void print_sample(printer *pr, const char *where, const float *out)
{
    if (pr->json) {
        fputs(pr->first ? "\n  {\"input\": " : ",\n  {\"input\": ", stdout);
        tk_cli_json_string(stdout, where);
    } else {
        printf("%s", where);
    }
    pr->first = false;
    if (pr->task != TK_TASK_CLASSIFICATION) {
        bool labels = pr->task == TK_TASK_MULTILABEL;
        fputs(!pr->json ? " " : labels ? ", \"probabilities\": [" : ", \"values\": [", stdout);
        for (int k = 0; k < pr->width; k++) {
            double v = labels ? 1.0 / (1.0 + exp(-(double)out[k])) : (double)out[k];
            printf(pr->json ? "%s%.9g" : labels ? "%s%.4f" : "%s%.6g",
                   k ? (pr->json ? ", " : " ") : "", v);
        }
        fputs(pr->json ? "]}" : "\n", stdout);
        return;
    }
    double max = out[0], sum = 0;
    for (int k = 1; k < pr->width; k++)
        max = out[k] > max ? out[k] : max;
    for (int k = 0; k < pr->width; k++)
        sum += exp((double)out[k] - max);
    bool taken[4096] = {false};
    if (pr->json)
        fputs(", \"top\": [", stdout);
    for (int r = 0; r < pr->top; r++) {
        int best = -1;
        for (int k = 0; k < pr->width; k++)
            if (!taken[k] && (best < 0 || out[k] > out[best]))
                best = k;
        taken[best] = true;
        double prob = exp((double)out[best] - max) / sum;
        char name[256];
        class_label(pr, best, name, sizeof name);
        if (pr->json) {
            printf("%s{\"class\": %d, \"name\": ", r ? ", " : "", best);
            tk_cli_json_string(stdout, name);
            printf(", \"probability\": %.9g}", prob);
        } else {
            printf("  %s %.4f", name, prob);
        }
    }
    fputs(pr->json ? "]}" : "\n", stdout);
}

/* ---------------------------------------------------------------- command */

/* The feature transform the weights were trained with: tkrun's checkpoints carry it as
 * data.mul/data.add (exactly what the batches got), so predictions follow the weights even
 * when the script's data files changed since. Weights without it (written by another tool)
 * take the script's training view. *mul is NULL then. */
static tk_status trained_transform(const char *weights, int64_t features, float **mul,
                                   tk_ctx *ctx)
{
    *mul = NULL;
    tk_st_file *f = NULL;
    if (tk_st_load(weights, &f, ctx) != TK_OK)
        return TK_ERR_INPUT;
    const char *ms = tk_st_meta(f, "data.mul"), *as = tk_st_meta(f, "data.add");
    tk_status st = TK_OK;
    if (ms && as) {
        double *v = malloc(sizeof(double) * (size_t)(2 * features + 2));
        float *out = malloc(sizeof(float) * (size_t)(2 * features + 2));
        int64_t nm = v ? tk_meta_numbers(ms, v, features + 1) : -1;
        int64_t na = v ? tk_meta_numbers(as, v + features + 1, features + 1) : -1;
        if (!v || !out)
            st = tk_fail(ctx, TK_ERR_RUNTIME, "out of memory");
        else if (nm != features || na != features)
            st = tk_fail(ctx, TK_ERR_INPUT, "%s: its data.mul/data.add metadata holds %lld/%lld "
                         "values but the model takes %lld features per sample (weights of "
                         "other data?)", weights, (long long)nm, (long long)na,
                         (long long)features);
        for (int64_t k = 0; st == TK_OK && k < features; k++) {
            out[k] = (float)v[k];
            out[features + k] = (float)v[features + 1 + k];
        }
        free(v);
        if (st == TK_OK)
            *mul = out;
        else
            free(out);
    }
    tk_st_free(f);
    return st;
}

static void apply_transform(const float *mul, int64_t features, float *x, int64_t n)
{
    const float *add = mul + features;
    for (int64_t i = 0; i < n; i++)
        for (int64_t k = 0; k < features; k++)
            x[i * features + k] = x[i * features + k] * mul[k] + add[k];
}

static int run_predict(const tk_cli *c, tk_session *s)
{
    char used[4200];
    tk_status st = tk_session_load_weights(s, c->weights, used, sizeof used);
    float *mul = NULL;
    tk_shape in_shape = tk_model_input_shape(s->p.model);
    int64_t features = tk_shape_numel(&in_shape);
    if (st == TK_OK)
        st = trained_transform(used, features, &mul, s->ctx);
    if (st != TK_OK)
        return tk_cli_exit(st, s->ctx);
    tk_model *m = s->p.model;
    tk_view *train_view = s->p.views[0];
    const tk_dataset *train = tk_view_dataset(train_view);
    tk_shape in = tk_model_input_shape(m);
    printer pr = {.json = c->json, .first = true, .width = tk_model_output_width(m),
                  .train = train,
                  .task = tk_model_task(m)};
    if (pr.task == TK_TASK_CLASSIFICATION && pr.width > 4096) {
        free(mul);
        return tk_cli_exit(tk_fail(s->ctx, TK_ERR_INPUT, "predict: %d classes is more than "
                                   "4096", pr.width), s->ctx);
    }
    pr.top = c->top_k ? c->top_k : 5;
    if (pr.top > pr.width)
        pr.top = pr.width;
    /* Read and check every input before printing anything: a bad file is one error. */
    batch *inputs = calloc((size_t)c->n_inputs, sizeof *inputs);
    if (!inputs) {
        free(mul);
        return tk_cli_exit(tk_fail(s->ctx, TK_ERR_RUNTIME, "out of memory"), s->ctx);
    }
    for (int i = 0; st == TK_OK && i < c->n_inputs; i++) {
        const char *path = c->inputs[i];
        struct stat info;
        FILE *f = fopen(path, "rb");
        if (!f) {
            st = tk_fail(s->ctx, TK_ERR_INPUT, "%s: cannot open the input", path);
            break;
        }
        bool regular = fstat(fileno(f), &info) == 0 && S_ISREG(info.st_mode);
        fclose(f);
        /* The kind is read from the first bytes, then the file again: a pipe would lose them. */
        if (!regular) {
            st = tk_fail(s->ctx, TK_ERR_INPUT, "%s: not a regular file (give files, not pipes "
                         "or directories)", path);
            break;
        }
        switch (sniff(path)) {
        case INPUT_IMAGE:
            st = read_image(path, in, &inputs[i], s->ctx);
            break;
        case INPUT_NPY:
            st = read_npy(path, in, &inputs[i], s->ctx);
            break;
        case INPUT_CSV:
            st = read_csv(path, s->L, train, &inputs[i], s->ctx);
            break;
        }
        if (st == TK_OK && mul)
            apply_transform(mul, features, inputs[i].x, inputs[i].n);
        else if (st == TK_OK)
            tk_view_transform(train_view, inputs[i].x, inputs[i].n);
    }
    float *out = NULL;
    if (pr.json && st == TK_OK)
        fputs("{\"predictions\": [", stdout);
    for (int i = 0; st == TK_OK && i < c->n_inputs; i++) {
        batch *b = &inputs[i];
        free(out);
        out = malloc(sizeof(float) * (size_t)(b->n * pr.width));
        if (!out) {
            st = tk_fail(s->ctx, TK_ERR_RUNTIME, "out of memory");
            break;
        }
        st = tk_model_predict(m, b->x, b->n, out, s->ctx);
        for (int64_t k = 0; st == TK_OK && k < b->n; k++)
            print_sample(&pr, b->where[k], out + k * pr.width);
    }
    if (pr.json && st == TK_OK)
        fputs("\n]}\n", stdout);
    free(out);
    free(mul);
    for (int i = 0; i < c->n_inputs; i++)
        free_batch(&inputs[i]);
    free(inputs);
    return tk_cli_exit(st, s->ctx);
}

int tk_cmd_predict(const tk_cli *c)
{
    if (!c->weights)
        return tk_cli_usage_error("predict", "tkrun predict needs --weights W (a .safetensors "
                                  "file or a run directory)");
    if (c->n_inputs == 0)
        return tk_cli_usage_error("predict", "tkrun predict needs inputs: image files (PNG, "
                                  "JPEG), CSV files or .npy arrays after the script");
    tk_session s;
    tk_status st = tk_session_open(&s, c);
    int rc = st == TK_OK ? run_predict(c, &s) : tk_cli_exit(st, s.ctx);
    tk_session_close(&s);
    return rc;
}
