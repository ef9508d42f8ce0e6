"""Training text streamed from disk: tokenised on the fly, packed per piece, sharded, resumable.

:class:`StreamingCorpus` is a ``torch.utils.data.IterableDataset`` over the pieces of
:mod:`ckptkit.distill.data_files`. Memory is bounded by one tokenizer batch and one piece's
packing buffer, whatever the corpus size.

- **Examples**: each piece is tokenised in batches of lines with the fast tokenizer and packed
  into ``[CLS] ... [SEP]`` blocks of ``max_seq_length`` tokens (``pack=True``, a tail under a
  quarter block is dropped), or truncated one line per example (``pack=False``). Block ``j`` of
  piece ``p`` has ``example_id = p * ID_STRIDE + j``, the same however the corpus is sharded.
- **Sharding**: the pieces, in a per-epoch order (shuffled with ``seed`` and the epoch), are dealt
  round-robin to ``world_size x num_workers`` shards; shard ``rank * num_workers + worker`` is
  read by that rank's dataloader worker. Each example is yielded once per epoch across them all.
- **Resuming**: :class:`StreamPosition` records the last example each shard delivered (feed it the
  ``example_id`` of every consumed batch); :meth:`StreamingCorpus.resume` makes the next iteration
  yield exactly the examples not yet consumed, tokenising only the piece it resumes in.

Example:
    >>> corpus = StreamingCorpus(["corpus/"], tokenizer, max_seq_length=128)  # doctest: +SKIP
    >>> next(iter(corpus))  # doctest: +SKIP
    {'input_ids': array([  2, 1045, ...,   3]), 'example_id': 0}
"""

from __future__ import annotations

import os
from typing import Any, Iterable, Iterator, Mapping, Sequence

import numpy as np

from ckptkit.distill.data_files import (Piece, auto_piece_bytes, files_fingerprint, list_data_files, plan_pieces,
                                        read_piece)
from ckptkit.errors import UsageError

try:
    from torch.utils.data import IterableDataset as _Base
except ImportError:  # pragma: no cover - torch is a dependency of the distill extra
    _Base = object

__all__ = ["StreamingCorpus", "StreamPosition", "ID_STRIDE", "token_counts", "piece_examples"]

ID_STRIDE = 1 << 32          # example_id = piece index * ID_STRIDE + block index within the piece
TOKENIZER_BATCH = 256        # lines per fast-tokenizer call


def _tokenize(tokenizer, texts: list[str]) -> list[list[int]]:
    return tokenizer(texts, add_special_tokens=False, return_attention_mask=False,
                     return_token_type_ids=False)["input_ids"]


def _batches(texts: Iterable[str], size: int) -> Iterator[list[str]]:
    batch: list[str] = []
    for text in texts:
        batch.append(text)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def piece_examples(piece: Piece, tokenizer, *, max_seq_length: int, pack: bool = True, text_field: str = "text",
                   batch_lines: int = TOKENIZER_BATCH) -> Iterator[np.ndarray]:
    """The token-id blocks of one piece (``[CLS] ... [SEP]``, int32), in order.

    Example:
        >>> blocks = list(piece_examples(pieces[0], tok, max_seq_length=128))  # doctest: +SKIP
    """
    cls_id, sep_id, block = tokenizer.cls_token_id, tokenizer.sep_token_id, max_seq_length - 2
    ends = (np.array([cls_id], np.int32), np.array([sep_id], np.int32))
    buffer = np.zeros(0, np.int32)
    for texts in _batches(read_piece(piece, text_field=text_field), batch_lines):
        ids = _tokenize(tokenizer, texts)
        if not pack:
            for row in ids:
                if row:
                    yield np.concatenate([ends[0], np.asarray(row[:block], np.int32), ends[1]])
            continue
        buffer = np.concatenate([buffer, *(np.asarray(row, np.int32) for row in ids)])
        full = buffer.size // block
        for j in range(full):
            yield np.concatenate([ends[0], buffer[j * block:(j + 1) * block], ends[1]])
        buffer = buffer[full * block:]
    if pack and buffer.size >= max(1, block // 4):
        yield np.concatenate([ends[0], buffer, ends[1]])


class StreamPosition:
    """How far each shard's stream has been consumed: the last ``example_id`` per piece read.

    Feed it every consumed batch's ``example_id``; ``state_dict()`` goes into a checkpoint.

    Example:
        >>> pos = StreamPosition(epoch=0)
        >>> pos.consume([ID_STRIDE * 3 + 0, ID_STRIDE * 3 + 1]); pos.state_dict()
        {'epoch': 0, 'last': {'3': 1}}
    """

    def __init__(self, *, epoch: int = 0, last: Mapping[int, int] | None = None) -> None:
        self.epoch = epoch
        self.last: dict[int, int] = dict(last or {})

    def consume(self, example_ids: Iterable[int]) -> None:
        """Record consumed examples (a batch's ``example_id`` tensor or list)."""
        for example_id in (int(i) for i in example_ids):
            piece, block = divmod(example_id, ID_STRIDE)
            self.last[piece] = max(block, self.last.get(piece, -1))

    def state_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "last": {str(p): b for p, b in sorted(self.last.items())}}

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> "StreamPosition":
        return cls(epoch=int(state["epoch"]), last={int(p): int(b) for p, b in state["last"].items()})


class StreamingCorpus(_Base):
    """Text/jsonl/parquet files (or folders of them) as a stream of packed, tokenised examples.

    Args:
        paths: files or folders (``.txt`` one text per line, ``.jsonl`` with ``text_field``, ``.parquet``).
        tokenizer: a fast tokenizer with ``[CLS]``/``[SEP]``.
        max_seq_length: tokens per example, ``[CLS]`` and ``[SEP]`` included.
        pack: pack the token stream into full blocks (MLM) or truncate each line (sentence models).
        piece_bytes: text per piece (default: :func:`~ckptkit.distill.data_files.auto_piece_bytes`).
        rank, world_size: this process's place under DDP (default: from ``torch.distributed``).
        shuffle, seed: shuffle the piece order each epoch (deterministically).

    Example:
        >>> corpus = StreamingCorpus(["a.jsonl"], tok, max_seq_length=64, text_field="body")  # doctest: +SKIP
    """

    def __init__(self, paths: Sequence[str | os.PathLike], tokenizer, *, max_seq_length: int, pack: bool = True,
                 text_field: str = "text", piece_bytes: int | None = None, rank: int | None = None,
                 world_size: int | None = None, shuffle: bool = True, seed: int = 0,
                 batch_lines: int = TOKENIZER_BATCH) -> None:
        if max_seq_length < 8:
            raise UsageError(f"--max-seq-length must be at least 8, got {max_seq_length}")
        if tokenizer.cls_token_id is None or tokenizer.sep_token_id is None:
            raise UsageError("the teacher's tokenizer has no [CLS]/[SEP] tokens; a BERT-style tokenizer is needed")
        self.files = list_data_files(paths)
        piece_bytes = piece_bytes or auto_piece_bytes(self.files)
        self.pieces = plan_pieces(self.files, piece_bytes=piece_bytes)
        self.tokenizer, self.max_seq_length, self.pack = tokenizer, max_seq_length, pack
        self.text_field, self.piece_bytes, self.batch_lines = text_field, piece_bytes, batch_lines
        self.rank, self.world_size = _distributed(rank, world_size)
        self.shuffle, self.seed, self.epoch = shuffle, seed, 0
        self._resume: StreamPosition | None = None

    def settings(self) -> dict[str, Any]:
        """What decides the examples (a teacher cache is keyed by it)."""
        return {"files": files_fingerprint(self.files), "pieces": len(self.pieces), "piece_bytes": self.piece_bytes,
                "text_field": self.text_field, "max_seq_length": self.max_seq_length, "pack": self.pack}

    def set_epoch(self, epoch: int) -> None:
        """Called by the trainer at each epoch: a new piece order."""
        self.epoch = int(epoch)

    def resume(self, state: Mapping[str, Any] | StreamPosition) -> None:
        """Make the next iteration skip what ``state`` (a :class:`StreamPosition` or its dict) says was consumed."""
        position = state if isinstance(state, StreamPosition) else StreamPosition.from_state(state)
        self._resume, self.epoch = position, position.epoch

    def piece_order(self, epoch: int | None = None) -> list[Piece]:
        """All pieces in the order of ``epoch`` (shuffled with the seed, or file order)."""
        epoch = self.epoch if epoch is None else epoch
        if not self.shuffle:
            return list(self.pieces)
        order = np.random.default_rng([self.seed, epoch]).permutation(len(self.pieces))
        return [self.pieces[i] for i in order]

    def iter_shard(self, shard: int, num_shards: int) -> Iterator[dict[str, Any]]:
        """The examples of shard ``shard`` of ``num_shards`` this epoch (skipping consumed ones after a resume)."""
        resume = self._resume if self._resume is not None and self._resume.epoch == self.epoch else None
        mine = self.piece_order()[shard::num_shards]
        start = 0
        if resume is not None:
            started = [i for i, piece in enumerate(mine) if piece.index in resume.last]
            start = started[-1] if started else 0
        for piece in mine[start:]:
            skip = resume.last.get(piece.index, -1) if resume is not None else -1
            for block, ids in enumerate(piece_examples(piece, self.tokenizer, max_seq_length=self.max_seq_length,
                                                       pack=self.pack, text_field=self.text_field,
                                                       batch_lines=self.batch_lines)):
                if block > skip:
                    yield {"input_ids": ids, "example_id": piece.index * ID_STRIDE + block}

    def __iter__(self) -> Iterator[dict[str, Any]]:
        from torch.utils.data import get_worker_info

        worker = get_worker_info()
        workers, worker_id = (worker.num_workers, worker.id) if worker is not None else (1, 0)
        yield from self.iter_shard(self.rank * workers + worker_id, self.world_size * workers)
        self._resume = None


def _distributed(rank: int | None, world_size: int | None) -> tuple[int, int]:
    if rank is not None and world_size is not None:
        if not 0 <= rank < world_size:
            raise UsageError(f"rank {rank} is outside a world of {world_size}")
        return rank, world_size
    try:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            return dist.get_rank(), dist.get_world_size()
    except ImportError:  # pragma: no cover
        pass
    return 0, 1


def token_counts(examples: Iterable[Any], *, vocab_size: int, chunk_tokens: int = 1 << 20) -> np.ndarray:
    """How often each token id occurs in ``examples`` (rows of ids, or dicts with ``input_ids``): one pass,
    ``np.bincount`` over chunks of about ``chunk_tokens`` ids, memory bounded by one chunk.

    Example:
        >>> token_counts([[1, 2, 2], {"input_ids": [2, 0]}], vocab_size=4).tolist()
        [1, 1, 3, 0]
    """
    counts = np.zeros(vocab_size, dtype=np.int64)
    chunk: list[np.ndarray] = []
    held = 0
    for row in examples:
        ids = np.asarray(row["input_ids"] if isinstance(row, Mapping) else row, dtype=np.int64)
        chunk.append(ids)
        held += ids.size
        if held >= chunk_tokens:
            counts += np.bincount(np.concatenate(chunk), minlength=vocab_size)[:vocab_size]
            chunk, held = [], 0
    if chunk:
        counts += np.bincount(np.concatenate(chunk), minlength=vocab_size)[:vocab_size]
    return counts
