"""``evaluate_student``: how close a student is to its teacher, how much smaller and faster.

MLM models: accuracy and perplexity of both on the same masked tokens, top-1 agreement and
KL(teacher || student) on them, cosine of last hidden states. Every model: cosine between the
sentence embeddings of teacher and student (pooled as the teacher's sentence-transformers stack
pools them, :mod:`ckptkit.distill.pooling`; mean-pooled without one), parameter counts,
weight-file sizes, CPU latency per batch (median and p90) and the speedup.

Example:
    >>> r = evaluate_student(teacher="out/kobert", student="out/distil", eval_files=["held_out.txt"])  # doctest: +SKIP
    >>> r["agreement"]["top1"]  # doctest: +SKIP
    0.87
"""

from __future__ import annotations

import math
import os
import statistics
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ckptkit.distill.models import read_student_json
from ckptkit.errors import UsageError
from ckptkit.formatting import format_table, human_bytes

__all__ = ["evaluate_student", "format_eval_table", "weight_file_bytes", "latency", "compare_latency"]

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth")


def weight_file_bytes(folder: str | os.PathLike) -> int:
    """Total size of the weight files in a hub folder.

    Example:
        >>> weight_file_bytes("/nonexistent")
        0
    """
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    return sum(p.stat().st_size for p in folder.iterdir() if p.suffix in WEIGHT_SUFFIXES and p.is_file())


def compare_latency(models: dict[str, Any], batch: dict[str, Any], *, runs: int, warmup: int = 3,
                    warmup_s: float = 0.5) -> dict[str, dict[str, float]]:
    """Median and p90 wall time (ms) of one forward pass of each model on ``batch`` (no grad), fairly.

    Each model is warmed up first (at least ``warmup`` passes and ``warmup_s`` seconds: allocator,
    thread pool and caches settle), then the timed passes alternate between the models, so a slow
    spell of the machine hits all of them alike. ``runs`` timed passes per model.

    Example:
        >>> compare_latency({"teacher": teacher, "student": student}, batch, runs=10)  # doctest: +SKIP
        {'teacher': {'median_ms': 6.2, 'p90_ms': 6.9, ...}, 'student': {'median_ms': 3.1, ...}}
    """
    import torch

    if runs < 1:
        from ckptkit.errors import UsageError

        raise UsageError(f"--latency-runs must be at least 1, got {runs}")
    warmed: dict[str, int] = {}
    times: dict[str, list[float]] = {name: [] for name in models}
    with torch.inference_mode():
        for name, model in models.items():
            started, count = time.perf_counter(), 0
            while count < warmup or time.perf_counter() - started < warmup_s:
                model(**batch)
                count += 1
            warmed[name] = count
        for _ in range(runs):
            for name, model in models.items():
                start = time.perf_counter()
                model(**batch)
                times[name].append((time.perf_counter() - start) * 1000)
    return {name: {"median_ms": statistics.median(t), "p90_ms": float(np.percentile(t, 90)), "runs": runs,
                   "warmup_runs": warmed[name]} for name, t in times.items()}


def latency(model, batch: dict[str, Any], *, runs: int, warmup: int = 3) -> dict[str, float]:
    """:func:`compare_latency` of one model.

    Example:
        >>> latency(model, batch, runs=10)  # doctest: +SKIP
        {'median_ms': 3.1, 'p90_ms': 3.4, 'runs': 10, 'warmup_runs': 160}
    """
    return compare_latency({"model": model}, batch, runs=runs, warmup=warmup)["model"]


def _load_pair(teacher: str, student: str, objective: str):
    from ckptkit.distill.models import load_model

    if objective == "auto":
        try:
            return load_model(teacher, objective="mlm", role="teacher"), load_model(student, objective="mlm",
                                                                                     role="student"), "mlm"
        except UsageError:
            objective = "hidden"
    return (load_model(teacher, objective=objective, role="teacher"),
            load_model(student, objective=objective, role="student"), objective)


def _mlm_metrics(teacher, student, blocks, collator, *, batch_size: int, max_batches: int) -> dict[str, Any]:
    import torch
    import torch.nn.functional as F

    sums = {"n": 0, "t_correct": 0, "s_correct": 0, "t_nll": 0.0, "s_nll": 0.0, "agree": 0, "kl": 0.0,
            "cos": 0.0, "tokens": 0}
    rows = list(range(min(len(blocks), batch_size * max_batches)))
    for start in range(0, len(rows), batch_size):
        batch = collator([blocks[i] for i in rows[start:start + batch_size]])
        inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
        with torch.inference_mode():
            t_out = teacher(**inputs, output_hidden_states=True)
            s_out = student(**inputs, output_hidden_states=True)
        mask = batch["labels"] != -100
        labels = batch["labels"][mask]
        t_logp = F.log_softmax(t_out.logits[mask].float(), -1)
        s_logp = F.log_softmax(s_out.logits[mask].float(), -1)
        sums["n"] += int(labels.numel())
        sums["t_correct"] += int((t_logp.argmax(-1) == labels).sum())
        sums["s_correct"] += int((s_logp.argmax(-1) == labels).sum())
        sums["t_nll"] += float(-t_logp.gather(-1, labels[:, None]).sum())
        sums["s_nll"] += float(-s_logp.gather(-1, labels[:, None]).sum())
        sums["agree"] += int((t_logp.argmax(-1) == s_logp.argmax(-1)).sum())
        sums["kl"] += float((t_logp.exp() * (t_logp - s_logp)).sum())
        tokens = batch["attention_mask"].bool()
        sums["cos"] += float(F.cosine_similarity(t_out.hidden_states[-1][tokens].float(),
                                                 s_out.hidden_states[-1][tokens].float(), dim=-1).sum())
        sums["tokens"] += int(tokens.sum())
    n = max(1, sums["n"])
    return {"masked_tokens": sums["n"],
            "teacher": {"mlm_accuracy": sums["t_correct"] / n, "perplexity": math.exp(sums["t_nll"] / n)},
            "student": {"mlm_accuracy": sums["s_correct"] / n, "perplexity": math.exp(sums["s_nll"] / n)},
            "agreement": {"top1": sums["agree"] / n, "kl": sums["kl"] / n,
                          "hidden_cosine": sums["cos"] / max(1, sums["tokens"])}}


def _embedding_cosine(teacher, student, sentences: list[list[int]], *, pad_id: int, batch_size: int,
                      pool) -> float:
    import torch
    import torch.nn.functional as F

    total = 0.0
    for start in range(0, len(sentences), batch_size):
        chunk = sentences[start:start + batch_size]
        length = max(len(s) for s in chunk)
        ids = torch.full((len(chunk), length), pad_id, dtype=torch.long)
        mask = torch.zeros_like(ids)
        for row, s in enumerate(chunk):
            ids[row, :len(s)], mask[row, :len(s)] = torch.tensor(s), 1
        with torch.inference_mode():
            t = pool(teacher(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states[-1], mask)
            s = pool(student(input_ids=ids, attention_mask=mask, output_hidden_states=True).hidden_states[-1], mask)
        total += float(F.cosine_similarity(t.float(), s.float(), dim=-1).sum())
    return total / max(1, len(sentences))


def evaluate_student(*, student: str | os.PathLike, eval_files: Sequence[str | os.PathLike],
                     teacher: str | os.PathLike | None = None, objective: str = "auto", max_seq_length: int = 128,
                     batch_size: int = 16, max_batches: int = 50, latency_runs: int = 10,
                     seed: int = 42, quiet: bool = False) -> dict[str, Any]:
    """Compare ``student`` with ``teacher`` on ``eval_files``; returns a JSON-ready dict.

    Args:
        student: student hub folder; its ``student.json`` names the teacher if ``teacher`` is None.
        eval_files: held-out text, one sentence or document per line (or a datasets folder).
        objective: ``"mlm"``, ``"hidden"`` (embeddings only) or ``"auto"``.
        latency_runs: timed forward passes on one ``batch_size x max_seq_length`` batch per model.

    Example:
        >>> evaluate_student(student="out/distil", eval_files=["held_out.txt"])["speedup"]  # doctest: +SKIP
        2.9
    """
    import torch
    from transformers import AutoTokenizer

    from ckptkit.distill import data as data_mod

    if quiet:
        from ckptkit.distill.train import _quiet_libraries

        _quiet_libraries()
    teacher = teacher or read_student_json(student).get("teacher")
    if not teacher:
        raise UsageError("no teacher: pass --teacher (the student has no student.json naming one)")
    from ckptkit.distill.pooling import read_pooling

    pooling = read_pooling(teacher)
    tokenizer = AutoTokenizer.from_pretrained(str(teacher))
    t_model, s_model, objective = _load_pair(str(teacher), str(student), objective)
    t_model.eval(), s_model.eval()
    if t_model.config.vocab_size != s_model.config.vocab_size:
        from ckptkit.errors import ConfigError
        raise ConfigError("teacher and student do not share the vocabulary")
    from ckptkit.distill.models import fit_seq_length

    max_seq_length = fit_seq_length(max_seq_length, t_model.config, s_model.config)
    texts = data_mod.load_texts(eval_files)
    blocks = data_mod.tokenize_and_pack(texts, tokenizer, max_seq_length=max_seq_length)
    special = sorted(set(tokenizer.all_special_ids))
    collator = data_mod.MaskingCollator(pad_id=tokenizer.pad_token_id, mask_id=tokenizer.mask_token_id,
                                        special_ids=special, vocab_size=len(tokenizer), seed=seed, fixed=True,
                                        mlm_probability=0.15 if objective == "mlm" else 0.0)
    result: dict[str, Any] = {"objective": objective, "teacher_path": str(teacher), "student_path": str(student),
                              "examples": min(len(blocks), batch_size * max_batches),
                              "teacher": {}, "student": {}, "agreement": {}}
    if objective == "mlm":
        mlm = _mlm_metrics(t_model, s_model, blocks, collator, batch_size=batch_size, max_batches=max_batches)
        result["masked_tokens"] = mlm["masked_tokens"]
        for key in ("teacher", "student", "agreement"):
            result[key].update(mlm[key])
    sentences = data_mod.tokenize_lines(texts, tokenizer, max_seq_length=max_seq_length,
                                        limit=batch_size * max_batches)
    result["sentences"], result["pooling"] = len(sentences), pooling.describe()
    result["agreement"]["embedding_cosine"] = _embedding_cosine(t_model, s_model, sentences, pool=pooling,
                                                                pad_id=tokenizer.pad_token_id, batch_size=batch_size)
    timing_batch = collator([blocks[i] for i in range(min(batch_size, len(blocks)))])
    timing_inputs = {"input_ids": timing_batch["input_ids"], "attention_mask": timing_batch["attention_mask"]}
    timings = compare_latency({"teacher": t_model, "student": s_model}, timing_inputs, runs=latency_runs)
    for role, model, folder in (("teacher", t_model, teacher), ("student", s_model, student)):
        result[role]["parameters"] = sum(p.numel() for p in model.parameters())
        result[role]["file_bytes"] = weight_file_bytes(folder)
        result[role].update(timings[role])
    result["latency_batch"] = list(timing_inputs["input_ids"].shape)
    result["torch_threads"] = torch.get_num_threads()
    result["speedup"] = result["teacher"]["median_ms"] / max(result["student"]["median_ms"], 1e-9)
    return result


# metric key -> (label, formatter)
ROWS: dict[str, tuple[str, Any]] = {
    "mlm_accuracy": ("MLM accuracy (masked)", lambda v: f"{v:.4f}"),
    "perplexity": ("perplexity (masked)", lambda v: f"{v:.3f}"),
    "parameters": ("parameters", lambda v: f"{v:,}"),
    "file_bytes": ("weight files", human_bytes),
    "median_ms": ("CPU latency/batch median", lambda v: f"{v:.2f} ms"),
    "p90_ms": ("CPU latency/batch p90", lambda v: f"{v:.2f} ms"),
}
AGREEMENT_ROWS: dict[str, str] = {
    "top1": "top-1 agreement", "kl": "KL(teacher||student)", "hidden_cosine": "hidden-state cosine",
    "embedding_cosine": "sentence-embedding cosine",
}


def format_eval_table(result: dict[str, Any]) -> str:
    """Teacher and student side by side, then the agreement metrics and the speedup."""
    rows = [[label, fmt(result["teacher"][key]), fmt(result["student"][key])]
            for key, (label, fmt) in ROWS.items() if key in result["student"]]
    table = format_table(rows, ["metric", "teacher", "student"], right={1, 2})
    pooled = f" ({result['pooling']})" if result.get("pooling") else ""
    pairs = [[label + (pooled if key == "embedding_cosine" else ""), f"{result['agreement'][key]:.4f}"]
             for key, label in AGREEMENT_ROWS.items() if key in result["agreement"]]
    pairs.append(["speedup (median latency)", f"{result['speedup']:.2f}x"])
    return table + "\n\n" + format_table(pairs, ["student vs teacher", "value"], right={1})
