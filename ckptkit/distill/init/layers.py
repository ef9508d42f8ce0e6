"""Which teacher layers a student starts from: ``--layers`` parsed once, or ``--num-layers`` + a strategy.

One parser reads every layer list the user types (``distill init --layers``, ``distill train
--layer-map``): :func:`parse_layer_list`. What it returns is checked against the teacher once,
by :meth:`LayerChoice.resolve`, before anything is planned or written.

Example:
    >>> LayerChoice.parse(layers="0, 4,8").resolve(12)
    [0, 4, 8]
    >>> LayerChoice.parse(num_layers=3).resolve(12)
    [0, 4, 8]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from ckptkit.errors import UsageError

__all__ = ["STRATEGIES", "select_layers", "parse_layer_list", "parse_layers", "check_layers", "LayerChoice"]

_EXAMPLE = "e.g. --layers 0,4,8 (0-based teacher layers)"


def _uniform(n: int, k: int) -> list[int]:
    return [i * n // k for i in range(k)]


def _first(n: int, k: int) -> list[int]:
    return list(range(k))


def _last(n: int, k: int) -> list[int]:
    return list(range(n - k, n))


def _distilbert(n: int, k: int) -> list[int]:
    if k == 1:
        return [0]
    return [int(np.floor(i * (n - 1) / (k - 1) + 0.5)) for i in range(k)]


# strategy -> (rule, one-line description for --help and the report)
STRATEGIES: dict[str, tuple[Callable[[int, int], list[int]], str]] = {
    "uniform": (_uniform, "every n/k-th layer from the bottom: floor(i*n/k), e.g. 0,4,8 of 12 (DistilKoBERT)"),
    "first": (_first, "the bottom k layers: 0..k-1"),
    "last": (_last, "the top k layers: n-k..n-1"),
    "distilbert": (_distilbert, "spread over both ends: round(i*(n-1)/(k-1)), e.g. 0,2,4,7,9,11 of 12 "
                                "(DistilBERT); k=1 gives 0"),
}


def select_layers(teacher_layers: int, *, num_layers: int, strategy: str = "uniform") -> list[int]:
    """The 0-based teacher layers a ``num_layers``-layer student starts from.

    Example:
        >>> [select_layers(12, num_layers=3, strategy=s) for s in ("uniform", "first", "last", "distilbert")]
        [[0, 4, 8], [0, 1, 2], [9, 10, 11], [0, 6, 11]]
        >>> select_layers(12, num_layers=6, strategy="distilbert")
        [0, 2, 4, 7, 9, 11]
    """
    if strategy not in STRATEGIES:
        raise UsageError(f"unknown layer strategy {strategy!r}", hint="one of " + ", ".join(STRATEGIES))
    if not 1 <= num_layers <= teacher_layers:
        raise UsageError(f"--num-layers {num_layers} is out of range: the teacher has {teacher_layers} layers",
                         hint=f"choose 1..{teacher_layers}")
    return STRATEGIES[strategy][0](teacher_layers, num_layers)


def parse_layer_list(text: str | Sequence[int], *, flag: str = "--layers") -> tuple[int, ...]:
    """The one parser of a typed layer list (``"0,4,8"``, spaces allowed) or a sequence of integers.

    Example:
        >>> parse_layer_list("1, 5,9", flag="--layer-map")
        (1, 5, 9)
        >>> parse_layer_list("a,b")
        Traceback (most recent call last):
        ...
        ckptkit.errors.UsageError: --layers a,b: not a comma-separated list of integers (e.g. --layers 0,4,8 (0-based teacher layers))
    """
    shown = text if isinstance(text, str) else ",".join(str(i) for i in text)
    try:
        layers = tuple(int(p) for p in text.split(",")) if isinstance(text, str) else tuple(int(i) for i in text)
    except ValueError:
        raise UsageError(f"{flag} {shown}: not a comma-separated list of integers",
                         hint=_EXAMPLE.replace("--layers", flag)) from None
    if not layers:
        raise UsageError(f"{flag} is empty", hint=_EXAMPLE.replace("--layers", flag))
    return layers


def check_layers(layers: Sequence[int], teacher_layers: int, *, shown: str | None = None,
                 stack: str | None = None) -> list[int]:
    """``layers`` if each names a distinct teacher layer in ``0..teacher_layers-1``; else a UsageError naming
    the flag (``--layers``, or ``--STACK-layers`` for one stack of an encoder-decoder)."""
    shown = shown if shown is not None else ",".join(str(i) for i in layers)
    flag, layer, teacher = (f"--{stack}-layers", f"teacher {stack} layer", f"the teacher's {stack}") if stack \
        else ("--layers", "teacher layer", "the teacher")
    bad = [i for i in layers if not 0 <= i < teacher_layers]
    if bad:
        raise UsageError(f"{flag} {shown}: {layer} {bad[0]} is out of range",
                         hint=f"{teacher} has {teacher_layers} layers, numbered 0..{teacher_layers - 1}")
    twice = next((i for k, i in enumerate(layers) if i in layers[:k]), None)
    if twice is not None:
        raise UsageError(f"{flag} {shown}: {layer} {twice} is named twice",
                         hint="each teacher layer can start one student layer")
    return list(layers)


def parse_layers(text: str | Sequence[int], teacher_layers: int) -> list[int]:
    """Parse and check a 0-based layer list against a teacher of ``teacher_layers`` layers.

    Example:
        >>> parse_layers("0, 4,8", 12)
        [0, 4, 8]
        >>> parse_layers("0,4,4", 12)
        Traceback (most recent call last):
        ...
        ckptkit.errors.UsageError: --layers 0,4,4: teacher layer 4 is named twice (each teacher layer can start one student layer)
    """
    return LayerChoice.parse(layers=text).resolve(teacher_layers)


@dataclass(frozen=True)
class LayerChoice:
    """The user's layer request, parsed at the edge: explicit ``layers`` or ``num_layers`` by ``strategy``."""

    layers: tuple[int, ...] | None = None
    num_layers: int | None = None
    strategy: str = "uniform"
    shown: str = ""   # --layers as typed, for messages

    @classmethod
    def parse(cls, *, layers: str | Sequence[int] | None = None, num_layers: int | None = None,
              strategy: str = "uniform") -> "LayerChoice":
        """Check what can be checked without the teacher: one of the two, the syntax, the strategy.

        Example:
            >>> LayerChoice.parse(layers="1", num_layers=2)
            Traceback (most recent call last):
            ...
            ckptkit.errors.UsageError: give either --layers or --num-layers (e.g. --layers 0,4,8 or --num-layers 3)
        """
        if (layers is None) == (num_layers is None):
            raise UsageError("give either --layers or --num-layers", hint="e.g. --layers 0,4,8 or --num-layers 3")
        if strategy not in STRATEGIES:
            raise UsageError(f"unknown layer strategy {strategy!r}", hint="one of " + ", ".join(STRATEGIES))
        if layers is None:
            return cls(num_layers=num_layers, strategy=strategy)
        shown = layers if isinstance(layers, str) else ",".join(str(i) for i in layers)
        return cls(layers=parse_layer_list(layers), strategy=strategy, shown=shown)

    def resolve(self, teacher_layers: int) -> list[int]:
        """The 0-based teacher layers, checked against a teacher of ``teacher_layers`` layers."""
        if self.layers is None:
            return select_layers(teacher_layers, num_layers=int(self.num_layers or 0), strategy=self.strategy)
        return check_layers(self.layers, teacher_layers, shown=self.shown)


def order_warning(layers: Sequence[int]) -> str | None:
    """A warning when the student's layers do not follow the teacher's order (allowed, rarely meant).

    Example:
        >>> order_warning([0, 4, 8]) is None
        True
        >>> order_warning([8, 4, 0])
        '--layers 8,4,0 is not increasing: student layer 1 starts from teacher layer 4, which the teacher runs before layer 8 (student layer 0); layers keep their order in the teacher, so a student usually takes increasing layers (e.g. 0,4,8)'
    """
    for k in range(1, len(layers)):
        if layers[k] < layers[k - 1]:
            shown = ",".join(str(i) for i in layers)
            return (f"--layers {shown} is not increasing: student layer {k} starts from teacher layer {layers[k]}, "
                    f"which the teacher runs before layer {layers[k - 1]} (student layer {k - 1}); layers keep "
                    f"their order in the teacher, so a student usually takes increasing layers (e.g. "
                    f"{','.join(str(i) for i in sorted(layers))})")
    return None
