/* protobuf.h - the protobuf wire format, for the two writers that hand-encode it (onnx.c's
 * ModelProto, tfevents.c's Event): varints, little-endian fixed fields, and a growing buffer
 * of fields for messages whose size is not known ahead. Not here: decoding, schemas (each
 * writer names its own field numbers). Internal to runtime/. */
#ifndef TK_PROTOBUF_H
#define TK_PROTOBUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum { TK_WIRE_VARINT = 0, TK_WIRE_I64 = 1, TK_WIRE_LEN = 2, TK_WIRE_I32 = 5 };

/* Into memory the caller sized: the bytes a varint of v takes, and writers that return the
 * byte after what they wrote. */
size_t tk_pb_varint_size(uint64_t v);
uint8_t *tk_pb_put_varint(uint8_t *p, uint64_t v);
uint8_t *tk_pb_put_le(uint8_t *p, uint64_t v, int bytes);

/* A growing byte buffer ({0} is empty); once an allocation fails it stays failed and drops
 * all writes, so a message is built without checks and tested once at the end. */
typedef struct {
    uint8_t *p;
    size_t n, cap;
    bool oom;
} tk_pb;

void tk_pb_free(tk_pb *b);
/* Room for len more bytes, counted as written; NULL when out of memory. */
uint8_t *tk_pb_reserve(tk_pb *b, size_t len);
void tk_pb_raw(tk_pb *b, const void *data, size_t len);
void tk_pb_varint(tk_pb *b, uint64_t v);
void tk_pb_key(tk_pb *b, int field, int wire);
/* int32/int64/enum fields: negative values are ten-byte two's complement varints. */
void tk_pb_int(tk_pb *b, int field, int64_t v);
void tk_pb_bytes(tk_pb *b, int field, const void *data, size_t len);
void tk_pb_str(tk_pb *b, int field, const char *s);
void tk_pb_float(tk_pb *b, int field, float f);
/* Appends the finished submessage `sub` as field `field` and frees it. */
void tk_pb_msg(tk_pb *b, int field, tk_pb *sub);

#endif
