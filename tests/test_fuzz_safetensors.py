"""safetensors input: ckptkit accepts a file exactly when the safetensors library does.

Hand-picked headers pin each rule (gaps, overlaps, duplicates, types, limits, overflow); a fuzzed
corpus (tests/fuzz_runner.py, CKPTKIT_FUZZ_CASES cases per target) checks that ckptkit's
open_safetensors and ``safetensors.safe_open(framework="numpy")`` agree on accept/reject, that
ckptkit refuses only with CkptkitError, and that accepted tensors read back the library's bytes.
The one allowed difference: a file the library accepts may hold a dtype ckptkit has no NumPy type
for (F4, F6_*, F8_E8M0, ...) or a shape NumPy cannot hold (over 64 dimensions, or dimensions
whose product passes 2**63-1 even beside a zero); ckptkit then refuses it with
UnsupportedFormatError naming the tensor.
"""

from __future__ import annotations

import functools
import json
import os
import struct

import numpy as np
import pytest

from ckptkit.converters.formats.safetensors_header import BITS
from ckptkit.converters.formats.safetensors_io import open_safetensors
from ckptkit.converters.memory import numpy_shape_problem
from ckptkit.converters.tensors import DTYPES
from ckptkit.errors import CkptkitError, CorruptCheckpointError, UnsupportedFormatError
from tests.fuzz_runner import Case, mutate_bytes, run_fuzz

CKPTKIT_CODES = {d.safetensors for d in DTYPES if d.safetensors}


class Raw(str):
    """A JSON token written as is (``1e400``, ``-0``, ``"\\ud800"``, ``NaN``)."""


class Obj(list):
    """A JSON object as (key, value) pairs, so a key may repeat."""


def dump(value) -> str:
    """JSON text of ``value``, with Raw tokens and Obj pairs (repeated keys) written as given."""
    if isinstance(value, Raw):
        return str(value)
    if isinstance(value, Obj):
        return "{" + ",".join(f"{dump(k) if isinstance(k, Raw) else json.dumps(k)}:{dump(v)}" for k, v in value) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(dump(v) for v in value) + "]"
    return json.dumps(value)


def file_bytes(header, data: bytes, *, length: int | None = None) -> bytes:
    text = (header if isinstance(header, (str, bytes)) else dump(header))
    raw = text.encode("utf-8", "surrogatepass") if isinstance(text, str) else text
    return struct.pack("<Q", len(raw) if length is None else length) + raw + data


def tensor(dtype: str, shape, begin: int, end: int) -> Obj:
    return Obj([("dtype", dtype), ("shape", list(shape)), ("data_offsets", [begin, end])])


def base_header() -> tuple[Obj, bytes]:
    """Several dtypes, a scalar, an empty tensor, a misaligned offset and metadata; data 0..59."""
    header = Obj([("__metadata__", Obj([("format", "pt")])),
                  ("w", tensor("F32", (2, 3), 0, 24)), ("b16", tensor("BF16", (4,), 24, 32)),
                  ("mask", tensor("BOOL", (3,), 32, 35)), ("step", tensor("I64", (), 35, 43)),
                  ("empty", tensor("U8", (0, 5), 43, 43)), ("h", tensor("F16", (2, 2), 43, 51)),
                  ("c", tensor("U8", (8,), 51, 59))])
    return header, bytes(range(1, 60))


def library_verdict(path: str) -> tuple[bool, object]:
    from safetensors import safe_open

    try:
        with safe_open(path, framework="numpy") as f:
            return True, (sorted(f.keys()), f.metadata())
    except Exception as e:  # noqa: BLE001 - any refusal of the library counts
        return False, e


def library_array(path: str, name: str):
    from safetensors import safe_open

    try:
        with safe_open(path, framework="numpy") as f:
            return f.get_tensor(name)
    except Exception:  # noqa: BLE001 - dtypes NumPy lacks (BF16, F8...): nothing to compare
        return None


def unsupported_by_ckptkit(path: str) -> bool:
    """Whether a header the library accepted names a dtype ckptkit lacks or over 64 dimensions."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    entries = [v for k, v in header.items() if k != "__metadata__"]
    entries = [dict(zip(("dtype", "shape", "data_offsets"), v)) if isinstance(v, list) else v for v in entries]
    dtypes = [e["dtype"] if isinstance(e["dtype"], str) else next(iter(e["dtype"])) for e in entries]
    if any(d not in CKPTKIT_CODES for d in dtypes):
        return True
    return any(numpy_shape_problem(tuple(e["shape"]), BITS[d] // 8) for e, d in zip(entries, dtypes))


def check_agreement(path: str) -> str:
    """Open ``path`` with both; raise AssertionError on any disagreement. Returns 'accepted'/'rejected'."""
    accepted, facts = library_verdict(path)
    try:
        ckpt = open_safetensors(path)
    except UnsupportedFormatError:
        assert not accepted or unsupported_by_ckptkit(path), "ckptkit refuses a supported file the library accepts"
        return "rejected"
    except CkptkitError as e:
        assert not accepted, f"ckptkit refuses what safetensors accepts: {e}"
        return "rejected"
    with ckpt:
        assert accepted, f"ckptkit accepts what safetensors refuses ({facts})"
        names, metadata = facts
        assert sorted(ckpt) == names and (ckpt.extras["metadata"] or None) == (metadata or None)
        for name, lazy in ckpt.items():
            ours, theirs = lazy.read(), library_array(path, name)
            assert ours.shape == lazy.shape
            if theirs is not None:
                assert ours.tobytes() == np.ascontiguousarray(theirs).tobytes() and ours.shape == theirs.shape, name
    return "accepted"


def write(tmp_path, content: bytes, name: str = "m.safetensors") -> str:
    path = os.path.join(tmp_path, name)
    with open(path, "wb") as f:
        f.write(content)
    return path


# ------------------------------------------------------------ each rule, by hand

U8 = '"dtype":"U8","shape":[1],"data_offsets":[0,1]'
RULES = {  # name: (header text, data, the library's verdict)
    "valid": ('{"a":{' + U8 + '}}', b"x", True),
    "leading and trailing whitespace": (' \n{"a":{' + U8 + '}}  \t', b"x", True),
    "gap before a tensor": ('{"a":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}', b"xy", False),
    "bytes after the last tensor": ('{"a":{' + U8 + '}}', b"xy", False),
    "overlap": ('{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},'
                '"b":{"dtype":"U8","shape":[1],"data_offsets":[1,2]}}', b"xy", False),
    "offsets past the end": ('{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]}}', b"xy", False),
    "reversed offsets": ('{"a":{"dtype":"U8","shape":[0],"data_offsets":[1,0]}}', b"x", False),
    "empty tensors share an offset": ('{"a":{"dtype":"U8","shape":[0],"data_offsets":[0,0]},'
                                      '"b":{' + U8 + '}}', b"x", True),
    "duplicate tensor: the last wins": ('{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]},"a":{' + U8 + '}}',
                                        b"x", True),
    "duplicate tensor: every entry must be valid": ('{"a":{"dtype":"XX","shape":[1],"data_offsets":[0,1]},'
                                                    '"a":{' + U8 + '}}', b"x", False),
    "duplicate field": ('{"a":{"dtype":"U8",' + U8 + '}}', b"x", False),
    "duplicate __metadata__": ('{"__metadata__":{},"__metadata__":{}}', b"", False),
    "metadata: a repeated key, the last wins": ('{"__metadata__":{"k":"1","k":"2"}}', b"", True),
    "metadata null": ('{"__metadata__":null}', b"", True),
    "metadata value an integer": ('{"__metadata__":{"k":1}}', b"", False),
    "metadata value null": ('{"__metadata__":{"k":null}}', b"", False),
    "metadata a list": ('{"__metadata__":["k"]}', b"", False),
    "dim a float": ('{"a":{"dtype":"U8","shape":[1.0],"data_offsets":[0,1]}}', b"x", False),
    "dim 1e0": ('{"a":{"dtype":"U8","shape":[1e0],"data_offsets":[0,1]}}', b"x", False),
    "dim -0": ('{"a":{"dtype":"U8","shape":[-0],"data_offsets":[0,0]}}', b"", False),
    "dim a string": ('{"a":{"dtype":"U8","shape":["1"],"data_offsets":[0,1]}}', b"x", False),
    "dim true": ('{"a":{"dtype":"U8","shape":[true],"data_offsets":[0,1]}}', b"x", False),
    "dim negative": ('{"a":{"dtype":"U8","shape":[-1],"data_offsets":[0,0]}}', b"", False),
    "dim 2**64-1 times 0": ('{"a":{"dtype":"U8","shape":[18446744073709551615,0],"data_offsets":[0,0]}}', b"", True),
    "dim 2**64": ('{"a":{"dtype":"U8","shape":[18446744073709551616,0],"data_offsets":[0,0]}}', b"", False),
    "count overflows before a zero dim": ('{"a":{"dtype":"U8","shape":[4294967296,4294967296,0],'
                                          '"data_offsets":[0,0]}}', b"", False),
    "zero dim first: no overflow": ('{"a":{"dtype":"U8","shape":[0,4294967296,4294967296],'
                                    '"data_offsets":[0,0]}}', b"", True),
    "bytes overflow int64 (once listed as 0 B)": ('{"a":{"dtype":"F64","shape":[2305843009213693952],'
                                                  '"data_offsets":[0,0]}}', b"", False),
    "three offsets": ('{"a":{"dtype":"U8","shape":[1],"data_offsets":[0,1,1]}}', b"x", False),
    "unknown field ignored": ('{"a":{' + U8 + ',"extra":{"q":[1,2,{"r":null}]}}}', b"x", True),
    "list form": ('{"a":["U8",[1],[0,1]]}', b"x", True),
    "list form, four items": ('{"a":["U8",[1],[0,1],0]}', b"x", False),
    "dtype as a unit variant map": ('{"a":{"dtype":{"U8":null},"shape":[1],"data_offsets":[0,1]}}', b"x", True),
    "dtype lower case": ('{"a":{"dtype":"u8","shape":[1],"data_offsets":[0,1]}}', b"x", False),
    "tensor null": ('{"a":null}', b"", False),
    "not an object": ('[]', b"", False),
    "NaN": ('{"a":{' + U8 + ',"z":NaN}}', b"x", False),
    "number out of double range": ('{"a":{' + U8 + ',"z":1e400}}', b"x", False),
    "300-digit integer": ('{"a":{' + U8 + ',"z":' + "9" * 300 + '}}', b"x", True),
    "5000-digit integer": ('{"a":{' + U8 + ',"z":' + "9" * 5000 + '}}', b"x", False),
    "unpaired surrogate": ('{"a":{' + U8 + ',"z":"\\ud800"}}', b"x", False),
    "paired surrogates": ('{"\\ud83d\\ude00":{' + U8 + '}}', b"x", True),
    "control character": ('{"a":{' + U8 + ',"z":"\x01"}}', b"x", False),
    "byte order mark": ('\ufeff{}', b"", False),
    "nested 127 levels": ('{"a":{' + U8 + ',"z":' + "[" * 125 + "]" * 125 + '}}', b"x", True),
    "nested 128 levels": ('{"a":{' + U8 + ',"z":' + "[" * 126 + "]" * 126 + '}}', b"x", False),
    "not UTF-8": (b'{"\xff":{' + U8.encode() + b'}}', b"x", False),
    "sub-byte dtype, whole bytes": ('{"a":{"dtype":"F4","shape":[2],"data_offsets":[0,1]}}', b"x", True),
    "sub-byte dtype, half a byte": ('{"a":{"dtype":"F4","shape":[1],"data_offsets":[0,1]}}', b"x", False),
}


@pytest.mark.parametrize("rule", sorted(RULES))
def test_each_rule_as_the_library_decides(tmp_path, rule):
    header, data, library_accepts = RULES[rule]
    path = write(tmp_path, file_bytes(header, data))
    assert library_verdict(path)[0] is library_accepts  # the rule is what the library does today
    assert check_agreement(path) == ("accepted" if library_accepts and not unsupported_by_ckptkit(path)
                                     else "rejected")


@pytest.mark.parametrize("length,library_accepts", [(100_000_001, False), (2**64 - 1, False), (10**8, False)])
def test_header_length_limits(tmp_path, length, library_accepts):
    path = write(tmp_path, file_bytes("{}", b"", length=length))
    assert library_verdict(path)[0] is library_accepts
    with pytest.raises(CorruptCheckpointError, match="header length"):
        open_safetensors(path)


def test_header_size_limit_is_the_librarys(tmp_path):
    """100,000,000 bytes is the limit (ckptkit once allowed 100 MiB = 104,857,600)."""
    for size, accepted in ((100_000_000, True), (100_000_001, False)):
        path = write(tmp_path, file_bytes("{}" + " " * (size - 2), b""))
        assert library_verdict(path)[0] is accepted
        assert check_agreement(path) == ("accepted" if accepted else "rejected")
        os.remove(path)


def test_overflowing_shape_is_one_clean_error(tmp_path):
    """Once listed as "0 B", then a traceback: now refused at open, naming the tensor."""
    header = '{"w":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,0]}}'
    path = write(tmp_path, file_bytes(header, b""))
    with pytest.raises(CorruptCheckpointError, match="'w'.*overflows 64 bits"):
        open_safetensors(path)


def test_unsupported_dtype_and_rank_name_the_tensor(tmp_path):
    path = write(tmp_path, file_bytes('{"q":{"dtype":"F8_E8M0","shape":[1],"data_offsets":[0,1]}}', b"x"))
    with pytest.raises(UnsupportedFormatError, match="'q'.*F8_E8M0"):
        open_safetensors(path)
    path = write(tmp_path, file_bytes('{"r":{"dtype":"U8","shape":' + json.dumps([1] * 65) +
                                      ',"data_offsets":[0,1]}}', b"x"))
    assert library_verdict(path)[0]
    with pytest.raises(UnsupportedFormatError, match="'r': 65 dimensions"):
        open_safetensors(path)


def test_every_library_dtype_code_is_known():
    from safetensors import safe_open  # noqa: F401 - the library whose codes BITS mirrors

    assert CKPTKIT_CODES <= set(BITS)


# ------------------------------------------------------------ fuzzed headers, in a guarded child

def _nested(rng) -> Raw:
    levels = rng.choice([124, 125, 126, 127])  # around serde_json's limit, under the header's two levels
    return Raw("[" * levels + "]" * levels)


def _wild_value(rng, depth: int = 0):
    pick = rng.randrange(16 if depth < 2 else 11)
    simple = [0, 1, 2, 3, 8, 24, 59, 64, 2**32, 2**63, 2**64 - 1, 2**64, -1]
    table = [
        lambda: rng.choice(simple), lambda: Raw(rng.choice(["-0", "1.0", "1e0", "1e400", "9" * 30, "NaN", "2.5"])),
        lambda: rng.choice(["F32", "U8", "I64", "F4", "F8_E8M0", "E8M0", "f32", "", "3"]),
        lambda: None, lambda: rng.choice([True, False]),
        lambda: Raw(rng.choice(['"\\ud800"', '"\\udfff x"', '"\\ud83d\\ude00"', '"\\u0000"'])),
        lambda: [rng.choice(simple) for _ in range(rng.choice([0, 1, 2, 3, 65]))],
        lambda: [0, rng.choice(simple)], lambda: [rng.choice(simple), rng.choice(simple), 1],
        lambda: _nested(rng),
        lambda: Obj([("F32", None)]),
        lambda: [_wild_value(rng, depth + 1) for _ in range(rng.randint(0, 3))],
        lambda: Obj([(rng.choice(["dtype", "shape", "data_offsets", "k", "x"]), _wild_value(rng, depth + 1))
                     for _ in range(rng.randint(0, 3))]),
        lambda: [rng.choice(["U8", "F32"]), [rng.randrange(4)], [0, rng.randrange(8)]],
        lambda: Obj([("k", _wild_value(rng, depth + 1))]),
        lambda: "x" * rng.randrange(50),
    ]
    return table[pick]()


def _mutate_header(header: Obj, rng) -> Obj:
    header = Obj((k, Obj(v) if isinstance(v, Obj) else v) for k, v in header)
    index = rng.randrange(len(header))
    key, value = header[index]
    kind = rng.randrange(9)
    if kind == 0:  # one field of one entry gets a wild value
        if isinstance(value, Obj) and value:
            j = rng.randrange(len(value))
            value[j] = (value[j][0], _wild_value(rng))
        else:
            header[index] = (key, _wild_value(rng))
    elif kind == 1 and isinstance(value, Obj) and key != "__metadata__":  # offsets nudged: gap, overlap, past end
        fields = dict(value)
        begin, end = fields["data_offsets"] if isinstance(fields.get("data_offsets"), list) and \
            len(fields["data_offsets"]) == 2 else (0, 0)
        shift = rng.choice([-2, -1, 1, 2, 8])
        fields["data_offsets"] = [max(0, begin + shift), max(0, end + rng.choice([0, shift]))] \
            if isinstance(begin, int) and isinstance(end, int) else [0, 0]
        header[index] = (key, Obj(fields.items()))
    elif kind == 2:  # repeated key
        header.insert(rng.randrange(len(header) + 1), (key, _wild_value(rng) if rng.random() < 0.5 else value))
    elif kind == 3 and isinstance(value, Obj):  # repeated or missing field, unknown field
        choice = rng.randrange(3)
        if choice == 0 and value:
            value.append(rng.choice(value))
        elif choice == 1 and value:
            del value[rng.randrange(len(value))]
        else:
            value.append((rng.choice(["extra", "\\ud800", "shape2"]), _wild_value(rng)))
    elif kind == 4:  # a tensor renamed (to __metadata__ sometimes) or removed
        if rng.random() < 0.5:
            header[index] = (rng.choice(["__metadata__", "", "w", "a/b", Raw('"\\ud800"')]), value)
        else:
            del header[index]
    elif kind == 5 and isinstance(value, Obj) and key != "__metadata__":  # list form
        header[index] = (key, [v for _, v in value][:rng.choice([2, 3, 3, 4])])
    elif kind == 6:  # metadata values
        header.insert(0, ("__metadata__", rng.choice([None, Obj([("k", _wild_value(rng))]), _wild_value(rng)])))
    elif kind == 7 and isinstance(value, Obj) and key != "__metadata__":  # shape changed, offsets kept
        fields = dict(value)
        fields["shape"] = rng.choice([[], [0], [3], [2, 3], [2**32, 2**32, 0], [0, 2**32, 2**32], [2**61], [1] * 65])
        header[index] = (key, Obj(fields.items()))
    else:
        header.append((f"t{rng.randrange(9)}", tensor(rng.choice(["F32", "U8", "F4"]), [rng.randrange(3)],
                                                      59, 59 + rng.randrange(9))))
    return header


def safetensors_header_cases(workdir: str, rng):
    """Mutated headers (structural edits, raw text edits), data sections and length prefixes."""
    header, data = base_header()
    path = os.path.join(workdir, "m.safetensors")
    while True:
        mutated = header
        for _ in range(rng.randint(1, 3)):
            mutated = _mutate_header(mutated, rng)
        text = dump(mutated).encode("utf-8", "surrogatepass")
        how = rng.random()
        if how < 0.25:
            text = mutate_bytes(text, rng)
        body, length = data, None
        if how > 0.85:
            body = mutate_bytes(data, rng)
        elif how > 0.8:
            length = rng.choice([0, 1, len(text) - 1, len(text) + 1, 100_000_001, 2**63, 2**64 - 1])
        if rng.random() < 0.05:
            text = rng.choice([b" ", b"\n"]) + text + b" " * rng.randrange(8)
        content = file_bytes(text, body, length=length)
        yield Case(functools.partial(_agreement_case, path, content), f"file bytes: {content[:3000]!r}")


def _agreement_case(path: str, content: bytes) -> None:
    with open(path, "wb") as f:
        f.write(content)
    if check_agreement(path) == "rejected":
        raise CkptkitError("refused, as the library does")  # counted as a rejection by the runner


def test_fuzzed_headers_agree_with_the_library():
    summary = run_fuzz("tests.test_fuzz_safetensors:safetensors_header_cases")
    assert summary["accepted"] > summary["cases"] // 50 and summary["rejected"] > summary["cases"] // 4


# ------------------------------------------------------------ sharded: the index json

def _sharded_folder(folder: str) -> dict:
    shard_a = Obj([("w", tensor("F32", (2,), 0, 8))])
    shard_b = Obj([("v", tensor("U8", (3,), 0, 3)), ("u", tensor("U8", (1,), 3, 4))])
    for name, header, data in (("a.safetensors", shard_a, bytes(8)), ("b.safetensors", shard_b, b"xyzw")):
        with open(os.path.join(folder, name), "wb") as f:
            f.write(file_bytes(header, data))
    return {"metadata": {"total_size": 12}, "weight_map": {"w": "a.safetensors", "v": "b.safetensors",
                                                           "u": "b.safetensors"}}


_SHARD_NAMES = ["a.safetensors", "b.safetensors", "", ".", "..", "../a.safetensors", "/etc/passwd", "a\x00b",
                "sub/../a.safetensors", "x" * 5000, "missing.safetensors", "a.safetensors\x00", "\udc80",
                "model.safetensors.index.json"]


def _mutate_index(index: dict, rng) -> str:
    index = json.loads(json.dumps(index))
    kind = rng.randrange(6)
    weight_map = index["weight_map"]
    if kind == 0:
        weight_map[rng.choice(sorted(weight_map))] = rng.choice(_SHARD_NAMES + [None, 3, [], {}, True, 1.5])
    elif kind == 1:
        index["weight_map"] = rng.choice([None, [], "a.safetensors", 7, {}, {"w": {"a": 1}}])
    elif kind == 2:
        del index[rng.choice(sorted(index))]
    elif kind == 3:
        weight_map[rng.choice(["new", "", "\x00", "w2"])] = rng.choice(_SHARD_NAMES)
    elif kind == 4:
        index = rng.choice([[], None, 5, "x", {"weight_map": index}])
    text = json.dumps(index, ensure_ascii=rng.random() < 0.5)
    if kind == 5:
        text = rng.choice(["[" * 100_000, '{"weight_map": ' + "9" * 5000 + "}", '{"weight_map": NaN}',
                           '{"weight_map": {"w": "a.safetensors"}, "weight_map": {}}', text])
    return text


def index_json_cases(workdir: str, rng):
    """Mutated model.safetensors.index.json beside two valid shards: raw and structural edits."""
    index = _sharded_folder(workdir)
    path = os.path.join(workdir, "model.safetensors.index.json")
    while True:
        text = _mutate_index(index, rng).encode("utf-8", "surrogatepass")
        if rng.random() < 0.4:
            text = mutate_bytes(text, rng)
        yield Case(functools.partial(_index_case, path, text), f"index json: {text[:3000]!r}")


def _index_case(path: str, text: bytes) -> None:
    with open(path, "wb") as f:
        f.write(text)
    with open_safetensors(path) as ckpt:
        for lazy in ckpt.values():
            lazy.read()


def test_fuzzed_index_json_gives_only_our_errors():
    summary = run_fuzz("tests.test_fuzz_safetensors:index_json_cases")
    assert summary["rejected"] > summary["cases"] // 2
