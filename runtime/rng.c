/* rng.c - the counter-based random number generator (Philox-4x32-10, Salmon et al. 2011).
 * A draw is a pure function of (seed, stream, a, b, counter): no hidden state to save or
 * replay, which is what makes resume exact. Not a cryptographic generator. */
#include "tk_int.h"

#include <math.h>

static void philox(uint32_t ctr[4], uint32_t k0, uint32_t k1)
{
    for (int round = 0; round < 10; round++) {
        uint64_t p0 = (uint64_t)0xD2511F53u * ctr[0];
        uint64_t p1 = (uint64_t)0xCD9E8D57u * ctr[2];
        uint32_t n0 = (uint32_t)(p1 >> 32) ^ ctr[1] ^ k0;
        uint32_t n2 = (uint32_t)(p0 >> 32) ^ ctr[3] ^ k1;
        ctr[1] = (uint32_t)p1;
        ctr[3] = (uint32_t)p0;
        ctr[0] = n0;
        ctr[2] = n2;
        k0 += 0x9E3779B9u;
        k1 += 0xBB67AE85u;
    }
}

/* Each block gives four words; the stream is folded into the key so streams never share a
 * sequence. */
static void block_words(uint64_t seed, uint32_t stream, uint32_t a, uint32_t b, uint64_t block,
                        uint32_t ctr[4])
{
    ctr[0] = (uint32_t)block;
    ctr[1] = (uint32_t)(block >> 32) ^ (stream << 16);
    ctr[2] = a;
    ctr[3] = b;
    philox(ctr, (uint32_t)seed ^ (stream * 0x9E3779B9u), (uint32_t)(seed >> 32) + stream);
}

static uint32_t draw(uint64_t seed, uint32_t stream, uint32_t a, uint32_t b, uint64_t counter)
{
    uint32_t ctr[4];
    block_words(seed, stream, a, b, counter >> 2, ctr);
    return ctr[counter & 3];
}

tk_rng tk_rng_make(uint64_t seed, uint32_t stream, uint32_t a, uint32_t b)
{
    return (tk_rng){seed, stream, a, b, 0};
}

uint32_t tk_rng_u32(tk_rng *r)
{
    return draw(r->seed, r->stream, r->a, r->b, r->counter++);
}

static float to_unit(uint32_t u)
{
    return (float)(u >> 8) * (1.0f / 16777216.0f);
}

float tk_rng_uniform(tk_rng *r)
{
    return to_unit(tk_rng_u32(r));
}

float tk_rng_uniform_at(uint64_t seed, uint32_t stream, uint32_t a, uint32_t b, uint64_t counter)
{
    return to_unit(draw(seed, stream, a, b, counter));
}

void tk_rng_uniform4_at(uint64_t seed, uint32_t stream, uint32_t a, uint32_t b, uint64_t block,
                        float u[4])
{
    uint32_t ctr[4];
    block_words(seed, stream, a, b, block, ctr);
    for (int i = 0; i < 4; i++)
        u[i] = to_unit(ctr[i]);
}

float tk_rng_normal(tk_rng *r)
{
    /* Box-Muller; 1 - u keeps the log argument in (0, 1]. */
    double u1 = 1.0 - (double)tk_rng_uniform(r);
    double u2 = (double)tk_rng_uniform(r);
    return (float)(sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2));
}

uint64_t tk_rng_below(tk_rng *r, uint64_t n)
{
    if (n <= 1)
        return 0;
    /* Rejection sampling over 64-bit draws removes modulo bias. */
    uint64_t limit = UINT64_MAX - UINT64_MAX % n;
    for (;;) {
        uint64_t v = ((uint64_t)tk_rng_u32(r) << 32) | tk_rng_u32(r);
        if (v < limit)
            return v % n;
    }
}
