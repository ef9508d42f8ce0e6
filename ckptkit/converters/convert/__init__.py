"""``convert``: source checkpoint -> family rules -> Plan -> sink, into an atomic output folder.

Targets (``to``): ``hf`` (hub folder), ``tf1`` (TF bundle + Google config), ``safetensors`` and
``pytorch`` (the same tensors in the other PyTorch-world format). A TF source defaults to ``hf``.

The pipeline, one module each: :mod:`.options` (what the user asked, checked once),
:mod:`ckptkit.converters.source` (what the user typed, opened once), one preparer per direction
(:mod:`.prepare_tf_to_hf`, :mod:`.prepare_hf_to_tf` (also part folders joined into one TF
checkpoint), :mod:`.prepare_weights`), chosen in :mod:`.prepare`; then the one writer
(:mod:`.write`) or the dry run (:mod:`.dry_run`).

Example:
    >>> result = convert_checkpoint("examples/tiny-bert", "/tmp/ckptkit-doc-out", overwrite=True)  # doctest: +SKIP
    >>> result.plan.info["model_class"]                                                               # doctest: +SKIP
    'BertForPreTraining'
"""

from __future__ import annotations

import contextlib
import os
import time
from typing import ContextManager

from ckptkit.converters.convert.dry_run import DryRun, dry_run_source
from ckptkit.converters.convert.options import TARGETS, ConversionOptions, with_overrides
from ckptkit.converters.convert.prepare import default_target, prepare_conversion
from ckptkit.converters.convert.prepared import ConversionResult, Prepared
from ckptkit.converters.convert.write import check_sinks, write_conversion
from ckptkit.converters.source import Source, open_source

__all__ = ["ConversionOptions", "ConversionResult", "prepare_conversion", "convert_checkpoint", "TARGETS",
           "Prepared", "DryRun", "dry_run_conversion", "default_target", "convert_source"]


def _open(source: str | os.PathLike | Source, options: ConversionOptions) -> ContextManager[Source]:
    """A Source the caller gave stays open (theirs to close); a path is opened here and closed after."""
    if isinstance(source, Source):
        return contextlib.nullcontext(source)
    return open_source(source, config=options.config, vocab=options.vocab, spm=options.spm)


def convert_source(source: Source, destination: str, *, options: ConversionOptions) -> ConversionResult:
    """Convert an opened :class:`~ckptkit.converters.source.Source` into ``destination``, atomically."""
    started = time.perf_counter()
    prepared = prepare_conversion(source, options)
    check_sinks(prepared, options)
    return write_conversion(prepared, source, destination, options=options, started=started)


def convert_checkpoint(source_path: str | os.PathLike | Source, destination: str, *,
                       options: ConversionOptions | None = None, **kwargs) -> ConversionResult:
    """Convert ``source_path`` into ``destination`` (a folder), atomically.

    Args:
        source_path: any checkpoint :func:`~ckptkit.converters.formats.open_checkpoint` reads, a folder of
            part folders, or a :class:`~ckptkit.converters.source.Source`.
        destination: the output folder; must not exist or be empty unless ``overwrite``.
        options: a :class:`ConversionOptions` (never changed); keyword arguments override its fields
            in a copy.

    Returns:
        A :class:`ConversionResult` with the plan, the files written and the verification.
    """
    options = with_overrides(options, kwargs)
    with _open(source_path, options) as source:
        return convert_source(source, destination, options=options)


def dry_run_conversion(source_path: str | os.PathLike | Source, destination: str | None = None, *,
                       options: ConversionOptions | None = None, **kwargs) -> DryRun:
    """Run every check :func:`convert_checkpoint` runs (config, plan, tokenizer, weights format and shard
    size, destination, free space) and write nothing.

    Args:
        source_path: the checkpoint to convert (or a :class:`~ckptkit.converters.source.Source`).
        destination: the output folder the real run would write (None: its checks are skipped).
        options: a :class:`ConversionOptions`; keyword arguments override its fields in a copy.

    Returns:
        A :class:`DryRun`: the plan and the non-tensor files the run writes (config, tokenizer, card...).

    Example:
        >>> dry_run_conversion("examples/tiny-bert", "out/tiny-bert").files  # doctest: +SKIP
        ['README.md', 'ckptkit.json', 'config.json', 'special_tokens_map.json', 'tokenizer.json', ...]
    """
    options = with_overrides(options, kwargs)
    with _open(source_path, options) as source:
        return dry_run_source(source, destination, options=options)
