/* lmodule.h - what the REPL's files share: the tensor userdata (ltensor.c), the REPL globals
 * P, model, data, opt (lmodule.c), and the interrupt flag a Ctrl-C sets (repl.c). */
#ifndef TK_LMODULE_H
#define TK_LMODULE_H

#include "cli.h"

/* A float32 (or int64: class ids, printed as integers) strided tensor. Its memory is the
 * model's (parameters, gradients: live views for the session's life) or a Lua-owned block
 * (copies, batches, outputs) that views keep alive. */
typedef struct {
    float *data;               /* element (0, ..., 0) */
    int ndim;
    int64_t shape[TK_MAX_DIMS], stride[TK_MAX_DIMS];
    bool ints;
} tk_ltensor;

#define TK_LTENSOR "tk.tensor"

/* Registers the tensor metatable and the global tensor(values [, dtype]). */
void tk_lt_open(lua_State *L);
/* Pushes a new contiguous tensor with its own zeroed memory. */
tk_ltensor *tk_lt_new(lua_State *L, int ndim, const int64_t *shape, bool ints);
/* Pushes a view of memory the caller keeps alive for the Lua state's life. */
tk_ltensor *tk_lt_view(lua_State *L, float *data, const tk_shape *shape);
tk_ltensor *tk_lt_check(lua_State *L, int idx);
int64_t tk_lt_numel(const tk_ltensor *t);
/* Copies the elements in row-major order into dst (numel floats). */
void tk_lt_gather(const tk_ltensor *t, float *dst);

/* Set by SIGINT while a command runs: the stepper stops at the next step boundary. While
 * tk_repl_training is set (the stepper runs) the handler leaves Lua alone: the stepper's
 * caller raises the error, naming where training stopped. */
extern volatile int tk_repl_interrupted, tk_repl_training;

/* P: the session and the stepper that trains it (lmodule.c). */
#define TK_LPIPELINE "tk.pipeline"
typedef struct {
    tk_session *s;
    tk_stepper *st;
} tk_lpipeline;
extern const char *const tk_split_names[]; /* "train", "valid", "test": splits 0, 1, 2 */
const tk_dataset *tk_lp_train(const tk_lpipeline *p);
/* The model's input with the compiled batch first (the train samples' shape: checked). */
tk_shape tk_lp_input_shape(const tk_lpipeline *p);
bool tk_lp_classification(const tk_lpipeline *p);
/* Sets group g's lr to the number at idx (nil: back to the schedule); raises on error. */
void tk_lp_set_lr(lua_State *L, tk_lpipeline *p, lua_Integer g, int idx);
/* The globals model, data, opt and help (lglobals.c); P at pidx, the spec table at spec. */
void tk_lglobals_open(lua_State *L, int pidx, int spec);

/* Defines the globals P, model, data, opt and help for an open session; the stepper is
 * created here and freed by tk_lmodule_close. The spec table is at the top of the stack. */
tk_status tk_lmodule_open(lua_State *L, tk_session *s);
void tk_lmodule_close(lua_State *L);

/* A metatable's "__fields": the list of names its __index function serves, so tab
 * completion can offer them without calling anything. */
void tk_set_fields(lua_State *L, int metatable, const char *const *names);

#endif
