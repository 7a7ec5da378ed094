/* onnx.c - export of a compiled model as an ONNX ModelProto (opset 13, IR version 7) for
 * inference: the forward graph from the input to the model output (the loss and the target
 * are left out), every tkrun op lowered to standard ONNX ops in eval mode (dropout is an
 * Identity, batch norm uses the running statistics, a fused linear/conv2d + ReLU comes apart
 * again), parameters and buffers as initializers under their PyTorch state_dict names, the
 * input "input" and the output "output" with a dynamic "batch" axis, in protobuf's wire format
 * (protobuf.c).
 * The ops' geometry is read through ops/common.h, the accessors the op files themselves use,
 * so the export cannot drift from the kernels. Not here: reading ONNX, training graphs,
 * other opsets. */
#include "tk_int.h"
#include "ops/common.h"
#include "protobuf.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

enum { IR_VERSION = 7, OPSET = 13 };

/* ---------------------------------------------------------------- ONNX messages */

/* Field numbers and enums of onnx.proto. */
enum { MODEL_IR_VERSION = 1, MODEL_PRODUCER = 2, MODEL_PRODUCER_VERSION = 3, MODEL_GRAPH = 7,
       MODEL_OPSET = 8 };
enum { OPSET_DOMAIN = 1, OPSET_VERSION = 2 };
enum { GRAPH_NODE = 1, GRAPH_NAME = 2, GRAPH_INITIALIZER = 5, GRAPH_INPUT = 11,
       GRAPH_OUTPUT = 12 };
enum { NODE_INPUT = 1, NODE_OUTPUT = 2, NODE_NAME = 3, NODE_OP = 4, NODE_ATTRIBUTE = 5 };
enum { ATTR_NAME = 1, ATTR_F = 2, ATTR_I = 3, ATTR_INTS = 8, ATTR_TYPE = 20 };
enum { ATTR_FLOAT = 1, ATTR_INT = 2, ATTR_INTS_TYPE = 7 };
enum { TENSOR_DIMS = 1, TENSOR_DATA_TYPE = 2, TENSOR_NAME = 8, TENSOR_RAW = 9 };
enum { DTYPE_FLOAT = 1, DTYPE_INT64 = 7 };
enum { VALUE_NAME = 1, VALUE_TYPE = 2, TYPE_TENSOR = 1, TENSOR_ELEM = 1, TENSOR_SHAPE = 2,
       SHAPE_DIM = 1, DIM_VALUE = 1, DIM_PARAM = 2 };

/* Attributes of one node, each encoded as a NodeProto attribute field. */
static void attr_int(tk_pb *a, const char *name, int64_t v)
{
    tk_pb at = {0};
    tk_pb_str(&at, ATTR_NAME, name);
    tk_pb_int(&at, ATTR_TYPE, ATTR_INT);
    tk_pb_int(&at, ATTR_I, v);
    tk_pb_msg(a, NODE_ATTRIBUTE, &at);
}

static void attr_float(tk_pb *a, const char *name, double v)
{
    tk_pb at = {0};
    tk_pb_str(&at, ATTR_NAME, name);
    tk_pb_int(&at, ATTR_TYPE, ATTR_FLOAT);
    tk_pb_float(&at, ATTR_F, (float)v);
    tk_pb_msg(a, NODE_ATTRIBUTE, &at);
}

static void attr_ints(tk_pb *a, const char *name, const int64_t *v, int n)
{
    tk_pb at = {0};
    tk_pb_str(&at, ATTR_NAME, name);
    tk_pb_int(&at, ATTR_TYPE, ATTR_INTS_TYPE);
    for (int i = 0; i < n; i++)
        tk_pb_int(&at, ATTR_INTS, v[i]);
    tk_pb_msg(a, NODE_ATTRIBUTE, &at);
}

/* A TensorProto with raw little-endian data: `count` floats from f, or int64s from i. */
static void tensor_proto(tk_pb *out, int field, const char *name, const int64_t *dims, int ndim,
                         const float *f, const int64_t *i, int64_t count)
{
    tk_pb t = {0};
    for (int k = 0; k < ndim; k++)
        tk_pb_int(&t, TENSOR_DIMS, dims[k]);
    tk_pb_int(&t, TENSOR_DATA_TYPE, f ? DTYPE_FLOAT : DTYPE_INT64);
    tk_pb_str(&t, TENSOR_NAME, name);
    size_t width = f ? 4 : 8;
    tk_pb_key(&t, TENSOR_RAW, TK_WIRE_LEN);
    tk_pb_varint(&t, (uint64_t)count * width);
    uint8_t *at = count ? tk_pb_reserve(&t, (size_t)count * width) : NULL;
    for (int64_t k = 0; at && k < count; k++) {
        if (f) {
            uint32_t u;
            memcpy(&u, &f[k], 4);
            tk_pb_put_le(at + 4 * k, u, 4);
        } else {
            tk_pb_put_le(at + 8 * k, (uint64_t)i[k], 8);
        }
    }
    tk_pb_msg(out, field, &t);
}

/* A graph input or output: float32 of shape (batch, d[1], ...), the batch a named dim. */
static void value_info(tk_pb *out, int field, const char *name, const tk_shape *s)
{
    tk_pb shape = {0};
    for (int k = 0; k < s->ndim; k++) {
        tk_pb dim = {0};
        if (k == 0)
            tk_pb_str(&dim, DIM_PARAM, "batch");
        else
            tk_pb_int(&dim, DIM_VALUE, s->d[k]);
        tk_pb_msg(&shape, SHAPE_DIM, &dim);
    }
    tk_pb tensor = {0}, type = {0}, v = {0};
    tk_pb_int(&tensor, TENSOR_ELEM, DTYPE_FLOAT);
    tk_pb_msg(&tensor, TENSOR_SHAPE, &shape);
    tk_pb_msg(&type, TYPE_TENSOR, &tensor);
    tk_pb_str(&v, VALUE_NAME, name);
    tk_pb_msg(&v, VALUE_TYPE, &type);
    tk_pb_msg(out, field, &v);
}

/* ---------------------------------------------------------------- the exporter */

typedef struct {
    const tk_model *m;
    const tk_graph *g;
    tk_ctx *ctx;
    tk_pb nodes, inits;           /* GraphProto node and initializer fields */
    bool *used;                /* per model tensor: referenced, so an initializer */
    const char **value;        /* per graph node: the ONNX name of its output */
    char **names;              /* every name made here, freed at the end */
    int n_names, cap_names;
    bool oom;
} exporter;

/* A name unique in the file: "/<layer>/<what>_<k>". PyTorch names never start with '/', so
 * these cannot meet an initializer's name. */
static const char *fresh(exporter *e, const tk_node *n, const char *what)
{
    if (e->n_names == e->cap_names) {
        int cap = e->cap_names ? 2 * e->cap_names : 64;
        char **p = tk_realloc(e->names, sizeof *p * (size_t)e->cap_names, sizeof *p * (size_t)cap);
        if (!p) {
            e->oom = true;
            return "";
        }
        e->names = p;
        e->cap_names = cap;
    }
    const char *layer = n->name[0] ? n->name : "model";
    size_t len = strlen(layer) + strlen(what) + 16;
    char *s = tk_malloc(len);
    if (!s) {
        e->oom = true;
        return "";
    }
    snprintf(s, len, "/%s/%s_%d", layer, what, e->n_names);
    e->names[e->n_names++] = s;
    return s;
}

/* One NodeProto of type `op` over inputs `in` with `attrs` (consumed; may be NULL), into y
 * (a fresh name when NULL). Returns the output's name. */
static const char *emit(exporter *e, const tk_node *n, const char *op, const char *const *in,
                        int n_in, tk_pb *attrs, const char *y)
{
    const char *name = fresh(e, n, op);
    y = y ? y : name;
    tk_pb node = {0};
    for (int i = 0; i < n_in; i++)
        tk_pb_str(&node, NODE_INPUT, in[i]);
    tk_pb_str(&node, NODE_OUTPUT, y);
    tk_pb_str(&node, NODE_NAME, name);
    tk_pb_str(&node, NODE_OP, op);
    if (attrs) {
        tk_pb_raw(&node, attrs->p, attrs->n);
        node.oom = node.oom || attrs->oom;
        tk_pb_free(attrs);
    }
    tk_pb_msg(&e->nodes, GRAPH_NODE, &node);
    return y;
}

static const char *unary(exporter *e, const tk_node *n, const char *op, const char *x,
                         tk_pb *attrs, const char *y)
{
    return emit(e, n, op, &x, 1, attrs, y);
}

static const char *binary(exporter *e, const tk_node *n, const char *op, const char *a,
                          const char *b, const char *y)
{
    const char *in[2] = {a, b};
    return emit(e, n, op, in, 2, NULL, y);
}

/* Constant initializers (not state_dict tensors): floats of any shape, or a 1-D int64 list. */
static const char *const_floats(exporter *e, const tk_node *n, const char *what,
                                const int64_t *dims, int ndim, const float *v, int64_t count)
{
    const char *name = fresh(e, n, what);
    tensor_proto(&e->inits, GRAPH_INITIALIZER, name, dims, ndim, v, NULL, count);
    return name;
}

static const char *scalar(exporter *e, const tk_node *n, const char *what, double v)
{
    float f = (float)v;
    return const_floats(e, n, what, NULL, 0, &f, 1);
}

static const char *const_ints(exporter *e, const tk_node *n, const char *what,
                              const int64_t *v, int count)
{
    const char *name = fresh(e, n, what);
    int64_t dims[1] = {count};
    tensor_proto(&e->inits, GRAPH_INITIALIZER, name, dims, 1, NULL, v, count);
    return name;
}

/* The node's k-th parameter or buffer, by its state_dict name. */
static const char *param(exporter *e, const tk_node *n, int k)
{
    int t = e->m->param_tensor[n->params[k]];
    e->used[t] = true;
    return e->m->tensors[t].name;
}

static const tk_shape *input_shape(const exporter *e, const tk_node *n, int k)
{
    return &e->g->nodes[n->inputs[k]].shape;
}

/* The fusion pass's ReLU epilogue as its own node again: the op writes a fresh name and a
 * Relu writes y. */
static const char *op_target(const tk_node *n, const char *y)
{
    return n->act == TK_ACT_RELU ? NULL : y;
}

static const char *epilogue(exporter *e, const tk_node *n, const char *t, const char *y)
{
    return n->act == TK_ACT_RELU ? unary(e, n, "Relu", t, NULL, y) : t;
}

/* "Reshape" to (batch, n->shape.d[1], ...): 0 copies the dynamic batch dimension. */
static const char *reshape_to(exporter *e, const tk_node *n, const char *x, const tk_shape *s,
                              const char *y)
{
    int64_t dims[TK_MAX_DIMS] = {0};
    for (int k = 1; k < s->ndim; k++)
        dims[k] = s->d[k];
    return binary(e, n, "Reshape", x, const_ints(e, n, "shape", dims, s->ndim), y);
}

/* ---------------------------------------------------------------- lowerings */

/* Each lowering writes the node's value into y (a fresh name when NULL) and returns its name,
 * or NULL with the message set. x holds the ONNX names of the node's inputs. */
typedef const char *(*lower_fn)(exporter *e, const tk_node *n, const char *const *x,
                                const char *y);

static const char *lower_linear(exporter *e, const tk_node *n, const char *const *x,
                                const char *y)
{
    const char *w = param(e, n, 0), *t;
    bool bias = n->n_params > 1;
    if (input_shape(e, n, 0)->ndim == 2) {
        const char *in[3] = {x[0], w, bias ? param(e, n, 1) : ""};
        tk_pb a = {0};
        attr_int(&a, "transB", 1);
        t = emit(e, n, "Gemm", in, bias ? 3 : 2, &a, op_target(n, y));
    } else {
        /* Gemm is 2-D only; over more dims it is a MatMul with the transposed weight. */
        tk_pb a = {0};
        int64_t perm[2] = {1, 0};
        attr_ints(&a, "perm", perm, 2);
        const char *wt = unary(e, n, "Transpose", w, &a, NULL);
        t = binary(e, n, "MatMul", x[0], wt, bias ? NULL : op_target(n, y));
        if (bias)
            t = binary(e, n, "Add", t, param(e, n, 1), op_target(n, y));
    }
    return epilogue(e, n, t, y);
}

static const char *lower_conv2d(exporter *e, const tk_node *n, const char *const *x,
                                const char *y)
{
    const tk_shape *ws = &e->m->tensors[e->m->param_tensor[n->params[0]]].shape;
    int64_t k[2] = {ws->d[2], ws->d[3]}, one[2] = {1, 1}, st[2], dil[2], lo[2], hi[2];
    tk_attr_pair(n, "stride", one, 1, INT_MAX, st);
    tk_attr_pair(n, "dilation", one, 1, INT_MAX, dil);
    const char *mode = tk_attr_str(n, "padding", NULL);
    for (int i = 0; i < 2; i++) {
        /* PyTorch's 'same': the odd extra row/column of padding goes below/right. */
        int64_t span = dil[i] * (k[i] - 1);
        lo[i] = mode && strcmp(mode, "same") == 0 ? span / 2 : 0;
        hi[i] = mode && strcmp(mode, "same") == 0 ? span - lo[i] : 0;
    }
    if (!mode) {
        int64_t zero[2] = {0, 0};
        tk_attr_pair(n, "padding", zero, 0, INT_MAX, lo);
        hi[0] = lo[0];
        hi[1] = lo[1];
    }
    int64_t pads[4] = {lo[0], lo[1], hi[0], hi[1]};
    tk_pb a = {0};
    attr_ints(&a, "kernel_shape", k, 2);
    attr_ints(&a, "strides", st, 2);
    attr_ints(&a, "dilations", dil, 2);
    attr_ints(&a, "pads", pads, 4);
    attr_int(&a, "group", tk_attr_int(n, "groups", 1));
    bool bias = n->n_params > 1;
    const char *in[3] = {x[0], param(e, n, 0), bias ? param(e, n, 1) : ""};
    const char *t = emit(e, n, "Conv", in, bias ? 3 : 2, &a, op_target(n, y));
    return epilogue(e, n, t, y);
}

/* Pooling windows as ONNX sees them: begin pads as in PyTorch, end pads large enough that
 * floor mode gives PyTorch's output size (its ceil_mode included, whose last window must
 * start inside the input or the left padding, so the end pad stays below the kernel). */
static void pool_window(const tk_pool2d_geom *q, int64_t k[2], int64_t st[2], int64_t pads[4])
{
    int64_t in[2] = {q->h, q->w}, out[2] = {q->oh, q->ow}, p[2] = {q->ph, q->pw};
    k[0] = q->kh;
    k[1] = q->kw;
    st[0] = q->sh;
    st[1] = q->sw;
    for (int i = 0; i < 2; i++) {
        int64_t need = (out[i] - 1) * st[i] + k[i] - in[i] - p[i];
        pads[i] = p[i];
        pads[2 + i] = need > p[i] ? need : p[i];
    }
}

static const char *lower_max_pool2d(exporter *e, const tk_node *n, const char *const *x,
                                    const char *y)
{
    tk_pool2d_geom q = tk_pool2d_geom_of(n);
    int64_t k[2], st[2], pads[4];
    pool_window(&q, k, st, pads);
    tk_pb a = {0};
    attr_ints(&a, "kernel_shape", k, 2);
    attr_ints(&a, "strides", st, 2);
    attr_ints(&a, "pads", pads, 4);
    return unary(e, n, "MaxPool", x[0], &a, y);
}

/* PyTorch divides by the window clipped to the padded input (count_include_pad) or to the
 * input. ONNX's count_include_pad counts the whole kernel, which differs in ceil mode's
 * partial windows; there the padding becomes an explicit Pad of zeros and the pooling counts
 * only what lies inside, which is PyTorch's divisor. */
static const char *lower_avg_pool2d(exporter *e, const tk_node *n, const char *const *x,
                                    const char *y)
{
    tk_pool2d_geom q = tk_pool2d_geom_of(n);
    int64_t k[2], st[2], pads[4];
    pool_window(&q, k, st, pads);
    bool include_pad = tk_attr_int(n, "count_include_pad", 1) != 0 && (q.ph || q.pw);
    bool partial = pads[2] > q.ph || pads[3] > q.pw;
    const char *in = x[0];
    if (include_pad && partial) {
        int64_t zeros[8] = {0, 0, q.ph, q.pw, 0, 0, q.ph, q.pw};
        in = binary(e, n, "Pad", in, const_ints(e, n, "pads", zeros, 8), NULL);
        int64_t end[4] = {0, 0, pads[2] - q.ph, pads[3] - q.pw};
        memcpy(pads, end, sizeof end);
    }
    tk_pb a = {0};
    attr_ints(&a, "kernel_shape", k, 2);
    attr_ints(&a, "strides", st, 2);
    attr_ints(&a, "pads", pads, 4);
    attr_int(&a, "count_include_pad", include_pad && !partial);
    return unary(e, n, "AveragePool", in, &a, y);
}

/* Global pooling, or an AveragePool when the windows tile the input; otherwise PyTorch's
 * windows (floor(i*H/oh) to ceil((i+1)*H/oh), possibly overlapping) as one product with a
 * constant (H*W, oh*ow) averaging matrix. */
static const char *lower_adaptive_avg_pool2d(exporter *e, const tk_node *n,
                                             const char *const *x, const char *y)
{
    const tk_shape *xs = input_shape(e, n, 0);
    int64_t c = xs->d[1], h = xs->d[2], w = xs->d[3], oh = n->shape.d[2], ow = n->shape.d[3];
    if (oh == 1 && ow == 1)
        return unary(e, n, "GlobalAveragePool", x[0], NULL, y);
    if (h % oh == 0 && w % ow == 0) {
        int64_t k[2] = {h / oh, w / ow};
        tk_pb a = {0};
        attr_ints(&a, "kernel_shape", k, 2);
        attr_ints(&a, "strides", k, 2);
        return unary(e, n, "AveragePool", x[0], &a, y);
    }
    int64_t cells = h * w * oh * ow;
    float *mat = tk_calloc((size_t)cells, sizeof *mat);
    if (!mat) {
        e->oom = true;
        return NULL;
    }
    for (int64_t i = 0; i < oh; i++) {
        int64_t h0 = i * h / oh, h1 = ((i + 1) * h + oh - 1) / oh;
        for (int64_t j = 0; j < ow; j++) {
            int64_t w0 = j * w / ow, w1 = ((j + 1) * w + ow - 1) / ow;
            float share = 1.0f / (float)((h1 - h0) * (w1 - w0));
            for (int64_t r = h0; r < h1; r++)
                for (int64_t s = w0; s < w1; s++)
                    mat[(r * w + s) * oh * ow + i * ow + j] = share;
        }
    }
    int64_t dims[2] = {h * w, oh * ow};
    const char *pool = const_floats(e, n, "pool_matrix", dims, 2, mat, cells);
    tk_free(mat);
    tk_shape flat = {3, {0, c, h * w}};
    const char *t = reshape_to(e, n, x[0], &flat, NULL);
    t = binary(e, n, "MatMul", t, pool, NULL);
    return reshape_to(e, n, t, &n->shape, y);
}

static const char *lower_batch_norm(exporter *e, const tk_node *n, const char *const *x,
                                    const char *y)
{
    /* weight, bias, running_mean, running_var, num_batches_tracked; without affine only the
     * buffers, and ONNX then takes a scale of ones and a bias of zeros. */
    bool affine = n->n_params == 5;
    int64_t c = n->shape.d[1];
    const char *in[5] = {x[0]};
    if (affine) {
        in[1] = param(e, n, 0);
        in[2] = param(e, n, 1);
    } else {
        float *v = tk_malloc(sizeof *v * (size_t)c);
        if (!v) {
            e->oom = true;
            return NULL;
        }
        for (int64_t i = 0; i < c; i++)
            v[i] = 1.0f;
        in[1] = const_floats(e, n, "ones", &c, 1, v, c);
        memset(v, 0, sizeof *v * (size_t)c);
        in[2] = const_floats(e, n, "zeros", &c, 1, v, c);
        tk_free(v);
    }
    in[3] = param(e, n, affine ? 2 : 0);
    in[4] = param(e, n, affine ? 3 : 1);
    tk_pb a = {0};
    attr_float(&a, "epsilon", tk_attr_float(n, "eps", 1e-5));
    attr_float(&a, "momentum", 1.0 - tk_attr_float(n, "momentum", 0.1));
    return emit(e, n, "BatchNormalization", in, 5, &a, y);
}

/* Opset 13 has no LayerNormalization: mean and biased variance over the trailing dims. */
static const char *lower_layer_norm(exporter *e, const tk_node *n, const char *const *x,
                                    const char *y)
{
    const tk_attr *ns = tk_node_attr(n, "normalized_shape");
    int dims = ns && ns->kind == TK_ATTR_INTS ? ns->n : 1;
    int64_t axes[TK_MAX_DIMS];
    for (int i = 0; i < dims; i++)
        axes[i] = i - dims;
    bool affine = n->n_params == 2;
    tk_pb a = {0};
    attr_ints(&a, "axes", axes, dims);
    attr_int(&a, "keepdims", 1);
    const char *mean = unary(e, n, "ReduceMean", x[0], &a, NULL);
    const char *d = binary(e, n, "Sub", x[0], mean, NULL);
    const char *sq = binary(e, n, "Pow", d, scalar(e, n, "two", 2.0), NULL);
    attr_ints(&a, "axes", axes, dims);
    attr_int(&a, "keepdims", 1);
    const char *var = unary(e, n, "ReduceMean", sq, &a, NULL);
    const char *v = binary(e, n, "Add", var, scalar(e, n, "eps", tk_attr_float(n, "eps", 1e-5)),
                           NULL);
    const char *sd = unary(e, n, "Sqrt", v, NULL, NULL);
    const char *t = binary(e, n, "Div", d, sd, affine ? NULL : y);
    if (!affine)
        return t;
    t = binary(e, n, "Mul", t, param(e, n, 0), NULL);
    return binary(e, n, "Add", t, param(e, n, 1), y);
}

static const char *lower_silu(exporter *e, const tk_node *n, const char *const *x,
                              const char *y)
{
    return binary(e, n, "Mul", x[0], unary(e, n, "Sigmoid", x[0], NULL, NULL), y);
}

static const char *lower_leaky_relu(exporter *e, const tk_node *n, const char *const *x,
                                    const char *y)
{
    tk_pb a = {0};
    attr_float(&a, "alpha", tk_attr_float(n, "negative_slope", 0.01));
    return unary(e, n, "LeakyRelu", x[0], &a, y);
}

static const char *lower_elu(exporter *e, const tk_node *n, const char *const *x,
                             const char *y)
{
    tk_pb a = {0};
    attr_float(&a, "alpha", tk_attr_float(n, "alpha", 1.0));
    return unary(e, n, "Elu", x[0], &a, y);
}

/* Opset 13 has no Gelu: x * 0.5 * (1 + erf(x / sqrt 2)), or the tanh form with PyTorch's
 * constants. */
static const char *lower_gelu(exporter *e, const tk_node *n, const char *const *x,
                              const char *y)
{
    const char *inner;
    if (strcmp(tk_attr_str(n, "approximate", "none"), "tanh") == 0) {
        const char *x3 = binary(e, n, "Pow", x[0], scalar(e, n, "three", 3.0), NULL);
        const char *t = binary(e, n, "Mul", x3, scalar(e, n, "kappa", 0.044715), NULL);
        t = binary(e, n, "Add", x[0], t, NULL);
        t = binary(e, n, "Mul", t, scalar(e, n, "sqrt_2_over_pi", sqrt(2.0 / M_PI)), NULL);
        inner = unary(e, n, "Tanh", t, NULL, NULL);
    } else {
        const char *t = binary(e, n, "Mul", x[0], scalar(e, n, "sqrt_half", sqrt(0.5)), NULL);
        inner = unary(e, n, "Erf", t, NULL, NULL);
    }
    const char *one_plus = binary(e, n, "Add", inner, scalar(e, n, "one", 1.0), NULL);
    const char *half_x = binary(e, n, "Mul", x[0], scalar(e, n, "half", 0.5), NULL);
    return binary(e, n, "Mul", half_x, one_plus, y);
}

/* log(1 + exp(beta x)) / beta, and x itself where beta x > threshold (PyTorch's cut-over,
 * which ONNX's Softplus lacks). */
static const char *lower_softplus(exporter *e, const tk_node *n, const char *const *x,
                                  const char *y)
{
    double beta = tk_attr_float(n, "beta", 1.0), threshold = tk_attr_float(n, "threshold", 20.0);
    const char *z = beta == 1.0 ? x[0] : binary(e, n, "Mul", x[0], scalar(e, n, "beta", beta),
                                                NULL);
    const char *s = unary(e, n, "Softplus", z, NULL, NULL);
    if (beta != 1.0)
        s = binary(e, n, "Div", s, scalar(e, n, "beta", beta), NULL);
    const char *above = binary(e, n, "Greater", z, scalar(e, n, "threshold", threshold), NULL);
    const char *in[3] = {above, x[0], s};
    return emit(e, n, "Where", in, 3, NULL, y);
}

static const char *lower_hardtanh(exporter *e, const tk_node *n, const char *const *x,
                                  const char *y)
{
    const char *in[3] = {x[0], scalar(e, n, "min_val", tk_attr_float(n, "min_val", -1.0)),
                         scalar(e, n, "max_val", tk_attr_float(n, "max_val", 1.0))};
    return emit(e, n, "Clip", in, 3, NULL, y);
}

static const char *along_dim(exporter *e, const tk_node *n, const char *op,
                             const char *const *x, int n_in, const char *y)
{
    int64_t dim = tk_attr_dim(n, input_shape(e, n, 0), e->ctx);
    if (dim == 0)
        return NULL;
    tk_pb a = {0};
    attr_int(&a, "axis", dim);
    return emit(e, n, op, x, n_in, &a, y);
}

static const char *lower_softmax(exporter *e, const tk_node *n, const char *const *x,
                                 const char *y)
{
    return along_dim(e, n, "Softmax", x, 1, y);
}

static const char *lower_log_softmax(exporter *e, const tk_node *n, const char *const *x,
                                     const char *y)
{
    return along_dim(e, n, "LogSoftmax", x, 1, y);
}

static const char *lower_concat(exporter *e, const tk_node *n, const char *const *x,
                                const char *y)
{
    return along_dim(e, n, "Concat", x, n->n_inputs, y);
}

static const char *lower_add(exporter *e, const tk_node *n, const char *const *x,
                             const char *y)
{
    return binary(e, n, "Add", x[0], x[1], y);
}

/* flatten(start_dim=1) to two dims is ONNX's Flatten; every other new shape a Reshape. */
static const char *lower_reshape(exporter *e, const tk_node *n, const char *const *x,
                                 const char *y)
{
    if (strcmp(n->op->name, "flatten") == 0 && n->shape.ndim == 2) {
        tk_pb a = {0};
        attr_int(&a, "axis", 1);
        return unary(e, n, "Flatten", x[0], &a, y);
    }
    return reshape_to(e, n, x[0], &n->shape, y);
}

/* An op with a lowering function, or one that is a single ONNX op without attributes. */
typedef struct {
    const char *op;
    lower_fn lower;
    const char *onnx;
} lowering;

static const lowering lowerings[] = {
    {"linear", lower_linear, NULL},
    {"conv2d", lower_conv2d, NULL},
    {"max_pool2d", lower_max_pool2d, NULL},
    {"avg_pool2d", lower_avg_pool2d, NULL},
    {"adaptive_avg_pool2d", lower_adaptive_avg_pool2d, NULL},
    {"batch_norm1d", lower_batch_norm, NULL},
    {"batch_norm2d", lower_batch_norm, NULL},
    {"layer_norm", lower_layer_norm, NULL},
    {"dropout", NULL, "Identity"},
    {"dropout2d", NULL, "Identity"},
    {"relu", NULL, "Relu"},
    {"leaky_relu", lower_leaky_relu, NULL},
    {"elu", lower_elu, NULL},
    {"gelu", lower_gelu, NULL},
    {"silu", lower_silu, NULL},
    {"tanh", NULL, "Tanh"},
    {"sigmoid", NULL, "Sigmoid"},
    {"softplus", lower_softplus, NULL},
    {"hardtanh", lower_hardtanh, NULL},
    {"softmax", lower_softmax, NULL},
    {"log_softmax", lower_log_softmax, NULL},
    {"flatten", lower_reshape, NULL},
    {"reshape", lower_reshape, NULL},
    {"add", lower_add, NULL},
    {"concat", lower_concat, NULL},
};

static const lowering *lowering_of(const char *op)
{
    for (size_t i = 0; i < sizeof lowerings / sizeof lowerings[0]; i++)
        if (strcmp(lowerings[i].op, op) == 0)
            return &lowerings[i];
    return NULL;
}

/* ---------------------------------------------------------------- the model */

/* Every node the output depends on, lowered in id order (inputs always come first). */
static tk_status lower_graph(exporter *e)
{
    const tk_graph *g = e->g;
    int nn = g->n_nodes;
    bool need[nn > 0 ? nn : 1];
    memset(need, 0, sizeof need);
    need[g->output] = true;
    for (int v = nn - 1; v >= 0; v--)
        for (int k = 0; need[v] && k < g->nodes[v].n_inputs; k++)
            need[g->nodes[v].inputs[k]] = true;
    e->value[g->input] = "input";
    if (g->output == g->input) {
        unary(e, &g->nodes[g->input], "Identity", "input", NULL, "output");
        return TK_OK;
    }
    for (int v = 0; v < nn; v++) {
        const tk_node *n = &g->nodes[v];
        if (!need[v] || v == g->input)
            continue;
        if (!n->op)
            return tk_node_fail(e->ctx, n, "the model's output depends on the targets, which "
                                "an ONNX model does not have");
        const lowering *l = lowering_of(n->op->name);
        if (!l)
            return tk_node_fail(e->ctx, n, "cannot be exported to ONNX: the exporter has no "
                                "ONNX form for op '%s'", n->op->name);
        const char *x[TK_MAX_INPUTS];
        for (int k = 0; k < n->n_inputs; k++)
            x[k] = e->value[n->inputs[k]];
        const char *y = v == g->output ? "output" : NULL;
        e->value[v] = l->lower ? l->lower(e, n, x, y) : unary(e, n, l->onnx, x[0], NULL, y);
        if (!e->value[v])
            return e->oom ? tk_fail(e->ctx, TK_ERR_RUNTIME, "out of memory") : TK_ERR_INPUT;
    }
    return TK_OK;
}

static void encode_model(exporter *e, tk_pb *model)
{
    const tk_graph *g = e->g;
    for (int i = 0; i < e->m->n_state; i++) {
        const tk_tensor_rec *t = &e->m->tensors[i];
        if (e->used[i])
            tensor_proto(&e->inits, GRAPH_INITIALIZER, t->name, t->shape.d, t->shape.ndim,
                         t->data, NULL, tk_shape_numel(&t->shape));
    }
    tk_pb graph = {0};
    tk_pb_raw(&graph, e->nodes.p, e->nodes.n);
    tk_pb_str(&graph, GRAPH_NAME, "tkrun");
    tk_pb_raw(&graph, e->inits.p, e->inits.n);
    value_info(&graph, GRAPH_INPUT, "input", &g->nodes[g->input].shape);
    value_info(&graph, GRAPH_OUTPUT, "output", &g->nodes[g->output].shape);
    graph.oom = graph.oom || e->nodes.oom || e->inits.oom;
    tk_pb opset = {0};
    tk_pb_str(&opset, OPSET_DOMAIN, "");
    tk_pb_int(&opset, OPSET_VERSION, OPSET);
    tk_pb_int(model, MODEL_IR_VERSION, IR_VERSION);
    tk_pb_str(model, MODEL_PRODUCER, "tkrun");
    tk_pb_str(model, MODEL_PRODUCER_VERSION, TK_VERSION);
    tk_pb_msg(model, MODEL_GRAPH, &graph);
    tk_pb_msg(model, MODEL_OPSET, &opset);
}

tk_status tk_model_export_onnx(const tk_model *m, const char *path, tk_ctx *ctx)
{
    exporter e = {.m = m, .g = m->g, .ctx = ctx};
    e.used = tk_calloc((size_t)(m->n_tensors ? m->n_tensors : 1), sizeof *e.used);
    e.value = tk_calloc((size_t)(m->g->n_nodes ? m->g->n_nodes : 1), sizeof *e.value);
    tk_pb model = {0};
    bool allocated = e.used && e.value;
    tk_status st = allocated ? lower_graph(&e) : TK_OK;
    if (st == TK_OK && allocated)
        encode_model(&e, &model);
    if (st == TK_OK && (!allocated || e.oom || model.oom))
        st = tk_fail(ctx, TK_ERR_RUNTIME, "out of memory while encoding the ONNX model");
    if (st == TK_OK) {
        st = tk_write_atomic(path, model.p, model.n, ctx);
        if (st != TK_OK) {
            char msg[sizeof ctx->msg];
            snprintf(msg, sizeof msg, "%s", tk_errmsg(ctx));
            tk_fail(ctx, st, "writing the ONNX model %s: %s", path, msg);
        }
    }
    tk_pb_free(&model);
    tk_pb_free(&e.nodes);
    tk_pb_free(&e.inits);
    for (int i = 0; i < e.n_names; i++)
        tk_free(e.names[i]);
    tk_free(e.names);
    tk_free(e.used);
    tk_free(e.value);
    return st;
}
