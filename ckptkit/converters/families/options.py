"""Options only some families read (ELECTRA's ``--part``, BigBird's ``--tf-layout``), declared by the family.

A family lists its :class:`FamilyOption` rows; the CLI turns every declared row into a flag
(``name`` with dashes), and a conversion carries the values in one mapping, ``family_options``,
checked here against the declarations before anything is written.

Example:
    >>> heads = FamilyOption("generator_heads", "generator attention heads", type=int, minimum=1)
    >>> heads.flag
    '--generator-heads'
    >>> check_option_values({"generator_heads": 2}, [heads])
    {'generator_heads': 2}
    >>> check_option_values({"generator_heads": 0}, [heads])
    Traceback (most recent call last):
    ...
    ckptkit.errors.UsageError: --generator-heads is 0, expected a positive integer
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from ckptkit.errors import UsageError

__all__ = ["FamilyOption", "CONVERT", "DISTILL_INIT", "check_option_values", "merge_options"]

CONVERT = "convert"
DISTILL_INIT = "distill init"


@dataclass(frozen=True)
class FamilyOption:
    """One option a family reads: its key in ``family_options``, the help the CLI shows, its type
    (``str``, ``int`` or ``bool``), the accepted values, and which commands offer it."""

    name: str
    help: str
    type: type = str
    choices: tuple[str, ...] = ()
    default: Any = None
    minimum: int | None = None
    commands: tuple[str, ...] = (CONVERT,)

    @property
    def flag(self) -> str:
        """The CLI flag (``--generator-heads`` for ``generator_heads``)."""
        return "--" + self.name.replace("_", "-")

    def check(self, value: Any) -> None:
        """Raise :class:`UsageError` naming the flag when ``value`` is not one this option accepts."""
        if self.type is int:
            if not isinstance(value, int) or isinstance(value, bool) or \
                    (self.minimum is not None and value < self.minimum):
                expected = "a positive integer" if self.minimum == 1 else f"an integer >= {self.minimum}"
                raise UsageError(f"{self.flag} is {value!r}, expected {expected}")
        elif self.type is bool and not isinstance(value, bool):
            raise UsageError(f"{self.flag} is {value!r}, expected true or false")
        elif self.choices and value not in self.choices:
            raise UsageError(f"{self.flag} is {value!r}, expected one of " + ", ".join(self.choices))


def merge_options(declared: Iterable[FamilyOption]) -> dict[str, FamilyOption]:
    """name -> one option for several families' declarations: choices joined, the first help kept."""
    merged: dict[str, FamilyOption] = {}
    for option in declared:
        first = merged.get(option.name)
        if first is None:
            merged[option.name] = option
        elif first.type is not option.type:
            raise TypeError(f"families declare {option.flag} with two types")
        else:
            choices = first.choices + tuple(c for c in option.choices if c not in first.choices)
            merged[option.name] = FamilyOption(first.name, first.help, first.type, choices, first.default,
                                               first.minimum, first.commands)
    return merged


def check_option_values(values: Mapping[str, Any], declared: Iterable[FamilyOption]) -> dict[str, Any]:
    """``values`` without unset entries (None), each checked against its declaration; an undeclared name
    is refused."""
    options = merge_options(declared)
    checked = {}
    for name, value in values.items():
        if value is None:
            continue
        if name not in options:
            raise UsageError(f"unknown family option {name!r}", hint="one of " + ", ".join(options))
        options[name].check(value)
        checked[name] = value
    return checked
