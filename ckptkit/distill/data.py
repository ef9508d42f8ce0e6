"""Training text: load, tokenise with ``datasets.map`` (cached, multiprocess), pack, mask.

Masking is deterministic per example: the random stream of example ``i`` is seeded by
``(seed, epoch, i)``, so a run masks the same way on 1 or N processes, after a resume, and, with
``fixed=True`` (the teacher cache), in every epoch.

Example:
    >>> import numpy as np
    >>> collate = MaskingCollator(pad_id=0, mask_id=4, special_ids=(0, 1, 2, 3, 4), vocab_size=20, seed=1)
    >>> batch = collate([{"input_ids": [2, 7, 8, 9, 3], "example_id": 0}])
    >>> batch["input_ids"].shape, int((batch["labels"] != -100).sum())
    (torch.Size([1, 5]), 1)
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ckptkit.errors import CheckpointNotFoundError, UsageError

__all__ = ["load_texts", "tokenize_and_pack", "tokenize_lines", "token_mask_weights", "dataset_token_counts",
           "MaskingCollator"]

IGNORE_INDEX = -100


def _is_saved_dataset(path: Path) -> bool:
    return path.is_dir() and any((path / name).is_file() for name in ("state.json", "dataset_dict.json"))


def load_texts(paths: Sequence[str | os.PathLike], *, text_column: str = "text", split: str = "train"):
    """A ``datasets.Dataset`` with a ``text`` column from plain text files or a dataset saved on disk.

    Text files hold one document or sentence per line (empty lines are dropped later). A folder
    written by ``Dataset.save_to_disk`` is loaded as is (``split`` picks from a ``DatasetDict``).

    Example:
        >>> ds = load_texts(["corpus.txt"])  # doctest: +SKIP
    """
    import datasets

    paths = [Path(p) for p in paths]
    for path in paths:
        if not path.exists():
            raise CheckpointNotFoundError("training text not found", path=path)
    if len(paths) == 1 and _is_saved_dataset(paths[0]):
        loaded = datasets.load_from_disk(str(paths[0]))
        if isinstance(loaded, datasets.DatasetDict):
            if split not in loaded:
                raise UsageError(f"dataset has no split {split!r} (it has {sorted(loaded)})", path=paths[0])
            loaded = loaded[split]
        if text_column not in loaded.column_names:
            raise UsageError(f"dataset has no column {text_column!r} (it has {loaded.column_names})",
                             path=paths[0], hint="pass --text-column")
        return loaded.rename_column(text_column, "text") if text_column != "text" else loaded
    files = [str(p) for p in paths]
    return datasets.load_dataset("text", data_files={"train": files}, split="train")


def _tokenize_batch(batch: dict[str, list], *, tokenizer) -> dict[str, list]:
    texts = [t for t in batch["text"] if t and t.strip()]
    return {"ids": tokenizer(texts, add_special_tokens=False)["input_ids"]}


def _pack_batch(batch: dict[str, list], *, block: int, cls_id: int, sep_id: int) -> dict[str, list]:
    stream = [token for ids in batch["ids"] for token in ids]
    blocks = [stream[start:start + block] for start in range(0, len(stream), block)]
    return {"input_ids": [[cls_id, *b, sep_id] for b in blocks if len(b) >= max(1, block // 4)]}


def _add_ids(batch: dict[str, list], indices: list[int]) -> dict[str, list]:
    return {"example_id": list(indices)}


def tokenize_and_pack(texts, tokenizer, *, max_seq_length: int, num_proc: int | None = None):
    """Tokenise ``texts`` with ``tokenizer`` and pack the token stream into ``[CLS] ... [SEP]`` blocks.

    Each block holds ``max_seq_length`` tokens (a short tail under a quarter block is dropped) and
    an ``example_id`` (its row number). The ``datasets.map`` results are cached next to the source.

    Example:
        >>> packed = tokenize_and_pack(load_texts(["corpus.txt"]), tok, max_seq_length=128)  # doctest: +SKIP
    """
    from functools import partial

    if max_seq_length < 8:
        raise UsageError(f"--max-seq-length must be at least 8, got {max_seq_length}")
    if tokenizer.cls_token_id is None or tokenizer.sep_token_id is None:
        raise UsageError("the teacher's tokenizer has no [CLS]/[SEP] tokens; a BERT-style tokenizer is needed")
    tokenized = texts.map(partial(_tokenize_batch, tokenizer=tokenizer), batched=True, num_proc=num_proc,
                          remove_columns=texts.column_names, desc="tokenizing")
    packed = tokenized.map(partial(_pack_batch, block=max_seq_length - 2, cls_id=tokenizer.cls_token_id,
                                   sep_id=tokenizer.sep_token_id),
                           batched=True, batch_size=2000, num_proc=num_proc, remove_columns=["ids"],
                           desc="packing")
    if len(packed) == 0:
        raise UsageError("no training text left after tokenizing (are the files empty?)")
    return packed.map(_add_ids, batched=True, with_indices=True, desc="numbering")


def tokenize_lines(texts, tokenizer, *, max_seq_length: int, limit: int | None = None) -> list[list[int]]:
    """One truncated ``[CLS] ... [SEP]`` sequence per non-empty line (sentence embeddings).

    Example:
        >>> tokenize_lines(ds, tok, max_seq_length=64, limit=100)  # doctest: +SKIP
    """
    lines = [t for t in texts["text"] if t and t.strip()]
    if limit is not None:
        lines = lines[:limit]
    return tokenizer(lines, truncation=True, max_length=max_seq_length)["input_ids"]


def token_mask_weights(dataset, *, vocab_size: int, special_ids: Sequence[int], smoothing: float) -> np.ndarray:
    """Relative masking weight of each token id: ``count ** -smoothing`` (DistilBERT's smoothing).

    Rare tokens get masked more often; special tokens get weight 0; unseen tokens weight 1.

    Example:
        >>> w = token_mask_weights([{"input_ids": [5, 5, 5, 5, 6]}], vocab_size=8, special_ids=[0], smoothing=0.5)
        >>> round(float(w[5]), 2), float(w[6]), float(w[0])
        (0.5, 1.0, 0.0)
    """
    weights = np.maximum(dataset_token_counts(dataset, vocab_size=vocab_size).astype(np.float64), 1.0) ** -smoothing
    weights[list(special_ids)] = 0.0
    return weights


def dataset_token_counts(dataset, *, vocab_size: int) -> np.ndarray:
    """Token-id counts of ``dataset``'s ``input_ids`` in one vectorised pass.

    A ``datasets.Dataset`` is counted from its Arrow column (one ``np.bincount`` per record batch,
    no Python loop over rows); anything else (a :class:`~ckptkit.distill.streaming.StreamingCorpus`,
    a list of rows) is streamed through :func:`~ckptkit.distill.streaming.token_counts`.

    Example:
        >>> dataset_token_counts([{"input_ids": [1, 1, 3]}], vocab_size=4).tolist()
        [0, 2, 0, 1]
    """
    from ckptkit.distill.streaming import token_counts

    if hasattr(dataset, "iter_shard"):  # a StreamingCorpus: every shard, whatever this process reads
        return token_counts(dataset.iter_shard(0, 1), vocab_size=vocab_size)
    table = getattr(dataset, "data", None)
    if table is None or not hasattr(table, "column") or "input_ids" not in getattr(dataset, "column_names", ()):
        return token_counts(dataset, vocab_size=vocab_size)
    counts = np.zeros(vocab_size, dtype=np.int64)
    column = table.column("input_ids")
    indices = getattr(dataset, "_indices", None)
    if indices is not None:  # a selected/shuffled view: count the rows it shows
        return token_counts((row["input_ids"] for row in dataset), vocab_size=vocab_size)
    for chunk in column.chunks:
        flat = chunk.flatten().to_numpy(zero_copy_only=False)
        counts += np.bincount(flat.astype(np.int64, copy=False), minlength=vocab_size)[:vocab_size]
    return counts


@dataclass
class MaskingCollator:
    """Pad a list of ``{"input_ids", "example_id"}`` rows and mask them for MLM (80/10/10).

    ``mlm_probability`` of each row's non-special tokens are chosen (at least one), weighted by
    ``mask_weights[token]`` when given; of those, 80% become ``[MASK]``, 10% a random non-special
    token, 10% stay. ``epoch`` is set by the trainer; ``fixed=True`` ignores it (teacher cache).

    Example:
        >>> c = MaskingCollator(pad_id=0, mask_id=4, special_ids=(0, 1, 2, 3, 4), vocab_size=9, mlm_probability=0.0)
        >>> c([{"input_ids": [2, 5, 3], "example_id": 3}, {"input_ids": [2, 3], "example_id": 4}])["attention_mask"]
        tensor([[1, 1, 1],
                [1, 1, 0]])
    """

    pad_id: int
    mask_id: int
    special_ids: Sequence[int]
    vocab_size: int
    mlm_probability: float = 0.15
    mask_replace: float = 0.8
    random_replace: float = 0.1
    mask_weights: np.ndarray | None = None
    seed: int = 0
    fixed: bool = False
    epoch: int = 0
    _special: np.ndarray = field(init=False, repr=False)
    _random_pool: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._special = np.zeros(self.vocab_size, dtype=bool)
        self._special[list(self.special_ids)] = True
        self._random_pool = np.flatnonzero(~self._special)

    def mask_row(self, ids: np.ndarray, example_id: int) -> tuple[np.ndarray, np.ndarray]:
        """Masked input ids and labels for one row; same (seed, epoch, example_id) -> same result."""
        labels = np.full_like(ids, IGNORE_INDEX)
        candidates = np.flatnonzero(~self._special[ids])
        if self.mlm_probability <= 0 or candidates.size == 0:
            return ids, labels
        rng = np.random.default_rng([self.seed, 0 if self.fixed else self.epoch, example_id])
        count = min(candidates.size, max(1, int(self.mlm_probability * candidates.size + 0.5)))
        p = None
        if self.mask_weights is not None:
            w = self.mask_weights[ids[candidates]]
            p = w / w.sum() if w.sum() > 0 else None
        chosen = rng.choice(candidates, size=count, replace=False, p=p)
        labels[chosen] = ids[chosen]
        u = rng.random(count)
        masked = ids.copy()
        masked[chosen[u < self.mask_replace]] = self.mask_id
        randomised = chosen[(u >= self.mask_replace) & (u < self.mask_replace + self.random_replace)]
        masked[randomised] = rng.choice(self._random_pool, size=randomised.size)
        return masked, labels

    def __call__(self, features: list[dict[str, Any]]) -> dict[str, Any]:
        import torch

        length = max(len(f["input_ids"]) for f in features)
        input_ids = np.full((len(features), length), self.pad_id, dtype=np.int64)
        labels = np.full((len(features), length), IGNORE_INDEX, dtype=np.int64)
        attention = np.zeros((len(features), length), dtype=np.int64)
        for row, feature in enumerate(features):
            ids = np.asarray(feature["input_ids"], dtype=np.int64)
            input_ids[row, :ids.size], labels[row, :ids.size] = self.mask_row(ids, int(feature["example_id"]))
            attention[row, :ids.size] = 1
        return {"input_ids": torch.from_numpy(input_ids), "attention_mask": torch.from_numpy(attention),
                "labels": torch.from_numpy(labels),
                "example_id": torch.tensor([int(f["example_id"]) for f in features], dtype=torch.long)}
