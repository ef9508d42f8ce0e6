"""Keys of partitioned-variable slices: TensorFlow's OrderedCode encoding.

A slice of variable ``name`` is stored under ``NumIncreasing(0) String(name) NumIncreasing(rank)``
followed by ``SignedNumIncreasing(start), SignedNumIncreasing(length)`` per dimension, where a
whole dimension is start 0, length -1 (core/util/saved_tensor_slice_util.cc, ordered_code.cc).

Example:
    >>> signed_num_increasing(66667).hex(), signed_num_increasing(-1).hex()
    ('e1046b', '7f')
    >>> key = slice_key("w", ((0, 2), None))
    >>> key.hex()
    '0077000101028082807f'
    >>> decode_slice_key(key)
    ('w', ((0, 2), None))
"""

from __future__ import annotations

from ckptkit.converters.formats.tf1.messages import Extent

__all__ = ["num_increasing", "signed_num_increasing", "slice_key", "decode_slice_key", "SliceKeyError"]

_FULL = -1


class SliceKeyError(ValueError):
    """Bytes that are not an OrderedCode slice key."""


def num_increasing(value: int) -> bytes:
    """OrderedCode NumIncreasing: a length byte, then the big-endian bytes."""
    raw = value.to_bytes((value.bit_length() + 7) // 8, "big")
    return bytes([len(raw)]) + raw


def _header_mask(n: int) -> int:
    """n leading one-bits over an n-byte number."""
    return ((1 << n) - 1) << (8 * n - n)


def signed_num_increasing(value: int) -> bytes:
    """OrderedCode SignedNumIncreasing of an int64."""
    x = ~value if value < 0 else value
    n = x.bit_length() // 7 + 1
    raw = int.from_bytes(value.to_bytes(n, "big", signed=True), "big")
    return (raw ^ _header_mask(n)).to_bytes(n, "big")



def _escape_string(name: bytes) -> bytes:
    out = bytearray()
    for byte in name:
        out += {0: b"\x00\xff", 0xFF: b"\xff\x00"}.get(byte, bytes([byte]))
    return bytes(out) + b"\x00\x01"


def slice_key(name: str | bytes, extents: tuple[Extent, ...]) -> bytes:
    """The table key of one slice of ``name``; each extent is (start, length) or None (whole)."""
    raw = name.encode("utf-8") if isinstance(name, str) else name
    out = num_increasing(0) + _escape_string(raw) + num_increasing(len(extents))
    for extent in extents:
        start, length = extent if extent is not None else (0, _FULL)
        out += signed_num_increasing(start) + signed_num_increasing(length)
    return out


def _decode_num_increasing(key: bytes, pos: int) -> tuple[int, int]:
    if pos >= len(key) or pos + 1 + key[pos] > len(key) or key[pos] > 8:
        raise SliceKeyError("truncated number")
    n = key[pos]
    return int.from_bytes(key[pos + 1:pos + 1 + n], "big"), pos + 1 + n


def _decode_string(key: bytes, pos: int) -> tuple[bytes, int]:
    out = bytearray()
    while pos + 1 < len(key):
        pair = key[pos:pos + 2]
        if pair == b"\x00\x01":
            return bytes(out), pos + 2
        if pair in (b"\x00\xff", b"\xff\x00"):
            out.append(pair[0])
            pos += 2
        elif key[pos] in (0, 0xFF):
            raise SliceKeyError("bad escape in name")
        else:
            out.append(key[pos])
            pos += 1
    raise SliceKeyError("unterminated name")


def _decode_signed(key: bytes, pos: int) -> tuple[int, int]:
    if pos >= len(key):
        raise SliceKeyError("truncated number")
    lead = int.from_bytes(key[pos:pos + 2].ljust(2, b"\0"), "big")
    if not lead & 0x8000:  # negative: header bits are zeros
        lead ^= 0xFFFF
    n = 0
    while n < 10 and lead & (0x8000 >> n):
        n += 1
    if n == 0 or pos + n > len(key):
        raise SliceKeyError("bad signed number")
    raw = int.from_bytes(key[pos:pos + n], "big") ^ _header_mask(n)
    if key[pos] & 0x80 == 0:
        raw ^= (1 << 8 * n) - 1
        return ~raw, pos + n
    return raw, pos + n


def decode_slice_key(key: bytes, *, raw: bool = False) -> tuple[str | bytes, tuple[Extent, ...]]:
    """(name, extents) of a slice key (the inverse of :func:`slice_key`); ``raw`` keeps the name as bytes."""
    tag, pos = _decode_num_increasing(key, 0)
    if tag != 0:
        raise SliceKeyError("not a slice key")
    name, pos = _decode_string(key, pos)
    rank, pos = _decode_num_increasing(key, pos)
    if rank > len(key):
        raise SliceKeyError("rank larger than the key")
    extents: list[Extent] = []
    for _ in range(rank):
        start, pos = _decode_signed(key, pos)
        length, pos = _decode_signed(key, pos)
        extents.append(None if length == _FULL else (start, length))
    if pos != len(key):
        raise SliceKeyError("trailing bytes after the slice key")
    return name if raw else name.decode("utf-8", "replace"), tuple(extents)
