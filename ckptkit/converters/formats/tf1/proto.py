"""Just enough protocol buffers for TF checkpoints: varints, a bounded field reader, encoders.

Every length and count is checked against the bytes that remain, so a damaged or hostile
message ends in :class:`ProtoError` and never in a huge allocation or an endless loop.

Example:
    >>> encode_varint(300)
    b'\\xac\\x02'
    >>> decode_varint(b'\\xac\\x02', 0)
    (300, 2)
    >>> parse_fields(field_varint(1, 7) + field_bytes(2, b'hi'))
    {1: [7], 2: [b'hi']}
"""

from __future__ import annotations

import struct

__all__ = ["ProtoError", "encode_varint", "decode_varint", "parse_fields", "field_varint",
           "field_bytes", "field_fixed32", "as_int64", "first"]

_MAX_VARINT_BYTES = 10


class ProtoError(ValueError):
    """Bytes that are not a well-formed protobuf message (translated to a CkptkitError by callers)."""


def encode_varint(value: int) -> bytes:
    """Base-128 varint; negative values as 64-bit two's complement (10 bytes), as protobuf does."""
    if value < 0:
        value += 1 << 64
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def decode_varint(buf, pos: int, *, end: int | None = None) -> tuple[int, int]:
    """``(value, next_pos)`` of the varint at ``pos``; at most 10 bytes, never past ``end``."""
    end = len(buf) if end is None else end
    result = shift = 0
    for i in range(pos, min(end, pos + _MAX_VARINT_BYTES)):
        byte = buf[i]
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result & ((1 << 64) - 1), i + 1
        shift += 7
    raise ProtoError(f"truncated or overlong varint at byte {pos}")


def as_int64(value: int) -> int:
    """Reinterpret a decoded varint as a signed int64."""
    return value - (1 << 64) if value >= 1 << 63 else value


def _read_value(buf, pos: int, wire: int) -> tuple[object, int]:
    if wire == 0:
        return decode_varint(buf, pos)
    if wire == 2:
        size, pos = decode_varint(buf, pos)
        if size > len(buf) - pos:
            raise ProtoError(f"field of {size} bytes at byte {pos} runs past the end ({len(buf) - pos} left)")
        return bytes(buf[pos:pos + size]), pos + size
    width = _FIXED_WIDTH.get(wire)
    if width is None:
        raise ProtoError(f"unsupported wire type {wire} at byte {pos}")
    if width > len(buf) - pos:
        raise ProtoError(f"truncated fixed{width * 8} field at byte {pos}")
    return int.from_bytes(buf[pos:pos + width], "little"), pos + width


_FIXED_WIDTH = {1: 8, 5: 4}


def parse_fields(buf) -> dict[int, list]:
    """Every field of one message: number -> values in order (ints, or bytes for length-delimited).

    Raises:
        ProtoError: on any malformed byte.
    """
    fields: dict[int, list] = {}
    pos, end = 0, len(buf)
    while pos < end:
        tag = buf[pos]  # one-byte tags, varints and lengths inline: most of an index's ~10 per entry
        if tag < 0x80:
            pos += 1
        else:
            tag, pos = decode_varint(buf, pos)
        number, wire = tag >> 3, tag & 7
        if number == 0:
            raise ProtoError(f"field number 0 at byte {pos}")
        if wire == 0 and pos < end and buf[pos] < 0x80:
            value, pos = buf[pos], pos + 1
        elif wire == 2 and pos < end and buf[pos] < 0x80 and buf[pos] < end - pos:
            value, pos = bytes(buf[pos + 1:pos + 1 + buf[pos]]), pos + 1 + buf[pos]
        else:
            value, pos = _read_value(buf, pos, wire)
        fields.setdefault(number, []).append(value)
    return fields


def first(fields: dict[int, list], number: int, default, kind: type = int):
    """The last value of a singular field (protobuf's last-wins rule), type-checked."""
    values = fields.get(number)
    if not values:
        return default
    value = values[-1]
    if not isinstance(value, kind):
        raise ProtoError(f"field {number} has the wrong wire type")
    return value


def field_varint(number: int, value: int) -> bytes:
    return encode_varint(number << 3) + encode_varint(value)


def field_bytes(number: int, value: bytes) -> bytes:
    return encode_varint(number << 3 | 2) + encode_varint(len(value)) + value


def field_fixed32(number: int, value: int) -> bytes:
    return encode_varint(number << 3 | 5) + struct.pack("<I", value)
