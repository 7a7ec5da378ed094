/* protobuf.c - protobuf wire-format encoding (protobuf.h). Not here: any message's fields. */
#include "protobuf.h"
#include "tk_int.h"

#include <string.h>

size_t tk_pb_varint_size(uint64_t v)
{
    size_t n = 1;
    for (; v >= 0x80; v >>= 7)
        n++;
    return n;
}

uint8_t *tk_pb_put_varint(uint8_t *p, uint64_t v)
{
    for (; v >= 0x80; v >>= 7)
        *p++ = (uint8_t)(v | 0x80);
    *p++ = (uint8_t)v;
    return p;
}

uint8_t *tk_pb_put_le(uint8_t *p, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++)
        *p++ = (uint8_t)(v >> (8 * i));
    return p;
}

void tk_pb_free(tk_pb *b)
{
    tk_free(b->p);
    memset(b, 0, sizeof *b);
}

uint8_t *tk_pb_reserve(tk_pb *b, size_t len)
{
    if (b->oom)
        return NULL;
    if (b->n + len > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + len)
            cap *= 2;
        uint8_t *p = tk_realloc(b->p, b->cap, cap);
        if (!p) {
            b->oom = true;
            return NULL;
        }
        b->p = p;
        b->cap = cap;
    }
    uint8_t *at = b->p + b->n;
    b->n += len;
    return at;
}

void tk_pb_raw(tk_pb *b, const void *data, size_t len)
{
    uint8_t *at = len ? tk_pb_reserve(b, len) : NULL;
    if (at)
        memcpy(at, data, len);
}

void tk_pb_varint(tk_pb *b, uint64_t v)
{
    uint8_t tmp[10];
    tk_pb_raw(b, tmp, (size_t)(tk_pb_put_varint(tmp, v) - tmp));
}

void tk_pb_key(tk_pb *b, int field, int wire)
{
    tk_pb_varint(b, (uint64_t)field << 3 | (uint64_t)wire);
}

void tk_pb_int(tk_pb *b, int field, int64_t v)
{
    tk_pb_key(b, field, TK_WIRE_VARINT);
    tk_pb_varint(b, (uint64_t)v);
}

void tk_pb_bytes(tk_pb *b, int field, const void *data, size_t len)
{
    tk_pb_key(b, field, TK_WIRE_LEN);
    tk_pb_varint(b, len);
    tk_pb_raw(b, data, len);
}

void tk_pb_str(tk_pb *b, int field, const char *s)
{
    tk_pb_bytes(b, field, s, strlen(s));
}

void tk_pb_float(tk_pb *b, int field, float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    tk_pb_key(b, field, TK_WIRE_I32);
    uint8_t *at = tk_pb_reserve(b, 4);
    if (at)
        tk_pb_put_le(at, u, 4);
}

void tk_pb_msg(tk_pb *b, int field, tk_pb *sub)
{
    b->oom = b->oom || sub->oom;
    tk_pb_bytes(b, field, sub->p, sub->n);
    tk_pb_free(sub);
}
