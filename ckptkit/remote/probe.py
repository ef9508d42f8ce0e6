"""Find a remote checkpoint's files where the server gives no folder listing (an https server without
an index page, a bucket without list permission): ask for each well-known name with a HEAD request,
then follow what the files found name (the ``checkpoint`` file's prefix, a TF index's shard count, an
index json's shards) and the part folders (``discriminator/``, ``generator/``) by their config.json.

The well-known names come from the family registry (each family's TF config names and SentencePiece
names) plus the hub folder's own files, so a new family's companions are probed without a change here.
"""

from __future__ import annotations

import json
import os
import re
from concurrent.futures import ThreadPoolExecutor

from ckptkit.errors import RemoteError
from ckptkit.remote.filesystem import RemoteEntry, RemoteFS
from ckptkit.remote.settings import SETTINGS

__all__ = ["probe", "well_known_names", "part_names"]

# besides the hub weight files, tokenizer files and family config names (all from their own tables)
OTHER_NAMES = ("checkpoint", "vocab.txt", "hparams.json", "pretrain_hparams.json", "flags.txt", "flagfile.txt")
_PREFIX = re.compile(r'^model_checkpoint_path:\s*"([^"]+)"', re.M)


def part_names() -> tuple[str, ...]:
    """The part folder names of every family (``discriminator``, ``generator``)."""
    from ckptkit.converters.families import FAMILIES, get_family

    return tuple(sorted({p.name for f in FAMILIES for p in get_family(f).hf_parts}))


def well_known_names() -> tuple[str, ...]:
    """Every companion or weights file name ckptkit looks for in a folder, in a fixed order.

    Example:
        >>> {"config.json", "bert_config.json", "spiece.model", "vocab.txt"} <= set(well_known_names())
        True
    """
    from ckptkit.converters.families import FAMILIES, get_family
    from ckptkit.output.names import CONFIG_FILE, TOKENIZER_FILE_NAMES, hub_weight_names
    from ckptkit.tokenizers.companions import SPM_NAMES

    names = [CONFIG_FILE, *hub_weight_names(), *OTHER_NAMES, *sorted(TOKENIZER_FILE_NAMES), *SPM_NAMES]
    for name in FAMILIES:
        family = get_family(name)
        names += [family.tf_config_name, *family.tf_config_aliases, *family.spm_names]
    return tuple(dict.fromkeys(n for n in names if n and "/" not in n))


def _sizes(fs: RemoteFS, folder_url: str, names, *, guesses: bool = True) -> dict[str, int]:
    """``{name: size}`` of the ``names`` that exist in ``folder_url`` (HEAD requests, concurrently). A
    guess refused with 403 counts as absent (a bucket says 403 for a missing key without list
    permission); a file another one names (a shard) refused is the one-line 403."""
    absent = ("(404)", "(403)") if guesses else ("(404)",)

    refusals: list[RemoteError] = []

    def size(name: str) -> int | None:
        try:
            return fs.size(f"{folder_url}/{name}")
        except RemoteError as e:
            if any(code in e.message for code in absent):
                if "(403)" in e.message:
                    refusals.append(e)
                return None
            raise

    names = list(dict.fromkeys(names))
    with ThreadPoolExecutor(max(1, min(SETTINGS.connections, len(names) or 1))) as pool:
        sizes = list(pool.map(size, names))
    if names and len(refusals) == len(names):  # every name refused: no access here at all, say so
        raise refusals[0]
    return {n: s for n, s in zip(names, sizes) if s is not None}


def _tf_shards(fs: RemoteFS, folder_url: str, prefix: str) -> list[str]:
    """The data shard names of the TF index ``prefix.index`` (its header's shard count)."""
    from ckptkit.converters.formats.tf1.messages import decode_header
    from ckptkit.converters.formats.tf1.table import read_table

    data = fs.read_all(f"{folder_url}/{prefix}.index", keep=True)
    try:
        count = decode_header(dict(read_table(data))[b""]).num_shards
    except Exception:  # noqa: BLE001 - a damaged index is reported by the reader, with its file named
        count = 1
    return [f"{prefix}.data-{shard:05d}-of-{count:05d}" for shard in range(max(1, min(count, 100_000)))]


def _json_shards(fs: RemoteFS, folder_url: str, index: str) -> list[str]:
    """The shard files an index json's ``weight_map`` names."""
    try:
        weight_map = json.loads(fs.read_all(f"{folder_url}/{index}", keep=True)).get("weight_map", {})
        return [s for s in dict.fromkeys(weight_map.values()) if isinstance(s, str) and "/" not in s]
    except (ValueError, AttributeError):
        return []  # the reader names what is wrong with it


def _prefixes(fs: RemoteFS, folder_url: str, found: dict[str, int], target: str) -> list[str]:
    prefixes = [target.removesuffix(".index")] if target and not target.endswith(".json") else []
    if "checkpoint" in found:
        match = _PREFIX.search(fs.read_all(f"{folder_url}/checkpoint", keep=True).decode("utf-8", "replace"))
        if match:
            prefixes.append(os.path.basename(match.group(1).replace("\\", "/")))
    return list(dict.fromkeys(prefixes))


def probe(fs: RemoteFS, folder_url: str, *, target: str = "") -> tuple[list[RemoteEntry], list[str]]:
    """(the files found in ``folder_url``, its part folders) by HEAD requests, for a folder that cannot be
    listed; ``target`` is the file or TF prefix the user named in it, if any."""
    folder_url = folder_url.rstrip("/")
    names = ([target] if target else []) + list(well_known_names())
    found = _sizes(fs, folder_url, names[:1])  # one request first: a caller without access stops here
    found.update(_sizes(fs, folder_url, names[1:]))
    more: list[str] = []
    for prefix in _prefixes(fs, folder_url, found, target):
        if _sizes(fs, folder_url, [f"{prefix}.index"]):
            more += [f"{prefix}.index", *_tf_shards(fs, folder_url, prefix)]
    for index in [n for n in (*found, target) if n.endswith(".index.json") and n in found]:
        more += _json_shards(fs, folder_url, index)
    found.update(_sizes(fs, folder_url, [n for n in more if n not in found], guesses=False))
    parts = [p for p in part_names() if _sizes(fs, f"{folder_url}/{p}", ["config.json"])]
    entries = [RemoteEntry(n, f"{folder_url}/{n}", size) for n, size in found.items()]
    return entries, parts
