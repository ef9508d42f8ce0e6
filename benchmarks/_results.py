"""Benchmark results as the README shows them: one markdown file per script, written by the script.

Every ``bench_*.py`` takes ``--publish``: it then writes ``benchmarks/results/<script>.md`` (date,
machine, load, method, and tables of medians, ranges and ratios) besides printing its report.
``python benchmarks/update_readme.py`` copies each file into README.md between
``<!-- bench:<script> -->`` and ``<!-- /bench:<script> -->``; ``tests/test_readme_figures.py`` fails
when the two differ, so no figure reaches the README that a script did not print.
"""

from __future__ import annotations

import json
import os
import shlex
import statistics
import sys
from collections.abc import Sequence

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


def spread(values: Sequence[float], fmt: str = "{:.2f}") -> str:
    """'median (min–max)' of VALUES, or the single value when there is one."""
    ordered = sorted(values)
    median = fmt.format(statistics.median(ordered))
    if len(ordered) == 1:
        return median
    return f"{median} ({fmt.format(ordered[0])}–{fmt.format(ordered[-1])})"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub markdown table."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def publish(script: str, *, machine_start: str, machine_end: str, method: str, body: str,
            name: str | None = None) -> str:
    """Write benchmarks/results/NAME.md (NAME defaults to SCRIPT) and return its path.

    MACHINE_START/END are ``_measure.machine_line()`` before and after the run; METHOD says what was
    measured and how (rounds, cache state, background load); BODY is the tables and derived ratios.
    """
    os.makedirs(RESULTS, exist_ok=True)
    path = os.path.join(RESULTS, f"{name or script}.md")
    command = " ".join(["python", f"benchmarks/{script}.py", *map(shlex.quote, sys.argv[1:])])
    text = (f"*`{command}`*: {method}  \n"
            f"start: {machine_start}  \n"
            f"end: {machine_end}\n\n{body.strip()}\n")
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(text)
    return path


def show(results: dict, report: str, *, started: str, ended: str, as_json: bool) -> None:
    """Print a run: one JSON document (``--json``: machine lines and raw results) or the text report."""
    if as_json:
        print(json.dumps({"machine_at_start": started, "machine_at_end": ended, "results": results}, indent=2,
                         default=str))
    else:
        print(f"start: {started}\nend:   {ended}\n{report}")


def preformatted(report: str) -> str:
    """A script's plain-text report as a markdown code block (for reports that are not one table)."""
    return "```text\n" + report.rstrip() + "\n```"
