/* ckpt.c - checkpoints: full ones (parameters, buffers, optimizer slots and the trainer's
 * state in the metadata, with a checksum of the tensor bytes) and weights-only ones that
 * PyTorch loads unchanged; loading verifies everything before it touches the model. Also the
 * fine-tuning load by name (renames, strict) with its report. Files go through safetensors.c
 * and tk_write_atomic, so a crash never leaves a half-written checkpoint under a real name. */
#include "tk_int.h"

#include <stdlib.h>
#include <string.h>
#include <zlib.h>

/* ---------------------------------------------------------------- metadata values */

typedef struct {
    const char *keys[96];
    const char *values[96];
    char text[96][64];
    int n;
} meta;

static void put(meta *md, const char *key, const char *value)
{
    md->keys[md->n] = key;
    md->values[md->n++] = value;
}

static void put_int(meta *md, const char *key, int64_t v)
{
    snprintf(md->text[md->n], sizeof md->text[0], "%lld", (long long)v);
    put(md, key, md->text[md->n]);
}

/* Hex floats round-trip doubles exactly, which resume needs. */
static void put_double(meta *md, const char *key, double v)
{
    snprintf(md->text[md->n], sizeof md->text[0], "%a", v);
    put(md, key, md->text[md->n]);
}

static char *join_doubles(const double *v, int64_t n)
{
    char *s = tk_malloc((size_t)(n > 0 ? n : 1) * 32);
    if (!s)
        return NULL;
    size_t used = 0;
    s[0] = 0;
    for (int64_t i = 0; i < n; i++)
        used += (size_t)snprintf(s + used, 32, i ? ",%a" : "%a", v[i]);
    return s;
}

/* Parse n comma-separated doubles; false if the count or syntax is off. */
static bool split_doubles(const char *s, double *out, int64_t n)
{
    if (!s)
        return n == 0;
    const char *p = s;
    for (int64_t i = 0; i < n; i++) {
        char *end;
        out[i] = strtod(p, &end);
        if (end == p || (i + 1 < n && *end != ','))
            return false;
        p = *end == ',' ? end + 1 : end;
    }
    return *p == 0;
}

static bool get_int(const tk_st_file *f, const char *key, int64_t *out)
{
    const char *s = tk_st_meta(f, key);
    char *end;
    if (!s)
        return false;
    *out = strtoll(s, &end, 10);
    return end != s && *end == 0;
}

static bool get_double(const tk_st_file *f, const char *key, double *out)
{
    const char *s = tk_st_meta(f, key);
    char *end;
    if (!s)
        return false;
    *out = strtod(s, &end);
    return end != s && *end == 0;
}

/* ---------------------------------------------------------------- save */

static char *group_signature(const tk_model *m)
{
    size_t cap = 64;
    for (int k = 0; k < m->n_groups; k++)
        cap += strlen(m->groups[k].patterns) + 4;
    char *s = tk_malloc(cap);
    if (!s)
        return NULL;
    size_t used = 0;
    s[0] = 0;
    for (int k = 0; k < m->n_groups; k++)
        used += (size_t)snprintf(s + used, cap - used, k ? " | %s" : "%s", m->groups[k].patterns);
    return s;
}

/* batch norm's num_batches_tracked is an int64 in PyTorch (the one integer buffer of its
 * modules); kept as a float here, it is stored as I64 so load_state_dict sees its own dtype.
 * The reader converts either back. */
static bool integer_counter(const char *name)
{
    size_t n = strlen(name), k = strlen("num_batches_tracked");
    return n >= k && strcmp(name + n - k, "num_batches_tracked") == 0 &&
           (n == k || name[n - k - 1] == '.');
}

/* The checksum covers tensor bytes in name order: the order the writer stores them. */
static int by_name(const void *a, const void *b)
{
    return strcmp(((const tk_st_tensor *)a)->name, ((const tk_st_tensor *)b)->name);
}

typedef struct {
    const char *key, *value;
} pair;

static int by_key(const void *a, const void *b)
{
    return strcmp(((const pair *)a)->key, ((const pair *)b)->key);
}

/* The metadata's own checksum: a CRC-32 of every pair but itself, in key order (sorts p). The
 * tensor checksum leaves the training state out, and a damaged counter must be found too. */
static uint32_t meta_checksum(pair *p, int n)
{
    qsort(p, (size_t)n, sizeof *p, by_key);
    uLong crc = crc32(0L, Z_NULL, 0);
    for (int i = 0; i < n; i++) {
        if (strcmp(p[i].key, "meta_checksum") == 0)
            continue;
        crc = crc32(crc, (const Bytef *)p[i].key, (uInt)strlen(p[i].key) + 1);
        crc = crc32(crc, (const Bytef *)p[i].value, (uInt)strlen(p[i].value) + 1);
    }
    return (uint32_t)crc;
}

static uint32_t checksum(const tk_st_tensor *t, int n)
{
    uLong crc = crc32(0L, Z_NULL, 0);
    for (int i = 0; i < n; i++) {
        int64_t bytes = tk_shape_numel(&t[i].shape) * (int64_t)sizeof(float);
        const unsigned char *p = (const unsigned char *)t[i].data;
        /* zlib takes uInt lengths: feed large tensors in pieces. */
        while (bytes > 0) {
            uInt piece = bytes > (1 << 30) ? (1u << 30) : (uInt)bytes;
            crc = crc32(crc, p, piece);
            p += piece;
            bytes -= piece;
        }
    }
    return (uint32_t)crc;
}

tk_status tk_ckpt_save(const tk_model *m, const char *path, const tk_train_state *st,
                       const char *config, tk_ctx *ctx)
{
    int n = st ? m->n_tensors : m->n_state;
    tk_st_tensor *t = tk_calloc((size_t)(n ? n : 1), sizeof *t);
    if (!t)
        return tk_fail(ctx, TK_ERR_RUNTIME, "out of memory");
    bool *i64 = tk_calloc((size_t)(n ? n : 1), sizeof *i64);
    if (!i64) {
        tk_free(t);
        return tk_fail(ctx, TK_ERR_RUNTIME, "out of memory");
    }
    for (int i = 0; i < n; i++)
        t[i] = (tk_st_tensor){m->tensors[i].name, m->tensors[i].shape, m->tensors[i].data};
    qsort(t, (size_t)n, sizeof *t, by_name);
    for (int i = 0; i < n; i++)
        i64[i] = integer_counter(t[i].name);
    meta md = {.n = 0};
    char crc[16];
    snprintf(crc, sizeof crc, "%08x", checksum(t, n));
    put(&md, "format", "pt");
    put(&md, "tkrun", TK_VERSION);
    put(&md, "kind", st ? "full" : "weights");
    put(&md, "checksum", crc);
    char *groups = NULL, *sched = NULL, *metrics = NULL;
    if (st) {
        groups = group_signature(m);
        sched = join_doubles(st->sched, st->n_sched);
        metrics = join_doubles(st->metrics, st->n_metrics);
        if (!groups || !sched || !metrics) {
            tk_free(groups);
            tk_free(sched);
            tk_free(metrics);
            tk_free(t);
            tk_free(i64);
            return tk_fail(ctx, TK_ERR_RUNTIME, "out of memory");
        }
        put(&md, "optimizer", m->opt->name);
        put(&md, "groups", groups);
        put_int(&md, "epoch", st->epoch);
        put_int(&md, "cursor", st->cursor);
        put_int(&md, "step", st->step);
        put_int(&md, "optim_steps", m->optim_steps);
        put_int(&md, "batches_seen", st->batches_seen);
        put_int(&md, "bad_epochs", st->bad_epochs);
        put_int(&md, "best_epoch", st->best_epoch);
        put_int(&md, "skips", st->skips);
        put_int(&md, "rows", st->rows);
        put_int(&md, "seed", (int64_t)m->seed);
        put_int(&md, "ranks", st->ranks);
        put_int(&md, "stat_ranks", st->stat_ranks);
        put_int(&md, "threads", tk_threads());
        put_double(&md, "best", st->best);
        put_double(&md, "stop_best", st->stop_best);
        put_double(&md, "loss_sum", st->loss_sum);
        put_double(&md, "loss_weight", st->loss_weight);
        put(&md, "sched", sched);
        put(&md, "metrics", metrics);
    }
    if (config)
        put(&md, "config", config);
    for (int i = 0; i < m->n_meta && md.n < 95; i++)
        put(&md, m->meta[2 * i], m->meta[2 * i + 1]);
    pair all[96];
    for (int i = 0; i < md.n; i++)
        all[i] = (pair){md.keys[i], md.values[i]};
    char meta_crc[16];
    snprintf(meta_crc, sizeof meta_crc, "%08x", meta_checksum(all, md.n));
    put(&md, "meta_checksum", meta_crc);
    tk_status s = tk_st_save_typed(path, t, i64, n, md.keys, md.values, md.n, ctx);
    tk_free(groups);
    tk_free(sched);
    tk_free(metrics);
    tk_free(t);
    tk_free(i64);
    return s;
}

/* ---------------------------------------------------------------- load */

static tk_status verify_checksum(const tk_st_file *f, const char *path, tk_ctx *ctx)
{
    const char *want = tk_st_meta(f, "checksum");
    if (!want)
        return tk_fail(ctx, TK_ERR_INPUT, "%s: not a tkrun checkpoint (no checksum in the "
                       "metadata)", path);
    int n = tk_st_count(f);
    tk_st_tensor *t = tk_calloc((size_t)(n ? n : 1), sizeof *t);
    if (!t)
        return tk_fail(ctx, TK_ERR_RUNTIME, "out of memory");
    for (int i = 0; i < n; i++)
        t[i] = (tk_st_tensor){tk_st_name(f, i), tk_st_shape(f, i), tk_st_data(f, i)};
    qsort(t, (size_t)n, sizeof *t, by_name);
    char got[16];
    snprintf(got, sizeof got, "%08x", checksum(t, n));
    tk_free(t);
    if (strcmp(got, want) != 0)
        return tk_fail(ctx, TK_ERR_INPUT, "%s: corrupted: checksum of the tensor data is %s, "
                       "the file says %s", path, got, want);
    /* Files written before the metadata had its own checksum carry none. */
    const char *meta_want = tk_st_meta(f, "meta_checksum");
    if (!meta_want)
        return TK_OK;
    int k = tk_st_meta_count(f);
    pair *p = tk_calloc((size_t)(k ? k : 1), sizeof *p);
    if (!p)
        return tk_fail(ctx, TK_ERR_RUNTIME, "out of memory");
    for (int i = 0; i < k; i++)
        p[i] = (pair){tk_st_meta_key(f, i), tk_st_meta(f, tk_st_meta_key(f, i))};
    snprintf(got, sizeof got, "%08x", meta_checksum(p, k));
    tk_free(p);
    if (strcmp(got, meta_want) != 0)
        return tk_fail(ctx, TK_ERR_INPUT, "%s: corrupted: checksum of the metadata (the "
                       "training state) is %s, the file says %s", path, got, meta_want);
    return TK_OK;
}

/* Every tensor of the model (slots too) with its shape, and nothing else. */
static tk_status check_structure(const tk_model *m, const tk_st_file *f, const char *path,
                                 tk_ctx *ctx)
{
    char msg[2048] = "";
    size_t used = 0;
    int problems = 0;
    for (int i = 0; i < m->n_tensors; i++) {
        const tk_tensor_rec *r = &m->tensors[i];
        int j = tk_st_find(f, r->name);
        char a[96], b[96];
        if (j < 0) {
            if (problems++ < 6)
                used += (size_t)snprintf(msg + used, sizeof msg - used, "; missing '%s'", r->name);
        } else {
            tk_shape s = tk_st_shape(f, j);
            if (s.ndim != r->shape.ndim ||
                memcmp(s.d, r->shape.d, sizeof(int64_t) * (size_t)s.ndim) != 0) {
                if (problems++ < 6)
                    used += (size_t)snprintf(msg + used, sizeof msg - used,
                                             "; '%s' is %s in the checkpoint but %s here",
                                             r->name, tk_shape_str(&s, a, sizeof a),
                                             tk_shape_str(&r->shape, b, sizeof b));
            }
        }
        if (used >= sizeof msg)
            used = sizeof msg - 1;
    }
    for (int j = 0; j < tk_st_count(f); j++) {
        bool known = false;
        for (int i = 0; i < m->n_tensors && !known; i++)
            known = strcmp(m->tensors[i].name, tk_st_name(f, j)) == 0;
        if (!known && problems++ < 6) {
            used += (size_t)snprintf(msg + used, sizeof msg - used, "; unexpected '%s'",
                                     tk_st_name(f, j));
            if (used >= sizeof msg)
                used = sizeof msg - 1;
        }
    }
    if (problems)
        return tk_fail(ctx, TK_ERR_INPUT, "%s: the model's structure changed since this "
                       "checkpoint (%d difference%s)%s", path, problems, problems > 1 ? "s" : "",
                       msg);
    return TK_OK;
}

/* The first counter a resume would trust out of range, or NULL. The checksum covers tensor
 * bytes, not the metadata, and these counters index batches and schedules. */
static const char *bad_counter(const tk_train_state *s, int64_t optim_steps)
{
    const struct {
        const char *name;
        int64_t v;
    } c[] = {{"epoch", s->epoch},       {"cursor", s->cursor},
             {"step", s->step},         {"optim_steps", optim_steps},
             {"batches_seen", s->batches_seen}, {"bad_epochs", s->bad_epochs},
             {"skips", s->skips},       {"rows", s->rows}};
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++)
        if (c[i].v < 0)
            return c[i].name;
    /* The batches of the epoch under way were seen too. */
    return s->cursor > s->batches_seen ? "cursor" : NULL;
}

tk_status tk_ckpt_load(tk_model *m, const char *path, tk_train_state *st, tk_ctx *ctx)
{
    tk_st_file *f = NULL;
    if (tk_st_load(path, &f, ctx) != TK_OK)
        return TK_ERR_INPUT;
    tk_status s = verify_checksum(f, path, ctx);
    const char *kind = tk_st_meta(f, "kind");
    if (s == TK_OK && (!kind || strcmp(kind, "full") != 0))
        s = tk_fail(ctx, TK_ERR_INPUT, "%s: holds weights only, not a training state to resume "
                    "(use --init to start from these weights)", path);
    const char *opt = tk_st_meta(f, "optimizer");
    if (s == TK_OK && (!opt || strcmp(opt, m->opt->name) != 0))
        s = tk_fail(ctx, TK_ERR_INPUT, "%s: the optimizer changed from %s to %s; resume keeps "
                    "the optimizer (start a new run with --init to change it)", path,
                    opt ? opt : "?", m->opt->name);
    char *groups = s == TK_OK ? group_signature(m) : NULL;
    const char *old_groups = tk_st_meta(f, "groups");
    if (s == TK_OK && (!groups || !old_groups || strcmp(groups, old_groups) != 0))
        s = tk_fail(ctx, TK_ERR_INPUT, "%s: the parameter groups changed (checkpoint: %s; "
                    "script: %s)", path, old_groups ? old_groups : "?", groups ? groups : "?");
    tk_free(groups);
    if (s == TK_OK)
        s = check_structure(m, f, path, ctx);
    tk_train_state in = *st;
    int64_t optim_steps = 0;
    bool ok = s == TK_OK && get_int(f, "epoch", &in.epoch) && get_int(f, "cursor", &in.cursor) &&
              get_int(f, "step", &in.step) && get_int(f, "optim_steps", &optim_steps) &&
              get_int(f, "batches_seen", &in.batches_seen) &&
              get_int(f, "bad_epochs", &in.bad_epochs) &&
              get_int(f, "best_epoch", &in.best_epoch) && get_int(f, "skips", &in.skips) &&
              get_int(f, "rows", &in.rows) && get_double(f, "best", &in.best) &&
              get_double(f, "stop_best", &in.stop_best) &&
              get_double(f, "loss_sum", &in.loss_sum) &&
              split_doubles(tk_st_meta(f, "sched"), in.sched, in.n_sched) &&
              split_doubles(tk_st_meta(f, "metrics"), in.metrics, in.n_metrics);
    if (s == TK_OK && !ok)
        s = tk_fail(ctx, TK_ERR_INPUT, "%s: the training state in the metadata is incomplete "
                    "or does not fit this pipeline (schedule or metrics changed?)", path);
    const char *wrong = s == TK_OK ? bad_counter(&in, optim_steps) : NULL;
    if (wrong)
        s = tk_fail(ctx, TK_ERR_INPUT, "%s: corrupted: the training state's %s (%s) is out of "
                    "range", path, wrong, tk_st_meta(f, wrong));
    /* Older checkpoints weighed every row by 1. */
    if (s == TK_OK && !get_double(f, "loss_weight", &in.loss_weight))
        in.loss_weight = (double)in.rows;
    if (s == TK_OK && !get_int(f, "ranks", &in.ranks))
        in.ranks = 0;
    if (s == TK_OK && !get_int(f, "stat_ranks", &in.stat_ranks))
        in.stat_ranks = in.ranks > 0 ? in.ranks : 1;
    if (s == TK_OK) {
        for (int i = 0; i < m->n_tensors; i++) {
            const tk_tensor_rec *r = &m->tensors[i];
            memcpy(r->data, tk_st_data(f, tk_st_find(f, r->name)),
                   sizeof(float) * (size_t)tk_shape_numel(&r->shape));
        }
        m->optim_steps = optim_steps;
        *st = in;
    }
    tk_st_free(f);
    return s;
}

/* ---------------------------------------------------------------- weights by name */

/* "old.*" -> "new.*": the text the star matched moves into the target's star. */
static bool rename_one(const char *name, const tk_rename *r, char *out, size_t cap)
{
    const char *star = strchr(r->from, '*');
    if (!star)
        return strcmp(name, r->from) == 0 && snprintf(out, cap, "%s", r->to) > 0;
    size_t pre = (size_t)(star - r->from), post = strlen(star + 1), len = strlen(name);
    if (len < pre + post || strncmp(name, r->from, pre) != 0 ||
        strcmp(name + len - post, star + 1) != 0)
        return false;
    const char *to_star = strchr(r->to, '*');
    if (!to_star)
        return snprintf(out, cap, "%s", r->to) > 0;
    snprintf(out, cap, "%.*s%.*s%s", (int)(to_star - r->to), r->to, (int)(len - pre - post),
             name + pre, to_star + 1);
    return true;
}

static void list_add(char *list, size_t cap, const char *item)
{
    size_t used = strlen(list);
    if (used + strlen(item) + 8 < cap)
        snprintf(list + used, cap - used, "%s%s", used ? ", " : "", item);
    else if (used + 5 < cap && strcmp(list + used - 3, "...") != 0)
        snprintf(list + used, cap - used, ", ...");
}

tk_status tk_model_load_weights(tk_model *m, const char *path, const tk_rename *renames,
                                int n_renames, bool strict, FILE *report, tk_ctx *ctx)
{
    tk_st_file *f = NULL;
    if (tk_st_load(path, &f, ctx) != TK_OK)
        return TK_ERR_INPUT;
    /* A file tkrun wrote carries a checksum, so damage is refused rather than loaded; files
     * from elsewhere (PyTorch's save_file) carry none. */
    tk_status crc = tk_st_meta(f, "checksum") ? verify_checksum(f, path, ctx) : TK_OK;
    if (crc != TK_OK) {
        tk_st_free(f);
        return crc;
    }
    int n = tk_st_count(f);
    int *target = tk_calloc((size_t)(n ? n : 1), sizeof(int));
    /* named: the file has a tensor of that name (loaded or shape-mismatched) */
    bool *named = tk_calloc((size_t)(m->n_state ? m->n_state : 1), sizeof(bool));
    static char loaded[8192], missing[8192], unexpected[8192], mismatched[8192];
    loaded[0] = missing[0] = unexpected[0] = mismatched[0] = 0;
    int n_loaded = 0, n_missing = 0, n_unexpected = 0, n_mismatched = 0;
    if (!target || !named) {
        tk_free(target);
        tk_free(named);
        tk_st_free(f);
        return tk_fail(ctx, TK_ERR_RUNTIME, "out of memory");
    }
    for (int j = 0; j < n; j++) {
        char name[512];
        snprintf(name, sizeof name, "%s", tk_st_name(f, j));
        for (int k = 0; k < n_renames; k++)
            if (rename_one(tk_st_name(f, j), &renames[k], name, sizeof name))
                break;
        target[j] = -1;
        int i = -1;
        for (int t = 0; t < m->n_state && i < 0; t++)
            if (strcmp(m->tensors[t].name, name) == 0)
                i = t;
        /* A full checkpoint's optimizer slots are training state, not weights. */
        if (i < 0 && strncmp(tk_st_name(f, j), "optim.", 6) == 0 && tk_st_meta(f, "epoch"))
            continue;
        if (i < 0) {
            n_unexpected++;
            list_add(unexpected, sizeof unexpected, tk_st_name(f, j));
            continue;
        }
        named[i] = true;
        tk_shape s = tk_st_shape(f, j);
        const tk_shape *want = &m->tensors[i].shape;
        if (s.ndim != want->ndim || memcmp(s.d, want->d, sizeof(int64_t) * (size_t)s.ndim)) {
            char a[96], b[96], item[800];
            snprintf(item, sizeof item, "%s (file %s, model %s)", name,
                     tk_shape_str(&s, a, sizeof a), tk_shape_str(want, b, sizeof b));
            n_mismatched++;
            list_add(mismatched, sizeof mismatched, item);
            continue;
        }
        target[j] = i;
        n_loaded++;
        list_add(loaded, sizeof loaded, name);
    }
    for (int i = 0; i < m->n_state; i++)
        if (!named[i]) {
            n_missing++;
            list_add(missing, sizeof missing, m->tensors[i].name);
        }
    if (report) {
        fprintf(report, "init from %s: %d loaded, %d missing (kept at their init), %d "
                "unexpected, %d shape-mismatched\n", path, n_loaded, n_missing, n_unexpected,
                n_mismatched);
        const char *labels[4] = {"loaded", "missing", "unexpected", "mismatched"};
        const char *lists[4] = {loaded, missing, unexpected, mismatched};
        for (int k = 0; k < 4; k++)
            if (lists[k][0])
                fprintf(report, "  %-11s %s\n", labels[k], lists[k]);
    }
    tk_status st = TK_OK;
    if (strict && (n_missing || n_unexpected || n_mismatched))
        st = tk_fail(ctx, TK_ERR_INPUT, "%s: strict init: %d missing, %d unexpected, %d "
                     "shape-mismatched tensors%s%s%s%s%s%s (nothing was loaded)", path,
                     n_missing, n_unexpected, n_mismatched, n_missing ? "; missing: " : "",
                     missing, n_unexpected ? "; unexpected: " : "", unexpected,
                     n_mismatched ? "; mismatched: " : "", mismatched);
    for (int j = 0; st == TK_OK && j < n; j++)
        if (target[j] >= 0)
            memcpy(m->tensors[target[j]].data, tk_st_data(f, j),
                   sizeof(float) * (size_t)tk_shape_numel(&m->tensors[target[j]].shape));
    if (st == TK_OK && n_loaded == 0 && n > 0)
        st = tk_fail(ctx, TK_ERR_INPUT, "%s: no tensor matches the model by name and shape "
                     "(file has %s; model has %s)", path, unexpected[0] ? unexpected : mismatched,
                     missing);
    tk_free(target);
    tk_free(named);
    tk_st_free(f);
    return st;
}

tk_status tk_model_save_weights(const tk_model *m, const char *path, tk_ctx *ctx)
{
    return tk_ckpt_save(m, path, NULL, NULL, ctx);
}

/* ---------------------------------------------------------------- the model's own metadata */

/* Keys the checkpoint writer sets itself: a model key of the same name would be a duplicate. */
static const char *const reserved[] = {
    "format", "tkrun", "kind", "checksum", "optimizer", "groups", "epoch", "cursor", "step",
    "optim_steps", "batches_seen", "bad_epochs", "best_epoch", "skips", "rows", "seed",
    "threads", "best", "stop_best", "loss_sum", "loss_weight", "sched", "metrics", "config",
    "ranks", "stat_ranks", "meta_checksum",
};

tk_status tk_model_set_meta(tk_model *m, const char *key, const char *value, tk_ctx *ctx)
{
    for (size_t k = 0; k < sizeof reserved / sizeof reserved[0]; k++)
        if (strcmp(key, reserved[k]) == 0)
            return tk_fail(ctx, TK_ERR_INPUT, "metadata key '%s' is the checkpoint's own", key);
    char *v = tk_strdup(value);
    if (!v)
        return tk_fail(ctx, TK_ERR_RUNTIME, "out of memory");
    for (int i = 0; i < m->n_meta; i++)
        if (strcmp(m->meta[2 * i], key) == 0) {
            tk_free(m->meta[2 * i + 1]);
            m->meta[2 * i + 1] = v;
            return TK_OK;
        }
    /* A checkpoint's metadata has 96 slots; the writer's own keys take fewer than 32. */
    if (m->n_meta >= 64) {
        tk_free(v);
        return tk_fail(ctx, TK_ERR_RUNTIME, "more than 64 metadata keys on a model");
    }
    char **grown = tk_realloc(m->meta, sizeof(char *) * 2 * (size_t)m->n_meta,
                              sizeof(char *) * 2 * (size_t)(m->n_meta + 1));
    if (grown)
        m->meta = grown;
    char *k = grown ? tk_strdup(key) : NULL;
    if (!k) {
        tk_free(v);
        return tk_fail(ctx, TK_ERR_RUNTIME, "out of memory");
    }
    m->meta[2 * m->n_meta] = k;
    m->meta[2 * m->n_meta + 1] = v;
    m->n_meta++;
    return TK_OK;
}

int64_t tk_meta_numbers(const char *s, double *out, int64_t cap)
{
    if (!s)
        return -1;
    int64_t n = 0;
    for (const char *p = s; *p;) {
        char *end;
        double v = strtod(p, &end);
        if (end == p || n >= cap || (*end && *end != ',') || (*end == ',' && !end[1]))
            return -1;
        out[n++] = v;
        p = *end == ',' ? end + 1 : end;
    }
    return n;
}
