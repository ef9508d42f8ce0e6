"""The ``.index`` of a TF bundle: its header and entries, read in one go, and the data shards it
promises, checked from one directory listing.

Example:
    >>> import numpy as np, tempfile, os
    >>> from ckptkit.converters.formats.tf1 import write_tf_checkpoint
    >>> prefix = write_tf_checkpoint(os.path.join(tempfile.mkdtemp(), "m"), [("w", np.zeros(2, np.float32))])
    >>> index = read_index(prefix + ".index")
    >>> index.header.num_shards, sorted(index.entries), shard_sizes(prefix, 1)
    (1, [b'w'], [8])
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

from ckptkit.converters.formats.tf1.messages import (
    BUNDLE_VERSION, ENDIAN_BIG, ENDIAN_LITTLE, BundleEntry, BundleHeader, decode_entry, decode_header,
)
from ckptkit.converters.formats.tf1.paths import data_file
from ckptkit.converters.formats.tf1.proto import ProtoError
from ckptkit.converters.formats.tf1.table import TableError, read_table
from ckptkit.errors import CheckpointNotFoundError, CorruptCheckpointError, UnsupportedFormatError

__all__ = ["BundleIndex", "read_index", "shard_sizes", "DAMAGED"]

DAMAGED = "the file is damaged or incomplete; copy it again"


@dataclass(frozen=True)
class BundleIndex:
    """The parsed ``.index``: the bundle header and every entry by raw key."""

    header: BundleHeader
    entries: dict[bytes, BundleEntry]


def read_index(index_path: str) -> BundleIndex:
    """Parse a ``.index`` file: the header and every entry, slice entries included.

    Raises:
        CorruptCheckpointError: the file is not a table or holds malformed entries.
    """
    with open(index_path, "rb") as f:
        data = f.read()
    current = b""
    try:
        table = read_table(data)
        if not table or table[0][0] != b"":
            raise TableError("no bundle header (the empty key) in the table")
        header = decode_header(table[0][1])
        entries, current = {}, b""
        for key, value in table[1:]:
            current = key
            entries[key] = decode_entry(value)
    except (TableError, ProtoError) as e:
        where = "" if isinstance(e, TableError) else f" (entry {current[:80]!r})"
        raise CorruptCheckpointError(f"not a valid checkpoint index: {e}{where}", path=index_path,
                                     hint=DAMAGED) from e
    _check_header(header, index_path)
    return BundleIndex(header, entries)


def _check_header(header: BundleHeader, path: str) -> None:
    if header.endianness not in (ENDIAN_LITTLE, ENDIAN_BIG):
        raise CorruptCheckpointError(f"unknown endianness {header.endianness} in the header", path=path)
    if header.min_consumer > BUNDLE_VERSION or BUNDLE_VERSION in header.bad_consumers:
        raise UnsupportedFormatError(f"bundle version needs a reader >= {header.min_consumer}", path=path,
                                     hint="written by a newer TensorFlow than ckptkit understands")
    if not 1 <= header.num_shards <= 1_000_000:
        raise CorruptCheckpointError(f"header claims {header.num_shards} shards", path=path, hint=DAMAGED)


def _check_shards_present(prefix: str, num_shards: int) -> None:
    """Fail fast, from one directory listing, when any data shard is missing: a damaged header may
    claim a million shards, and naming each before looking would take seconds."""
    directory, base = os.path.split(prefix)
    pattern = re.compile(re.escape(f"{base}.data-") + r"(\d{5,})" + re.escape(f"-of-{num_shards:05d}"))
    try:
        names = os.listdir(directory or ".")
    except OSError:
        return  # an unlistable folder: each shard is looked up by name instead
    present = {int(m.group(1)) for m in map(pattern.fullmatch, names) if m}
    if sum(1 for shard in present if shard < num_shards) != num_shards:
        missing = next(shard for shard in range(num_shards) if shard not in present)
        raise CheckpointNotFoundError(f"data shard {missing + 1} of {num_shards} is missing",
                                      path=data_file(prefix, missing, num_shards),
                                      hint="copy every .data-*-of-* file of the checkpoint")


def shard_sizes(prefix: str, num_shards: int) -> list[int]:
    """The size of every data shard of ``prefix``; a missing one is a one-line error naming it."""
    _check_shards_present(prefix, num_shards)
    sizes = []
    for shard in range(num_shards):
        name = data_file(prefix, shard, num_shards)
        try:
            sizes.append(os.path.getsize(name))
        except OSError as e:
            raise CheckpointNotFoundError(f"data shard {shard + 1} of {num_shards} is missing", path=name,
                                          hint="copy every .data-*-of-* file of the checkpoint") from e
    return sizes
