/* test_tfevents.c - the TensorBoard event writer: CRC-32C against published vectors, the
 * TFRecord framing and Event bytes parsed back in C, appending on reopen (including after a
 * torn record), a scalar allocating nothing and a long tag growing the record buffer, open
 * errors, allocation balance, and a cross-check with the independent Python reader
 * tests/tfevents_reader.py. */
#include "check.h"
#include "tk_int.h"

#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---------------------------------------------------------------- file helpers */

static unsigned char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    unsigned char *buf = NULL;
    size_t cap = 0, n;
    *len = 0;
    if (!f)
        return NULL;
    do {
        if (*len == cap)
            buf = realloc(buf, cap = cap ? 2 * cap : 4096);
        n = fread(buf + *len, 1, cap - *len, f);
        *len += n;
    } while (n > 0);
    fclose(f);
    return buf;
}

static void spit(const char *path, const void *data, size_t len, const char *mode)
{
    FILE *f = fopen(path, mode);
    CHECK(f && fwrite(data, 1, len, f) == len);
    if (f)
        fclose(f);
}

/* The number of *.tkrun events files in dir; the last one found is copied to path. */
static int find_events(const char *dir, char *path, size_t cap)
{
    int n = 0;
    DIR *d = opendir(dir);
    for (struct dirent *e; d && (e = readdir(d));) {
        size_t len = strlen(e->d_name);
        if (strncmp(e->d_name, "events.out.tfevents.", 20) == 0 && len > 6
            && strcmp(e->d_name + len - 6, ".tkrun") == 0) {
            snprintf(path, cap, "%s/%s", dir, e->d_name);
            n++;
        }
    }
    if (d)
        closedir(d);
    return n;
}

/* ---------------------------------------------------------------- parsing back */

static uint64_t le(const unsigned char *p, int bytes)
{
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static uint32_t mask(uint32_t crc)
{
    return (uint32_t)((crc >> 15 | crc << 17) + 0xa282ead8u);
}

enum { MAX_RECORDS = 32 };
typedef struct {
    const unsigned char *data[MAX_RECORDS];
    size_t len[MAX_RECORDS];
    int n;
} records;

/* Split a file into records, checking lengths and both CRCs; false at the first problem. */
static bool split_records(const unsigned char *buf, size_t size, records *r)
{
    r->n = 0;
    for (size_t pos = 0; pos < size; r->n++) {
        if (r->n == MAX_RECORDS || size - pos < 16)
            return false;
        uint64_t len = le(buf + pos, 8);
        if (le(buf + pos + 8, 4) != mask(tk_crc32c(0, buf + pos, 8)) || len > size - pos - 16)
            return false;
        if (le(buf + pos + 12 + len, 4) != mask(tk_crc32c(0, buf + pos + 12, len)))
            return false;
        r->data[r->n] = buf + pos + 12;
        r->len[r->n] = len;
        pos += 16 + len;
    }
    return true;
}

typedef struct {
    double wall_time;
    int64_t step;
    char version[32], tag[256];
    float value;
    int n_values;
} event;

static uint64_t varint(const unsigned char **p, const unsigned char *end)
{
    uint64_t v = 0;
    for (int shift = 0; *p < end && shift < 64; shift += 7) {
        unsigned char b = *(*p)++;
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80))
            break;
    }
    return v;
}

/* Decode the fields of one message into ev; `depth` 0 = Event, 1 = Summary, 2 = Value.
 * Returns false on an unexpected field or a length running past the end. */
static bool decode(const unsigned char *p, const unsigned char *end, int depth, event *ev)
{
    while (p < end) {
        uint64_t key = varint(&p, end);
        int field = (int)(key >> 3), wire = (int)(key & 7);
        if (wire == 1 && depth == 0 && field == 1 && end - p >= 8) {
            uint64_t bits = le(p, 8);
            memcpy(&ev->wall_time, &bits, 8);
            p += 8;
        } else if (wire == 5 && depth == 2 && field == 2 && end - p >= 4) {
            uint32_t bits = (uint32_t)le(p, 4);
            memcpy(&ev->value, &bits, 4);
            p += 4;
        } else if (wire == 0 && depth == 0 && field == 2) {
            ev->step = (int64_t)varint(&p, end);
        } else if (wire == 2) {
            uint64_t n = varint(&p, end);
            if (n > (uint64_t)(end - p))
                return false;
            char *str = depth == 0 && field == 3 ? ev->version
                        : depth == 2 && field == 1 ? ev->tag : NULL;
            if (str && n < 256) {
                memcpy(str, p, n);
                str[n] = 0;
            } else if ((depth == 0 && field == 5) || (depth == 1 && field == 1)) {
                ev->n_values += depth == 1;
                if (!decode(p, p + n, depth + 1, ev))
                    return false;
            } else {
                return false;
            }
            p += n;
        } else {
            return false;
        }
    }
    return true;
}

static event decode_record(const records *r, int i)
{
    event ev = {0};
    CHECK_MSG(decode(r->data[i], r->data[i] + r->len[i], 0, &ev), "record %d", i);
    return ev;
}

/* ---------------------------------------------------------------- tests */

static void test_crc32c(void)
{
    unsigned char zeros[32] = {0}, ones[32], inc[32];
    memset(ones, 0xff, sizeof ones);
    for (int i = 0; i < 32; i++)
        inc[i] = (unsigned char)i;
    /* The check value of the CRC catalogue, and the vectors of RFC 3720 (iSCSI) B.4. */
    CHECK(tk_crc32c(0, "123456789", 9) == 0xE3069283u);
    CHECK(tk_crc32c(0, zeros, 32) == 0x8A9136AAu);
    CHECK(tk_crc32c(0, ones, 32) == 0x62A8AB43u);
    CHECK(tk_crc32c(0, inc, 32) == 0x46DD794Eu);
    CHECK(tk_crc32c(0, "", 0) == 0);
    CHECK(tk_crc32c(tk_crc32c(0, "1234", 4), "56789", 5) == 0xE3069283u); /* chained */
}

typedef struct {
    const char *tag;
    int64_t step;
    double value, wall;
} scalar;

static char long_tag[201];
static const scalar first[] = {
    {"train/loss", 3, 0.5, 1700000000.25},
    {"valid/accuracy", 300, 0.875, 1700000001.5},
    {"lr/group0", -1, 1e-3, 1700000002.0},
    {long_tag, (int64_t)1 << 40, -3.25, 1700000003.0},
};
static const scalar second[] = {
    {"train/loss", 400, 0.125, 1700000100.0},
    {"valid/accuracy", 401, 0.9, 1700000101.0},
};

static void write_all(tk_events *ev, const scalar *s, int n, tk_ctx *ctx)
{
    for (int i = 0; i < n; i++)
        CHECK_MSG(tk_events_scalar(ev, s[i].tag, s[i].step, s[i].value, s[i].wall, ctx) == TK_OK,
                  "%s", tk_errmsg(ctx));
}

static void check_scalar(const records *r, int i, const scalar *s)
{
    event e = decode_record(r, i);
    CHECK_MSG(strcmp(e.tag, s->tag) == 0 && e.step == s->step && e.n_values == 1,
              "record %d: %s %lld", i, e.tag, (long long)e.step);
    CHECK(e.value == (float)s->value && e.wall_time == s->wall && e.version[0] == 0);
}

/* The first record is file_version, the rest are the scalars given. */
static void check_file(const char *path, const scalar *const *parts, const int *counts, int n_parts)
{
    size_t size;
    unsigned char *buf = slurp(path, &size);
    records r;
    CHECK_MSG(buf && split_records(buf, size, &r), "%s: bad framing or CRC", path);
    int total = 1;
    for (int k = 0; k < n_parts; k++)
        total += counts[k];
    CHECK_MSG(r.n == total, "%d records, expected %d", r.n, total);
    if (r.n == total) {
        event v = decode_record(&r, 0);
        CHECK(strcmp(v.version, "brain.Event:2") == 0 && v.n_values == 0 && v.wall_time > 1.6e9);
        for (int k = 0, i = 1; k < n_parts; k++)
            for (int j = 0; j < counts[k]; j++)
                check_scalar(&r, i++, &parts[k][j]);
    }
    free(buf);
}

static void test_bytes(const char *path)
{
    /* Every byte of the first scalar event, encoded by hand from the .proto. */
    static const unsigned char want[] = {
        0x09, 0x00, 0x00, 0x10, 0x40, 0xfc, 0x54, 0xd9, 0x41, /* wall_time 1700000000.25 */
        0x10, 0x03,                                           /* step 3 */
        0x2a, 0x13, 0x0a, 0x11,                               /* summary { value { */
        0x0a, 0x0a, 't', 'r', 'a', 'i', 'n', '/', 'l', 'o', 's', 's', /* tag */
        0x15, 0x00, 0x00, 0x00, 0x3f,                         /* simple_value 0.5f */
    };
    static const unsigned char version[] = {0x1a, 0x0d, 'b', 'r', 'a', 'i', 'n', '.', 'E',
                                            'v', 'e', 'n', 't', ':', '2'};
    size_t size;
    unsigned char *buf = slurp(path, &size);
    records r;
    CHECK(buf && split_records(buf, size, &r) && r.n >= 5);
    if (buf && r.n >= 5) {
        CHECK(le(buf, 8) == 24 && buf[12] == 0x09 && r.len[0] == 24);
        CHECK(memcmp(r.data[0] + 9, version, sizeof version) == 0);
        CHECK(r.len[1] == sizeof want && memcmp(r.data[1], want, sizeof want) == 0);
        CHECK(le(r.data[1] - 12, 8) == sizeof want);
        /* step -1: the ten-byte varint of its two's complement */
        static const unsigned char minus1[] = {0x10, 0xff, 0xff, 0xff, 0xff, 0xff,
                                               0xff, 0xff, 0xff, 0xff, 0x01};
        CHECK(memcmp(r.data[3] + 9, minus1, sizeof minus1) == 0);
        /* a 200-byte tag: two-byte lengths at all three levels */
        CHECK(memcmp(r.data[4] + 16, (const unsigned char[]){0x2a, 0xd3, 0x01, 0x0a, 0xd0,
                                                             0x01, 0x0a, 0xc8, 0x01}, 9) == 0);
    }
    free(buf);
}

static const char *reader_path(void)
{
    static char path[4000];
    const char *tail = strstr(__FILE__, "unit/test_tfevents.c");
    if (tail)
        snprintf(path, sizeof path, "%.*stfevents_reader.py", (int)(tail - __FILE__), __FILE__);
    else
        snprintf(path, sizeof path, "../tfevents_reader.py");
    return path;
}

/* Run the Python reader on `path`; its exit status, and its stdout+stderr into out. */
static int run_reader(const char *path, char *out, size_t cap)
{
    char cmd[8400];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 '%s' '%s' 2>&1", reader_path(), path);
    FILE *p = popen(cmd, "r");
    if (!p)
        return -1;
    size_t n = fread(out, 1, cap - 1, p);
    out[n] = 0;
    int status = pclose(p);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void test_python_reader(const char *path, const scalar *const *parts, const int *counts,
                               int n_parts)
{
    if (access("/usr/bin/python3", X_OK) != 0) {
        printf("SKIP python cross-check: /usr/bin/python3 not found\n");
        return;
    }
    CHECK_MSG(access(reader_path(), R_OK) == 0, "reader not found at %s", reader_path());
    static char want[8192], got[8192];
    size_t w = 0;
    for (int k = 0; k < n_parts; k++)
        for (int j = 0; j < counts[k]; j++)
            w += (size_t)snprintf(want + w, sizeof want - w, "%s %lld %.9g\n", parts[k][j].tag,
                                  (long long)parts[k][j].step, (double)(float)parts[k][j].value);
    CHECK_MSG(run_reader(path, got, sizeof got) == 0, "%s", got);
    CHECK_MSG(strcmp(got, want) == 0, "reader printed:\n%s\nexpected:\n%s", got, want);

    /* The reader must notice damage, or agreeing with it would prove little. */
    size_t size;
    unsigned char *buf = slurp(path, &size);
    CHECK(buf && size > 16);
    if (!buf || size <= 16) {
        free(buf);
        return;
    }
    char bad[4400];
    snprintf(bad, sizeof bad, "%s.bad", path);
    buf[size - 6] ^= 0x01; /* in the last record's data */
    spit(bad, buf, size, "wb");
    CHECK_MSG(run_reader(bad, got, sizeof got) == 1 && tk_contains(got, "data CRC"), "%s", got);
    buf[size - 6] ^= 0x01;
    spit(bad, buf, size - 3, "wb");
    CHECK_MSG(run_reader(bad, got, sizeof got) == 1 && tk_contains(got, "torn"), "%s", got);
    remove(bad);
    free(buf);
}

static void test_write_and_append(tk_ctx *ctx)
{
    const char *dir = check_tmpdir("tfevents");
    char path[4200], again[4200];
    tk_events *ev;
    CHECK_MSG(tk_events_open(dir, &ev, ctx) == TK_OK, "%s", tk_errmsg(ctx));
    write_all(ev, first, 4, ctx);
    tk_events_close(ev);
    CHECK(find_events(dir, path, sizeof path) == 1);
    char pid[32];
    snprintf(pid, sizeof pid, ".%ld.tkrun", (long)getpid());
    CHECK_MSG(tk_contains(path, pid), "%s", path);
    const scalar *parts[] = {first, second, second};
    int counts[] = {4, 2, 1};
    check_file(path, parts, counts, 1);
    test_bytes(path);

    /* Reopen: the same file grows, with no second file_version record. */
    CHECK_MSG(tk_events_open(dir, &ev, ctx) == TK_OK, "%s", tk_errmsg(ctx));
    write_all(ev, second, 2, ctx);
    tk_events_close(ev);
    CHECK(find_events(dir, again, sizeof again) == 1 && strcmp(path, again) == 0);
    check_file(path, parts, counts, 2);

    /* A crash mid-record: the torn bytes are cut before appending. */
    spit(path, "\x20\0\0\0\0\0\0\0\x01\x02\x03\x04\x09\x00", 14, "ab");
    CHECK_MSG(tk_events_open(dir, &ev, ctx) == TK_OK, "%s", tk_errmsg(ctx));
    write_all(ev, second, 1, ctx);
    tk_events_close(ev);
    check_file(path, parts, counts, 3);
    test_python_reader(path, parts, counts, 3);
}

static void test_resume_choice(tk_ctx *ctx)
{
    /* The newest *.tkrun file is the one resumed; a file with nothing intact in it gets its
     * file_version record back; other runs' files (no .tkrun) are left alone. */
    const char *dir = check_tmpdir("tfevents_resume");
    char older[4200], newer[4200], foreign[4200];
    snprintf(older, sizeof older, "%s/events.out.tfevents.1600000000.h.1.tkrun", dir);
    snprintf(newer, sizeof newer, "%s/events.out.tfevents.1600000001.h.1.tkrun", dir);
    snprintf(foreign, sizeof foreign, "%s/events.out.tfevents.1700000000.h", dir);
    spit(older, "keep", 4, "wb");
    spit(newer, "torn!", 5, "wb");
    spit(foreign, "tf", 2, "wb");
    tk_events *ev;
    CHECK_MSG(tk_events_open(dir, &ev, ctx) == TK_OK, "%s", tk_errmsg(ctx));
    write_all(ev, first, 1, ctx);
    tk_events_close(ev);
    const scalar *parts[] = {first};
    int one = 1;
    check_file(newer, parts, &one, 1);
    size_t n;
    unsigned char *buf = slurp(older, &n);
    CHECK(n == 4);
    free(buf);
    buf = slurp(foreign, &n);
    CHECK(n == 2);
    free(buf);
}

/* A scalar is built in the writer's buffer: with every allocation failing, one of a usual
 * tag still writes; a tag past the buffer grows it, or fails cleanly and writes nothing. */
static void test_buffer(tk_ctx *ctx)
{
    static char huge_tag[256];
    memset(huge_tag, 'y', 255);
    const scalar s[] = {{"train/loss_step", 7, 0.75, 1700000200.0},
                        {huge_tag, 8, 1.5, 1700000201.0},
                        {"train/loss_step", 9, 0.5, 1700000202.0}};
    const char *dir = check_tmpdir("tfevents_buffer");
    char path[4200];
    tk_events *ev;
    CHECK_MSG(tk_events_open(dir, &ev, ctx) == TK_OK, "%s", tk_errmsg(ctx));
    check_fail_after = 0;
    write_all(ev, s, 1, ctx);
    CHECK(tk_events_scalar(ev, huge_tag, 8, 1.5, 1700000201.0, ctx) == TK_ERR_RUNTIME);
    CHECK_MSG(tk_contains(tk_errmsg(ctx), "out of memory writing"), "%s", tk_errmsg(ctx));
    check_fail_after = -1;
    write_all(ev, s + 1, 2, ctx);
    tk_events_close(ev);
    const scalar *parts[] = {s};
    int three = 3;
    CHECK(find_events(dir, path, sizeof path) == 1);
    check_file(path, parts, &three, 1);
}

static void test_errors(tk_ctx *ctx)
{
    tk_events *ev = (tk_events *)1;
    CHECK(tk_events_open("/nonexistent/tkrun-dir", &ev, ctx) == TK_ERR_RUNTIME && ev == NULL);
    CHECK_MSG(tk_contains(tk_errmsg(ctx), "/nonexistent/tkrun-dir"), "%s", tk_errmsg(ctx));
    tk_events_close(NULL);
}

int main(void)
{
    memset(long_tag, 'x', 200);
    check_count_allocations();
    tk_ctx *ctx = tk_ctx_new();
    test_crc32c();
    test_write_and_append(ctx);
    test_resume_choice(ctx);
    test_buffer(ctx);
    test_errors(ctx);
    tk_ctx_free(ctx);
    CHECK_MSG(check_live_blocks() == 0, "%ld blocks leaked", check_live_blocks());
    tk_set_allocator(NULL);
    return check_summary();
}
