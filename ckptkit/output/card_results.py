"""The card's human tables of measured results: one block per run, with the command and date.

They show exactly what the record holds (:func:`ckptkit.output.card_metadata.measured_results`),
the same entries the ``model-index`` metadata comes from; a folder never measured shows none.

Example:
    >>> print(results_section({"results": [{"kind": "size", "command": "ckptkit x", "date": "2025-01-31",
    ...     "metrics": [{"type": "parameters", "value": 4000000, "name": "parameters"}]}]}))
    ## Results
    <BLANKLINE>
    ### Size
    <BLANKLINE>
    Measured on 2025-01-31 by `ckptkit x`.
    <BLANKLINE>
    | metric | this model |
    |---|---|
    | parameters | 4,000,000 |
"""

from __future__ import annotations

from typing import Any, Mapping

from ckptkit.output.card_metadata import measured_results
from ckptkit.output.card_sections import _table

__all__ = ["verification_section", "results_section", "KIND_TITLES"]

KIND_TITLES: dict[str, str] = {
    "distill-eval": "Distillation evaluation (`ckptkit distill eval`)",
    "downstream": "Downstream task",
    "latency": "Latency",
    "size": "Size",
}


def _value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 1e-3 and value != 0 else f"{value:.4g}"
    if isinstance(value, int) and abs(value) >= 10_000:
        return f"{value:,}"
    return str(value)


def _when(entry: Mapping[str, Any]) -> str:
    command = entry["command"].replace("`", "'")
    return f"Measured on {entry['date']} by `{command}`." + \
        (f" Compared with: {entry['reference']}." if entry.get("reference") else "") + \
        (f" {entry['notes']}." if entry.get("notes") and entry["kind"] != "verify" else "")


def _metric_table(entry: Mapping[str, Any]) -> str:
    """One row per metric, one column per model measured: this model first, then teacher, baselines."""
    models = list(dict.fromkeys("this model" if m.get("model") in ("self", "student", None) else m["model"]
                                for m in entry["metrics"]))
    models.sort(key=lambda name: name != "this model")
    cells: dict[str, dict[str, str]] = {}
    for m in entry["metrics"]:
        who = "this model" if m.get("model") in ("self", "student", None) else m["model"]
        cells.setdefault(m.get("name") or m["type"], {})[who] = _value(m["value"])
    return _table(["metric", *models], [[name, *(row.get(who, "") for who in models)] for name, row in cells.items()])


def verification_section(record: Mapping[str, Any]) -> str | None:
    """``## Verification``: each verify run's per-output max abs difference; a note when never verified.

    Example:
        >>> verification_section({"kind": "conversion", "command": "c", "created": "d"}).splitlines()[2]
        'This folder was not verified. Run `ckptkit verify SOURCE FOLDER` to compare it with its source.'
    """
    runs = [r for r in measured_results(record) if r["kind"] == "verify"]
    if not runs:
        if record.get("kind") != "conversion":
            return None
        return ("## Verification\n\nThis folder was not verified. Run `ckptkit verify SOURCE FOLDER` "
                "to compare it with its source.")
    parts = ["## Verification", "The converted model was run against its source on the same inputs."]
    for run in runs:
        status = "**Passed**" if (run.get("notes") or "").startswith("passed") else "**Failed**"
        detail = (run.get("notes") or "").partition("; ")[2]
        parts.append(f"{status}{f' ({detail})' if detail else ''}. {_when(run)}")
        parts.append(_table(["output", "max abs difference"],
                            [[m.get("name", m["type"]).removeprefix("max abs difference: "), _value(m["value"])]
                             for m in run["metrics"]]))
    return "\n\n".join(parts)


def results_section(record: Mapping[str, Any]) -> str | None:
    """``## Results``: every other measured run (distill eval, downstream accuracy, ...), or ``None``."""
    runs = [r for r in measured_results(record) if r["kind"] != "verify"]
    if not runs:
        return None
    parts = ["## Results"]
    for run in runs:
        title = KIND_TITLES.get(run["kind"], run["kind"])
        task = run.get("task") or {}
        dataset = run.get("dataset") or {}
        on = ", ".join(filter(None, [task.get("name") or task.get("type"), dataset.get("name"),
                                     dataset.get("split")]))
        parts.append(f"### {title}{f': {on}' if on else ''}")
        parts.append(_when(run))
        parts.append(_metric_table(run))
    return "\n\n".join(parts)
