/* check.h - the helpers every C unit test uses: counted checks that print the failing
 * expression with file and line, a summary line for CTest's log, scratch files and a
 * counting allocator. */
#ifndef TK_CHECK_H
#define TK_CHECK_H

#include "tk.h"

#include <stdio.h>

extern int tk_checks_run, tk_checks_failed;

#define CHECK(cond)                                                                       \
    do {                                                                                  \
        tk_checks_run++;                                                                  \
        if (!(cond)) {                                                                    \
            tk_checks_failed++;                                                           \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);     \
        }                                                                                 \
    } while (0)

#define CHECK_MSG(cond, ...)                                                              \
    do {                                                                                  \
        tk_checks_run++;                                                                  \
        if (!(cond)) {                                                                    \
            tk_checks_failed++;                                                           \
            fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #cond);     \
            fprintf(stderr, __VA_ARGS__);                                                 \
            fputc('\n', stderr);                                                          \
        }                                                                                 \
    } while (0)

/* |a - b| <= atol + rtol * |b| */
#define CHECK_CLOSE(a, b, rtol, atol)                                                     \
    CHECK_MSG(tk_close((a), (b), (rtol), (atol)), "%.9g vs %.9g", (double)(a), (double)(b))

int tk_close(double a, double b, double rtol, double atol);
/* Does `haystack` contain `needle`? */
int tk_contains(const char *haystack, const char *needle);
/* Prints "N passed, M failed" and returns the exit code. */
int check_summary(void);

/* The task a loss op trains (as the stdlib's loss constructors declare it). */
tk_task check_task_of(const char *loss_op);
/* A fresh directory for this test's files: TK_TEST_TMP/<name>. */
const char *check_tmpdir(const char *name);
/* "<dir>/<name>" in one of 64 rotating buffers, so a test can hold several paths at once. */
const char *check_path(const char *dir, const char *name);

/* A counting allocator for the tests that the runtime frees all it allocates, or allocates
 * nothing, over some span: check_count_allocations() installs it with the counts zeroed
 * (tk_set_allocator(NULL) removes it). The counts are atomic: the loader's prefetch thread
 * allocates too. */
void check_count_allocations(void);
long check_allocs(void);      /* allocations since then */
long check_live_blocks(void); /* of those, the ones not freed yet */
/* For out-of-memory paths (single-threaded tests): n >= 0 lets n more allocations succeed
 * and fails every later one until it is set back to -1 (the default: none fails). */
extern long check_fail_after;

#endif
