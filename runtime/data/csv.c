/* csv.c - tk_dataset_csv: delimited text (plain or gzip) into a float32 dataset, via libcsv.
 *
 * libcsv splits fields (quotes, CRLF, any one-character delimiter); this file counts physical
 * lines so every error names file:line and column, picks feature and label columns by index
 * or header name, and turns label cells into class ids (numbers as they are, strings mapped
 * in sorted order) or regression targets. Rows are counted from 1 and include skipped rows,
 * the header and blank lines, so an error's number is the line an editor shows.
 * Not here: normalisation (split.c), batching (loader.c), streamed files (csv_stream.c).
 */
#include "csv_int.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define READ_CHUNK (1 << 16)
#define MAX_CLASS_ID 16777216.0 /* 2^24: larger ids would not be exact as float */


/* libcsv grows its field buffer by a fixed block per call, so one long field (a stray quote
 * swallows the rest of the file into it) would be copied over and over: quadratic. The block
 * header keeps a capacity that doubles, so the copies add up to linear time, and the memory
 * still goes through tk_malloc. */
#define CSV_HDR 16
static void *csv_realloc(void *p, size_t n)
{
    size_t cap = 0;
    if (p)
        memcpy(&cap, (unsigned char *)p - CSV_HDR, sizeof cap);
    if (n <= cap)
        return p;
    size_t want = cap > n / 2 ? cap * 2 : n;
    if (want < n || want > SIZE_MAX - CSV_HDR)
        want = n;
    if (n > SIZE_MAX - CSV_HDR)
        return NULL;
    unsigned char *q = tk_malloc(want + CSV_HDR);
    if (!q)
        return NULL;
    memcpy(q, &want, sizeof want);
    if (p) {
        memcpy(q + CSV_HDR, p, cap);
        tk_free((unsigned char *)p - CSV_HDR);
    }
    return q + CSV_HDR;
}

static void csv_release(void *p)
{
    if (p)
        tk_free((unsigned char *)p - CSV_HDR);
}

/* Tabs and spaces around unquoted fields are trimmed, except the one that delimits. */
static int space_or_tab(unsigned char c) { return c == ' ' || c == '\t'; }
static int tab_only(unsigned char c) { return c == '\t'; }
static int space_only(unsigned char c) { return c == ' '; }

/* p resized to hold at least `need` elements (doubling); NULL if out of memory, p intact. */
static void *grow(void *p, size_t *cap, size_t need, size_t elem)
{
    if (need <= *cap)
        return p;
    size_t n = *cap ? *cap : 16;
    while (n < need)
        n *= 2;
    if (n > SIZE_MAX / elem)
        return NULL;
    void *q = tk_realloc(p, *cap * elem, n * elem);
    if (q)
        *cap = n;
    return q;
}

/* p resized from old_n to new_n elements exactly; NULL if out of memory, p intact. */
static void *resize(void *p, size_t old_n, size_t new_n, size_t elem)
{
    if (new_n > SIZE_MAX / elem)
        return NULL;
    return tk_realloc(p, old_n * elem, new_n * elem);
}

static void oom(sheet *sh)
{
    sh->st = tk_fail(sh->ctx, TK_ERR_RUNTIME, "%s: out of memory", sh->name);
}

static const char *cell(const sheet *sh, int i)
{
    return sh->cells + sh->cell_off[i];
}

/* Clinger's fast path: a plain decimal of at most 2^53 in its digits, with at most 22 after
 * the point, is m / 10^k with both exact, which IEEE division rounds to nearest as strtod
 * does; anything else (exponents, more digits, inf, hex) is left to strtod. */
static bool plain_decimal(const char *s, double *v)
{
    static const double p10[23] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,
                                   1e8,  1e9,  1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
                                   1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
    const char *p = s;
    bool neg = *p == '-', dot = false, any = false;
    if (*p == '-' || *p == '+')
        p++;
    uint64_t m = 0;
    int frac = 0;
    for (;; p++) {
        if (*p >= '0' && *p <= '9') {
            if (m >= (1ull << 53) / 10)
                return false;
            m = m * 10 + (uint64_t)(*p - '0');
            frac += dot;
            any = true;
        } else if (*p == '.' && !dot) {
            dot = true;
        } else {
            break;
        }
    }
    while (*p == ' ' || *p == '\t')
        p++;
    if (!any || *p || frac > 22)
        return false;
    double d = (double)m / p10[frac];
    *v = neg ? -d : d;
    return true;
}

/* 0: a finite float32 number in *v; 1: not a number; 2: out of float32 range. */
static int parse_num(const char *s, double *v)
{
    if (plain_decimal(s, v))
        return 0;
    char *end;
    double d = strtod(s, &end);
    if (end == s)
        return 1;
    while (*end == ' ' || *end == '\t')
        end++;
    if (*end)
        return 1;
    if (!isfinite(d))
        return isnan(d) ? 1 : 2;
    if (fabs(d) > FLT_MAX)
        return 2;
    *v = d;
    return 0;
}

static bool blank(const char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    return *s == 0;
}

/* A cell that must hold a number; col is 0-based. */
static bool number_at(sheet *sh, int col, double *v)
{
    const char *s = cell(sh, col);
    if (blank(s)) {
        sh->st = tk_fail(sh->ctx, TK_ERR_INPUT, "%s:%lld: column %d: missing value", sh->name,
                         (long long)sh->row_line, col + 1);
        return false;
    }
    int r = parse_num(s, v);
    if (r) {
        sh->st = tk_fail(sh->ctx, TK_ERR_INPUT, "%s:%lld: column %d: '%.60s' is %s", sh->name,
                         (long long)sh->row_line, col + 1, s,
                         r == 1 ? "not a number" : "out of float32 range");
        return false;
    }
    return true;
}

static void list_columns(const sheet *sh, char *buf, size_t cap)
{
    size_t len = 0;
    buf[0] = 0;
    for (int i = 0; i < sh->ncol; i++) {
        const char *sep = i ? ", " : "";
        if (len + strlen(sep) + strlen(sh->names[i]) + 6 > cap) {
            snprintf(buf + len, cap - len, "%s...", sep);
            return;
        }
        len += (size_t)snprintf(buf + len, cap - len, "%s%s", sep, sh->names[i]);
    }
}

/* A column reference to a 0-based index; `what` is "label" or "feature". */
static int resolve_ref(sheet *sh, const tk_colref *r, const char *what)
{
    if (r->name) {
        if (!sh->names) {
            sh->st = tk_fail(sh->ctx, TK_ERR_INPUT,
                             "%s: %s column '%s' is a name but the file has no header "
                             "(set header = true, or give its number)",
                             sh->name, what, r->name);
            return -1;
        }
        for (int i = 0; i < sh->ncol; i++)
            if (strcmp(sh->names[i], r->name) == 0)
                return i;
        char cols[1024];
        list_columns(sh, cols, sizeof cols);
        sh->st = tk_fail(sh->ctx, TK_ERR_INPUT, "%s: no column named '%s' (columns: %s)",
                         sh->name, r->name, cols);
        return -1;
    }
    if (r->index < 1 || r->index > sh->ncol) {
        sh->st = tk_fail(sh->ctx, TK_ERR_INPUT, "%s: %s column %d out of range (%d columns)",
                         sh->name, what, r->index, sh->ncol);
        return -1;
    }
    return r->index - 1;
}

static bool is_label_col(const sheet *sh, int c)
{
    for (int i = 0; i < sh->nlab; i++)
        if (sh->label_cols[i] == c)
            return true;
    return false;
}

/* A prediction input: rows like the training file's, or only its feature columns. */
static bool like_layout(sheet *sh)
{
    if (sh->ncol == sh->like_cols)
        return true;
    if (sh->ncol != sh->like_feat) {
        sh->st = tk_fail(sh->ctx, TK_ERR_INPUT, "%s:%lld: %d columns, but the training file "
                         "has %d (or give only its %d feature columns)", sh->name,
                         (long long)sh->row_line, sh->ncol, sh->like_cols, sh->like_feat);
        return false;
    }
    sh->feat_cols = tk_malloc((size_t)sh->ncol * sizeof(int));
    if (!sh->feat_cols) {
        oom(sh);
        return false;
    }
    for (int c = 0; c < sh->ncol; c++)
        sh->feat_cols[sh->nfeat++] = c;
    return false;
}

/* Pick the columns once their count (and names) are known. */
static void resolve_columns(sheet *sh)
{
    if (sh->like && !like_layout(sh))
        return;
    if (sh->want_labels || sh->exclude_label) {
        int n = sh->n_label_refs ? sh->n_label_refs : 1;
        sh->label_cols = tk_malloc((size_t)n * sizeof(int));
        if (!sh->label_cols) {
            oom(sh);
            return;
        }
        if (!sh->n_label_refs)
            sh->label_cols[sh->nlab++] = sh->ncol - 1;
        for (int i = 0; i < sh->n_label_refs; i++) {
            int c = resolve_ref(sh, &sh->label_refs[i], "label");
            if (c < 0)
                return;
            sh->label_cols[sh->nlab++] = c;
        }
        if (sh->nlab > 1 && !sh->regression && !sh->like) {
            sh->st = tk_fail(sh->ctx, TK_ERR_INPUT,
                             "%s: %d label columns need a regression or multi-label loss "
                             "(class labels take one column)", sh->name, sh->nlab);
            return;
        }
    }
    if (!sh->want_features)
        return;
    int n = sh->n_feat_refs ? sh->n_feat_refs : sh->ncol;
    sh->feat_cols = tk_malloc((size_t)n * sizeof(int));
    if (!sh->feat_cols) {
        oom(sh);
        return;
    }
    if (!sh->n_feat_refs) {
        for (int c = 0; c < sh->ncol; c++)
            if (!is_label_col(sh, c))
                sh->feat_cols[sh->nfeat++] = c;
    }
    for (int i = 0; i < sh->n_feat_refs; i++) {
        int c = resolve_ref(sh, &sh->feat_refs[i], "feature");
        if (c < 0)
            return;
        if (is_label_col(sh, c)) {
            sh->st = tk_fail(sh->ctx, TK_ERR_INPUT,
                             "%s: column %d is both a feature and the label", sh->name, c + 1);
            return;
        }
        sh->feat_cols[sh->nfeat++] = c;
    }
    if (sh->nfeat == 0)
        sh->st = tk_fail(sh->ctx, TK_ERR_INPUT,
                         "%s: no feature columns (the file has only the label column)",
                         sh->name);
    if (sh->like)
        sh->nlab = 0; /* the label cells are skipped, not read */
}

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static bool rehash(sheet *sh, size_t cap)
{
    int32_t *t = tk_malloc(cap * sizeof *t);
    if (!t)
        return false;
    for (size_t i = 0; i < cap; i++)
        t[i] = -1;
    for (int k = 0; k < sh->n_strs; k++) {
        size_t j = hash_str(sh->strs[k].s) & (cap - 1);
        while (t[j] >= 0)
            j = (j + 1) & (cap - 1);
        t[j] = k;
    }
    tk_free(sh->hash);
    sh->hash = t;
    sh->hash_cap = cap;
    return true;
}

/* The id of a class label cell among the distinct ones seen so far; -1 on failure; -2 for a
 * label a frozen sheet has not seen. */
static int32_t intern(sheet *sh, const char *s, int col)
{
    if (!sh->frozen && (size_t)(sh->n_strs + 1) * 2 > sh->hash_cap &&
        !rehash(sh, sh->hash_cap ? sh->hash_cap * 2 : 64))
        return -1;
    size_t j = hash_str(s) & (sh->hash_cap - 1);
    for (; sh->hash[j] >= 0; j = (j + 1) & (sh->hash_cap - 1))
        if (strcmp(sh->strs[sh->hash[j]].s, s) == 0)
            return sh->hash[j];
    if (sh->frozen)
        return -2;
    label_str *strs = sh->n_strs == INT32_MAX ? NULL
                      : grow(sh->strs, &sh->cap_strs, (size_t)sh->n_strs + 1, sizeof *strs);
    if (!strs)
        return -1;
    sh->strs = strs;
    char *d = tk_strdup(s);
    if (!d)
        return -1;
    sh->strs[sh->n_strs] = (label_str){d, sh->row_line, col};
    sh->hash[j] = sh->n_strs;
    return sh->n_strs++;
}

/* Room for more data rows in every per-row array. */
static bool grow_rows(sheet *sh)
{
    size_t old = (size_t)sh->cap, cap = old ? old * 2 : 64;
    void *p;
    if (!(p = resize(sh->lines, old, cap, sizeof(int64_t))))
        return false;
    sh->lines = p;
    if (sh->nfeat) {
        if (!(p = resize(sh->x, old, cap, (size_t)sh->nfeat * sizeof(float))))
            return false;
        sh->x = p;
    }
    if (sh->nlab && sh->regression) {
        if (!(p = resize(sh->y, old, cap, (size_t)sh->nlab * sizeof(float))))
            return false;
        sh->y = p;
    } else if (sh->nlab) {
        if (!(p = resize(sh->label_ids, old, cap, sizeof(int32_t))))
            return false;
        sh->label_ids = p;
    }
    sh->cap = (int64_t)cap;
    return true;
}

static void data_row(sheet *sh)
{
    if (sh->n_cells != sh->ncol) {
        sh->st = tk_fail(sh->ctx, TK_ERR_INPUT, "%s:%lld: expected %d columns, found %d",
                         sh->name, (long long)sh->row_line, sh->ncol, sh->n_cells);
        return;
    }
    /* A streamed sheet parses every row it wants into row 0 and hands it on. */
    if (sh->hook && sh->hook->want && !sh->hook->want(sh)) {
        sh->n++;
        sh->done = sh->max_rows > 0 && sh->n >= sh->max_rows;
        return;
    }
    int64_t at = sh->hook ? 0 : sh->n;
    if ((sh->hook ? sh->cap == 0 : sh->n == sh->cap) && !grow_rows(sh)) {
        oom(sh);
        return;
    }
    double v;
    for (int f = 0; f < sh->nfeat; f++) {
        if (!number_at(sh, sh->feat_cols[f], &v))
            return;
        sh->x[at * sh->nfeat + f] = (float)v;
    }
    int32_t id = -1;
    for (int k = 0; k < sh->nlab; k++) {
        int col = sh->label_cols[k];
        if (sh->regression) {
            if (!number_at(sh, col, &v))
                return;
            sh->y[at * sh->nlab + k] = (float)v;
            continue;
        }
        if (blank(cell(sh, col))) {
            sh->st = tk_fail(sh->ctx, TK_ERR_INPUT, "%s:%lld: column %d: missing value",
                             sh->name, (long long)sh->row_line, col + 1);
            return;
        }
        id = intern(sh, cell(sh, col), col);
        if (id == -2) {
            sh->st = tk_fail(sh->ctx, TK_ERR_INPUT, "%s:%lld: column %d: label '%.60s' was not "
                             "in the file when it was checked (has the file changed?)",
                             sh->name, (long long)sh->row_line, col + 1, cell(sh, col));
            return;
        }
        if (id < 0) {
            oom(sh);
            return;
        }
        sh->label_ids[at] = id;
    }
    if (sh->hook) {
        sh->n++;
        sh->done = sh->max_rows > 0 && sh->n >= sh->max_rows;
        sh->st = sh->hook->row(sh, sh->x, sh->y, id, sh->row_line);
        return;
    }
    sh->lines[sh->n++] = sh->row_line;
}

static void end_row(sheet *sh)
{
    if (++sh->records <= sh->skip_rows)
        return;
    if (sh->ncol == 0) {
        sh->ncol = sh->n_cells;
        if (sh->header) {
            sh->names = tk_calloc((size_t)sh->ncol, sizeof(char *));
            if (!sh->names) {
                oom(sh);
                return;
            }
            for (int i = 0; i < sh->ncol; i++)
                if (!(sh->names[i] = tk_strdup(cell(sh, i)))) {
                    oom(sh);
                    return;
                }
        }
        resolve_columns(sh);
        if (sh->header)
            return;
    }
    if (sh->st == TK_OK)
        data_row(sh);
}

void tk_csv_on_field(void *s, size_t len, void *data)
{
    sheet *sh = data;
    if (sh->st || sh->done)
        return;
    if (!s) {
        /* Runs of spaces delimit once when the delimiter is a space (aligned columns). */
        if (sh->delim == ' ')
            return;
        s = "";
        len = 0;
    }
    if (!sh->in_row) {
        sh->in_row = true;
        sh->row_line = sh->line;
        sh->n_cells = 0;
        sh->cells_len = 0;
    }
    sh->after_cr = false;
    const char *nul = memchr(s, 0, len);
    if (nul) {
        /* Cells are kept NUL-terminated: the byte would silently cut the cell short. */
        int64_t line = sh->line;
        for (const char *p = s; (p = memchr(p, '\n', (size_t)(nul - p))); p++)
            line++;
        sh->st = tk_fail(sh->ctx, TK_ERR_INPUT, "%s:%lld: column %d: a NUL byte inside the "
                         "cell (is this a binary file?)", sh->name, (long long)line,
                         sh->n_cells + 1);
        return;
    }
    char *cells = grow(sh->cells, &sh->cells_cap, sh->cells_len + len + 1, 1);
    if (cells)
        sh->cells = cells;
    size_t *off = sh->n_cells == INT32_MAX ? NULL
                  : grow(sh->cell_off, &sh->cap_cells, (size_t)sh->n_cells + 1, sizeof *off);
    if (off)
        sh->cell_off = off;
    if (!cells || !off) {
        oom(sh);
        return;
    }
    sh->cell_off[sh->n_cells++] = sh->cells_len;
    memcpy(sh->cells + sh->cells_len, s, len);
    sh->cells[sh->cells_len + len] = 0;
    sh->cells_len += len + 1;
    sh->max_field = len > sh->max_field ? len : sh->max_field;
    sh->max_cells = sh->cells_len > sh->max_cells ? sh->cells_len : sh->max_cells;
    /* Quoted fields may span lines; later rows still need their physical line. */
    for (const char *p = s, *e = (const char *)s + len; (p = memchr(p, '\n', (size_t)(e - p)));
         p++)
        sh->line++;
}

void tk_csv_on_row_end(int c, void *data)
{
    sheet *sh = data;
    if (sh->st || sh->done)
        return;
    if (sh->in_row) {
        sh->in_row = false;
        end_row(sh);
    }
    /* Called for every unquoted CR and LF (CSV_REPALL_NL): a CR LF pair is one line. */
    if (c == '\r') {
        sh->line++;
        sh->after_cr = true;
    } else if (c == '\n') {
        if (!sh->after_cr)
            sh->line++;
        sh->after_cr = false;
    }
}

void tk_csv_free_sheet(sheet *sh)
{
    if (sh->names)
        for (int i = 0; i < sh->ncol; i++)
            tk_free(sh->names[i]);
    tk_free(sh->names);
    for (int i = 0; i < sh->n_strs; i++)
        tk_free(sh->strs[i].s);
    tk_free(sh->strs);
    tk_free(sh->hash);
    tk_free(sh->cells);
    tk_free(sh->cell_off);
    tk_free(sh->feat_cols);
    tk_free(sh->label_cols);
    tk_free(sh->x);
    tk_free(sh->y);
    tk_free(sh->label_ids);
    tk_free(sh->lines);
}

tk_status tk_csv_parse_failure(sheet *sh, struct csv_parser *p, const char *what)
{
    if (csv_error(p) == CSV_ENOMEM || csv_error(p) == CSV_ETOOBIG) {
        oom(sh);
        return sh->st;
    }
    /* The row start is the useful line: a bad quote swallows the lines after it. */
    int64_t line = sh->in_row ? sh->row_line : sh->line;
    return sh->st = tk_fail(sh->ctx, TK_ERR_INPUT, "%s:%lld: %s", sh->name, (long long)line,
                            what);
}

void tk_csv_parser_init(sheet *sh, struct csv_parser *p, size_t reserve)
{
    csv_init(p, CSV_STRICT | CSV_STRICT_FINI | CSV_REPALL_NL | CSV_EMPTY_IS_NULL);
    csv_set_realloc_func(p, csv_realloc);
    csv_set_free_func(p, csv_release);
    csv_set_delim(p, (unsigned char)sh->delim);
    csv_set_space_func(p, sh->delim == ' ' ? tab_only
                          : sh->delim == '\t' ? space_only : space_or_tab);
    /* libcsv grows its buffer only when a field fills it (struct csv_parser is public). */
    if (reserve && (p->entry_buf = csv_realloc(NULL, reserve)))
        p->entry_size = reserve;
}

static tk_status read_sheet(sheet *sh, const char *path)
{
    sh->name = tk_data_basename(path);
    sh->line = 1;
    struct csv_parser p;
    tk_csv_parser_init(sh, &p, 0);
    gzFile f = tk_data_open(path, sh->ctx);
    unsigned char *buf = f ? tk_malloc(READ_CHUNK) : NULL;
    if (!f) {
        sh->st = TK_ERR_INPUT;
    } else if (!buf) {
        oom(sh);
    } else {
        bool first = true;
        for (;;) {
            int64_t r = tk_data_read(f, buf, READ_CHUNK, NULL, sh->name, sh->ctx);
            if (r < 0) {
                sh->st = TK_ERR_INPUT;
                break;
            }
            size_t off = 0;
            if (first && r >= 3 && memcmp(buf, "\xEF\xBB\xBF", 3) == 0)
                off = 3; /* spreadsheet programs start UTF-8 files with a byte-order mark */
            first = false;
            size_t len = (size_t)r - off;
            if (csv_parse(&p, buf + off, len, tk_csv_on_field, tk_csv_on_row_end, sh) != len && !sh->st)
                tk_csv_parse_failure(sh, &p, "malformed quoting (a quote inside an unquoted field, "
                                      "or text after a closing quote)");
            if (sh->st || r < READ_CHUNK)
                break;
        }
        if (!sh->st && csv_fini(&p, tk_csv_on_field, tk_csv_on_row_end, sh) != 0 && !sh->st)
            tk_csv_parse_failure(sh, &p, "unterminated quoted field");
    }
    csv_free(&p);
    tk_free(buf);
    if (f)
        gzclose(f);
    if (!sh->st && sh->n == 0)
        sh->st = tk_fail(sh->ctx, TK_ERR_INPUT, "%s: no data rows", sh->name);
    return sh->st;
}

static int cmp_label_str(const void *a, const void *b)
{
    return strcmp((*(label_str *const *)a)->s, (*(label_str *const *)b)->s);
}

tk_status tk_csv_class_values(sheet *sh, tk_dataset *ds, double *val)
{
    bool numeric = true;
    const label_str *bad = NULL;
    for (int i = 0; i < sh->n_strs && numeric; i++) {
        const label_str *e = &sh->strs[i];
        numeric = parse_num(e->s, &val[i]) == 0;
        if (numeric && (val[i] < 0 || val[i] >= MAX_CLASS_ID || val[i] != floor(val[i])) &&
            (!bad || e->line < bad->line))
            bad = e;
    }
    if (numeric && bad)
        return tk_fail(sh->ctx, TK_ERR_INPUT,
                       "%s:%lld: column %d: '%.60s' is not a class id (class labels are "
                       "integers >= 0 or names; numeric targets need a regression loss: mse, l1, "
                       "smooth_l1, huber)",
                       sh->name, (long long)bad->line, bad->col + 1, bad->s);
    if (!numeric) {
        label_str **order = tk_malloc((size_t)sh->n_strs * sizeof *order);
        ds->class_names = tk_calloc((size_t)sh->n_strs, sizeof(char *));
        if (!order || !ds->class_names) {
            tk_free(order);
            return tk_fail(sh->ctx, TK_ERR_RUNTIME, "%s: out of memory", sh->name);
        }
        for (int i = 0; i < sh->n_strs; i++)
            order[i] = &sh->strs[i];
        qsort(order, (size_t)sh->n_strs, sizeof *order, cmp_label_str);
        for (int rank = 0; rank < sh->n_strs; rank++) {
            int i = (int)(order[rank] - sh->strs);
            val[i] = rank;
            /* A streamed sheet keeps its labels to look shard rows up in. */
            if (sh->hook) {
                if (!(ds->class_names[rank] = tk_strdup(sh->strs[i].s))) {
                    tk_free(order);
                    return tk_fail(sh->ctx, TK_ERR_RUNTIME, "%s: out of memory", sh->name);
                }
                continue;
            }
            ds->class_names[rank] = sh->strs[i].s; /* moved: the sheet forgets it below */
            sh->strs[i].s = NULL;
        }
        tk_free(order);
        ds->n_classes = sh->n_strs;
    } else {
        double max = -1;
        for (int i = 0; i < sh->n_strs; i++)
            max = val[i] > max ? val[i] : max;
        ds->n_classes = (int)max + 1;
    }
    return TK_OK;
}

/* Turn the distinct label cells into class ids: all numbers -> those numbers (which must be
 * ids), otherwise names in sorted order. */
static tk_status class_labels(sheet *sh, tk_dataset *ds)
{
    double *val = tk_malloc((size_t)(sh->n_strs ? sh->n_strs : 1) * sizeof(double));
    if (!val)
        return tk_fail(sh->ctx, TK_ERR_RUNTIME, "%s: out of memory", sh->name);
    tk_status st = tk_csv_class_values(sh, ds, val);
    for (int64_t r = 0; st == TK_OK && r < sh->n; r++)
        ds->y[r] = (float)val[sh->label_ids[r]];
    tk_free(val);
    return st;
}

/* A per-row array cut down from cap to n rows (kept as it is if memory is short). */
static void *trimmed(void *p, size_t cap, size_t n, size_t elem)
{
    void *q = cap > n ? resize(p, n, n, elem) : NULL;
    return q ? q : p;
}

static tk_status take_labels(sheet *sh, tk_dataset *ds)
{
    ds->label_width = sh->nlab;
    if (sh->regression) {
        ds->kind = TK_LABEL_REGRESSION;
        ds->y = trimmed(sh->y, (size_t)sh->cap, (size_t)sh->n,
                        (size_t)sh->nlab * sizeof(float));
        sh->y = NULL;
        return TK_OK;
    }
    ds->kind = TK_LABEL_CLASS;
    ds->y = tk_malloc((size_t)sh->n * sizeof(float));
    if (!ds->y)
        return tk_fail(sh->ctx, TK_ERR_RUNTIME, "%s: out of memory", sh->name);
    return class_labels(sh, ds);
}

tk_status tk_dataset_csv(const tk_csv_opts *o, tk_dataset **out, tk_ctx *ctx)
{
    *out = NULL;
    if (!o || !o->path)
        return tk_fail(ctx, TK_ERR_INPUT, "csv: no path given");
    if (o->skip_rows < 0 || o->label_skip_rows < 0)
        return tk_fail(ctx, TK_ERR_INPUT, "%s: skip_rows must be >= 0",
                       tk_data_basename(o->path));
    char delim = o->delimiter ? o->delimiter : ',';
    if (delim == '"' || delim == '\n' || delim == '\r')
        return tk_fail(ctx, TK_ERR_INPUT, "%s: the delimiter cannot be a quote or a newline",
                       tk_data_basename(o->path));
    if (o->stream)
        return tk_csv_stream_index(o, out, ctx);
    sheet data = { /* the features file, and the labels too unless label_path */
        .delim = delim, .skip_rows = o->skip_rows, .header = o->header, .ctx = ctx,
        .want_features = true, .want_labels = !o->label_path && !o->like,
        .regression = o->regression, .like = o->like != NULL,
        .exclude_label = o->like && !o->label_path,
        .like_cols = o->like ? o->like->columns : 0,
        .like_feat = o->like ? (int)o->like->nfeat : 0,
        .feat_refs = o->features, .n_feat_refs = o->n_features,
        .label_refs = o->label, .n_label_refs = o->n_label,
    };
    /* The labels file is read with the features file's delimiter unless told otherwise. */
    sheet lab = {
        .delim = o->label_delimiter ? o->label_delimiter : delim,
        .skip_rows = o->label_skip_rows, .header = o->label_header, .ctx = ctx,
        .want_labels = true, .regression = o->regression,
        .label_refs = o->label, .n_label_refs = o->n_label,
    };
    tk_status st = read_sheet(&data, o->path);
    if (!st && o->label_path && !o->like) {
        st = read_sheet(&lab, o->label_path);
        if (!st && lab.n != data.n)
            st = tk_fail(ctx, TK_ERR_INPUT, "%s has %lld rows but %s has %lld", lab.name,
                         (long long)lab.n, data.name, (long long)data.n);
    }
    tk_dataset *ds = st ? NULL : tk_dataset_alloc(o->path, "row");
    if (!st && !ds)
        st = tk_fail(ctx, TK_ERR_RUNTIME, "%s: out of memory", data.name);
    if (!st) {
        ds->n = data.n;
        ds->nfeat = data.nfeat;
        ds->columns = data.ncol;
        ds->shape = (tk_shape){1, {data.nfeat}};
        ds->x32 = trimmed(data.x, (size_t)data.cap, (size_t)data.n,
                          (size_t)data.nfeat * sizeof(float));
        ds->rows = trimmed(data.lines, (size_t)data.cap, (size_t)data.n, sizeof(int64_t));
        data.x = NULL;
        data.lines = NULL;
        if (o->label_path && !o->like) {
            ds->label_rows = trimmed(lab.lines, (size_t)lab.cap, (size_t)lab.n, sizeof(int64_t));
            lab.lines = NULL;
            ds->label_path = tk_strdup(o->label_path);
            if (!ds->label_path)
                st = tk_fail(ctx, TK_ERR_RUNTIME, "%s: out of memory", lab.name);
        }
        if (!st && !o->like)
            st = take_labels(o->label_path ? &lab : &data, ds);
    }
    tk_csv_free_sheet(&data);
    tk_csv_free_sheet(&lab);
    if (st) {
        tk_dataset_free(ds);
        return st;
    }
    *out = ds;
    return TK_OK;
}
