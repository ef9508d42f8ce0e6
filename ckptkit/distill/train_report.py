"""What a distillation run ends with: :class:`TrainResult`, the summary, and the distilled hub folder's files.

Example:
    >>> r = TrainResult(summary={"steps": 3, "losses": {}}, eval={}, output_dir="o", teacher="t",
    ...                 student="s", wall_s=1.0, process_index=0)
    >>> r.steps, list(r.to_json())[:3]
    (3, ['steps', 'losses', 'eval'])
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ckptkit.distill.losses import LossWeights
from ckptkit.distill.models import STUDENT_FILE
from ckptkit.output.atomic import write_json

__all__ = ["TrainResult", "loss_summary", "cache_summary", "write_outputs", "weights_digest", "format_comparison"]


@dataclass
class TrainResult:
    """The run's report; ``to_json()`` is ``distill_report.json`` (and ``distill train --json``).

    ``summary`` is the training summary (objective, steps, losses, agreement, speed, cache) that
    ``student.json`` also records; the file fields are set on the main process only.
    """

    summary: dict[str, Any]
    eval: dict[str, Any]
    output_dir: str
    teacher: str
    student: str
    wall_s: float
    process_index: int
    files: dict[str, Any] = field(default_factory=dict)   # tokenizer_files, model_card
    plot: str | None = None
    pushed_to: str | None = None

    @property
    def steps(self) -> int:
        return int(self.summary["steps"])

    @property
    def losses(self) -> dict[str, dict[str, float]]:
        """Loss term -> {weight, first, last} for every term with a positive weight."""
        return self.summary["losses"]

    @property
    def top1_agreement(self) -> dict[str, float] | None:
        return self.summary.get("top1_agreement")

    @property
    def tokenizer_files(self) -> list[str]:
        """The tokenizer files of the distilled folder (main process)."""
        return list(self.files.get("tokenizer_files", []))

    @property
    def world_size(self) -> int:
        return int(self.summary.get("world_size", 1))

    def to_json(self) -> dict[str, Any]:
        """The report as a JSON-ready dict (the same keys, in the same order, as ``distill_report.json``)."""
        report = {**self.summary, "eval": self.eval, "output_dir": self.output_dir, "teacher": self.teacher,
                  "student": self.student, "wall_s": self.wall_s, "process_index": self.process_index,
                  **self.files}
        if self.plot is not None:
            report["plot"] = self.plot
        if self.pushed_to is not None:
            report["pushed_to"] = self.pushed_to
        return report


def loss_summary(history: list[dict[str, Any]], weights: LossWeights) -> dict[str, dict[str, float]]:
    """First and last logged value of each weighted loss term."""
    rows = [row for row in history if "loss" in row]
    summary = {}
    for name, weight in weights.as_dict().items():
        values = [row[f"loss_{name}"] for row in rows if f"loss_{name}" in row]
        if weight > 0 and values:
            summary[name] = {"weight": weight, "first": round(values[0], 5), "last": round(values[-1], 5)}
    return summary


def cache_summary(cache, stats: dict[str, Any]) -> dict[str, Any]:
    """What the teacher cache cost and saved."""
    per_row = cache.meta["teacher_seconds_per_row"]
    spent = cache.read_seconds + stats.get("build_seconds", 0.0)
    return {"built_now": bool(stats), "top_k": cache.meta["top_k"],
            "bytes_per_token": cache.meta.get("bytes_per_token"),
            "build_s": round(stats.get("build_seconds", 0.0), 2), "read_s": round(cache.read_seconds, 2),
            "teacher_forward_avoided_s": round(per_row * cache.rows_read, 2),
            "saved_s": round(per_row * cache.rows_read - spent, 2)}


def _record_student(info: dict[str, Any]) -> dict[str, Any]:
    """student.json as ckptkit.json's ``student`` section, which wants ``arch`` as a dict."""
    arch = info.get("arch")
    return {**info, "arch": arch if isinstance(arch, dict) or arch is None else {"kind": arch}}


def _save_tokenizer(out: Path, tokenizer, student_dir: Path, teacher: str | os.PathLike) -> list[str]:
    """Every tokenizer file of the student (else of the teacher), as it is, and no other.

    Copying keeps what ``save_pretrained`` of the loaded fast tokenizer would drop (KoBERT's SentencePiece
    model and vocab.txt, which ``KoBertTokenizer.from_pretrained`` needs)."""
    from ckptkit.tokenizers.files import replace_tokenizer_files, tokenizer_files

    for folder in (student_dir, Path(teacher)):
        if tokenizer_files(folder):
            return replace_tokenizer_files(folder, out)
    tokenizer.save_pretrained(str(out))  # a teacher on the Hub: its tokenizer as loaded
    return tokenizer_files(out)


def _save_st_modules(out: Path, student_dir: Path, teacher: str | os.PathLike) -> list[str]:
    """The sentence-transformers stack of the student (else of a local teacher), so the result loads with
    ``SentenceTransformer(out)`` and embeds as the student did (Pooling, Normalize kept)."""
    from ckptkit.distill.st_modules import copy_st_modules, is_sentence_transformer

    source = student_dir if is_sentence_transformer(student_dir) else Path(teacher)
    return copy_st_modules(source, out) if source.is_dir() else []


def _record(model, student_dir: Path, student_info: dict[str, Any], summary: dict[str, Any],
            command: str | None) -> dict[str, Any]:
    from ckptkit.output.record import read_record

    try:
        record = read_record(student_dir)
    except Exception:  # a student made without ckptkit: start a record
        record = {"model": {}, "source": {"path": str(student_dir), "format": "hub",
                                          "family": model.config.model_type}}
    record = {**record, "kind": "distilled", "command": command or "ckptkit distill train",
              "model": {**record.get("model", {}), "family": model.config.model_type,
                        "model_class": type(model).__name__,
                        "num_parameters": sum(p.numel() for p in model.parameters())},
              "student": _record_student({**student_info, "training": summary})}
    for key in ("ckptkit_version", "created"):
        record.pop(key, None)
    return record


def write_outputs(out: Path, *, trainer, tokenizer, student_info: dict[str, Any], student_dir: Path,
                  summary: dict[str, Any], command: str | None) -> dict[str, Any]:
    """Save the hub folder: weights, tokenizer, student.json, ckptkit.json, model card; returns what was written."""
    trainer.save_model(str(out))
    teacher = student_info.get("teacher") or student_dir
    notes: dict[str, Any] = {"tokenizer_files": _save_tokenizer(out, tokenizer, student_dir, teacher)}
    st_files = _save_st_modules(out, student_dir, teacher)
    if st_files:
        notes["sentence_transformers_files"] = st_files
    write_json(out / STUDENT_FILE, {**student_info, "training": summary})
    try:
        from ckptkit.output.card import write_model_card
        from ckptkit.output.record import write_record
    except ImportError as e:  # pragma: no cover - the hub package ships with ckptkit
        notes["model_card"] = f"not written ({e})"
        return notes
    model = trainer.accelerator.unwrap_model(trainer.model)
    write_record(out, _record(model, student_dir, student_info, summary, command))
    notes["model_card"] = str(write_model_card(out))
    return notes


def weights_digest(model) -> str:
    """SHA-256 over every parameter's name and float32 bytes (compares DDP replicas).

    Example:
        >>> import torch
        >>> len(weights_digest(torch.nn.Linear(2, 2)))
        64
    """
    import hashlib

    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()


def format_comparison(report: dict[str, Any]) -> str:
    """The distilled student beside its MLM-only baseline: held-out scores and training MLM loss, as text."""
    from ckptkit.distill.held_out import SCORE_LABELS
    from ckptkit.formatting import format_table

    baseline, held_out = report.get("baseline"), report.get("held_out")
    if not baseline or not held_out:
        return ""
    base_key = f"baseline_{baseline['kind']}"
    pooled = {"embedding_cosine": f" ({held_out['pooling']})"} if held_out.get("pooling") else {}
    rows = [[label + pooled.get(key, "") + (" (lower is better)" if lower else ""), f"{held_out['distilled'][key]:.4f}",
             f"{held_out[base_key][key]:.4f}"]
            for key, (label, lower) in SCORE_LABELS.items() if key in held_out["distilled"]]
    kd_mlm, base_mlm = report["losses"].get("mlm"), baseline["losses"].get("mlm")
    if kd_mlm and base_mlm:
        rows.append(["training MLM loss first -> last", f"{kd_mlm['first']:.3f} -> {kd_mlm['last']:.3f}",
                     f"{base_mlm['first']:.3f} -> {base_mlm['last']:.3f}"])
    head = (f"distilled vs {baseline['what']} ({baseline['steps']} steps each; held-out: {held_out['blocks']} "
            f"blocks, {held_out['masked_tokens']} masked tokens)")
    return head + "\n" + format_table(rows, ["", "distilled (KD)", f"baseline ({baseline['kind']})"], right={1, 2})
