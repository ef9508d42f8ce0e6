"""What preparing a conversion yields (:class:`Prepared`) and what writing it returns
(:class:`ConversionResult`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Mapping

from ckptkit.converters.families.base import Family, Part
from ckptkit.converters.plan import Plan
from ckptkit.tokenizers.companions import TokenizerStep

__all__ = ["Prepared", "ConversionResult"]


@dataclass
class Prepared:
    """A plan plus what the target folder needs besides tensors.

    ``tensors`` is what the plan's inputs name (None: the source checkpoint); the join of several
    part folders into one TF checkpoint reads from a mapping over all of them."""

    plan: Plan
    target: str
    family: Family | None
    hf_config: dict | None = None
    tf_config: dict | None = None
    vocab: str | None = None
    spm: str | None = None
    extra_tensors: dict = field(default_factory=dict)
    copy_files: list[str] = field(default_factory=list)
    subfolder: str = ""                 # this part's folder inside the destination (multi-part outputs)
    part: Part | None = None
    parts: list["Prepared"] = field(default_factory=list)  # one per output folder when a checkpoint holds several
    tokenizer: TokenizerStep = field(default_factory=TokenizerStep)  # built and checked before writing (hf)
    tensors: Mapping | None = None

    @property
    def outputs(self) -> list["Prepared"]:
        """One entry per output folder: the parts, or this one."""
        return self.parts or [self]


@dataclass
class ConversionResult:
    """What :func:`~ckptkit.converters.convert.convert_checkpoint` wrote, and how it checked."""

    destination: str
    plan: Plan
    files: list[str]
    seconds: float
    hf_config: dict | None = None
    tokenizer: dict | None = None
    verification: dict | None = None
    timings: dict = field(default_factory=dict)  # "write" (tensors), "verify" (incl. loading torch), seconds

    def to_json(self) -> dict:
        """The ``--json`` report."""
        return {"destination": self.destination, "files": self.files, "seconds": round(self.seconds, 3),
                "timings": {k: round(v, 3) for k, v in self.timings.items()},
                "family": self.plan.info.get("family"), "model_class": self.plan.info.get("model_class"),
                "tensors_written": len(self.plan.outputs), "bytes_written": self.plan.total_bytes,
                "dropped": len(self.plan.dropped), "warnings": self.plan.warnings,
                "tokenizer": self.tokenizer, "verification": self.verification,
                "approximate_gelu": self.plan.info.get("approximate_gelu")}
