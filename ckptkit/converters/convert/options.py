"""What ``convert`` can be told, as one frozen value: parsed and checked when it is built (the CLI or
API edge), before anything is opened or written; changed only with :func:`dataclasses.replace`.

Example:
    >>> options = ConversionOptions(max_shard_size="2GB")
    >>> options.max_shard_size, dataclasses.replace(options, to="tf1").to, options.to
    (2000000000, 'tf1', None)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping

from ckptkit.converters.sinks import parse_size
from ckptkit.converters.tensors import DType, dtype_by_name
from ckptkit.errors import UsageError

__all__ = ["ConversionOptions", "TARGETS", "WEIGHTS_FORMATS", "with_overrides"]

TARGETS = ("hf", "tf1", "safetensors", "pytorch")
WEIGHTS_FORMATS = ("safetensors", "pytorch")


@dataclass(frozen=True)
class ConversionOptions:
    """Everything ``ckptkit convert`` can be told; every field has the CLI's default.

    ``max_shard_size`` may be given as text (``"2GB"``); it is held as bytes (an int)."""

    to: str | None = None
    weights_format: str = "safetensors"
    dtype: str | None = None
    max_shard_size: int | None = None
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
    verify_engine: str = "numpy"       # what computes the hub side's outputs when verifying: numpy / transformers
    # the options families declare for themselves (ELECTRA's part, generator_heads; BigBird's tf_layout):
    # name -> value, checked against the declarations (ckptkit.converters.families.declared_options)
    family_options: Mapping[str, Any] = field(default_factory=dict)
    no_tokenizer: bool = False         # write no tokenizer files (weights, config and card only)
    approximate_gelu: bool = False     # hf->tf: write the TF code's other gelu form, report the logit difference
    command: str | None = None
    card: Mapping[str, Any] = field(default_factory=dict)  # language, license, tags for the model card

    def __post_init__(self) -> None:
        object.__setattr__(self, "max_shard_size", parse_size(self.max_shard_size))
        if self.max_shard_size is not None and self.max_shard_size < 1:
            raise UsageError(f"--max-shard-size is {self.max_shard_size} bytes", hint="give a positive size, e.g. 2GB")
        _check_choice("--to", self.to, TARGETS)
        _check_choice("--format", self.weights_format, WEIGHTS_FORMATS)
        _check_choice("--verify-engine", self.verify_engine, ("numpy", "transformers"))
        object.__setattr__(self, "family_options", _checked_family_options(self.family_options))
        if self.dtype is not None:
            dtype_by_name(self.dtype)
        for option, value in (("--num-heads", self.num_heads),):
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise UsageError(f"{option} is {value!r}, expected a positive integer")

    @property
    def target_dtype(self) -> DType | None:
        """The dtype floating tensors are cast to (None: kept)."""
        return dtype_by_name(self.dtype) if self.dtype else None


def _checked_family_options(values: Mapping[str, Any]) -> Mapping[str, Any]:
    """The set family options, each checked against what its family declares (read-only)."""
    from ckptkit.converters.families import declared_options
    from ckptkit.converters.families.options import CONVERT, check_option_values

    return MappingProxyType(check_option_values(values, declared_options(CONVERT).values()))


def _check_choice(option: str, value: str | None, choices: tuple[str, ...]) -> None:
    if value is not None and value not in choices:
        raise UsageError(f"unknown {option} {value!r}", hint="one of " + ", ".join(choices))


def with_overrides(options: ConversionOptions | None, overrides: Mapping[str, Any]) -> ConversionOptions:
    """``options`` (default: the CLI's defaults) with ``overrides`` applied: a new value, checked again.

    Example:
        >>> with_overrides(None, {"colour": "red"})
        Traceback (most recent call last):
        ...
        TypeError: unknown option 'colour'
    """
    from ckptkit.converters.families import declared_options
    from ckptkit.converters.families.options import CONVERT

    options = options or ConversionOptions()
    names = {f.name for f in dataclasses.fields(ConversionOptions)}
    family_names = set(declared_options(CONVERT))  # a family's option may be passed by its name too
    unknown = sorted(set(overrides) - names - family_names)
    if unknown:
        raise TypeError(f"unknown option {unknown[0]!r}")
    fields = {k: v for k, v in overrides.items() if k in names}
    family = {k: v for k, v in overrides.items() if k in family_names and k not in names}
    if family:
        fields["family_options"] = {**fields.get("family_options", options.family_options), **family}
    return dataclasses.replace(options, **fields)
