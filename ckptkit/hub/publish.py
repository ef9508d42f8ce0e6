"""What an upload publishes beyond the files as they are: cards, public records, multi-part folders.

- The cards are refreshed from ``ckptkit.json`` so their snippets name the repo (and, in a repo of
  several models, the part's ``subfolder``), with local paths made public
  (:mod:`ckptkit.output.paths_public`) unless ``card_paths="full"``.
- Every ``ckptkit.json`` goes up as its public copy: the local file keeps its full paths.
- A folder of parts (ELECTRA: ``discriminator/``, ``generator/``) goes up as one repo with
  subfolders and a top-level card (:mod:`ckptkit.output.card_parts`), or, when the repo id has a
  ``{part}`` placeholder, as one repo per part (:func:`upload`).

Example:
    >>> split_repo_ids("me/electra-{part}", ["discriminator", "generator"])
    {'discriminator': 'me/electra-discriminator', 'generator': 'me/electra-generator'}
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ckptkit.errors import UsageError
from ckptkit.output.card_parts import part_folders
from ckptkit.output.names import CARD_FILE, RECORD_FILE, STUDENT_FILE

__all__ = ["PART_PLACEHOLDER", "PUBLIC_JSON_FILES", "split_repo_ids", "refresh_cards", "card_steps",
           "published_record", "published_bytes", "upload"]

PART_PLACEHOLDER = "{part}"
# ckptkit's own JSON files that name local paths: sent as their public copies (the local files keep them)
PUBLIC_JSON_FILES = (RECORD_FILE, STUDENT_FILE, "distill_report.json")


def split_repo_ids(repo_id: str, parts: list[str]) -> dict[str, str]:
    """One repo id per part from a ``{part}`` template (an error names the fix when it cannot be used).

    Example:
        >>> split_repo_ids("me/x-{part}", [])
        Traceback (most recent call last):
        ...
        ckptkit.errors.UsageError: --repo-id 'me/x-{part}' has {part}, but the folder holds one model (drop {part})
    """
    if not parts:
        raise UsageError(f"--repo-id {repo_id!r} has {PART_PLACEHOLDER}, but the folder holds one model",
                         hint=f"drop {PART_PLACEHOLDER}")
    return {part: repo_id.replace(PART_PLACEHOLDER, part) for part in parts}


def refresh_cards(folder: Path, *, repo_id: str, card_paths: str, subfolders: bool = True) -> list[str]:
    """Rewrite the cards of ``folder`` for ``repo_id``; returns the card paths written (relative)."""
    from ckptkit.output.card import write_model_card
    from ckptkit.output.card_parts import write_parts_card

    if (folder / RECORD_FILE).is_file():
        write_model_card(folder, repo_id=repo_id, paths=card_paths, subfolder="")
        return [CARD_FILE]
    parts = part_folders(folder)
    for part in parts:
        write_model_card(folder / part, repo_id=repo_id, paths=card_paths, subfolder=part if subfolders else "")
    if parts and subfolders:
        write_parts_card(folder, repo_id=repo_id)
        return [f"{p}/{CARD_FILE}" for p in parts] + [CARD_FILE]
    return [f"{p}/{CARD_FILE}" for p in parts]


def card_steps(folder: Path, *, card_paths: str) -> list[str]:
    """The dry-run lines that say what happens to cards and records before the commit."""
    parts = part_folders(folder)
    if not (folder / RECORD_FILE).is_file() and not parts:
        return []
    cards = "README.md" if not parts else ", ".join(f"{p}/README.md" for p in parts) + " and README.md"
    where = "(usage snippet names the repo" + (", with subfolder=...)" if parts else ")")
    paths = ("local paths relative to the working directory, or the file's own name when outside it"
             if card_paths == "public" else "local paths in full (--card-paths full)")
    return [f"refresh {cards} from ckptkit.json {where}",
            f"publish the cards, ckptkit.json and student.json with {paths}"]


def published_record(path: Path, *, card_paths: str, cwd: str | None = None) -> bytes:
    """The bytes one of :data:`PUBLIC_JSON_FILES` is published as (its public copy unless ``card_paths="full"``).

    ``cwd``: the working directory its paths are relative to (default: the document's own
    ``working_directory``, else the folder record's, else the current one).
    """
    from ckptkit.output.atomic import json_text
    from ckptkit.output.paths_public import WORKDIR_KEY, public_record

    document = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(document, dict):
        return path.read_bytes()
    if cwd is None and WORKDIR_KEY not in document and (path.parent / RECORD_FILE).is_file():
        cwd = json.loads((path.parent / RECORD_FILE).read_text(encoding="utf-8")).get(WORKDIR_KEY)
    return json_text(public_record(document, mode=card_paths, cwd=cwd)).encode("utf-8")


def published_bytes(folder: Path, relative: str, *, card_paths: str) -> bytes | None:
    """The public copy of ``FOLDER/RELATIVE`` when it is one of :data:`PUBLIC_JSON_FILES`, else ``None`` (sent as is)."""
    if relative.rsplit("/", 1)[-1] not in PUBLIC_JSON_FILES:
        return None
    return published_record(folder / relative, card_paths=card_paths)


def upload(folder: str | os.PathLike, *, repo_id: str, **options: Any) -> list:
    """Upload ``folder``: one repo, or one per part when ``repo_id`` has ``{part}``; returns the results.

    Options are those of :func:`ckptkit.hub.upload.upload_folder`.

    Example:
        >>> upload("out/electra", repo_id="me/electra-{part}", dry_run=True)  # doctest: +SKIP
        [UploadResult(repo_id='me/electra-discriminator', ...), UploadResult(repo_id='me/electra-generator', ...)]
    """
    from ckptkit.hub.upload import upload_folder

    folder = Path(folder)
    if PART_PLACEHOLDER not in repo_id:
        return [upload_folder(folder, repo_id=repo_id, **options)]
    targets = split_repo_ids(repo_id, part_folders(folder))
    return [upload_folder(folder / part, repo_id=target, **options) for part, target in targets.items()]
