"""The model card's lineage and results metadata, from the folder's ``ckptkit.json`` alone.

**Lineage** (``base_model``, ``base_model_relation``): the Hub id this model derives from.

- a conversion: the Hub id of its source (``source.base_model``, or the ``ORG/REPO`` of an
  ``hf://ORG/REPO[@REV]/...`` source). The weights are the same, so no relation value fits: the
  Hub's values are ``adapter``, ``merge``, ``quantized`` and ``finetune`` (a format conversion is
  none of them), and none is written.
- a student (``distill init``) or distilled student (``distill train``): its teacher's Hub id, from
  ``--teacher-repo-id`` (``student.teacher_repo_id``), else remembered from the teacher folder's
  own record (the id it was uploaded as, or the Hub id it was converted from), else the teacher
  path itself when that is a Hub id. A student is a new, smaller model distilled from the teacher's
  outputs, not the teacher trained further, so it is not a ``finetune``; none of the Hub's values
  fits and none is written. The card's ``distillation`` tag says what it is.
- ``ckptkit card --base-model ID [--base-model-relation VALUE]`` overrides both.

**Results** (``model-index``): the latest entry of each kind in the record's ``results`` (see
:mod:`ckptkit.output.results`), plus the verification ``convert --verify`` recorded, as
huggingface_hub ``EvalResult`` rows. Only metrics measured on this folder's own model go there;
a teacher's or baseline's values appear in the card's table only, labelled as such.

Example:
    >>> hub_id_of_location("hf://google/bert_uncased_L-2_H-128_A-2@main/model.ckpt")
    'google/bert_uncased_L-2_H-128_A-2'
"""

from __future__ import annotations

import os
import re
from typing import Any, Mapping

from ckptkit.output.names import RECORD_FILE
from ckptkit.output.results import is_own_metric, verification_result

__all__ = ["RELATION_VALUES", "RELATIONS", "lineage", "hub_id_of_location", "measured_results", "eval_results",
           "is_hub_id"]

RELATION_VALUES = ("adapter", "merge", "quantized", "finetune")  # the Hub's base_model_relation values
# record kind -> the relation written (None: none of the Hub's values fits; the Hub then infers one)
RELATIONS: dict[str, str | None] = {"conversion": None, "student": None, "distilled": None}

# result kind -> (task type when the result names none and the model has no pipeline tag, dataset name, dataset type)
KIND_DEFAULTS: dict[str, tuple[str, str, str]] = {
    "verify": ("feature-extraction", "fixed inputs, compared with the source checkpoint", "ckptkit-verify"),
    "distill-eval": ("fill-mask", "held-out text", "held-out-text"),
}
FALLBACK_DEFAULTS = ("feature-extraction", "ckptkit measurement", "ckptkit")

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
_HF_LOCATION = re.compile(r"^hf://(?:models/)?(?P<org>[\w.-]+)/(?P<repo>[\w.-]+?)(?:@[^/]+)?(?:/|$)")


def is_hub_id(text: str) -> bool:
    """Whether ``text`` looks like a Hub repo id (``namespace/name``).

    Example:
        >>> is_hub_id("me/kobert"), is_hub_id("out/model/x")
        (True, False)
    """
    return bool(_HUB_ID.match(text))


def hub_id_of_location(location: str | None) -> str | None:
    """``ORG/REPO`` of an ``hf://`` location, else ``None``.

    Example:
        >>> hub_id_of_location("hf://me/kobert/model.safetensors"), hub_id_of_location("/data/x")
        ('me/kobert', None)
    """
    match = _HF_LOCATION.match(location or "")
    return f"{match['org']}/{match['repo']}" if match else None


def _folder_record(path: str | None) -> dict[str, Any] | None:
    if not path or "://" in path or not os.path.isfile(os.path.join(path, RECORD_FILE)):
        return None
    from ckptkit.output.record import read_record

    try:
        return read_record(path)
    except Exception:  # a teacher folder we cannot read only loses its remembered id
        return None


def _published_id(record: Mapping[str, Any] | None, depth: int = 0) -> str | None:
    """The Hub id of the model a folder's record describes: where it was uploaded, else what it was converted from."""
    if not record or depth > 3:
        return None
    repo = (record.get("card") or {}).get("repo_id")
    if repo and is_hub_id(repo):
        return repo
    return _source_id(record) if record.get("kind") == "conversion" else None


def _source_id(record: Mapping[str, Any]) -> str | None:
    source = record.get("source") or {}
    return source.get("base_model") or hub_id_of_location(source.get("path"))


def _teacher_id(record: Mapping[str, Any], student: Mapping[str, Any], depth: int = 0) -> str | None:
    given = student.get("teacher_repo_id") or (record.get("student") or {}).get("teacher_repo_id")
    if given:
        return given
    teacher = student.get("teacher") or (record.get("student") or {}).get("teacher")
    remembered = _published_id(_folder_record(teacher))
    if remembered:
        return remembered
    if teacher and (hub_id_of_location(teacher) or (is_hub_id(teacher) and not os.path.exists(teacher))):
        return hub_id_of_location(teacher) or teacher
    if record.get("kind") == "distilled" and depth < 3:  # distill train: the init folder remembers the teacher
        init = _folder_record((record.get("source") or {}).get("path"))
        if init:
            return _teacher_id(init, init.get("student") or {}, depth + 1)
    return None


def lineage(record: Mapping[str, Any], student: Mapping[str, Any]) -> tuple[str | None, str | None]:
    """``(base_model, base_model_relation)`` for the card (see the module docstring for the rules).

    Example:
        >>> lineage({"kind": "conversion", "source": {"path": "hf://google/electra-small/x.ckpt"}}, {})
        ('google/electra-small', None)
    """
    card = record.get("card") or {}
    kind = record.get("kind", "conversion")
    if card.get("base_model"):
        return card["base_model"], card.get("base_model_relation")
    base = _source_id(record) if kind == "conversion" else _teacher_id(record, student)
    return base, (card.get("base_model_relation") or RELATIONS.get(kind)) if base else None


def measured_results(record: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Every result the record holds, oldest first: ``convert --verify``'s verification, then ``results``.

    Example:
        >>> measured_results({"command": "c", "created": "d", "verification": None})
        []
    """
    found = []
    verification = record.get("verification")
    if isinstance(verification, dict):
        entry = verification_result(verification, command=record.get("command", ""), date=record.get("created", ""))
        if entry:
            found.append(entry)
    return found + [dict(r) for r in record.get("results") or []]


def _latest_per_kind(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    latest: dict[str, dict[str, Any]] = {}
    for entry in results:
        latest[entry["kind"]] = entry  # oldest first: the last one wins
    return list(latest.values())


def eval_results(record: Mapping[str, Any], *, pipeline_tag: str | None):
    """huggingface_hub ``EvalResult`` rows for ``model-index`` (this model's own metrics only).

    Example:
        >>> rows = eval_results({"results": [{"kind": "verify", "command": "c", "date": "d",
        ...     "metrics": [{"type": "max_abs_diff", "value": 1e-6, "name": "logits"}]}]}, pipeline_tag=None)
        >>> rows[0].metric_type, rows[0].task_type
        ('max_abs_diff', 'feature-extraction')
    """
    from huggingface_hub import EvalResult

    rows = []
    for entry in _latest_per_kind(measured_results(record)):
        task_default, dataset_name, dataset_type = KIND_DEFAULTS.get(entry["kind"], FALLBACK_DEFAULTS)
        task = entry.get("task") or {}
        dataset = entry.get("dataset") or {}
        for metric in entry["metrics"]:
            if not is_own_metric(metric):
                continue
            rows.append(EvalResult(
                task_type=task.get("type") or pipeline_tag or task_default, task_name=task.get("name"),
                dataset_type=dataset.get("type") or dataset_type, dataset_name=dataset.get("name") or dataset_name,
                dataset_split=dataset.get("split"), dataset_config=dataset.get("config"),
                metric_type=metric["type"], metric_value=metric["value"], metric_name=metric.get("name")))
    return rows

