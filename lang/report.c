/* report.c - the tables tkrun prints for a compiled model: the layer table and the
 * parameter-group table (check, note.log), and torchinfo's summary (tkrun summary).
 * Not here: the epoch lines (progress.c). */
#include "lang.h"

#include <stdlib.h>
#include <string.h>


static void thousands(char *buf, size_t cap, int64_t v)
{
    char raw[32];
    snprintf(raw, sizeof raw, "%lld", (long long)v);
    size_t len = strlen(raw), o = 0;
    for (size_t i = 0; i < len && o + 2 < cap; i++) {
        if (i > 0 && (len - i) % 3 == 0 && raw[i - 1] != '-')
            buf[o++] = ',';
        buf[o++] = raw[i];
    }
    buf[o] = 0;
}

void tk_print_layers(FILE *f, const tk_model *m)
{
    fprintf(f, "%-16s %-20s %-20s %12s  %s\n", "layer", "type", "output shape", "params",
            "script");
    for (int i = 0; i < tk_model_layer_count(m); i++) {
        tk_layer_info l = tk_model_layer(m, i);
        char shape[96], params[32];
        tk_shape_str(&l.shape, shape, sizeof shape);
        thousands(params, sizeof params, l.params);
        fprintf(f, "%-16s %-20s %-20s %12s  %s\n", l.name[0] ? l.name : "(model)", l.type,
                shape, params, l.where);
    }
    char total[32], trainable[32];
    thousands(total, sizeof total, tk_model_param_count(m, false));
    thousands(trainable, sizeof trainable, tk_model_param_count(m, true));
    fprintf(f, "total params %s (trainable %s), activation memory %.2f MiB\n", total, trainable,
            (double)tk_model_arena_bytes(m) / 1048576.0);
}

/* ---------------------------------------------------------------- torchinfo summary */

/* PyTorch's class name for an op: snake_case to CamelCase, with torch's acronyms. */
static void torch_class(const char *op, char *out, size_t cap)
{
    static const char *const acronyms[][2] = {{"relu", "ReLU"}, {"gelu", "GELU"},
                                              {"elu", "ELU"}, {"selu", "SELU"}};
    size_t o = 0;
    for (const char *p = op; *p && o + 8 < cap;) {
        size_t n = strcspn(p, "_");
        bool done = false;
        for (size_t a = 0; a < sizeof acronyms / sizeof acronyms[0] && !done; a++)
            if (strlen(acronyms[a][0]) == n && strncmp(p, acronyms[a][0], n) == 0) {
                o += (size_t)snprintf(out + o, cap - o, "%s", acronyms[a][1]);
                done = true;
            }
        for (size_t i = 0; i < n && !done && o + 1 < cap; i++)
            out[o++] = i == 0 && p[i] >= 'a' && p[i] <= 'z' ? (char)(p[i] - 'a' + 'A') : p[i];
        out[o] = 0;
        p += n + (p[n] == '_');
    }
    out[o] = 0;
}

static void list_shape(const tk_shape *s, char *buf, size_t cap)
{
    size_t o = (size_t)snprintf(buf, cap, "[");
    for (int i = 0; i < s->ndim && o < cap; i++)
        o += (size_t)snprintf(buf + o, cap - o, "%s%lld", i ? ", " : "", (long long)s->d[i]);
    if (o < cap)
        snprintf(buf + o, cap - o, "]");
}

/* One row of the table: a layer, or a container (a name prefix of other layers). */
typedef struct {
    char cls[48];
    int depth, index;
    tk_shape shape;
    int64_t params, macs;
    bool leaf, frozen;         /* frozen: none of its parameters is trained */
} summary_row;

static int name_depth(const char *name)
{
    int d = 1;
    for (; *name; name++)
        d += *name == '.';
    return d;
}

/* Is `prefix` a proper dotted prefix of `name` ("3" of "3.1")? */
static bool contains(const char *prefix, const char *name)
{
    size_t n = strlen(prefix);
    return strncmp(prefix, name, n) == 0 && name[n] == '.';
}

/* torchinfo's mult-adds of a leaf: per parameter, conv layers count it once per output
 * position (batch x spatial), other layers once per sample. */
static int64_t layer_macs(const tk_layer_info *l)
{
    if (l->params == 0 || l->shape.ndim == 0)
        return 0;
    int64_t positions = l->shape.d[0];
    if (strncmp(l->type, "conv", 4) == 0)
        for (int k = 2; k < l->shape.ndim; k++)
            positions *= l->shape.d[k];
    return l->params * positions;
}

/* Elements of the trained parameters a layer declares ("<layer>.weight", ...). */
static int64_t trained_params(const tk_model *m, const char *layer)
{
    size_t n = strlen(layer);
    int64_t total = 0;
    for (int i = 0; i < tk_model_tensor_count(m); i++) {
        tk_tensor_info t = tk_model_tensor(m, i);
        const char *local = n ? t.name + n + 1 : t.name;
        if (t.kind == TK_TENSOR_PARAM && t.group >= 0 &&
            (n == 0 || (strncmp(t.name, layer, n) == 0 && t.name[n] == '.')) &&
            !strchr(local, '.'))
            total += tk_shape_numel(&t.shape);
    }
    return total;
}

static void fmt_count(char *buf, size_t cap, int64_t v)
{
    if (v <= 0)
        snprintf(buf, cap, "--");
    else
        thousands(buf, cap, v);
}

static void row_line(FILE *f, int name_w, const char *name, const char *a, const char *b,
                     const char *c)
{
    /* Pads by characters, not bytes: the tree glyphs are multi-byte UTF-8. */
    int chars = 0;
    for (const char *p = name; *p; p++)
        chars += ((unsigned char)*p & 0xC0) != 0x80;
    char line[512];
    int n = snprintf(line, sizeof line, "%s%*s %-25s %-25s %-25s", name,
                     name_w > chars ? name_w - chars : 0, "", a, b, c);
    while (n > 0 && line[n - 1] == ' ')
        line[--n] = 0;
    fprintf(f, "%s\n", line);
}

void tk_print_summary(FILE *f, const tk_model *m, const char *model_class)
{
    int n = tk_model_layer_count(m);
    summary_row *rows = calloc((size_t)(2 * n + 1), sizeof *rows);
    bool *used = calloc((size_t)(n ? n : 1), sizeof *used);
    if (!rows || !used) {
        free(rows);
        free(used);
        fputs("summary: out of memory\n", f);
        return;
    }
    int nr = 0, counters[TK_MAX_DIMS * 4 + 2] = {0};
    rows[nr++] = (summary_row){.depth = 0,
                               .shape = n ? tk_model_layer(m, n - 1).shape : (tk_shape){0}};
    snprintf(rows[0].cls, sizeof rows[0].cls, "%s", model_class);
    /* Containers come before their children (torchinfo lists modules as their forward
     * starts); a container's row is its own node (nn.residual's add), if it has one. */
    for (int i = 0; i < n; i++) {
        if (used[i])
            continue;
        tk_layer_info l = tk_model_layer(m, i);
        char prefix[256];
        for (const char *dot = strchr(l.name, '.'); dot; dot = strchr(dot + 1, '.')) {
            snprintf(prefix, sizeof prefix, "%.*s", (int)(dot - l.name), l.name);
            bool seen = false;
            for (int k = 0; k < i && !seen; k++)
                seen = contains(prefix, tk_model_layer(m, k).name) ||
                       strcmp(prefix, tk_model_layer(m, k).name) == 0;
            if (seen)
                continue;
            summary_row *r = &rows[nr++];
            r->depth = name_depth(prefix);
            snprintf(r->cls, sizeof r->cls, "Sequential");
            for (int k = i; k < n; k++) {
                tk_layer_info c = tk_model_layer(m, k);
                if (strcmp(c.name, prefix) == 0) {
                    used[k] = true;
                    r->shape = c.shape;
                    r->params = c.params;
                    snprintf(r->cls, sizeof r->cls, "%s",
                             strcmp(c.type, "add") == 0 ? "Residual" : c.type);
                    if (strcmp(c.type, "add") != 0)
                        torch_class(c.type, r->cls, sizeof r->cls);
                } else if (contains(prefix, c.name) && !r->params) {
                    r->shape = c.shape;
                }
            }
        }
        summary_row *r = &rows[nr++];
        r->depth = name_depth(l.name);
        r->leaf = true;
        r->shape = l.shape;
        r->params = l.params;
        r->frozen = l.params > 0 && trained_params(m, l.name) == 0;
        r->macs = layer_macs(&l);
        torch_class(l.type, r->cls, sizeof r->cls);
    }
    int name_w = 40, longest = 0;
    for (int i = 0; i < nr; i++) {
        int d = rows[i].depth < (int)(sizeof counters / sizeof counters[0]) ? rows[i].depth : 0;
        rows[i].index = ++counters[d];
        char title[96];
        snprintf(title, sizeof title, "%s: %d-%d", rows[i].cls, rows[i].depth, rows[i].index);
        int len = (int)strlen(i ? title : rows[i].cls) + rows[i].depth * 5 + 1;
        longest = len > longest ? len : longest;
    }
    if (longest >= name_w)
        name_w = (longest + 4) / 5 * 5;
    int width = name_w + 3 * 25;
    char divider[512];
    memset(divider, '=', (size_t)width);
    divider[width] = 0;
    fprintf(f, "%s\n", divider);
    row_line(f, name_w, "Layer (type:depth-idx)", "Output Shape", "Param #", "Mult-Adds");
    fprintf(f, "%s\n", divider);
    int64_t macs = 0, out_bytes = 0;
    for (int i = 0; i < nr; i++) {
        const summary_row *r = &rows[i];
        char name[256], shape[96], params[32], mult[32];
        int o = 0;
        for (int d = 1; d < r->depth; d++)
            o += snprintf(name + o, sizeof name - (size_t)o, "│    ");
        if (r->depth == 0)
            snprintf(name, sizeof name, "%s", r->cls);
        else
            snprintf(name + o, sizeof name - (size_t)o, "%s%s: %d-%d",
                     r->depth == 1 ? "├─" : "└─", r->cls, r->depth, r->index);
        list_shape(&r->shape, shape, sizeof shape);
        fmt_count(params, sizeof params, r->params);
        if (r->leaf && r->frozen) {
            size_t len = strlen(params);
            memmove(params + 1, params, len);
            params[0] = '(';
            snprintf(params + len + 1, sizeof params - len - 1, ")");
        }
        fmt_count(mult, sizeof mult, r->leaf ? r->macs : 0);
        row_line(f, name_w, name, shape, params, mult);
        if (r->leaf) {
            macs += r->macs;
            if (r->params > 0)
                out_bytes += 2 * 4 * tk_shape_numel(&r->shape);
        }
    }
    int64_t total = tk_model_param_count(m, false), trainable = tk_model_param_count(m, true);
    tk_shape in = tk_model_input_shape(m);
    int64_t in_bytes = 4 * tk_model_batch(m) * tk_shape_numel(&in), param_bytes = 4 * total;
    char t[32], tr[32], nt[32], mac[48];
    thousands(t, sizeof t, total);
    thousands(tr, sizeof tr, trainable);
    thousands(nt, sizeof nt, total - trainable);
    const char *unit = macs >= 1e12 ? "T" : macs >= 1e9 ? "G" : "M";
    double scaled = (double)macs / (macs >= 1e12 ? 1e12 : macs >= 1e9 ? 1e9 : 1e6);
    if (scaled == (double)(int64_t)scaled)
        thousands(mac, sizeof mac, (int64_t)scaled);
    else
        snprintf(mac, sizeof mac, "%.2f", scaled);
    fprintf(f, "%s\nTotal params: %s\nTrainable params: %s\nNon-trainable params: %s\n"
            "Total mult-adds (%s): %s\n%s\n", divider, t, tr, nt, unit, mac, divider);
    fprintf(f, "Input size (MB): %.2f\nForward/backward pass size (MB): %.2f\n"
            "Params size (MB): %.2f\nEstimated Total Size (MB): %.2f\n%s\n",
            (double)in_bytes / 1e6, (double)out_bytes / 1e6, (double)param_bytes / 1e6,
            (double)(in_bytes + out_bytes + param_bytes) / 1e6, divider);
    free(rows);
    free(used);
}

/* The trained tensors of group g (g < 0: the frozen ones) on one indented line; a long list
 * keeps its first names and says how many more there are. */
static void print_names(FILE *f, const tk_model *m, int g)
{
    enum { WIDTH = 96 };
    char line[WIDTH + 64];
    size_t used = 0;
    int shown = 0, total = 0;
    line[0] = 0;
    for (int i = 0; i < tk_model_tensor_count(m); i++) {
        tk_tensor_info t = tk_model_tensor(m, i);
        if (t.kind != TK_TENSOR_PARAM || t.group != g)
            continue;
        total++;
        size_t n = strlen(t.name) + (shown ? 2 : 0);
        if (shown == total - 1 && used + n <= WIDTH) {
            used += (size_t)snprintf(line + used, sizeof line - used, "%s%s", shown ? ", " : "",
                                     t.name);
            shown++;
        }
    }
    if (total == 0)
        return;
    fprintf(f, "      %s", line);
    if (shown < total)
        fprintf(f, "%s... (%d more)", shown ? ", " : "", total - shown);
    fputc('\n', f);
}

void tk_print_groups(FILE *f, const tk_model *m)
{
    const char *type = tk_model_optim_name(m);
    fprintf(f, "optimizer %s\n%-5s %-24s %7s %10s %10s %12s  %s\n", type,
            "group", "patterns", "tensors", "elements", "lr", "weight_decay", "options");
    for (int g = 0; g < tk_model_group_count(m); g++) {
        tk_group_info gi = tk_model_group(m, g);
        const tk_optim_hparams *h = &gi.h;
        char opts[256], elements[32];
        thousands(elements, sizeof elements, gi.elements);
        tk_optim_describe(type, h, opts, sizeof opts);
        fprintf(f, "%-5d %-24s %7d %10s %10g %12g  %s\n", g, gi.patterns, gi.tensors, elements,
                h->lr, h->weight_decay, opts);
        print_names(f, m, g);
    }
    int frozen = 0;
    int64_t frozen_elements = 0;
    for (int i = 0; i < tk_model_tensor_count(m); i++) {
        tk_tensor_info t = tk_model_tensor(m, i);
        if (t.kind == TK_TENSOR_PARAM && t.group < 0) {
            frozen++;
            frozen_elements += tk_shape_numel(&t.shape);
        }
    }
    if (frozen) {
        char elements[32];
        thousands(elements, sizeof elements, frozen_elements);
        fprintf(f, "%-30s %7d %10s  (not trained)\n", "frozen", frozen, elements);
        print_names(f, m, -1);
    }
    fputs(tk_model_notes(m), f);
    /* The default group may be empty (the groups cover everything); a named one means a
     * pattern that took nothing. */
    for (int g = 1; g < tk_model_group_count(m); g++) {
        tk_group_info gi = tk_model_group(m, g);
        if (gi.tensors == 0)
            fprintf(f, "warning: group %d (%s) has no tensors: what it matches is frozen or "
                    "taken by an earlier group, so its settings apply to nothing\n", g,
                    gi.patterns);
    }
}

