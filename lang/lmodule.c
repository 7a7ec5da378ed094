/* lmodule.c - the REPL's P over an open session: the compiled pipeline's tables, tensors,
 * batches, forward, transform, predict, step, fit, evaluate, lr, save, load. Training goes
 * through the runtime's stepper, so P:step and P:fit continue one run. Not here: the
 * read-eval-print loop (repl.c), the tensor userdata (ltensor.c), the model, data, opt and
 * help globals (lglobals.c). */
#include "lmodule.h"

#include <lauxlib.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

typedef tk_lpipeline pipeline;

const char *const tk_split_names[] = {"train", "valid", "test", NULL};

void tk_set_fields(lua_State *L, int metatable, const char *const *names)
{
    metatable = lua_absindex(L, metatable);
    lua_newtable(L);
    for (int i = 0; names[i]; i++) {
        lua_pushstring(L, names[i]);
        lua_rawseti(L, -2, i + 1);
    }
    lua_setfield(L, metatable, "__fields");
}

static pipeline *check_p(lua_State *L)
{
    pipeline *p = luaL_testudata(L, 1, TK_LPIPELINE);
    if (!p)
        luaL_error(L, "call it as a method: P:%s(...)", lua_tostring(L, lua_upvalueindex(1)));
    return p;
}

static int fail(lua_State *L, const pipeline *p)
{
    return luaL_error(L, "%s", tk_errmsg(p->s->ctx));
}

static tk_model *model_of(const pipeline *p)
{
    return p->s->p.model;
}

const tk_dataset *tk_lp_train(const pipeline *p)
{
    return tk_view_dataset(p->s->p.views[0]);
}

tk_shape tk_lp_input_shape(const pipeline *p)
{
    tk_shape s = tk_dataset_sample_shape(tk_lp_train(p)), in = {s.ndim + 1, {0}};
    in.d[0] = tk_model_batch(model_of(p));
    memcpy(in.d + 1, s.d, sizeof(int64_t) * (size_t)s.ndim);
    return in;
}

bool tk_lp_classification(const pipeline *p)
{
    return tk_model_task(p->s->p.model) == TK_TASK_CLASSIFICATION;
}

static void print_report(void (*fn)(FILE *, const tk_model *), const tk_model *m)
{
    fn(stdout, m);
    fflush(stdout);
}

/* ---------------------------------------------------------------- tables, tensors */

static int p_layers(lua_State *L)
{
    print_report(tk_print_layers, model_of(check_p(L)));
    return 0;
}

static int p_groups(lua_State *L)
{
    pipeline *p = check_p(L);
    print_report(tk_print_groups, model_of(p));
    int n = tk_model_group_count(model_of(p));
    double lrs[n];
    tk_stepper_lrs(p->st, lrs);
    printf("lr now:");
    for (int g = 0; g < n; g++)
        printf(" group %d %g", g, lrs[g]);
    printf("\n");
    fflush(stdout);
    return 0;
}

/* The nearest tensor names to a wrong one, for the error message. */
static void suggest(char *buf, size_t cap, const tk_model *m, const char *name, bool grads)
{
    size_t o = 0;
    buf[0] = 0;
    for (int i = 0; i < tk_model_tensor_count(m) && o + 40 < cap; i++) {
        tk_tensor_info ti = tk_model_tensor(m, i);
        if (grads && !tk_model_tensor_grad(m, i))
            continue;
        if (ti.kind == TK_TENSOR_SLOT && !strstr(name, "optim."))
            continue;
        o += (size_t)snprintf(buf + o, cap - o, "%s%s", o ? ", " : "", ti.name);
    }
}

static int push_tensor(lua_State *L, const pipeline *p, const char *name, bool grad, bool raise)
{
    const tk_model *m = model_of(p);
    int i = tk_model_find_tensor(m, name);
    float *data = i < 0 ? NULL : grad ? tk_model_tensor_grad(m, i) : tk_model_tensor(m, i).data;
    if (!data) {
        if (!raise)
            return 0;
        char names[2048];
        suggest(names, sizeof names, m, name, grad);
        return luaL_error(L, "no %s '%s' (%s: %s)", grad ? "gradient" : "tensor", name,
                          grad ? "the trained parameters" : "the model has", names);
    }
    tk_shape shape = tk_model_tensor(m, i).shape;
    tk_lt_view(L, data, &shape);
    return 1;
}

static int p_param(lua_State *L)
{
    pipeline *p = check_p(L);
    return push_tensor(L, p, luaL_checkstring(L, 2), false, true);
}

static int p_grad(lua_State *L)
{
    pipeline *p = check_p(L);
    return push_tensor(L, p, luaL_checkstring(L, 2), true, true);
}

/* P.params / P.grads: name -> live tensor view. */
static void push_tensor_table(lua_State *L, const pipeline *p, bool grads)
{
    const tk_model *m = model_of(p);
    lua_newtable(L);
    for (int i = 0; i < tk_model_tensor_count(m); i++) {
        tk_tensor_info ti = tk_model_tensor(m, i);
        if (push_tensor(L, p, ti.name, grads, false))
            lua_setfield(L, -2, ti.name);
    }
}

/* ---------------------------------------------------------------- batches, forward */

static int check_split(lua_State *L, int idx, const char *dflt)
{
    return luaL_checkoption(L, idx, dflt, tk_split_names);
}

static void label_shape(const pipeline *p, int64_t rows, int *ndim, int64_t *shape)
{
    shape[0] = rows;
    *ndim = 1;
    if (!tk_lp_classification(p))
        shape[(*ndim)++] = tk_dataset_label_width(tk_lp_train(p));
}

/* P:batch(split, i): batch i (1-based, in order, every row) as x, y. */
static int p_batch(lua_State *L)
{
    pipeline *p = check_p(L);
    int split = check_split(L, 2, "train");
    lua_Integer i = luaL_optinteger(L, 3, 1);
    tk_model *m = model_of(p);
    int batch = tk_model_batch(m);
    tk_shape in = tk_lp_input_shape(p);
    in.d[0] = batch;
    tk_ltensor *x = tk_lt_new(L, in.ndim, in.d, false);
    int ndim;
    int64_t ys[2];
    label_shape(p, batch, &ndim, ys);
    tk_ltensor *y = tk_lt_new(L, ndim, ys, tk_lp_classification(p));
    int rows = tk_stepper_batch(p->st, split, (int64_t)i - 1, x->data, y->data, p->s->ctx);
    if (rows < 0)
        return fail(L, p);
    x->shape[0] = y->shape[0] = rows;
    return 2;
}

/* Runs the model in eval mode over x (any number of rows, in chunks of the compiled batch),
 * with targets y when given. Pushes the output; returns the mean loss (NAN without y). */
/* The tensor at xi, if it is a batch of the model's samples (any number of rows). */
static tk_ltensor *check_input(lua_State *L, const pipeline *p, int xi)
{
    tk_ltensor *x = tk_lt_check(L, xi);
    tk_shape in = tk_lp_input_shape(p);
    bool fits = x->ndim == in.ndim;
    for (int d = 1; fits && d < in.ndim; d++)
        fits = x->shape[d] == in.d[d];
    if (!fits) {
        tk_shape got = {x->ndim, {0}};
        memcpy(got.d, x->shape, sizeof(int64_t) * (size_t)x->ndim);
        char want[96], have[96];
        tk_shape_str(&in, want, sizeof want);
        tk_shape_str(&got, have, sizeof have);
        char *n = strchr(want, ',');
        luaL_error(L, "x has shape %s but the model takes (N%s: N samples first", have,
                   n ? n : ")");
    }
    return x;
}

static double forward(lua_State *L, pipeline *p, int xi, int yi)
{
    tk_model *m = model_of(p);
    tk_ltensor *x = check_input(L, p, xi);
    tk_shape in = tk_lp_input_shape(p), out = tk_model_output_shape(m);
    int64_t rows = x->shape[0], in_w = tk_shape_numel(&in) / in.d[0];
    int64_t out_w = tk_shape_numel(&out) / out.d[0];
    int label_w = tk_dataset_label_width(tk_lp_train(p));
    tk_ltensor *y = NULL;
    if (yi && !lua_isnoneornil(L, yi)) {
        y = tk_lt_check(L, yi);
        if (y->ndim < 1 || y->shape[0] != rows || tk_lt_numel(y) != rows * label_w)
            luaL_error(L, "y must hold %d target value%s for each of the %d rows of x",
                       label_w, label_w == 1 ? "" : "s", (int)rows);
    }
    float *xs = lua_newuserdatauv(L, (size_t)(rows * in_w + 1) * sizeof(float), 0);
    tk_lt_gather(x, xs);
    float *ys = NULL;
    if (y) {
        ys = lua_newuserdatauv(L, (size_t)(rows * label_w + 1) * sizeof(float), 0);
        tk_lt_gather(y, ys);
    }
    out.d[0] = rows;
    tk_ltensor *o = tk_lt_new(L, out.ndim, out.d, false); /* on top, above the scratch */
    double loss_sum = 0, loss_weight = 0;
    int batch = tk_model_batch(m);
    for (int64_t start = 0; start < rows; start += batch) {
        int n = (int)(rows - start < batch ? rows - start : batch);
        memcpy(tk_model_input(m), xs + start * in_w, sizeof(float) * (size_t)(n * in_w));
        if (ys)
            memcpy(tk_model_target(m), ys + start * label_w, sizeof(float) * (size_t)n * label_w);
        else /* a valid target for every loss: class 0, or 0.0 */
            memset(tk_model_target(m), 0, sizeof(float) * (size_t)n * label_w);
        float loss;
        double weight = tk_model_loss_weight(m, n);
        if (tk_model_eval(m, n, &loss, p->s->ctx) != TK_OK)
            fail(L, p);
        if (weight > 0) {
            loss_sum += (double)loss * weight;
            loss_weight += weight;
        }
        memcpy(o->data + start * out_w, tk_model_output(m), sizeof(float) * (size_t)(n * out_w));
    }
    return y && loss_weight > 0 ? loss_sum / loss_weight : NAN;
}

/* P:forward(x [, y]) -> output [, loss] */
static int p_forward(lua_State *L)
{
    pipeline *p = check_p(L);
    lua_settop(L, 3);
    double loss = forward(L, p, 2, 3);
    if (lua_isnil(L, 3))
        return 1;
    lua_pushnumber(L, loss);
    return 2;
}

/* P:transform(x): raw features (as the data files hold them) scaled and normalised the way
 * the training batches were, ready for P:forward or P:predict. */
static int p_transform(lua_State *L)
{
    pipeline *p = check_p(L);
    tk_ltensor *x = check_input(L, p, 2);
    tk_ltensor *t = tk_lt_new(L, x->ndim, x->shape, false);
    tk_lt_gather(x, t->data);
    tk_view_transform(p->s->p.views[0], t->data, x->shape[0]);
    return 1;
}

/* P:predict(x): class ids and softmax probabilities (and class names for string labels), or
 * the outputs of a regression. */
static int p_predict(lua_State *L)
{
    pipeline *p = check_p(L);
    lua_settop(L, 2);
    forward(L, p, 2, 0);
    if (!tk_lp_classification(p))
        return 1;
    tk_ltensor *o = tk_lt_check(L, -1);
    int64_t rows = o->shape[0], w = o->shape[o->ndim - 1]; /* (N, classes) */
    int64_t rs[2] = {rows, w};
    tk_ltensor *ids = tk_lt_new(L, 1, rs, true);
    tk_ltensor *probs = tk_lt_new(L, 2, rs, false);
    const tk_dataset *ds = tk_lp_train(p);
    bool named = tk_dataset_class_name(ds, 0) != NULL;
    if (named)
        lua_createtable(L, (int)rows, 0);
    for (int64_t r = 0; r < rows; r++) {
        const float *z = o->data + r * w;
        float *q = probs->data + r * w;
        int64_t best = 0;
        for (int64_t j = 1; j < w; j++)
            best = z[j] > z[best] ? j : best;
        double sum = 0;
        for (int64_t j = 0; j < w; j++)
            sum += q[j] = expf(z[j] - z[best]);
        for (int64_t j = 0; j < w; j++)
            q[j] = (float)(q[j] / sum);
        ids->data[r] = (float)best;
        if (named) {
            const char *name = tk_dataset_class_name(ds, (int)best);
            lua_pushstring(L, name ? name : "?");
            lua_rawseti(L, -2, r + 1);
        }
    }
    return named ? 3 : 2;
}

/* ---------------------------------------------------------------- training */

static void push_metrics(lua_State *L, const pipeline *p, double loss, const tk_metrics *mt)
{
    const tk_pipeline *pl = &p->s->p;
    lua_newtable(L);
    lua_pushnumber(L, loss);
    lua_setfield(L, -2, "loss");
    const tk_task task = tk_model_task(pl->model);
    for (int k = 0; tk_metric_always(task, k); k++) {
        lua_pushnumber(L, tk_metrics_value(mt, tk_metric_always(task, k)));
        lua_setfield(L, -2, tk_metric_always(task, k));
    }
    for (int k = 0; k < pl->train.n_metrics; k++) {
        const char *name = pl->metrics[k];
        if (strcmp(name, "confusion") == 0) {
            int c = tk_dataset_num_classes(tk_lp_train(p));
            lua_createtable(L, c, 0);
            for (int i = 0; i < c; i++) {
                lua_createtable(L, c, 0);
                for (int j = 0; j < c; j++) {
                    lua_pushinteger(L, tk_metrics_confusion(mt, i, j));
                    lua_rawseti(L, -2, j + 1);
                }
                lua_rawseti(L, -2, i + 1);
            }
        } else {
            lua_pushnumber(L, tk_metrics_value(mt, name));
        }
        lua_setfield(L, -2, name);
    }
    lua_pushinteger(L, tk_metrics_count(mt));
    lua_setfield(L, -2, "samples");
}

/* P:evaluate([split = "valid"]) -> {loss=, accuracy= | mae=, rmse=, r2=, <metrics>..., samples=} */
static int p_evaluate(lua_State *L)
{
    pipeline *p = check_p(L);
    int split = check_split(L, 2, "valid");
    double loss;
    const tk_metrics *mt;
    if (tk_stepper_evaluate(p->st, split, &loss, &mt, p->s->ctx) != TK_OK)
        return fail(L, p);
    push_metrics(L, p, loss, mt);
    return 1;
}

/* Ctrl-C came during the stepper's work: an error naming where training stands. */
static int check_interrupt(lua_State *L, const pipeline *p)
{
    if (!tk_repl_interrupted)
        return 0;
    tk_stepper_state s = tk_stepper_get_state(p->st);
    return luaL_error(L, "interrupted at epoch %d, batch %d of %d (step %d)",
                      (int)s.epoch + (s.cursor ? 1 : 0), (int)s.cursor, (int)s.batches,
                      (int)s.step);
}

static tk_status train_call(pipeline *p, bool epoch, int64_t n, tk_stepper_result *r)
{
    tk_repl_training = 1;
    tk_status st = epoch ? tk_stepper_epoch(p->st, &tk_repl_interrupted, r, p->s->ctx)
                         : tk_stepper_step(p->st, n, &tk_repl_interrupted, r, p->s->ctx);
    tk_repl_training = 0;
    return st;
}

/* P:step([n = 1]) -> the mean loss over the micro-batches of those steps, and the number of
 * updates applied (fewer when on_nonfinite = "skip" dropped some) */
static int p_step(lua_State *L)
{
    pipeline *p = check_p(L);
    lua_Integer n = luaL_optinteger(L, 2, 1);
    luaL_argcheck(L, n >= 1, 2, "the number of steps must be at least 1");
    check_interrupt(L, p);
    tk_stepper_result r;
    tk_status st = train_call(p, false, n, &r);
    check_interrupt(L, p);
    if (st != TK_OK)
        return fail(L, p);
    lua_pushnumber(L, r.loss_weight > 0 ? r.loss_sum / r.loss_weight : NAN);
    lua_pushinteger(L, r.steps);
    return 2;
}

static void print_pass(const char *split, double loss, double acc)
{
    printf("  %s loss %.4f", split, loss);
    if (acc == acc)
        printf(" accuracy %.4f", acc);
}

/* The value the schedule watches (reduce_on_plateau's monitor), from the epoch's passes. */
static double monitored(const pipeline *p, const char *name, const tk_stepper_result *r,
                        double valid_loss, const tk_metrics *valid)
{
    bool is_valid = strncmp(name, "valid.", 6) == 0;
    const char *metric = strchr(name, '.') ? strchr(name, '.') + 1 : name;
    if (strcmp(metric, "loss") == 0)
        return is_valid ? valid_loss : r->loss;
    return tk_metrics_value(is_valid ? valid : tk_stepper_train_metrics(p->st), metric);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* The rest of the epoch one step at a time, redrawing a progress line at most 10 times a
 * second once it has run for 0.1 s: the same updates as one tk_stepper_epoch call. */
static tk_status epoch_with_bar(pipeline *p, tk_stepper_result *r)
{
    double last = now();
    bool drawn = false;
    tk_status st;
    do {
        st = train_call(p, false, 1, r);
        double t = now();
        if (st == TK_OK && !r->epoch_done && t - last >= 0.1) {
            tk_stepper_state s = tk_stepper_get_state(p->st);
            printf("\r\033[Kepoch %lld  batch %lld/%lld  loss %.4f", (long long)s.epoch + 1,
                   (long long)s.cursor, (long long)s.batches, r->loss);
            fflush(stdout);
            last = t;
            drawn = true;
        }
    } while (st == TK_OK && !r->epoch_done && !tk_repl_interrupted);
    if (drawn) {
        fputs("\r\033[K", stdout);
        fflush(stdout);
    }
    return st;
}

/* P:fit{epochs = k [, quiet = true]} (P:fit(): one epoch): k epochs (finishing a partial one first), each with a
 * valid pass when the script has one; one line per epoch (and a progress line while an epoch
 * runs, on a terminal). Returns the last epoch's {train = {...}, valid = {...}}. */
static int p_fit(lua_State *L)
{
    pipeline *p = check_p(L);
    if (lua_isnoneornil(L, 2)) {
        lua_settop(L, 1);
        lua_newtable(L);
    }
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_getfield(L, 2, "epochs");
    lua_Integer epochs = lua_isnil(L, -1) ? 1 : luaL_checkinteger(L, -1);
    lua_getfield(L, 2, "quiet");
    bool quiet = lua_toboolean(L, -1);
    lua_settop(L, 2);
    luaL_argcheck(L, epochs >= 1, 2, "epochs must be at least 1");
    const tk_train_opts *o = &p->s->p.train;
    bool bar = !quiet && isatty(STDOUT_FILENO);
    for (lua_Integer e = 0; e < epochs; e++) {
        tk_stepper_result r;
        check_interrupt(L, p);
        tk_status st = bar ? epoch_with_bar(p, &r) : train_call(p, true, 0, &r);
        check_interrupt(L, p);
        if (st != TK_OK)
            return fail(L, p);
        lua_settop(L, 2);
        lua_newtable(L);
        push_metrics(L, p, r.loss, tk_stepper_train_metrics(p->st));
        lua_setfield(L, -2, "train");
        double vloss = NAN;
        const tk_metrics *vm = NULL;
        if (o->valid) {
            if (tk_stepper_evaluate(p->st, 1, &vloss, &vm, p->s->ctx) != TK_OK)
                return fail(L, p);
            push_metrics(L, p, vloss, vm);
            lua_setfield(L, -2, "valid");
        }
        bool maximize;
        const char *watched = tk_sched_monitor(o->sched, &maximize);
        if (watched && (vm || strncmp(watched, "valid.", 6) != 0))
            tk_stepper_observe(p->st, monitored(p, watched, &r, vloss, vm));
        tk_stepper_state s = tk_stepper_get_state(p->st);
        if (!quiet) {
            printf("epoch %lld (step %lld)", (long long)s.epoch, (long long)s.step);
            print_pass("train", r.loss, r.accuracy);
            if (vm)
                print_pass("valid", vloss, tk_metrics_accuracy(vm));
            printf("\n");
            fflush(stdout);
        }
    }
    return 1;
}

/* P:lr([g]) -> the lr of group g (as the group table numbers them) or a list of all */
static int p_lr(lua_State *L)
{
    pipeline *p = check_p(L);
    int n = tk_model_group_count(model_of(p));
    double lrs[n];
    tk_stepper_lrs(p->st, lrs);
    if (!lua_isnoneornil(L, 2)) {
        lua_Integer g = luaL_checkinteger(L, 2);
        luaL_argcheck(L, g >= 0 && g < n, 2, "no such parameter group");
        lua_pushnumber(L, lrs[g]);
        return 1;
    }
    lua_createtable(L, n, 0);
    for (int g = 0; g < n; g++) {
        lua_pushnumber(L, lrs[g]);
        lua_rawseti(L, -2, g + 1);
    }
    return 1;
}

void tk_lp_set_lr(lua_State *L, pipeline *p, lua_Integer g, int idx)
{
    double lr = lua_isnil(L, idx) ? NAN : luaL_checknumber(L, idx);
    if (!lua_isnil(L, idx) && isnan(lr))
        luaL_error(L, "lr is NaN (nil puts the group back on the schedule)");
    if (tk_stepper_set_lr(p->st, (int)g, lr, p->s->ctx) != TK_OK)
        fail(L, p);
}

/* P:set_lr(g, lr) fixes group g's lr (nil: back to the schedule); P:set_lr(lr): every group */
static int p_set_lr(lua_State *L)
{
    pipeline *p = check_p(L);
    if (lua_gettop(L) == 2) {
        for (int g = 0; g < tk_model_group_count(model_of(p)); g++)
            tk_lp_set_lr(L, p, g, 2);
        return 0;
    }
    tk_lp_set_lr(L, p, luaL_checkinteger(L, 2), 3);
    return 0;
}

static int p_state(lua_State *L)
{
    pipeline *p = check_p(L);
    tk_stepper_state s = tk_stepper_get_state(p->st);
    lua_newtable(L);
    lua_pushinteger(L, s.epoch);
    lua_setfield(L, -2, "epoch");
    lua_pushinteger(L, s.cursor);
    lua_setfield(L, -2, "batch");
    lua_pushinteger(L, s.batches);
    lua_setfield(L, -2, "batches");
    lua_pushinteger(L, s.step);
    lua_setfield(L, -2, "step");
    return 1;
}

/* ---------------------------------------------------------------- weights */

static int p_save(lua_State *L)
{
    pipeline *p = check_p(L);
    const char *path = luaL_checkstring(L, 2);
    if (tk_model_save_weights(model_of(p), path, p->s->ctx) != TK_OK)
        return fail(L, p);
    return 0;
}

/* P:load(path): weights of this model (a .safetensors file or a run directory), strictly. */
static int p_load(lua_State *L)
{
    pipeline *p = check_p(L);
    const char *path = luaL_checkstring(L, 2);
    char used[4200];
    if (tk_session_load_weights(p->s, path, used, sizeof used) != TK_OK)
        return fail(L, p);
    lua_pushstring(L, used);
    return 1;
}

/* ---------------------------------------------------------------- P itself */

static const luaL_Reg p_methods[] = {
    {"layers", p_layers}, {"groups", p_groups}, {"param", p_param}, {"grad", p_grad},
    {"batch", p_batch}, {"forward", p_forward}, {"predict", p_predict}, {"transform", p_transform}, {"step", p_step},
    {"fit", p_fit}, {"evaluate", p_evaluate}, {"lr", p_lr}, {"set_lr", p_set_lr},
    {"state", p_state}, {"save", p_save}, {"load", p_load}, {NULL, NULL},
};

static const char *const p_fields[] = {"params", "grads", "name", "spec", "layers", "groups",
                                       "param", "grad", "batch", "forward", "predict",
                                       "transform", "step", "fit", "evaluate", "lr", "set_lr",
                                       "state", "save", "load", NULL};

/* P.params and P.grads are built on each access (cheap views), the rest from the method
 * table and the uservalue (name, spec). */
static int p_index(lua_State *L)
{
    pipeline *p = luaL_checkudata(L, 1, TK_LPIPELINE);
    const char *k = luaL_checkstring(L, 2);
    if (strcmp(k, "params") == 0 || strcmp(k, "grads") == 0) {
        push_tensor_table(L, p, k[0] == 'g');
        return 1;
    }
    if (lua_getfield(L, lua_upvalueindex(1), k) != LUA_TNIL)
        return 1;
    lua_getiuservalue(L, 1, 1);
    lua_getfield(L, -1, k);
    return 1;
}

static int p_newindex(lua_State *L)
{
    return luaL_error(L, "P is read-only (change an lr with P:set_lr(g, lr) or "
                      "opt.groups[i].lr = x)");
}

static int p_tostring(lua_State *L)
{
    pipeline *p = luaL_checkudata(L, 1, TK_LPIPELINE);
    tk_stepper_state s = tk_stepper_get_state(p->st);
    lua_pushfstring(L, "pipeline '%s': %d epochs done, batch %d of %d, step %d", p->s->p.name,
                    (int)s.epoch, (int)s.cursor, (int)s.batches, (int)s.step);
    return 1;
}

tk_status tk_lmodule_open(lua_State *L, tk_session *s)
{
    int spec = lua_gettop(L);
    tk_lt_open(L);
    pipeline *p = lua_newuserdatauv(L, sizeof *p, 1);
    p->s = s;
    p->st = NULL;
    tk_status st = tk_stepper_new(s->p.model, &s->p.train, &p->st, s->ctx);
    if (st != TK_OK) {
        lua_settop(L, spec);
        return st;
    }
    lua_newtable(L);
    lua_pushstring(L, s->p.name);
    lua_setfield(L, -2, "name");
    lua_pushvalue(L, spec);
    lua_setfield(L, -2, "spec");
    lua_setiuservalue(L, -2, 1);
    luaL_newmetatable(L, TK_LPIPELINE);
    lua_newtable(L);
    for (const luaL_Reg *r = p_methods; r->name; r++) {
        lua_pushstring(L, r->name);
        lua_pushcclosure(L, r->func, 1);
        lua_setfield(L, -2, r->name);
    }
    lua_pushcclosure(L, p_index, 1);
    lua_setfield(L, -2, "__index");
    lua_pushcfunction(L, p_newindex);
    lua_setfield(L, -2, "__newindex");
    lua_pushcfunction(L, p_tostring);
    lua_setfield(L, -2, "__tostring");
    tk_set_fields(L, -1, p_fields);
    lua_setmetatable(L, -2);
    int pidx = lua_gettop(L);
    lua_pushvalue(L, pidx);
    lua_setglobal(L, "P");
    tk_lglobals_open(L, pidx, spec);
    lua_settop(L, spec);
    return TK_OK;
}

void tk_lmodule_close(lua_State *L)
{
    lua_getglobal(L, "P");
    pipeline *p = luaL_testudata(L, -1, TK_LPIPELINE);
    if (p) {
        tk_stepper_free(p->st);
        p->st = NULL;
    }
    lua_pop(L, 1);
}
