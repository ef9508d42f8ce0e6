"""Measured results in ``ckptkit.json``: the one list the model card's results come from.

Every command that measures something about a folder appends one entry to the record's
``results`` list; the card shows them as a table and as ``model-index`` metadata, and shows
nothing that is not there. An entry::

    {
      "kind": "verify",                      # verify | distill-eval | downstream | latency | size | ... (str)
      "command": "ckptkit verify m.ckpt out",  # the exact command line that measured it
      "date": "2025-01-31T12:00:00Z",        # ISO-8601 UTC
      "metrics": [                           # at least one
        {"type": "max_abs_diff",             #   a metric id (Hub metric ids where one exists: accuracy, f1, ...)
         "value": 1.2e-06,                   #   a number
         "name": "max abs diff: logits",     #   optional, what a reader sees
         "model": "student"}                 #   optional: whose value (student | teacher | baseline NAME);
      ],                                     #   absent or "self"/"student": this folder's model
      "reference": "TensorFlow checkpoint, NumPy forward",  # optional: what it was compared with
      "task": {"type": "fill-mask", "name": "..."},          # optional (Hub task id)
      "dataset": {"name": "NSMC", "type": "nsmc", "split": "test"},  # optional (default: the kind's own)
      "notes": "..."                         # optional free text
    }

Example:
    >>> entry = make_result("verify", [{"type": "max_abs_diff", "value": 1e-6, "name": "logits"}],
    ...                     command="ckptkit verify a b", date="2025-01-31T12:00:00Z")
    >>> validate_result(entry)
    >>> entry["metrics"][0]["value"]
    1e-06
"""

from __future__ import annotations

import os
from typing import Any, Iterable, Mapping

from ckptkit.errors import ConfigError

__all__ = ["make_result", "validate_result", "add_result", "verification_result", "eval_result", "record_verification",
           "record_eval", "task_result",
           "THIS_MODEL", "is_own_metric"]

THIS_MODEL = ("self", "student", None)  # a metric's "model" values that mean: measured on this folder's model
_OPTIONAL = {"reference": str, "task": dict, "dataset": dict, "notes": str}


def is_own_metric(metric: Mapping[str, Any]) -> bool:
    """Whether ``metric`` was measured on the folder's own model (not its teacher or a baseline).

    Example:
        >>> is_own_metric({"type": "accuracy", "value": 0.9}), is_own_metric({"model": "teacher"})
        (True, False)
    """
    return metric.get("model") in THIS_MODEL


def make_result(kind: str, metrics: Iterable[Mapping[str, Any]], *, command: str, date: str,
                **extra: Any) -> dict[str, Any]:
    """One ``results`` entry (see the module docstring); ``extra`` adds reference, task, dataset, notes.

    Example:
        >>> make_result("size", [{"type": "parameters", "value": 110}], command="c", date="d")["kind"]
        'size'
    """
    return {"kind": kind, "command": command, "date": date, "metrics": [dict(m) for m in metrics],
            **{k: v for k, v in extra.items() if v is not None}}


def validate_result(entry: Any, *, where: str = "results[]") -> None:
    """Raise :class:`ConfigError` naming the first thing wrong in one ``results`` entry.

    Example:
        >>> validate_result({"kind": "verify", "command": "c", "date": "d", "metrics": []})
        Traceback (most recent call last):
        ...
        ckptkit.errors.ConfigError: ckptkit.json: 'results[].metrics' is empty (a result has at least one metric)
    """
    def bad(message: str) -> ConfigError:
        return ConfigError(message, path="ckptkit.json", hint=None)

    if not isinstance(entry, dict):
        raise bad(f"'{where}' is {type(entry).__name__}, expected an object")
    for key in ("kind", "command", "date"):
        if not isinstance(entry.get(key), str) or not entry[key]:
            raise bad(f"'{where}.{key}' is {entry.get(key)!r}, expected a non-empty string")
    metrics = entry.get("metrics")
    if not isinstance(metrics, list):
        raise bad(f"'{where}.metrics' is {metrics!r}, expected a list")
    if not metrics:
        raise bad(f"'{where}.metrics' is empty (a result has at least one metric)")
    for i, metric in enumerate(metrics):
        ok = isinstance(metric, dict) and isinstance(metric.get("type"), str) and \
            isinstance(metric.get("value"), (int, float)) and not isinstance(metric.get("value"), bool)
        if not ok:
            raise bad(f"'{where}.metrics[{i}]' is {metric!r}, expected {{'type': str, 'value': number, ...}}")
    for key, kind in _OPTIONAL.items():
        if key in entry and entry[key] is not None and not isinstance(entry[key], kind):
            raise bad(f"'{where}.{key}' is {entry[key]!r}, expected {kind.__name__}")


def add_result(folder: str | os.PathLike, entry: Mapping[str, Any], *, refresh_card: bool = True) -> dict[str, Any]:
    """Append ``entry`` to ``FOLDER/ckptkit.json``'s ``results`` (and rewrite README.md if it exists).

    Returns the record as written. Raises :class:`ConfigError` for a malformed entry (nothing written).

    Example:
        >>> add_result("out/distil", eval_result(result, command="ckptkit distill eval ..."))  # doctest: +SKIP
    """
    from ckptkit.output.names import CARD_FILE
    from ckptkit.output.record import read_record, write_record

    entry = dict(entry)
    validate_result(entry)
    record = read_record(folder)
    record = {**record, "results": [*(record.get("results") or []), entry]}
    write_record(folder, record)
    if refresh_card and os.path.isfile(os.path.join(folder, CARD_FILE)):
        from ckptkit.output.card import write_model_card

        write_model_card(folder)
    return record


def verification_result(summary: Mapping[str, Any], *, command: str, date: str,
                        reference: str | None = None) -> dict[str, Any] | None:
    """The ``verify`` entry for a verification summary (``VerifyReport.to_json()`` or the record's block).

    One metric per compared output (``max_abs_diff`` of that output), else the overall maximum;
    ``None`` when nothing numeric was compared (tensors only, no forward pass).

    Example:
        >>> verification_result({"passed": True, "outputs": [{"output": "logits", "max_abs_diff": 2e-6}],
        ...     "compared": "logits of BertForMaskedLM"}, command="c", date="d")["metrics"]
        [{'type': 'max_abs_diff', 'value': 2e-06, 'name': 'max abs difference: logits'}]
    """
    outputs = summary.get("outputs") or []
    metrics = [{"type": "max_abs_diff", "value": float(row["max_abs_diff"]),
                "name": f"max abs difference: {row['output']}"} for row in outputs if "max_abs_diff" in row]
    if not metrics and summary.get("max_abs_diff") is not None and summary.get("compared") != "tensors only":
        metrics = [{"type": "max_abs_diff", "value": float(summary["max_abs_diff"]), "name": "max abs difference"}]
    if not metrics:
        return None
    notes = "passed" if summary.get("passed") else "FAILED"
    if summary.get("tensors_checked"):
        notes += f"; {summary['tensors_checked']} tensors compared"
    if summary.get("engine"):  # what computed the hub side's outputs: ckptkit's NumPy engine or transformers
        notes += f"; engine: {summary['engine']}"
    return make_result("verify", metrics, command=command, date=date,
                       reference=reference or summary.get("compared") or None, notes=notes)


# distill eval keys -> (metric type, readable name)
EVAL_METRICS: dict[tuple[str, str], tuple[str, str]] = {
    ("student", "mlm_accuracy"): ("accuracy", "MLM accuracy (masked tokens, held out)"),
    ("student", "perplexity"): ("perplexity", "MLM perplexity (held out)"),
    ("student", "loss"): ("loss", "held-out loss"),
    ("agreement", "top1"): ("top1_agreement", "top-1 agreement with the teacher"),
    ("agreement", "kl"): ("kl_divergence", "KL(teacher || student)"),
    ("agreement", "hidden_cosine"): ("cosine_similarity", "hidden-state cosine with the teacher"),
    ("agreement", "embedding_cosine"): ("cosine_similarity", "sentence-embedding cosine with the teacher"),
    ("student", "median_ms"): ("latency_ms", "CPU latency per batch, median (ms)"),
    ("student", "parameters"): ("parameters", "parameters"),
    ("student", "file_bytes"): ("size_bytes", "weight files (bytes)"),
    ("", "speedup"): ("speedup", "speedup over the teacher (median latency)"),
}


def eval_result(result: Mapping[str, Any], *, command: str, date: str) -> dict[str, Any] | None:
    """The ``distill-eval`` entry for what ``evaluate_student`` returned (teacher values marked as such).

    Example:
        >>> eval_result({"student": {"mlm_accuracy": 0.5}, "teacher": {"mlm_accuracy": 0.6}, "agreement": {},
        ...              "examples": 8}, command="c", date="d")["metrics"][1]
        {'type': 'accuracy', 'value': 0.6, 'name': 'MLM accuracy (masked tokens, held out)', 'model': 'teacher'}
    """
    metrics = []
    for (section, key), (kind, name) in EVAL_METRICS.items():
        block = result if not section else (result.get(section) or {})
        if isinstance(block.get(key), (int, float)):
            metrics.append({"type": kind, "value": block[key], "name": name})
        teacher = (result.get("teacher") or {}).get(key) if section == "student" else None
        if isinstance(teacher, (int, float)):
            metrics.append({"type": kind, "value": teacher, "name": name, "model": "teacher"})
    if not metrics:
        return None
    held_out = f"{result.get('examples', '?')} held-out blocks"
    if result.get("pooling"):  # how the sentence embeddings were made (ckptkit.distill.pooling)
        held_out += f"; sentence embeddings {result['pooling']}"
    return make_result("distill-eval", metrics, command=command, date=date,
                       reference=f"teacher {result['teacher_path']}" if result.get("teacher_path") else None,
                       notes=held_out)


def _has_record(folder: str | os.PathLike) -> bool:
    from ckptkit.output.names import RECORD_FILE

    return "://" not in os.fspath(folder) and os.path.isfile(os.path.join(folder, RECORD_FILE))


def record_verification(folder: str | os.PathLike, report: Mapping[str, Any], *, command: str) -> bool:
    """Append ``ckptkit verify``'s result to FOLDER's record (when FOLDER is a ckptkit hub folder); True if written.

    Example:
        >>> record_verification("/nonexistent", {"passed": True}, command="ckptkit verify a b")
        False
    """
    from ckptkit.output.record import utc_now

    entry = verification_result(report, command=command, date=utc_now())
    if entry is None or not _has_record(folder):
        return False
    add_result(folder, entry)
    return True


def task_result(task: Mapping[str, Any], *, command: str, date: str) -> dict[str, Any] | None:
    """The ``downstream`` entry for ``distill eval --task`` (``evaluate_task``'s dict): held-out accuracy.

    The student's accuracy is this model's; the teacher's and the majority class's are labelled.

    Example:
        >>> entry = task_result({"task": "/data/nsmc/ratings.txt", "train_examples": 90, "test_examples": 10,
        ...     "chance": 0.5, "teacher": {"accuracy": 0.9, "steps": 3}, "student": {"accuracy": 0.8, "steps": 3}},
        ...     command="c", date="d")
        >>> [(m["value"], m.get("model")) for m in entry["metrics"]], entry["dataset"]["name"]
        ([(0.8, None), (0.9, 'teacher'), (0.5, 'majority class')], 'ratings.txt')
    """
    student = (task.get("student") or {}).get("accuracy")
    if not isinstance(student, (int, float)):
        return None
    name = "accuracy (held out)"
    metrics = [{"type": "accuracy", "value": student, "name": name}]
    for who, value in (("teacher", (task.get("teacher") or {}).get("accuracy")), ("majority class", task.get("chance"))):
        if isinstance(value, (int, float)):
            metrics.append({"type": "accuracy", "value": value, "name": name, "model": who})
    file_name = os.path.basename(str(task.get("task") or "task"))
    steps = (task.get("student") or {}).get("steps")
    return make_result("downstream", metrics, command=command, date=date,
                       task={"type": "text-classification", "name": "sequence classification"},
                       dataset={"name": file_name, "type": file_name, "split": f"held out ({task.get('test_examples', '?')} rows)"},
                       notes=f"teacher and student each fine-tuned on {task.get('train_examples', '?')} rows"
                             + (f" for {steps} steps" if steps else ""))


def record_eval(folder: str | os.PathLike, result: Mapping[str, Any], *, command: str) -> bool:
    """Append what ``ckptkit distill eval`` measured to the student folder's record; True if written.

    ``result`` is ``evaluate_student``'s dict (agreement, held-out MLM, latency, size), with
    ``evaluate_task``'s under ``"task"`` for ``--task``; each becomes its own entry.

    Example:
        >>> record_eval("/nonexistent", {"student": {"mlm_accuracy": 0.5}}, command="ckptkit distill eval")
        False
    """
    from ckptkit.output.record import utc_now

    date = utc_now()
    held_out = {k: v for k, v in result.items() if k != "task"}
    entries = [eval_result(held_out, command=command, date=date) if held_out.get("student") else None,
               task_result(result["task"], command=command, date=date) if result.get("task") else None]
    entries = [e for e in entries if e]
    if not entries or not _has_record(folder):
        return False
    for i, entry in enumerate(entries):
        add_result(folder, entry, refresh_card=i == len(entries) - 1)
    return True
