/* test_dist.c - data-parallel training through the runtime's tk_dist interface, without MPI:
 * two threads train the same script as ranks 0 and 1 of a tk_dist whose sums meet at a
 * barrier. Both ranks end with the same bits in every tensor (weights, optimizer slots, the
 * batch-norm buffers copied from rank 0), and a model without batch norm ends within float
 * rounding of one process training the same global batches (dropout included); so do a
 * model with sync_batch_norm and a cross-entropy whose mean divides by class weights and
 * leaves out ignored rows. */
#include "check.h"
#include "lang.h"

#include <lauxlib.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* ---------------------------------------------------------------- two ranks in one process */

typedef struct {
    pthread_barrier_t barrier;
    void *bufs[2];
} meeting;

typedef struct {
    meeting *m;
    int rank;
} rank_ud;

/* Both ranks publish their buffer, each adds rank 0's and rank 1's values into a scratch copy,
 * and only when both have read do they overwrite their own. */
static tk_status sum_both(void *buf, size_t n, size_t elem, bool doubles, void *ud)
{
    rank_ud *r = ud;
    void *out = malloc(n * elem + 1);
    if (!out)
        return TK_ERR_RUNTIME;
    r->m->bufs[r->rank] = buf;
    pthread_barrier_wait(&r->m->barrier);
    for (size_t i = 0; i < n; i++) {
        if (doubles)
            ((double *)out)[i] = ((double *)r->m->bufs[0])[i] + ((double *)r->m->bufs[1])[i];
        else
            ((float *)out)[i] = ((float *)r->m->bufs[0])[i] + ((float *)r->m->bufs[1])[i];
    }
    pthread_barrier_wait(&r->m->barrier);
    memcpy(buf, out, n * elem);
    free(out);
    return TK_OK;
}

static tk_status sum_floats(float *buf, size_t n, void *ud)
{
    return sum_both(buf, n, sizeof(float), false, ud);
}

static tk_status sum_doubles(double *buf, size_t n, void *ud)
{
    return sum_both(buf, n, sizeof(double), true, ud);
}

/* ---------------------------------------------------------------- runs */

typedef struct {
    const char *script;
    const tk_dist *dist;
    lua_State *L;
    tk_pipeline p;
    tk_ctx *ctx;
    tk_status st;
} run;

static void *train_one(void *arg)
{
    run *r = arg;
    r->ctx = tk_ctx_new();
    r->L = tk_lua_new();
    memset(&r->p, 0, sizeof r->p);
    r->st = tk_lua_run_script(r->L, r->script, r->ctx);
    if (r->st == TK_OK)
        r->st = tk_pipeline_build(r->L, &r->p, r->ctx);
    if (r->st == TK_OK) {
        r->p.train.dist = r->dist;
        r->st = tk_train(r->p.model, &r->p.train, r->ctx);
    }
    return NULL;
}

static void finish(run *r)
{
    tk_pipeline_free(&r->p);
    lua_close(r->L);
    tk_ctx_free(r->ctx);
}

/* Largest |a - b| over every tensor (INFINITY if the models differ in layout). */
static double max_diff(const tk_model *a, const tk_model *b)
{
    if (tk_model_tensor_count(a) != tk_model_tensor_count(b))
        return INFINITY;
    double worst = 0;
    for (int i = 0; i < tk_model_tensor_count(a); i++) {
        tk_tensor_info x = tk_model_tensor(a, i), y = tk_model_tensor(b, i);
        int64_t n = tk_shape_numel(&x.shape);
        if (n != tk_shape_numel(&y.shape))
            return INFINITY;
        for (int64_t k = 0; k < n; k++)
            worst = fmax(worst, fabs((double)x.data[k] - (double)y.data[k]));
    }
    return worst;
}

static void two_ranks(const char *script, run out[2], meeting *m, rank_ud ud[2], tk_dist d[2])
{
    pthread_barrier_init(&m->barrier, NULL, 2);
    pthread_t th[2];
    for (int k = 0; k < 2; k++) {
        ud[k] = (rank_ud){m, k};
        d[k] = (tk_dist){k, 2, sum_floats, sum_doubles, &ud[k]};
        out[k] = (run){.script = script, .dist = &d[k]};
        pthread_create(&th[k], NULL, train_one, &out[k]);
    }
    for (int k = 0; k < 2; k++) {
        pthread_join(th[k], NULL);
        CHECK_MSG(out[k].st == TK_OK, "rank %d: %s", k, tk_errmsg(out[k].ctx));
    }
    pthread_barrier_destroy(&m->barrier);
}

static void write_script(const char *path, const char *first, const char *loss,
                         const char *extra)
{
    FILE *f = fopen(path, "w");
    CHECK(f != NULL);
    if (!f)
        return;
    fprintf(f, "local nn, data = tk.nn, tk.data\n"
               "return tk.pipeline {\n"
               "  name = 'dist', seed = 3,\n"
               "  data = {\n"
               "    train = data.csv { path = "
               "'/usr/lib/python3/dist-packages/sklearn/datasets/data/iris.csv',\n"
               "                       skip_rows = 1, normalize = 'standard' },\n"
               "    valid = data.split { from = 'train', fraction = 0.2 },\n"
               "    batch_size = 16, shuffle = true, drop_last = false,\n"
               "  },\n"
               "  model = nn.sequential { %s, nn.relu(), nn.dropout(0.25),\n"
               "                          nn.linear(3) },\n"
               "  loss = tk.loss.cross_entropy { %s },\n"
               "  optimizer = tk.optim.adam { lr = 1e-2 },\n"
               "  epochs = 4, %s\n"
               "}\n", first, loss, extra);
    fclose(f);
}

int main(void)
{
    tk_set_threads(1);
    tk_ctx *ctx = tk_ctx_new();
    CHECK_MSG(tk_mkdirs(TK_TEST_TMP, ctx) == TK_OK, "%s", tk_errmsg(ctx));
    tk_ctx_free(ctx);
    meeting m;
    rank_ud ud[2];
    tk_dist d[2];
    run ranks[2];

    /* 120 train rows in batches of 16 (the last one 8: shards of 4), 4 epochs of Adam. */
    const char *cases[][5] = {
        {"dist_plain", "nn.linear(16)", "", "", "near"},
        /* No bias before the batch norm: its gradient is zero but for rounding, which Adam
         * would magnify into lr-sized steps that differ from one process's (they change no
         * output, the batch norm takes the mean out again). */
        {"dist_sync", "nn.linear { out_features = 16, bias = false }, nn.batch_norm1d()", "",
         "sync_batch_norm = true", "near"},
        /* Without it, statistics per rank (rank 0's running ones copied to both after each
         * step): the ranks agree, one process does not. */
        {"dist_per_rank", "nn.linear { out_features = 16, bias = false }, nn.batch_norm1d()",
         "", "", "far"},
        /* Rows of class 2 do not count, the others weigh 2 and 0.5: some shards' own
         * denominators differ from half the batch's. */
        {"dist_weighted", "nn.linear(16)", "weight = {2, 0.5, 1}, ignore_index = 2", "",
         "near"},
    };
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s.lua", TK_TEST_TMP, cases[c][0]);
        write_script(path, cases[c][1], cases[c][2], cases[c][3]);
        run one = {.script = path};
        train_one(&one);
        CHECK_MSG(one.st == TK_OK, "%s: one process: %s", cases[c][0], tk_errmsg(one.ctx));
        two_ranks(path, ranks, &m, ud, d);
        if (one.st == TK_OK && ranks[0].st == TK_OK && ranks[1].st == TK_OK) {
            double same = max_diff(ranks[0].p.model, ranks[1].p.model);
            CHECK_MSG(same == 0, "%s: the two ranks' tensors differ by %g", cases[c][0], same);
            double vs_one = max_diff(one.p.model, ranks[0].p.model);
            bool near = strcmp(cases[c][4], "near") == 0;
            CHECK_MSG(near ? vs_one <= 1e-5 : vs_one > 1e-3, "%s: 2 ranks vs one process: "
                      "tensors differ by %g", cases[c][0], vs_one);
        }
        finish(&one);
        finish(&ranks[0]);
        finish(&ranks[1]);
    }

    return check_summary();
}
