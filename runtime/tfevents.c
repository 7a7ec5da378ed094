/* tfevents.c - the TensorBoard event-file writer: TFRecord framing with masked CRC-32C, and
 * a hand-encoded subset of the Event protobuf (wall_time, step, file_version, and a Summary
 * holding one simple_value scalar).
 *
 * Every record is flushed as it is written, so TensorBoard shows a run live. On resume the
 * newest events file of the directory is validated record by record and appended to. A
 * record is built in a buffer the writer keeps, so the scalar a training step logs allocates
 * nothing.
 *
 * Not here: which scalars are logged, and when (train.c); images, histograms, graphs.
 */
#include "protobuf.h"
#include "tk_int.h"

#include <dirent.h>
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct tk_events {
    FILE *f;
    char *path;                /* for messages */
    uint8_t *rec;              /* the record being written: rec_cap bytes */
    size_t rec_cap;
};

/* Room for a scalar with a tag of up to ~200 bytes (runlog.c's are under 128): the buffer
 * grows only for a longer tag, which no training run logs per step. */
enum { REC_START = 256 };

/* ---------------------------------------------------------------- CRC-32C */

/* Reflected polynomial 0x82F63B78, half a byte per step. Sixteen entries are few enough to
 * write out, so there is no table to initialise (and no race doing it); speed does not
 * matter at a few dozen bytes per scalar. */
static const uint32_t crc_nibble[16] = {
    0x00000000, 0x105ec76f, 0x20bd8ede, 0x30e349b1, 0x417b1dbc, 0x5125dad3,
    0x61c69362, 0x7198540d, 0x82f63b78, 0x92a8fc17, 0xa24bb5a6, 0xb21572c9,
    0xc38d26c4, 0xd3d3e1ab, 0xe330a81a, 0xf36e6f75,
};

uint32_t tk_crc32c(uint32_t crc, const void *data, size_t n)
{
    const uint8_t *p = data;
    crc = ~crc;
    for (size_t i = 0; i < n; i++) {
        crc ^= p[i];
        crc = (crc >> 4) ^ crc_nibble[crc & 15];
        crc = (crc >> 4) ^ crc_nibble[crc & 15];
    }
    return ~crc;
}

/* TFRecord stores CRCs masked: a CRC of data that itself holds CRCs is otherwise weak. */
static uint32_t mask(uint32_t crc)
{
    return ((crc >> 15) | (crc << 17)) + 0xa282ead8u;
}

static uint32_t masked_crc(const uint8_t *p, size_t n)
{
    return mask(tk_crc32c(0, p, n));
}

/* ---------------------------------------------------------------- encoding */

static uint64_t get_le(const uint8_t *p, int bytes)
{
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* A field key: the field number and the wire type of its value. */
#define KEY(field, wire) ((uint8_t)((field) << 3 | (wire)))

static uint8_t *put_wall_time(uint8_t *p, double wall_time)
{
    uint64_t bits;
    memcpy(&bits, &wall_time, sizeof bits);
    *p++ = KEY(1, TK_WIRE_I64); /* Event.wall_time */
    return tk_pb_put_le(p, bits, 8);
}

/* ---------------------------------------------------------------- records */

/* `rec` holds the event at rec + 12, with room for the 12-byte header before it and the
 * 4-byte footer after it, so the record goes out in one write. */
static tk_status write_record(tk_events *ev, uint8_t *rec, size_t len, tk_ctx *ctx)
{
    tk_pb_put_le(rec, len, 8);
    tk_pb_put_le(rec + 8, masked_crc(rec, 8), 4);
    tk_pb_put_le(rec + 12 + len, masked_crc(rec + 12, len), 4);
    if (fwrite(rec, 1, len + 16, ev->f) != len + 16 || fflush(ev->f) != 0)
        return tk_fail(ctx, TK_ERR_RUNTIME, "cannot write %s: %s", ev->path, strerror(errno));
    return TK_OK;
}

static tk_status write_file_version(tk_events *ev, tk_ctx *ctx)
{
    static const char version[] = "brain.Event:2";
    uint8_t rec[16 + 9 + 2 + sizeof version - 1];
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    uint8_t *p = put_wall_time(rec + 12, (double)now.tv_sec + now.tv_nsec * 1e-9);
    *p++ = KEY(3, TK_WIRE_LEN); /* Event.file_version */
    *p++ = (uint8_t)(sizeof version - 1);
    memcpy(p, version, sizeof version - 1);
    p += sizeof version - 1;
    return write_record(ev, rec, (size_t)(p - rec - 12), ctx);
}

tk_status tk_events_scalar(tk_events *ev, const char *tag, int64_t step, double value,
                           double wall_time, tk_ctx *ctx)
{
    /* Nested messages are length-prefixed, so sizes are computed inside out first. */
    size_t tag_len = strlen(tag);
    size_t value_len = 1 + tk_pb_varint_size(tag_len) + tag_len + 1 + 4;
    size_t summary_len = 1 + tk_pb_varint_size(value_len) + value_len;
    size_t event_len = 1 + 8 + 1 + tk_pb_varint_size((uint64_t)step) + 1 + tk_pb_varint_size(summary_len)
                       + summary_len;
    if (event_len + 16 > ev->rec_cap) {
        uint8_t *bigger = tk_malloc(event_len + 16);
        if (!bigger)
            return tk_fail(ctx, TK_ERR_RUNTIME, "out of memory writing %s", ev->path);
        tk_free(ev->rec);
        ev->rec = bigger;
        ev->rec_cap = event_len + 16;
    }
    uint8_t *rec = ev->rec;

    uint8_t *p = put_wall_time(rec + 12, wall_time);
    *p++ = KEY(2, TK_WIRE_VARINT); /* Event.step; negative steps take ten bytes, as in protobuf */
    p = tk_pb_put_varint(p, (uint64_t)step);
    *p++ = KEY(5, TK_WIRE_LEN);    /* Event.summary */
    p = tk_pb_put_varint(p, summary_len);
    *p++ = KEY(1, TK_WIRE_LEN);    /* Summary.value */
    p = tk_pb_put_varint(p, value_len);
    *p++ = KEY(1, TK_WIRE_LEN);    /* Summary.Value.tag */
    p = tk_pb_put_varint(p, tag_len);
    memcpy(p, tag, tag_len);
    p += tag_len;
    float f = (float)value;
    uint32_t bits;
    memcpy(&bits, &f, sizeof bits);
    *p++ = KEY(2, TK_WIRE_I32);    /* Summary.Value.simple_value */
    tk_pb_put_le(p, bits, 4);

    return write_record(ev, rec, event_len, ctx);
}

/* ---------------------------------------------------------------- open, resume, close */

static bool is_events_name(const char *name)
{
    static const char prefix[] = "events.out.tfevents.", suffix[] = ".tkrun";
    size_t n = strlen(name);
    return n > strlen(prefix) + strlen(suffix) && strncmp(name, prefix, strlen(prefix)) == 0
           && strcmp(name + n - strlen(suffix), suffix) == 0;
}

static char *join(const char *dir, const char *name)
{
    size_t n = strlen(dir) + 1 + strlen(name) + 1;
    char *path = tk_malloc(n);
    if (path)
        snprintf(path, n, "%s/%s", dir, name);
    return path;
}

/* The newest tkrun events file in `dir` into *path (NULL if there is none). Names sort by
 * their unix time, which keeps ten digits until the year 2286. */
static tk_status find_existing(const char *dir, char **path, tk_ctx *ctx)
{
    *path = NULL;
    DIR *d = opendir(dir);
    if (!d)
        return tk_fail(ctx, TK_ERR_RUNTIME, "cannot open directory %s: %s", dir, strerror(errno));
    char best[256] = "";
    for (struct dirent *e; (e = readdir(d));)
        if (is_events_name(e->d_name) && strlen(e->d_name) < sizeof best
            && strcmp(e->d_name, best) > 0)
            strcpy(best, e->d_name);
    closedir(d);
    if (best[0] && !(*path = join(dir, best)))
        return tk_fail(ctx, TK_ERR_RUNTIME, "out of memory opening events in %s", dir);
    return TK_OK;
}

/* Cut `path` after its last intact record. A crash can leave a torn record at the end, and
 * TensorBoard stops reading a file at the first bad record: appending after it would hide
 * everything the resumed run logs. *kept receives the size kept. */
static tk_status cut_torn_tail(const char *path, uint64_t *kept, tk_ctx *ctx)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return tk_fail(ctx, TK_ERR_RUNTIME, "cannot open %s: %s", path, strerror(errno));
    uint64_t good = 0;
    uint8_t head[12], buf[4096];
    while (fread(head, 1, 12, f) == 12 && get_le(head + 8, 4) == masked_crc(head, 8)) {
        uint64_t len = get_le(head, 8), left = len;
        uint32_t crc = 0;
        while (left > 0) {
            size_t n = fread(buf, 1, left < sizeof buf ? (size_t)left : sizeof buf, f);
            if (n == 0)
                break;
            crc = tk_crc32c(crc, buf, n);
            left -= n;
        }
        if (left > 0 || fread(buf, 1, 4, f) != 4 || get_le(buf, 4) != mask(crc))
            break;
        good += 12 + len + 4;
    }
    struct stat s;
    bool failed = ferror(f) || fstat(fileno(f), &s) != 0;
    int err = errno;
    fclose(f);
    if (failed)
        return tk_fail(ctx, TK_ERR_RUNTIME, "cannot read %s: %s", path, strerror(err));
    if ((uint64_t)s.st_size > good && truncate(path, (off_t)good) != 0)
        return tk_fail(ctx, TK_ERR_RUNTIME, "cannot truncate %s: %s", path, strerror(errno));
    *kept = good;
    return TK_OK;
}

static tk_status new_path(const char *dir, char **path, tk_ctx *ctx)
{
    char host[256] = "localhost", name[512];
    if (gethostname(host, sizeof host) != 0)
        strcpy(host, "localhost");
    host[sizeof host - 1] = 0; /* gethostname need not terminate a truncated name */
    snprintf(name, sizeof name, "events.out.tfevents.%lld.%s.%ld.tkrun", (long long)time(NULL),
             host, (long)getpid());
    if (!(*path = join(dir, name)))
        return tk_fail(ctx, TK_ERR_RUNTIME, "out of memory opening events in %s", dir);
    return TK_OK;
}

tk_status tk_events_open(const char *dir, tk_events **out, tk_ctx *ctx)
{
    *out = NULL;
    char *path;
    uint64_t kept = 0;
    tk_status st = find_existing(dir, &path, ctx);
    if (st == TK_OK)
        st = path ? cut_torn_tail(path, &kept, ctx) : new_path(dir, &path, ctx);
    if (st != TK_OK) {
        tk_free(path);
        return st;
    }
    tk_events *ev = tk_malloc(sizeof *ev);
    uint8_t *rec = ev ? tk_malloc(REC_START) : NULL;
    if (!rec) {
        tk_free(ev);
        tk_free(path);
        return tk_fail(ctx, TK_ERR_RUNTIME, "out of memory opening events in %s", dir);
    }
    ev->path = path;
    ev->rec = rec;
    ev->rec_cap = REC_START;
    /* Append mode: every write lands at the end, after the records already there. */
    if (!(ev->f = fopen(path, "ab"))) {
        st = tk_fail(ctx, TK_ERR_RUNTIME, "cannot create %s: %s", path, strerror(errno));
        tk_events_close(ev);
        return st;
    }
    /* A file cut to nothing (or new) has lost its file_version record: TensorBoard expects
     * it first. */
    if (kept == 0 && (st = write_file_version(ev, ctx)) != TK_OK) {
        tk_events_close(ev);
        return st;
    }
    *out = ev;
    return TK_OK;
}

void tk_events_close(tk_events *ev)
{
    if (!ev)
        return;
    if (ev->f)
        fclose(ev->f);
    tk_free(ev->path);
    tk_free(ev->rec);
    tk_free(ev);
}
