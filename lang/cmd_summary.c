/* cmd_summary.c - tkrun summary: the script's model as torchinfo 1.8 prints the same PyTorch
 * module (layer tree, output shapes, parameters, mult-adds, sizes). Not here: the table
 * itself (report.c), the layer table of check and note.log (tk_print_layers). */
#include "cli.h"

#include <string.h>

int tk_cmd_summary(const tk_cli *c)
{
    tk_session s;
    tk_status st = tk_session_open(&s, c);
    if (st == TK_OK) {
        /* The pipeline table stays on the Lua stack: its model's kind names the top row. */
        lua_getfield(s.L, -1, "model");
        lua_getfield(s.L, -1, "_kind");
        const char *kind = lua_tostring(s.L, -1);
        tk_print_summary(stdout, s.p.model,
                         kind && strcmp(kind, "nn.graph") == 0 ? "Graph" : "Sequential");
        lua_pop(s.L, 2);
    }
    int rc = tk_cli_exit(st, s.ctx);
    tk_session_close(&s);
    return rc;
}
