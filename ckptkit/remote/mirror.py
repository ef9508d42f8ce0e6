"""A remote checkpoint folder mirrored in the cache: the index and companions downloaded whole (the index
revalidated on every run), weight files as sparse :class:`LazyFile` s whose byte ranges are fetched when
a reader reads them. The readers then open the mirror as a local checkpoint.

Layout: ``<cache>/<key>/tree/<parent>/<folder>/…`` (the parent holds the companions found there) and
``<cache>/<key>/state/<file>.json`` (the ranges fetched of each weight file).
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil

from ckptkit.converters.memory import BYTE_SOURCES
from ckptkit.errors import RemoteError
from ckptkit.output.atomic import atomic_write
from ckptkit.remote.filesystem import RemoteEntry, RemoteFS, remote_fs
from ckptkit.remote.lazy_file import LazyFile
from ckptkit.remote.settings import SETTINGS, STATS

__all__ = ["resolve_remote", "LAZY"]

# local mirror path -> its LazyFile (read_exact asks it for the bytes before reading).
LAZY: dict[str, LazyFile] = {}

_DATA = re.compile(r"(\.data-\d+-of-\d+|\.safetensors)$")
_TORCH = re.compile(r"\.(bin|pt|pth)$")
_INDEX = re.compile(r"(\.index|\.index\.json|^checkpoint)$")
_NEVER = re.compile(r"(\.meta$|^events\.out|^optimizer\.|^scheduler\.|^rng_state|^training_args\.bin$|\.h5$"
                    r"|\.msgpack$|\.onnx$|\.ot$|\.tflite$|\.pb$|\.pbtxt$)")
_PARENT_COMPANION = re.compile(r"(\.json|\.txt|\.model|\.vocab)$")
MAX_COMPANION = 64 << 20


def _kind_of(name: str, folder_has_safetensors: bool, target: str) -> str:
    """``lazy`` (ranges on demand: TF data shards, safetensors, ``.bin`` zips), ``whole`` (downloaded,
    cached), ``index`` (downloaded, revalidated) or ``skip`` for one file of the checkpoint's folder."""
    if _DATA.search(name):
        return "lazy"
    if _TORCH.search(name) and not _NEVER.search(name):  # read by ckptkit's zip reader: ranges too
        return "lazy" if name == target or not folder_has_safetensors else "skip"
    if _NEVER.search(name):
        return "skip"
    return "index" if _INDEX.search(name) else "whole"


def _split(url: str) -> tuple[str, str]:
    url = url.rstrip("/")
    head, _, base = url.rpartition("/")
    return head, base


class _Mirror:
    def __init__(self, fs: RemoteFS, folder_url: str, *, within: "_Mirror | None" = None, part: str = ""):
        """The mirror of ``folder_url``; ``within`` (a mirror of a folder of part folders) places it in
        that mirror's folder as ``part``, with its own range records."""
        self.fs, self.folder_url = fs, folder_url
        if within is not None:
            self.root, self.parent = within.root, within.folder
            self.folder = os.path.join(within.folder, part)
            self.state = os.path.join(within.state, part)
        else:
            key = hashlib.sha256(f"{fs.kind}|{folder_url}".encode()).hexdigest()[:24]
            self.root = os.path.join(SETTINGS.cache, key)
            parent_url, base = _split(folder_url)
            self.parent = os.path.join(self.root, "tree", re.sub(r"[^\w.-]", "_", _split(parent_url)[1] or "root"))
            self.folder = os.path.join(self.parent, re.sub(r"[^\w.@-]", "_", base) or "folder")
            self.state = os.path.join(self.root, "state")
        for directory in (self.folder, self.state):
            os.makedirs(directory, exist_ok=True)

    @staticmethod
    def _cached(entry: RemoteEntry, local: str, *, revalidate: bool) -> bool:
        return not revalidate and os.path.isfile(local) and os.path.getsize(local) == entry.size

    def _download(self, entry: RemoteEntry, local: str, *, revalidate: bool) -> None:
        if self._cached(entry, local, revalidate=revalidate):
            return
        data = self.fs.read_all(entry.url)
        STATS.add_transferred(len(data))
        if os.path.isfile(local):
            with open(local, "rb") as f:
                if f.read() == data:
                    return
            self._invalidate()  # the index changed: every cached range may be stale
        atomic_write(local, data)

    def _invalidate(self) -> None:
        shutil.rmtree(self.state, ignore_errors=True)
        os.makedirs(self.state, exist_ok=True)
        for path in [p for p in LAZY if p.startswith(self.folder + os.sep)]:
            del LAZY[path]
            BYTE_SOURCES.pop(path, None)

    def add(self, entries: list[RemoteEntry], target: str) -> None:
        has_st = any(e.name.endswith(".safetensors") for e in entries)
        kinds = {e.name: _kind_of(e.name, has_st, target) for e in entries}
        todo = [(e, os.path.join(self.folder, e.name), kinds[e.name] == "index")
                for e in sorted(entries, key=lambda e: kinds[e.name] != "index")  # the index first
                if kinds[e.name] in ("index", "whole") and (e.size <= MAX_COMPANION or e.name == target)]
        self._download_all(todo)
        for entry in entries:
            if kinds[entry.name] == "lazy":
                local = os.path.join(self.folder, entry.name)
                lazy = LazyFile(self.fs, entry.url, local, os.path.join(self.state, entry.name + ".json"), entry.size)
                LAZY[os.path.abspath(local)] = lazy
                BYTE_SOURCES[os.path.abspath(local)] = lazy
                STATS.weight_bytes += entry.size

    def add_parent(self) -> None:
        parent_url = _split(self.folder_url)[0]
        if "/" not in parent_url.split("://", 1)[1]:
            return  # a bucket or repo root has no parent to look in
        try:
            entries = self.fs.listing(parent_url)
        except RemoteError:
            return
        self._download_all([(e, os.path.join(self.parent, e.name), False) for e in entries
                            if _PARENT_COMPANION.search(e.name) and e.size <= MAX_COMPANION])

    def _download_all(self, todo: list[tuple[RemoteEntry, str, bool]]) -> None:
        """Download ``(entry, local path, revalidate)`` in order, under one bar for the bytes not cached."""
        from ckptkit.remote.progress import expect

        expect(sum(e.size for e, local, again in todo if not self._cached(e, local, revalidate=again)),
               desc="fetching index and companions")
        for entry, local, again in todo:
            self._download(entry, local, revalidate=again)


def _weights_among(entries: list[RemoteEntry]) -> bool:
    return any(_DATA.search(e.name) or _TORCH.search(e.name) or _INDEX.search(e.name) for e in entries)


def _looks_like_a_file(base: str) -> bool:
    """A name with an extension or a TF step (``model.ckpt-1000``, ``x.safetensors``), not a folder's."""
    return "." in base.strip(".")


def _locate(fs: RemoteFS, url: str) -> tuple[str, str, list[RemoteEntry], list[str]]:
    """(folder URL, the target's name in it or "", the folder's files, its part folders) for what the user
    gave. A folder that cannot be listed is probed for its well-known files (:mod:`ckptkit.remote.probe`)."""
    from ckptkit.remote.probe import part_names, probe

    head, base = _split(url)
    in_folder = not url.endswith("/") and "/" in head.split("://", 1)[1]
    refused: list[RemoteError] = []
    head_entries: list[RemoteEntry] = []
    if in_folder:
        head_entries = _contents(fs, head, refused)[0]
        names = {e.name for e in head_entries}
        if base in names or any(n.startswith(base + ".") for n in names):
            return head, base, head_entries, []
    entries, folders = _contents(fs, url, refused)
    parts = [p for p in part_names() if p in folders] if not _weights_among(entries) else []
    if entries or parts:
        return url.rstrip("/"), "", entries, parts
    listings_work = not refused and (fs.kind not in ("http", "https") or head_entries)
    attempts = [(head, base), (url, "")] if in_folder and _looks_like_a_file(base) else [(url, ""), (head, base)]
    if listings_work:  # the folder was listed: what is not in it is not there
        attempts = []
    for folder, target in attempts:
        if folder == head and not in_folder:
            continue
        try:
            entries, parts = probe(fs, folder, target=target)
        except RemoteError as e:
            raise refused[0] if refused and "(403)" in e.message else e
        if _weights_among(entries) or parts or target and any(e.name == target for e in entries):
            return folder.rstrip("/"), target, entries, parts
    if not url.endswith("/"):
        return head, base, [RemoteEntry(base, url, fs.size(url))], []  # a lone file (404 is one line)
    if refused:
        raise refused[0]
    raise RemoteError("no files there (404)", path=url, hint="check the URL, the bucket/repo and the revision")


def _contents(fs: RemoteFS, folder_url: str, refused: list[RemoteError]) -> tuple[list[RemoteEntry], list[str]]:
    """The folder's listing; a listing refused (403: no list permission, or a server without listings)
    is empty here and remembered, so that the files can still be probed one by one."""
    try:
        return fs.contents(folder_url)
    except RemoteError as e:
        if "(403)" not in e.message or (e.path or "").rstrip("/") != folder_url.rstrip("/"):
            raise  # a file of the listing refused, not the listing
        refused.append(e)
        return [], []


def _check_shards(folder_url: str, target: str, entries: list[RemoteEntry]) -> None:
    """A TF prefix whose ``.index`` is there must have every ``.data-*-of-N`` shard (one line naming it)."""
    names = {e.name for e in entries}
    if not target or f"{target}.index" not in names:
        return
    shards = [re.search(r"\.data-(\d+)-of-(\d+)$", n) for n in names if n.startswith(target + ".data-")]
    counts = {int(m.group(2)) for m in shards if m}
    total = max(counts) if counts else 1
    for shard in range(total):
        name = f"{target}.data-{shard:05d}-of-{total:05d}"
        if name not in names:
            raise RemoteError(f"data shard {shard + 1} of {total} is missing", path=f"{folder_url}/{name}",
                              hint="upload every .data-*-of-* file of the checkpoint, or check the URL")


def _mirror_parts(fs: RemoteFS, folder_url: str, entries: list[RemoteEntry], parts: list[str]) -> str:
    """Mirror a folder of part folders (ELECTRA's ``discriminator/`` and ``generator/``, each a hub folder):
    each part as its own mirror inside this one, so that the local reader finds them as it does locally."""
    from ckptkit.remote.probe import probe

    home = _Mirror(fs, folder_url)
    for stale in set(os.listdir(home.folder)) - set(parts):  # a part no longer on the server
        if os.path.isdir(os.path.join(home.folder, stale)):
            shutil.rmtree(os.path.join(home.folder, stale), ignore_errors=True)
    home.add(entries, "")
    for part in parts:
        part_url = f"{folder_url}/{part}"
        files = fs.listing(part_url) or probe(fs, part_url)[0]
        _Mirror(fs, part_url, within=home, part=part).add(files, "")
    return home.folder


def resolve_remote(location: str) -> str:
    """The local mirror path of a remote checkpoint ``location`` (gs://, s3://, hf://, http(s)://)."""
    from ckptkit.remote.progress import close

    try:
        return _resolve(location)
    finally:
        close()  # the index and companions' bar, cleared before anything else is printed


def _resolve(location: str) -> str:
    kind = location.split("://", 1)[0].lower()
    fs = remote_fs(kind)
    fs.forget()
    folder_url, target, entries, parts = _locate(fs, location)
    STATS.remote = True
    if parts:
        return _mirror_parts(fs, folder_url, entries, parts)
    _check_shards(folder_url, target, entries)
    mirror = _Mirror(fs, folder_url)
    mirror.add(entries, target)
    mirror.add_parent()
    path = os.path.join(mirror.folder, target) if target else mirror.folder
    if target and not os.path.exists(path) and not any(n.startswith(target + ".") for n in os.listdir(mirror.folder)):
        raise RemoteError("not found (404)", path=location, hint="check the URL")
    return path
