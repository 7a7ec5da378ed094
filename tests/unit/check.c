/* check.c - counters and helpers behind check.h. */
#include "check.h"
#include "tk.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int tk_checks_run, tk_checks_failed;

int tk_close(double a, double b, double rtol, double atol)
{
    if (isnan(a) || isnan(b))
        return 0;
    return fabs(a - b) <= atol + rtol * fabs(b);
}

int tk_contains(const char *haystack, const char *needle)
{
    return haystack && needle && strstr(haystack, needle) != NULL;
}

int check_summary(void)
{
    printf("%d passed, %d failed\n", tk_checks_run - tk_checks_failed, tk_checks_failed);
    return tk_checks_failed ? 1 : 0;
}

const char *check_tmpdir(const char *name)
{
    static char path[4096];
    char cmd[8400];
    snprintf(path, sizeof path, "%s/%s", TK_TEST_TMP, name);
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s'", path, path);
    if (system(cmd) != 0)
        fprintf(stderr, "cannot make %s\n", path);
    return path;
}

const char *check_path(const char *dir, const char *name)
{
    static char buf[64][4096];
    static int k;
    char *p = buf[k++ % 64];
    snprintf(p, 4096, "%s/%s", dir, name);
    return p;
}

long check_fail_after = -1;
static long allocs, frees;

static void *counting_alloc(size_t size, void *ud)
{
    (void)ud;
    if (check_fail_after == 0)
        return NULL;
    if (check_fail_after > 0)
        check_fail_after--;
    void *p = malloc(size);
    if (p)
        __atomic_add_fetch(&allocs, 1, __ATOMIC_RELAXED);
    return p;
}

static void counting_release(void *p, void *ud)
{
    (void)ud;
    __atomic_add_fetch(&frees, 1, __ATOMIC_RELAXED);
    free(p);
}

void check_count_allocations(void)
{
    __atomic_store_n(&allocs, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&frees, 0, __ATOMIC_RELAXED);
    tk_set_allocator(&(tk_allocator){counting_alloc, counting_release, NULL});
}

long check_allocs(void)
{
    return __atomic_load_n(&allocs, __ATOMIC_RELAXED);
}

long check_live_blocks(void)
{
    return check_allocs() - __atomic_load_n(&frees, __ATOMIC_RELAXED);
}

tk_task check_task_of(const char *loss_op)
{
    if (strcmp(loss_op, "cross_entropy") == 0 || strcmp(loss_op, "nll") == 0)
        return TK_TASK_CLASSIFICATION;
    return strcmp(loss_op, "bce_with_logits") == 0 ? TK_TASK_MULTILABEL : TK_TASK_REGRESSION;
}
