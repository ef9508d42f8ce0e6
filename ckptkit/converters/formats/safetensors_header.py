"""Check a safetensors header exactly as the ``safetensors`` library does, before trusting it.

ckptkit accepts a file exactly when ``safetensors.safe_open`` does (tests/test_fuzz_safetensors.py
checks this on thousands of mutated headers). The rules:

- the first 8 bytes are the header length ``n`` (little-endian), at most 100,000,000, and the
  header fits in the file;
- the header is UTF-8 JSON (RFC 8259: no ``NaN``/``Infinity``, no unpaired surrogate escape,
  nesting at most 127 levels, every number within the range of a double);
- it is an object. ``"__metadata__"`` appears at most once and is null or an object of strings
  (a key repeated inside it: the last value wins). Every other key is a tensor, given as an object
  whose ``dtype``, ``shape`` and ``data_offsets`` each appear once (other fields are ignored), or
  as the list ``[dtype, shape, data_offsets]``; a tensor named twice keeps its last entry, but
  every entry must be valid;
- ``dtype`` is a safetensors code (``"F32"``, or ``{"F32": null}``), ``shape`` a list of integers
  in 0..2**64-1, ``data_offsets`` two such integers;
- sorted by offsets, the tensors tile the data section exactly: no gap, no overlap, nothing after
  the last one; each tensor's element count times its bits per element, multiplied left to right
  without passing 2**64, is a whole number of bytes equal to ``end - begin``.

Example:
    >>> header = b'{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}'
    >>> parse_header(header, data_len=8, path="m.safetensors")
    (None, {'w': ('F32', (2,), (0, 8))})
    >>> parse_header(header, data_len=12, path="m.safetensors")
    Traceback (most recent call last):
    ...
    ckptkit.errors.CorruptCheckpointError: m.safetensors: the tensors cover bytes 0..8 of a data section of 12 bytes (the file is truncated or not valid safetensors)
"""

from __future__ import annotations

import json
import math
import re

from ckptkit.errors import CorruptCheckpointError

__all__ = ["parse_header", "check_header_length", "BITS", "MAX_HEADER", "HEADER_HINT"]

MAX_HEADER = 100_000_000  # the library's limit, in bytes
HEADER_HINT = "the file is truncated or not valid safetensors"
_MAX_DEPTH = 127  # serde_json refuses the 128th nested array or object
_U64_MAX = (1 << 64) - 1
_FIELDS = ("dtype", "shape", "data_offsets")
_SURROGATE = re.compile("[\ud800-\udfff]")

# Bits per element of every dtype code the library knows (ckptkit reads those in its dtype table).
BITS: dict[str, int] = {
    "BOOL": 8, "F4": 4, "F6_E2M3": 6, "F6_E3M2": 6, "U8": 8, "I8": 8, "F8_E5M2": 8, "F8_E4M3": 8,
    "F8_E8M0": 8, "F8_E4M3FNUZ": 8, "F8_E5M2FNUZ": 8, "I16": 16, "U16": 16, "F16": 16, "BF16": 16,
    "I32": 32, "U32": 32, "F32": 32, "C64": 64, "F64": 64, "I64": 64, "U64": 64,
}

TensorEntry = tuple[str, tuple[int, ...], tuple[int, int]]  # (dtype code, shape, (begin, end))


class _Pairs(list):
    """A JSON object as its (key, value) pairs in file order, repeated keys kept."""


class _Invalid(ValueError):
    pass


def _parse_int(text: str):
    return -0.0 if text == "-0" else int(text)  # serde_json reads -0 as a float


def _refuse_constant(text: str):
    raise _Invalid(f"{text} is not JSON")


def check_header_length(n: int, file_size: int, path: str) -> None:
    """Refuse a header length over the library's limit or past the end of the file."""
    if n > MAX_HEADER:
        raise CorruptCheckpointError(f"header length {n} exceeds the safetensors limit of {MAX_HEADER:,} bytes",
                                     path=path, hint=HEADER_HINT)
    if 8 + n > file_size:
        raise CorruptCheckpointError(f"header length {n} exceeds the file ({file_size} bytes)", path=path,
                                     hint=HEADER_HINT)


def _load_json(raw: bytes) -> object:
    text = raw.decode("utf-8")
    try:
        document = json.loads(text, object_pairs_hook=_Pairs, parse_int=_parse_int, parse_constant=_refuse_constant)
    except RecursionError:
        raise _Invalid(f"nested deeper than {_MAX_DEPTH} levels") from None
    _check_values(document)
    return document


def _check_values(document: object) -> None:
    """Depth, strings and numbers everywhere: the library parses every value, used or not."""
    stack = [(document, 0)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, list):
            if depth + 1 > _MAX_DEPTH:
                raise _Invalid(f"nested deeper than {_MAX_DEPTH} levels")
            items = (x for pair in value for x in pair) if isinstance(value, _Pairs) else value
            stack.extend((item, depth + 1) for item in items)
        elif isinstance(value, str) and _SURROGATE.search(value):
            raise _Invalid(f"unpaired surrogate escape in {value.encode('utf-8', 'backslashreplace')[:40]!r}")
        elif isinstance(value, float) and not math.isfinite(value) \
                or isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 1024:
            raise _Invalid("a number out of the range of a double")


def _u64(value: object, what: str) -> int:
    if type(value) is not int or not 0 <= value <= _U64_MAX:
        raise _Invalid(f"{what} is {value!r}, not an integer in 0..2**64-1")
    return value


def _u64_list(value: object, what: str) -> tuple[int, ...]:
    if not isinstance(value, list) or isinstance(value, _Pairs):
        raise _Invalid(f"{what} is not a list")
    return tuple(_u64(v, what) for v in value)


def _dtype(value: object, name: str) -> str:
    if isinstance(value, _Pairs) and len(value) == 1 and value[0][1] is None:
        value = value[0][0]  # {"F32": null}: serde's spelling of a unit variant
    if not isinstance(value, str) or value not in BITS:
        raise _Invalid(f"tensor {name!r} has an unknown dtype {value!r}")
    return value


def _tensor_fields(name: str, value: object) -> dict:
    if isinstance(value, _Pairs):
        fields: dict = {}
        for key, item in value:
            if key in _FIELDS:
                if key in fields:
                    raise _Invalid(f"tensor {name!r} gives {key!r} twice")
                fields[key] = item
        missing = [f for f in _FIELDS if f not in fields]
        if missing:
            raise _Invalid(f"tensor {name!r} has no {missing[0]!r}")
        return fields
    if isinstance(value, list) and len(value) == len(_FIELDS):
        return dict(zip(_FIELDS, value))
    raise _Invalid(f"tensor {name!r} is not an object with dtype, shape and data_offsets")


def _tensor(name: str, value: object) -> TensorEntry:
    fields = _tensor_fields(name, value)
    dtype = _dtype(fields["dtype"], name)
    shape = _u64_list(fields["shape"], f"a dimension of tensor {name!r}")
    offsets = _u64_list(fields["data_offsets"], f"an offset of tensor {name!r}")
    if len(offsets) != 2:
        raise _Invalid(f"tensor {name!r} has {len(offsets)} data_offsets, not 2")
    return dtype, shape, (offsets[0], offsets[1])


def _metadata(value: object) -> dict[str, str] | None:
    if value is None:
        return None
    if not isinstance(value, _Pairs) or not all(isinstance(v, str) for _, v in value):
        raise _Invalid("__metadata__ is not an object of strings")
    return dict(value)


def _entries(document: object) -> tuple[dict[str, str] | None, dict[str, TensorEntry]]:
    if not isinstance(document, _Pairs):
        raise _Invalid("the header is not a JSON object")
    metadata, tensors, seen_metadata = None, {}, False
    for key, value in document:
        if key == "__metadata__":
            if seen_metadata:
                raise _Invalid("__metadata__ appears twice")
            metadata, seen_metadata = _metadata(value), True
        else:
            tensors[key] = _tensor(key, value)
    return metadata, tensors


def _nbytes(name: str, dtype: str, shape: tuple[int, ...]) -> int:
    count = 1
    for dim in shape:
        count *= dim
        if count > _U64_MAX:
            raise _Invalid(f"tensor {name!r}: the element count of shape {list(shape)} overflows 64 bits")
    bits = count * BITS[dtype]
    if bits > _U64_MAX:
        raise _Invalid(f"tensor {name!r}: the size of shape {list(shape)} {dtype} overflows 64 bits")
    if bits % 8:
        raise _Invalid(f"tensor {name!r}: {list(shape)} {dtype} is not a whole number of bytes")
    return bits // 8


def _check_layout(tensors: dict[str, TensorEntry], data_len: int) -> None:
    start = 0
    for name, (dtype, shape, (begin, end)) in sorted(tensors.items(), key=lambda item: item[1][2]):
        if begin != start or end < begin:
            raise _Invalid(f"tensor {name!r} claims bytes {begin}..{end} where the next tensor must start at "
                           f"{start} (gap or overlap)")
        start = end
        if end - begin != _nbytes(name, dtype, shape):
            raise _Invalid(f"tensor {name!r} claims bytes {begin}..{end} ({end - begin}) for shape {list(shape)} "
                           f"{dtype} ({_nbytes(name, dtype, shape)} bytes)")
    if start != data_len:
        raise _Invalid(f"the tensors cover bytes 0..{start} of a data section of {data_len} bytes")


def parse_header(raw: bytes, *, data_len: int, path: str) -> tuple[dict[str, str] | None, dict[str, TensorEntry]]:
    """The ``__metadata__`` (or None) and ``{name: (dtype code, shape, (begin, end))}`` of a header.

    Args:
        raw: the ``n`` header bytes after the length prefix.
        data_len: the size of the data section (file size - 8 - n).
        path: the file, for messages.

    Raises:
        CorruptCheckpointError: whenever the safetensors library would refuse the file.
    """
    try:
        metadata, tensors = _entries(_load_json(raw))
        _check_layout(tensors, data_len)
    except UnicodeDecodeError as e:
        raise CorruptCheckpointError(f"header is not UTF-8 ({e.reason} at byte {e.start})", path=path,
                                     hint=HEADER_HINT) from None
    except json.JSONDecodeError as e:
        raise CorruptCheckpointError(f"header is not valid JSON ({e})", path=path, hint=HEADER_HINT) from None
    except _Invalid as e:
        raise CorruptCheckpointError(str(e), path=path, hint=HEADER_HINT) from None
    except ValueError as e:  # an integer too long for Python's int()
        raise CorruptCheckpointError(f"header is not valid JSON ({e})", path=path, hint=HEADER_HINT) from None
    return metadata, tensors
