#!/usr/bin/python3
"""tfevents_reader.py - an independent reader of TensorBoard event files, to cross-check
runtime/tfevents.c: it shares no code with the writer (bitwise CRC-32C, a generic protobuf
decoder), uses only the standard library, and needs no TensorFlow or TensorBoard.

    tfevents_reader.py FILE

Verifies the framing and both CRCs of every record, checks that the first event is the
file_version event "brain.Event:2", and prints one "tag step value" line per scalar
(value as float32, printed with %.9g). Exits 1 with a message on stderr at the first problem.

Not here: images, histograms, tensors (only simple_value scalars are decoded).
"""
import struct
import sys


def crc32c(data):
    # Bit by bit, no table: deliberately unlike the writer's.
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 & -(crc & 1))
    return crc ^ 0xFFFFFFFF


def masked(crc):
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


class Bad(Exception):
    pass


def records(blob):
    pos = 0
    while pos < len(blob):
        if len(blob) - pos < 12:
            raise Bad(f"byte {pos}: torn record header")
        (length,) = struct.unpack_from("<Q", blob, pos)
        (length_crc,) = struct.unpack_from("<I", blob, pos + 8)
        if masked(crc32c(blob[pos:pos + 8])) != length_crc:
            raise Bad(f"byte {pos}: length CRC mismatch")
        data = blob[pos + 12:pos + 12 + length]
        if len(data) != length or len(blob) < pos + 16 + length:
            raise Bad(f"byte {pos}: torn record of {length} bytes")
        (data_crc,) = struct.unpack_from("<I", blob, pos + 12 + length)
        if masked(crc32c(data)) != data_crc:
            raise Bad(f"byte {pos}: data CRC mismatch")
        yield data
        pos += 16 + length


def varint(buf, pos):
    value, shift = 0, 0
    while True:
        if pos >= len(buf):
            raise Bad("truncated varint")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return value, pos


def fields(buf):
    """Yield (field number, wire type, value) for every field of a message: an int for
    varint, fixed64 and fixed32 (the raw bits), bytes for length-delimited."""
    pos = 0
    while pos < len(buf):
        key, pos = varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = varint(buf, pos)
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            if pos + size > len(buf):
                raise Bad(f"field {number}: truncated fixed{size * 8}")
            value = int.from_bytes(buf[pos:pos + size], "little")
            pos += size
        elif wire == 2:
            size, pos = varint(buf, pos)
            if pos + size > len(buf):
                raise Bad(f"field {number}: truncated length-delimited field")
            value = buf[pos:pos + size]
            pos += size
        else:
            raise Bad(f"field {number}: unsupported wire type {wire}")
        yield number, wire, value


def decode_event(data):
    """Event -> (file_version or None, step, [(tag, value)])."""
    version, step, scalars = None, 0, []
    for number, wire, value in fields(data):
        if number == 2 and wire == 0:
            step = value - (1 << 64) if value >= 1 << 63 else value
        elif number == 3 and wire == 2:
            version = value.decode("utf-8")
        elif number == 5 and wire == 2:
            for vnum, vwire, item in fields(value):
                if vnum != 1 or vwire != 2:
                    continue
                tag, simple = None, None
                for inum, iwire, x in fields(item):
                    if inum == 1 and iwire == 2:
                        tag = x.decode("utf-8")
                    elif inum == 2 and iwire == 5:
                        (simple,) = struct.unpack("<f", x.to_bytes(4, "little"))
                if tag is not None and simple is not None:
                    scalars.append((tag, simple))
    return version, step, scalars


def main(argv):
    if len(argv) != 2:
        print("usage: tfevents_reader.py FILE", file=sys.stderr)
        return 2
    with open(argv[1], "rb") as f:
        blob = f.read()
    try:
        if not blob:
            raise Bad("empty file")
        for i, data in enumerate(records(blob)):
            version, step, scalars = decode_event(data)
            if i == 0 and version != "brain.Event:2":
                raise Bad(f"first event is not file_version brain.Event:2 (got {version!r})")
            for tag, value in scalars:
                print(f"{tag} {step} {value:.9g}")
    except Bad as e:
        print(f"{argv[1]}: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
