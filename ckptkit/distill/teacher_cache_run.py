"""``cache_teacher_outputs``: the library entry behind ``ckptkit distill cache``.

Builds (or finishes, or finds complete) the teacher cache of a corpus with the same examples and
masking that ``distill train --teacher-cache DIR`` will use: the corpus is streamed
(:class:`~ckptkit.distill.streaming.StreamingCorpus`, packed blocks of ``max_seq_length``), masked
with a fixed :class:`~ckptkit.distill.data.MaskingCollator` (``seed``, ``mlm_probability``,
``mlm_smoothing`` as in training). The report says what a token costs on disk and when the cache
pays: the teacher forward time an epoch saves against the build time and the time to read it.

Example:
    >>> report = cache_teacher_outputs("out/kobert", ["corpus/"], out="out/cache", top_k=64)  # doctest: +SKIP
    >>> report["bytes_per_token"], report["break_even_epochs"]  # doctest: +SKIP
    (262.1, 1.2)
"""

from __future__ import annotations

import os
import random
import time
from pathlib import Path
from typing import Any, Sequence

from ckptkit.errors import CheckpointNotFoundError, UsageError

__all__ = ["cache_teacher_outputs", "parse_hidden_states", "masking_collator", "READ_SAMPLE"]

READ_SAMPLE = 256      # examples read back to estimate the read time of one epoch


def parse_hidden_states(text: str | None, *, num_layers: int) -> list[int]:
    """``"last"`` -> ``[num_layers]``, ``"none"``/empty -> ``[]``, ``"0,4,8"`` -> those ``hidden_states`` indices.

    Example:
        >>> parse_hidden_states("last", num_layers=12), parse_hidden_states("1,5,last", num_layers=12)
        ([12], [1, 5, 12])
    """
    if text is None or text.strip().lower() in ("", "none"):
        return []
    indices = []
    for part in (p.strip().lower() for p in text.split(",")):
        value = num_layers if part == "last" else int(part) if part.isdigit() else None
        if value is None or not 0 <= value <= num_layers:
            raise UsageError(f"--hidden-states: {part!r} is not 'last' or an index 0..{num_layers} "
                             "(0 = embeddings, i = output of layer i)")
        indices.append(value)
    return sorted(set(indices))


def masking_collator(tokenizer, *, mlm_probability: float, mask_weights, seed: int, whole_word_mask: bool = False):
    """The fixed masking ``distill train`` uses with a cache (same special ids, seed, probabilities, whole words)."""
    from ckptkit.distill.data import MaskingCollator

    collator = MaskingCollator(pad_id=tokenizer.pad_token_id, mask_id=tokenizer.mask_token_id,
                               special_ids=sorted(set(tokenizer.all_special_ids)), vocab_size=len(tokenizer),
                               mlm_probability=mlm_probability, mask_weights=mask_weights, seed=seed, fixed=True)
    if whole_word_mask:
        from ckptkit.distill.whole_word import with_whole_words

        collator = with_whole_words(collator, tokenizer)
    return collator


def _read_estimate(directory: Path, corpus, *, examples: int, seq_len: int) -> float:
    """Seconds to read one epoch of the cache, from reading back a random sample of its examples."""
    from ckptkit.distill.streaming import ID_STRIDE
    from ckptkit.distill.teacher_cache import TeacherCache, piece_dir

    cache = TeacherCache.open(directory)
    ids = []
    for piece in corpus.pieces:
        rows = int((piece_dir(directory, piece.index) / "offsets.i64").stat().st_size // 8) - 1
        ids += [piece.index * ID_STRIDE + j for j in range(rows)]
    if not ids:
        return 0.0
    sample = random.Random(0).sample(ids, min(READ_SAMPLE, len(ids)))
    start = time.perf_counter()
    for i in range(0, len(sample), 32):
        cache.lookup(sample[i:i + 32], seq_len=seq_len)
    return (time.perf_counter() - start) * examples / len(sample)


def _teacher(path: str | os.PathLike, objective: str):
    import transformers
    from transformers import AutoTokenizer

    from ckptkit.distill.models import load_model
    from ckptkit.progress import is_quiet
    from ckptkit.tokenizers.files import tokenizer_files

    if is_quiet():   # --quiet: no loading bars or load reports from transformers either
        transformers.utils.logging.disable_progress_bar()
        transformers.utils.logging.set_verbosity_error()

    if not Path(path, "config.json").is_file():
        raise CheckpointNotFoundError("teacher is not a hub folder (no config.json)", path=path,
                                      hint="convert it first: ckptkit convert")
    if not tokenizer_files(path):
        raise UsageError("the teacher folder has no tokenizer files: the corpus is tokenized with it", path=path)
    return load_model(path, objective=objective, role="teacher"), AutoTokenizer.from_pretrained(str(path))


def cache_teacher_outputs(teacher: str | os.PathLike, data: Sequence[str | os.PathLike], *, out: str | os.PathLike,
                          objective: str = "mlm", max_seq_length: int = 128, text_column: str = "text",
                          top_k: int = 64, temperature: float = 2.0, hidden_states: str | None = "last",
                          mlm_probability: float = 0.15, mlm_smoothing: float = 0.0, seed: int = 42,
                          batch_size: int = 32, value_dtype: str = "float16", device: str | None = None,
                          bf16: bool = False, piece_mb: float | None = None, whole_word_mask: bool = False,
                          overwrite: bool = False) -> dict[str, Any]:
    """Build (or finish) the teacher cache of ``data`` in ``out``; returns the report (see the module docstring).

    Args:
        teacher: the teacher's hub folder (with its tokenizer).
        data: text/jsonl/parquet files or folders, as given to ``distill train``.
        out: the cache folder; an existing cache for the same settings is finished or reused.
        top_k, temperature: the teacher distribution stored per token (top ``k`` + the rest) at ``temperature``.
        hidden_states: ``"last"``, ``"none"`` or ``hidden_states`` indices such as ``"4,8,12"``.
        mlm_probability, mlm_smoothing, seed, whole_word_mask: the fixed masking (as ``distill train``'s).
        value_dtype: ``float16`` (default) or ``float32`` storage of log-probabilities and hidden states.

    Returns:
        A dict: examples, tokens, pieces built/reused, bytes and bytes per token, build and teacher
        forward seconds, the estimated read time of an epoch and the break-even epoch count.
    """
    import torch

    from ckptkit.distill.data import dataset_token_counts
    from ckptkit.distill.models import num_layers
    from ckptkit.distill.streaming import StreamingCorpus
    from ckptkit.distill.teacher_cache_build import build_teacher_cache, cache_key

    files = [Path(p) for p in data]
    model, tokenizer = _teacher(teacher, objective)
    corpus = StreamingCorpus(files, tokenizer, max_seq_length=max_seq_length, text_field=text_column,
                             piece_bytes=max(1, int(piece_mb * (1 << 20))) if piece_mb else None, shuffle=False)
    hidden = parse_hidden_states(hidden_states, num_layers=num_layers(model.config))
    top_k = top_k if objective == "mlm" else 0
    weights = None
    if mlm_smoothing > 0:
        import numpy as np

        counts = dataset_token_counts(corpus, vocab_size=len(tokenizer)).astype(np.float64)
        weights = np.maximum(counts, 1.0) ** -mlm_smoothing
        weights[sorted(set(tokenizer.all_special_ids))] = 0.0
    collator = masking_collator(tokenizer, mlm_probability=mlm_probability if objective == "mlm" else 0.0,
                                mask_weights=weights, seed=seed, whole_word_mask=whole_word_mask)
    key = cache_key(teacher_dir=teacher, corpus=corpus, collator=collator, top_k=top_k, temperature=temperature,
                    value_dtype=value_dtype)
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    stats = build_teacher_cache(out, corpus=corpus, teacher=model, collator=collator, key=key, top_k=top_k,
                                temperature=temperature, hidden_indices=hidden, batch_size=batch_size, device=device,
                                dtype=torch.bfloat16 if bf16 else torch.float32, value_dtype=value_dtype,
                                overwrite=overwrite)
    return _report(Path(out), corpus, stats, max_seq_length=max_seq_length)


def _report(directory: Path, corpus, stats, *, max_seq_length: int) -> dict[str, Any]:
    from ckptkit.distill.teacher_cache import WHOLE_WORD_MASKING, read_meta

    meta = read_meta(directory)
    read_s = _read_estimate(directory, corpus, examples=meta["examples"], seq_len=max_seq_length)
    saved_per_epoch = meta["teacher_s"] - read_s
    return {"cache_dir": str(directory), "complete": bool(meta["complete"]), "pieces": meta["pieces"],
            "pieces_built": stats.pieces_built, "pieces_reused": stats.pieces_reused, "examples": meta["examples"],
            "tokens": meta["tokens"], "bytes": meta["bytes"], "bytes_per_token": meta["bytes_per_token"],
            "whole_word_mask": meta["key"].get("masking") == WHOLE_WORD_MASKING,
            "top_k": meta["top_k"], "temperature": meta["temperature"], "hidden_states": meta["hidden"],
            "value_dtype": meta["value_dtype"], "build_s": meta["build_s"], "teacher_forward_s": meta["teacher_s"],
            "build_s_this_run": round(stats.build_s, 3), "read_s_per_epoch": round(read_s, 3),
            "saved_s_per_epoch": round(saved_per_epoch, 3),
            "break_even_epochs": round(meta["build_s"] / saved_per_epoch, 2) if saved_per_epoch > 0 else None}
