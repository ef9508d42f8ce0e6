"""Training-text files as *pieces*: byte ranges of text/jsonl files and row groups of parquet files.

A piece is the unit of sharding, packing, resuming and teacher caching. The pieces of a corpus
depend only on its files and ``piece_bytes``, never on how many processes read them, so the
examples (and their ids) are the same on 1 process or on ranks x dataloader workers.

A byte range ``[start, stop)`` owns the lines that *begin* inside it: its reader skips the partial
line at ``start`` and reads on past ``stop`` to finish the last line it began. Every line belongs
to exactly one piece.

Example:
    >>> files = list_data_files(["corpus/"])  # doctest: +SKIP
    >>> pieces = plan_pieces(files, piece_bytes=8 << 20)  # doctest: +SKIP
    >>> texts = list(read_piece(pieces[0], text_field="text"))  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

from ckptkit.errors import CheckpointNotFoundError, CorruptCheckpointError, UsageError

__all__ = ["DataFile", "Piece", "KINDS", "list_data_files", "plan_pieces", "read_piece", "files_fingerprint",
           "DEFAULT_PIECE_BYTES", "auto_piece_bytes"]

# file suffix -> how it is read (a file named on the command line with another suffix is plain text)
KINDS: dict[str, str] = {".txt": "text", ".text": "text", ".jsonl": "jsonl", ".ndjson": "jsonl",
                         ".parquet": "parquet"}
DEFAULT_PIECE_BYTES = 8 << 20     # the largest piece: a 10 GB corpus is 1,280 pieces
MIN_PIECE_BYTES = 4 << 10
PIECES_WANTED = 256                # a small corpus is still cut into enough pieces for ranks x workers


@dataclass(frozen=True)
class DataFile:
    """One training file: its path, kind (text, jsonl, parquet), size and modification time."""

    path: str
    kind: str
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class Piece:
    """``index``: position in the corpus; ``start``/``stop``: a byte range, or a parquet row group (stop=start+1)."""

    index: int
    path: str
    kind: str
    start: int
    stop: int


def _data_file(path: Path, kind: str) -> DataFile:
    stat = path.stat()
    return DataFile(str(path), kind, stat.st_size, stat.st_mtime_ns)


def list_data_files(paths: Sequence[str | os.PathLike]) -> list[DataFile]:
    """The files behind ``paths``: files as given, folders searched recursively for .txt/.jsonl/.parquet.

    Example:
        >>> list_data_files(["/nonexistent.txt"])
        Traceback (most recent call last):
        ...
        ckptkit.errors.CheckpointNotFoundError: /nonexistent.txt: training data not found (check the path)
    """
    found: list[DataFile] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            inside = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in KINDS
                            and not any(part.startswith(".") for part in p.relative_to(path).parts))
            if not inside:
                raise UsageError("folder holds no .txt, .jsonl or .parquet files", path=path)
            found += [_data_file(p, KINDS[p.suffix.lower()]) for p in inside]
        elif path.is_file():
            found.append(_data_file(path, KINDS.get(path.suffix.lower(), "text")))
        else:
            raise CheckpointNotFoundError("training data not found", path=path, hint="check the path")
    return found


def _parquet_row_groups(file: DataFile) -> int:
    import pyarrow.parquet as pq

    try:
        return pq.ParquetFile(file.path).metadata.num_row_groups
    except Exception as e:  # pyarrow raises ArrowInvalid/OSError for a damaged or foreign file
        raise CorruptCheckpointError(f"not a readable parquet file ({str(e).splitlines()[0][:120]})",
                                     path=file.path, hint="write it again, or pass a .txt/.jsonl file") from e


def auto_piece_bytes(files: Sequence[DataFile]) -> int:
    """The piece size for ``files``: about 256 pieces of text, between 4 KiB and 8 MiB each.

    Example:
        >>> auto_piece_bytes([DataFile("a.txt", "text", 10**10, 0)])
        8388608
        >>> auto_piece_bytes([DataFile("b.txt", "text", 10**7, 0)])
        39062
    """
    text_bytes = sum(f.size for f in files if f.kind != "parquet")
    return int(min(DEFAULT_PIECE_BYTES, max(MIN_PIECE_BYTES, text_bytes // PIECES_WANTED)))


def plan_pieces(files: Sequence[DataFile], *, piece_bytes: int = DEFAULT_PIECE_BYTES) -> list[Piece]:
    """Cut ``files`` into pieces: byte ranges of ``piece_bytes`` (text, jsonl), row groups (parquet).

    Example:
        >>> f = DataFile("a.txt", "text", 25, 0)
        >>> [(p.start, p.stop) for p in plan_pieces([f], piece_bytes=10)]
        [(0, 10), (10, 20), (20, 25)]
    """
    if piece_bytes < 1:
        raise UsageError(f"piece size must be positive, got {piece_bytes}")
    pieces: list[Piece] = []
    for file in files:
        if file.kind == "parquet":
            spans = [(g, g + 1) for g in range(_parquet_row_groups(file))]
        else:
            spans = [(s, min(s + piece_bytes, file.size)) for s in range(0, file.size, piece_bytes)]
        pieces += [Piece(len(pieces) + i, file.path, file.kind, a, b) for i, (a, b) in enumerate(spans)]
    return pieces


def _lines(piece: Piece) -> Iterator[tuple[int, bytes]]:
    """``(byte offset, line)`` for the lines that begin in ``[piece.start, piece.stop)``."""
    with open(piece.path, "rb") as f:
        position = piece.start
        if position > 0:
            f.seek(position - 1)
            position += len(f.readline()) - 1   # the rest of a line that began before this piece
        while position < piece.stop:
            line = f.readline()
            if not line:
                return
            yield position, line
            position += len(line)


def _jsonl_text(piece: Piece, offset: int, line: bytes, field: str) -> str | None:
    try:
        row = json.loads(line)
    except ValueError as e:
        raise CorruptCheckpointError(f"line at byte {offset} is not JSON ({e})", path=piece.path,
                                     hint="one JSON object per line") from e
    if not isinstance(row, dict) or field not in row:
        keys = sorted(row) if isinstance(row, dict) else type(row).__name__
        raise UsageError(f"line at byte {offset} has no field {field!r} (it has {keys})", path=piece.path,
                         hint="pass --text-field")
    value = row[field]
    return value if isinstance(value, str) else None


def _parquet_texts(piece: Piece, field: str) -> Iterator[str]:
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(piece.path)
        if field not in parquet.schema_arrow.names:
            raise UsageError(f"parquet file has no column {field!r} (it has {parquet.schema_arrow.names})",
                             path=piece.path, hint="pass --text-field")
        for batch in parquet.iter_batches(batch_size=1024, row_groups=[piece.start], columns=[field]):
            yield from (t for t in batch.column(0).to_pylist() if isinstance(t, str))
    except UsageError:
        raise
    except (OSError, ValueError) as e:
        raise CorruptCheckpointError(f"cannot read parquet row group {piece.start} ({str(e).splitlines()[0][:120]})",
                                     path=piece.path, hint="write the file again") from e


def read_piece(piece: Piece, *, text_field: str = "text") -> Iterator[str]:
    """The non-empty texts of ``piece``, in file order (jsonl/parquet: the ``text_field`` of each row).

    Example:
        >>> import tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "a.txt"); _ = open(path, "w").write("ab\\ncd\\nef\\n")
        >>> [list(read_piece(Piece(0, path, "text", a, b))) for a, b in [(0, 4), (4, 9)]]
        [['ab', 'cd'], ['ef']]
    """
    if piece.kind == "parquet":
        yield from (t for t in _parquet_texts(piece, text_field) if t.strip())
        return
    for offset, line in _lines(piece):
        if piece.kind == "jsonl":
            if not line.strip():
                continue
            text = _jsonl_text(piece, offset, line, text_field)
        else:
            text = line.decode("utf-8", errors="replace").rstrip("\r\n")
        if text and text.strip():
            yield text


def files_fingerprint(files: Sequence[DataFile]) -> str:
    """A short digest of the files' paths, sizes and modification times (what a cache was built from).

    Example:
        >>> len(files_fingerprint([DataFile("a.txt", "text", 3, 0)]))
        16
    """
    text = json.dumps([[str(Path(f.path).resolve()), f.kind, f.size, f.mtime_ns] for f in files])
    return hashlib.sha256(text.encode()).hexdigest()[:16]
