"""The protobuf messages of a TF bundle index: BundleHeaderProto and BundleEntryProto.

Fields follow tensorflow/core/protobuf/tensor_bundle.proto. Encoding is canonical
(field order, proto3 defaults omitted, ``shape`` always present) so that what we write is
byte-identical to TensorFlow's.

Example:
    >>> entry = BundleEntry(dtype=1, shape=(2, 3), shard_id=0, offset=0, size=24, crc32c=1)
    >>> decode_entry(encode_entry(entry)) == entry
    True
    >>> encode_header(BundleHeader(num_shards=1)).hex()
    '08011a020801'
"""

from __future__ import annotations

from dataclasses import dataclass

from ckptkit.converters.formats.tf1.proto import (
    ProtoError, as_int64, field_bytes, field_fixed32, field_varint, first, parse_fields,
)

__all__ = ["BundleHeader", "BundleEntry", "Extent", "encode_header", "decode_header", "encode_entry",
           "decode_entry", "ENDIAN_LITTLE", "ENDIAN_BIG", "BUNDLE_VERSION", "OBJECT_GRAPH_KEY"]

ENDIAN_LITTLE, ENDIAN_BIG = 0, 1
BUNDLE_VERSION = 1  # tensor_bundle.h kTensorBundleVersion; we read producers up to this consumer
OBJECT_GRAPH_KEY = "_CHECKPOINTABLE_OBJECT_GRAPH"  # the key of a TF2 bundle's object graph (object_graph.py)

# One slice dimension: (start, length), or None for "the whole dimension".
Extent = tuple[int, int] | None


@dataclass(frozen=True)
class BundleHeader:
    """The bundle's header: shard count, byte order, and the versions that may read it."""

    num_shards: int = 1
    endianness: int = ENDIAN_LITTLE
    producer: int = BUNDLE_VERSION
    min_consumer: int = 0
    bad_consumers: tuple[int, ...] = ()


@dataclass(frozen=True)
class BundleEntry:
    """Where one tensor's bytes are. ``slices`` is set only on a partitioned variable's full entry."""

    dtype: int
    shape: tuple[int, ...]
    shard_id: int = 0
    offset: int = 0
    size: int = 0
    crc32c: int = 0
    slices: tuple[tuple[Extent, ...], ...] = ()
    unknown_rank: bool = False


def _encode_version(h: BundleHeader) -> bytes:
    out = b""
    if h.producer:
        out += field_varint(1, h.producer)
    if h.min_consumer:
        out += field_varint(2, h.min_consumer)
    return out + b"".join(field_varint(3, c) for c in h.bad_consumers)


def encode_header(header: BundleHeader) -> bytes:
    """Serialize a header exactly as TensorFlow does."""
    out = field_varint(1, header.num_shards) if header.num_shards else b""
    if header.endianness:
        out += field_varint(2, header.endianness)
    return out + field_bytes(3, _encode_version(header))


def decode_header(buf: bytes) -> BundleHeader:
    """Parse a BundleHeaderProto (raises ProtoError)."""
    f = parse_fields(buf)
    version = parse_fields(first(f, 3, b"", bytes))
    return BundleHeader(num_shards=as_int64(first(f, 1, 0)), endianness=first(f, 2, 0),
                        producer=as_int64(first(version, 1, 0)), min_consumer=as_int64(first(version, 2, 0)),
                        bad_consumers=tuple(as_int64(v) for v in version.get(3, []) if isinstance(v, int)))


def _encode_shape(shape: tuple[int, ...], unknown_rank: bool) -> bytes:
    dims = b"".join(field_bytes(2, field_varint(1, d) if d else b"") for d in shape)
    return dims + (field_varint(3, 1) if unknown_rank else b"")


def _encode_slice(extents: tuple[Extent, ...]) -> bytes:
    def extent(e: Extent) -> bytes:
        if e is None:
            return b""
        start, length = e
        return (field_varint(1, start) if start else b"") + field_varint(2, length)  # length is a oneof
    return b"".join(field_bytes(1, extent(e)) for e in extents)


def encode_entry(entry: BundleEntry) -> bytes:
    """Serialize a BundleEntryProto exactly as TensorFlow does (``shape`` always present)."""
    parts = [field_varint(1, entry.dtype) if entry.dtype else b"",
             field_bytes(2, _encode_shape(entry.shape, entry.unknown_rank)),
             field_varint(3, entry.shard_id) if entry.shard_id else b"",
             field_varint(4, entry.offset) if entry.offset else b"",
             field_varint(5, entry.size) if entry.size else b"",
             field_fixed32(6, entry.crc32c) if entry.crc32c else b""]
    parts += [field_bytes(7, _encode_slice(s)) for s in entry.slices]
    return b"".join(parts)


def _decode_extent(buf: bytes) -> Extent:
    f = parse_fields(buf)
    if 2 not in f:
        return None
    return as_int64(first(f, 1, 0)), as_int64(first(f, 2, 0))


def _decode_shape(buf: bytes) -> tuple[tuple[int, ...], bool]:
    f = parse_fields(buf)
    dims = tuple(as_int64(first(parse_fields(_as_bytes(d)), 1, 0)) for d in f.get(2, []))
    return dims, bool(first(f, 3, 0))


def _as_bytes(value) -> bytes:
    if not isinstance(value, bytes):
        raise ProtoError("a message field has the wrong wire type")
    return value


def decode_entry(buf: bytes) -> BundleEntry:
    """Parse a BundleEntryProto (raises ProtoError)."""
    f = parse_fields(buf)
    shape, unknown_rank = _decode_shape(first(f, 2, b"", bytes))
    slices = tuple(tuple(_decode_extent(_as_bytes(e)) for e in parse_fields(_as_bytes(s)).get(1, []))
                   for s in f.get(7, []))
    return BundleEntry(dtype=first(f, 1, 0), shape=shape, shard_id=as_int64(first(f, 3, 0)),
                       offset=as_int64(first(f, 4, 0)), size=as_int64(first(f, 5, 0)),
                       crc32c=first(f, 6, 0) & 0xFFFFFFFF, slices=slices, unknown_rank=unknown_rank)
