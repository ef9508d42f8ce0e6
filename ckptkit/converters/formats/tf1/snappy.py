"""A small pure-Python raw-snappy decompressor (and a literal-only compressor for tests).

TensorFlow never compresses index blocks itself, but its reader accepts snappy blocks, so we
do too. The output size is bounded by the declared length, which is itself bounded by what
the input could possibly expand to, so damaged input cannot allocate without limit.

Example:
    >>> decompress(compress_literal(b"hello hello hello"))
    b'hello hello hello'
    >>> decompress(bytes([12, 0x08]) + b"abc" + bytes([0x15, 3]))  # 'abc' + copy(len 9, offset 3)
    b'abcabcabcabc'
"""

from __future__ import annotations

from ckptkit.converters.formats.tf1.proto import ProtoError, decode_varint, encode_varint

__all__ = ["SnappyError", "decompress", "compress_literal"]

_MAX_EXPANSION = 64  # one 2-byte copy tag yields at most 64 bytes


class SnappyError(ValueError):
    """Bytes that are not valid raw snappy."""


def _literal(src, pos: int, tag: int) -> tuple[int, int]:
    """(length, position of the literal bytes) for a literal tag at ``pos - 1``."""
    code = tag >> 2
    if code < 60:
        return code + 1, pos
    width = code - 59
    if pos + width > len(src):
        raise SnappyError("truncated literal length")
    return int.from_bytes(src[pos:pos + width], "little") + 1, pos + width


def _copy(src, pos: int, tag: int) -> tuple[int, int, int]:
    """(length, offset, next position) for a copy tag at ``pos - 1``."""
    kind = tag & 3
    if kind == 1:
        if pos >= len(src):
            raise SnappyError("truncated copy")
        return ((tag >> 2) & 7) + 4, ((tag >> 5) << 8) | src[pos], pos + 1
    width = 2 if kind == 2 else 4
    if pos + width > len(src):
        raise SnappyError("truncated copy")
    return (tag >> 2) + 1, int.from_bytes(src[pos:pos + width], "little"), pos + width


def decompress(src: bytes) -> bytes:
    """Decompress one raw snappy buffer (no framing).

    Raises:
        SnappyError: on any inconsistency (bad tag, offset 0 or beyond the output, wrong length).
    """
    try:
        expected, pos = decode_varint(src, 0)
    except ProtoError as e:
        raise SnappyError(f"bad snappy length preamble: {e}") from None
    if expected > len(src) * _MAX_EXPANSION:
        raise SnappyError(f"declared length {expected} is impossible for {len(src)} compressed bytes")
    out = bytearray()
    while pos < len(src):
        tag = src[pos]
        pos += 1
        if tag & 3 == 0:
            length, pos = _literal(src, pos, tag)
            if pos + length > len(src):
                raise SnappyError("literal runs past the end of the input")
            out += src[pos:pos + length]
            pos += length
        else:
            length, offset, pos = _copy(src, pos, tag)
            if offset == 0 or offset > len(out):
                raise SnappyError(f"copy offset {offset} outside the {len(out)} bytes produced so far")
            start = len(out) - offset
            for i in range(length):  # overlapping copies repeat the pattern
                out.append(out[start + i])
        if len(out) > expected:
            raise SnappyError(f"output exceeds the declared {expected} bytes")
    if len(out) != expected:
        raise SnappyError(f"output has {len(out)} bytes, {expected} declared")
    return bytes(out)


def compress_literal(data: bytes) -> bytes:
    """Valid snappy that stores ``data`` as literals (for tests and fixtures)."""
    out = bytearray(encode_varint(len(data)))
    for i in range(0, len(data), 1 << 16):
        chunk = data[i:i + (1 << 16)]
        n = len(chunk) - 1
        if n < 60:
            out.append(n << 2)
        else:
            width = (n.bit_length() + 7) // 8
            out.append((59 + width) << 2)
            out += n.to_bytes(width, "little")
        out += chunk
    return bytes(out)
