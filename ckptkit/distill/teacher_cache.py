"""Teacher outputs on disk, read back per batch: memory-mapped shards, one per corpus piece.

Layout of a cache folder (built by :func:`ckptkit.distill.teacher_cache_build.build_teacher_cache`,
i.e. ``ckptkit distill cache``)::

    cache.json                       the key (teacher, data, tokenization, masking, top-k, temperature),
                                     what is stored, complete or not, build statistics
    pieces/p000042/piece.json        rows and tokens of piece 42 (written last: the piece is done)
    pieces/p000042/offsets.i64       token offset of each row (n + 1)
    pieces/p000042/logprobs.<dtype>  [tokens, k] teacher log-probabilities of its top k at temperature T
    pieces/p000042/ids.<dtype>       [tokens, k] their token ids (uint16 when the vocabulary allows)
    pieces/p000042/rest.<dtype>      [tokens] log of the probability mass outside the top k
    pieces/p000042/hidden.<i>.<dtype> [tokens, hidden] hidden_states[i] (0 = embeddings)

Rows are stored without padding (bytes per token = ``k * (value + id bytes) + value bytes`` plus
the hidden states). The example with ``example_id = piece * ID_STRIDE + j`` is row ``j`` of its
piece: the ids of :class:`~ckptkit.distill.streaming.StreamingCorpus`, the same on any number of
ranks and workers. A cache is used only for the key it was built for; another key is refused.

Example:
    >>> cache = TeacherCache.open("out/teacher-cache", key=key)  # doctest: +SKIP
    >>> outputs = cache.lookup(batch["example_id"], seq_len=128)  # doctest: +SKIP
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ckptkit.errors import CheckpointNotFoundError, CorruptCheckpointError, UsageError

__all__ = ["TeacherOutputs", "TeacherCache", "META", "FORMAT", "piece_dir", "read_meta", "check_key",
           "key_differences"]

META = "cache.json"
FORMAT = 1
OPEN_PIECES = 32      # memory maps kept open at once


@dataclass
class TeacherOutputs:
    """What the losses read from the teacher for one batch.

    ``logits`` is ``[b, s, vocab]``; from a cache it is ``[b, s, k]`` top-k *log-probabilities* at
    the cache's temperature, with their ids in ``indices`` and ``rest`` ``[b, s]`` the log of the
    mass outside them (see :mod:`ckptkit.distill.topk_kl`). ``hidden`` maps a ``hidden_states``
    index (0 = embeddings, ``j + 1`` = layer ``j``) to ``[b, s, h]``.
    """

    logits: Any = None
    indices: Any = None
    hidden: dict[int, Any] = field(default_factory=dict)
    attentions: Sequence[Any] | None = None
    rest: Any = None


def piece_dir(directory: str | Path, piece_index: int) -> Path:
    """Where piece ``piece_index`` is stored in a cache folder."""
    return Path(directory) / "pieces" / f"p{piece_index:06d}"


def read_meta(directory: str | Path) -> dict[str, Any] | None:
    """``cache.json`` of ``directory``, or None when there is none."""
    path = Path(directory) / META
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except ValueError as e:
        raise CorruptCheckpointError(f"damaged {META} ({e})", path=directory, hint="delete the folder") from e


def _short(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else value
    return text if len(text) <= 40 else text[:37] + "..."


def key_differences(stored: Mapping[str, Any], wanted: Mapping[str, Any]) -> list[str]:
    """``"name: A in the cache, B now"`` for every key field that differs.

    Example:
        >>> key_differences({"seed": 42, "top_k": 8}, {"seed": 1, "top_k": 8})
        ['seed: 42 in the cache, 1 now']
    """
    wanted = json.loads(json.dumps(dict(wanted)))
    names = sorted(set(stored) | set(wanted))
    return [f"{n}: {_short(stored.get(n))} in the cache, {_short(wanted.get(n))} now" for n in names
            if stored.get(n) != wanted.get(n)]


# the collator class of whole-word masking, as ``masking_settings`` names it in a key
WHOLE_WORD_MASKING = "WholeWordMaskingCollator"
# per scheme of the cache: (what the cache was built with, what this run does, what to do)
_SCHEME_MISMATCH = {
    True: ("with whole-word masking (--whole-word-mask)", "this run masks single tokens",
           "pass --whole-word-mask to use this cache, or build one without it with `ckptkit distill cache` into "
           "another --out (--overwrite rebuilds this one)"),
    False: ("without whole-word masking", "this run uses --whole-word-mask",
            "drop --whole-word-mask to use this cache, or build one with `ckptkit distill cache --whole-word-mask` "
            "(same data, --seed and masking options) into another --out (--overwrite rebuilds this one)"),
}


def _masking_mismatch(directory: str | Path, stored: Mapping[str, Any], wanted: Mapping[str, Any]) -> UsageError | None:
    """The one-line refusal of a cache built with the other masking scheme (whole words / single tokens)."""
    cached = stored.get("masking") == WHOLE_WORD_MASKING
    if cached == (wanted.get("masking") == WHOLE_WORD_MASKING):
        return None
    built, now, hint = _SCHEME_MISMATCH[cached]
    others = [d for d in key_differences(stored, wanted) if not d.startswith(("masking:", "word_starts:"))]
    also = f"; other settings differ too: {'; '.join(others[:3])}{'; ...' if len(others) > 3 else ''}" if others else ""
    return UsageError(f"teacher cache was built {built} and {now}{also}", path=directory, hint=hint)


def check_key(directory: str | Path, meta: Mapping[str, Any], key: Mapping[str, Any]) -> None:
    """Refuse (one line) a cache built for another teacher, data, tokenization or masking."""
    stored = meta.get("key", {})
    scheme = _masking_mismatch(directory, stored, key)
    if scheme is not None:
        raise scheme
    differences = key_differences(stored, key)
    if any(d.startswith("tokenizer:") for d in differences):   # word starts follow from the tokenizer
        differences = [d for d in differences if not d.startswith("word_starts:")]
    if differences:
        raise UsageError(f"teacher cache was built for other settings ({'; '.join(differences[:3])}"
                         f"{f'; {len(differences) - 3} more' if len(differences) > 3 else ''})", path=directory,
                         hint="build a cache for this run with `ckptkit distill cache` into another --out, "
                              "or pass --overwrite there to rebuild this one")


class _Piece:
    """The memory-mapped arrays of one stored piece."""

    def __init__(self, folder: Path, meta: Mapping[str, Any]):
        info = json.loads((folder / "piece.json").read_text())
        tokens, k, value = info["tokens"], meta["top_k"], meta["value_dtype"]

        def array(name: str, dtype: str, shape: tuple[int, ...]):
            if 0 in shape:
                return np.zeros(shape, dtype=dtype)
            return np.memmap(folder / name, dtype=dtype, mode="r", shape=shape)

        self.offsets = np.fromfile(folder / "offsets.i64", dtype=np.int64)
        if self.offsets.size != info["rows"] + 1 or self.offsets[-1] != tokens:
            raise CorruptCheckpointError("piece offsets do not match piece.json", path=folder,
                                         hint="delete this piece folder and run `ckptkit distill cache` again")
        if k:
            self.logprobs = array(f"logprobs.{value}", value, (tokens, k))
            self.ids = array(f"ids.{meta['id_dtype']}", meta["id_dtype"], (tokens, k))
            self.rest = array(f"rest.{value}", value, (tokens,))
        self.hidden = {int(i): array(f"hidden.{i}.{value}", value, (tokens, meta["hidden_size"]))
                       for i in meta["hidden"]}


class TeacherCache:
    """Read-only access to a built cache by example id (memory-mapped, pieces opened on demand)."""

    def __init__(self, directory: Path, meta: dict[str, Any]):
        self.directory = directory
        self.meta = meta
        self._open: OrderedDict[int, _Piece] = OrderedDict()
        self.read_seconds = 0.0
        self.rows_read = 0

    @classmethod
    def open(cls, directory: str | Path, *, key: Mapping[str, Any] | None = None,
             need_hidden: Sequence[int] = (), need_top_k: bool = False) -> "TeacherCache":
        """Open a complete cache; with ``key``, refuse one built for other settings (one line).

        Example:
            >>> TeacherCache.open("/nonexistent")
            Traceback (most recent call last):
            ...
            ckptkit.errors.CheckpointNotFoundError: /nonexistent: no teacher cache here (run ckptkit distill cache)
        """
        directory = Path(directory)
        meta = read_meta(directory)
        if meta is None:
            raise CheckpointNotFoundError("no teacher cache here", path=directory, hint="run ckptkit distill cache")
        if key is not None:
            check_key(directory, meta, key)
        if not meta.get("complete"):
            raise UsageError("teacher cache is incomplete (its build was interrupted)", path=directory,
                             hint="run the same `ckptkit distill cache` command again to finish it")
        missing = sorted(set(need_hidden) - set(meta["hidden"]))
        if missing or (need_top_k and not meta["top_k"]):
            what = f"hidden states {missing}" if missing else "teacher logits (top-k)"
            raise UsageError(f"teacher cache holds no {what}, which this run's losses need", path=directory,
                             hint=f"rebuild it with --hidden-states {','.join(map(str, sorted(need_hidden)))}"
                                  if missing else "rebuild it with --top-k 64")
        return cls(directory, meta)

    @property
    def bytes_per_token(self) -> float:
        return float(self.meta.get("bytes_per_token", 0.0))

    def _piece(self, index: int) -> _Piece:
        piece = self._open.get(index)
        if piece is None:
            folder = piece_dir(self.directory, index)
            if not (folder / "piece.json").is_file():
                raise CorruptCheckpointError(f"teacher cache has no piece {index}", path=self.directory,
                                             hint="it was built for other data: run `ckptkit distill cache` again")
            piece = self._open[index] = _Piece(folder, self.meta)
            while len(self._open) > OPEN_PIECES:
                self._open.popitem(last=False)
        self._open.move_to_end(index)
        return piece

    def _spans(self, example_ids: Sequence[int]) -> list[tuple[_Piece, int, int]]:
        from ckptkit.distill.streaming import ID_STRIDE

        spans = []
        for example_id in example_ids:
            index, row = divmod(int(example_id), ID_STRIDE)
            piece = self._piece(index)
            if row + 1 >= piece.offsets.size:
                raise CorruptCheckpointError(f"teacher cache has no example {row} in piece {index}",
                                             path=self.directory, hint="it was built for other data")
            spans.append((piece, int(piece.offsets[row]), int(piece.offsets[row + 1])))
        return spans

    @staticmethod
    def _gather(spans, name: str, seq_len: int, width: int | None, dtype, fill) -> np.ndarray:
        shape = (len(spans), seq_len) + ((width,) if width is not None else ())
        out = np.full(shape, fill, dtype=dtype)
        for row, (piece, start, stop) in enumerate(spans):
            source = getattr(piece, name) if "." not in name else piece.hidden[int(name.split(".")[1])]
            n = min(stop - start, seq_len)
            out[row, :n] = source[start:start + n]
        return out

    def lookup(self, example_ids, *, seq_len: int, device=None, dtype=None) -> TeacherOutputs:
        """The stored teacher outputs of ``example_ids``, padded or cut to ``seq_len`` positions."""
        import torch

        from ckptkit.distill.topk_kl import normalise_buckets

        start = time.perf_counter()
        spans = self._spans([int(i) for i in example_ids])
        outputs = TeacherOutputs()
        k, value = self.meta["top_k"], self.meta["value_dtype"]
        if k:
            logprobs = torch.from_numpy(self._gather(spans, "logprobs", seq_len, k, value, 0))
            rest = torch.from_numpy(self._gather(spans, "rest", seq_len, None, value, float("-inf")))
            logprobs, rest = normalise_buckets(logprobs, rest)
            outputs.logits, outputs.rest = logprobs.to(device=device), rest.to(device=device)
            ids = self._gather(spans, "ids", seq_len, k, self.meta["id_dtype"], 0)
            outputs.indices = torch.from_numpy(ids.astype(np.int64)).to(device=device)
        for i in self.meta["hidden"]:
            hidden = self._gather(spans, f"hidden.{i}", seq_len, self.meta["hidden_size"], value, 0)
            outputs.hidden[int(i)] = torch.from_numpy(hidden).to(device=device, dtype=dtype or torch.float32)
        self.read_seconds += time.perf_counter() - start
        self.rows_read += len(spans)
        return outputs
