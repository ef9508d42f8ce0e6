"""``ckptkit distill``: init (make a student), train (distil it), eval (compare with the teacher).

Only click is imported here; torch and transformers are imported inside the commands.
"""

from __future__ import annotations

import shlex
import sys
from typing import Any, Callable

import click

from ckptkit.cli import LazyGroup
from ckptkit.cli.common import emit_json, format_table, info, json_option, quiet_option

DISTILL_COMMANDS: dict[str, str] = {
    "init": "ckptkit.cli.distill_init_cmd:init_command",
    "train": "ckptkit.cli.distill_cmd:train_command",
    "eval": "ckptkit.cli.distill_cmd:eval_command",
    "cache": "ckptkit.cli.distill_cache_cmd:cache_command",
}


@click.group(cls=LazyGroup, lazy_commands=DISTILL_COMMANDS)
def distill_group() -> None:
    """Make, train and evaluate smaller students of a BERT-family teacher.

    \b
    Examples:
      ckptkit distill train --teacher out/kobert --student out/student3 --train-file corpus.txt --output-dir out/distil
      ckptkit distill eval --teacher out/kobert --student out/distil --eval-file held_out.txt
    """


# TrainingArguments field -> (click type, help). Options keep the Trainer's names (--learning-rate...).
TRAINING_OPTIONS: dict[str, tuple[Any, str]] = {
    "max_steps": (int, "Total optimizer steps (overrides --num-train-epochs)."),
    "num_train_epochs": (float, "Passes over the training data [3]."),
    "per_device_train_batch_size": (int, "Blocks per process and step [8]."),
    "per_device_eval_batch_size": (int, "Blocks per process for evaluation [8]."),
    "gradient_accumulation_steps": (int, "Micro-batches per optimizer step [1]."),
    "learning_rate": (float, "Peak learning rate [5e-5]."),
    "weight_decay": (float, "AdamW weight decay [0]."),
    "lr_scheduler_type": (str, "linear, cosine, constant_with_warmup, ... [linear]."),
    "warmup_steps": (float, "Warmup steps (a value < 1 is a fraction of the run) [0]."),
    "max_grad_norm": (float, "Gradient clipping [1.0]."),
    "logging_steps": (int, "Log every N steps [10]."),
    "save_steps": (int, "Checkpoint every N steps [500]."),
    "save_total_limit": (int, "Keep at most N checkpoints [3]."),
    "eval_strategy": (click.Choice(["no", "steps", "epoch"]), "When to evaluate [steps with --validation-file]."),
    "eval_steps": (int, "Evaluate every N steps [= --save-steps]."),
    "report_to": (str, "tensorboard, wandb, ... or none [none]."),
    "seed": (int, "Seed of init, data order and masking [42]."),
    "dataloader_num_workers": (int, "Data-loading worker processes [0]."),
}
TRAINING_FLAGS: dict[str, str] = {
    "bf16": "Train in bfloat16 mixed precision (teacher runs in bf16 too).",
    "fp16": "Train in float16 mixed precision (teacher runs in fp16 too).",
    "use_cpu": "Train on CPU even when a GPU is present.",
}
# loss term -> help; the defaults depend on --objective and are documented in the help text.
ALPHAS: dict[str, str] = {
    "ce": "Weight of the soft-target KL [mlm: 5.0].",
    "mlm": "Weight of the MLM cross-entropy [mlm: 2.0].",
    "cos": "Weight of 1-cos of last hidden states [1.0].",
    "mse": "Weight of MSE of mapped hidden states [mlm: 0, hidden: 1.0].",
    "attn": "Weight of the attention-distribution KL [0].",
    "pooled_cos": "Weight of 1-cos of the sentence embeddings, pooled as the teacher's sentence-transformers "
                  "stack pools them (mean without one) [mlm: 0, hidden: 1.0].",
}


def _option_flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _training_options(func: Callable) -> Callable:
    for name, (kind, text) in reversed(TRAINING_OPTIONS.items()):
        func = click.option(_option_flag(name), name, type=kind, default=None, help=text)(func)
    for name, text in reversed(TRAINING_FLAGS.items()):
        func = click.option(_option_flag(name), name, is_flag=True, default=None, help=text)(func)
    for name, text in reversed(ALPHAS.items()):
        func = click.option(f"--alpha-{name.replace('_', '-')}", f"alpha_{name}", type=float, default=None,
                            help=text)(func)
    return func


@click.command("train")
@click.option("--teacher", type=click.Path(exists=True, file_okay=False), help="Teacher hub folder [student.json's].")
@click.option("--student", required=True, type=click.Path(exists=True, file_okay=False),
              help="Student hub folder (from `ckptkit distill init`).")
@click.option("--train-file", "train_files", required=True, multiple=True, type=click.Path(exists=True),
              help="Text file (one document or sentence per line) or a datasets folder; repeatable.")
@click.option("--validation-file", "validation_files", multiple=True, type=click.Path(exists=True),
              help="Held-out text for evaluation during training; repeatable.")
@click.option("--output-dir", required=True, type=click.Path(file_okay=False), help="Checkpoints, logs, final student.")
@click.option("--objective", type=click.Choice(["mlm", "hidden"]), default="mlm", show_default=True,
              help="mlm: soft targets + MLM + hidden losses; hidden: embedding teachers without MLM head.")
@click.option("--temperature", type=float, default=2.0, show_default=True, help="Softmax temperature of the KL.")
@click.option("--ce-on", type=click.Choice(["all", "masked"]), default="all", show_default=True,
              help="Positions of the soft-target KL: every non-padding token or masked ones only.")
@click.option("--layer-map", help="Teacher layer of each student layer for --alpha-mse/--alpha-attn, e.g. 0,4,11 "
              "[student.json's layers with the last one moved to the teacher's last layer, the cosines' target].")
@click.option("--cos-layer-map", metavar="S:T,...", help="STUDENT:TEACHER layer pairs of --alpha-cos and "
              "--alpha-pooled-cos, 0-based, e.g. 2:11 [the last layer of each, as DistilBERT].")
@click.option("--max-seq-length", type=int, default=128, show_default=True, help="Tokens per packed block.")
@click.option("--mlm-probability", type=float, default=0.15, show_default=True, help="Share of tokens masked.")
@click.option("--mlm-smoothing", type=float, default=0.0, show_default=True,
              help="Mask rare tokens more: weight = count**-s (DistilBERT used 0.7).")
@click.option("--whole-word-mask", is_flag=True,
              help="Mask all pieces of a word together (WordPiece ##, SentencePiece \u2581 as KoBERT's); "
                   "a --teacher-cache must be built with it too.")
@click.option("--text-column", default="text", show_default=True, help="Column of a datasets folder.")
@click.option("--preprocessing-num-workers", type=int, help="Processes for tokenizing (datasets.map).")
@click.option("--cache-teacher", is_flag=True, help="Compute teacher outputs once (fixed masking) and reuse them.")
@click.option("--cache-top-k", type=int, default=64, show_default=True, help="Teacher logits kept per token.")
@click.option("--teacher-cache", type=click.Path(file_okay=False),
              help="Teacher cache folder (`ckptkit distill cache`) to read; built or finished first when needed.")
@click.option("--streaming", is_flag=True,
              help="Stream the training files (.txt/.jsonl/.parquet, folders); needs --max-steps.")
@click.option("--resume", is_flag=True, help="Continue from the latest checkpoint in --output-dir.")
@click.option("--baseline", type=click.Choice(["mlm"]),
              help="Also train the same student without the teacher (MLM only, same data, steps and seed) into "
                   "OUTPUT_DIR/baseline-mlm; the report compares both on --validation-file.")
@click.option("--push-to-hub", "push_to_hub", metavar="REPO_ID", help="Upload the distilled student when done.")
@click.option("--teacher-repo-id", metavar="NAMESPACE/NAME",
              help="The teacher's Hub id: the card's base_model (default: remembered from distill init).")
@_training_options
@quiet_option
@json_option
def train_command(teacher, student, train_files, validation_files, output_dir, objective, temperature, ce_on,
                  layer_map, cos_layer_map, max_seq_length, mlm_probability, mlm_smoothing, whole_word_mask,
                  text_column, preprocessing_num_workers,
                  cache_teacher, cache_top_k, resume, baseline, push_to_hub, teacher_repo_id, quiet, as_json,
                  teacher_cache=None, streaming=False, **options) -> None:
    """Distil a teacher into a student with transformers.Trainer (DistilBERT losses).

    Loss = alpha_ce*KL(T=2)*T^2 + alpha_mlm*MLM + alpha_cos*(1-cos) + alpha_mse*MSE(mapped layers)
    + alpha_attn*KL(attention) [+ alpha_pooled_cos for --objective hidden]. Defaults (DistilBERT):
    ce 5.0, mlm 2.0, cos 1.0, mse 0, attn 0, temperature 2.0. Runs unchanged under
    `torchrun --nproc_per_node N -m ckptkit distill train ...` and `accelerate launch`.

    With --baseline mlm the same student is also trained without the teacher (same data, steps and
    seed) and both are compared on --validation-file. Layer maps: --layer-map (mse, attn) defaults
    to student.json's layers with the last one moved to the teacher's last layer, which the cosine
    terms (--cos-layer-map) target too, so no student layer is pulled toward two teacher layers.

    \b
    Examples:
      ckptkit distill train --teacher out/kobert --student out/student3 \\
        --train-file corpus.txt --validation-file held_out.txt --output-dir out/distil \\
        --max-steps 20000 --per-device-train-batch-size 32 --learning-rate 5e-4 --warmup-steps 0.05
      ckptkit distill train --student out/student3 --train-file corpus.txt --validation-file held_out.txt \\
        --output-dir out/kd --alpha-mse 1 --baseline mlm --max-steps 20000
    """
    from ckptkit.distill.train import TrainOptions, resolve_weights, train_student
    from ckptkit.output.card import check_card_options

    check_card_options(teacher_repo_id=teacher_repo_id)
    push_after, push_to_hub = (push_to_hub, None) if teacher_repo_id else (None, push_to_hub)  # card first
    alphas = {name: options.pop(f"alpha_{name}") for name in ALPHAS}
    training_args = {k: v for k, v in options.items() if v is not None}
    train_options = TrainOptions(
        teacher=teacher, student=student, train_files=train_files, validation_files=validation_files,
        output_dir=output_dir, objective=objective, weights=resolve_weights(objective, alphas), temperature=temperature,
        ce_on=ce_on, layer_map=layer_map, cos_layer_map=cos_layer_map, max_seq_length=max_seq_length,
        mlm_probability=mlm_probability, mlm_smoothing=mlm_smoothing, whole_word_mask=whole_word_mask,
        text_column=text_column, preprocessing_num_workers=preprocessing_num_workers,
        cache_teacher=cache_teacher, cache_top_k=cache_top_k, teacher_cache=teacher_cache, streaming=streaming,
        resume=resume, baseline=baseline, training_args=training_args,
        quiet=quiet, push_to_hub=push_to_hub, command=shlex.join(["ckptkit", *sys.argv[1:]]))
    result = train_student(train_options, log=lambda line: info(line, quiet=quiet))
    if result.process_index != 0:  # under torchrun only the main process reports
        return
    if teacher_repo_id:
        _stamp_teacher(result, output_dir, teacher_repo_id=teacher_repo_id, push_to_hub=push_after)
    if as_json:
        emit_json(result.to_json())
        return
    click.echo(format_train_report(result.to_json()))


def _stamp_teacher(result, output_dir: str, *, teacher_repo_id: str, push_to_hub: str | None) -> None:
    """Remember the teacher's Hub id in the distilled folder's card, then upload when asked."""
    from ckptkit.output.card import write_model_card

    write_model_card(output_dir, teacher_repo_id=teacher_repo_id)
    if push_to_hub:
        from ckptkit.hub.upload import upload_folder

        result.pushed_to = upload_folder(output_dir, repo_id=push_to_hub,
                                         commit_message="Upload a student distilled by ckptkit").url


def format_train_report(report: dict[str, Any]) -> str:
    """The end-of-run summary as text: loss terms first -> last, agreement, speed, cache, the baseline."""
    from ckptkit.distill.train_report import format_comparison

    rows = [[name, f"{v['weight']:g}", f"{v['first']:.4f}", f"{v['last']:.4f}"] for name, v in report["losses"].items()]
    lines = [format_table(rows, ["loss", "weight", "first", "last"], right={1, 2, 3}), ""]
    agreement = report.get("top1_agreement")
    if agreement:
        lines.append(f"top-1 agreement with the teacher: {agreement['first']:.3f} -> {agreement['last']:.3f}")
    lines.append(f"steps: {report['steps']}  runtime: {report['train_runtime_s']} s  "
                 f"tokens/s: {report.get('tokens_per_second')}  processes: {report['world_size']}")
    cache = report.get("teacher_cache")
    if cache:
        lines.append(f"teacher cache: built {cache['build_s']} s, read {cache['read_s']} s, teacher forward avoided "
                     f"{cache['teacher_forward_avoided_s']} s, net saved {cache['saved_s']} s")
    held_out = {k: v for k, v in (report.get("eval") or {}).items()
                if k.startswith(("eval_loss", "eval_top1")) and isinstance(v, float)}
    if held_out:
        lines.append("validation: " + "  ".join(f"{k.removeprefix('eval_')} {v:.4f}" for k, v in held_out.items()))
    comparison = format_comparison(report)
    if comparison:
        lines += ["", comparison, ""]
    lines.append(f"student written to {report['output_dir']} (plot: {report.get('plot')})")
    return "\n".join(lines)


@click.command("eval")
@click.option("--teacher", type=click.Path(exists=True, file_okay=False), help="Teacher hub folder [student.json's].")
@click.option("--student", required=True, type=click.Path(exists=True, file_okay=False), help="Student hub folder.")
@click.option("--eval-file", "eval_files", multiple=True, type=click.Path(exists=True),
              help="Held-out text (one sentence per line) or a datasets folder; repeatable.")
@click.option("--objective", type=click.Choice(["auto", "mlm", "hidden"]), default="auto", show_default=True,
              help="mlm: MLM metrics too; hidden: embedding metrics only; auto: mlm when both have MLM heads.")
@click.option("--max-seq-length", type=int, default=128, show_default=True, help="Tokens per block / sentence.")
@click.option("--batch-size", type=int, default=16, show_default=True, help="Blocks per forward pass.")
@click.option("--max-batches", type=int, default=50, show_default=True, help="Evaluate at most N batches.")
@click.option("--latency-runs", type=int, default=10, show_default=True,
              help="Timed CPU forward passes per model, after a warm-up, alternating teacher and student; the "
                   "median is reported.")
@click.option("--seed", type=int, default=42, show_default=True, help="Seed of the masking, split and fine-tuning.")
@click.option("--task", "task_file", type=click.Path(exists=True, dir_okay=False),
              help="Labelled TSV/CSV (NSMC's id/document/label works as is): fine-tune teacher and student on it "
                   "and compare their held-out accuracy.")
@click.option("--text-column", help="--task: the text column (name or 0-based index) [detected].")
@click.option("--label-column", help="--task: the label column (name or 0-based index) [detected].")
@click.option("--task-epochs", type=float, default=1.0, show_default=True, help="--task: passes over the rows.")
@click.option("--task-learning-rate", type=float, default=5e-5, show_default=True, help="--task: AdamW peak rate.")
@click.option("--task-batch-size", type=int, default=32, show_default=True, help="--task: rows per step.")
@click.option("--task-max-train", type=int, default=20_000, show_default=True,
              help="--task: train on at most N rows (0: all).")
@click.option("--task-test-fraction", type=float, default=0.1, show_default=True,
              help="--task: share of the rows held out for the accuracy.")
@quiet_option
@json_option
def eval_command(teacher, student, eval_files, objective, max_seq_length, batch_size, max_batches, latency_runs,
                 seed, task_file, text_column, label_column, task_epochs, task_learning_rate, task_batch_size,
                 task_max_train, task_test_fraction, quiet, as_json) -> None:
    """Compare a student with its teacher: accuracy, agreement, KL, cosine, size and CPU speed.

    With --task, both are fine-tuned on a labelled classification set (same rows, order and short
    schedule) and their accuracy on held-out rows is shown side by side.

    \b
    Examples:
      ckptkit distill eval --teacher out/kobert --student out/distil --eval-file held_out.txt --json
      ckptkit distill eval --teacher out/kobert --student out/distil --task ratings_train.txt
    """
    from ckptkit.errors import UsageError

    if not eval_files and not task_file:
        raise UsageError("nothing to evaluate on", hint="pass --eval-file (held-out text) and/or --task (a labelled "
                                                        "TSV/CSV)")
    result: dict[str, Any] = {}
    if eval_files:
        from ckptkit.distill.evaluate import evaluate_student

        result = evaluate_student(teacher=teacher, student=student, eval_files=eval_files, objective=objective,
                                  max_seq_length=max_seq_length, batch_size=batch_size, max_batches=max_batches,
                                  latency_runs=latency_runs, seed=seed, quiet=quiet)
    if task_file:
        result["task"] = _run_task(teacher, student, task_file, seed=seed, quiet=quiet, text_column=text_column,
                                   label_column=label_column, epochs=task_epochs, learning_rate=task_learning_rate,
                                   batch_size=task_batch_size, max_train=task_max_train or None,
                                   test_fraction=task_test_fraction, max_seq_length=max_seq_length)
    from ckptkit.output.record import command_line
    from ckptkit.output.results import record_eval

    recorded = record_eval(student, result, command=command_line())  # the student's card shows what was measured
    if as_json:
        emit_json(result)
        return
    _print_eval(result, quiet=quiet)
    if recorded:
        info(f"recorded in {student}/ckptkit.json (the model card shows it)", quiet=quiet)


def _run_task(teacher, student, task_file, *, quiet: bool, **schedule) -> dict[str, Any]:
    from ckptkit.distill.downstream import TaskSchedule, evaluate_task
    from ckptkit.distill.models import read_student_json
    from ckptkit.errors import UsageError

    teacher = teacher or read_student_json(student).get("teacher")
    if not teacher:
        raise UsageError("no teacher: pass --teacher (the student has no student.json naming one)")
    columns = {k: schedule.pop(k) for k in ("text_column", "label_column")}
    if quiet:
        from ckptkit.distill.train import _quiet_libraries

        _quiet_libraries()
    return evaluate_task(teacher=teacher, student=student, task_file=task_file, schedule=TaskSchedule(**schedule),
                         quiet=quiet, **columns)


def _print_eval(result: dict[str, Any], *, quiet: bool) -> None:
    from ckptkit.distill.downstream import format_task_table
    from ckptkit.distill.evaluate import format_eval_table

    if "teacher" in result:
        info(f"compared on {result['examples']} blocks, {result.get('sentences', 0)} sentences", quiet=quiet)
        click.echo(format_eval_table(result))
    if "task" in result:
        click.echo(("\n" if "teacher" in result else "") + format_task_table(result["task"]))
