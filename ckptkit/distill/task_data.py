"""A labelled classification set from a TSV/CSV file: columns found (or named), labels numbered, split held out.

NSMC's ``ratings_train.txt`` (``id<TAB>document<TAB>label``, a header row, quotes left as they
are) reads as it is: the text column is the first with a known text name (``document``), else
the one with the longest cells; the label column the first with a known label name, else the one
with the fewest distinct values. Rows with an empty text are skipped (and counted).

Example:
    >>> import tempfile, pathlib
    >>> p = pathlib.Path(tempfile.mkdtemp()) / "t.tsv"
    >>> _ = p.write_text("id\\tdocument\\tlabel\\n1\\tgood film\\t1\\n2\\tbad\\t0\\n3\\t\\t1\\n")
    >>> task = read_task(p)
    >>> task.texts, task.labels, task.label_names, task.columns, task.skipped
    (['good film', 'bad'], [1, 0], ['0', '1'], ('document', 'label'), 1)
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ckptkit.errors import CheckpointNotFoundError, UsageError

__all__ = ["TaskData", "read_task", "split_task", "TEXT_NAMES", "LABEL_NAMES"]

TEXT_NAMES = ("text", "document", "sentence", "review", "content", "comment", "sentence1", "query")
LABEL_NAMES = ("label", "labels", "class", "target", "sentiment", "y", "category")
_MAX_LABELS = 100


@dataclass(frozen=True)
class TaskData:
    """Texts with their label ids; ``label_names[i]`` is what label id ``i`` was in the file."""

    texts: list[str]
    labels: list[int]
    label_names: list[str]
    columns: tuple[str, str]   # (text column, label column) as found or given
    skipped: int = 0           # rows without text


def _delimiter(path: Path, first_line: str) -> str:
    if path.suffix.lower() == ".csv":
        return ","
    return "\t" if "\t" in first_line or path.suffix.lower() == ".tsv" else ","


def _rows(path: Path) -> list[list[str]]:
    if not path.is_file():
        raise CheckpointNotFoundError("task file not found", path=path)
    with path.open(encoding="utf-8", newline="") as f:
        first = f.readline()
        f.seek(0)
        delimiter = _delimiter(path, first)
        quoting = csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL  # TSV: quotes are text (NSMC)
        return [row for row in csv.reader(f, delimiter=delimiter, quoting=quoting) if row]


def _is_number(cell: str) -> bool:
    try:
        float(cell)
        return True
    except ValueError:
        return False


def _has_header(rows: list[list[str]]) -> bool:
    first = [c.strip().lower() for c in rows[0]]
    if set(first) & set(TEXT_NAMES + LABEL_NAMES):
        return True
    return len(rows) > 1 and any(_is_number(b) and not _is_number(a) for a, b in zip(rows[0], rows[1]))


def _pick(names: list[str], wanted: str | int | None, known: tuple[str, ...], fallback, what: str, path) -> int:
    if isinstance(wanted, int) or (isinstance(wanted, str) and wanted.isdigit()):
        index = int(wanted)
        if not 0 <= index < len(names):
            raise UsageError(f"--{what}-column {index}: the file has columns 0..{len(names) - 1}", path=path)
        return index
    if wanted is not None:
        if wanted not in names:
            raise UsageError(f"no column {wanted!r} (the columns are {names})", path=path,
                             hint=f"pass --{what}-column NAME or a 0-based index")
        return names.index(wanted)
    lowered = [n.lower() for n in names]
    found = next((lowered.index(k) for k in known if k in lowered), None)
    return found if found is not None else fallback()


def read_task(path: str | os.PathLike, *, text_column: str | int | None = None,
              label_column: str | int | None = None) -> TaskData:
    """Read a labelled TSV/CSV file (header optional; columns detected unless given by name or index)."""
    path = Path(path)
    rows = _rows(path)
    if not rows:
        raise UsageError("the task file is empty", path=path)
    header = _has_header(rows)
    width = max(len(r) for r in rows)
    names = [c.strip() for c in rows[0]] + [str(i) for i in range(len(rows[0]), width)] if header \
        else [str(i) for i in range(width)]
    body = [r + [""] * (width - len(r)) for r in rows[1 if header else 0:]]
    columns = list(zip(*body)) if body else [()] * width

    def longest() -> int:
        return int(np.argmax([np.mean([len(c) for c in col]) if col else 0 for col in columns]))

    def fewest() -> int:
        return int(np.argmin([len(set(col)) if col else 10**9 for col in columns]))

    text_i = _pick(names, text_column, TEXT_NAMES, longest, "text", path)
    label_i = _pick(names, label_column, LABEL_NAMES, fewest, "label", path)
    if text_i == label_i:
        raise UsageError(f"the text and label columns are both {names[text_i]!r}", path=path,
                         hint="name them with --text-column and --label-column")
    kept = [(r[text_i].strip(), r[label_i].strip()) for r in body if r[text_i].strip() and r[label_i].strip()]
    values = sorted({label for _, label in kept}, key=lambda v: (not _is_number(v), float(v) if _is_number(v) else 0, v))
    if not 2 <= len(values) <= _MAX_LABELS:
        raise UsageError(f"column {names[label_i]!r} has {len(values)} distinct labels; a classification set needs "
                         f"2..{_MAX_LABELS}", path=path, hint="name the label column with --label-column")
    ids = {v: i for i, v in enumerate(values)}
    return TaskData([t for t, _ in kept], [ids[label] for _, label in kept], values,
                    (names[text_i], names[label_i]), skipped=len(body) - len(kept))


def split_task(task: TaskData, *, test_fraction: float, seed: int, max_train: int | None = None,
               max_test: int | None = None) -> tuple[TaskData, TaskData]:
    """A shuffled train/held-out split (``test_fraction`` of the rows held out), each optionally capped.

    Example:
        >>> t = TaskData([str(i) for i in range(10)], [i % 2 for i in range(10)], ["0", "1"], ("t", "l"))
        >>> train, test = split_task(t, test_fraction=0.2, seed=0)
        >>> len(train.texts), len(test.texts), sorted(train.texts + test.texts) == sorted(t.texts)
        (8, 2, True)
    """
    if not 0 < test_fraction < 1:
        raise UsageError(f"--task-test-fraction must be between 0 and 1, got {test_fraction}")
    order = np.random.default_rng(seed).permutation(len(task.texts))
    n_test = max(1, int(round(len(order) * test_fraction)))
    test_rows, train_rows = order[:n_test][:max_test], order[n_test:][:max_train]
    if len(train_rows) == 0:
        raise UsageError("too few labelled rows to hold some out and still train")

    def subset(rows) -> TaskData:
        return TaskData([task.texts[i] for i in rows], [task.labels[i] for i in rows], task.label_names,
                        task.columns, task.skipped)

    return subset(train_rows), subset(test_rows)
