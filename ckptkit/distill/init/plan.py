"""The student's Plan over the teacher's source tensors (computed from metadata alone).

Example:
    >>> from ckptkit.converters.source import open_source
    >>> from ckptkit.distill.init.teacher import open_teacher
    >>> with open_source("examples/tiny-bert") as src:
    ...     plan, copied, dropped = plan_student(open_teacher(src), layers=[1])
    >>> [c.teacher[0] for c in copied if c.name.endswith("layer.0.output.dense.weight")]
    ['bert.encoder.layer.1.output.dense.weight']
"""

from __future__ import annotations

import re
from typing import Mapping, Sequence

from ckptkit.converters.plan import Dropped, Plan
from ckptkit.distill.init.names import Copied, distilbert_names, same_names, shared_sets, tied_aliases
from ckptkit.distill.init.stacks import stack_config, stack_names
from ckptkit.distill.init.teacher import Teacher
from ckptkit.errors import UsageError

__all__ = ["ARCHS", "TOKEN_TYPE_MODES", "plan_student", "check_arch"]

ARCHS = ("same", "distilbert")
TOKEN_TYPE_MODES = ("fold", "drop")


def check_arch(arch: str, token_types: str = "fold") -> None:
    """A UsageError for an unknown ``arch`` or token-type handling."""
    if arch not in ARCHS:
        raise UsageError(f"unknown student architecture {arch!r}", hint="one of " + ", ".join(ARCHS))
    if token_types not in TOKEN_TYPE_MODES:
        raise UsageError(f"unknown token-type handling {token_types!r}", hint="one of " + ", ".join(TOKEN_TYPE_MODES))


def _natural_key(name: str) -> list:
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name)]


def plan_student(teacher: Teacher, *, layers: Sequence[int] | Mapping[str, list[int]], arch: str = "same",
                 token_types: str = "fold") -> tuple[Plan, list[Copied], dict[str, str]]:
    """The student's plan over the teacher's source tensors, the copy list, and the dropped teacher tensors.

    Args:
        teacher: from :func:`~ckptkit.distill.init.teacher.open_teacher`.
        layers: the 0-based teacher layer each student layer starts from, in student order, as
            checked by :meth:`~ckptkit.distill.init.layers.LayerChoice.resolve`; an encoder-decoder's per stack
            (``{"encoder": [...], "decoder": [...]}``, from :meth:`~ckptkit.distill.init.stacks.StackChoice.resolve`).
        arch: ``same`` or ``distilbert``.
        token_types: ``fold`` or ``drop`` (DistilBERT only; ``same`` keeps them).
    """
    check_arch(arch, token_types)
    info: dict = {"warnings": []}
    stacks = teacher.rules.stacks if teacher.rules is not None else ()
    if stacks and arch != "same":
        raise UsageError(f"--arch {arch} does not apply to encoder-decoder teachers ({teacher.model_type})",
                         hint="use --arch same")
    if stacks:
        copied, dropped = stack_names(teacher.tensors, stacks, layers, tied_aliases(teacher))
        info.update(model_class=teacher.model_class, student_config=stack_config(stacks, layers))
    elif arch == "same":
        copied, dropped = same_names(teacher, layers)
        info["model_class"] = teacher.model_class
        if teacher.rules is not None and teacher.rules.layer_sets is not None:
            info["student_config"] = shared_sets(teacher, layers)[1]  # ALBERT: fewer layers (and groups)
    else:
        copied, dropped, info = distilbert_names(teacher, layers, token_types)
    copied.sort(key=lambda c: _natural_key(c.name))
    source_dropped = list(teacher.dropped)
    used = {i for c in copied for i in c.planned.inputs}
    for name, reason in dropped.items():
        source_dropped.extend(Dropped(src, reason if src == name else f"{reason} ({name})")
                              for src in teacher.tensors[name].inputs if src not in used)
    plan = Plan([c.planned for c in copied], source_dropped,
                {"family": teacher.family, "direction": "student", **info})
    return plan, copied, dropped
