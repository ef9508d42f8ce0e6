"""Encoder-decoder students: the encoder's and the decoder's layers chosen on their own ("shrink and fine-tune":
a 16+16-layer teacher -> a 16+4-layer student), every other tensor copied as it is.

A family declares its stacks in ``StudentRules.stacks`` (:data:`~ckptkit.converters.families.student.SEQ2SEQ_STACKS`).
``--encoder-layers``/``--decoder-layers`` are parsed by the one layer-list parser
(:func:`~ckptkit.distill.init.layers.parse_layer_list`); a stack not named keeps all its layers. Kept layers
must be distinct, in range and increasing (each stack runs its layers in the teacher's order).

Example:
    >>> choice = StackChoice.parse(decoder="0,5,10,15")
    >>> choice.resolve({"encoder": 16, "decoder": 16})["decoder"]
    [0, 5, 10, 15]
    >>> choice.resolve({"encoder": 16, "decoder": 12})
    Traceback (most recent call last):
    ...
    ckptkit.errors.UsageError: --decoder-layers 0,5,10,15: teacher decoder layer 15 is out of range (the teacher's decoder has 12 layers, numbered 0..11)
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Mapping, Sequence

from ckptkit.converters.families.student import StudentStack
from ckptkit.converters.plan import PlannedTensor
from ckptkit.distill.init.layers import check_layers
from ckptkit.distill.init.names import Copied
from ckptkit.errors import PlanError, UsageError

__all__ = ["StackChoice", "stack_counts", "stack_names", "stack_config", "stack_lines", "ENCODER_DECODER_HINT"]

ENCODER_DECODER_HINT = ("choose each stack's layers: --encoder-layers and/or --decoder-layers (0-based; a stack not "
                        "named keeps all its layers), e.g. --decoder-layers 0,5,10,15")


@dataclass(frozen=True)
class StackChoice:
    """Per stack (``encoder``, ``decoder``): the 0-based teacher layers asked for (None: all), as typed."""

    layers: tuple[tuple[str, tuple[int, ...] | None, str], ...]

    @classmethod
    def parse(cls, **by_stack: str | Sequence[int] | None) -> "StackChoice | None":
        """The request of ``--<stack>-layers`` options (None when none was given); syntax checked here."""
        from ckptkit.distill.init.layers import parse_layer_list

        if all(value is None for value in by_stack.values()):
            return None
        parsed = []
        for name, value in by_stack.items():
            shown = value if isinstance(value, str) or value is None else ",".join(str(i) for i in value)
            parsed.append((name, None if value is None else parse_layer_list(value, flag=f"--{name}-layers"),
                           shown or ""))
        return cls(tuple(parsed))

    def resolve(self, counts: Mapping[str, int]) -> dict[str, list[int]]:
        """Per stack of the teacher (``counts``: stack -> its layers), the kept layers, checked."""
        asked = {name: (layers, shown) for name, layers, shown in self.layers}
        unknown = [name for name, (layers, _) in asked.items() if layers is not None and name not in counts]
        if unknown:
            raise UsageError(f"--{unknown[0]}-layers: the teacher has no {unknown[0]} stack",
                             hint="its stacks: " + ", ".join(counts))
        return {name: _checked(name, *asked.get(name, (None, "")), count) for name, count in counts.items()}


def _checked(stack: str, layers: tuple[int, ...] | None, shown: str, count: int) -> list[int]:
    if layers is None:
        return list(range(count))
    check_layers(layers, count, shown=shown, stack=stack)
    if list(layers) != sorted(layers):
        raise UsageError(f"--{stack}-layers {shown}: not increasing", hint=f"the student's {stack} runs its layers in the teacher's "
                         f"order: give them sorted, e.g. {','.join(str(i) for i in sorted(layers))}")
    return list(layers)


def stack_counts(stacks: Sequence[StudentStack], names, *, path: str) -> dict[str, int]:
    """stack -> how many layers the teacher's tensor ``names`` hold in it."""
    counts = {}
    for stack in stacks:
        found = {int(m.group("layer")) for m in map(stack.pattern.match, names) if m}
        if not found:
            raise PlanError(f"the teacher has no {stack.name} layers (no '{stack.layer_name.split('{layer}')[0]}"
                            f"N.' tensors)", path=path)
        counts[stack.name] = max(found) + 1
    return counts


def stack_names(tensors: Mapping[str, PlannedTensor], stacks: Sequence[StudentStack], chosen: Mapping[str, list[int]],
                aliases: Mapping[str, str]) -> tuple[list[Copied], dict[str, str]]:
    """Every tensor kept (the chosen layers renumbered in each stack, the rest under its own name) and the teacher
    tensors not written, with the reason."""
    new_index = {stack.name: {t: s for s, t in enumerate(chosen[stack.name])} for stack in stacks}
    copied, dropped = [], {}
    for name, view in tensors.items():
        if name in aliases:
            dropped[name] = f"tied to {aliases[name]}; transformers re-ties it on load"
            continue
        stack, m = next(((s, m) for s in stacks for m in [s.pattern.match(name)] if m), (None, None))
        if stack is None:
            student = name
        elif int(m.group("layer")) in new_index[stack.name]:
            layer = new_index[stack.name][int(m.group("layer"))]
            student = stack.layer_name.format(base=m.group("base"), layer=layer, rest=m.group("rest"))
        else:
            dropped[name] = f"teacher {stack.name} layer {m.group('layer')} is not kept"
            continue
        copied.append(Copied(student, (name,), dataclasses.replace(view, name=student)))
    return copied, dropped


def stack_config(stacks: Sequence[StudentStack], chosen: Mapping[str, list[int]]) -> dict[str, int]:
    """The student's config keys counting each stack's layers.

    Example:
        >>> from ckptkit.converters.families.student import SEQ2SEQ_STACKS
        >>> stack_config(SEQ2SEQ_STACKS, {"encoder": list(range(16)), "decoder": [0, 15]})
        {'encoder_layers': 16, 'num_hidden_layers': 16, 'decoder_layers': 2}
    """
    return {key: len(chosen[stack.name]) for stack in stacks for key in stack.config_keys}


def stack_lines(teacher_counts: Mapping[str, int], chosen: Mapping[str, list[int]]) -> list[str]:
    """The report's layer map, per stack (1-based, 0-based in brackets)."""
    lines = []
    for name, layers in chosen.items():
        lines.append(f"  {name} layers ({len(layers)} of {teacher_counts[name]}; student <- teacher, 1-based; "
                     "0-based in brackets):")
        lines += [f"    {s + 1} <- {t + 1} [{t}]" for s, t in enumerate(layers)]
    return lines
