"""What a distillation run prints while it trains: one line per logging step, and quiet bars.

The stock ``ProgressCallback`` writes every log as a Python dict on stdout, and ``PrinterCallback``
prints it again: with our own line that made two lines per logging step. Here the bars stay (no
dict), and :class:`LogLines` writes the one line, through ``tqdm.write`` so a bar is not broken.

Example:
    >>> format_log_line(10, {"loss": 1.23456, "loss_ce": 0.5, "epoch": 0.1, "grad_norm": 3.0})
    'step 10: loss=1.235 loss_ce=0.5'
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Callable

__all__ = ["format_log_line", "log_callback", "install_callbacks", "stderr_line"]

Log = Callable[[str], None]

# keys of a log row that are not printed (the file keeps them)
_HIDDEN = ("epoch", "grad_norm", "total_flos")
# rows the Trainer logs once at the end of training (its own summary): kept in the file, not printed
_END_OF_TRAINING = "train_runtime"


def stderr_line(line: str) -> None:
    """Print ``line`` on stderr above any progress bar."""
    from tqdm.auto import tqdm

    tqdm.write(line, file=sys.stderr)


def format_log_line(step: int, logs: dict[str, Any]) -> str:
    """``step N: key=value ...`` of one log row (4 significant digits; epoch and grad norm left out)."""
    shown = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in logs.items()
                     if k not in _HIDDEN)
    return f"step {step}: {shown}"


def log_callback(path: Path, *, log: Log | None):
    """A callback that appends every log row to ``path`` (jsonl) and passes one line per row to ``log``."""
    from transformers import TrainerCallback

    class LogLines(TrainerCallback):
        """Append every log to ``train_log.jsonl`` and print a short line (main process only)."""

        def on_log(self, args, state, control, logs=None, **kwargs):
            if not state.is_world_process_zero or not logs:
                return
            row = {"step": state.global_step, **logs}
            with path.open("a", encoding="utf-8") as f:
                f.write(json.dumps(row) + "\n")
            if log is not None and _END_OF_TRAINING not in logs:
                log(format_log_line(state.global_step, logs))

    return LogLines()


def _bars_callback():
    from transformers.trainer_callback import ProgressCallback

    class Bars(ProgressCallback):
        """The Trainer's training and evaluation bars, without the dict it prints per log."""

        def on_log(self, args, state, control, logs=None, **kwargs):
            return None

    return Bars()


def install_callbacks(trainer, *, path: Path, log: Log | None) -> None:
    """Replace the Trainer's printing callbacks: bars without dicts (unless --quiet), one line per log."""
    from transformers.trainer_callback import PrinterCallback, ProgressCallback

    trainer.remove_callback(PrinterCallback)
    if trainer.pop_callback(ProgressCallback) is not None:
        trainer.add_callback(_bars_callback())
    trainer.add_callback(log_callback(path, log=log))
