"""``convert --dry-run``: every check of the real run (plan, config, tokenizer, weights format, shard size,
destination, free space), nothing written."""

from __future__ import annotations

import os
from dataclasses import dataclass

from ckptkit.converters.convert.options import ConversionOptions
from ckptkit.converters.convert.prepare import prepare_conversion
from ckptkit.converters.convert.write import check_sinks, planned_files
from ckptkit.converters.plan import Plan
from ckptkit.converters.source import Source
from ckptkit.output.atomic import check_free_space
from ckptkit.output.staging import check_destination

__all__ = ["DryRun", "dry_run_source"]


@dataclass
class DryRun:
    """What ``convert`` would write: the plan (every check passed) and the files besides the weights."""

    plan: Plan
    destination: str | None
    files: list[str]

    def to_json(self) -> dict:
        """The ``--json`` report."""
        return {**self.plan.to_json(), "dry_run": True, "destination": self.destination, "files": self.files,
                "warnings": self.plan.warnings}

    def format_text(self) -> str:
        """The text report."""
        where = f" into {self.destination}" if self.destination else ""
        return f"{self.plan.format_text()}\nwould write{where}, besides the weights: {', '.join(self.files)}"


def _existing_parent(path: str) -> str:
    while not os.path.isdir(path) and os.path.dirname(path) != path:
        path = os.path.dirname(path)
    return path


def dry_run_source(source: Source, destination: str | None, *, options: ConversionOptions) -> DryRun:
    """The checks of :func:`~ckptkit.converters.convert.convert_checkpoint` on ``source``, writing nothing."""
    prepared = prepare_conversion(source, options)
    check_sinks(prepared, options)
    files = sorted(os.path.join(each.subfolder, name) for each in prepared.outputs
                   for name in planned_files(each, options))
    if destination is None:
        return DryRun(prepared.plan, None, files)
    destination = os.path.abspath(destination)
    check_destination(destination, overwrite=options.overwrite, sources=source.inputs)
    check_free_space(_existing_parent(destination), prepared.plan.total_bytes)
    return DryRun(prepared.plan, destination, files)
