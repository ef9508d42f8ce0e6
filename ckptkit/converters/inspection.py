"""What is in a checkpoint, grouped by role, from its metadata (``ckptkit inspect``, ``ckptkit.inspect``).

Example:
    >>> report = inspect_checkpoint("examples/tiny-bert")
    >>> report.format, report.family, report.global_step, report.totals["by_role"]["optimizer"]["tensors"]
    ('tf', 'bert', 20000, 92)
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ckptkit.converters.tensors import Checkpoint

__all__ = ["Inspection", "inspect_checkpoint", "summarize", "family_of", "check_all", "ROLE_ORDER", "CHECKSUMS"]

ROLE_ORDER = ("weight", "optimizer", "counter", "metadata")
# storage format -> the checksum a full read verifies (None: the format stores none)
CHECKSUMS = {"tf": "CRC32C"}


@dataclass(frozen=True)
class Inspection:
    """A checkpoint's metadata: format, files, step, family, totals per role and every tensor.

    Attributes:
        totals: ``{"tensors", "parameters", "bytes", "by_role": {role: {...}}}``.
        tensors: one ``{"name", "dtype", "shape", "role", "nbytes"}`` per tensor, in checkpoint order.
        check: with ``check=True``: how many tensors and bytes were read and which checksum was verified.
    """

    format: str
    path: str
    files: list[str]
    global_step: int | None
    family: str | None
    extras: dict[str, Any]
    totals: dict[str, Any]
    tensors: list[dict[str, Any]]
    check: dict[str, Any] | None = field(default=None)

    def to_json(self) -> dict[str, Any]:
        """The document ``ckptkit inspect --json`` prints."""
        document = {key: getattr(self, key) for key in ("format", "path", "files", "global_step", "family",
                                                        "extras", "totals", "tensors")}
        return {**document, "check": self.check} if self.check else document


def _totals(tensors) -> dict:
    return {"tensors": len(tensors), "parameters": sum(t.numel for t in tensors),
            "bytes": sum(t.nbytes for t in tensors)}


def family_of(ckpt: Checkpoint) -> str | None:
    """The model family (bert, bigbird, electra, ...) detected from the weight names."""
    from ckptkit.converters.families import detect_family

    config = ckpt.extras.get("config") or {}
    return detect_family([n for n, t in ckpt.items() if t.role == "weight"], model_type=config.get("model_type"))


def summarize(ckpt: Checkpoint) -> dict:
    """The JSON document of ``inspect --json`` for an open checkpoint (metadata only)."""
    tensors = list(ckpt.values())
    roles = [r for r in ROLE_ORDER if any(t.role == r for t in tensors)]
    roles += sorted({t.role for t in tensors} - set(roles))
    return {
        "format": ckpt.format,
        "path": str(ckpt.path),
        "files": [str(f) for f in ckpt.files],
        "global_step": ckpt.global_step,
        "family": family_of(ckpt),
        "extras": {k: v for k, v in ckpt.extras.items() if k not in ("files", "global_step")},
        "totals": {**_totals(tensors), "by_role": {r: _totals([t for t in tensors if t.role == r]) for r in roles}},
        "tensors": [{"name": t.name, "dtype": t.dtype.name, "shape": list(t.shape), "role": t.role,
                     "nbytes": t.nbytes} for t in tensors],
    }


def check_all(ckpt: Checkpoint) -> dict:
    """Read every tensor (a bad checksum or a short file raises); what was read and verified, for the report."""
    from ckptkit.progress import progress

    for tensor in progress(list(ckpt.values()), desc="checking", unit="tensor"):
        tensor.read()
    tensors = list(ckpt.values())
    return {"tensors": len(tensors), "bytes": sum(t.nbytes for t in tensors if t.dtype.name != "object"),
            "checksum": CHECKSUMS.get(ckpt.extras.get("weights_format") or ckpt.format), "passed": True}


def inspect_checkpoint(location: str | os.PathLike, *, check: bool = False) -> Inspection:
    """List what ``location`` holds, from its metadata alone (``check``: also read and verify every tensor).

    Args:
        location: a TF checkpoint directory, prefix or ``.index`` file; a ``.safetensors`` or PyTorch
            ``.bin`` file or index json; or a hub folder.
        check: read every tensor, verifying its checksum where the format stores one (TF: CRC32C).

    Returns:
        An :class:`Inspection`.

    Example:
        >>> inspect_checkpoint("examples/tiny-bert", check=True).check["checksum"]
        'CRC32C'
    """
    from ckptkit.converters.source import open_source

    with open_source(location) as source:
        checked = check_all(source.checkpoint) if check else None
        return Inspection(**summarize(source.checkpoint), check=checked)
