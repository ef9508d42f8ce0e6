"""The LevelDB-style sorted table that holds a bundle's ``.index``: read and write.

Layout (tensorflow/core/lib/io/format.cc, block_builder.cc, table_builder.cc): data blocks,
an empty metaindex block, an index block, a 48-byte footer. Each block is followed by a
compression byte and a masked CRC32C. Every length read from the file is checked against
what remains, so damaged input raises :class:`TableError` quickly and allocates little.

Example:
    >>> data = build_table([(b"", b"header"), (b"a", b"1"), (b"b", b"2")])
    >>> read_table(data)
    [(b'', b'header'), (b'a', b'1'), (b'b', b'2')]
    >>> read_table(build_table([(b"k", b"v" * 100)], snappy_blocks=True)) == [(b"k", b"v" * 100)]
    True
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

from ckptkit.converters.formats.tf1 import snappy
from ckptkit.converters.formats.tf1.checksum import crc32c, mask, unmask
from ckptkit.converters.formats.tf1.proto import ProtoError, decode_varint, encode_varint

__all__ = ["TableError", "TABLE_MAGIC", "FOOTER_SIZE", "read_table", "parse_block", "build_table",
           "is_table"]

TABLE_MAGIC = 0xDB4775248B80FB57
FOOTER_SIZE = 48
_TRAILER = 5
_BLOCK_SIZE = 262144  # TensorFlow's table options: flush a data block at 256 KiB
_DATA_RESTART_INTERVAL = 16
_NO_COMPRESSION, _SNAPPY = 0, 1
_DECOMPRESS = {_NO_COMPRESSION: bytes, _SNAPPY: snappy.decompress}


class TableError(ValueError):
    """Bytes that are not a well-formed table."""


# ---------------------------------------------------------------- reading

def is_table(data: bytes) -> bool:
    """Whether ``data`` ends with the table magic number."""
    return len(data) >= FOOTER_SIZE and struct.unpack_from("<Q", data, len(data) - 8)[0] == TABLE_MAGIC


def _handle(buf: bytes, pos: int, end: int) -> tuple[tuple[int, int], int]:
    offset, pos = decode_varint(buf, pos, end=end)
    size, pos = decode_varint(buf, pos, end=end)
    return (offset, size), pos


def _read_footer(data: bytes) -> tuple[int, int]:
    if len(data) < FOOTER_SIZE:
        raise TableError(f"file of {len(data)} bytes is shorter than a table footer ({FOOTER_SIZE})")
    if not is_table(data):
        raise TableError("no table magic number at the end of the file")
    start = len(data) - FOOTER_SIZE
    _, pos = _handle(data, start, start + 40)
    index, _ = _handle(data, pos, start + 40)
    return index


def _read_block(data: bytes, handle: tuple[int, int], limit: int) -> bytes:
    offset, size = handle
    if offset + size + _TRAILER > limit:
        raise TableError(f"block at {offset} (+{size}) runs past the table data ({limit} bytes)")
    raw = data[offset:offset + size + 1]
    stored = struct.unpack_from("<I", data, offset + size + 1)[0]
    if crc32c(raw) != unmask(stored):
        raise TableError(f"block checksum mismatch at byte {offset}")
    decompress = _DECOMPRESS.get(raw[-1])
    if decompress is None:
        raise TableError(f"unknown block compression type {raw[-1]} at byte {offset}")
    try:
        return decompress(raw[:-1])
    except snappy.SnappyError as e:
        raise TableError(f"bad snappy block at byte {offset}: {e}") from None


def parse_block(block: bytes) -> list[tuple[bytes, bytes]]:
    """The (key, value) entries of one block body (trailer removed), checked and bounded."""
    if len(block) < 4:
        raise TableError("block shorter than its restart count")
    num_restarts = struct.unpack_from("<I", block, len(block) - 4)[0]
    if num_restarts > (len(block) - 4) // 4:
        raise TableError(f"block claims {num_restarts} restart points, more than fit in it")
    end = len(block) - 4 - 4 * num_restarts
    entries, key, pos = [], b"", 0
    while pos < end:
        shared, pos = decode_varint(block, pos, end=end)
        non_shared, pos = decode_varint(block, pos, end=end)
        value_len, pos = decode_varint(block, pos, end=end)
        if shared > len(key) or non_shared + value_len > end - pos:
            raise TableError(f"block entry at byte {pos} runs past the block")
        key = key[:shared] + block[pos:pos + non_shared]
        pos += non_shared
        entries.append((key, block[pos:pos + value_len]))
        pos += value_len
    return entries


def read_table(data: bytes) -> list[tuple[bytes, bytes]]:
    """Every (key, value) of a table, in key order.

    Raises:
        TableError: if the bytes are not a table, are truncated, fail a checksum or are unsorted.
    """
    try:
        limit = len(data) - FOOTER_SIZE
        index = parse_block(_read_block(data, _read_footer(data), limit))
        entries: list[tuple[bytes, bytes]] = []
        for _, value in index:
            handle, pos = _handle(value, 0, len(value))
            entries += parse_block(_read_block(data, handle, limit))
    except ProtoError as e:
        raise TableError(str(e)) from None
    for (a, _), (b, _) in zip(entries, entries[1:]):
        if a >= b:
            raise TableError(f"keys out of order or repeated near {b[:60]!r}")
    return entries


# ---------------------------------------------------------------- writing

class _BlockBuilder:
    def __init__(self, restart_interval: int):
        self.interval = restart_interval
        self.reset()

    def reset(self) -> None:
        self.buffer, self.restarts, self.counter, self.last_key = bytearray(), [0], 0, b""

    @property
    def empty(self) -> bool:
        return not self.buffer

    def size_estimate(self) -> int:
        return len(self.buffer) + 4 * len(self.restarts) + 4

    def add(self, key: bytes, value: bytes) -> None:
        shared = 0
        if self.counter < self.interval:
            limit = min(len(key), len(self.last_key))
            while shared < limit and key[shared] == self.last_key[shared]:
                shared += 1
        else:
            self.restarts.append(len(self.buffer))
            self.counter = 0
        self.buffer += encode_varint(shared) + encode_varint(len(key) - shared) + encode_varint(len(value))
        self.buffer += key[shared:] + value
        self.last_key, self.counter = key, self.counter + 1

    def finish(self) -> bytes:
        return bytes(self.buffer) + b"".join(struct.pack("<I", r) for r in self.restarts) + \
            struct.pack("<I", len(self.restarts))


def _shortest_separator(start: bytes, limit: bytes) -> bytes:
    """A short key k with start <= k < limit (LevelDB's bytewise FindShortestSeparator)."""
    n = 0
    while n < min(len(start), len(limit)) and start[n] == limit[n]:
        n += 1
    if n < min(len(start), len(limit)) and start[n] < 0xFF and start[n] + 1 < limit[n]:
        return start[:n] + bytes([start[n] + 1])
    return start


def _short_successor(key: bytes) -> bytes:
    """A short key >= ``key`` (LevelDB's bytewise FindShortSuccessor)."""
    for i, byte in enumerate(key):
        if byte != 0xFF:
            return key[:i] + bytes([byte + 1])
    return key


def _with_trailer(body: bytes, snappy_blocks: bool = False) -> bytes:
    kind = bytes([_SNAPPY if snappy_blocks else _NO_COMPRESSION])
    stored = snappy.compress_literal(body) if snappy_blocks else body
    return stored + kind + struct.pack("<I", mask(crc32c(stored + kind)))


def _encode_handle(offset: int, size: int) -> bytes:
    return encode_varint(offset) + encode_varint(size)


def build_table(entries: Iterable[tuple[bytes, bytes]], *, snappy_blocks: bool = False) -> bytes:
    """A table holding ``entries`` (sorted, unique keys), laid out as TensorFlow lays it out.

    ``snappy_blocks`` stores every block as (literal-only) snappy, which TensorFlow also reads.
    """
    out = bytearray()
    data, index = _BlockBuilder(_DATA_RESTART_INTERVAL), _BlockBuilder(1)
    pending: tuple[int, int] | None = None
    last_key = None
    for key, value in entries:
        if last_key is not None and key <= last_key:
            raise ValueError(f"table keys must be sorted and unique: {key!r} after {last_key!r}")
        if pending is not None:
            index.add(_shortest_separator(last_key, key), _encode_handle(*pending))
            pending = None
        data.add(key, value)
        last_key = key
        if data.size_estimate() >= _BLOCK_SIZE:
            pending = _flush(out, data, snappy_blocks)
    if not data.empty:
        pending = _flush(out, data, snappy_blocks)
    if pending is not None:
        index.add(_short_successor(last_key), _encode_handle(*pending))
    meta_handle = _flush(out, _BlockBuilder(_DATA_RESTART_INTERVAL), snappy_blocks)
    index_handle = _flush(out, index, snappy_blocks)
    footer = _encode_handle(*meta_handle) + _encode_handle(*index_handle)
    out += footer.ljust(40, b"\0") + struct.pack("<Q", TABLE_MAGIC)
    return bytes(out)


def _flush(out: bytearray, block: _BlockBuilder, snappy_blocks: bool) -> tuple[int, int]:
    stored = _with_trailer(block.finish(), snappy_blocks)
    handle = (len(out), len(stored) - _TRAILER)
    out += stored
    block.reset()
    return handle
