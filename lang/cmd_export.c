/* cmd_export.c - tkrun export: a script's model with trained weights written as an ONNX file
 * (opset 13) for inference elsewhere. The output path is checked before the script runs, so
 * a typo in it costs no data loading. Not here: the encoding (runtime/onnx.c), the --weights
 * resolution (cli.c). */
#include "cli.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* The file's folder must exist and be writable, and the path must not be a folder. */
static int check_output(const char *path)
{
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode))
        return tk_cli_usage_error("export", "--onnx %s is a directory, not a file name", path);
    char dir[4200];
    const char *slash = strrchr(path, '/');
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else if (slash == path)
        snprintf(dir, sizeof dir, "/");
    else
        snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return tk_cli_usage_error("export", "--onnx %s: the directory %s does not exist", path,
                                  dir);
    if (access(dir, W_OK) != 0)
        return tk_cli_usage_error("export", "--onnx %s: cannot write in %s: %s", path, dir,
                                  strerror(errno));
    return 0;
}

int tk_cmd_export(const tk_cli *c)
{
    if (!c->weights)
        return tk_cli_usage_error("export", "export needs --weights W (a .safetensors file or "
                                  "a run directory)");
    if (!c->onnx)
        return tk_cli_usage_error("export", "export needs --onnx OUT.onnx (the file to write)");
    int rc = check_output(c->onnx);
    if (rc)
        return rc;
    tk_session s;
    char used[4200] = "";
    tk_status st = tk_session_open(&s, c);
    if (st == TK_OK)
        st = tk_session_load_weights(&s, c->weights, used, sizeof used);
    if (st == TK_OK)
        st = tk_model_export_onnx(s.p.model, c->onnx, s.ctx);
    if (st == TK_OK)
        printf("wrote %s (ONNX opset 13, input 'input', output 'output', batch axis 'batch') "
               "with the weights of %s\n", c->onnx, used);
    rc = tk_cli_exit(st, s.ctx);
    tk_session_close(&s);
    return rc;
}
