/* image_list.c - the list form of tk_dataset_images: a CSV file (libcsv) naming one image per
 * row and its label, e.g. "path,label\n cats/1.png,cat\n". Paths are relative to `root` when
 * it is given, else to the list file's folder. Labels that are all non-negative integers are
 * class ids; otherwise they are class names, numbered in sorted order (as CSV string labels
 * are). Rows are samples in file order; tk_dataset_where names "list.csv row N".
 * Not here: the folder form and the decoding (image_folder.c, image.c).
 */
#include "dataset.h"

#include <csv.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    const tk_images_opts *o;
    const char *name;          /* list basename */
    tk_ctx *ctx;
    tk_status st;
    int64_t row;               /* records seen, 1-based once the first one ends */
    int path_col, label_col;   /* 0-based, -1 until the header resolves them */
    char **fields;
    int n_fields, cap_fields;
    char **paths, **labels;
    int64_t *rows;
    int64_t n, cap;
} list_reader;

static void on_field(void *s, size_t len, void *ud)
{
    list_reader *r = ud;
    if (r->st)
        return;
    if (r->n_fields == r->cap_fields) {
        int cap = r->cap_fields ? r->cap_fields * 2 : 8;
        char **f = tk_realloc(r->fields, (size_t)r->cap_fields * sizeof *f, (size_t)cap * sizeof *f);
        if (!f || cap > 100000) {
            tk_free(f);
            r->fields = NULL;
            r->st = tk_fail(r->ctx, TK_ERR_INPUT, "%s: too many columns", r->name);
            return;
        }
        r->fields = f;
        r->cap_fields = cap;
    }
    char *copy = tk_malloc(len + 1);
    if (!copy) {
        r->st = tk_fail(r->ctx, TK_ERR_RUNTIME, "%s: out of memory", r->name);
        return;
    }
    if (len)
        memcpy(copy, s, len);
    copy[len] = '\0';
    r->fields[r->n_fields++] = copy;
}

/* A column reference against the header (or a 1-based number); -1 with the message set. */
static int resolve(list_reader *r, tk_colref c, const char *what)
{
    if (!c.name) {
        if (c.index < 1 || c.index > r->n_fields)
            r->st = tk_fail(r->ctx, TK_ERR_INPUT, "%s: %s column %d does not exist (the file "
                            "has %d columns)", r->name, what, c.index, r->n_fields);
        return r->st ? -1 : c.index - 1;
    }
    if (!r->o->header) {
        r->st = tk_fail(r->ctx, TK_ERR_INPUT, "%s: %s column '%s' is a name, which needs "
                        "header = true", r->name, what, c.name);
        return -1;
    }
    for (int i = 0; i < r->n_fields; i++)
        if (strcmp(r->fields[i], c.name) == 0)
            return i;
    r->st = tk_fail(r->ctx, TK_ERR_INPUT, "%s: no column '%s' in the header (%s column)",
                    r->name, c.name, what);
    return -1;
}

static void on_row(int c, void *ud)
{
    (void)c;
    list_reader *r = ud;
    r->row++;
    bool header = r->o->header && r->row == 1;
    if (!r->st && (header || r->path_col < 0)) {
        r->path_col = resolve(r, r->o->path_column, "path");
        if (!r->st)
            r->label_col = resolve(r, r->o->label, "label");
        if (!r->st && r->label_col == r->path_col)
            r->st = tk_fail(r->ctx, TK_ERR_INPUT, "%s: the path and label columns are the "
                            "same (column %d)", r->name, r->path_col + 1);
    }
    int need = r->path_col > r->label_col ? r->path_col : r->label_col;
    if (!r->st && !header && r->n_fields <= need)
        r->st = tk_fail(r->ctx, TK_ERR_INPUT, "%s row %lld: %d fields, but the %s column is "
                        "number %d", r->name, (long long)r->row, r->n_fields,
                        r->path_col > r->label_col ? "path" : "label", need + 1);
    if (!r->st && !header) {
        if (r->n == r->cap) {
            int64_t cap = r->cap ? r->cap * 2 : 256;
            char **p = tk_realloc(r->paths, (size_t)r->cap * sizeof *p, (size_t)cap * sizeof *p);
            char **l = p ? tk_realloc(r->labels, (size_t)r->cap * sizeof *l,
                                      (size_t)cap * sizeof *l) : NULL;
            int64_t *w = l ? tk_realloc(r->rows, (size_t)r->cap * sizeof *w,
                                        (size_t)cap * sizeof *w) : NULL;
            if (p)
                r->paths = p;
            if (l)
                r->labels = l;
            if (w) {
                r->rows = w;
                r->cap = cap;
            } else {
                r->st = tk_fail(r->ctx, TK_ERR_RUNTIME, "%s: out of memory", r->name);
            }
        }
        if (!r->st) {
            r->paths[r->n] = r->fields[r->path_col];
            r->labels[r->n] = r->fields[r->label_col];
            r->fields[r->path_col] = r->fields[r->label_col] = NULL;
            r->rows[r->n++] = r->row;
            if (!*r->paths[r->n - 1])
                r->st = tk_fail(r->ctx, TK_ERR_INPUT, "%s row %lld: empty path", r->name,
                                (long long)r->row);
        }
    }
    for (int i = 0; i < r->n_fields; i++)
        tk_free(r->fields[i]);
    r->n_fields = 0;
}

static int by_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static bool class_id(const char *s, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (!*s || *end || errno || v < 0 || v >= (1 << 24) || s[0] == '+' || s[0] == '-')
        return false;
    *out = v;
    return true;
}

/* Labels into ds->y and, for names, ds->class_names (sorted, distinct). */
static tk_status set_labels(tk_dataset *ds, list_reader *r, tk_ctx *ctx)
{
    long v;
    bool ids = true;
    for (int64_t i = 0; i < r->n && ids; i++)
        ids = class_id(r->labels[i], &v);
    if (ids) {
        long max = -1;
        for (int64_t i = 0; i < r->n; i++) {
            class_id(r->labels[i], &v);
            ds->y[i] = (float)v;
            max = v > max ? v : max;
        }
        ds->n_classes = (int)max + 1;
        return TK_OK;
    }
    char **sorted = tk_malloc((size_t)r->n * sizeof *sorted);
    if (!sorted)
        return tk_fail(ctx, TK_ERR_RUNTIME, "%s: out of memory", r->name);
    memcpy(sorted, r->labels, (size_t)r->n * sizeof *sorted);
    qsort(sorted, (size_t)r->n, sizeof *sorted, by_str);
    int64_t k = 0;
    for (int64_t i = 0; i < r->n; i++)
        if (i == 0 || strcmp(sorted[i], sorted[k - 1]) != 0)
            sorted[k++] = sorted[i];
    tk_status st = TK_OK;
    if (k > 100000)
        st = tk_fail(ctx, TK_ERR_INPUT, "%s: %lld distinct labels (at most 100000 classes)",
                     r->name, (long long)k);
    if (!st && !(ds->class_names = tk_calloc((size_t)k, sizeof(char *))))
        st = tk_fail(ctx, TK_ERR_RUNTIME, "%s: out of memory", r->name);
    for (int64_t c = 0; !st && c < k; c++)
        if (!(ds->class_names[c] = tk_strdup(sorted[c])))
            st = tk_fail(ctx, TK_ERR_RUNTIME, "%s: out of memory", r->name);
    ds->n_classes = (int)k;
    for (int64_t i = 0; !st && i < r->n; i++) {
        char **hit = bsearch(&r->labels[i], sorted, (size_t)k, sizeof *sorted, by_str);
        ds->y[i] = (float)(hit - sorted);
    }
    tk_free(sorted);
    return st;
}

/* The full path of list entry p: absolute as it is, else under base. */
static char *under(const char *base, const char *p)
{
    if (p[0] == '/')
        return tk_strdup(p);
    size_t nb = strlen(base), np = strlen(p);
    char *s = tk_malloc(nb + np + 2);
    if (s) {
        memcpy(s, base, nb);
        s[nb] = '/';
        memcpy(s + nb + 1, p, np + 1);
    }
    return s;
}

tk_status tk_image_list(const tk_images_opts *o, tk_dataset *ds, tk_ctx *ctx)
{
    list_reader r = {.o = o, .name = ds->name, .ctx = ctx, .path_col = -1, .label_col = -1};
    unsigned char *text;
    size_t len;
    tk_status st = tk_data_slurp(o->list, &text, &len, ctx);
    if (st)
        return st;
    struct csv_parser p;
    if (csv_init(&p, CSV_STRICT | CSV_STRICT_FINI | CSV_APPEND_NULL) != 0) {
        tk_free(text);
        return tk_fail(ctx, TK_ERR_RUNTIME, "%s: out of memory", r.name);
    }
    if (csv_parse(&p, text, len, on_field, on_row, &r) != len && !r.st)
        r.st = tk_fail(ctx, TK_ERR_INPUT, "%s row %lld: %s", r.name, (long long)r.row + 1,
                       csv_strerror(csv_error(&p)));
    if (!r.st && csv_fini(&p, on_field, on_row, &r) != 0 && !r.st)
        r.st = tk_fail(ctx, TK_ERR_INPUT, "%s row %lld: %s", r.name, (long long)r.row + 1,
                       csv_strerror(csv_error(&p)));
    csv_free(&p);
    tk_free(text);
    for (int i = 0; i < r.n_fields; i++)
        tk_free(r.fields[i]);
    tk_free(r.fields);
    st = r.st;
    if (!st && r.n == 0)
        st = tk_fail(ctx, TK_ERR_INPUT, "%s: no images listed", r.name);
    /* Base folder: root, else the list's own folder. */
    char *base = NULL;
    if (!st) {
        const char *slash = strrchr(o->list, '/');
        base = o->root && *o->root ? tk_strdup(o->root)
               : slash ? tk_strdup(o->list) : tk_strdup(".");
        if (base && !(o->root && *o->root) && slash)
            base[slash - o->list] = '\0';
        if (!base)
            st = tk_fail(ctx, TK_ERR_RUNTIME, "out of memory");
    }
    ds->n = r.n;
    ds->kind = TK_LABEL_CLASS;
    ds->label_width = 1;
    if (!st && !(ds->y = tk_malloc((size_t)r.n * sizeof(float))))
        st = tk_fail(ctx, TK_ERR_RUNTIME, "out of memory");
    if (!st)
        st = set_labels(ds, &r, ctx);
    for (int64_t i = 0; !st && i < r.n; i++) {
        char *full = under(base, r.paths[i]);
        if (!full) {
            st = tk_fail(ctx, TK_ERR_RUNTIME, "out of memory");
            break;
        }
        tk_free(r.paths[i]);
        r.paths[i] = full;
    }
    if (!st)
        st = o->stream ? tk_images_stream(ds, o, r.paths, ctx)
                       : tk_images_decode(ds, o, r.paths, true, ctx);
    tk_free(base);
    for (int64_t i = 0; i < r.n; i++) {
        tk_free(r.paths[i]);
        tk_free(r.labels[i]);
    }
    tk_free(r.paths);
    tk_free(r.labels);
    if (st) {
        tk_free(r.rows);
        return st;
    }
    ds->rows = r.rows;
    return TK_OK;
}
