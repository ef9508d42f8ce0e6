"""TF checkpoint -> hub folder(s): the TF config (file or shapes), the parts to write, one plan each."""

from __future__ import annotations

import os

from ckptkit.converters.config_io import read_json_config
from ckptkit.converters.convert.common import family_for, weights
from ckptkit.converters.convert.options import ConversionOptions
from ckptkit.converters.convert.prepared import Prepared
from ckptkit.converters.families.base import Family, Part, plan_tf_to_hf
from ckptkit.converters.plan import Dropped, Plan, PlannedTensor
from ckptkit.converters.source import ConfigHints, Source
from ckptkit.errors import UsageError

__all__ = ["prepare_tf_to_hf", "LABEL_TENSORS"]

# HF tensors whose first dimension is the number of labels (BERT/BigBird-style and RoBERTa/ELECTRA-style heads).
LABEL_TENSORS = ("classifier.weight", "classifier.out_proj.weight")


def _tf_config(source: Source, family: Family, options: ConversionOptions) -> tuple[dict, list[str], str | None]:
    """The TF config: the file beside the checkpoint (or ``--config``), else inferred from the shapes."""
    path = source.config_file((family.tf_config_name, *family.tf_config_aliases, "config.json"))
    shapes = weights(source.checkpoint)
    hints = ConfigHints(source=source, config_path=path, num_heads=options.num_heads,
                        family_options=options.family_options)
    if path is None:
        heads = options.num_heads or source.checkpoint.extras.get("num_heads")  # a Keras SavedModel's einsum kernels
        config, warnings = family.infer_tf_config(shapes, num_heads=heads)
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


def _select_parts(family: Family, source: Source, options: ConversionOptions) -> list[Part | None]:
    """The parts to convert: every part the checkpoint holds, or the one the ``part`` option names."""
    part = options.family_options.get("part")
    if not family.split:
        if part not in (None, "both"):
            raise UsageError(f"--part {part} applies to checkpoints holding several models (ELECTRA); "
                             f"this is a {family.name} checkpoint", path=source.path, hint="drop --part")
        return [None]
    parts = family.split(weights(source.checkpoint))
    if part not in (None, "both"):
        chosen = [p for p in parts if p.name == part]
        if not chosen:
            raise UsageError(f"the checkpoint holds no {part}", path=source.path,
                             hint="one of " + ", ".join(p.name for p in parts))
        return chosen
    return list(parts)


def prepare_tf_to_hf(source: Source, options: ConversionOptions) -> Prepared:
    """The plan(s) turning a TF checkpoint into a hub folder (one subfolder per part when it holds several)."""
    family = family_for(source.checkpoint, options)
    tf_config, warnings, config_path = _tf_config(source, family, options)
    parts = _select_parts(family, source, options)
    prepared = [_prepare_part(source, options, family, tf_config, warnings, config_path, part) for part in parts]
    if len(prepared) == 1:
        if parts[0] is not None and len(family.split(weights(source.checkpoint))) > 1:
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


def _spm_beside(source: Source, family: Family, tf_config: dict, config_path: str | None) -> str | None:
    """``--spm``, else a SentencePiece model beside the checkpoint or its config: the config's
    ``vocab_model_file`` name, the family's names, then the common ones (vocab.model, spiece.model, KoBERT's)."""
    named = tf_config.get("vocab_model_file")
    names = [os.path.basename(named)] if isinstance(named, str) and named else []
    return source.spm_file(names=(*names, *family.spm_names), near=(config_path,))


def _hf_config(family: Family, tf_config: dict, plan: Plan, options: ConversionOptions, where: str) -> dict:
    hf_config = family.config_to_hf(tf_config, model_class=plan.info["model_class"])
    if family.hf_schema is not None:
        family.hf_schema.validate(hf_config, path=where, hint="the config.json made from this config would be invalid")
    _add_label_count(plan, hf_config)
    if options.dtype:
        hf_config["dtype"] = options.dtype
    return hf_config


def _prepare_part(source: Source, options: ConversionOptions, family: Family, tf_config: dict,
                  warnings: list[str], config_path: str | None, part: Part | None) -> Prepared:
    checkpoint = source.checkpoint
    if part is not None and part.tf_config:
        tf_config = part.tf_config(tf_config)
    rename, exclude = (part.rename, part.exclude) if part else (None, None)
    provisional = family.config_to_hf(tf_config, model_class=options.model_class or "?")
    model_class = options.model_class if part is None or len(family.split(weights(checkpoint))) == 1 else None
    plan = plan_tf_to_hf(family, checkpoint, hf_config=provisional, model_class=model_class,
                         dtype=options.target_dtype, allow_unused=options.allow_unused, tf_rename=rename,
                         exclude=exclude)
    hf_config = _hf_config(family, tf_config, plan, options, config_path or checkpoint.path)
    plan.warnings.extend(warnings)
    plan.info.update(source_format=checkpoint.format, target="hf", config_source=config_path or "inferred from shapes",
                     global_step=checkpoint.global_step)
    if checkpoint.extras.get("kind") == "saved_model":
        plan.info["source_format"] = f"tf SavedModel ({checkpoint.extras['names']})"
    if part is not None:
        plan.info["part"] = part.name
    vocab = source.vocab_file() or _vocab_named_by_config(tf_config, config_path)
    spm = _spm_beside(source, family, tf_config, config_path)
    return Prepared(plan, "hf", family, hf_config=hf_config, tf_config=tf_config, vocab=vocab, spm=spm, part=part)


def _add_label_count(plan: Plan, hf_config: dict) -> None:
    """Classification heads: num_labels comes from the head's shape."""
    for planned in plan.outputs:
        if planned.name in LABEL_TENSORS:
            labels = planned.shape[0]
            hf_config["id2label"] = {str(i): f"LABEL_{i}" for i in range(labels)}
            hf_config["label2id"] = {f"LABEL_{i}": i for i in range(labels)}
