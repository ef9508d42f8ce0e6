"""Steps every preparer shares: the family, the hub config.json, the TF layout."""

from __future__ import annotations

import os

from ckptkit.converters.config_io import read_json_config
from ckptkit.converters.config_schema import validate_hf_config
from ckptkit.converters.convert.options import ConversionOptions
from ckptkit.converters.families import FAMILIES, detect_family, get_family
from ckptkit.converters.families.base import Family
from ckptkit.converters.source import Source
from ckptkit.converters.tensors import Checkpoint
from ckptkit.errors import ConfigError, UsageError

__all__ = ["weights", "family_for", "hub_config", "hub_config_path", "layout"]


def weights(checkpoint: Checkpoint) -> dict[str, tuple[int, ...]]:
    """The shapes of the model weights (no optimizer slots or counters)."""
    return {n: t.shape for n, t in checkpoint.items() if t.role == "weight"}


def family_for(checkpoint: Checkpoint, options: ConversionOptions, model_type: str | None = None) -> Family:
    """``--family``, else the family the tensor names (and ``model_type``) say."""
    name = options.family or detect_family(weights(checkpoint), model_type=model_type)
    if name is None and checkpoint.extras.get("kind") == "saved_model":
        from ckptkit.converters.formats.saved_model import unsupported_layout

        raise unsupported_layout(checkpoint)
    if name is None:
        raise UsageError("cannot tell the model family from the tensor names", path=checkpoint.path,
                         hint="pass --family (one of " + ", ".join(FAMILIES) + ")")
    return get_family(name)


def hub_config_path(source: Source) -> str:
    """The config.json a hub-side source is described by: ``--config``, else the folder's."""
    checkpoint = source.checkpoint
    folder = checkpoint.extras.get("folder") or os.path.dirname(os.path.abspath(checkpoint.path))
    return source.config or os.path.join(folder, "config.json")


def hub_config(source: Source, family: str | None = None) -> dict:
    """The HF config.json (--config, else the folder's), checked against its family's schema."""
    if source.config:
        config = read_json_config(source.config)
    else:
        config = source.checkpoint.extras.get("config")
        if not config:
            raise ConfigError("no config.json next to the weights", path=source.checkpoint.path,
                              hint="pass the model's config.json with --config")
    validate_hf_config(config, path=hub_config_path(source), family=family)
    return dict(config)


def layout(family: Family, options: ConversionOptions) -> dict[str, str] | None:
    """The transform overrides of the TF layout the ``tf_layout`` option asks for (the family's default if None)."""
    asked = options.family_options.get("tf_layout")
    name = asked or family.default_tf_layout
    if name is None:
        if asked:
            raise UsageError(f"--tf-layout does not apply to {family.name}", hint="drop --tf-layout")
        return None
    if name not in family.tf_layouts:
        raise UsageError(f"unknown {family.name} TF layout {name!r}", hint="one of " + ", ".join(family.tf_layouts))
    return dict(family.tf_layouts[name])
