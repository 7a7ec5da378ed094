/* progress.c - what training shows while it runs: on a terminal, a live bar on stderr in
 * tqdm's format ("epoch 3/10  42%|████▎     | 356/844 [00:01<00:01, 312.4it/s, loss=0.412]"),
 * redrawn at most 10 times a second and cleared when the epoch line is printed; off a
 * terminal, only the epoch lines (stdout); with --quiet only the last epoch line, once.
 * Not here: the run itself (cmd_train.c), the logs the runtime writes. */
#include "cli.h"

#include <math.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

void tk_progress_out_init(tk_progress_out *po, bool quiet, bool has_valid)
{
    memset(po, 0, sizeof *po);
    po->quiet = quiet;
    po->bar = !quiet && isatty(STDERR_FILENO);
    po->has_valid = has_valid;
    po->last_draw = -1;
}

static double wall(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* tqdm's format_interval: [H:]MM:SS. */
static void interval(char *buf, size_t cap, double t)
{
    long s = (long)(t + 0.5), h = s / 3600, m = s / 60 % 60;
    if (h)
        snprintf(buf, cap, "%ld:%02ld:%02ld", h, m, s % 60);
    else
        snprintf(buf, cap, "%02ld:%02ld", m, s % 60);
}

static int terminal_columns(void)
{
    struct winsize ws;
    if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
        return ws.ws_col;
    return 80;
}

/* The bar's cells as tqdm draws them: full blocks, then one of eight partial blocks. */
static void bar_cells(char *out, size_t cap, double frac, int width)
{
    static const char *const parts[8] = {" ", "▏", "▎", "▍", "▌", "▋", "▊", "▉"};
    int eighths = (int)(frac * width * 8), full = eighths / 8, o = 0;
    out[0] = 0;
    for (int i = 0; i < width; i++) {
        const char *cell = i < full ? "█" : i == full ? parts[eighths % 8] : " ";
        size_t n = strlen(cell);
        if ((size_t)o + n + 1 > cap)
            break;
        memcpy(out + o, cell, n);
        o += (int)n;
    }
    out[o] = 0;
}

static void draw(tk_progress_out *po, const tk_progress *p)
{
    char desc[64], left[96], right[256], elapsed[48], remain[48], rate[48], post[64];
    snprintf(desc, sizeof desc, "%s %lld/%lld", strcmp(p->split, "train") == 0 ? "epoch"
                                                                                : p->split,
             (long long)p->epoch, (long long)p->epochs);
    double frac = p->batches > 0 ? (double)p->batch / (double)p->batches : 0;
    if (frac > 1)
        frac = 1;
    snprintf(left, sizeof left, "%s %3.0f%%|", desc, frac * 100);
    double per_sec = p->seconds > 0 ? (double)p->batch / p->seconds : 0;
    interval(elapsed, sizeof elapsed, p->seconds);
    if (per_sec > 0) {
        interval(remain, sizeof remain, (double)(p->batches - p->batch) / per_sec);
        if (per_sec >= 1)
            snprintf(rate, sizeof rate, "%.1fit/s", per_sec);
        else
            snprintf(rate, sizeof rate, "%.1fs/it", 1 / per_sec);
    } else {
        snprintf(remain, sizeof remain, "?");
        snprintf(rate, sizeof rate, "?it/s");
    }
    int n = snprintf(post, sizeof post, ", loss=%.3g", p->loss);
    if (!isnan(p->accuracy) && n > 0 && (size_t)n < sizeof post)
        snprintf(post + n, sizeof post - (size_t)n, ", accuracy=%.3g", p->accuracy);
    snprintf(right, sizeof right, "| %lld/%lld [%s<%s, %s%s]", (long long)p->batch,
             (long long)p->batches, elapsed, remain, rate, post);
    /* Like tqdm, the bar takes what the terminal width leaves (at least 10 cells); one
     * column stays free so the cursor never wraps. */
    int width = terminal_columns() - 1 - (int)strlen(left) - (int)strlen(right);
    if (width < 10)
        width = 10;
    char cells[10 * 3 * 40];
    if (width > 400)
        width = 400;
    bar_cells(cells, sizeof cells, frac, width);
    fprintf(stderr, "\r%s%s%s\033[K", left, cells, right);
    fflush(stderr);
    po->drawn = true;
}

static void clear_bar(tk_progress_out *po)
{
    if (!po->drawn)
        return;
    fputs("\r\033[K", stderr);
    fflush(stderr);
    po->drawn = false;
}

static void metric_text(char *buf, size_t cap, const tk_progress *p)
{
    int n = snprintf(buf, cap, "loss %.4f", p->loss);
    if (!isnan(p->accuracy) && n > 0 && (size_t)n < cap)
        snprintf(buf + n, cap - (size_t)n, " accuracy %.4f", p->accuracy);
}

void tk_progress_out_report(const tk_progress *p, void *ud)
{
    tk_progress_out *po = ud;
    char m[96];
    metric_text(m, sizeof m, p);
    if (!p->done) {
        if (!po->bar)
            return;
        double t = wall();
        if (po->last_draw >= 0 && t - po->last_draw < 0.1 && p->batch < p->batches)
            return;
        po->last_draw = t;
        draw(po, p);
        return;
    }
    clear_bar(po);
    po->last_draw = -1;
    if (strcmp(p->split, "test") == 0) {
        tk_progress_out_finish(po);
        printf("test: %s\n", m);
        fflush(stdout);
        return;
    }
    if (strcmp(p->split, "train") == 0) {
        snprintf(po->pending, sizeof po->pending,
                 "epoch %lld/%lld  train %s  (%.1f s, %.0f samples/s)", (long long)p->epoch,
                 (long long)p->epochs, m, p->seconds, p->samples_per_sec);
        if (po->has_valid)
            return;
        snprintf(po->last, sizeof po->last, "%s", po->pending);
    } else {
        snprintf(po->last, sizeof po->last, "%s  valid %s", po->pending, m);
    }
    if (po->quiet)
        return;
    printf("%s\n", po->last);
    po->last[0] = 0;
    fflush(stdout);
}

void tk_progress_out_finish(tk_progress_out *po)
{
    clear_bar(po);
    if (po->quiet && po->last[0])
        printf("%s\n", po->last);
    po->last[0] = 0;
}
