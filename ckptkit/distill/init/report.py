"""What ``build_student`` did: :class:`StudentReport` (``student.json``, the printed report) and the record.

Example:
    >>> r = StudentReport(teacher="t", teacher_format="hub", family="bert", teacher_model_class="BertModel",
    ...                   teacher_layers=12, layers=[0, 4, 8], arch="same", model_class="BertModel",
    ...                   token_types="kept", destination=None, copied=[], dropped={}, source_dropped={},
    ...                   bytes_before=4, bytes_after=1, params_before=4, params_after=1, config={})
    >>> r.to_json()["layers_1based"], equivalent_command(r)
    ([1, 5, 9], 'ckptkit distill init t OUT --layers 0,4,8 --arch same')
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field

from ckptkit.distill.init.names import Copied
from ckptkit.distill.init.teacher import Teacher

__all__ = ["StudentReport", "student_record", "equivalent_command"]

MIB = 2 ** 20
# StudentReport.token_types -> how the text report says it
TOKEN_TYPES_TEXT = {"kept": "kept (same architecture)",
                    "folded": "folded: teacher segment-0 row added to the position embeddings",
                    "dropped": "dropped (--drop-token-types)"}


@dataclass
class StudentReport:
    """What ``build_student`` did; ``to_json()`` is written as ``student.json`` next to the weights."""

    teacher: str
    teacher_format: str
    family: str
    teacher_model_class: str
    teacher_layers: int
    layers: list[int]
    arch: str
    model_class: str
    token_types: str
    destination: str | None
    copied: list[Copied]
    dropped: dict[str, str]
    source_dropped: dict[str, int]
    bytes_before: int
    bytes_after: int
    params_before: int
    params_after: int
    config: dict
    tokenizer_files: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    seconds: float = 0.0
    dry_run: bool = False
    stacks: dict[str, list[int]] | None = None          # encoder-decoders: the kept layers per stack
    teacher_stacks: dict[str, int] | None = None        # and the teacher's layers per stack

    @property
    def shape_text(self) -> str:
        """``12 layers``, or an encoder-decoder's ``16+4 layers`` (teacher: ``16+16``)."""
        if self.stacks is None:
            return f"{len(self.layers)} layers"
        return "+".join(str(len(v)) for v in self.stacks.values()) + " layers (" + \
            ", ".join(f"{len(v)} {k}" for k, v in self.stacks.items()) + ")"

    def to_json(self) -> dict:
        """The report as ``student.json`` holds it."""
        return {
            "teacher": self.teacher, "teacher_format": self.teacher_format, "family": self.family,
            "teacher_model_class": self.teacher_model_class, "teacher_num_layers": self.teacher_layers,
            "layers": list(self.layers), "layers_1based": [i + 1 for i in self.layers],
            "arch": self.arch, "model_class": self.model_class, "num_layers": len(self.layers),
            "token_types": self.token_types,
            "activation": self.config.get("activation", self.config.get("hidden_act")),
            "pad_token_id": self.config.get("pad_token_id"), "vocab_size": self.config.get("vocab_size"),
            "size": {"teacher_bytes": self.bytes_before, "student_bytes": self.bytes_after,
                     "teacher_parameters": self.params_before, "student_parameters": self.params_after,
                     "ratio": round(self.params_after / self.params_before, 4) if self.params_before else None},
            "tensors": [c.to_json() for c in self.copied],
            "dropped": [{"name": n, "reason": r} for n, r in self.dropped.items()],
            "source_dropped": dict(self.source_dropped),
            "tokenizer_files": list(self.tokenizer_files), "warnings": list(self.warnings),
            "destination": self.destination, "files": list(self.files), "seconds": round(self.seconds, 3),
            "dry_run": self.dry_run,
            **({"stacks": dict(self.stacks), "teacher_stacks": dict(self.teacher_stacks or {})} if self.stacks else {}),
        }

    def _summary_lines(self) -> list[str]:
        teacher_layers = "+".join(map(str, self.teacher_stacks.values())) if self.teacher_stacks else \
            str(self.teacher_layers)
        lines = [f"student of {self.teacher} ({self.family}, {self.teacher_model_class}, "
                 f"{teacher_layers} layers, {self.teacher_format})",
                 f"  architecture: {self.model_class} (--arch {self.arch}), {self.shape_text}"]
        if self.stacks is not None:
            from ckptkit.distill.init.stacks import stack_lines

            lines += stack_lines(self.teacher_stacks or {}, self.stacks)
        else:
            lines.append("  layers (student <- teacher, 1-based; 0-based in brackets):")
            lines += [f"    {s + 1} <- {t + 1} [{t}]" for s, t in enumerate(self.layers)]
        return lines + [
            f"  token types: {TOKEN_TYPES_TEXT[self.token_types]}",
            f"  activation: {self.config.get('activation', self.config.get('hidden_act'))}, "
            f"pad_token_id: {self.config.get('pad_token_id')}, vocab: {self.config.get('vocab_size')}",
            f"  parameters: {self.params_before:,} -> {self.params_after:,} "
            f"({self.params_after / max(self.params_before, 1):.1%})",
            f"  size: {self.bytes_before / MIB:.1f} MiB -> {self.bytes_after / MIB:.1f} MiB"]

    def _tensor_lines(self) -> list[str]:
        width = max((len(c.name) for c in self.copied), default=10)
        return [f"{len(self.copied)} tensors written:"] + [
            f"  {c.name:<{width}}  <- {' + '.join(c.teacher)}"
            + (f"  [{' -> '.join(s.describe() for s in c.planned.steps)}]" if c.planned.steps else "")
            for c in self.copied]

    def _dropped_lines(self) -> list[str]:
        by_reason: dict[str, list[str]] = {}
        for name, reason in self.dropped.items():
            kept = re.match(r"teacher (\w+ )?layer \d+ is not kept", reason)
            key = f"teacher {kept.group(1) or ''}layer not kept" if kept else reason
            by_reason.setdefault(key, []).append(name)
        lines = [f"{len(self.dropped)} teacher tensors not written:"]
        for reason, names in by_reason.items():
            shown = ", ".join(names[:2]) + (f", ... (+{len(names) - 2})" if len(names) > 2 else "")
            lines.append(f"  {len(names):>4} {reason}: {shown}")
        return lines + [f"  {n:>4} source tensors: {r}" for r, n in self.source_dropped.items()]

    def format_text(self, *, tensors: bool = True) -> str:
        """A readable report: layer map (0- and 1-based), sizes, every tensor and its origin, drops."""
        lines = self._summary_lines() + (self._tensor_lines() if tensors else []) + self._dropped_lines()
        if self.tokenizer_files:
            lines.append("tokenizer: " + ", ".join(self.tokenizer_files))
        lines += [f"warning: {w}" for w in self.warnings]
        if self.destination and not self.dry_run:
            lines.append(f"wrote {self.destination} in {self.seconds:.2f} s")
        return "\n".join(lines)


def student_record(report: StudentReport, teacher: Teacher, command: str) -> dict:
    """The ``ckptkit.json`` record of a student folder."""
    return {
        "kind": "student", "command": command,
        "model": {"family": "distilbert" if report.arch == "distilbert" else teacher.family,
                  "model_class": report.model_class,
                  "pipeline_tag": "fill-mask" if report.model_class.endswith(("MaskedLM", "PreTraining")) else None,
                  "num_parameters": report.params_after},
        "source": {"path": teacher.path, "format": teacher.format, "family": teacher.family,
                   "global_step": teacher.global_step, "base_model": None},
        "student": {"teacher": teacher.path, "layers": list(report.layers),
                    "arch": {"kind": report.arch, "model_class": report.model_class,
                             "num_layers": len(report.layers), "token_types": report.token_types,
                             **({"stacks": dict(report.stacks)} if report.stacks else {})}},
    }


def equivalent_command(report: StudentReport) -> str:
    """The CLI line that makes the same student (recorded when the library is called directly)."""
    chosen = {f"--{k}-layers": v for k, v in report.stacks.items()} if report.stacks else {"--layers": report.layers}
    args = ["ckptkit", "distill", "init", report.teacher, report.destination or "OUT",
            *(a for flag, layers in chosen.items() for a in (flag, ",".join(str(i) for i in layers))),
            "--arch", report.arch]
    return shlex.join(args + (["--drop-token-types"] if report.token_types == "dropped" else []))
