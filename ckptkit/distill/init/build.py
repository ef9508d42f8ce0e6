"""``build_student``: open the teacher, choose its layers, plan, stream the student, write its files.

Example:
    >>> r = build_student("examples/tiny-bert", None, num_layers=1, strategy="last", dry_run=True)
    >>> r.layers, r.model_class, r.token_types
    ([1], 'BertForPreTraining', 'kept')
"""

from __future__ import annotations

import os
import re
import shutil
import time
from typing import Mapping, Sequence

import numpy as np

from ckptkit.converters.plan import Plan
from ckptkit.distill.init.distilbert import TOKEN_TYPE_EMBEDDINGS, student_config
from ckptkit.distill.init.layers import LayerChoice, order_warning
from ckptkit.distill.init.names import Copied
from ckptkit.distill.init.plan import check_arch, plan_student
from ckptkit.distill.init.report import StudentReport, equivalent_command, student_record
from ckptkit.distill.init.stacks import ENCODER_DECODER_HINT, StackChoice
from ckptkit.distill.init.teacher import Teacher, open_teacher
from ckptkit.errors import UsageError
from ckptkit.output.atomic import write_json
from ckptkit.output.names import CARD_FILE, RECORD_FILE, STUDENT_FILE

__all__ = ["build_student", "stream_plan", "STUDENT_FILE"]

# top-level files of a hub teacher that are not copied into the student (everything else is tokenizer & co.)
_NOT_COPIED = re.compile(r"^(config\.json|ckptkit\.json|student\.json|README\.md|training_args\.bin|"
                         r"trainer_state\.json|optimizer\.pt|scheduler\.pt|rng_state.*\.pth|"
                         r".*\.(safetensors|bin|h5|msgpack|ckpt.*|index|index\.json)|\..*)$")


def stream_plan(plan: Plan, source: Mapping, sink, *, desc: str = "student") -> None:
    """:func:`ckptkit.converters.plan.execute` (which releases each tensor's mapped pages once written)."""
    from ckptkit.converters.plan import execute

    execute(plan, source, sink, desc=desc)


def _copy_tokenizer(teacher: Teacher, folder: str) -> list[str]:
    """Copy a hub teacher's tokenizer files, or build them from a TF teacher's vocab; returns the names."""
    if teacher.folder:
        names = sorted(n for n in os.listdir(teacher.folder)
                       if not _NOT_COPIED.match(n) and os.path.isfile(os.path.join(teacher.folder, n)))
        for n in names:
            shutil.copyfile(os.path.join(teacher.folder, n), os.path.join(folder, n))
        return names
    if not teacher.vocab and not teacher.spm:
        return []
    from ckptkit.tokenizers.export import choose_tokenizer, write_tokenizer_files

    from ckptkit.converters.families import FAMILIES, get_family

    tokenizes_with_spm = teacher.family in FAMILIES and bool(get_family(teacher.family).spm_names)
    kind, vocab, spm, _ = choose_tokenizer(teacher.vocab, teacher.spm, prefer_spm=tokenizes_with_spm)
    info = write_tokenizer_files(folder, kind=kind, vocab_file=vocab, spm_file=spm,
                                 model_max_length=int(teacher.config.get("max_position_embeddings", 512)))
    teacher.config["pad_token_id"] = info.pad_token_id  # the tokenizer knows the teacher's pad id (KoBERT: 1)
    return sorted(n for n in os.listdir(folder) if n.startswith(("tokenizer", "special_tokens", "vocab")))


def _write_json(path: str, document: Mapping) -> None:
    write_json(path, document, default=str)


def _check_request(destination: str | None, *, layers, num_layers, strategy: str, arch: str,
                   drop_token_types: bool, dry_run: bool, stacks: StackChoice | None) -> LayerChoice | StackChoice:
    """Everything that can be checked before the teacher is opened; returns the parsed layer request."""
    if stacks is not None and (layers is not None or num_layers is not None):
        raise UsageError("give --layers/--num-layers (an encoder) or --encoder-layers/--decoder-layers (an "
                         "encoder-decoder), not both")
    choice = stacks or LayerChoice.parse(layers=layers, num_layers=num_layers, strategy=strategy)
    check_arch(arch)
    if drop_token_types and arch != "distilbert":
        raise UsageError("--drop-token-types needs --arch distilbert",
                         hint="--arch same keeps the teacher's token-type embeddings")
    if destination is None and not dry_run:
        raise UsageError("no output folder given")
    return choice


def _resolve(choice: LayerChoice | StackChoice, teacher: Teacher) -> list[int] | dict[str, list[int]]:
    """The chosen teacher layers: a list, or an encoder-decoder's per stack (the request must fit the teacher)."""
    counts = teacher.stack_layers
    if counts is not None and not isinstance(choice, StackChoice):
        flag = "--layers" if choice.layers is not None else "--num-layers"
        raise UsageError(f"{flag} does not apply to an encoder-decoder teacher ({teacher.model_type}, "
                         f"{'+'.join(map(str, counts.values()))} layers)", path=teacher.path, hint=ENCODER_DECODER_HINT)
    if counts is None and isinstance(choice, StackChoice):
        flags = "/".join(f"--{name}-layers" for name, layers, _ in choice.layers if layers is not None)
        raise UsageError(f"{flags}: the teacher ({teacher.model_type}) is not an encoder-decoder", path=teacher.path,
                         hint="choose its layers with --layers or --num-layers")
    return choice.resolve(counts if counts is not None else teacher.num_layers)


def _report(teacher: Teacher, plan: Plan, copied: list[Copied], dropped: dict[str, str], *,
            layers: list[int] | dict[str, list[int]], arch: str, drop_token_types: bool, destination: str | None,
            dry_run: bool) -> StudentReport:
    stacks = dict(layers) if isinstance(layers, dict) else None
    layers = [i for chosen in stacks.values() for i in chosen] if stacks else layers
    has_token_types = any(c.name.endswith(TOKEN_TYPE_EMBEDDINGS) for c in copied)
    source_dropped: dict[str, int] = {}
    for d in teacher.dropped:
        source_dropped[d.reason] = source_dropped.get(d.reason, 0) + 1
    report = StudentReport(
        teacher=teacher.path, teacher_format=teacher.format, family=teacher.family,
        teacher_model_class=teacher.model_class, teacher_layers=teacher.num_layers, layers=layers, arch=arch,
        model_class=plan.info["model_class"],
        token_types="kept" if has_token_types else ("dropped" if drop_token_types else "folded"),
        destination=os.path.abspath(destination) if destination else None, copied=copied, dropped=dropped,
        source_dropped=source_dropped, bytes_before=teacher.nbytes, bytes_after=plan.total_bytes,
        params_before=teacher.num_parameters,
        params_after=sum(int(np.prod(t.shape, dtype=np.int64)) for t in plan.outputs),
        config={}, warnings=list(plan.info.get("warnings", [])), dry_run=dry_run, stacks=stacks,
        teacher_stacks=teacher.stack_layers)
    if not stacks and order_warning(layers):
        report.warnings.append(order_warning(layers))
    act = teacher.config.get("hidden_act")
    if arch == "distilbert" and plan.info.get("head_activation") not in (None, act) \
            and report.model_class.endswith("MaskedLM"):
        report.warnings.append(f"the teacher's MLM head applies {plan.info['head_activation']} but its "
                               f"layers {act}; DistilBERT uses {act} for both, so MLM logits differ")
    return report


def _config(teacher: Teacher, report: StudentReport, plan: Plan) -> dict:
    config = student_config(teacher.config, arch=report.arch, num_layers=len(report.layers),  # stacks: in plan.info
                            model_class=report.model_class,
                            tie_word_embeddings=plan.info.get("tie_word_embeddings", True))
    return {**config, **plan.info.get("student_config", {})}


def _write_student(folder: str, *, teacher: Teacher, source, plan: Plan, report: StudentReport, command: str | None,
                   started: float, mlm_head: bool = False) -> None:
    """Weights, tokenizer, config.json, student.json and ckptkit.json into the staging ``folder``."""
    from ckptkit.converters.sinks import SafetensorsSink
    from ckptkit.output.record import write_record

    stream_plan(plan, source, SafetensorsSink(folder), desc="student")
    head: dict = {}
    if mlm_head:  # copied from the teacher, or a fresh one (ckptkit.distill.init.mlm_head)
        from ckptkit.distill.init.mlm_head import add_mlm_head

        head = add_mlm_head(folder, model_class=report.model_class, config=teacher.config)
        report.model_class = head["model_class"]
    report.tokenizer_files = _copy_tokenizer(teacher, folder)
    if teacher.folder:  # a sentence-transformers teacher: the same module stack (Pooling, Normalize...)
        from ckptkit.distill.st_modules import copy_st_modules

        copy_st_modules(teacher.folder, folder)
    report.config = _config(teacher, report, plan)  # after the tokenizer: it may set pad_token_id
    _write_json(os.path.join(folder, "config.json"), report.config)
    report.files = sorted([*os.listdir(folder), STUDENT_FILE, RECORD_FILE, CARD_FILE])
    report.seconds = time.perf_counter() - started
    _write_json(os.path.join(folder, STUDENT_FILE), {**report.to_json(), **{k: v for k, v in head.items()
                                                                             if k == "mlm_head"}})
    write_record(folder, student_record(report, teacher, command or equivalent_command(report)))


def build_student(teacher_path: str, destination: str | None, *, layers: Sequence[int] | str | None = None,
                  num_layers: int | None = None, strategy: str = "uniform", arch: str = "same",
                  drop_token_types: bool = False, config: str | None = None, overwrite: bool = False,
                  dry_run: bool = False, command: str | None = None, card: Mapping | None = None,
                  part: str | None = None, encoder_layers: Sequence[int] | str | None = None,
                  decoder_layers: Sequence[int] | str | None = None, mlm_head: bool = False) -> StudentReport:
    """Make a student hub folder at ``destination`` from the layers of ``teacher_path``, atomically.

    Args:
        teacher_path: a hub folder, a safetensors/``.bin`` file (with ``config.json`` beside it or
            ``config``), or a TF checkpoint (converted on the fly).
        destination: the student folder (must be new or empty unless ``overwrite``); ignored with ``dry_run``.
        layers: 0-based teacher layers, one per student layer (``"0,4,8"`` or ``[0, 4, 8]``).
        num_layers: instead of ``layers``: how many, chosen by ``strategy`` (see ``STRATEGIES``).
        arch: ``same`` (the teacher's class) or ``distilbert`` (DistilBertForMaskedLM).
        drop_token_types: DistilBERT: drop the token-type embeddings instead of folding row 0.
        config: the teacher's config (HF config.json, or bert_config.json for TF) when not beside it.
        overwrite: replace an existing non-empty ``destination``.
        dry_run: plan and report only; read no tensor and write nothing.
        command: the command line recorded in ckptkit.json.
        card: model-card options (language, license, tags).
        mlm_head: give the student an MLM head: the teacher's, or a fresh one when it has none
            (:mod:`ckptkit.distill.init.mlm_head`), for MLM training and an MLM-only baseline.
        part: a TF ELECTRA pretraining checkpoint holds two models: ``discriminator`` or ``generator``.
        encoder_layers, decoder_layers: an encoder-decoder teacher (BigBird-Pegasus): the 0-based layers each stack
            keeps, increasing (a stack not given keeps all; ``layers``/``num_layers`` do not apply).

    Returns:
        A :class:`StudentReport` (also written as ``student.json``).
    """
    from ckptkit.converters.source import open_source

    choice = _check_request(destination, layers=layers, num_layers=num_layers, strategy=strategy, arch=arch,
                            drop_token_types=drop_token_types, dry_run=dry_run,
                            stacks=StackChoice.parse(encoder=encoder_layers, decoder=decoder_layers))
    started = time.perf_counter()
    with open_source(teacher_path, config=config) as source:
        teacher = open_teacher(source, part=part)
        chosen = _resolve(choice, teacher)
        plan, copied, dropped = plan_student(teacher, layers=chosen, arch=arch,
                                             token_types="drop" if drop_token_types else "fold")
        plan.check(source.checkpoint)
        report = _report(teacher, plan, copied, dropped, layers=chosen, arch=arch, drop_token_types=drop_token_types,
                         destination=destination, dry_run=dry_run)
        if dry_run:
            report.config = _config(teacher, report, plan)
            return report
        from ckptkit.output.staging import staged_folder

        with staged_folder(destination, overwrite=overwrite, sources=source.inputs) as folder:
            _write_student(folder, teacher=teacher, source=source.checkpoint, plan=plan, report=report,
                           command=command, started=started, mlm_head=mlm_head)
    from ckptkit.output.card import write_model_card

    # after the rename, so the card names the folder, not its staging name (README.md is written atomically)
    write_model_card(report.destination, **{k: v for k, v in (card or {}).items() if v})
    report.seconds = time.perf_counter() - started
    return report
