"""``convert``: source checkpoint -> family rules -> Plan -> sink, into an atomic output folder.

Targets (``to``): ``hf`` (hub folder), ``tf1`` (TF bundle + Google config), ``safetensors`` and
``pytorch`` (the same tensors in the other PyTorch-world format). A TF source defaults to ``hf``.

Example:
    >>> result = convert_checkpoint("examples/tiny-bert", "/tmp/ckptkit-doc-out", overwrite=True)  # doctest: +SKIP
    >>> result.plan.info["model_class"]                                                               # doctest: +SKIP
    'BertForPreTraining'
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field
from typing import Callable, Mapping

import numpy as np

from ckptkit.converters.approximate_gelu import approximate_activation
from ckptkit.converters.approximate_gelu import describe as describe_approximation
from ckptkit.converters.config_io import checkpoint_folder, find_companion, read_json_config, write_json
from ckptkit.converters.config_schema import validate_hf_config
from ckptkit.converters.families import detect_family, get_family
from ckptkit.converters.families.base import Family, Part, cast_dtype, plan_hf_to_tf, plan_tf_to_hf
from ckptkit.converters.formats import open_checkpoint
from ckptkit.converters.formats.hub_folder import WEIGHT_FILES, find_part_folders
from ckptkit.converters.plan import Dropped, Plan, PlannedTensor, execute
from ckptkit.converters.sinks import SINKS, parse_size
from ckptkit.converters.staging import check_destination, check_free_space, staged_folder
from ckptkit.converters.tensors import Checkpoint, DType, dtype_by_name
from ckptkit.errors import ConfigError, UsageError
from ckptkit.tokenizers.companions import TokenizerStep, find_spm, hub_spm, plan_tokenizer, tf_tokenizer_copies, \
    write_planned_tokenizer

__all__ = ["ConversionOptions", "ConversionResult", "prepare_conversion", "convert_checkpoint", "TARGETS",
           "Prepared", "DryRun", "dry_run_conversion"]

TARGETS = ("hf", "tf1", "safetensors", "pytorch")


@dataclass
class ConversionOptions:
    """Everything ``ckptkit convert`` can be told; every field has the CLI's default."""

    to: str | None = None
    weights_format: str = "safetensors"
    dtype: str | None = None
    max_shard_size: str | int | None = None
    family: str | None = None
    model_class: str | None = None
    config: str | None = None
    vocab: str | None = None
    spm: str | None = None
    do_lower_case: bool | None = None
    num_heads: int | None = None
    allow_unused: bool = False
    global_step: int | None = None
    overwrite: bool = False
    verify: bool = False
    part: str | None = None            # multi-model checkpoints (ELECTRA): discriminator | generator | both
    generator_heads: int | None = None  # ELECTRA generator heads when the config does not say (default hidden/64)
    tf_layout: str | None = None       # hf->tf layout variant of the family (BigBird: "3d" default or "2d")
    no_tokenizer: bool = False         # write no tokenizer files (weights, config and card only)
    approximate_gelu: bool = False     # hf->tf: write the TF code's other gelu form, report the logit difference
    command: str | None = None
    card: dict = field(default_factory=dict)  # language, license, tags for the model card

    @property
    def target_dtype(self) -> DType | None:
        return dtype_by_name(self.dtype) if self.dtype else None


@dataclass
class Prepared:
    """A plan plus what the target folder needs besides tensors."""

    plan: Plan
    target: str
    family: Family | None
    hf_config: dict | None = None
    tf_config: dict | None = None
    vocab: str | None = None
    spm: str | None = None
    extra_tensors: dict = field(default_factory=dict)
    copy_files: list[str] = field(default_factory=list)
    subfolder: str = ""                 # this part's folder inside the destination (multi-part outputs)
    part: Part | None = None
    parts: list["Prepared"] = field(default_factory=list)  # one per output folder when a checkpoint holds several
    tokenizer: TokenizerStep = field(default_factory=TokenizerStep)  # built and checked before writing (hf)


@dataclass
class ConversionResult:
    destination: str
    plan: Plan
    files: list[str]
    seconds: float
    hf_config: dict | None = None
    tokenizer: dict | None = None
    verification: dict | None = None
    timings: dict = field(default_factory=dict)  # "write" (tensors), "verify" (incl. loading torch), seconds

    def to_json(self) -> dict:
        return {"destination": self.destination, "files": self.files, "seconds": round(self.seconds, 3),
                "timings": {k: round(v, 3) for k, v in self.timings.items()},
                "family": self.plan.info.get("family"), "model_class": self.plan.info.get("model_class"),
                "tensors_written": len(self.plan.outputs), "bytes_written": self.plan.total_bytes,
                "dropped": len(self.plan.dropped), "warnings": self.plan.warnings,
                "tokenizer": self.tokenizer, "verification": self.verification,
                "approximate_gelu": self.plan.info.get("approximate_gelu")}


def _weights(source: Checkpoint) -> dict[str, tuple[int, ...]]:
    return {n: t.shape for n, t in source.items() if t.role == "weight"}


def _family_for(source: Checkpoint, options: ConversionOptions, model_type: str | None = None) -> Family:
    name = options.family or detect_family(_weights(source), model_type=model_type)
    if name is None:
        raise UsageError("cannot tell the model family from the tensor names", path=source.path,
                         hint="pass --family (bert, bigbird, electra, ...)")
    return get_family(name)


def _tf_config(source: Checkpoint, family: Family, options: ConversionOptions) -> tuple[dict, list[str], str | None]:
    path = find_companion(source.path, (family.tf_config_name, *family.tf_config_aliases, "config.json"),
                          explicit=options.config)
    shapes = _weights(source)
    for option, value in (("--num-heads", options.num_heads), ("--generator-heads", options.generator_heads)):
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
            raise UsageError(f"{option} is {value!r}, expected a positive integer")
    hints = {"num_heads": options.num_heads, "generator_heads": options.generator_heads, "config_path": path,
             "source_path": source.path, "spm": options.spm}
    if path is None:
        config, warnings = family.infer_tf_config(shapes, num_heads=options.num_heads)
        if family.complete_tf_config:
            config = family.complete_tf_config(config, shapes, hints)
        return config, [f"no {family.tf_config_name} found: config inferred from shapes", *warnings], None
    config = (family.read_tf_config or read_json_config)(path)
    if family.tf_schema is not None:
        family.tf_schema.validate(config, path=path, hint="fix the config or pass the matching one with --config")
    if options.num_heads:
        config["num_attention_heads"] = options.num_heads
    if family.complete_tf_config:
        config = family.complete_tf_config(config, shapes, hints)
    if family.check_tf_config:
        family.check_tf_config(config, shapes, config_path=path)
    return config, [], path


PART_CHOICES = ("discriminator", "generator", "both")


def _select_parts(family: Family, source: Checkpoint, options: ConversionOptions) -> list[Part | None]:
    """The parts to convert: every part the checkpoint holds, or the one ``options.part`` names."""
    if not family.split:
        if options.part not in (None, "both"):
            raise UsageError(f"--part {options.part} applies to checkpoints holding several models (ELECTRA); "
                             f"this is a {family.name} checkpoint", path=source.path, hint="drop --part")
        return [None]
    parts = family.split(_weights(source))
    if options.part not in (None, "both"):
        chosen = [p for p in parts if p.name == options.part]
        if not chosen:
            raise UsageError(f"the checkpoint holds no {options.part}", path=source.path,
                             hint="one of " + ", ".join(p.name for p in parts))
        return chosen
    return list(parts)


def _prepare_tf_to_hf(source: Checkpoint, options: ConversionOptions) -> Prepared:
    family = _family_for(source, options)
    tf_config, warnings, config_path = _tf_config(source, family, options)
    parts = _select_parts(family, source, options)
    prepared = [_prepare_part(source, options, family, tf_config, warnings, config_path, part) for part in parts]
    if len(prepared) == 1:
        if parts[0] is not None and len(family.split(_weights(source))) > 1:
            _note_parts_not_converted(prepared[0])
        return prepared[0]
    for each in prepared:
        each.subfolder = each.part.name
    outputs = [PlannedTensor(f"{p.subfolder}/{t.name}", t.inputs, t.steps, t.dtype, t.shape)
               for p in prepared for t in p.plan.outputs]
    used = {n for p in prepared for t in p.plan.outputs for n in t.inputs}  # another part writes these
    dropped = list({d.name: d for p in prepared for d in p.plan.dropped if d.name not in used}.values())
    info = {**prepared[0].plan.info, "model_class": None, "warnings": list(prepared[0].plan.warnings),
            "parts": {p.subfolder: p.plan.info["model_class"] for p in prepared}}
    return Prepared(Plan(outputs, dropped, info), "hf", family, tf_config=tf_config, parts=prepared)


def _note_parts_not_converted(prepared: Prepared) -> None:
    """``--part X`` of a checkpoint holding several models: the other parts' tensors are reported as not
    converted (the part's own reason may name a folder that only ``--part both`` writes)."""
    exclude = prepared.part.exclude
    if exclude is None:
        return
    note = f"not converted: --part {prepared.part.name}"
    prepared.plan.dropped = [Dropped(d.name, f"{d.reason.split(' (')[0]} ({note})") if d.reason == exclude(d.name)
                             else d for d in prepared.plan.dropped]


def _vocab_named_by_config(tf_config: dict, config_path: str | None) -> str | None:
    """ELECTRA's run_pretraining config names its vocab (``vocab_file``: DATA_DIR/vocab.txt); else a vocab.txt
    beside the config file."""
    named = tf_config.get("vocab_file")
    candidates = [named] if isinstance(named, str) else []
    if config_path:
        candidates.append(os.path.join(os.path.dirname(os.path.abspath(config_path)), "vocab.txt"))
    return next((c for c in candidates if os.path.isfile(c)), None)


def _prepare_part(source: Checkpoint, options: ConversionOptions, family: Family, tf_config: dict,
                  warnings: list[str], config_path: str | None, part: Part | None) -> Prepared:
    if part is not None and part.tf_config:
        tf_config = part.tf_config(tf_config)
    rename, exclude = (part.rename, part.exclude) if part else (None, None)
    provisional = family.config_to_hf(tf_config, model_class=options.model_class or "?")
    model_class = options.model_class if part is None or len(family.split(_weights(source))) == 1 else None
    plan = plan_tf_to_hf(family, source, hf_config=provisional, model_class=model_class,
                         dtype=options.target_dtype, allow_unused=options.allow_unused, tf_rename=rename,
                         exclude=exclude)
    hf_config = family.config_to_hf(tf_config, model_class=plan.info["model_class"])
    if family.hf_schema is not None:
        family.hf_schema.validate(hf_config, path=config_path or source.path,
                                  hint="the config.json made from this config would be invalid")
    _add_label_count(plan, hf_config)
    if options.dtype:
        hf_config["dtype"] = options.dtype
    plan.warnings.extend(warnings)
    plan.info.update(source_format=source.format, target="hf", config_source=config_path or "inferred from shapes",
                     global_step=source.global_step)
    if part is not None:
        plan.info["part"] = part.name
    vocab = find_companion(source.path, ("vocab.txt",), explicit=options.vocab) or \
        _vocab_named_by_config(tf_config, config_path)
    spm = find_companion(source.path, (), explicit=options.spm) or _spm_beside(source, family, tf_config, config_path)
    return Prepared(plan, "hf", family, hf_config=hf_config, tf_config=tf_config, vocab=vocab, spm=spm, part=part)


def _spm_beside(source: Checkpoint, family: Family, tf_config: dict, config_path: str | None) -> str | None:
    """A SentencePiece model beside the checkpoint or its config: the config's ``vocab_model_file`` name,
    the family's names, then the common ones (vocab.model, spiece.model, KoBERT's)."""
    named = tf_config.get("vocab_model_file")
    names = [os.path.basename(named)] if isinstance(named, str) and named else []
    folder = checkpoint_folder(source.path)
    folders = [folder, os.path.dirname(folder)] + ([os.path.dirname(os.path.abspath(config_path))] if config_path
                                                   else [])
    return find_spm(folders, names=[*names, *family.spm_names])


# HF tensors whose first dimension is the number of labels (BERT/BigBird-style and RoBERTa/ELECTRA-style heads).
LABEL_TENSORS = ("classifier.weight", "classifier.out_proj.weight")


def _add_label_count(plan: Plan, hf_config: dict) -> None:
    """Classification heads: num_labels comes from the head's shape."""
    for planned in plan.outputs:
        if planned.name in LABEL_TENSORS:
            labels = planned.shape[0]
            hf_config["id2label"] = {str(i): f"LABEL_{i}" for i in range(labels)}
            hf_config["label2id"] = {f"LABEL_{i}": i for i in range(labels)}


def _hub_config(source: Checkpoint, options: ConversionOptions) -> dict:
    """The HF config.json (--config, else the folder's), checked against its family's schema."""
    if options.config:
        config = read_json_config(options.config)
    else:
        config = source.extras.get("config")
        if not config:
            raise ConfigError("no config.json next to the weights", path=source.path,
                              hint="pass the model's config.json with --config")
    validate_hf_config(config, path=_hub_config_path(source, options), family=options.family)
    return dict(config)


def _hub_config_path(source: Checkpoint, options: ConversionOptions) -> str:
    folder = source.extras.get("folder") or os.path.dirname(os.path.abspath(source.path))
    return options.config or os.path.join(folder, "config.json")


def _prepare_hf_to_tf(source: Checkpoint, options: ConversionOptions) -> Prepared:
    hf_config = _hub_config(source, options)
    family = _family_for(source, options, model_type=hf_config.get("model_type"))
    validate_hf_config(hf_config, path=_hub_config_path(source, options), family=family.name)
    plan = plan_hf_to_tf(family, source, hf_config=hf_config, dtype=options.target_dtype,
                         allow_unused=options.allow_unused, transform_overrides=_layout(family, options))
    plan.info.update(source_format=source.format, target="tf1")
    tf_side, approximation = approximate_activation(family, hf_config, source, enabled=options.approximate_gelu,
                                                    model_class=plan.info["model_class"])
    if approximation:
        plan.info["approximate_gelu"] = approximation
        plan.warnings.append(describe_approximation(approximation))
    extra = {}
    if options.global_step is not None:
        extra["global_step"] = np.asarray(options.global_step, dtype=np.int64)
    folder = source.extras.get("folder") or os.path.dirname(os.path.abspath(source.path))
    vocab = options.vocab or next((os.path.join(folder, n) for n in ("vocab.txt",)
                                   if os.path.isfile(os.path.join(folder, n))), None)
    spm = options.spm or hub_spm(folder)
    tf_config = family.config_to_tf(tf_side)
    if family.check_tf_config:  # config.json against the weights, as the TF code will read them
        family.check_tf_config(tf_config, {t.name: t.shape for t in plan.outputs},
                               config_path=_hub_config_path(source, options))
    return Prepared(plan, "tf1", family, hf_config=hf_config, tf_config=tf_config,
                    vocab=vocab, spm=spm, extra_tensors=extra)


def _layout(family: Family, options: ConversionOptions) -> dict[str, str] | None:
    """The transform overrides of the TF layout ``options.tf_layout`` asks for (the family's default if None)."""
    name = options.tf_layout or family.default_tf_layout
    if name is None:
        if options.tf_layout:
            raise UsageError(f"--tf-layout does not apply to {family.name}", hint="drop --tf-layout")
        return None
    if name not in family.tf_layouts:
        raise UsageError(f"unknown {family.name} TF layout {name!r}", hint="one of " + ", ".join(family.tf_layouts))
    return dict(family.tf_layouts[name])


def _prepare_weights(source: Checkpoint, options: ConversionOptions) -> Prepared:
    """Same names, other format (safetensors <-> pytorch); tied aliases deduplicated for safetensors."""
    config = source.extras.get("config") or {}
    family = None
    name = options.family or detect_family(_weights(source), model_type=config.get("model_type"))
    if name:
        family = get_family(name)
    dropped, aliases = [], set()
    for group in source.extras.get("shared", []):
        if options.to != "safetensors":
            break
        tied = [n for n in group if family and n in family.tied] or group[1:]
        keep = next(n for n in group if n not in tied)
        aliases.update(tied)
        dropped.extend(Dropped(n, f"shares storage with {keep!r} (tied); transformers re-ties it on load")
                       for n in tied)
    outputs = [PlannedTensor(n, (n,), (), cast_dtype(t.dtype, options.target_dtype), t.shape)
               for n, t in source.items() if n not in aliases]
    plan = Plan(outputs, dropped, {"family": family.name if family else None,
                                   "model_class": (config.get("architectures") or [None])[0],
                                   "source_format": source.format, "target": options.to})
    folder = source.extras.get("folder")
    weight_files = {n for n, _ in WEIGHT_FILES}
    copy = [os.path.join(folder, n) for n in sorted(os.listdir(folder))
            if n not in weight_files and not n.startswith((".", "model-", "pytorch_model-"))
            and os.path.isfile(os.path.join(folder, n))] if folder else []
    hf_config = dict(config) if config else None
    if hf_config is not None and options.dtype:
        hf_config["dtype"] = options.dtype
    return Prepared(plan, options.to, family, hf_config=hf_config, copy_files=copy)


_PREPARERS: dict[str, Callable[[Checkpoint, ConversionOptions], Prepared]] = {
    "hf": _prepare_tf_to_hf, "tf1": _prepare_hf_to_tf, "safetensors": _prepare_weights,
    "pytorch": _prepare_weights,
}


def default_target(source: Checkpoint) -> str:
    return "hf" if source.format == "tf" else "tf1"


def prepare_conversion(source: Checkpoint, options: ConversionOptions) -> Prepared:
    """Build and check the plan for converting ``source``; reads no tensor bytes (counters aside)."""
    options.to = options.to or default_target(source)
    if options.to not in _PREPARERS:
        raise UsageError(f"unknown target {options.to!r}", hint="one of " + ", ".join(TARGETS))
    if options.to == "hf" and source.format != "tf":
        raise UsageError(f"--to hf needs a TF checkpoint, got {source.format}", path=source.path,
                         hint="use --to safetensors or --to pytorch between PyTorch-world formats")
    prepared = _PREPARERS[options.to](source, options)
    for each in prepared.parts or [prepared]:
        each.plan.check(source)
        _plan_tokenizer(each, options, prepared.plan)
    return prepared


def _plan_tokenizer(prepared: Prepared, options: ConversionOptions, top: Plan) -> None:
    """Build and check a hub folder's tokenizer now (dry runs too); its problems become warnings."""
    if prepared.target != "hf":
        return
    step = plan_tokenizer(vocab=prepared.vocab, spm=prepared.spm, prefer_spm=bool(prepared.family.spm_names),
                          do_lower_case=options.do_lower_case, vocab_size=prepared.hf_config.get("vocab_size"),
                          enabled=not options.no_tokenizer)
    prepared.tokenizer = step
    for role in ("pad_token", "bos_token", "eos_token", "sep_token") if step.built is not None else ():
        key, token_id = f"{role}_id", step.built.token_id(role)
        if token_id is not None and (key in prepared.hf_config or role == "pad_token"):
            prepared.hf_config[key] = token_id  # the tokenizer knows the ids (KoBERT pads with 1)
    for plan in [prepared.plan] if prepared.plan is top else [prepared.plan, top]:
        plan.warnings.extend(w for w in step.warnings if w not in plan.warnings)


def _finish_hf(prepared: Prepared, folder: str, options: ConversionOptions, source: Checkpoint) -> dict | None:
    tokenizer = write_planned_tokenizer(prepared.tokenizer, folder,
                                        model_max_length=int(prepared.hf_config.get("max_position_embeddings", 512)))
    write_json(os.path.join(folder, "config.json"), prepared.hf_config)
    return tokenizer


def _finish_tf1(prepared: Prepared, folder: str, options: ConversionOptions, source: Checkpoint) -> None:
    write_json(os.path.join(folder, prepared.family.tf_config_name), prepared.tf_config)
    if not options.no_tokenizer:
        for name, path in tf_tokenizer_copies(prepared.vocab, prepared.spm).items():
            shutil.copyfile(path, os.path.join(folder, name))


def _copied(prepared: Prepared, options: ConversionOptions) -> list[str]:
    """The hub folder's other files that a safetensors/pytorch output keeps (tokenizer files unless
    ``--no-tokenizer``)."""
    from ckptkit.tokenizers.files import tokenizer_files

    if not options.no_tokenizer or not prepared.copy_files:
        return list(prepared.copy_files)
    skipped = set(tokenizer_files(os.path.dirname(prepared.copy_files[0])))
    return [p for p in prepared.copy_files if os.path.basename(p) not in skipped]


def _finish_weights(prepared: Prepared, folder: str, options: ConversionOptions, source: Checkpoint) -> None:
    for path in _copied(prepared, options):
        shutil.copyfile(path, os.path.join(folder, os.path.basename(path)))
    if prepared.hf_config is not None:
        write_json(os.path.join(folder, "config.json"), prepared.hf_config)


_FINISHERS = {"hf": _finish_hf, "tf1": _finish_tf1, "safetensors": _finish_weights, "pytorch": _finish_weights}
_SINK_FOR_TARGET = {"hf": None, "tf1": "tf1", "safetensors": "safetensors", "pytorch": "pytorch"}


def _record(prepared: Prepared, source: Checkpoint, options: ConversionOptions, verification: dict | None) -> dict:
    import datetime

    from ckptkit import __version__

    cls = prepared.plan.info.get("model_class")
    family = prepared.family
    pipeline = next((c.pipeline_tag for c in family.classes if c.name == cls), None) if family else None
    return {
        "ckptkit_version": __version__, "kind": "conversion", "command": options.command or "",
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "model": {"family": family.name if family else None, "model_class": cls, "pipeline_tag": pipeline,
                  "num_parameters": int(sum(np.prod(t.shape, dtype=np.int64) for t in prepared.plan.outputs))},
        "source": {"path": os.path.abspath(source.path), "format": source.format,
                   "family": family.name if family else None, "global_step": source.global_step,
                   "base_model": None},
        "verification": verification,
        "card": {k: v for k, v in options.card.items() if v},
        **({"no_tokenizer": True} if options.no_tokenizer else {}),  # verify then accepts a folder without one
    }


def _write_cards(destination: str, prepared: Prepared, options: ConversionOptions) -> None:
    """Model cards are written once the folder has its final name (the card names the folder)."""
    from ckptkit.hub.model_card import write_model_card

    for each in prepared.parts or [prepared]:
        if each.target == "hf":
            write_model_card(os.path.join(destination, each.subfolder),
                             **{k: v for k, v in options.card.items() if v})


def convert_checkpoint(source_path: str, destination: str, *, options: ConversionOptions | None = None,
                       **kwargs) -> ConversionResult:
    """Convert ``source_path`` into ``destination`` (a folder), atomically.

    Args:
        source_path: any checkpoint :func:`~ckptkit.converters.formats.open_checkpoint` reads.
        destination: the output folder; must not exist or be empty unless ``overwrite``.
        options: a :class:`ConversionOptions`; keyword arguments override its fields.

    Returns:
        A :class:`ConversionResult` with the plan, the files written and the verification.
    """
    options = options or ConversionOptions()
    for key, value in kwargs.items():
        if not hasattr(options, key):
            raise TypeError(f"unknown option {key!r}")
        setattr(options, key, value)
    started = time.perf_counter()
    part_folders = find_part_folders(source_path)
    if part_folders and options.to in (None, "tf1"):
        return _convert_parts_to_tf(part_folders, destination, options, started)
    with open_checkpoint(source_path) as source:
        prepared = prepare_conversion(source, options)
        _check_sinks(prepared, options)
        inputs = [source_path, *source.files, options.config, options.vocab, options.spm]
        with staged_folder(destination, overwrite=options.overwrite, sources=inputs) as folder:
            results = [_write_prepared(each, source, source_path, os.path.join(folder, each.subfolder), options)
                       for each in prepared.parts or [prepared]]
            files = sorted(os.path.relpath(os.path.join(root, name), folder)
                           for root, _, names in os.walk(folder) for name in names)
        _write_cards(destination, prepared, options)
        files = sorted({*files, *(os.path.join(p.subfolder, "README.md") for p in prepared.parts or [prepared]
                                  if p.target == "hf")})
    tokenizer, verification, _ = results[0]
    if prepared.parts:
        tokenizer = {p.subfolder: t for p, (t, _, _) in zip(prepared.parts, results)}
        verification = {p.subfolder: v for p, (_, v, _) in zip(prepared.parts, results)} if options.verify else None
    timings = {key: sum(r[2][key] for r in results) for key in ("write", "verify") if key in results[0][2]}
    return ConversionResult(os.path.abspath(destination), prepared.plan, files, time.perf_counter() - started,
                            hf_config=prepared.hf_config or (prepared.parts[0].hf_config if prepared.parts else None),
                            tokenizer=tokenizer, verification=verification, timings=timings)


def _write_prepared(prepared: Prepared, source: Checkpoint, source_path: str, folder: str,
                    options: ConversionOptions) -> tuple[dict | None, dict | None, dict[str, float]]:
    """Stream one prepared plan into ``folder`` (the staged destination or a part's subfolder).

    Returns the tokenizer facts, the verification summary and the seconds spent writing the tensors
    (``"write"``) and verifying (``"verify"``, which includes importing torch and transformers)."""
    os.makedirs(folder, exist_ok=True)
    sink = SINKS[_sink_name(prepared, options)](folder, max_shard_size=options.max_shard_size)
    if prepared.extra_tensors:
        sink.extra_tensors = prepared.extra_tensors
    started = time.perf_counter()
    execute(prepared.plan, source, sink)
    timings = {"write": time.perf_counter() - started}
    tokenizer = _FINISHERS[prepared.target](prepared, folder, options, source)
    verification = None
    if options.verify:
        from ckptkit.converters.verify import verify_conversion

        started = time.perf_counter()
        # TF -> hub folder: the tokenizer is checked against the vocab files this conversion found (also those
        # only its --config names); the other way, against what the hub folder's tokenizer gives
        vocab, spm = (prepared.vocab, prepared.spm) if prepared.target == "hf" else (options.vocab, options.spm)
        report = verify_conversion(source_path, folder, family=prepared.family.name if prepared.family else None,
                                   part=prepared.part.name if prepared.part else None, raise_on_mismatch=True,
                                   tokenizer=not options.no_tokenizer, vocab=vocab, spm=spm)
        verification = report.summary()
        timings["verify"] = time.perf_counter() - started
    if prepared.target == "hf":
        from ckptkit.hub.record import write_record

        write_record(folder, _record(prepared, source, options, verification))
    return tokenizer, verification, timings


def _parts_tokenizer_copies(part_folders: dict[str, str], options: ConversionOptions) -> dict[str, str]:
    """The tokenizer files a TF checkpoint joined from part folders gets, named as :func:`_finish_tf1` names
    them: ``--vocab``/``--spm``, else the parts' ``vocab.txt`` and SentencePiece model (none with
    ``--no-tokenizer``)."""
    if options.no_tokenizer:
        return {}
    vocab = options.vocab or next((os.path.join(p, "vocab.txt") for p in part_folders.values()
                                   if os.path.isfile(os.path.join(p, "vocab.txt"))), None)
    spm = options.spm or next((found for found in map(hub_spm, part_folders.values()) if found), None)
    return tf_tokenizer_copies(vocab, spm)


def _convert_parts_to_tf(part_folders: dict[str, str], destination: str | None, options: ConversionOptions,
                         started: float, *, dry_run: bool = False) -> "ConversionResult | DryRun":
    """Several part folders (ELECTRA's discriminator and generator) -> one TF checkpoint with shared names."""
    import contextlib

    with contextlib.ExitStack() as stack:
        sources = {name: stack.enter_context(open_checkpoint(path)) for name, path in part_folders.items()}
        configs = {name: _hub_config(src, ConversionOptions()) for name, src in sources.items()}
        first = next(iter(sources))
        family = _family_for(sources[first], options, model_type=configs[first].get("model_type"))
        parts = {p.name: p for p in family.hf_parts}
        merged: dict = {}
        outputs: dict[str, PlannedTensor] = {}
        dropped: list[Dropped] = []
        approximations: dict[str, dict] = {}
        for name, src in sources.items():
            plan = plan_hf_to_tf(family, src, hf_config=configs[name], dtype=options.target_dtype,
                                 allow_unused=options.allow_unused, tf_rename=parts[name].unrename,
                                 transform_overrides=_layout(family, options))
            configs[name], approximation = approximate_activation(
                family, configs[name], src, enabled=options.approximate_gelu, model_class=plan.info["model_class"])
            if approximation:
                approximations[name] = approximation
            merged.update({f"{name}:{n}": t for n, t in src.items()})
            dropped.extend(Dropped(f"{name}:{d.name}", d.reason) for d in plan.dropped)
            for t in plan.outputs:
                inputs = tuple(f"{name}:{n}" for n in t.inputs)
                if t.name in outputs:
                    if outputs[t.name].shape != t.shape:
                        raise ConfigError(f"{t.name} is shared by the parts but has shape {list(t.shape)} in {name} "
                                          f"and {list(outputs[t.name].shape)} before", path=part_folders[name],
                                          hint="were these folders converted from one checkpoint?")
                    dropped.extend(Dropped(n, f"shared TF variable {t.name}, written from "
                                              f"{outputs[t.name].inputs[0].split(':')[0]}") for n in inputs)
                    continue
                outputs[t.name] = PlannedTensor(t.name, inputs, t.steps, t.dtype, t.shape)
        plan = Plan(sorted(outputs.values(), key=lambda t: t.name.encode()), dropped,
                    {"family": family.name, "model_class": None, "direction": "hf->tf", "target": "tf1",
                     "source_format": "hub folders",
                     "parts": {n: (c.get("architectures") or [None])[0] for n, c in configs.items()}})
        plan.check(merged)
        if approximations:
            plan.info["approximate_gelu"] = approximations
            plan.warnings.extend(f"{name}/: {describe_approximation(a)}" for name, a in approximations.items())
        extra = {"global_step": np.asarray(options.global_step, dtype=np.int64)} \
            if options.global_step is not None else {}
        inputs = [*part_folders.values(), options.config, options.vocab, options.spm]
        copies = _parts_tokenizer_copies(part_folders, options)
        if dry_run:
            return _dry_run(plan, destination, [family.tf_config_name, "checkpoint", *copies], options, inputs)
        with staged_folder(destination, overwrite=options.overwrite, sources=inputs) as folder:
            sink = SINKS["tf1"](folder, max_shard_size=options.max_shard_size)
            if extra:
                sink.extra_tensors = extra
            written = time.perf_counter()
            execute(plan, merged, sink)
            timings = {"write": time.perf_counter() - written}
            write_json(os.path.join(folder, family.tf_config_name), family.join_tf_config(configs))
            for name, path in copies.items():
                shutil.copyfile(path, os.path.join(folder, name))
            files = sorted(os.listdir(folder))
            verification = None
            if options.verify:
                from ckptkit.converters.verify import verify_conversion

                verified = time.perf_counter()
                verification = verify_conversion(os.path.dirname(next(iter(part_folders.values()))), folder,
                                                 family=family.name, raise_on_mismatch=True,
                                                 tokenizer=not options.no_tokenizer, vocab=options.vocab,
                                                 spm=options.spm).summary()
                timings["verify"] = time.perf_counter() - verified
    return ConversionResult(os.path.abspath(destination), plan, files, time.perf_counter() - started,
                            verification=verification, timings=timings)


# ------------------------------------------------------------------ dry run: every check, nothing written


@dataclass
class DryRun:
    """What ``convert`` would write: the plan (every check passed) and the files besides the weights."""

    plan: Plan
    destination: str | None
    files: list[str]

    def to_json(self) -> dict:
        return {**self.plan.to_json(), "dry_run": True, "destination": self.destination, "files": self.files,
                "warnings": self.plan.warnings}

    def format_text(self) -> str:
        where = f" into {self.destination}" if self.destination else ""
        return f"{self.plan.format_text()}\nwould write{where}, besides the weights: {', '.join(self.files)}"


def dry_run_conversion(source_path: str, destination: str | None = None, *, options: ConversionOptions | None = None,
                       **kwargs) -> DryRun:
    """Run every check :func:`convert_checkpoint` runs (config, plan, tokenizer, weights format and shard
    size, destination, free space) and write nothing.

    Args:
        source_path: the checkpoint to convert.
        destination: the output folder the real run would write (None: its checks are skipped).
        options: a :class:`ConversionOptions`; keyword arguments override its fields.

    Returns:
        A :class:`DryRun`: the plan and the non-tensor files the run writes (config, tokenizer, card...).

    Example:
        >>> dry_run_conversion("examples/tiny-bert", "out/tiny-bert").files  # doctest: +SKIP
        ['README.md', 'ckptkit.json', 'config.json', 'special_tokens_map.json', 'tokenizer.json', ...]
    """
    options = options or ConversionOptions()
    for key, value in kwargs.items():
        if not hasattr(options, key):
            raise TypeError(f"unknown option {key!r}")
        setattr(options, key, value)
    part_folders = find_part_folders(source_path)
    if part_folders and options.to in (None, "tf1"):
        return _convert_parts_to_tf(part_folders, destination, options, time.perf_counter(), dry_run=True)
    with open_checkpoint(source_path) as source:
        prepared = prepare_conversion(source, options)
        _check_sinks(prepared, options)
        inputs = [source_path, *source.files, options.config, options.vocab, options.spm]
        files = [os.path.join(each.subfolder, name) for each in prepared.parts or [prepared]
                 for name in _planned_files(each, options)]
        return _dry_run(prepared.plan, destination, files, options, inputs)


def _dry_run(plan: Plan, destination: str | None, files: list[str], options: ConversionOptions,
             inputs: list) -> DryRun:
    parse_size(options.max_shard_size)
    if destination is None:
        return DryRun(plan, None, sorted(files))
    destination = os.path.abspath(destination)
    check_destination(destination, overwrite=options.overwrite, sources=inputs)
    existing = destination
    while not os.path.isdir(existing) and os.path.dirname(existing) != existing:
        existing = os.path.dirname(existing)
    check_free_space(existing, plan.total_bytes)
    return DryRun(plan, destination, sorted(files))


def _sink_name(prepared: Prepared, options: ConversionOptions) -> str:
    name = _SINK_FOR_TARGET[prepared.target] or options.weights_format
    if name not in SINKS:
        raise UsageError(f"unknown weights format {name!r}", hint="safetensors or pytorch")
    return name


def _check_sinks(prepared: Prepared, options: ConversionOptions) -> None:
    """The sink options, checked before anything is written (real and dry runs alike)."""
    for each in prepared.parts or [prepared]:
        _sink_name(each, options)
    parse_size(options.max_shard_size)


def _planned_files(prepared: Prepared, options: ConversionOptions) -> list[str]:
    """The files besides the weights that the finisher of ``prepared.target`` writes."""
    if prepared.target == "hf":
        return ["config.json", *prepared.tokenizer.files, "README.md", "ckptkit.json"]
    if prepared.target == "tf1":
        copies = {} if options.no_tokenizer else tf_tokenizer_copies(prepared.vocab, prepared.spm)
        return [prepared.family.tf_config_name, "checkpoint", *copies]
    return [os.path.basename(p) for p in _copied(prepared, options)] + (["config.json"] if prepared.hf_config else [])
