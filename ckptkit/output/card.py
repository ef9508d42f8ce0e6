"""``README.md`` model cards built from ``ckptkit.json`` with huggingface_hub's card metadata.

The card has YAML metadata (``library_name``, ``language``, ``license``, ``tags``,
``pipeline_tag``, ``base_model`` and ``base_model_relation`` from :mod:`ckptkit.output.card_metadata`,
``model-index`` from the record's measured results) and generated sections
(:mod:`ckptkit.output.card_sections`): what the model is, the source checkpoint, the command that
made it, the measured results with the command and date of each, the student's teacher, layers,
losses, and a usage snippet that runs as written. Local paths are shown relative to the working
directory, or as their own name when outside it (:mod:`ckptkit.output.paths_public`), unless
``paths="full"``.
Everything below :data:`MARKER` is the user's and survives every rewrite. This module gathers
what the sections need (record, ``student.json``, ``config.json``, the existing card) and writes.

Example:
    >>> from ckptkit.output import write_model_card
    >>> write_model_card("out/kobert", language="ko", license="apache-2.0")  # doctest: +SKIP
    PosixPath('out/kobert/README.md')
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Iterable

from ckptkit.errors import ConfigError, UsageError
from ckptkit.output.atomic import atomic_write
from ckptkit.output.card_metadata import RELATION_VALUES, eval_results, is_hub_id, lineage
from ckptkit.output.card_sections import (KIND_TAGS, SECTIONS, CardContext, auto_class_for, is_sentence_transformers,
                                          usage_snippet)
from ckptkit.output.names import CARD_FILE, CONFIG_FILE, STUDENT_FILE
from ckptkit.output.paths_public import PATH_MODES, WORKDIR_KEY, public_path, public_record
from ckptkit.output.record import read_record, update_record

__all__ = ["MARKER", "write_model_card", "render_model_card", "usage_snippet", "auto_class_for", "check_card_options"]

MARKER = "<!-- ckptkit: your own sections below this line are kept -->"
GENERATED = "<!-- ckptkit: generated from ckptkit.json by `ckptkit card`; edit only below the marker at the end -->"
# metadata keys ckptkit writes; any other key a user put in the YAML block is kept.
MANAGED_METADATA = {"library_name", "language", "license", "tags", "pipeline_tag", "base_model",
                    "base_model_relation", "model-index", "model_name", "eval_results"}


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ConfigError(f"not valid JSON ({e})", path=path, hint="fix or rewrite the file") from e
    if not isinstance(data, dict):
        raise ConfigError("expected a JSON object", path=path)
    return data


def _as_list(value: str | Iterable[str] | None) -> list[str] | None:
    if value is None:
        return None
    return [value] if isinstance(value, str) else list(value)


def _split_existing(path: Path) -> tuple[dict[str, Any], str]:
    """(user metadata to keep, user text to keep) from an existing README.md."""
    if not path.is_file():
        return {}, ""
    from huggingface_hub import ModelCard

    text = path.read_text(encoding="utf-8")
    try:
        card = ModelCard(text, ignore_metadata_errors=True)
        metadata, body = card.data.to_dict(), card.text
    except Exception:  # a YAML block that does not parse: keep the whole text, drop no words
        metadata, body = {}, text
    keep = {k: v for k, v in metadata.items() if k not in MANAGED_METADATA}
    if MARKER in text:
        return keep, text.split(MARKER, 1)[1].strip("\n")
    if GENERATED in text:
        return keep, ""
    return keep, body.strip("\n")  # a hand-written README: move it below the marker, lose nothing


def _model_id(folder: Path, repo_id: str | None, paths: str) -> str:
    """The id the usage snippet loads: the Hub id, else the folder (relative to here unless ``paths="full"``)."""
    if repo_id:
        return repo_id
    here = folder.resolve().as_posix()
    return here if paths == "full" else public_path(here, cwd=Path.cwd().as_posix())


def render_model_card(folder: str | os.PathLike, *, language: str | Iterable[str] | None = None,
                      license: str | None = None, tags: Iterable[str] | None = None,
                      base_model: str | None = None, repo_id: str | None = None, paths: str | None = None,
                      subfolder: str | None = None) -> str:
    """The README.md text for ``folder`` (options override those remembered in ckptkit.json).

    Example:
        >>> text = render_model_card("out/kobert", language="ko")  # doctest: +SKIP
        >>> text.startswith("---")  # doctest: +SKIP
        True
    """
    from huggingface_hub.repocard_data import ModelCardData  # not ModelCard: that imports the whole Hub client

    folder = Path(folder)
    local = read_record(folder)
    remembered = local.get("card") or {}
    paths = paths or remembered.get("paths") or "public"
    student_local = {**(local.get("student") or {}), **_read_json(folder / STUDENT_FILE)}
    if base_model is not None:
        local = {**local, "card": {**remembered, "base_model": base_model}}
    base, relation = lineage(local, student_local)
    record = public_record(local, mode=paths)
    student = public_record(student_local, mode=paths, cwd=local.get(WORKDIR_KEY))
    config = _read_json(folder / CONFIG_FILE)
    langs = _as_list(language) if language is not None else remembered.get("language")
    user_tags = list(tags) if tags is not None else (remembered.get("tags") or [])
    model = record["model"]
    sentence = is_sentence_transformers(folder)
    all_tags = list(dict.fromkeys(["ckptkit", model["family"], *KIND_TAGS[record["kind"]],
                                   *(["sentence-transformers"] if sentence else []), *user_tags]))
    model_id = _model_id(folder, repo_id or remembered.get("repo_id"), paths)
    pipeline = "sentence-similarity" if sentence else model.get("pipeline_tag") or config.get("pipeline_tag")
    ctx = CardContext(folder=folder, record=record, student=student, config=config, model_id=model_id,
                      language=tuple(langs or ()), base_model=base,
                      subfolder=subfolder if subfolder is not None else remembered.get("subfolder") or None)

    kept_metadata, user_text = _split_existing(folder / CARD_FILE)
    data = ModelCardData(
        library_name="sentence-transformers" if sentence else "transformers",
        language=langs or None,
        license=license if license is not None else remembered.get("license"),
        tags=all_tags,
        pipeline_tag=pipeline,
        base_model=base,
        model_name=ctx.name,
        eval_results=eval_results(local, pipeline_tag=pipeline) or None,
        **({"base_model_relation": relation} if relation else {}),
        **kept_metadata,
    )
    body = "\n\n".join(s for s in (section(ctx) for section in SECTIONS) if s)
    tail = f"\n\n{user_text}\n" if user_text else "\n"
    return f"---\n{data.to_yaml()}\n---\n{GENERATED}\n\n{body}\n\n{MARKER}{tail}"


def check_card_options(*, base_model: str | None = None, base_model_relation: str | None = None,
                       teacher_repo_id: str | None = None, paths: str | None = None) -> None:
    """Raise :class:`UsageError` for a card option the Hub would not accept (checked before any work).

    Example:
        >>> check_card_options(teacher_repo_id="./out/kobert")
        Traceback (most recent call last):
        ...
        ckptkit.errors.UsageError: --teacher-repo-id './out/kobert' is not a Hub id (give NAMESPACE/NAME, e.g. --teacher-repo-id google/electra-small-discriminator)
    """
    for flag, value in (("--base-model", base_model), ("--teacher-repo-id", teacher_repo_id)):
        if value is not None and not is_hub_id(value):
            raise UsageError(f"{flag} {value!r} is not a Hub id", hint=f"give NAMESPACE/NAME, e.g. {flag} google/electra-small-discriminator")
    if base_model_relation is not None and base_model_relation not in RELATION_VALUES:
        raise UsageError(f"--base-model-relation {base_model_relation!r} is not one of the Hub's values",
                         hint="one of " + ", ".join(RELATION_VALUES))
    if paths is not None and paths not in PATH_MODES:
        raise UsageError(f"--card-paths {paths!r}", hint="one of " + ", ".join(PATH_MODES))


def write_model_card(folder: str | os.PathLike, *, language: str | Iterable[str] | None = None,
                     license: str | None = None, tags: Iterable[str] | None = None,
                     base_model: str | None = None, repo_id: str | None = None, paths: str | None = None,
                     base_model_relation: str | None = None, teacher_repo_id: str | None = None,
                     subfolder: str | None = None) -> Path:
    """(Re)write ``FOLDER/README.md`` from ckptkit.json; returns its path.

    Options given here are remembered in ckptkit.json's ``card`` section, so a later
    ``ckptkit card FOLDER`` without options writes the same card. Text below :data:`MARKER`
    (and any YAML key ckptkit does not manage) is kept; a hand-written README without the
    marker is moved below it.

    Args:
        folder: a hub folder written by ckptkit (has ckptkit.json).
        language: ISO 639-1 code(s), e.g. ``"ko"``.
        license: a Hub license id, e.g. ``"apache-2.0"``.
        tags: extra tags (``ckptkit`` and the family are always added).
        base_model: the Hub id this model derives from (default: from the record, see
            :func:`ckptkit.output.card_metadata.lineage`).
        repo_id: the Hub id the folder is published as (used in the usage snippet).
        paths: ``"public"`` (default: local paths relative to the working directory, or their own
            name) or ``"full"`` (as recorded).
        base_model_relation: one of the Hub's values (adapter, merge, quantized, finetune); default none.
        teacher_repo_id: a student's teacher on the Hub (remembered as ``student.teacher_repo_id``).
        subfolder: the folder's path inside a repo that holds several models (``""``: none).

    Example:
        >>> write_model_card("out/kobert", language="ko", license="apache-2.0")  # doctest: +SKIP
        PosixPath('out/kobert/README.md')
    """
    folder = Path(folder)
    check_card_options(base_model=base_model, base_model_relation=base_model_relation, teacher_repo_id=teacher_repo_id,
                   paths=paths)
    remembered = {key: value for key, value in {
        "language": _as_list(language), "license": license,
        "tags": list(tags) if tags is not None else None,
        "base_model": base_model, "repo_id": repo_id, "paths": paths, "base_model_relation": base_model_relation,
        "subfolder": subfolder,
    }.items() if value is not None}
    if remembered:
        update_record(folder, "card", remembered)
    if teacher_repo_id:
        update_record(folder, "student", {"teacher_repo_id": teacher_repo_id})
    text = render_model_card(folder)
    path = folder / CARD_FILE
    atomic_write(path, text)
    return path
