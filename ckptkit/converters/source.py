"""A :class:`Source`: what the user typed, opened once — the checkpoint (lazy tensors), its companions
(config file, ``vocab.txt``, SentencePiece model, hparams/flags files), its part folders and its listing.

Every command builds one with :func:`open_source` and hands it on; nothing else looks for companions.
:data:`RESOLVERS` maps a location kind (a URL scheme, ``""`` for a local path) to the function that
turns the location into something the format readers open; a new kind of location (gs://, s3://,
hf://, https://) is one row there.

Example:
    >>> open_source("ftp://host/model.ckpt")
    Traceback (most recent call last):
    ...
    ckptkit.errors.UsageError: ftp://host/model.ckpt: ckptkit cannot read ftp:// locations (give a local path, or a gs://, s3://, hf:// or https:// location)
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

from ckptkit.converters.tensors import Checkpoint
from ckptkit.errors import CheckpointNotFoundError, UsageError

__all__ = ["Source", "ConfigHints", "open_source", "RESOLVERS", "resolve_location", "location_scheme"]

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*)://")


def _local(location: str) -> str:
    return os.path.expanduser(location)


def _remote(location: str) -> str:
    from ckptkit.remote import resolve  # imported for remote locations only

    return resolve(location)


# location kind (URL scheme; "" for a local path) -> the local path the format readers open.
RESOLVERS: dict[str, Callable[[str], str]] = {
    "": _local, "file": lambda loc: _local(loc[len("file://"):]),
    **{kind: _remote for kind in ("gs", "gcs", "s3", "hf", "https", "http")},
}


def location_scheme(location: str) -> str:
    """The kind of ``location``: its URL scheme, ``""`` for a local path.

    Example:
        >>> location_scheme("s3://bucket/bert"), location_scheme("out/tiny-bert")
        ('s3', '')
    """
    match = _SCHEME.match(location)
    return match.group(1).lower() if match else ""


def resolve_location(location: str | os.PathLike) -> str:
    """The local path of ``location`` through :data:`RESOLVERS`; an unknown kind is a one-line error."""
    location = os.fspath(location)
    scheme = location_scheme(location)
    if scheme not in RESOLVERS:
        raise UsageError(f"ckptkit cannot read {scheme}:// locations", path=location,
                         hint="give a local path, or a gs://, s3://, hf:// or https:// location")
    return RESOLVERS[scheme](location)


def _explicit(path: str | None, what: str) -> str | None:
    """A companion the user named: it must exist (checked once, before anything is written)."""
    if path is None:
        return None
    path = resolve_location(path)
    if not os.path.exists(path):
        raise CheckpointNotFoundError("file not found", path=path, hint=f"check the {what} path")
    return path


def _folder_of(path: str) -> str:
    absolute = os.path.abspath(path)
    return absolute if os.path.isdir(absolute) else os.path.dirname(absolute)


def _listing(folder: str) -> frozenset[str]:
    try:
        return frozenset(os.listdir(folder))
    except OSError:
        return frozenset()


@dataclass(eq=False)
class Source:
    """One checkpoint as the user gave it, with everything found beside it; use it as a context manager.

    Attributes:
        location: what the user typed.
        path: the local path it resolved to.
        config, vocab, spm: the companions the user named (``--config``/``--vocab``/``--spm``), checked.
        part_folders: ``{part: folder}`` when ``path`` is a folder of part folders (ELECTRA's
            ``discriminator/`` and ``generator/``), else None.
    """

    location: str
    path: str
    config: str | None = None
    vocab: str | None = None
    spm: str | None = None
    part_folders: dict[str, str] | None = None
    _checkpoint: Checkpoint | None = field(default=None, repr=False)
    _listings: dict[str, frozenset[str]] = field(default_factory=dict, repr=False)
    _parts: dict[str, "Source"] = field(default_factory=dict, repr=False)

    # ---------------------------------------------------------------- the checkpoint

    @property
    def checkpoint(self) -> Checkpoint:
        """The checkpoint, opened on first use (metadata only; tensors are read lazily)."""
        if self._checkpoint is None:
            from ckptkit.converters.formats import open_checkpoint

            self._checkpoint = open_checkpoint(self.path)
        return self._checkpoint

    @property
    def files(self) -> list[str]:
        """The files the checkpoint is read from (the part folders when it has parts)."""
        if self.part_folders:
            return list(self.part_folders.values())
        return list(self.checkpoint.files)

    @property
    def inputs(self) -> list[str]:
        """Every path this source reads: an output folder must be none of them."""
        return [self.path, *self.files, *(p for p in (self.config, self.vocab, self.spm) if p)]

    def close(self) -> None:
        """Close the checkpoint (and the part folders' checkpoints) if they were opened."""
        for part in self._parts.values():
            part.close()
        if self._checkpoint is not None:
            self._checkpoint.close()
            self._checkpoint = None

    def __enter__(self) -> "Source":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # ---------------------------------------------------------------- companions

    @property
    def folder(self) -> str:
        """The directory the checkpoint lives in (the path itself for a directory)."""
        return _folder_of(self.path)

    def listing(self, folder: str | None = None) -> frozenset[str]:
        """The names in ``folder`` (default: the checkpoint's folder), listed once."""
        folder = os.path.abspath(folder or self.folder)
        if folder not in self._listings:
            self._listings[folder] = _listing(folder)
        return self._listings[folder]

    def _find(self, names: tuple[str, ...] | list[str], folders: list[str]) -> str | None:
        for directory in dict.fromkeys(os.path.abspath(f) for f in folders):
            present = self.listing(directory)
            for name in names:
                candidate = os.path.join(directory, name)
                if name in present and os.path.isfile(candidate):
                    return candidate
        return None

    def companion(self, names: tuple[str, ...] | list[str], *, near: tuple[str | None, ...] = ()) -> str | None:
        """The first of ``names`` in the checkpoint's folder, its ``assets/`` (a SavedModel's), its parent, then
        the folders of ``near``."""
        folders = [self.folder, os.path.join(self.folder, "assets"), os.path.dirname(self.folder),
                   *(_folder_of(p) for p in near if p)]
        return self._find(names, folders)

    def config_file(self, names: tuple[str, ...]) -> str | None:
        """``--config``, else the first of ``names`` beside the checkpoint (or in its parent)."""
        return self.config or self.companion(names)

    def vocab_file(self, *, near: tuple[str | None, ...] = ()) -> str | None:
        """``--vocab``, else a ``vocab.txt`` beside the checkpoint (or its parent, or ``near``)."""
        return self.vocab or self.companion(("vocab.txt",), near=near)

    def spm_file(self, *, names: tuple[str | None, ...] = (), near: tuple[str | None, ...] = ()) -> str | None:
        """``--spm``, else a SentencePiece model called ``names`` (then the common names) beside the
        checkpoint, in its parent, or beside the files of ``near``."""
        from ckptkit.tokenizers.companions import SPM_NAMES

        if self.spm:
            return self.spm
        wanted = tuple(dict.fromkeys(n for n in (*names, *SPM_NAMES) if n))
        return self.companion(wanted, near=near)

    @classmethod
    def of_checkpoint(cls, checkpoint: Checkpoint, *, config: str | None = None, vocab: str | None = None,
                      spm: str | None = None) -> "Source":
        """A Source over a checkpoint already opened (its caller closes it), with the companions named."""
        return cls(location=checkpoint.path, path=checkpoint.path, config=_explicit(config, "--config"),
                   vocab=_explicit(vocab, "--vocab"), spm=_explicit(spm, "--spm"), _checkpoint=checkpoint)

    def part(self, name: str) -> "Source":
        """The source of one part folder (opened once, closed with this one)."""
        if not self.part_folders or name not in self.part_folders:
            raise UsageError(f"{self.path} holds no {name} folder")
        if name not in self._parts:
            self._parts[name] = Source(location=self.part_folders[name], path=self.part_folders[name])
        return self._parts[name]


@dataclass(frozen=True)
class ConfigHints:
    """What a family's ``complete_tf_config`` may use besides the config and the shapes.

    Attributes:
        source: the checkpoint's :class:`Source` (companions such as a SentencePiece model), if any.
        config_path: the config file read (None: inferred from shapes).
        num_heads: ``--num-heads``.
        family_options: the family's own options (ELECTRA ``generator_heads``).
    """

    source: Source | None = None
    config_path: str | None = None
    num_heads: int | None = None
    family_options: Mapping[str, Any] = field(default_factory=dict)


def open_source(location: str | os.PathLike, *, config: str | None = None, vocab: str | None = None,
                spm: str | None = None) -> Source:
    """Open what the user typed as a :class:`Source`: resolve the location, check the named companions,
    find the part folders. The checkpoint itself is opened on first use.

    Args:
        location: a checkpoint path (TF directory/prefix/.index, safetensors, .bin, hub folder, or a
            folder of part folders).
        config, vocab, spm: companions the user named (``--config``, ``--vocab``, ``--spm``).

    Returns:
        A :class:`Source`; use it as a context manager.

    Example:
        >>> with open_source("examples/tiny-bert") as source:  # doctest: +SKIP
        ...     source.checkpoint.format, source.vocab_file() is not None
        ('tf', True)
    """
    from ckptkit.converters.formats.hub_folder import find_part_folders

    location = os.fspath(location)
    path = resolve_location(location)
    return Source(location=location, path=path, config=_explicit(config, "--config"),
                  vocab=_explicit(vocab, "--vocab"), spm=_explicit(spm, "--spm"),
                  part_folders=find_part_folders(path))
