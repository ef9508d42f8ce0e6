"""Text formatting shared by the library and the CLI: aligned tables and human-readable sizes.

Nothing here prints; callers decide where text goes (the CLI writes it to stdout or stderr).

Example:
    >>> print(format_table([["model.safetensors", human_bytes(1536)]], ["file", "size"], right={1}))
    file                  size
    -----------------  -------
    model.safetensors  1.5 KiB
"""

from __future__ import annotations

__all__ = ["format_table", "human_bytes"]


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
        >>> human_bytes(100)
        '100 B'
    """
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"
