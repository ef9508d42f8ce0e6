"""The config the TF-side reference runs under: the output's config.json translated back to the TF
names (``Family.config_to_tf``), overruled by the *source's own* TF config where it speaks for the model
that was converted.

Translating config.json back alone would let a wrong value pass: if a conversion wrote the wrong activation
or head count, the reference would run the same wrong value as the engine. The source's config file (or
the config ``convert`` itself read, with ``--config``/``--num-heads`` applied) is the original. Only keys that
mean the same for every part are taken from it: a checkpoint holding several models (ELECTRA's generator
and discriminator) shares its activation, not its head count.

Example:
    >>> from types import SimpleNamespace as F
    >>> reference_config(F(config_to_tf=lambda c: dict(c), split=None), {"hidden_act": "gelu", "num_attention_heads": 2},
    ...                  {"hidden_act": "relu", "num_attention_heads": 4, "hidden_size": 8})
    {'hidden_act': 'relu', 'num_attention_heads': 4}
"""

from __future__ import annotations

from typing import Mapping

from ckptkit.converters.families.base import Family
from ckptkit.converters.source import Source
from ckptkit.errors import CkptkitError

__all__ = ["reference_config", "source_tf_config"]

SHARED_BY_PARTS = ("hidden_act",)  # taken from the source's config for every family
WHOLE_MODEL = ("num_attention_heads",)  # only when the checkpoint is one model


def source_tf_config(source: Source, family: Family) -> Mapping | None:
    """The TF config file beside the source checkpoint (or the one ``--config`` named), read as the family
    reads it; None without one or when it cannot be read (verify then relies on config.json alone)."""
    from ckptkit.converters.config_io import read_json_config

    path = source.config_file((family.tf_config_name, *family.tf_config_aliases))
    if path is None:
        return None
    try:
        config = (family.read_tf_config or read_json_config)(path)
    except (CkptkitError, OSError, ValueError):
        return None
    return config if isinstance(config, Mapping) else None


def reference_config(family: Family, hf_config: Mapping, source_config: Mapping | None) -> dict:
    """``config_to_tf(hf_config)`` with the source's own values for the keys it shares (see the module
    docstring)."""
    tf_config = dict(family.config_to_tf(hf_config))
    keys = SHARED_BY_PARTS + (() if family.split else WHOLE_MODEL)
    for key in keys:
        if source_config and key in tf_config and source_config.get(key) is not None:
            tf_config[key] = source_config[key]
    return tf_config
