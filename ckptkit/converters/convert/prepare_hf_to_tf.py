"""Hub folder -> TF checkpoint: one hub folder, or several part folders (ELECTRA's discriminator/ and
generator/) joined into one checkpoint with shared names."""

from __future__ import annotations

import os

import numpy as np

from ckptkit.converters.approximate_gelu import approximate_activation
from ckptkit.converters.approximate_gelu import describe as describe_approximation
from ckptkit.converters.config_schema import validate_hf_config
from ckptkit.converters.convert.common import family_for, hub_config, hub_config_path, layout
from ckptkit.converters.convert.options import ConversionOptions
from ckptkit.converters.convert.prepared import Prepared
from ckptkit.converters.families.base import Family, plan_hf_to_tf
from ckptkit.converters.plan import Dropped, Plan, PlannedTensor
from ckptkit.converters.source import Source
from ckptkit.errors import ConfigError
from ckptkit.tokenizers.companions import hub_spm

__all__ = ["prepare_hf_to_tf", "prepare_parts_to_tf", "global_step_tensor"]


def global_step_tensor(options: ConversionOptions) -> dict:
    """``--global-step``: the counter a TF output gets (none by default)."""
    if options.global_step is None:
        return {}
    return {"global_step": np.asarray(options.global_step, dtype=np.int64)}


def _approximate(plan: Plan, family: Family, hf_config: dict, checkpoint, options: ConversionOptions) -> dict:
    """The HF config as the TF side will read it (``--approximate-gelu``), noting the approximation in ``plan``."""
    tf_side, approximation = approximate_activation(family, hf_config, checkpoint, enabled=options.approximate_gelu,
                                                    model_class=plan.info["model_class"])
    if approximation:
        plan.info["approximate_gelu"] = approximation
        plan.warnings.append(describe_approximation(approximation))
    return tf_side


def prepare_hf_to_tf(source: Source, options: ConversionOptions) -> Prepared:
    """The plan turning a hub folder (or bare weights + ``--config``) into a TF checkpoint."""
    checkpoint = source.checkpoint
    hf_config = hub_config(source, options.family)
    family = family_for(checkpoint, options, model_type=hf_config.get("model_type"))
    validate_hf_config(hf_config, path=hub_config_path(source), family=family.name)
    if family.with_options:
        hf_config = family.with_options(hf_config, options.family_options)
    plan = plan_hf_to_tf(family, checkpoint, hf_config=hf_config, dtype=options.target_dtype,
                         allow_unused=options.allow_unused, transform_overrides=layout(family, options))
    plan.info.update(source_format=checkpoint.format, target="tf1")
    tf_config = family.config_to_tf(_approximate(plan, family, hf_config, checkpoint, options))
    folder = checkpoint.extras.get("folder") or os.path.dirname(os.path.abspath(checkpoint.path))
    vocab = source.vocab or next((os.path.join(folder, n) for n in ("vocab.txt",)
                                  if os.path.isfile(os.path.join(folder, n))), None)
    spm = source.spm or hub_spm(folder)
    if family.check_tf_config:  # config.json against the weights, as the TF code will read them
        family.check_tf_config(tf_config, {t.name: t.shape for t in plan.outputs}, config_path=hub_config_path(source))
    return Prepared(plan, "tf1", family, hf_config=hf_config, tf_config=tf_config,
                    vocab=vocab, spm=spm, extra_tensors=global_step_tensor(options))


def _parts_tokenizer(source: Source, options: ConversionOptions) -> tuple[str | None, str | None]:
    """The vocab files a TF checkpoint joined from part folders gets: ``--vocab``/``--spm``, else the parts'
    ``vocab.txt`` and SentencePiece model (none with ``--no-tokenizer``)."""
    if options.no_tokenizer:
        return None, None
    folders = source.part_folders.values()
    vocab = source.vocab or next((os.path.join(p, "vocab.txt") for p in folders
                                  if os.path.isfile(os.path.join(p, "vocab.txt"))), None)
    return vocab, source.spm or next((found for found in map(hub_spm, folders) if found), None)


def _join(name: str, plan: Plan, outputs: dict[str, PlannedTensor], dropped: list[Dropped], folder: str) -> None:
    """Add part ``name``'s plan to the joined outputs; a TF variable two parts share is written once."""
    dropped.extend(Dropped(f"{name}:{d.name}", d.reason) for d in plan.dropped)
    for t in plan.outputs:
        inputs = tuple(f"{name}:{n}" for n in t.inputs)
        if t.name not in outputs:
            outputs[t.name] = PlannedTensor(t.name, inputs, t.steps, t.dtype, t.shape)
            continue
        if outputs[t.name].shape != t.shape:
            raise ConfigError(f"{t.name} is shared by the parts but has shape {list(t.shape)} in {name} "
                              f"and {list(outputs[t.name].shape)} before", path=folder,
                              hint="were these folders converted from one checkpoint?")
        dropped.extend(Dropped(n, f"shared TF variable {t.name}, written from "
                                  f"{outputs[t.name].inputs[0].split(':')[0]}") for n in inputs)


def prepare_parts_to_tf(source: Source, options: ConversionOptions) -> Prepared:
    """Several part folders (ELECTRA's discriminator and generator) -> one TF checkpoint with shared names.

    The plan reads from a mapping over all the parts' tensors (``part:name``)."""
    parts_of = {name: source.part(name) for name in source.part_folders}
    sources = {name: part.checkpoint for name, part in parts_of.items()}
    configs = {name: hub_config(part) for name, part in parts_of.items()}
    first = next(iter(sources))
    family = family_for(sources[first], options, model_type=configs[first].get("model_type"))
    parts = {p.name: p for p in family.hf_parts}
    merged: dict = {}
    outputs: dict[str, PlannedTensor] = {}
    dropped: list[Dropped] = []
    approximations: dict[str, dict] = {}
    for name, src in sources.items():
        plan = plan_hf_to_tf(family, src, hf_config=configs[name], dtype=options.target_dtype,
                             allow_unused=options.allow_unused, tf_rename=parts[name].unrename,
                             transform_overrides=layout(family, options))
        configs[name], approximation = approximate_activation(
            family, configs[name], src, enabled=options.approximate_gelu, model_class=plan.info["model_class"])
        if approximation:
            approximations[name] = approximation
        merged.update({f"{name}:{n}": t for n, t in src.items()})
        _join(name, plan, outputs, dropped, source.part_folders[name])
    plan = Plan(sorted(outputs.values(), key=lambda t: t.name.encode()), dropped,
                {"family": family.name, "model_class": None, "direction": "hf->tf", "target": "tf1",
                 "source_format": "hub folders",
                 "parts": {n: (c.get("architectures") or [None])[0] for n, c in configs.items()}})
    if approximations:
        plan.info["approximate_gelu"] = approximations
        plan.warnings.extend(f"{name}/: {describe_approximation(a)}" for name, a in approximations.items())
    vocab, spm = _parts_tokenizer(source, options)
    return Prepared(plan, "tf1", family, tf_config=family.join_tf_config(configs), vocab=vocab, spm=spm,
                    extra_tensors=global_step_tensor(options), tensors=merged)
