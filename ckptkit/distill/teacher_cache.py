"""Teacher outputs computed once for a fixed masking, stored as safetensors, read back per batch.

What is stored per training block (in float16): the teacher's top-k logits with their token ids
and, when a hidden-state loss is on, the hidden states the losses read. One file per process
(``shard-RRRRR-of-WWWWW.safetensors``) plus ``meta.json``, whose ``fingerprint`` says what the
cache was built for; a cache with another fingerprint is rebuilt.

Example:
    >>> cache = TeacherCache.open("out/teacher-cache")  # doctest: +SKIP
    >>> outputs = cache.lookup(batch["example_id"], seq_len=128)  # doctest: +SKIP
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from ckptkit.errors import CorruptCheckpointError
from ckptkit.output.atomic import out_of_space, write_json

__all__ = ["TeacherOutputs", "TeacherCache", "build_teacher_cache", "cache_is_valid"]

META = "meta.json"


@dataclass
class TeacherOutputs:
    """What the losses read from the teacher for one batch.

    ``logits`` is ``[b, s, vocab]``, or ``[b, s, k]`` top-k values when ``indices`` holds their ids;
    ``hidden`` maps a ``hidden_states`` index (0 = embeddings, ``j + 1`` = layer ``j``) to ``[b, s, h]``.
    """

    logits: Any = None
    indices: Any = None
    hidden: dict[int, Any] = field(default_factory=dict)
    attentions: Sequence[Any] | None = None


def _shard_name(rank: int, world: int) -> str:
    return f"shard-{rank:05d}-of-{world:05d}.safetensors"


def cache_is_valid(directory: str | Path, fingerprint: dict[str, Any]) -> bool:
    """True when ``directory`` holds a complete cache built for ``fingerprint``.

    Example:
        >>> cache_is_valid("/nonexistent", {})
        False
    """
    meta_path = Path(directory) / META
    if not meta_path.is_file():
        return False
    meta = json.loads(meta_path.read_text())
    complete = all((Path(directory) / name).is_file() for name in meta.get("shards", []))
    return complete and meta.get("fingerprint") == json.loads(json.dumps(fingerprint))


def build_teacher_cache(directory: str | Path, *, teacher, dataset, collator, batch_size: int, top_k: int,
                        hidden_indices: Sequence[int], fingerprint: dict[str, Any], device, dtype,
                        rank: int = 0, world_size: int = 1, max_seq_length: int) -> dict[str, float]:
    """Run ``teacher`` over this process's share of ``dataset`` (rows ``rank::world_size``) and store it.

    ``collator`` must mask deterministically (``fixed=True``). Rank 0 writes ``meta.json`` after
    its shard; callers synchronise processes before reading. Returns timing figures.

    Example:
        >>> stats = build_teacher_cache("out/teacher-cache", teacher=t, dataset=ds, collator=c,  # doctest: +SKIP
        ...                             batch_size=32, top_k=32, hidden_indices=[6], fingerprint={},
        ...                             device="cpu", dtype=torch.float32, max_seq_length=128)
    """
    import torch
    from safetensors.torch import save_file

    from ckptkit.progress import progress

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    rows = list(range(rank, len(dataset), world_size))
    store: dict[str, list] = {"example_id": [], "topk_values": [], "topk_indices": []}
    store.update({f"hidden.{i}": [] for i in hidden_indices})
    teacher_seconds, start = 0.0, time.perf_counter()
    batches = [rows[i:i + batch_size] for i in range(0, len(rows), batch_size)]
    for batch_rows in progress(batches, desc="teacher cache", unit="batch"):
        batch = collator([dataset[r] for r in batch_rows])
        pad = max_seq_length - batch["input_ids"].shape[1]
        t0 = time.perf_counter()
        with torch.inference_mode(), torch.autocast(device_type=torch.device(device).type, dtype=dtype,
                                                    enabled=dtype != torch.float32):
            out = teacher(input_ids=batch["input_ids"].to(device), attention_mask=batch["attention_mask"].to(device),
                          output_hidden_states=bool(hidden_indices))
        teacher_seconds += time.perf_counter() - t0
        store["example_id"].append(batch["example_id"])
        if top_k > 0:
            values, indices = out.logits.float().topk(top_k, dim=-1)
            store["topk_values"].append(torch.nn.functional.pad(values, (0, 0, 0, pad)).half().cpu())
            store["topk_indices"].append(torch.nn.functional.pad(indices, (0, 0, 0, pad)).int().cpu())
        for i in hidden_indices:
            h = out.hidden_states[i].float()
            store[f"hidden.{i}"].append(torch.nn.functional.pad(h, (0, 0, 0, pad)).half().cpu())
    tensors = {name: torch.cat(parts).contiguous() for name, parts in store.items() if parts}
    _save_shard(save_file, tensors, directory / _shard_name(rank, world_size))
    stats = {"build_seconds": time.perf_counter() - start, "teacher_seconds": teacher_seconds,
             "rows": len(rows)}
    if rank == 0:
        meta = {"fingerprint": fingerprint, "shards": [_shard_name(r, world_size) for r in range(world_size)],
                "top_k": top_k, "hidden_indices": list(hidden_indices), "max_seq_length": max_seq_length,
                "teacher_seconds_per_row": teacher_seconds / max(1, len(rows)), "rows": len(dataset)}
        write_json(directory / META, meta)
    return stats


def _save_shard(save_file, tensors: dict, path: Path) -> None:
    """``save_file`` into a temporary sibling renamed to ``path``; nothing is left behind on failure."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        save_file(tensors, str(tmp))
        tmp.replace(path)
    except BaseException as e:
        tmp.unlink(missing_ok=True)
        full = out_of_space(e, path)
        if full is not None:
            raise full from e
        raise


class TeacherCache:
    """Read-only access to a built cache by example id (memory-mapped safetensors)."""

    def __init__(self, directory: Path, meta: dict[str, Any], handles: list, where: dict[int, tuple[int, int]]):
        self.directory = directory
        self.meta = meta
        self._handles = handles
        self._where = where
        self.read_seconds = 0.0
        self.rows_read = 0

    @classmethod
    def open(cls, directory: str | Path) -> "TeacherCache":
        """Open the cache in ``directory`` (built by :func:`build_teacher_cache`).

        Example:
            >>> TeacherCache.open("out/teacher-cache").meta["top_k"]  # doctest: +SKIP
            32
        """
        from safetensors import safe_open

        directory = Path(directory)
        meta = json.loads((directory / META).read_text())
        handles, where = [], {}
        for shard_index, name in enumerate(meta["shards"]):
            handle = safe_open(str(directory / name), framework="pt")
            handles.append(handle)
            for row, example_id in enumerate(handle.get_tensor("example_id").tolist()):
                where[int(example_id)] = (shard_index, row)
        if len(where) != meta["rows"]:
            raise CorruptCheckpointError(f"teacher cache holds {len(where)} rows, meta.json says {meta['rows']}",
                                         path=directory, hint="delete the folder to rebuild it")
        return cls(directory, meta, handles, where)

    def _rows(self, name: str, example_ids: list[int], seq_len: int):
        import torch

        parts = []
        for example_id in example_ids:
            shard, row = self._where[example_id]
            parts.append(self._handles[shard].get_slice(name)[row:row + 1, :seq_len])
        return torch.cat(parts)

    def lookup(self, example_ids, *, seq_len: int, device=None, dtype=None) -> TeacherOutputs:
        """The stored teacher outputs of ``example_ids``, cut to ``seq_len`` positions."""
        start = time.perf_counter()
        ids = [int(i) for i in example_ids]
        outputs = TeacherOutputs()
        if self.meta["top_k"] > 0:
            outputs.logits = self._rows("topk_values", ids, seq_len).to(device=device, dtype=dtype)
            outputs.indices = self._rows("topk_indices", ids, seq_len).to(device=device).long()
        for i in self.meta["hidden_indices"]:
            outputs.hidden[int(i)] = self._rows(f"hidden.{i}", ids, seq_len).to(device=device, dtype=dtype)
        self.read_seconds += time.perf_counter() - start
        self.rows_read += len(ids)
        return outputs
