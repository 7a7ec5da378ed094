/* inject.c - an LD_PRELOAD fault injector for the full-disk and kill tests
 * (tests/cli/full_disk.sh, tests/cli/kill_anywhere.sh).
 *
 * TK_FAULT="CALL:PATTERN:N:ERRNO" makes the Nth call of CALL (write, fsync, rename, fflush or
 * pread, which streamed CSVs are read with) on a path matching the fnmatch PATTERN fail with
 * ERRNO (ENOSPC or EIO), or with KILL SIGKILL the process just before the call; "N+" fails
 * that call and every later one, as a disk that stays full. A write's, fsync's, fflush's or
 * pread's path is its descriptor's
 * (/proc/self/fd); a rename matches on either name. Every other call passes through.
 * Not here: stdio's own writes inside glibc (not interposable), which a small tmpfs covers.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fnmatch.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static struct {
    int parsed;
    char call[16];
    char pattern[512];
    long nth;
    int persist;
    int err;                   /* 0: SIGKILL instead of an error */
    long seen;
} fault;

static void parse(void)
{
    if (fault.parsed)
        return;
    fault.parsed = 1;
    const char *spec = getenv("TK_FAULT");
    char err[16] = "", nth[32] = "";
    if (!spec || sscanf(spec, "%15[^:]:%511[^:]:%31[^:]:%15s", fault.call, fault.pattern, nth,
                        err) != 4) {
        fault.call[0] = 0;
        return;
    }
    fault.nth = strtol(nth, NULL, 10);
    fault.persist = strchr(nth, '+') != NULL;
    fault.err = strcmp(err, "EIO") == 0 ? EIO : strcmp(err, "KILL") == 0 ? 0 : ENOSPC;
}

/* Does this call on `path` (or `path2`) fail now? */
static int hit(const char *call, const char *path, const char *path2)
{
    parse();
    if (!fault.call[0] || strcmp(call, fault.call) != 0)
        return 0;
    if (fnmatch(fault.pattern, path, 0) != 0 && (!path2 || fnmatch(fault.pattern, path2, 0)))
        return 0;
    fault.seen++;
    int now = fault.seen == fault.nth || (fault.persist && fault.seen > fault.nth);
    if (now && fault.err == 0)
        raise(SIGKILL);
    return now;
}

static int fd_hit(const char *call, int fd)
{
    char link[64], path[4096];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, path, sizeof path - 1);
    if (n < 0)
        return 0;
    path[n] = 0;
    return hit(call, path, NULL);
}

ssize_t write(int fd, const void *buf, size_t len)
{
    static ssize_t (*real)(int, const void *, size_t);
    if (!real)
        real = (ssize_t (*)(int, const void *, size_t))dlsym(RTLD_NEXT, "write");
    if (fd > 2 && fd_hit("write", fd)) {
        errno = fault.err;
        return -1;
    }
    return real(fd, buf, len);
}

ssize_t pread(int fd, void *buf, size_t len, off_t off)
{
    static ssize_t (*real)(int, void *, size_t, off_t);
    if (!real)
        real = (ssize_t (*)(int, void *, size_t, off_t))dlsym(RTLD_NEXT, "pread");
    if (fd_hit("pread", fd)) {
        errno = fault.err;
        return -1;
    }
    return real(fd, buf, len, off);
}

int fsync(int fd)
{
    static int (*real)(int);
    if (!real)
        real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
    if (fd_hit("fsync", fd)) {
        errno = fault.err;
        return -1;
    }
    return real(fd);
}

int rename(const char *from, const char *to)
{
    static int (*real)(const char *, const char *);
    if (!real)
        real = (int (*)(const char *, const char *))dlsym(RTLD_NEXT, "rename");
    if (hit("rename", from, to)) {
        errno = fault.err;
        return -1;
    }
    return real(from, to);
}

int fflush(FILE *f)
{
    static int (*real)(FILE *);
    if (!real)
        real = (int (*)(FILE *))dlsym(RTLD_NEXT, "fflush");
    if (f && fd_hit("fflush", fileno(f))) {
        errno = fault.err;
        return EOF;
    }
    return real(f);
}
