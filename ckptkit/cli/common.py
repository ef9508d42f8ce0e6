"""Options and output helpers shared by every command."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from ckptkit.progress import set_quiet


def _set_quiet(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
    set_quiet(value)
    return value


quiet_option = click.option("--quiet", "-q", is_flag=True, expose_value=True, callback=_set_quiet,
                            help="No progress bars and no informational output.")
json_option = click.option("--json", "as_json", is_flag=True,
                           help="Print one JSON document on stdout instead of tables.")


def emit_json(document: Any) -> None:
    """Print ``document`` as indented JSON on stdout."""
    click.echo(json.dumps(document, indent=2, ensure_ascii=False, default=str))


def info(message: str, *, quiet: bool = False) -> None:
    """An informational line on stderr (keeps stdout clean for tables and JSON)."""
    if not quiet:
        click.echo(message, err=True)


def format_table(rows: list[list[str]], headers: list[str], *, right: set[int] = frozenset()) -> str:
    """Align ``rows`` under ``headers``; columns in ``right`` are right-aligned.

    Example:
        >>> print(format_table([["a", "1"]], ["name", "n"], right={1}))
        name  n
        ----  -
        a     1
    """
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows)]
    def line(cells):
        return "  ".join(str(c).rjust(w) if i in right else str(c).ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()
    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def human_bytes(n: float) -> str:
    """``1536`` -> ``'1.5 KiB'``.

    Example:
        >>> human_bytes(1536)
        '1.5 KiB'
    """
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def stdout_is_terminal() -> bool:
    return sys.stdout.isatty()
