"""PNG plot of the loss curves of a run (matplotlib, no display needed).

Example:
    >>> plot_loss_curves([{"step": 1, "loss": 2.0, "loss_ce": 1.0}], "loss.png")  # doctest: +SKIP
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

__all__ = ["plot_loss_curves"]


def _series(history: Sequence[dict[str, Any]], key: str) -> tuple[list[float], list[float]]:
    rows = [(row["step"], row[key]) for row in history if key in row and "step" in row]
    return [r[0] for r in rows], [r[1] for r in rows]


def plot_loss_curves(history: Sequence[dict[str, Any]], path: str | os.PathLike, *, title: str = "distillation",
                     baseline: Sequence[dict[str, Any]] | None = None) -> Path:
    """Plot total and per-term losses (left) and top-1 agreement (right) against the step.

    ``history`` is ``Trainer.state.log_history``; ``baseline`` the log of an MLM-only run on the
    same data, whose MLM losses are drawn dashed beside the distilled run's. Returns the path written.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = sorted({k for row in history for k in row if k.startswith("loss") or k.startswith("eval_loss")})
    fig, (ax_loss, ax_agree) = plt.subplots(1, 2, figsize=(11, 4))
    for key in keys:
        steps, values = _series(history, key)
        if steps:
            ax_loss.plot(steps, values, label=key, marker="o" if key.startswith("eval") else None, markersize=3)
    for key in ("loss_mlm", "eval_loss_mlm"):
        steps, values = _series(baseline or [], key)
        if steps:
            ax_loss.plot(steps, values, "--", color="grey", label=f"MLM-only baseline: {key}",
                         marker="o" if key.startswith("eval") else None, markersize=3)
    ax_loss.set_xlabel("step"), ax_loss.set_ylabel("loss"), ax_loss.set_yscale("log")
    if ax_loss.lines:
        ax_loss.legend(fontsize=8)
    for key in ("top1_agreement", "eval_top1_agreement"):
        steps, values = _series(history, key)
        if steps:
            ax_agree.plot(steps, values, label=key)
    ax_agree.set_xlabel("step"), ax_agree.set_ylabel("top-1 agreement with teacher")
    if ax_agree.lines:
        ax_agree.legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
