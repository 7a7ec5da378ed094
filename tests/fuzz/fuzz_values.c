/* fuzz_values.c - libFuzzer target for the script loader's value conversions, cheap enough
 * per input for tens of millions of executions: an input is one `--set key=value`, its first
 * two bytes picking one of nine pipelines (each optimizer and schedule kind) and the key among
 * its options (unknown keys are fuzz_script's), the rest being the value. The value goes
 * through the stdlib's own parsing and checking (tk.set's walk and coerce, taken from tk.set's
 * upvalues), applied to the one option table the key names, so only that table is validated
 * again; then lang/spec.c converts that table's Lua values into C specs: the schedule, the
 * training policy (save, early_stop and the top-level options), the optimizer and its
 * groups, the loss's attributes into a graph node, or the data options (spec_data.c whole:
 * column references, delimiter, split fractions, normalisation, on an 8-row CSV).
 * spec.c is included, not linked: its conversions are static. tk_compile is a stub here.
 * Not here: the cross-table checks of a whole pipeline, compiling, describing: fuzz_script.c
 * does all of that per input, far more slowly. Keys naming files
 * are left out: the file readers have their own targets. */
#include "spec.c"

#include <sys/stat.h>
#include <unistd.h>

static lua_State *L;
static int apply_ref;      /* the Lua function below */
enum { BASES = 9, KEYS = 128 };
static int base_ref[BASES];           /* the pipelines the scripts built */
static char keys[BASES][KEYS][64];    /* each one's option keys but the model's and files' */
static int n_keys[BASES];
static tk_dataset *rows;              /* the 8-row CSV, loaded once for the non-data keys */

/* One pipeline per optimizer/schedule pairing, so that every schedule's and optimizer's
 * options have a key; %s: the optimizer, the schedule, the loss, the data extras. */
static const char base_lua[] =
    "return tk.pipeline {\n"
    "  name = 'fuzz', seed = 3, threads = 1,\n"
    "  data = {\n"
    "    train = tk.data.csv { path = tk.script_dir .. '/d.csv', %s },\n"
    "    valid = tk.data.split { fraction = 0.25 },\n"
    "    batch_size = 4, shuffle = true,\n"
    "  },\n"
    "  model = tk.nn.sequential { tk.nn.linear(6), tk.nn.relu(), tk.nn.linear(3) },\n"
    "  loss = %s,\n"
    "  optimizer = %s,\n"
    "  schedule = %s,\n"
    "  epochs = 2, metrics = { 'accuracy', 'f1' },\n"
    "  save = { best = 'valid.f1', every = 1, keep = 2 },\n"
    "  early_stop = { monitor = 'valid.loss', patience = 3 },\n"
    "}\n";
static const char *const bases[BASES][3] = {
    {"normalize = 'standard'", "tk.loss.cross_entropy { label_smoothing = 0.1 }",
     "tk.optim.adamw { lr = 0.01, groups = { { match = '*.bias', weight_decay = 0 } } }"},
    {"normalize = 'minmax', features = { 1, 2, 3, 4 }", "tk.loss.nll()",
     "tk.optim.sgd { lr = 0.1, momentum = 0.9, nesterov = true, freeze = { '0.*' } }"},
    {"normalize = { mean = { 0, 0, 0, 0 }, std = { 1, 2, 1, 2 } }",
     "tk.loss.cross_entropy { weight = { 1, 2, 1 } }",
     "tk.optim.rmsprop { lr = 0.01, centered = true }"},
    {"label = 5, delimiter = ','", "tk.loss.cross_entropy()",
     "tk.optim.adagrad { lr = 0.1, lr_decay = 0.01 }"},
    {"skip_rows = 1", "tk.loss.cross_entropy()", "tk.optim.adam { lr = 0.01, amsgrad = true }"},
    {"normalize = 'standard'", "tk.loss.cross_entropy()", "tk.optim.sgd { lr = 0.1 }"},
    {"normalize = 'standard'", "tk.loss.cross_entropy()", "tk.optim.sgd { lr = 0.1 }"},
    {"normalize = 'standard'", "tk.loss.cross_entropy()", "tk.optim.sgd { lr = 0.1 }"},
    {"normalize = 'standard'", "tk.loss.cross_entropy()", "tk.optim.sgd { lr = 0.1 }"},
};
static const char *const base_scheds[BASES] = {
    "tk.sched.cosine { warmup_steps = 2 }", "tk.sched.multistep { milestones = { 1, 2 } }",
    "tk.sched.onecycle { max_lr = 0.1 }", "tk.sched.reduce_on_plateau { patience = 2 }",
    "tk.sched.cosine_restarts { T_0 = 1, T_mult = 2 }",
    "tk.sched.step { step_size = 1, unit = 'step' }", "tk.sched.linear { total_iters = 3 }",
    "tk.sched.polynomial { power = 2 }", "tk.sched.exponential { gamma = 0.9 }",
};

/* apply(base, "key.path", "value"): a shallow copy of the pipeline `base` with the table the
 * path's first key names rebuilt by tk.set's walk (or, for a top-level option, the value as
 * tk.set's coerce reads it), or a Lua error with the message tk.set gives. */
static const char apply_lua[] =
    "local tk, S = require 'tk', require 'tk.schema'\n"
    "local function upvalue(f, name)\n"
    "  for i = 1, 255 do\n"
    "    local n, v = debug.getupvalue(f, i)\n"
    "    if n == nil then break end\n"
    "    if n == name then return v end\n"
    "  end\n"
    "  error('fuzz_values: tk.set no longer has the upvalue ' .. name .. '; update this target')\n"
    "end\n"
    "local walk = upvalue(tk.set, 'walk')\n"
    "local coerce, pipeline_entry = upvalue(walk, 'coerce'), upvalue(walk, 'pipeline_entry')\n"
    "local files = {path = 1, init = 1, images = 1, labels = 1, root = 1, list = 1, npz = 1,\n"
    "               x = 1, y = 1}\n"
    "local function keys(base)\n"
    "  local out = {}\n"
    "  local function add(prefix, entry, obj, depth)\n"
    "    for _, name in ipairs(entry.spec.names) do\n"
    "      local f, child = entry.spec.by_name[name], obj and obj[name]\n"
    "      if name ~= 'model' and not files[name] then\n"
    "        out[#out + 1] = prefix .. name\n"
    "        local sub = type(child) == 'table' and rawget(child, '_kind') and S.kinds[child._kind]\n"
    "          or f.type.record\n"
    "        if sub and sub.spec and depth < 3 then add(prefix .. name .. '.', sub, child, depth + 1) end\n"
    "        if entry.items and entry.items[name] and type(child) == 'table' then\n"
    "          for i = 1, #child do\n"
    "            add(prefix .. name .. '.' .. i .. '.', entry.items[name], child[i], depth + 1)\n"
    "          end\n"
    "        end\n"
    "      end\n"
    "    end\n"
    "  end\n"
    "  add('', pipeline_entry, base, 0)\n"
    "  return out\n"
    "end\n"
    "return function(base, path, value)\n"
    "  local segs = {}\n"
    "  for seg in (path .. '.'):gmatch('([^.]*)%.') do segs[#segs + 1] = seg end\n"
    "  S.override = '--set ' .. path\n"
    "  local ok, res = pcall(function()\n"
    "    for _, seg in ipairs(segs) do\n"
    "      if seg == '' then S.fail(nil, 'malformed key (expected names joined by .)') end\n"
    "    end\n"
    "    local key = segs[1]\n"
    "    local f = pipeline_entry.spec.by_name[key]\n"
    "    if not f then S.fail(nil, S.unknown_key(key, pipeline_entry.spec.names)) end\n"
    "    if key == 'model' then S.fail(nil, 'the model cannot be changed') end\n"
    "    local p = {}\n"
    "    for k, v in pairs(base) do p[k] = v end\n"
    "    if #segs == 1 then p[key] = coerce(f, value); return p end\n"
    "    local child = base[key]\n"
    "    local entry = type(child) == 'table' and rawget(child, '_kind') and S.kinds[child._kind]\n"
    "      or f.type.record\n"
    "    if not entry then S.fail(nil, \"'\" .. key .. \"' has no options\") end\n"
    "    p[key] = walk(child or entry.build{}, entry, segs, 2, value)\n"
    "    return p\n"
    "  end)\n"
    "  S.override = nil\n"
    "  if not ok then error(res, 0) end\n"
    "  return res\n"
    "end, keys\n";

/* The stub of tk_compile (-Wl,--wrap=tk_compile): the converted optimizer spec is checked
 * for what the runtime would dereference, and no model is made. */
tk_status __wrap_tk_compile(const tk_graph *g, const tk_optim_spec *opt,
                            const tk_compile_opts *o, tk_model **out, tk_ctx *ctx);
tk_status __wrap_tk_compile(const tk_graph *g, const tk_optim_spec *opt,
                            const tk_compile_opts *o, tk_model **out, tk_ctx *ctx)
{
    (void)g, (void)o, (void)ctx;
    for (int k = 0; k < opt->n_groups; k++)
        for (int i = 0; i < opt->groups[k].n_patterns; i++)
            if (!opt->groups[k].patterns[i] || !opt->groups[k].where)
                abort();
    for (int i = 0; i < opt->n_freeze; i++)
        if (!opt->freeze[i])
            abort();
    *out = NULL;
    return TK_OK;
}

static void write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (f) {
        fputs(text, f);
        fclose(f);
    }
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    char dir[128], csv_path[160], path[160];
    snprintf(dir, sizeof dir, "%s/tkfuzz_values.%d",
             access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp", (int)getpid());
    mkdir(dir, 0700);
    char csv[512] = "";
    for (int i = 0; i < 8; i++) {
        char row[64];
        snprintf(row, sizeof row, "%d.%d,%d.5,%d,%d.25,%d\n", i % 3, i, i % 5, i % 7, i % 4,
                 i % 3);
        strcat(csv, row);
    }
    snprintf(csv_path, sizeof csv_path, "%s/d.csv", dir);
    write_text(csv_path, csv);
    L = tk_lua_new();
    tk_ctx *ctx = tk_ctx_new();
    tk_csv_opts o = {.path = csv_path, .delimiter = ','};
    if (!L || tk_dataset_csv(&o, &rows, ctx) != TK_OK || luaL_loadstring(L, apply_lua) != LUA_OK ||
        lua_pcall(L, 0, 2, 0) != LUA_OK) {
        fprintf(stderr, "fuzz_values: setting up failed: %s %s\n", tk_errmsg(ctx),
                L && lua_isstring(L, -1) ? lua_tostring(L, -1) : "");
        abort();
    }
    lua_pushvalue(L, -2);
    apply_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    int keys_fn = lua_gettop(L);
    for (int b = 0; b < BASES; b++) {
        char script[2048];
        snprintf(script, sizeof script, base_lua, bases[b][0], bases[b][1], bases[b][2],
                 base_scheds[b]);
        snprintf(path, sizeof path, "%s/s%d.lua", dir, b);
        write_text(path, script);
        if (tk_lua_run_script(L, path, ctx) != TK_OK) {
            fprintf(stderr, "fuzz_values: base %d failed: %s\n", b, tk_errmsg(ctx));
            abort();
        }
        lua_pushvalue(L, keys_fn);
        lua_pushvalue(L, -2);
        lua_call(L, 1, 1);
        for (int i = 1; i <= (int)luaL_len(L, -1) && n_keys[b] < KEYS; i++) {
            lua_rawgeti(L, -1, i);
            snprintf(keys[b][n_keys[b]++], sizeof keys[0][0], "%s", lua_tostring(L, -1));
            lua_pop(L, 1);
        }
        lua_pop(L, 1);
        base_ref[b] = luaL_ref(L, LUA_REGISTRYINDEX);
    }
    lua_settop(L, 0);
    tk_ctx_free(ctx);
    return 0;
}

/* The conversions of the pipeline at the top of the stack that the key's table feeds; the
 * data options go through spec_data.c whole, on the 8-row CSV. */
static tk_status convert(const char *key, tk_pipeline *p, tk_ctx *ctx)
{
    int pipe = lua_gettop(L);
    p->seed = (int64_t)num_at(L, pipe, "seed");
    if (strncmp(key, "data.", 5) == 0)
        return tk_spec_data(L, pipe, p, false, ctx);
    if (!(p->views[TRAIN] = tk_view_all(rows)))
        return TK_ERR_RUNTIME;
    lua_getfield(L, pipe, "data");
    p->train = (tk_train_opts){.train = p->views[TRAIN],
                               .batch_size = (int)num_at(L, -1, "batch_size"),
                               .epochs = (int64_t)num_at(L, pipe, "epochs")};
    lua_pop(L, 1);
    if (strncmp(key, "optimizer.", 10) == 0)
        return compile_model(L, pipe, p, ctx);
    if (strncmp(key, "loss.", 5) == 0) {
        if (!(p->graph = tk_graph_new(ctx)))
            return TK_ERR_RUNTIME;
        tk_graph_set_batch(p->graph, 4);
        lua_getfield(L, pipe, "loss");
        tk_task task;
        if (!tk_task_parse(str_at(L, -1, "task"), &task))
            abort(); /* every stdlib loss declares its task */
        lua_pop(L, 1);
        bool class_ids = task == TK_TASK_CLASSIFICATION;
        int output = tk_graph_input(p->graph, (tk_shape){1, {3}});
        int target = tk_graph_target(p->graph, class_ids ? (tk_shape){0, {0}} : (tk_shape){1, {3}});
        return add_loss(L, pipe, p, output, target, task, ctx);
    }
    tk_status st = build_policy(L, pipe, p, ctx);
    return st == TK_OK ? build_sched(L, pipe, p, ctx) : st;
}

/* The first byte picks the pipeline, the second the key among its options, the rest is the
 * value, as --set KEY=VALUE. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2 || memchr(data + 2, 0, size - 2))
        return 0;
    int b = data[0] % BASES;
    const char *key = keys[b][data[1] % n_keys[b]];
    lua_settop(L, 0);
    lua_rawgeti(L, LUA_REGISTRYINDEX, apply_ref);
    lua_rawgeti(L, LUA_REGISTRYINDEX, base_ref[b]);
    lua_pushstring(L, key);
    lua_pushlstring(L, (const char *)data + 2, size - 2);
    if (lua_pcall(L, 3, 1, 0) != LUA_OK) {
        if (!lua_isstring(L, -1) || !lua_tostring(L, -1)[0])
            abort(); /* an error without a message */
    } else {
        tk_ctx *ctx = tk_ctx_new();
        tk_pipeline p;
        memset(&p, 0, sizeof p);
        if (convert(key, &p, ctx) != TK_OK && !tk_errmsg(ctx)[0])
            abort();
        tk_pipeline_free(&p);
        tk_ctx_free(ctx);
    }
    lua_settop(L, 0);
    return 0;
}
