/* csv_stream.c - CSV files bigger than memory (tk_csv_opts.stream). One pass at load parses
 * every row exactly as csv.c does (so a malformed row anywhere is a load-time error naming
 * file:line and column) but keeps no rows: it records where each shard of shard_size rows
 * starts (byte offset and line), which part of the load-time split each row falls in (one
 * counter-based draw per row), the samples per shard and part, and per class label the
 * count and first line per part, which is what checks, splits and class tables need.
 * Readers then re-read single shards with pread and the same libcsv plumbing, into buffers
 * allocated once. Not here: the epoch order and windows (loader.c), splits (split.c).
 */
#include "csv_int.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define CHUNK (1 << 16)

/* ---------------------------------------------------------------- lines */

static bool is_space(const sheet *sh, unsigned char c)
{
    return c == ' ' ? sh->delim != ' ' : c == '\t' && sh->delim != '\t';
}

/* One line (its '\n' included, or the file's unterminated end; not `whole`: a piece of a
 * longer one) into the sheet. A line with
 * no quote, starting outside a row, is split here, as libcsv would split it (fields trimmed
 * of the same spaces, CR LF a row end and a blank line): libcsv takes a byte at a time
 * through callbacks, five times slower, and a streamed file is read every epoch. */
static tk_status feed_line(sheet *sh, struct csv_parser *p, const unsigned char *q,
                           size_t len, bool whole)
{
    const unsigned char *end = q + len;
    size_t body = len - (len && end[-1] == '\n');
    bool crlf = body && q[body - 1] == '\r';
    body -= crlf;
    if (!whole || sh->in_row || sh->delim == ' ' || memchr(q, '"', len) ||
        memchr(q, '\r', body)) {
        if (csv_parse(p, q, len, tk_csv_on_field, tk_csv_on_row_end, sh) != len && !sh->st &&
            !sh->done)
            tk_csv_parse_failure(sh, p, "malformed quoting (a quote inside an unquoted "
                                        "field, or text after a closing quote)");
        return sh->st;
    }
    const unsigned char *b = q, *e = q + body;
    while (b < e && is_space(sh, *b))
        b++;
    bool nl = body + crlf < len;
    if (b < e && sh->hook->want && !sh->hook->want(sh)) {
        /* A row of another part of the split (checked at load): counted, not split. */
        sh->records++;
        sh->n++;
        sh->done = sh->max_rows > 0 && sh->n >= sh->max_rows;
        sh->line += nl || crlf;
        sh->after_cr = crlf && !nl;
        return TK_OK;
    }
    if (b < e) {
        for (const unsigned char *f = q;;) {
            const unsigned char *d = memchr(f, sh->delim, (size_t)(e - f));
            const unsigned char *fe = d ? d : e;
            while (f < fe && is_space(sh, *f))
                f++;
            const unsigned char *t = fe;
            while (t > f && is_space(sh, t[-1]))
                t--;
            tk_csv_on_field((void *)f, (size_t)(t - f), sh);
            if (!d || sh->st)
                break;
            f = d + 1;
        }
    }
    if (crlf)
        tk_csv_on_row_end('\r', sh);
    if (nl)
        tk_csv_on_row_end('\n', sh);
    else if (!crlf && b < e) /* the file's last line, without a newline */
        tk_csv_on_row_end(-1, sh);
    return sh->st;
}

/* ---------------------------------------------------------------- the load pass */

typedef struct {
    tk_stream *s;
    int64_t cap_shards;
    int cap_ids;
    int64_t mark_off, mark_line, mark_n; /* the last line end outside a row, and rows by then */
} indexer;

static void *regrow(void *p, size_t old_n, size_t new_n, size_t elem)
{
    void *q = tk_realloc(p, old_n * elem, new_n * elem);
    if (q)
        memset((char *)q + old_n * elem, 0, (new_n - old_n) * elem);
    return q;
}

static tk_status index_oom(sheet *sh)
{
    return tk_fail(sh->ctx, TK_ERR_RUNTIME, "%s: out of memory", sh->name);
}

static tk_status index_row(sheet *sh, const float *x, const float *y, int32_t label,
                           int64_t line)
{
    (void)x;
    (void)y;
    indexer *ix = sh->hook->ud;
    tk_stream *s = ix->s;
    const int64_t r = sh->n - 1, k = r / s->shard_size;
    const int np = s->n_parts + 1;
    if (r % s->shard_size == 0) {
        if (ix->mark_n != r)
            return tk_fail(sh->ctx, TK_ERR_INPUT, "%s:%lld: stream = true needs rows that "
                           "end with a newline (\\n); this file's do not", sh->name,
                           (long long)line);
        if (k == ix->cap_shards) {
            int64_t cap = ix->cap_shards ? ix->cap_shards * 2 : 256;
            tk_shard *sh2 = regrow(s->shards, (size_t)ix->cap_shards, (size_t)cap, sizeof *sh2);
            if (sh2)
                s->shards = sh2;
            int32_t *n2 = sh2 ? regrow(s->shard_n, (size_t)(ix->cap_shards * np),
                                       (size_t)(cap * np), sizeof *n2) : NULL;
            if (!n2)
                return index_oom(sh);
            s->shard_n = n2;
            ix->cap_shards = cap;
        }
        s->shards[k] = (tk_shard){ix->mark_off, ix->mark_line};
        s->n_shards = k + 1;
    }
    int part = tk_stream_part(s, r);
    s->shard_n[k * np + part]++;
    s->part_n[part]++;
    if (label < 0)
        return TK_OK;
    if (label >= ix->cap_ids) {
        int cap = ix->cap_ids ? ix->cap_ids * 2 : 64;
        while (cap <= label)
            cap *= 2;
        int64_t *c = regrow(s->id_count, (size_t)ix->cap_ids * np, (size_t)cap * np, sizeof *c);
        if (c)
            s->id_count = c;
        int64_t *l = c ? regrow(s->id_line, (size_t)ix->cap_ids * np, (size_t)cap * np,
                                sizeof *l) : NULL;
        if (!l)
            return index_oom(sh);
        s->id_line = l;
        ix->cap_ids = cap;
    }
    s->n_ids = label + 1 > s->n_ids ? label + 1 : s->n_ids;
    if (s->id_count[label * np + part]++ == 0)
        s->id_line[label * np + part] = line;
    return TK_OK;
}

/* The file from byte `pos` into the sheet a line at a time, until its end or until the sheet
 * is done. With ix (the load pass), the offset after every line end outside a quoted field
 * is kept: the candidate shard starts. A line longer than the buffer goes to libcsv in
 * pieces. */
static tk_status read_lines(sheet *sh, struct csv_parser *p, int fd, int64_t pos,
                            unsigned char *buf, indexer *ix)
{
    size_t keep = 0;
    bool tail = false; /* libcsv holds the start of the current line */
    for (;;) {
        ssize_t got = pread(fd, buf + keep, CHUNK - keep, (off_t)(pos + (int64_t)keep));
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0)
            return sh->st = tk_fail(sh->ctx, ix ? TK_ERR_INPUT : TK_ERR_RUNTIME,
                                    "%s: read error: %s", sh->name, strerror(errno));
        size_t n = keep + (size_t)got, at = 0;
        bool eof = got == 0;
        while (at < n && !sh->done) {
            const unsigned char *nl = memchr(buf + at, '\n', n - at);
            if (!nl && !eof && at > 0)
                break;
            size_t stop = nl ? (size_t)(nl - buf) + 1 : n;
            if (feed_line(sh, p, buf + at, stop - at, (nl || eof) && !tail))
                return sh->st;
            tail = !nl && !eof;
            if (ix && nl && !sh->in_row) {
                ix->mark_off = pos + (int64_t)stop;
                ix->mark_line = sh->line;
                ix->mark_n = sh->n;
            }
            at = stop;
        }
        if (eof || sh->done)
            break;
        memmove(buf, buf + at, n - at);
        keep = n - at;
        pos += (int64_t)at;
    }
    if (!sh->done && csv_fini(p, tk_csv_on_field, tk_csv_on_row_end, sh) != 0 && !sh->st)
        tk_csv_parse_failure(sh, p, "unterminated quoted field");
    return sh->st;
}

/* The load pass: plain files only (gzip cannot be read from the middle). */
static tk_status index_file(sheet *sh, indexer *ix, int fd, struct csv_parser *p,
                            unsigned char *buf)
{
    ssize_t got = pread(fd, buf, 3, 0);
    if (got >= 2 && buf[0] == 0x1f && buf[1] == 0x8b)
        return tk_fail(sh->ctx, TK_ERR_INPUT, "%s: stream = true reads plain files (a gzip "
                       "file cannot be read from the middle): gunzip it, or drop stream",
                       sh->name);
    if (got == 3 && memcmp(buf, "\xEF\xBB\xBF", 3) == 0)
        ix->mark_off = 3; /* spreadsheet programs start UTF-8 files with a byte-order mark */
    if (read_lines(sh, p, fd, ix->mark_off, buf, ix))
        return sh->st;
    if (sh->n == 0)
        sh->st = tk_fail(sh->ctx, TK_ERR_INPUT, "%s: no data rows", sh->name);
    return sh->st;
}

/* The class ids of the label cells the pass saw, and the dataset's class table. */
static tk_status take_classes(sheet *sh, tk_dataset *ds, tk_stream *s)
{
    ds->label_width = sh->nlab;
    if (sh->regression) {
        ds->kind = TK_LABEL_REGRESSION;
        return TK_OK;
    }
    ds->kind = TK_LABEL_CLASS;
    double *val = tk_malloc((size_t)(sh->n_strs ? sh->n_strs : 1) * sizeof *val);
    s->id_value = tk_malloc((size_t)(sh->n_strs ? sh->n_strs : 1) * sizeof(float));
    tk_status st = val && s->id_value ? tk_csv_class_values(sh, ds, val) : index_oom(sh);
    for (int i = 0; st == TK_OK && i < sh->n_strs; i++)
        s->id_value[i] = (float)val[i];
    tk_free(val);
    return st;
}

tk_status tk_csv_stream_index(const tk_csv_opts *o, tk_dataset **out, tk_ctx *ctx)
{
    const char *name = tk_data_basename(o->path);
    if (o->label_path)
        return tk_fail(ctx, TK_ERR_INPUT, "%s: stream = true reads the labels from the same "
                       "file (label = a column of it, not another data.csv)", name);
    if (o->shard_size < 0 || o->shuffle_buffer < 0 || o->n_stream_split < 0 ||
        o->n_stream_split > 2)
        return tk_fail(ctx, TK_ERR_INPUT, "%s: shard_size and shuffle_buffer must be >= 1",
                       name);
    tk_stream *s = tk_calloc(1, sizeof *s);
    sheet *sh = tk_calloc(1, sizeof *sh);
    unsigned char *buf = tk_malloc(CHUNK);
    if (!s || !sh || !buf) {
        tk_free(s);
        tk_free(sh);
        tk_free(buf);
        return tk_fail(ctx, TK_ERR_RUNTIME, "%s: out of memory", name);
    }
    s->shard_size = o->shard_size ? o->shard_size : 1024;
    int64_t buffer = o->shuffle_buffer ? o->shuffle_buffer : 16384;
    s->window = buffer / s->shard_size > 1 ? buffer / s->shard_size : 1;
    s->n_parts = o->n_stream_split;
    for (int k = 0; k < s->n_parts; k++)
        s->fractions[k] = o->stream_split[k];
    s->split_seed = o->stream_split_seed;
    indexer ix = {.s = s, .mark_line = 1};
    tk_csv_hook hook = {.row = index_row, .ud = &ix};
    *sh = (sheet){.delim = o->delimiter ? o->delimiter : ',', .skip_rows = o->skip_rows,
                  .header = o->header, .ctx = ctx, .want_features = true, .want_labels = true,
                  .regression = o->regression, .feat_refs = o->features,
                  .n_feat_refs = o->n_features, .label_refs = o->label,
                  .n_label_refs = o->n_label, .hook = &hook, .name = name, .line = 1};
    tk_status st = TK_OK;
    errno = 0;
    int fd = open(o->path, O_RDONLY | O_CLOEXEC);
    struct stat fs;
    if (fd < 0 || fstat(fd, &fs) != 0)
        st = tk_fail(ctx, TK_ERR_INPUT, "cannot open '%s': %s", o->path, strerror(errno));
    struct csv_parser p;
    tk_csv_parser_init(sh, &p, 0);
    if (!st)
        st = index_file(sh, &ix, fd, &p, buf);
    csv_free(&p);
    tk_free(buf);
    if (fd >= 0)
        close(fd);
    tk_dataset *ds = st ? NULL : tk_dataset_alloc(o->path, "row");
    if (!st && !ds)
        st = index_oom(sh);
    if (!st) {
        s->size = (int64_t)fs.st_size;
        s->mtime_s = (int64_t)fs.st_mtim.tv_sec;
        s->mtime_ns = (int64_t)fs.st_mtim.tv_nsec;
        ds->stream = s;
        if (s->window > s->n_shards)
            s->window = s->n_shards; /* a buffer bigger than the file holds the file */
        ds->n = sh->n;
        ds->nfeat = sh->nfeat;
        ds->columns = sh->ncol;
        ds->shape = (tk_shape){1, {sh->nfeat}};
        st = take_classes(sh, ds, s);
    }
    sh->hook = NULL;
    sh->frozen = true;
    s->layout = sh;
    if (st) {
        if (ds)
            tk_dataset_free(ds);
        else
            tk_stream_free(s);
        return st;
    }
    *out = ds;
    return TK_OK;
}

void tk_stream_free(tk_stream *s)
{
    if (!s)
        return;
    if (s->layout) {
        tk_csv_free_sheet(s->layout);
        tk_free(s->layout);
    }
    tk_free(s->shards);
    tk_free(s->shard_n);
    tk_free(s->id_count);
    tk_free(s->id_line);
    tk_free(s->id_value);
    for (int64_t i = 0; s->paths && i < s->n_paths; i++)
        tk_free(s->paths[i]);
    tk_free(s->paths);
    tk_free(s);
}

int tk_stream_part(const tk_stream *s, int64_t row)
{
    if (s->n_parts == 0)
        return 0;
    float u = tk_rng_uniform_at(s->split_seed, TK_STREAM_SPLIT, 1, 0, (uint64_t)row);
    double edge = 0;
    for (int k = 0; k < s->n_parts; k++)
        if (u < (edge += s->fractions[k]))
            return k;
    return s->n_parts;
}

int64_t tk_stream_shard_n(const tk_view *v, int64_t shard)
{
    const tk_stream *s = v->ds->stream;
    const int np = s->n_parts + 1;
    if (v->part >= 0)
        return s->shard_n[shard * np + v->part];
    int64_t n = 0;
    for (int k = 0; k < np; k++)
        n += s->shard_n[shard * np + k];
    return n;
}

/* ---------------------------------------------------------------- re-reading shards */

struct tk_stream_reader {
    const tk_view *v;
    const tk_stream *s;
    int fd;
    unsigned char *buf;
    sheet sh;                  /* the layout's columns and labels; its own row buffers */
    struct csv_parser p;
    tk_csv_hook hook;
    int64_t first;             /* the shard's first row */
    float *x, *y;              /* where samples go, or fn */
    int64_t *rows, count;
    void (*fn)(void *ud, const float *x);
    void *ud;
    float *scratch;            /* images: one decoded sample for fn */
};

static bool reader_want(sheet *sh)
{
    const tk_stream_reader *r = sh->hook->ud;
    return r->v->part < 0 || tk_stream_part(r->s, r->first + sh->n) == r->v->part;
}

static tk_status reader_row(sheet *sh, const float *x, const float *y, int32_t label,
                            int64_t line)
{
    (void)line;
    tk_stream_reader *r = sh->hook->ud;
    const tk_dataset *ds = r->v->ds;
    if (r->fn) {
        r->fn(r->ud, x);
        return TK_OK;
    }
    memcpy(r->x + r->count * ds->nfeat, x, (size_t)ds->nfeat * sizeof(float));
    if (ds->kind == TK_LABEL_REGRESSION)
        memcpy(r->y + r->count * ds->label_width, y, (size_t)ds->label_width * sizeof(float));
    else
        r->y[r->count] = r->s->id_value[label];
    r->rows[r->count++] = r->first + sh->n - 1;
    return TK_OK;
}

tk_status tk_stream_reader_new(const tk_view *v, tk_stream_reader **out, tk_ctx *ctx)
{
    *out = NULL;
    const tk_stream *s = v->ds->stream;
    const sheet *lay = s->layout;
    tk_stream_reader *r = tk_calloc(1, sizeof *r);
    if (!r)
        return tk_fail(ctx, TK_ERR_RUNTIME, "%s: out of memory", v->ds->name);
    r->v = v;
    r->s = s;
    r->fd = -1;
    if (s->paths) {
        if (!(r->scratch = tk_alloc_floats((size_t)v->ds->nfeat))) {
            tk_free(r);
            return tk_fail(ctx, TK_ERR_RUNTIME, "%s: out of memory", v->ds->name);
        }
        *out = r;
        return TK_OK;
    }
    r->hook = (tk_csv_hook){.row = reader_row, .want = reader_want, .ud = r};
    r->sh = *lay;
    r->sh.hook = &r->hook;
    r->sh.skip_rows = 0;
    r->sh.header = false;
    r->sh.ctx = ctx;
    r->sh.max_rows = s->shard_size;
    r->sh.cells_cap = lay->max_cells + 16;
    r->sh.cap_cells = (size_t)lay->ncol + 1;
    r->sh.cells = tk_malloc(r->sh.cells_cap);
    r->sh.cell_off = tk_malloc(r->sh.cap_cells * sizeof(size_t));
    r->sh.cap = 1;
    r->sh.x = tk_malloc((size_t)(lay->nfeat ? lay->nfeat : 1) * sizeof(float));
    r->sh.y = tk_malloc((size_t)(lay->nlab ? lay->nlab : 1) * sizeof(float));
    r->sh.label_ids = tk_malloc(sizeof(int32_t));
    r->sh.lines = NULL;
    r->buf = tk_malloc(CHUNK);
    r->fd = open(v->ds->path, O_RDONLY | O_CLOEXEC);
    int open_errno = errno;
    tk_csv_parser_init(&r->sh, &r->p, lay->max_field + 16);
    if (!r->sh.cells || !r->sh.cell_off || !r->sh.x || !r->sh.y || !r->sh.label_ids ||
        !r->buf || !r->p.entry_buf) {
        tk_stream_reader_free(r);
        return tk_fail(ctx, TK_ERR_RUNTIME, "%s: out of memory", v->ds->name);
    }
    if (r->fd < 0) {
        tk_fail(ctx, TK_ERR_INPUT, "cannot open '%s': %s", v->ds->path, strerror(open_errno));
        tk_stream_reader_free(r);
        return TK_ERR_INPUT;
    }
    *out = r;
    return TK_OK;
}

void tk_stream_reader_free(tk_stream_reader *r)
{
    if (!r)
        return;
    if (r->fd >= 0)
        close(r->fd);
    tk_free_aligned(r->scratch);
    if (r->s->paths) {
        tk_free(r);
        return;
    }
    csv_free(&r->p);
    tk_free(r->sh.cells);
    tk_free(r->sh.cell_off);
    tk_free(r->sh.x);
    tk_free(r->sh.y);
    tk_free(r->sh.label_ids);
    tk_free(r->buf);
    tk_free(r);
}

static tk_status changed(const tk_stream_reader *r, tk_ctx *ctx)
{
    return tk_fail(ctx, TK_ERR_RUNTIME, "%s has changed since it was checked at the start "
                   "of the run (a streamed file must stay as it was); the last checkpoint "
                   "is intact", r->v->ds->path);
}

/* Back to a fresh parser state after a shard (libcsv's own reset is csv_fini's tail). */
static void reset_parser(tk_stream_reader *r)
{
    r->sh.done = true;
    int opts = csv_get_opts(&r->p);
    csv_set_opts(&r->p, (unsigned char)(opts & ~CSV_STRICT_FINI));
    csv_fini(&r->p, tk_csv_on_field, tk_csv_on_row_end, &r->sh);
    csv_set_opts(&r->p, (unsigned char)opts);
}

tk_status tk_stream_read_shard(tk_stream_reader *r, int64_t shard, float *x, float *y,
                            int64_t *rows, int64_t *count, tk_ctx *ctx)
{
    const tk_stream *s = r->s;
    struct stat fs;
    *count = 0;
    if (s->paths) {
        tk_status st = tk_image_read_shard(r->v, shard, x, y, rows, count, r->fn, r->ud,
                                           r->scratch, ctx);
        return st || r->fn || *count == tk_stream_shard_n(r->v, shard) ? st : changed(r, ctx);
    }
    if (fstat(r->fd, &fs) != 0 || (int64_t)fs.st_size != s->size ||
        (int64_t)fs.st_mtim.tv_sec != s->mtime_s || (int64_t)fs.st_mtim.tv_nsec != s->mtime_ns)
        return changed(r, ctx);
    sheet *sh = &r->sh;
    sh->ctx = ctx;
    sh->st = TK_OK;
    sh->n = 0;
    sh->line = s->shards[shard].line;
    sh->in_row = sh->after_cr = sh->done = false;
    sh->records = 0;
    r->first = shard * s->shard_size;
    r->x = x;
    r->y = y;
    r->rows = rows;
    r->count = 0;
    read_lines(sh, &r->p, r->fd, s->shards[shard].offset, r->buf, NULL);
    reset_parser(r);
    if (sh->st)
        return sh->st == TK_ERR_INPUT ? TK_ERR_RUNTIME : sh->st;
    int64_t want = r->v->ds->n - r->first < s->shard_size ? r->v->ds->n - r->first
                                                          : s->shard_size;
    if (sh->n != want || (!r->fn && r->count != tk_stream_shard_n(r->v, shard)))
        return changed(r, ctx);
    *count = r->count;
    return TK_OK;
}

tk_status tk_stream_scan(const tk_view *v, void (*fn)(void *ud, const float *x), void *ud,
                         tk_ctx *ctx)
{
    tk_stream_reader *r;
    tk_status st = tk_stream_reader_new(v, &r, ctx);
    if (st)
        return st;
    r->fn = fn;
    r->ud = ud;
    int64_t count;
    for (int64_t k = 0; st == TK_OK && k < v->ds->stream->n_shards; k++)
        st = tk_stream_read_shard(r, k, NULL, NULL, NULL, &count, ctx);
    tk_stream_reader_free(r);
    return st;
}
