"""Weights -> weights: the same names in the other PyTorch-world format (safetensors <-> pytorch)."""

from __future__ import annotations

import os

from ckptkit.converters.convert.common import weights
from ckptkit.converters.convert.options import ConversionOptions
from ckptkit.converters.convert.prepared import Prepared
from ckptkit.converters.families import detect_family, get_family
from ckptkit.converters.families.base import Family, cast_dtype
from ckptkit.converters.formats.hub_folder import WEIGHT_FILES
from ckptkit.converters.plan import Dropped, Plan, PlannedTensor
from ckptkit.converters.source import Source
from ckptkit.converters.tensors import Checkpoint

__all__ = ["prepare_weights"]


def _untie(checkpoint: Checkpoint, family: Family | None, target: str) -> tuple[list[Dropped], set[str]]:
    """safetensors holds no shared storage: tied aliases are dropped (transformers re-ties them)."""
    dropped: list[Dropped] = []
    aliases: set[str] = set()
    for group in checkpoint.extras.get("shared", []) if target == "safetensors" else []:
        tied = [n for n in group if family and n in family.tied] or group[1:]
        keep = next(n for n in group if n not in tied)
        aliases.update(tied)
        dropped.extend(Dropped(n, f"shares storage with {keep!r} (tied); transformers re-ties it on load")
                       for n in tied)
    return dropped, aliases


def _other_files(folder: str | None) -> list[str]:
    """The hub folder's files besides the weights (config, tokenizer files, ...), copied as they are."""
    if not folder:
        return []
    weight_files = {n for n, _ in WEIGHT_FILES}
    return [os.path.join(folder, n) for n in sorted(os.listdir(folder))
            if n not in weight_files and not n.startswith((".", "model-", "pytorch_model-"))
            and os.path.isfile(os.path.join(folder, n))]


def prepare_weights(source: Source, options: ConversionOptions) -> Prepared:
    """Same names, other format (safetensors <-> pytorch); tied aliases deduplicated for safetensors."""
    checkpoint = source.checkpoint
    config = checkpoint.extras.get("config") or {}
    name = options.family or detect_family(weights(checkpoint), model_type=config.get("model_type"))
    family = get_family(name) if name else None
    dropped, aliases = _untie(checkpoint, family, options.to)
    outputs = [PlannedTensor(n, (n,), (), cast_dtype(t.dtype, options.target_dtype), t.shape)
               for n, t in checkpoint.items() if n not in aliases]
    plan = Plan(outputs, dropped, {"family": family.name if family else None,
                                   "model_class": (config.get("architectures") or [None])[0],
                                   "source_format": checkpoint.format, "target": options.to})
    hf_config = dict(config) if config else None
    if hf_config is not None and options.dtype:
        hf_config["dtype"] = options.dtype
    return Prepared(plan, options.to, family, hf_config=hf_config,
                    copy_files=_other_files(checkpoint.extras.get("folder")))
