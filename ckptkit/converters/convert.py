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

from ckptkit.converters.config_io import find_companion, read_json_config, write_json
from ckptkit.converters.families import detect_family, get_family
from ckptkit.converters.families.base import Family, cast_dtype, plan_hf_to_tf, plan_tf_to_hf
from ckptkit.converters.formats import open_checkpoint
from ckptkit.converters.formats.hub_folder import WEIGHT_FILES
from ckptkit.converters.plan import Dropped, Plan, PlannedTensor, execute
from ckptkit.converters.sinks import SINKS
from ckptkit.converters.staging import staged_folder
from ckptkit.converters.tensors import Checkpoint, DType, dtype_by_name
from ckptkit.errors import ConfigError, UsageError

__all__ = ["ConversionOptions", "ConversionResult", "prepare_conversion", "convert_checkpoint", "TARGETS",
           "Prepared"]

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


@dataclass
class ConversionResult:
    destination: str
    plan: Plan
    files: list[str]
    seconds: float
    hf_config: dict | None = None
    tokenizer: dict | None = None
    verification: dict | None = None

    def to_json(self) -> dict:
        return {"destination": self.destination, "files": self.files, "seconds": round(self.seconds, 3),
                "family": self.plan.info.get("family"), "model_class": self.plan.info.get("model_class"),
                "tensors_written": len(self.plan.outputs), "bytes_written": self.plan.total_bytes,
                "dropped": len(self.plan.dropped), "warnings": self.plan.warnings,
                "tokenizer": self.tokenizer, "verification": self.verification}


def _weights(source: Checkpoint) -> dict[str, tuple[int, ...]]:
    return {n: t.shape for n, t in source.items() if t.role == "weight"}


def _family_for(source: Checkpoint, options: ConversionOptions, model_type: str | None = None) -> Family:
    name = options.family or detect_family(_weights(source), model_type=model_type)
    if name is None:
        raise UsageError("cannot tell the model family from the tensor names", path=source.path,
                         hint="pass --family (bert, bigbird, electra, ...)")
    return get_family(name)


def _tf_config(source: Checkpoint, family: Family, options: ConversionOptions) -> tuple[dict, list[str], str | None]:
    path = find_companion(source.path, (family.tf_config_name, "config.json"), explicit=options.config)
    shapes = _weights(source)
    if path is None:
        config, warnings = family.infer_tf_config(shapes, num_heads=options.num_heads)
        return config, [f"no {family.tf_config_name} found: config inferred from shapes", *warnings], None
    config = (family.read_tf_config or read_json_config)(path)
    if options.num_heads:
        config["num_attention_heads"] = options.num_heads
    if family.check_tf_config:
        family.check_tf_config(config, shapes, config_path=path)
    return config, [], path


def _prepare_tf_to_hf(source: Checkpoint, options: ConversionOptions) -> Prepared:
    family = _family_for(source, options)
    tf_config, warnings, config_path = _tf_config(source, family, options)
    provisional = family.config_to_hf(tf_config, model_class=options.model_class or "?")
    plan = plan_tf_to_hf(family, source, hf_config=provisional, model_class=options.model_class,
                         dtype=options.target_dtype, allow_unused=options.allow_unused)
    hf_config = family.config_to_hf(tf_config, model_class=plan.info["model_class"])
    _add_label_count(plan, hf_config)
    if options.dtype:
        hf_config["dtype"] = options.dtype
    plan.warnings.extend(warnings)
    plan.info.update(source_format=source.format, target="hf", config_source=config_path or "inferred from shapes",
                     global_step=source.global_step)
    vocab = find_companion(source.path, ("vocab.txt",), explicit=options.vocab)
    spm = find_companion(source.path, ("vocab.model",), explicit=options.spm) if options.spm or not vocab else \
        options.spm
    return Prepared(plan, "hf", family, hf_config=hf_config, tf_config=tf_config, vocab=vocab, spm=spm)


def _add_label_count(plan: Plan, hf_config: dict) -> None:
    """Classification heads: num_labels comes from the head's shape."""
    for planned in plan.outputs:
        if planned.name in ("classifier.weight",):
            labels = planned.shape[0]
            hf_config["id2label"] = {str(i): f"LABEL_{i}" for i in range(labels)}
            hf_config["label2id"] = {f"LABEL_{i}": i for i in range(labels)}


def _hub_config(source: Checkpoint, options: ConversionOptions) -> dict:
    if options.config:
        return read_json_config(options.config)
    config = source.extras.get("config")
    if not config:
        raise ConfigError("no config.json next to the weights", path=source.path,
                          hint="pass the model's config.json with --config")
    return dict(config)


def _prepare_hf_to_tf(source: Checkpoint, options: ConversionOptions) -> Prepared:
    hf_config = _hub_config(source, options)
    family = _family_for(source, options, model_type=hf_config.get("model_type"))
    plan = plan_hf_to_tf(family, source, hf_config=hf_config, dtype=options.target_dtype,
                         allow_unused=options.allow_unused)
    plan.info.update(source_format=source.format, target="tf1")
    extra = {}
    if options.global_step is not None:
        extra["global_step"] = np.asarray(options.global_step, dtype=np.int64)
    folder = source.extras.get("folder") or os.path.dirname(os.path.abspath(source.path))
    vocab = options.vocab or next((os.path.join(folder, n) for n in ("vocab.txt",)
                                   if os.path.isfile(os.path.join(folder, n))), None)
    return Prepared(plan, "tf1", family, hf_config=hf_config, tf_config=family.config_to_tf(hf_config),
                    vocab=vocab, extra_tensors=extra)


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
    prepared.plan.check(source)
    return prepared


def _write_tokenizer(prepared: Prepared, folder: str, options: ConversionOptions) -> dict | None:
    if not prepared.vocab and not prepared.spm:
        prepared.plan.warnings.append("no vocab.txt / vocab.model found: no tokenizer files written "
                                      "(pass --vocab or --spm)")
        return None
    from ckptkit.tokenizers.export import detect_tokenizer_kind, write_tokenizer_files

    kind = detect_tokenizer_kind(vocab_file=prepared.vocab, spm_file=prepared.spm)
    info = write_tokenizer_files(folder, kind=kind, vocab_file=prepared.vocab, spm_file=prepared.spm,
                                 do_lower_case=options.do_lower_case,
                                 model_max_length=int(prepared.hf_config.get("max_position_embeddings", 512)))
    prepared.hf_config["pad_token_id"] = info.pad_token_id
    if info.vocab_size != prepared.hf_config.get("vocab_size"):
        prepared.plan.warnings.append(f"tokenizer has {info.vocab_size} tokens but the model's vocab_size is "
                                      f"{prepared.hf_config.get('vocab_size')}")
    return {"kind": info.kind, "class": info.tokenizer_class, "vocab_size": info.vocab_size,
            "pad_token_id": info.pad_token_id, "do_lower_case": info.do_lower_case}


def _finish_hf(prepared: Prepared, folder: str, options: ConversionOptions, source: Checkpoint) -> dict | None:
    tokenizer = _write_tokenizer(prepared, folder, options)
    write_json(os.path.join(folder, "config.json"), prepared.hf_config)
    return tokenizer


def _finish_tf1(prepared: Prepared, folder: str, options: ConversionOptions, source: Checkpoint) -> None:
    write_json(os.path.join(folder, prepared.family.tf_config_name), prepared.tf_config)
    if prepared.vocab:
        shutil.copyfile(prepared.vocab, os.path.join(folder, "vocab.txt"))


def _finish_weights(prepared: Prepared, folder: str, options: ConversionOptions, source: Checkpoint) -> None:
    for path in prepared.copy_files:
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
    }


def _write_card(folder: str, record: dict, options: ConversionOptions) -> None:
    from ckptkit.hub.record import write_record

    write_record(folder, record)
    try:
        from ckptkit.hub.model_card import write_model_card
    except ImportError:  # the card builder is optional at this layer
        return
    write_model_card(folder, **{k: v for k, v in options.card.items() if v})


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
    with open_checkpoint(source_path) as source:
        prepared = prepare_conversion(source, options)
        with staged_folder(destination, overwrite=options.overwrite) as folder:
            sink_name = _SINK_FOR_TARGET[prepared.target] or options.weights_format
            if sink_name not in SINKS:
                raise UsageError(f"unknown weights format {sink_name!r}", hint="safetensors or pytorch")
            sink = SINKS[sink_name](folder, max_shard_size=options.max_shard_size)
            if prepared.extra_tensors:
                sink.extra_tensors = prepared.extra_tensors
            execute(prepared.plan, source, sink)
            tokenizer = _FINISHERS[prepared.target](prepared, folder, options, source)
            verification = None
            if options.verify:
                from ckptkit.converters.verify import verify_conversion

                report = verify_conversion(source_path, folder, family=prepared.family.name if prepared.family
                                           else None, raise_on_mismatch=True)
                verification = report.summary()
            if prepared.target == "hf":
                _write_card(folder, _record(prepared, source, options, verification), options)
            files = sorted(os.listdir(folder))
    return ConversionResult(os.path.abspath(destination), prepared.plan, files, time.perf_counter() - started,
                            hf_config=prepared.hf_config, tokenizer=tokenizer, verification=verification)
