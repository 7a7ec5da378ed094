/* split.c - views: subsets of a dataset's samples and their feature transform. Seeded,
 * disjoint splits (train/valid/test) and normalisation (fixed, standard, min-max) with
 * statistics taken from one view, usually the train split, and applied to others.
 * A streamed dataset's views have no indices: a part number of the split its load pass drew
 * (csv_stream.c), and statistics and label queries that read the pass's counts or the file.
 * Not here: gathering batches (loader.c), reading files (csv.c, idx.c).
 */
#include "dataset.h"

#include <math.h>
#include <string.h>

static tk_view *view_new(tk_dataset *ds, int64_t n)
{
    tk_view *v = tk_calloc(1, sizeof *v);
    if (!v)
        return NULL;
    v->ds = ds;
    v->n = n;
    v->part = -1;
    v->idx = ds->stream ? NULL : tk_malloc((size_t)(n ? n : 1) * sizeof(int64_t));
    v->mul = tk_malloc((size_t)ds->nfeat * sizeof(float));
    v->add = tk_malloc((size_t)ds->nfeat * sizeof(float));
    if ((!v->idx && !ds->stream) || !v->mul || !v->add) {
        tk_view_free(v);
        return NULL;
    }
    for (int64_t f = 0; f < ds->nfeat; f++) {
        v->mul[f] = 1.0f;
        v->add[f] = 0.0f;
    }
    return v;
}

tk_view *tk_view_all(tk_dataset *ds)
{
    tk_view *v = view_new(ds, ds->n);
    if (v && !ds->stream)
        for (int64_t i = 0; i < ds->n; i++)
            v->idx[i] = i;
    return v;
}

void tk_view_free(tk_view *v)
{
    if (!v)
        return;
    tk_free(v->idx);
    tk_free(v->mul);
    tk_free(v->add);
    tk_free(v);
}

int64_t tk_view_len(const tk_view *v)
{
    return v->n;
}

tk_dataset *tk_view_dataset(const tk_view *v)
{
    return v->ds;
}

int64_t tk_view_index(const tk_view *v, int64_t i)
{
    return i >= 0 && i < v->n && v->idx ? v->idx[i] : -1;
}

bool tk_view_streamed(const tk_view *v)
{
    return v->ds->stream != NULL;
}

/* The parts of a streamed dataset view v covers: [*lo, *hi). */
static void parts_of(const tk_view *v, int *lo, int *hi)
{
    *lo = v->part < 0 ? 0 : v->part;
    *hi = v->part < 0 ? v->ds->stream->n_parts + 1 : v->part + 1;
}

bool tk_view_find_label(const tk_view *v, bool (*match)(float label, void *ud), void *ud,
                        float *label, char *where, size_t cap)
{
    const tk_dataset *ds = v->ds;
    const tk_stream *s = ds->stream;
    if (!s) {
        for (int64_t i = 0; i < v->n; i++) {
            float y = tk_dataset_label(ds, v->idx[i], 0);
            if (match(y, ud)) {
                *label = y;
                tk_dataset_label_where(ds, v->idx[i], where, cap);
                return true;
            }
        }
        return false;
    }
    int lo, hi, np = s->n_parts + 1;
    parts_of(v, &lo, &hi);
    int64_t first = -1;
    for (int id = 0; id < s->n_ids; id++)
        for (int k = lo; k < hi; k++)
            if (s->id_count[id * np + k] && match(s->id_value[id], ud) &&
                (first < 0 || s->id_line[id * np + k] < first)) {
                first = s->id_line[id * np + k];
                *label = s->id_value[id];
            }
    if (first >= 0)
        snprintf(where, cap, "%s row %lld", ds->name, (long long)first);
    return first >= 0;
}

void tk_view_class_counts(const tk_view *v, int64_t *count, int k)
{
    const tk_stream *s = v->ds->stream;
    for (int c = 0; c < k; c++)
        count[c] = 0;
    if (!s) {
        for (int64_t i = 0; i < v->n; i++) {
            float id = tk_dataset_label(v->ds, v->idx[i], 0);
            if (id >= 0 && id < (float)k)
                count[(int)id]++;
        }
        return;
    }
    int lo, hi, np = s->n_parts + 1;
    parts_of(v, &lo, &hi);
    for (int id = 0; id < s->n_ids; id++)
        for (int p = lo; p < hi; p++)
            if (s->id_value[id] >= 0 && s->id_value[id] < (float)k)
                count[(int)s->id_value[id]] += s->id_count[id * np + p];
}

/* A streamed view's split: the parts its load pass drew, which must be these. */
static tk_status split_stream(tk_view *from, const double *fractions, int n_parts,
                              uint64_t seed, tk_view **parts, tk_ctx *ctx)
{
    tk_dataset *ds = from->ds;
    const tk_stream *s = ds->stream;
    bool same = from->part < 0 && s->n_parts == n_parts && s->split_seed == seed;
    for (int k = 0; same && k < n_parts; k++)
        same = s->fractions[k] == fractions[k];
    if (!same)
        return tk_fail(ctx, TK_ERR_INPUT, "split of %s: a streamed file is split as it is "
                       "read, so the split must be given when it is loaded", ds->name);
    for (int k = 0; k < n_parts; k++)
        if (s->part_n[k] == 0)
            return tk_fail(ctx, TK_ERR_INPUT, "split of %s: fraction %g of %lld samples is "
                           "no sample", ds->name, fractions[k], (long long)ds->n);
    if (s->part_n[n_parts] == 0)
        return tk_fail(ctx, TK_ERR_INPUT, "split of %s: the parts take all %lld samples and "
                       "leave none", ds->name, (long long)ds->n);
    for (int k = 0; k < n_parts; k++) {
        parts[k] = view_new(ds, s->part_n[k]);
        if (!parts[k]) {
            for (int j = 0; j < k; j++)
                tk_view_free(parts[j]);
            return tk_fail(ctx, TK_ERR_RUNTIME, "split of %s: out of memory", ds->name);
        }
        parts[k]->part = k;
        memcpy(parts[k]->mul, from->mul, (size_t)ds->nfeat * sizeof(float));
        memcpy(parts[k]->add, from->add, (size_t)ds->nfeat * sizeof(float));
    }
    from->part = n_parts;
    from->n = s->part_n[n_parts];
    return TK_OK;
}

const float *tk_view_affine(const tk_view *v, const float **add)
{
    *add = v->add;
    return v->mul;
}

tk_status tk_view_split(tk_view *from, const double *fractions, int n_parts, uint64_t seed,
                        tk_view **parts, tk_ctx *ctx)
{
    const tk_dataset *ds = from->ds;
    const int64_t n = from->n;
    if (n_parts < 1)
        return tk_fail(ctx, TK_ERR_INPUT, "split of %s: no parts asked for", ds->name);
    double sum = 0;
    int64_t taken = 0;
    for (int k = 0; k < n_parts; k++) {
        double f = fractions[k];
        if (!(f > 0 && f < 1))
            return tk_fail(ctx, TK_ERR_INPUT,
                           "split of %s: fraction %g is not between 0 and 1", ds->name, f);
        sum += f;
        int64_t c = llround(f * (double)n);
        if (c == 0)
            return tk_fail(ctx, TK_ERR_INPUT,
                           "split of %s: fraction %g of %lld samples is no sample", ds->name,
                           f, (long long)n);
        taken += c;
    }
    if (sum >= 1)
        return tk_fail(ctx, TK_ERR_INPUT,
                       "split of %s: the fractions add up to %g; they must leave some "
                       "samples (sum < 1)", ds->name, sum);
    if (ds->stream)
        return split_stream(from, fractions, n_parts, seed, parts, ctx);
    if (taken >= n)
        return tk_fail(ctx, TK_ERR_INPUT,
                       "split of %s: the parts take all %lld samples and leave none",
                       ds->name, (long long)n);

    /* owner[d] says which part dataset sample d goes to (n_parts: stays in `from`, -1: not
     * in `from`); sweeping it in dataset order leaves every part sorted ascending. */
    int64_t *perm = tk_malloc((size_t)n * sizeof *perm);
    int32_t *owner = tk_malloc((size_t)ds->n * sizeof *owner);
    int64_t *rest = tk_malloc((size_t)(n - taken) * sizeof *rest);
    tk_view **made = tk_calloc((size_t)n_parts, sizeof *made);
    bool ok = perm && owner && rest && made;
    for (int k = 0; ok && k < n_parts; k++) {
        made[k] = view_new(from->ds, llround(fractions[k] * (double)n));
        if ((ok = made[k] != NULL)) {
            memcpy(made[k]->mul, from->mul, (size_t)ds->nfeat * sizeof(float));
            memcpy(made[k]->add, from->add, (size_t)ds->nfeat * sizeof(float));
        }
    }
    if (ok) {
        memcpy(perm, from->idx, (size_t)n * sizeof *perm);
        tk_rng r = tk_rng_make(seed, TK_STREAM_SPLIT, 0, 0);
        for (int64_t i = n - 1; i > 0; i--) {
            int64_t j = (int64_t)tk_rng_below(&r, (uint64_t)i + 1);
            int64_t t = perm[i];
            perm[i] = perm[j];
            perm[j] = t;
        }
        for (int64_t d = 0; d < ds->n; d++)
            owner[d] = -1;
        int64_t p = 0;
        for (int k = 0; k < n_parts; k++)
            for (int64_t c = 0; c < made[k]->n; c++)
                owner[perm[p++]] = k;
        for (; p < n; p++)
            owner[perm[p]] = n_parts;
        int64_t n_rest = 0;
        for (int k = 0; k < n_parts; k++)
            made[k]->n = 0;
        for (int64_t d = 0; d < ds->n; d++) {
            if (owner[d] == n_parts)
                rest[n_rest++] = d;
            else if (owner[d] >= 0)
                made[owner[d]]->idx[made[owner[d]]->n++] = d;
        }
        tk_free(from->idx);
        from->idx = rest;
        from->n = n_rest;
        for (int k = 0; k < n_parts; k++)
            parts[k] = made[k];
    } else {
        tk_free(rest);
        for (int k = 0; made && k < n_parts; k++)
            tk_view_free(made[k]);
    }
    tk_free(perm);
    tk_free(owner);
    tk_free(made);
    return ok ? TK_OK : tk_fail(ctx, TK_ERR_RUNTIME, "split of %s: out of memory", ds->name);
}

static double raw(const tk_dataset *ds, int64_t i)
{
    return ds->x8 ? (double)ds->x8[i] : (double)ds->x32[i];
}

/* Statistics over a streamed view, summed in file order like the in-memory pass. */
typedef struct {
    int64_t nf;
    double *mn, *mx, *mean, *sd;
} stats_acc;

static void acc_first(void *ud, const float *x)
{
    stats_acc *a = ud;
    for (int64_t f = 0; f < a->nf; f++) {
        double d = x[f];
        a->mean[f] += d;
        a->mn[f] = d < a->mn[f] ? d : a->mn[f];
        a->mx[f] = d > a->mx[f] ? d : a->mx[f];
    }
}

static void acc_second(void *ud, const float *x)
{
    stats_acc *a = ud;
    for (int64_t f = 0; f < a->nf; f++) {
        double d = x[f] - a->mean[f];
        a->sd[f] += d * d;
    }
}

/* Per-feature min, max, mean and population std of `v`'s raw values, in double. Constant
 * features report std 0 exactly (rounding in the mean would otherwise leave a tiny std). */
static tk_status feature_stats(const tk_view *v, double *mn, double *mx, double *mean,
                               double *sd, tk_ctx *ctx)
{
    const tk_dataset *ds = v->ds;
    const int64_t nf = ds->nfeat;
    for (int64_t f = 0; f < nf; f++) {
        mn[f] = INFINITY;
        mx[f] = -INFINITY;
        mean[f] = sd[f] = 0;
    }
    if (ds->stream) {
        stats_acc a = {nf, mn, mx, mean, sd};
        tk_status st = tk_stream_scan(v, acc_first, &a, ctx);
        for (int64_t f = 0; f < nf; f++)
            mean[f] /= (double)v->n;
        if (st == TK_OK)
            st = tk_stream_scan(v, acc_second, &a, ctx);
        for (int64_t f = 0; f < nf; f++)
            sd[f] = mn[f] == mx[f] ? 0 : sqrt(sd[f] / (double)v->n);
        return st;
    }
    for (int64_t i = 0; i < v->n; i++) {
        int64_t base = v->idx[i] * nf;
        for (int64_t f = 0; f < nf; f++) {
            double x = raw(ds, base + f);
            mean[f] += x;
            mn[f] = x < mn[f] ? x : mn[f];
            mx[f] = x > mx[f] ? x : mx[f];
        }
    }
    for (int64_t f = 0; f < nf; f++)
        mean[f] /= (double)v->n;
    for (int64_t i = 0; i < v->n; i++) {
        int64_t base = v->idx[i] * nf;
        for (int64_t f = 0; f < nf; f++) {
            double d = raw(ds, base + f) - mean[f];
            sd[f] += d * d;
        }
    }
    for (int64_t f = 0; f < nf; f++)
        sd[f] = mn[f] == mx[f] ? 0 : sqrt(sd[f] / (double)v->n);
    return TK_OK;
}

static tk_status fixed_stats(tk_view *v, const tk_norm_opts *o, double scale, tk_ctx *ctx)
{
    const tk_dataset *ds = v->ds;
    const int64_t nf = ds->nfeat;
    /* One value for all, one per feature, or one per channel of (C, H, W) samples as
     * torchvision's Normalize takes them. */
    int64_t per;
    if (o->n_stats == 1)
        per = nf;
    else if (o->n_stats == nf)
        per = 1;
    else if (ds->shape.ndim >= 2 && o->n_stats == ds->shape.d[0])
        per = nf / ds->shape.d[0];
    else
        return tk_fail(ctx, TK_ERR_INPUT,
                       "normalize %s: %d mean/std values for %lld features (give 1, one per "
                       "feature%s)", ds->name, o->n_stats, (long long)nf,
                       ds->shape.ndim >= 2 ? " or one per channel" : "");
    if (!o->mean || !o->std)
        return tk_fail(ctx, TK_ERR_INPUT, "normalize %s: fixed needs mean and std", ds->name);
    for (int k = 0; k < o->n_stats; k++)
        if (!(o->std[k] > 0) || !isfinite(o->std[k]) || !isfinite(o->mean[k]))
            return tk_fail(ctx, TK_ERR_INPUT,
                           "normalize %s: std[%d] = %g (std must be > 0; mean finite)",
                           ds->name, k + 1, o->std[k]);
    for (int64_t f = 0; f < nf; f++) {
        int64_t k = f / per;
        v->mul[f] = (float)(scale / o->std[k]);
        v->add[f] = (float)(-o->mean[k] / o->std[k]);
    }
    return TK_OK;
}

tk_status tk_view_normalize(tk_view *v, const tk_norm_opts *o, const tk_view *stats_from,
                            tk_ctx *ctx)
{
    const tk_dataset *ds = v->ds;
    const int64_t nf = ds->nfeat;
    double scale = o->scale == 0 ? 1 : o->scale;
    if (!isfinite(scale))
        return tk_fail(ctx, TK_ERR_INPUT, "normalize %s: scale %g is not finite", ds->name,
                       scale);
    if (o->kind == TK_NORM_NONE) {
        for (int64_t f = 0; f < nf; f++) {
            v->mul[f] = (float)scale;
            v->add[f] = 0;
        }
        return TK_OK;
    }
    if (o->kind == TK_NORM_FIXED)
        return fixed_stats(v, o, scale, ctx);
    if (o->kind != TK_NORM_STANDARD && o->kind != TK_NORM_MINMAX)
        return tk_fail(ctx, TK_ERR_INPUT, "normalize %s: unknown kind %d", ds->name,
                       (int)o->kind);

    const tk_view *src = stats_from ? stats_from : v;
    if (src->ds->nfeat != nf)
        return tk_fail(ctx, TK_ERR_INPUT,
                       "normalize %s: statistics from %s have %lld features, not %lld",
                       ds->name, src->ds->name, (long long)src->ds->nfeat, (long long)nf);
    if (src->n == 0)
        return tk_fail(ctx, TK_ERR_INPUT, "normalize %s: no samples to take statistics from",
                       ds->name);
    double *st = tk_malloc((size_t)nf * 4 * sizeof(double));
    if (!st)
        return tk_fail(ctx, TK_ERR_RUNTIME, "normalize %s: out of memory", ds->name);
    double *mn = st, *mx = st + nf, *mean = st + 2 * nf, *sd = st + 3 * nf;
    if (feature_stats(src, mn, mx, mean, sd, ctx) != TK_OK) {
        tk_free(st);
        return TK_ERR_INPUT;
    }
    for (int64_t f = 0; f < nf; f++) {
        /* Statistics of the scaled values x * scale; a constant feature divides by 1. */
        double shift, div;
        if (o->kind == TK_NORM_STANDARD) {
            shift = scale * mean[f];
            div = sd[f] > 0 ? fabs(scale) * sd[f] : 1;
        } else {
            shift = fmin(scale * mn[f], scale * mx[f]);
            div = mx[f] > mn[f] ? fabs(scale) * (mx[f] - mn[f]) : 1;
        }
        v->mul[f] = (float)(scale / div);
        v->add[f] = (float)(-shift / div);
    }
    tk_free(st);
    return TK_OK;
}
