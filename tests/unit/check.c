/* check.c - counters and helpers behind check.h. */
#include "check.h"

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
