"""The model card of a folder that holds several models, one per subfolder (ELECTRA's discriminator and generator).

``ckptkit convert`` writes such a checkpoint as ``OUT/discriminator/`` and ``OUT/generator/``,
each a complete hub folder with its own record and card. Published as one repo, the top-level
README.md says what each part is and shows how to load it with
``from_pretrained(repo, subfolder=...)``; each part's own card shows the same.

Example:
    >>> part_folders("out/electra")  # doctest: +SKIP
    ['discriminator', 'generator']
"""

from __future__ import annotations

import os
from pathlib import Path

from ckptkit.output.atomic import atomic_write
from ckptkit.output.card_metadata import lineage
from ckptkit.output.card_sections import CKPTKIT_NAME, usage_snippet
from ckptkit.output.names import CARD_FILE, RECORD_FILE
from ckptkit.output.record import read_record

__all__ = ["part_folders", "render_parts_card", "write_parts_card"]

PARTS_MARKER = "<!-- ckptkit: generated for a repo of several models; each part's own card is in its folder -->"


def part_folders(folder: str | os.PathLike) -> list[str]:
    """The subfolders that are models of their own, when ``folder`` itself is not one (sorted names).

    Example:
        >>> import tempfile
        >>> part_folders(tempfile.mkdtemp())
        []
    """
    root = Path(folder)
    if (root / RECORD_FILE).is_file() or not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if p.is_dir() and (p / RECORD_FILE).is_file())


def render_parts_card(folder: str | os.PathLike, *, repo_id: str) -> str:
    """The README.md text of a multi-part repo: metadata of the shared source, one snippet per part."""
    from huggingface_hub.repocard_data import ModelCardData

    folder = Path(folder)
    parts = part_folders(folder)
    records = {name: read_record(folder / name) for name in parts}
    first = records[parts[0]]
    family = first["model"]["family"]
    base, _ = lineage(first, {})
    language = (first.get("card") or {}).get("language")
    data = ModelCardData(library_name="transformers", tags=["ckptkit", family], base_model=base,
                         language=language or None, license=(first.get("card") or {}).get("license"))
    name = repo_id.rsplit("/", 1)[-1]
    lines = [f"# {name}", "",
             f"This repository holds {len(parts)} {family} models converted from one checkpoint with "
             f"{CKPTKIT_NAME}, each in its own folder with its own model card: "
             + ", ".join(f"[`{p}/`]({p}/{CARD_FILE})" for p in parts) + ". "
             "They load with plain `transformers`, without `trust_remote_code`."]
    for part, record in records.items():
        cls = record["model"]["model_class"]
        snippet = usage_snippet(repo_id, cls, language=language or (), subfolder=part)
        lines += ["", f"## {part} (`{cls}`)", "", f"```python\n{snippet}\n```"]
    return f"---\n{data.to_yaml()}\n---\n{PARTS_MARKER}\n\n" + "\n".join(lines) + "\n"


def write_parts_card(folder: str | os.PathLike, *, repo_id: str) -> Path:
    """Write the top-level README.md of a multi-part folder; returns its path."""
    path = Path(folder) / CARD_FILE
    atomic_write(path, render_parts_card(folder, repo_id=repo_id))
    return path
