"""CRC32C (Castagnoli) and TensorFlow's masking, computed in C by google-crc32c (NumPy only for arrays).

Example:
    >>> hex(crc32c(b"123456789"))
    '0xe3069283'
    >>> unmask(mask(0x12345678)) == 0x12345678
    True
    >>> hex(mask(0))
    '0xa282ead8'
"""

from __future__ import annotations

import google_crc32c

__all__ = ["crc32c", "crc32c_extend", "mask", "unmask"]

_MASK_DELTA = 0xA282EAD8
_U32 = 0xFFFFFFFF


def crc32c(data) -> int:
    """CRC32C of bytes or of a C-contiguous NumPy array (no copy)."""
    return google_crc32c.value(_bytes_like(data))


def crc32c_extend(crc: int, data) -> int:
    """Continue ``crc`` over more bytes (running checksums of streamed data)."""
    return google_crc32c.extend(crc, _bytes_like(data))


def _bytes_like(data):
    if isinstance(data, bytes):
        return data  # the index's blocks and a counter's value: no NumPy needed
    import numpy as np

    if isinstance(data, np.ndarray):
        return data.reshape(-1).view(np.uint8) if data.size else b""
    if isinstance(data, memoryview):
        return np.frombuffer(data, np.uint8) if data.nbytes else b""
    return data


def mask(crc: int) -> int:
    """TensorFlow's masked form of a CRC (stored in tables and bundle entries)."""
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & _U32


def unmask(masked: int) -> int:
    rot = (masked - _MASK_DELTA) & _U32
    return ((rot >> 17) | (rot << 15)) & _U32
