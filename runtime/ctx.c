/* ctx.c - the context (error message), the allocator hook every runtime allocation goes
 * through, small string helpers, and crash-safe file writing. Nothing here prints. */
#include "tk_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void *default_alloc(size_t size, void *ud)
{
    (void)ud;
    return malloc(size);
}

static void default_release(void *p, void *ud)
{
    (void)ud;
    free(p);
}

static tk_allocator allocator = {default_alloc, default_release, NULL};

void tk_set_allocator(const tk_allocator *a)
{
    if (a)
        allocator = *a;
    else
        allocator = (tk_allocator){default_alloc, default_release, NULL};
}

void *tk_malloc(size_t size)
{
    return allocator.alloc(size ? size : 1, allocator.ud);
}

void *tk_calloc(size_t n, size_t size)
{
    if (size && n > SIZE_MAX / size)
        return NULL;
    void *p = tk_malloc(n * size);
    if (p)
        memset(p, 0, n * size);
    return p;
}

void *tk_realloc(void *p, size_t old_size, size_t new_size)
{
    void *q = tk_malloc(new_size);
    if (!q)
        return NULL;
    if (p) {
        memcpy(q, p, old_size < new_size ? old_size : new_size);
        tk_free(p);
    }
    return q;
}

void tk_free(void *p)
{
    if (p)
        allocator.release(p, allocator.ud);
}

char *tk_strdup(const char *s)
{
    if (!s)
        return NULL;
    size_t n = strlen(s) + 1;
    char *d = tk_malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

/* Aligned blocks keep the offset to the raw pointer just before the aligned address, so
 * they go through the same hook as everything else. */
float *tk_alloc_floats(size_t n)
{
    const size_t align = 64;
    if (n > (SIZE_MAX - 2 * align) / sizeof(float))
        return NULL;
    unsigned char *raw = tk_malloc(n * sizeof(float) + 2 * align);
    if (!raw)
        return NULL;
    uintptr_t base = (uintptr_t)raw + align;
    unsigned char *p = (unsigned char *)(base - base % align);
    memcpy(p - sizeof(size_t), &(size_t){(size_t)(p - raw)}, sizeof(size_t));
    memset(p, 0, n * sizeof(float));
    return (float *)p;
}

void tk_free_aligned(void *ptr)
{
    if (!ptr)
        return;
    unsigned char *p = ptr;
    size_t off;
    memcpy(&off, p - sizeof(size_t), sizeof(size_t));
    tk_free(p - off);
}

tk_ctx *tk_ctx_new(void)
{
    return tk_calloc(1, sizeof(tk_ctx));
}

void tk_ctx_free(tk_ctx *ctx)
{
    tk_free(ctx);
}

const char *tk_errmsg(const tk_ctx *ctx)
{
    return ctx ? ctx->msg : "";
}

void tk_clear_error(tk_ctx *ctx)
{
    if (ctx)
        ctx->msg[0] = 0;
}

tk_status tk_fail(tk_ctx *ctx, tk_status status, const char *fmt, ...)
{
    if (ctx) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(ctx->msg, sizeof ctx->msg, fmt, ap);
        va_end(ap);
    }
    return status;
}

bool tk_glob(const char *p, const char *s)
{
    /* Iterative matcher with one backtrack point: linear in practice, no recursion. */
    const char *star = NULL, *resume = NULL;
    while (*s) {
        if (*p == '*') {
            star = p++;
            resume = s;
        } else if (*p == '?' || *p == *s) {
            p++;
            s++;
        } else if (star) {
            p = star + 1;
            s = ++resume;
        } else {
            return false;
        }
    }
    while (*p == '*')
        p++;
    return *p == 0;
}

tk_status tk_mkdirs(const char *dir, tk_ctx *ctx)
{
    char path[4096];
    size_t n = strlen(dir);
    if (n == 0 || n >= sizeof path)
        return tk_fail(ctx, TK_ERR_INPUT, "bad directory name '%s'", dir);
    memcpy(path, dir, n + 1);
    for (char *p = path + 1; ; p++) {
        if (*p == '/' || *p == 0) {
            char c = *p;
            *p = 0;
            if (mkdir(path, 0777) != 0 && errno != EEXIST)
                return tk_fail(ctx, TK_ERR_RUNTIME, "cannot create directory '%s': %s", path,
                               strerror(errno));
            *p = c;
            if (c == 0)
                break;
        }
    }
    return TK_OK;
}

static tk_status fsync_dir_of(const char *path, tk_ctx *ctx)
{
    char dir[4096];
    const char *slash = strrchr(path, '/');
    if (!slash) {
        strcpy(dir, ".");
    } else {
        size_t n = (size_t)(slash - path);
        if (n >= sizeof dir)
            return tk_fail(ctx, TK_ERR_RUNTIME, "path too long: %s", path);
        memcpy(dir, path, n);
        dir[n ? n : 1] = 0;
        if (n == 0)
            dir[0] = '/';
    }
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0)
        return tk_fail(ctx, TK_ERR_RUNTIME, "cannot open directory '%s': %s", dir,
                       strerror(errno));
    int rc = fsync(fd);
    close(fd);
    if (rc != 0 && errno != EINVAL)
        return tk_fail(ctx, TK_ERR_RUNTIME, "cannot sync directory '%s': %s", dir,
                       strerror(errno));
    return TK_OK;
}

static void (*write_hook)(const char *tmp_path, const char *path);

void tk_set_write_hook(void (*hook)(const char *tmp_path, const char *path))
{
    write_hook = hook;
}

tk_status tk_write_atomic(const char *path, const void *data, size_t len, tk_ctx *ctx)
{
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0666);
    if (fd < 0)
        return tk_fail(ctx, TK_ERR_RUNTIME, "cannot write '%s': %s", tmp, strerror(errno));
    const unsigned char *p = data;
    size_t left = len;
    while (left > 0) {
        ssize_t w = write(fd, p, left);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            int e = errno;
            close(fd);
            unlink(tmp);
            return tk_fail(ctx, TK_ERR_RUNTIME, "cannot write '%s': %s", tmp, strerror(e));
        }
        p += w;
        left -= (size_t)w;
    }
    int synced = fsync(fd), e = errno;
    if (close(fd) != 0 && synced == 0) {
        synced = -1;
        e = errno;
    }
    if (synced != 0) {
        unlink(tmp);
        return tk_fail(ctx, TK_ERR_RUNTIME, "cannot sync '%s': %s", tmp, strerror(e));
    }
    if (write_hook)
        write_hook(tmp, path);
    if (rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return tk_fail(ctx, TK_ERR_RUNTIME, "cannot rename '%s' to '%s': %s", tmp, path,
                       strerror(e));
    }
    return fsync_dir_of(path, ctx);
}
