"""Build a teacher cache (the layout is in :mod:`ckptkit.distill.teacher_cache`): piece by piece, resumable.

Each piece is written into ``pieces/.pNNNNNN.tmp`` batch by batch (memory: one batch) and renamed
when complete; ``cache.json`` says ``"complete": true`` once every piece is there. Interrupted
(Ctrl-C, a crash, a kill), the same command finishes the missing pieces and gives the same files.
Under DDP each rank builds pieces ``rank::world_size``; rank 0 finishes after a barrier.

Example:
    >>> stats = build_teacher_cache("out/cache", corpus=corpus, teacher=teacher, collator=collator,  # doctest: +SKIP
    ...                             key=cache_key(...), top_k=64, temperature=2.0, hidden_indices=[12])
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ckptkit.distill.teacher_cache import FORMAT, META, check_key, piece_dir, read_meta
from ckptkit.errors import UsageError
from ckptkit.output.atomic import out_of_space, write_json

__all__ = ["CacheStats", "cache_key", "build_teacher_cache", "build_pieces", "finish_cache", "VALUE_DTYPES",
           "teacher_digest"]

VALUE_DTYPES = ("float16", "float32")


@dataclass
class CacheStats:
    """What a build did: pieces built now and found done, examples, tokens, bytes, seconds."""

    pieces_built: int = 0
    pieces_reused: int = 0
    examples: int = 0
    tokens: int = 0
    bytes: int = 0
    bytes_per_token: float = 0.0
    build_s: float = 0.0
    teacher_s: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {k: round(v, 3) if isinstance(v, float) else v for k, v in asdict(self).items()}


def _digest(parts: Sequence[Any]) -> str:
    return hashlib.sha256(json.dumps(parts, default=str).encode()).hexdigest()[:16]


def _file_digest(path: Path, *, edge: int = 4 << 20) -> str:
    """sha256 of a file's size, first and last ``edge`` bytes (weights of another training differ in both)."""
    digest, size = hashlib.sha256(str(path.stat().st_size).encode()), path.stat().st_size
    with open(path, "rb") as f:
        digest.update(f.read(edge))
        if size > 2 * edge:
            f.seek(size - edge)
            digest.update(f.read(edge))
    return digest.hexdigest()


def teacher_digest(teacher_dir: str | Path) -> dict[str, str]:
    """Content digests naming the teacher (config and weight files) and its tokenizer files; a copy of the
    teacher elsewhere has the same digests."""
    from ckptkit.tokenizers.files import tokenizer_files

    folder = Path(teacher_dir)
    tokenizer_names = tokenizer_files(folder)
    weights = sorted(p for p in folder.iterdir() if p.is_file() and p.name not in tokenizer_names
                     and (p.suffix in (".safetensors", ".bin") or p.name == "config.json"))
    tokenizer = [[name, _file_digest(folder / name, edge=1 << 30)] for name in tokenizer_names]
    return {"teacher": _digest([[p.name, _file_digest(p)] for p in weights]), "tokenizer": _digest(tokenizer)}


def cache_key(*, teacher_dir: str | Path, corpus, collator, top_k: int, temperature: float,
              value_dtype: str = "float16") -> dict[str, Any]:
    """What a cache is built for: teacher, tokenizer, data and its tokenization, masking, top-k, temperature.

    ``corpus`` is a :class:`~ckptkit.distill.streaming.StreamingCorpus`, ``collator`` the
    :class:`~ckptkit.distill.data.MaskingCollator` (``fixed=True``) training will use.
    """
    return {"format": FORMAT, **teacher_digest(teacher_dir), **corpus.settings(), **masking_settings(collator),
            "top_k": int(top_k), "temperature": float(temperature), "value_dtype": value_dtype}


def masking_settings(collator) -> dict[str, Any]:
    """Every setting of a (dataclass) masking collator but the epoch, ``mask_weights`` as a digest.

    New collator options (whole-word masking...) are part of a cache's key without a change here.
    """
    import dataclasses

    settings: dict[str, Any] = {"masking": type(collator).__name__}
    for item in dataclasses.fields(collator):
        if not item.init or item.name == "epoch":
            continue
        value = getattr(collator, item.name)
        if item.name == "mask_weights" or (isinstance(value, np.ndarray) and value.size > 32):  # tables: a digest
            value = None if value is None else hashlib.sha256(np.asarray(value).tobytes()).hexdigest()[:16]
        elif isinstance(value, (list, tuple, np.ndarray)):
            value = [v.item() if hasattr(v, "item") else v for v in value]
        settings[item.name] = value
    return json.loads(json.dumps(settings, default=str))


def _start(directory: Path, *, key: Mapping[str, Any], layout: dict[str, Any], overwrite: bool, rank: int) -> None:
    """Check or create ``cache.json``; an existing cache for another key is refused (or wiped with ``overwrite``)."""
    meta = read_meta(directory)
    if meta is not None and overwrite and rank == 0:
        shutil.rmtree(directory / "pieces", ignore_errors=True)
        (directory / META).unlink()
        meta = None
    if meta is not None:
        check_key(directory, meta, key)
        stored = {name: meta.get(name) for name in layout}
        if stored != json.loads(json.dumps(layout)):
            raise UsageError(f"teacher cache stores {stored}, this build asks {layout}", path=directory,
                             hint="pass --overwrite to rebuild it, or choose another --out")
        return
    if directory.exists() and any(directory.iterdir()) and rank == 0:
        raise UsageError("folder is not empty and holds no teacher cache", path=directory,
                         hint="choose an empty or new --out")
    if rank == 0:
        directory.mkdir(parents=True, exist_ok=True)
        write_json(directory / META, {"key": dict(key), **layout, "complete": False})


class _PieceWriter:
    """Append the teacher outputs of one piece's batches to raw files in a temporary folder; rename at the end."""

    def __init__(self, folder: Path, names: Sequence[str]):
        self.folder, self.tmp = folder, folder.with_name(f".{folder.name}.tmp")
        shutil.rmtree(self.tmp, ignore_errors=True)   # left by an interrupted run
        self.tmp.mkdir(parents=True)
        self.files = {name: open(self.tmp / name, "wb") for name in names}
        self.offsets, self.rows = [0], 0

    def append(self, arrays: Mapping[str, np.ndarray], lengths: Sequence[int]) -> None:
        for name, array in arrays.items():
            self.files[name].write(np.ascontiguousarray(array).tobytes())
        for n in lengths:
            self.offsets.append(self.offsets[-1] + int(n))
        self.rows += len(lengths)

    def close(self, info: dict[str, Any]) -> int:
        for f in self.files.values():
            f.close()
        np.asarray(self.offsets, dtype=np.int64).tofile(self.tmp / "offsets.i64")
        write_json(self.tmp / "piece.json", {"rows": self.rows, "tokens": self.offsets[-1], **info})
        size = sum(p.stat().st_size for p in self.tmp.iterdir())
        self.tmp.replace(self.folder)
        return size

    def abort(self) -> None:
        for f in self.files.values():
            f.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


def _teacher_batch(teacher, batch: dict, *, device, dtype, hidden: Sequence[int]):
    import torch

    with torch.inference_mode(), torch.autocast(device_type=torch.device(device).type, dtype=dtype,
                                                enabled=dtype != torch.float32):
        return teacher(input_ids=batch["input_ids"].to(device), attention_mask=batch["attention_mask"].to(device),
                       output_hidden_states=bool(hidden))


def _piece_arrays(out, valid, *, layout: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """The stored arrays of one batch: valid (non-padding) positions only, row after row."""
    from ckptkit.distill.topk_kl import bucketed_topk

    value, arrays = layout["value_dtype"], {}
    if layout["top_k"]:
        top = bucketed_topk(out.logits[valid], k=layout["top_k"], temperature=layout["temperature"])
        arrays[f"logprobs.{value}"] = top.logprobs.cpu().numpy().astype(value)
        arrays[f"ids.{layout['id_dtype']}"] = top.indices.cpu().numpy().astype(layout["id_dtype"])
        rest = top.rest.cpu().numpy()
        rest[rest < np.finfo(value).min] = -np.inf   # an empty rest bucket (k covers the vocabulary)
        arrays[f"rest.{value}"] = rest.astype(value)
    for i in layout["hidden"]:
        arrays[f"hidden.{i}.{value}"] = out.hidden_states[i][valid].float().cpu().numpy().astype(value)
    return arrays


def _build_piece(directory: Path, piece, *, corpus, teacher, collator, layout, batch_size: int, device,
                 dtype) -> tuple[int, dict[str, Any]]:
    from ckptkit.distill.streaming import ID_STRIDE, piece_examples

    names = ([f"logprobs.{layout['value_dtype']}", f"ids.{layout['id_dtype']}", f"rest.{layout['value_dtype']}"]
             if layout["top_k"] else []) + [f"hidden.{i}.{layout['value_dtype']}" for i in layout["hidden"]]
    writer = _PieceWriter(piece_dir(directory, piece.index), names)
    started, teacher_s, batch = time.perf_counter(), 0.0, []
    examples = piece_examples(piece, corpus.tokenizer, max_seq_length=corpus.max_seq_length, pack=corpus.pack,
                              text_field=corpus.text_field, batch_lines=corpus.batch_lines)
    try:
        for j, ids in enumerate(examples):
            batch.append({"input_ids": ids, "example_id": piece.index * ID_STRIDE + j})
            if len(batch) == batch_size:
                teacher_s += _write_batch(writer, batch, teacher=teacher, collator=collator, layout=layout,
                                          device=device, dtype=dtype)
                batch = []
        if batch:
            teacher_s += _write_batch(writer, batch, teacher=teacher, collator=collator, layout=layout,
                                      device=device, dtype=dtype)
        info = {"build_s": time.perf_counter() - started, "teacher_s": teacher_s}
        return writer.close(info), info
    except BaseException as e:
        writer.abort()
        full = out_of_space(e, directory)
        if full is not None:
            raise full from e
        raise


def _write_batch(writer: _PieceWriter, rows: list[dict], *, teacher, collator, layout, device, dtype) -> float:
    batch = collator(rows)
    start = time.perf_counter()
    out = _teacher_batch(teacher, batch, device=device, dtype=dtype, hidden=layout["hidden"])
    if str(device).startswith("cuda"):
        import torch

        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    valid = batch["attention_mask"].bool().to(device)
    writer.append(_piece_arrays(out, valid, layout=layout), batch["attention_mask"].sum(1).tolist())
    return seconds


def _barrier() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def _layout(*, top_k: int, temperature: float, hidden_indices: Sequence[int], value_dtype: str, vocab_size: int,
            hidden_size: int) -> dict[str, Any]:
    if value_dtype not in VALUE_DTYPES:
        raise UsageError(f"--dtype must be one of {VALUE_DTYPES}, got {value_dtype!r}")
    return {"top_k": int(min(top_k, vocab_size)), "temperature": float(temperature),
            "hidden": sorted(int(i) for i in hidden_indices), "value_dtype": value_dtype,
            "id_dtype": "uint16" if vocab_size <= 1 << 16 else "int32", "hidden_size": int(hidden_size)}


def build_pieces(directory: str | Path, *, corpus, teacher, collator, key: Mapping[str, Any], top_k: int,
                 temperature: float, hidden_indices: Sequence[int], batch_size: int = 32, device="cpu",
                 dtype=None, value_dtype: str = "float16", rank: int = 0, world_size: int = 1,
                 overwrite: bool = False) -> CacheStats:
    """Build this rank's missing pieces (``rank::world_size``); rank 0 calls :func:`finish_cache` after a barrier."""
    import torch

    from ckptkit.progress import progress

    directory = Path(directory)
    config = teacher.config
    layout = _layout(top_k=top_k, temperature=temperature, hidden_indices=hidden_indices, value_dtype=value_dtype,
                     vocab_size=config.vocab_size, hidden_size=config.hidden_size)
    if not collator.fixed:
        raise UsageError("a teacher cache needs a fixed masking (MaskingCollator(fixed=True))")
    if rank == 0:
        _start(directory, key=key, layout=layout, overwrite=overwrite, rank=rank)
    _barrier()   # under DDP the others check cache.json once rank 0 has written (or wiped) it
    if rank != 0:
        _start(directory, key=key, layout=layout, overwrite=False, rank=rank)
    mine = corpus.pieces[rank::world_size]
    todo = [p for p in mine if not (piece_dir(directory, p.index) / "piece.json").is_file()]
    stats = CacheStats(pieces_reused=len(mine) - len(todo))
    teacher = teacher.eval().to(device)
    dtype = dtype or torch.float32
    started = time.perf_counter()
    for piece in progress(todo, total=len(todo), desc="teacher cache", unit="piece"):
        size, info = _build_piece(directory, piece, corpus=corpus, teacher=teacher, collator=collator,
                                  layout=layout, batch_size=batch_size, device=device, dtype=dtype)
        stats.pieces_built += 1
        stats.teacher_s += info["teacher_s"]
    stats.build_s = time.perf_counter() - started
    return stats


def finish_cache(directory: str | Path, *, stats: CacheStats) -> CacheStats:
    """Sum every piece's figures into ``cache.json`` and mark the cache complete (rank 0, after all ranks built)."""
    directory = Path(directory)
    meta = read_meta(directory)
    infos = [json.loads(p.read_text()) for p in sorted((directory / "pieces").glob("p*/piece.json"))]
    sizes = sum(f.stat().st_size for f in (directory / "pieces").glob("p*/*") if f.name != "piece.json")
    stats.examples, stats.tokens, stats.bytes = (sum(i["rows"] for i in infos), sum(i["tokens"] for i in infos),
                                                 sizes)
    stats.bytes_per_token = sizes / max(1, stats.tokens)
    total_build = sum(i["build_s"] for i in infos)
    total_teacher = sum(i["teacher_s"] for i in infos)
    meta.update(complete=True, pieces=len(infos), examples=stats.examples, tokens=stats.tokens, bytes=sizes,
                bytes_per_token=round(stats.bytes_per_token, 2), build_s=round(total_build, 3),
                teacher_s=round(total_teacher, 3),
                teacher_seconds_per_row=total_teacher / max(1, stats.examples), rows=stats.examples)
    write_json(directory / META, meta)
    return stats


def build_teacher_cache(directory: str | Path, **options: Any) -> CacheStats:
    """Build (or finish) a whole cache in this process: :func:`build_pieces` then :func:`finish_cache`.

    Args:
        directory: the cache folder (created; an existing cache for the same key is completed).
        options: :func:`build_pieces`'s keywords (corpus, teacher, collator, key, top_k, temperature, ...).

    Returns:
        :class:`CacheStats` of this call (pieces built now and reused, examples, tokens, bytes, seconds).
    """
    stats = build_pieces(directory, **options)
    return finish_cache(directory, stats=stats)
