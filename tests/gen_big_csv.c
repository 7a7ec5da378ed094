/* gen_big_csv.c - writes a CSV of at least BYTES bytes for the streaming test
 * (tests/cli/stream_big.sh): header "id,f1,f2,f3,f4,label,note", four features in [-1, 1)
 * with four decimals, a class label 0..2 that a linear model can learn from them, and a
 * note column of letters (the id/comment columns real files carry, which the script leaves
 * out of `features`). Rows are a function of their number (a 64-bit mix), so the file is
 * the same on every run. Formatting is done by hand: printf would take longer than the
 * test's training.
 * Usage: gen_big_csv PATH BYTES [NOTE_LEN]; prints the number of data rows.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static uint64_t mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* v in [-10000, 10000) as "-0.1234" or "0.1234" (v / 10000). */
static char *put_fixed(char *p, int v)
{
    if (v < 0) {
        *p++ = '-';
        v = -v;
    }
    *p++ = (char)('0' + v / 10000);
    *p++ = '.';
    for (int d = 1000; d > 0; d /= 10)
        *p++ = (char)('0' + v / d % 10);
    return p;
}

static char *put_uint(char *p, uint64_t v)
{
    char tmp[24];
    int n = 0;
    do
        tmp[n++] = (char)('0' + v % 10);
    while (v /= 10);
    while (n)
        *p++ = tmp[--n];
    return p;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: gen_big_csv PATH BYTES [NOTE_LEN]\n");
        return 2;
    }
    long long want = atoll(argv[2]);
    int note = argc > 3 ? atoi(argv[3]) : 160;
    if (note < 1 || note > 4000)
        note = 160;
    FILE *f = fopen(argv[1], "wb");
    if (!f) {
        perror(argv[1]);
        return 1;
    }
    enum { BUF = 1 << 20 };
    char *buf = malloc(BUF + 8192);
    if (!buf)
        return 1;
    char *p = buf;
    const char *head = "id,f1,f2,f3,f4,label,note\n";
    memcpy(p, head, strlen(head));
    p += strlen(head);
    long long written = 0;
    uint64_t row = 0;
    for (; written + (p - buf) < want; row++) {
        uint64_t h = mix(row);
        int v[4];
        for (int k = 0; k < 4; k++)
            v[k] = (int)((h >> (16 * k)) & 0xffff) * 20000 / 65536 - 10000;
        int label = (v[0] + v[1] > 0) + (v[2] > 5000);
        p = put_uint(p, row + 1);
        for (int k = 0; k < 4; k++) {
            *p++ = ',';
            p = put_fixed(p, v[k]);
        }
        *p++ = ',';
        *p++ = (char)('0' + label);
        *p++ = ',';
        uint64_t g = mix(h);
        for (int i = 0; i < note; i++)
            p[i] = (char)('a' + (g >> (i % 60)) % 26);
        p += note;
        *p++ = '\n';
        if (p - buf >= BUF) {
            if (fwrite(buf, 1, (size_t)(p - buf), f) != (size_t)(p - buf)) {
                perror(argv[1]);
                return 1;
            }
            written += p - buf;
            p = buf;
        }
    }
    if (fwrite(buf, 1, (size_t)(p - buf), f) != (size_t)(p - buf) || fclose(f) != 0) {
        perror(argv[1]);
        return 1;
    }
    free(buf);
    printf("%llu\n", (unsigned long long)row);
    return 0;
}
