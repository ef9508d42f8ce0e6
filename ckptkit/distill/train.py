"""``train_student``: the library entry behind ``ckptkit distill train``, in stages.

check (options against the folders, TrainingArguments) -> load (tokenizer, teacher, student, their
pairing) -> data (tokenized, packed, masking collator) -> cache (teacher outputs, optional) ->
train (:class:`DistillationTrainer`, optionally resuming) -> report (summary, the distilled hub
folder: weights, config, tokenizer, ``student.json``, ``ckptkit.json``, model card;
``train_log.jsonl``, ``loss_curves.png`` and ``distill_report.json`` in ``output_dir``).

Example:
    >>> result = train_student(TrainOptions(teacher="out/teacher", student="out/student",  # doctest: +SKIP
    ...     train_files=["corpus.txt"], output_dir="out/distilled", training_args={"max_steps": 1000}))
    >>> result.losses["ce"]["last"] < result.losses["ce"]["first"]  # doctest: +SKIP
    True
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from ckptkit.distill.models import read_student_json
from ckptkit.distill.streaming_train import cache_dir_of, streaming_train_set, streaming_trainer, uses_streaming
from ckptkit.distill.train_options import (OBJECTIVE_WEIGHTS, TRAINING_DEFAULTS, TrainOptions, check_reporters,
                                           resolve_weights)
from ckptkit.distill.train_report import TrainResult, cache_summary, loss_summary, weights_digest, write_outputs
from ckptkit.errors import UsageError
from ckptkit.output.atomic import write_json

__all__ = ["train_student", "TrainOptions", "TrainResult", "OBJECTIVE_WEIGHTS", "resolve_weights", "weights_digest"]

Log = Callable[[str], None]


def _barrier() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def _quiet_libraries(*, bars_only: bool = False) -> None:
    """No progress bars of datasets/transformers (loading, tokenizing); no library logs unless ``bars_only``."""
    import datasets
    import transformers

    datasets.disable_progress_bars()
    transformers.utils.logging.disable_progress_bar()
    if not bars_only:
        transformers.utils.logging.set_verbosity_error()


def _stderr_is_terminal() -> bool:
    """Bars on a terminal only: in a pipe or a log file they are noise between the step lines."""
    import sys

    return sys.stderr.isatty()


def _has_accelerator() -> bool:
    """Pinned memory only helps copies to an accelerator (on CPU, torch warns about it)."""
    import torch

    return bool(torch.accelerator.is_available())


def _check_teacher_tokenizer(teacher: str | os.PathLike) -> None:
    """A local teacher must have tokenizer files: transformers would silently make an empty tokenizer."""
    from ckptkit.tokenizers.files import tokenizer_files

    if Path(teacher).is_dir() and not tokenizer_files(teacher):
        raise UsageError("the teacher folder has no tokenizer files (vocab.txt, tokenizer.json, ...): the corpus "
                         "is tokenized with the teacher's tokenizer", path=teacher,
                         hint="convert the teacher with its vocab.txt (or --spm) so that it gets one")


# ---------------------------------------------------------------------------------------------- stages
@dataclass(frozen=True)
class _Setup:
    """What the check stage found: the folders, the teacher, the checkpoint to resume, TrainingArguments."""

    student_dir: Path
    out: Path
    student_info: dict[str, Any]
    teacher: str | os.PathLike
    last_checkpoint: str | None
    args: Any
    pooling: Any   # the teacher's sentence-embedding pooling (ckptkit.distill.pooling.Pooling)


def _check(opts: TrainOptions) -> _Setup:
    from transformers import TrainingArguments
    from transformers.trainer_utils import get_last_checkpoint

    from ckptkit.distill.pooling import read_pooling

    student_dir, out = Path(opts.student), Path(opts.output_dir)
    student_info = read_student_json(student_dir)
    teacher = opts.teacher or student_info.get("teacher")
    if not teacher:
        raise UsageError("no teacher: pass --teacher (the student has no student.json naming one)")
    pooling = read_pooling(teacher)  # a Pooling config we cannot honour stops the run before anything is written
    last_checkpoint = get_last_checkpoint(str(out)) if out.is_dir() else None
    if opts.resume and last_checkpoint is None:
        raise UsageError("nothing to resume: no checkpoint-* folder", path=out, hint="run once without --resume")
    if not opts.resume and last_checkpoint is not None:
        raise UsageError("output folder already holds checkpoints", path=out,
                         hint="pass --resume to continue that run, or choose an empty --output-dir")
    # TrainingArguments first: under torchrun it sets up the process group.
    args_dict = {**TRAINING_DEFAULTS, "output_dir": str(out), "remove_unused_columns": False,
                 "disable_tqdm": opts.quiet or not _stderr_is_terminal(), "ddp_find_unused_parameters": opts.objective == "hidden",
                 "dataloader_pin_memory": _has_accelerator(), **opts.training_args}
    check_reporters(args_dict.get("report_to"))
    if opts.validation_files:
        args_dict.setdefault("eval_strategy", "steps")
        args_dict.setdefault("eval_steps", args_dict["save_steps"])
    try:
        args = TrainingArguments(**args_dict)
    except (TypeError, ValueError) as e:
        raise UsageError(f"invalid training option: {e}") from e
    return _Setup(student_dir, out, student_info, teacher, last_checkpoint, args, pooling)


@dataclass(frozen=True)
class _Models:
    tokenizer: Any
    teacher: Any
    student: Any
    layers: tuple[int, ...]
    distill: Any   # DistillOptions


def _load(opts: TrainOptions, setup: _Setup) -> _Models:
    from transformers import AutoTokenizer

    from ckptkit.distill.models import check_pair, fit_seq_length, load_model, num_layers
    from ckptkit.distill.trainer import DistillOptions

    weights, student_dir = opts.weights, setup.student_dir
    attn = "eager" if weights.attn > 0 else None
    _check_teacher_tokenizer(setup.teacher)
    tokenizer = AutoTokenizer.from_pretrained(str(setup.teacher))
    teacher = _load_teacher(opts, setup.teacher, attn)
    student = load_model(student_dir, objective=opts.objective, role="student", attn_implementation=attn)
    student_vocab = None
    if any((student_dir / f).is_file() for f in ("tokenizer.json", "vocab.txt", "tokenizer_config.json")):
        student_vocab = AutoTokenizer.from_pretrained(str(student_dir)).get_vocab()
    layers, cos_pairs = _layer_maps(opts, setup.student_info, teacher.config, student.config)
    check_pair(teacher, student, teacher_vocab=tokenizer.get_vocab(), student_vocab=student_vocab,
               layer_map=layers, needs_map=weights.mse > 0 or weights.attn > 0,
               needs_same_width=weights.cos > 0 or weights.mse > 0 or weights.pooled_cos > 0,
               needs_same_heads=weights.attn > 0)
    fitted = fit_seq_length(opts.max_seq_length, teacher.config, student.config)
    if fitted < opts.max_seq_length:
        raise UsageError(f"--max-seq-length {opts.max_seq_length} exceeds the models' max_position_embeddings "
                         f"({fitted})")
    distill = DistillOptions(weights=weights, temperature=opts.temperature, ce_on=opts.ce_on, layer_map=layers,
                             objective=opts.objective, teacher_layers=num_layers(teacher.config),
                             cos_pairs=cos_pairs, pooling=setup.pooling)
    return _Models(tokenizer, teacher, student, layers, distill)


def _load_teacher(opts: TrainOptions, teacher: str | os.PathLike, attn: str | None):
    """The teacher with its MLM head when it has one; without it when no term reads its logits (MiniLM)."""
    from ckptkit.distill.models import load_model

    try:
        return load_model(teacher, objective=opts.objective, role="teacher", attn_implementation=attn)
    except UsageError:
        if opts.weights.ce > 0 or opts.objective != "mlm":
            raise
    return load_model(teacher, objective="hidden", role="teacher", attn_implementation=attn)


def _layer_maps(opts: TrainOptions, student_info: dict[str, Any], teacher_config, student_config
                ) -> tuple[tuple[int, ...], tuple[tuple[int, int], ...]]:
    """The MSE/attention layer map and the cosine pairs, defaults resolved and checked (see TrainOptions)."""
    from ckptkit.distill.models import num_layers, parse_layer_map
    from ckptkit.distill.train_options import default_mse_map

    t_layers, s_layers = num_layers(teacher_config), num_layers(student_config)
    layers = opts.layer_map or default_mse_map(parse_layer_map(None, student_info), t_layers)
    pairs = opts.cos_layer_map or ((s_layers - 1, t_layers - 1),)
    bad = [f"{s}:{t}" for s, t in pairs if not (0 <= s < s_layers and 0 <= t < t_layers)]
    if bad:
        raise UsageError(f"--cos-layer-map names {', '.join(bad)}: the student has layers 0..{s_layers - 1}, the "
                         f"teacher 0..{t_layers - 1}")
    return tuple(layers), tuple(pairs)


@dataclass(frozen=True)
class _Data:
    train_set: Any
    eval_set: Any
    collator: Any


def _data(opts: TrainOptions, setup: _Setup, models: _Models) -> _Data:
    from ckptkit.distill import data as data_mod

    tokenizer = models.tokenizer

    def packed(files):
        return data_mod.tokenize_and_pack(data_mod.load_texts(files, text_column=opts.text_column), tokenizer,
                                          max_seq_length=opts.max_seq_length, num_proc=opts.preprocessing_num_workers)

    with setup.args.main_process_first(desc="tokenizing"):
        # streamed (ckptkit.distill.streaming) with --streaming and with a teacher cache, else datasets.map
        train_set = (streaming_train_set(opts, tokenizer, setup.args) if uses_streaming(opts)
                     else packed(opts.train_files))
        eval_set = packed(opts.validation_files) if opts.validation_files else None
    special = sorted(set(tokenizer.all_special_ids))
    mask_weights = None
    if opts.mlm_smoothing > 0:
        mask_weights = data_mod.token_mask_weights(train_set, vocab_size=len(tokenizer), special_ids=special,
                                                   smoothing=opts.mlm_smoothing)
    collator = data_mod.MaskingCollator(pad_id=tokenizer.pad_token_id, mask_id=tokenizer.mask_token_id,
                                        special_ids=special, vocab_size=len(tokenizer),
                                        mlm_probability=opts.mlm_probability if opts.objective == "mlm" else 0.0,
                                        mask_weights=mask_weights, seed=setup.args.seed,
                                        fixed=cache_dir_of(opts, setup.out) is not None)
    if opts.whole_word_mask:
        from ckptkit.distill.whole_word import with_whole_words

        collator = with_whole_words(collator, tokenizer)
    return _Data(train_set, eval_set, collator)


def _cache(opts: TrainOptions, setup: _Setup, models: _Models, data: _Data) -> tuple[Any, dict[str, Any]]:
    """The teacher cache (built or finished now when needed; ckptkit.distill.streaming_train) and its build figures."""
    from ckptkit.distill.streaming_train import prepare_teacher_cache

    return prepare_teacher_cache(opts, setup, models, data)


def _train(opts: TrainOptions, setup: _Setup, models: _Models, data: _Data, cache, log: Log | None):
    """Run the trainer; returns it, its train output and the final evaluation metrics."""
    from ckptkit.distill.train_log import install_callbacks, stderr_line
    from ckptkit.distill.trainer import DistillationTrainer, EpochCallback

    trainer_class = streaming_trainer(DistillationTrainer) if uses_streaming(opts) else DistillationTrainer
    trainer = trainer_class(model=models.student, args=setup.args, train_dataset=data.train_set,
                                  eval_dataset=data.eval_set, data_collator=data.collator,
                                  processing_class=models.tokenizer, teacher=models.teacher, options=models.distill,
                                  teacher_cache=cache)
    trainer.add_callback(EpochCallback(data.collator))
    setup.out.mkdir(parents=True, exist_ok=True)
    lines = opts.print_lines and not opts.quiet
    install_callbacks(trainer, path=setup.out / "train_log.jsonl", log=(log or stderr_line) if lines else None)
    result = trainer.train(resume_from_checkpoint=setup.last_checkpoint if opts.resume else None)
    return trainer, result, _final_eval(trainer, data.eval_set)


def _final_eval(trainer, eval_set) -> dict[str, Any]:
    """The evaluation at the last step: the one the Trainer just logged, else a new one."""
    if eval_set is None:
        return {}
    step = trainer.state.global_step
    logged = [row for row in trainer.state.log_history if "eval_loss" in row and row.get("step") == step]
    return {k: v for k, v in logged[-1].items() if k != "step"} if logged else trainer.evaluate()


def _summary(opts: TrainOptions, setup: _Setup, models: _Models, trainer, result, cache, stats) -> dict[str, Any]:
    args, history = setup.args, trainer.state.log_history
    train_rows = [row for row in history if "loss" in row]
    agreement = [row["top1_agreement"] for row in train_rows if "top1_agreement" in row]
    summary: dict[str, Any] = {
        "objective": opts.objective, "steps": trainer.state.global_step, "temperature": opts.temperature,
        "ce_on": opts.ce_on, "layer_map": list(models.layers),
        "cos_layer_map": [list(pair) for pair in models.distill.cosine_pairs], "max_seq_length": opts.max_seq_length,
        "mlm_probability": opts.mlm_probability, "mlm_smoothing": opts.mlm_smoothing,
        "learning_rate": args.learning_rate,
        "global_batch_size": args.per_device_train_batch_size * args.gradient_accumulation_steps * args.world_size,
        "world_size": args.world_size, "train_runtime_s": round(result.metrics.get("train_runtime", 0.0), 2),
        "precision": str(trainer.compute_dtype).removeprefix("torch."),
        "teacher_dtype": str(next(trainer.teacher.parameters()).dtype).removeprefix("torch.")
        if trainer.teacher is not None else None,
        "tokens_per_second": round(float(train_rows[-1].get("tokens_per_second", 0.0)), 1) if train_rows else None,
        "losses": loss_summary(history, opts.weights), "pooling": setup.pooling.describe(),
        "top1_agreement": {"first": agreement[0], "last": agreement[-1]} if agreement else None,
    }
    if cache is not None:
        summary["teacher_cache"] = cache_summary(cache, stats)
    return summary


def _finish(opts: TrainOptions, setup: _Setup, models: _Models, trainer, result: TrainResult) -> None:
    """Every rank's weight digest (DDP replicas must agree); on the main process the hub folder and reports."""
    args, out = setup.args, setup.out
    if args.world_size > 1:
        ranks = out / "ranks"
        ranks.mkdir(exist_ok=True)
        digest = weights_digest(trainer.accelerator.unwrap_model(trainer.model))
        write_json(ranks / f"rank-{args.process_index}.json", {"weights_sha256": digest})
    if not trainer.is_world_process_zero():
        return
    from ckptkit.distill.baseline import read_log
    from ckptkit.distill.plot import plot_loss_curves

    card_summary = {k: v for k, v in result.summary.items()
                    if not isinstance(v, (dict, list)) or k in ("losses", "baseline", "held_out")}
    if result.eval:
        card_summary["eval"] = {"student": {k: round(v, 4) for k, v in result.eval.items() if isinstance(v, float)}}
    info = {**setup.student_info, "teacher": str(setup.teacher),
            "layers": setup.student_info.get("layers") or list(models.layers)}
    result.files = write_outputs(out, trainer=trainer, tokenizer=models.tokenizer, student_info=info,
                                 student_dir=setup.student_dir, summary=card_summary, command=opts.command)
    baseline = result.summary.get("baseline")
    result.plot = str(plot_loss_curves(trainer.state.log_history, out / "loss_curves.png",
                                       baseline=read_log(baseline["output_dir"]) if baseline else None))
    write_json(out / "distill_report.json", result.to_json(), default=str)
    if opts.push_to_hub:
        result.pushed_to = _push(out, opts.push_to_hub)


def train_student(options: TrainOptions | None = None, *, log: Log | None = None, **fields: Any) -> TrainResult:
    """Distil ``options.teacher`` into ``options.student`` on ``options.train_files``; returns the run's result.

    Args:
        options: a :class:`TrainOptions`; or give its fields as keywords instead.
        log: where the per-step lines go (default: stderr); the CLI passes its own.

    Returns:
        A :class:`TrainResult`; ``to_json()`` is also written to ``output_dir/distill_report.json``.

    Example:
        >>> train_student(student="s", train_files=["c.txt"], output_dir="o",  # doctest: +SKIP
        ...               training_args={"max_steps": 10}).steps
        10
    """
    if options is None:
        options = TrainOptions(**fields)
    elif fields:
        raise UsageError("give train_student a TrainOptions or its fields, not both")
    started = time.perf_counter()
    if options.quiet:
        _quiet_libraries()
    elif not _stderr_is_terminal():
        _quiet_libraries(bars_only=True)
    setup = _check(options)
    baseline = _run_baseline(options, log) if options.baseline else None
    models = _load(options, setup)
    data = _data(options, setup, models)
    cache, stats = _cache(options, setup, models, data) if cache_dir_of(options, setup.out) else (None, {})
    trainer, train_output, eval_metrics = _train(options, setup, models, data, cache, log)
    result = TrainResult(summary=_summary(options, setup, models, trainer, train_output, cache, stats),
                         eval=eval_metrics, output_dir=str(setup.out), teacher=str(setup.teacher),
                         student=str(setup.student_dir), wall_s=round(time.perf_counter() - started, 2),
                         process_index=setup.args.process_index)
    if baseline is not None and trainer.is_world_process_zero():
        from ckptkit.distill.baseline import add_comparison

        add_comparison(result, baseline, opts=options, teacher=trainer.teacher, tokenizer=models.tokenizer,
                       student=trainer.accelerator.unwrap_model(trainer.model), seed=setup.args.seed,
                       pooling=setup.pooling)
    _finish(options, setup, models, trainer, result)
    _barrier()
    return result


def _run_baseline(options: TrainOptions, log: Log | None):
    from ckptkit.distill.baseline import run_baseline

    lines = options.print_lines and not options.quiet
    return run_baseline(options, (log or _stderr_line) if lines else None)


def _stderr_line(line: str) -> None:
    from ckptkit.distill.train_log import stderr_line

    stderr_line(line)


def _push(folder: Path, repo_id: str) -> str:
    from ckptkit.hub.upload import upload_folder

    return upload_folder(folder, repo_id=repo_id, commit_message="Upload a student distilled by ckptkit").url
