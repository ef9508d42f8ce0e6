"""``train_student``: the library entry behind ``ckptkit distill train``.

Loads teacher and student, prepares the data, runs :class:`DistillationTrainer` (optionally from
a teacher-output cache, optionally resuming), and writes the distilled student as a hub folder
(weights, config, tokenizer, ``student.json`` with the training summary, ``ckptkit.json``, model
card), ``train_log.jsonl``, ``loss_curves.png`` and ``distill_report.json`` into ``output_dir``.

Example:
    >>> report = train_student(teacher="out/teacher", student="out/student", train_files=["corpus.txt"],  # doctest: +SKIP
    ...                        output_dir="out/distilled", training_args={"max_steps": 1000})
    >>> report["losses"]["ce"]["last"] < report["losses"]["ce"]["first"]  # doctest: +SKIP
    True
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from pathlib import Path
from typing import Any, Sequence

from ckptkit.distill.losses import LossWeights
from ckptkit.distill.models import STUDENT_FILE, read_student_json
from ckptkit.errors import HubError, UsageError
from ckptkit.output.atomic import write_json

__all__ = ["train_student", "OBJECTIVE_WEIGHTS", "resolve_weights", "weights_digest"]

# objective -> default loss weights (``--objective mlm`` = DistilBERT's published command)
OBJECTIVE_WEIGHTS: dict[str, LossWeights] = {
    "mlm": LossWeights(),
    "hidden": LossWeights(ce=0.0, mlm=0.0, cos=1.0, mse=1.0, attn=0.0, pooled_cos=1.0),
}

# options ckptkit sets unless the caller gives its own value
TRAINING_DEFAULTS: dict[str, Any] = {
    "report_to": "none",
    "logging_steps": 10,
    "save_steps": 500,
    "save_total_limit": 3,
    "dataloader_num_workers": 0,
}


# --report-to integration -> (modules that provide it, the pip package to install)
REPORTERS: dict[str, tuple[tuple[str, ...], str]] = {
    "tensorboard": (("tensorboard", "tensorboardX"), "ckptkit[tensorboard]"),
    "wandb": (("wandb",), "wandb"),
    "mlflow": (("mlflow",), "mlflow"),
}


def check_reporters(report_to: str | Sequence[str] | None) -> None:
    """A one-line error for a ``--report-to`` integration whose package is not installed."""
    import importlib.util

    names = report_to.split(",") if isinstance(report_to, str) else list(report_to or [])
    for name in (n.strip() for n in names):
        modules, package = REPORTERS.get(name, ((), ""))
        if modules and not any(importlib.util.find_spec(m) for m in modules):
            raise UsageError(f"--report-to {name} needs the {modules[0]} package, which is not installed",
                             hint=f"pip install '{package}', or --report-to none")


def resolve_weights(objective: str, overrides: dict[str, float | None] | None = None) -> LossWeights:
    """The objective's default weights with the given (non-None) ones replaced.

    Example:
        >>> resolve_weights("mlm", {"mse": 0.5, "ce": None}).mse
        0.5
        >>> resolve_weights("hidden").ce
        0.0
    """
    if objective not in OBJECTIVE_WEIGHTS:
        raise UsageError(f"unknown objective {objective!r}; choose one of {sorted(OBJECTIVE_WEIGHTS)}")
    chosen = {k: float(v) for k, v in (overrides or {}).items() if v is not None}
    weights = dataclasses.replace(OBJECTIVE_WEIGHTS[objective], **chosen)
    if objective == "hidden" and (weights.ce > 0 or weights.mlm > 0):
        raise UsageError("--objective hidden has no MLM head to train: --alpha-ce and --alpha-mlm must be 0")
    if not any(v > 0 for v in weights.as_dict().values()):
        raise UsageError("every loss weight is 0: nothing to train")
    return weights


def _barrier() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def _log_callback(path: Path, *, quiet: bool, print_lines: bool):
    from transformers import TrainerCallback

    from ckptkit.cli.common import info

    class LogLines(TrainerCallback):
        """Append every log to ``train_log.jsonl`` and print a short line (main process only)."""

        def on_log(self, args, state, control, logs=None, **kwargs):
            if not state.is_world_process_zero or not logs:
                return
            row = {"step": state.global_step, **logs}
            with path.open("a", encoding="utf-8") as f:
                f.write(json.dumps(row) + "\n")
            if print_lines:
                shown = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in logs.items()
                                 if k not in ("epoch", "grad_norm"))
                info(f"step {state.global_step}: {shown}", quiet=quiet)

    return LogLines()


def _loss_summary(history: list[dict[str, Any]], weights: LossWeights) -> dict[str, dict[str, float]]:
    rows = [row for row in history if "loss" in row]
    summary = {}
    for name, weight in weights.as_dict().items():
        values = [row[f"loss_{name}"] for row in rows if f"loss_{name}" in row]
        if weight > 0 and values:
            summary[name] = {"weight": weight, "first": round(values[0], 5), "last": round(values[-1], 5)}
    return summary


def _cache_fingerprint(*, teacher: str, dataset, collator, top_k: int, hidden: Sequence[int],
                       max_seq_length: int) -> dict[str, Any]:
    weights = collator.mask_weights
    return {"teacher": str(Path(teacher).resolve()), "data": dataset._fingerprint, "seed": collator.seed,
            "mlm_probability": collator.mlm_probability, "top_k": top_k, "hidden": list(hidden),
            "max_seq_length": max_seq_length, "smoothing": None if weights is None else float(weights.sum())}


def _record_student(info: dict[str, Any]) -> dict[str, Any]:
    """student.json as ckptkit.json's ``student`` section, which wants ``arch`` as a dict."""
    arch = info.get("arch")
    return {**info, "arch": arch if isinstance(arch, dict) or arch is None else {"kind": arch}}


def _quiet_libraries() -> None:
    import datasets
    import transformers

    datasets.disable_progress_bars()
    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()


def _check_teacher_tokenizer(teacher: str | os.PathLike) -> None:
    """A local teacher must have tokenizer files: transformers would silently make an empty tokenizer."""
    from ckptkit.tokenizers.files import tokenizer_files

    if Path(teacher).is_dir() and not tokenizer_files(teacher):
        raise UsageError("the teacher folder has no tokenizer files (vocab.txt, tokenizer.json, ...): the corpus "
                         "is tokenized with the teacher's tokenizer", path=teacher,
                         hint="convert the teacher with its vocab.txt (or --spm) so that it gets one")


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


def _write_outputs(out: Path, *, trainer, tokenizer, student_info: dict[str, Any], student_dir: Path,
                   summary: dict[str, Any], command: str | None) -> dict[str, Any]:
    """Save the hub folder: weights, tokenizer, student.json, ckptkit.json, model card."""
    trainer.save_model(str(out))
    notes: dict[str, Any] = {"tokenizer_files": _save_tokenizer(out, tokenizer, student_dir,
                                                                student_info.get("teacher") or student_dir)}
    write_json(out / STUDENT_FILE, {**student_info, "training": summary})
    try:
        from ckptkit.output.card import write_model_card
        from ckptkit.output.record import read_record, write_record
    except ImportError as e:  # pragma: no cover - the hub package ships with ckptkit
        notes["model_card"] = f"not written ({e})"
        return notes
    model = trainer.accelerator.unwrap_model(trainer.model)
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
    write_record(out, record)
    notes["model_card"] = str(write_model_card(out))
    return notes


def train_student(*, student: str | os.PathLike, train_files: Sequence[str | os.PathLike],
                  output_dir: str | os.PathLike, teacher: str | os.PathLike | None = None,
                  validation_files: Sequence[str | os.PathLike] = (), objective: str = "mlm",
                  weights: LossWeights | None = None, temperature: float = 2.0, ce_on: str = "all",
                  layer_map: str | None = None, max_seq_length: int = 128, mlm_probability: float = 0.15,
                  mlm_smoothing: float = 0.0, text_column: str = "text", preprocessing_num_workers: int | None = None,
                  cache_teacher: bool = False, cache_top_k: int = 64, resume: bool = False,
                  training_args: dict[str, Any] | None = None, quiet: bool = False, print_lines: bool = True,
                  push_to_hub: str | None = None, command: str | None = None) -> dict[str, Any]:
    """Distil ``teacher`` into ``student`` on ``train_files``; returns the run report.

    Args:
        student: hub folder of the student (from ``ckptkit distill init``: has ``student.json``).
        train_files: text files (one document/sentence per line) or one ``save_to_disk`` folder.
        output_dir: where checkpoints, logs and the final hub folder go.
        teacher: teacher hub folder (default: ``student.json``'s ``teacher``).
        objective: ``"mlm"`` (soft targets + MLM + hidden losses) or ``"hidden"`` (embedding models).
        weights: loss weights; default :data:`OBJECTIVE_WEIGHTS` of the objective.
        layer_map: ``"0,4,8"``: teacher layer of each student layer (default: ``student.json``).
        cache_teacher: compute teacher outputs once (fixed masking) and reuse them every epoch.
        resume: continue from the latest ``checkpoint-*`` in ``output_dir``.
        training_args: ``transformers.TrainingArguments`` fields (``max_steps``, ``learning_rate``...).

    Returns:
        The report also written to ``output_dir/distill_report.json``.

    Example:
        >>> train_student(student="s", train_files=["c.txt"], output_dir="o",  # doctest: +SKIP
        ...               training_args={"max_steps": 10})["steps"]
        10
    """
    from transformers import AutoTokenizer, TrainingArguments
    from transformers.trainer_callback import PrinterCallback
    from transformers.trainer_utils import get_last_checkpoint

    from ckptkit.distill import data as data_mod
    from ckptkit.distill.models import check_pair, fit_seq_length, load_model, num_layers, parse_layer_map
    from ckptkit.distill.plot import plot_loss_curves
    from ckptkit.distill.teacher_cache import TeacherCache, build_teacher_cache, cache_is_valid
    from ckptkit.distill.trainer import DistillationTrainer, DistillOptions, EpochCallback

    started = time.perf_counter()
    if quiet:
        _quiet_libraries()
    student_dir, out = Path(student), Path(output_dir)
    student_info = read_student_json(student_dir)
    teacher = teacher or student_info.get("teacher")
    if not teacher:
        raise UsageError("no teacher: pass --teacher (the student has no student.json naming one)")
    weights = weights or resolve_weights(objective)
    if ce_on not in ("masked", "all"):
        raise UsageError(f"--ce-on must be 'masked' or 'all', got {ce_on!r}")
    if cache_teacher and weights.attn > 0:
        raise UsageError("--cache-teacher does not store attentions: use --alpha-attn 0 or drop --cache-teacher")

    last_checkpoint = get_last_checkpoint(str(out)) if out.is_dir() else None
    if resume and last_checkpoint is None:
        raise UsageError("nothing to resume: no checkpoint-* folder", path=out, hint="run once without --resume")
    if not resume and last_checkpoint is not None:
        raise UsageError("output folder already holds checkpoints", path=out,
                         hint="pass --resume to continue that run, or choose an empty --output-dir")

    # TrainingArguments first: under torchrun it sets up the process group.
    args_dict = {**TRAINING_DEFAULTS, "output_dir": str(out), "remove_unused_columns": False,
                 "disable_tqdm": quiet, "ddp_find_unused_parameters": objective == "hidden",
                 **(training_args or {})}
    check_reporters(args_dict.get("report_to"))
    if validation_files:
        args_dict.setdefault("eval_strategy", "steps")
        args_dict.setdefault("eval_steps", args_dict["save_steps"])
    try:
        args = TrainingArguments(**args_dict)
    except (TypeError, ValueError) as e:
        raise UsageError(f"invalid training option: {e}") from e

    attn = "eager" if weights.attn > 0 else None
    _check_teacher_tokenizer(teacher)
    tokenizer = AutoTokenizer.from_pretrained(str(teacher))
    teacher_model = load_model(teacher, objective=objective, role="teacher", attn_implementation=attn)
    student_model = load_model(student_dir, objective=objective, role="student", attn_implementation=attn)
    student_vocab = None
    if any((student_dir / f).is_file() for f in ("tokenizer.json", "vocab.txt", "tokenizer_config.json")):
        student_vocab = AutoTokenizer.from_pretrained(str(student_dir)).get_vocab()
    layers = parse_layer_map(layer_map, student_info)
    check_pair(teacher_model, student_model, teacher_vocab=tokenizer.get_vocab(), student_vocab=student_vocab,
               layer_map=layers, needs_map=weights.mse > 0 or weights.attn > 0,
               needs_same_width=weights.cos > 0 or weights.mse > 0 or weights.pooled_cos > 0,
               needs_same_heads=weights.attn > 0)
    if fit_seq_length(max_seq_length, teacher_model.config, student_model.config) < max_seq_length:
        raise UsageError(f"--max-seq-length {max_seq_length} exceeds the models' max_position_embeddings "
                         f"({fit_seq_length(max_seq_length, teacher_model.config, student_model.config)})")
    options = DistillOptions(weights=weights, temperature=temperature, ce_on=ce_on, layer_map=layers,
                             objective=objective, teacher_layers=num_layers(teacher_model.config))

    with args.main_process_first(desc="tokenizing"):
        train_set = data_mod.tokenize_and_pack(data_mod.load_texts(train_files, text_column=text_column), tokenizer,
                                               max_seq_length=max_seq_length, num_proc=preprocessing_num_workers)
        eval_set = None
        if validation_files:
            eval_set = data_mod.tokenize_and_pack(data_mod.load_texts(validation_files, text_column=text_column),
                                                  tokenizer, max_seq_length=max_seq_length,
                                                  num_proc=preprocessing_num_workers)
    special = sorted(set(tokenizer.all_special_ids))
    mask_weights = None
    if mlm_smoothing > 0:
        mask_weights = data_mod.token_mask_weights(train_set, vocab_size=len(tokenizer), special_ids=special,
                                                   smoothing=mlm_smoothing)
    collator = data_mod.MaskingCollator(pad_id=tokenizer.pad_token_id, mask_id=tokenizer.mask_token_id,
                                        special_ids=special, vocab_size=len(tokenizer),
                                        mlm_probability=mlm_probability if objective == "mlm" else 0.0,
                                        mask_weights=mask_weights, seed=args.seed, fixed=cache_teacher)

    cache, cache_stats = None, {}
    if cache_teacher:
        cache_dir = out / "teacher-cache"
        top_k = min(cache_top_k, len(tokenizer)) if objective == "mlm" and (weights.ce > 0) else 0
        fingerprint = _cache_fingerprint(teacher=str(teacher), dataset=train_set, collator=collator, top_k=top_k,
                                         hidden=options.teacher_hidden_indices, max_seq_length=max_seq_length)
        valid = cache_is_valid(cache_dir, fingerprint)
        _barrier()
        if not valid:
            import torch

            device_model = teacher_model.to(args.device)
            dtype = {True: torch.bfloat16}.get(bool(args.bf16), torch.float16 if args.fp16 else torch.float32)
            cache_stats = build_teacher_cache(cache_dir, teacher=device_model, dataset=train_set, collator=collator,
                                              batch_size=args.per_device_train_batch_size * 2, top_k=top_k,
                                              hidden_indices=options.teacher_hidden_indices, fingerprint=fingerprint,
                                              device=args.device, dtype=dtype, rank=args.process_index,
                                              world_size=args.world_size, max_seq_length=max_seq_length)
            _barrier()
        cache = TeacherCache.open(cache_dir)

    trainer = DistillationTrainer(model=student_model, args=args, train_dataset=train_set, eval_dataset=eval_set,
                                  data_collator=collator, processing_class=tokenizer, teacher=teacher_model,
                                  options=options, teacher_cache=cache)
    trainer.remove_callback(PrinterCallback)
    trainer.add_callback(EpochCallback(collator))
    out.mkdir(parents=True, exist_ok=True)
    trainer.add_callback(_log_callback(out / "train_log.jsonl", quiet=quiet, print_lines=print_lines and quiet is False
                                       and bool(args.disable_tqdm or not os.isatty(2))))
    result = trainer.train(resume_from_checkpoint=last_checkpoint if resume else None)
    eval_metrics = trainer.evaluate() if eval_set is not None else {}

    history = trainer.state.log_history
    train_rows = [row for row in history if "loss" in row]
    agreement = [row["top1_agreement"] for row in train_rows if "top1_agreement" in row]
    runtime = result.metrics.get("train_runtime", 0.0)
    summary: dict[str, Any] = {
        "objective": objective, "steps": trainer.state.global_step, "temperature": temperature, "ce_on": ce_on,
        "layer_map": list(layers), "max_seq_length": max_seq_length, "mlm_probability": mlm_probability,
        "mlm_smoothing": mlm_smoothing, "learning_rate": args.learning_rate,
        "global_batch_size": args.per_device_train_batch_size * args.gradient_accumulation_steps * args.world_size,
        "world_size": args.world_size, "train_runtime_s": round(runtime, 2),
        "precision": str(trainer.compute_dtype).removeprefix("torch."),
        "teacher_dtype": str(next(trainer.teacher.parameters()).dtype).removeprefix("torch.")
        if trainer.teacher is not None else None,
        "tokens_per_second": round(float(train_rows[-1].get("tokens_per_second", 0.0)), 1) if train_rows else None,
        "losses": _loss_summary(history, weights),
        "top1_agreement": {"first": agreement[0], "last": agreement[-1]} if agreement else None,
    }
    if cache is not None:
        per_row = cache.meta["teacher_seconds_per_row"]
        spent = cache.read_seconds + cache_stats.get("build_seconds", 0.0)
        summary["teacher_cache"] = {"built_now": bool(cache_stats), "top_k": cache.meta["top_k"],
                                    "build_s": round(cache_stats.get("build_seconds", 0.0), 2),
                                    "read_s": round(cache.read_seconds, 2),
                                    "teacher_forward_avoided_s": round(per_row * cache.rows_read, 2),
                                    "saved_s": round(per_row * cache.rows_read - spent, 2)}
    report = {**summary, "eval": eval_metrics, "output_dir": str(out), "teacher": str(teacher),
              "student": str(student_dir), "wall_s": round(time.perf_counter() - started, 2),
              "process_index": args.process_index}
    if args.world_size > 1:  # every rank records what it ended with: DDP replicas must agree
        ranks = out / "ranks"
        ranks.mkdir(exist_ok=True)
        digest = weights_digest(trainer.accelerator.unwrap_model(trainer.model))
        write_json(ranks / f"rank-{args.process_index}.json", {"weights_sha256": digest})
    if trainer.is_world_process_zero():
        card_summary = {k: v for k, v in summary.items() if not isinstance(v, (dict, list)) or k == "losses"}
        if eval_metrics:
            card_summary["eval"] = {"student": {k: round(v, 4) for k, v in eval_metrics.items()
                                                if isinstance(v, float)}}
        info = {**student_info, "teacher": str(teacher), "layers": list(layers) or student_info.get("layers")}
        report.update(_write_outputs(out, trainer=trainer, tokenizer=tokenizer, student_info=info,
                                     student_dir=student_dir, summary=card_summary, command=command))
        report["plot"] = str(plot_loss_curves(history, out / "loss_curves.png"))
        write_json(out / "distill_report.json", report, default=str)
        if push_to_hub:
            report["pushed_to"] = _push(out, push_to_hub)
    _barrier()
    return report


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


def _push(folder: Path, repo_id: str) -> str:
    from ckptkit.hub.upload import upload_folder

    return upload_folder(folder, repo_id=repo_id, commit_message="Upload a student distilled by ckptkit").url
