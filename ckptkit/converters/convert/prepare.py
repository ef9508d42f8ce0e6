"""One preparer per direction, chosen by the target: the plan and everything the output needs,
computed and checked from metadata before anything is written."""

from __future__ import annotations

import dataclasses
from typing import Callable

from ckptkit.converters.convert.options import TARGETS, ConversionOptions
from ckptkit.converters.convert.prepare_hf_to_tf import prepare_hf_to_tf, prepare_parts_to_tf
from ckptkit.converters.convert.prepare_tf_to_hf import prepare_tf_to_hf
from ckptkit.converters.convert.prepare_weights import prepare_weights
from ckptkit.converters.convert.prepared import Prepared
from ckptkit.converters.plan import Plan
from ckptkit.converters.source import Source
from ckptkit.converters.tensors import Checkpoint
from ckptkit.errors import UsageError
from ckptkit.tokenizers.companions import plan_tokenizer

__all__ = ["PREPARERS", "default_target", "resolve_target", "prepare_conversion", "as_source"]

PREPARERS: dict[str, Callable[[Source, ConversionOptions], Prepared]] = {
    "hf": prepare_tf_to_hf, "tf1": prepare_hf_to_tf, "safetensors": prepare_weights, "pytorch": prepare_weights,
}


def default_target(source: Checkpoint) -> str:
    """A TF checkpoint becomes a hub folder; anything else a TF checkpoint."""
    return "hf" if source.format == "tf" else "tf1"


def resolve_target(checkpoint: Checkpoint, options: ConversionOptions) -> ConversionOptions:
    """``options`` with its target filled in for this checkpoint (a new value; ``options`` is unchanged)."""
    to = options.to or default_target(checkpoint)
    if to not in PREPARERS:
        raise UsageError(f"unknown target {to!r}", hint="one of " + ", ".join(TARGETS))
    if to == "hf" and checkpoint.format != "tf":
        raise UsageError(f"--to hf needs a TF checkpoint, got {checkpoint.format}", path=checkpoint.path,
                         hint="use --to safetensors or --to pytorch between PyTorch-world formats")
    return dataclasses.replace(options, to=to)


def as_source(source: Source | Checkpoint, options: ConversionOptions) -> Source:
    """A :class:`Source` for ``source``: an opened checkpoint gets the companions ``options`` names."""
    if isinstance(source, Source):
        return source
    return Source.of_checkpoint(source, config=options.config, vocab=options.vocab, spm=options.spm)


def prepare_conversion(source: Source | Checkpoint, options: ConversionOptions) -> Prepared:
    """Build and check the plan for converting ``source``; reads no tensor bytes (counters aside).

    Args:
        source: a :class:`~ckptkit.converters.source.Source` (or an opened checkpoint, whose companions
            are then the ones ``options`` names); a folder of part folders becomes one TF checkpoint.
        options: the conversion's options; its target defaults to :func:`default_target`.
    """
    source = as_source(source, options)
    if source.part_folders and options.to in (None, "tf1"):
        options, preparer = dataclasses.replace(options, to="tf1"), prepare_parts_to_tf
    else:
        options = resolve_target(source.checkpoint, options)
        preparer = PREPARERS[options.to]
    prepared = preparer(source, options)
    for each in prepared.outputs:
        each.plan.check(each.tensors if each.tensors is not None else source.checkpoint)
        _plan_tokenizer(each, options, prepared.plan)
    return prepared


def _plan_tokenizer(prepared: Prepared, options: ConversionOptions, top: Plan) -> None:
    """Build and check a hub folder's tokenizer now (dry runs too); its problems become warnings."""
    if prepared.target != "hf":
        return
    step = plan_tokenizer(vocab=prepared.vocab, spm=prepared.spm, prefer_spm=bool(prepared.family.spm_names),
                          kind=prepared.family.tokenizer_kind,
                          do_lower_case=options.do_lower_case, vocab_size=prepared.hf_config.get("vocab_size"),
                          enabled=not options.no_tokenizer, keep_accents=options.family_options.get("keep_accents"))
    prepared.tokenizer = step
    for role in ("pad_token", "bos_token", "eos_token", "sep_token") if step.built is not None else ():
        key, token_id = f"{role}_id", step.built.token_id(role)
        if token_id is not None and (key in prepared.hf_config or role == "pad_token"):
            prepared.hf_config[key] = token_id  # the tokenizer knows the ids (KoBERT pads with 1)
    for plan in [prepared.plan] if prepared.plan is top else [prepared.plan, top]:
        plan.warnings.extend(w for w in step.warnings if w not in plan.warnings)
