"""A Hugging Face hub folder: ``config.json`` beside safetensors or PyTorch weights.

Example:
    >>> open_hub_folder("no/such/folder")
    Traceback (most recent call last):
    ...
    ckptkit.errors.CheckpointNotFoundError: no/such/folder: hub folder not found
"""

from __future__ import annotations

import os

from ckptkit.converters.tensors import Checkpoint
from ckptkit.errors import CheckpointNotFoundError
from ckptkit.output.names import HUB_WEIGHT_FILES

__all__ = ["open_hub_folder", "read_config", "find_part_folders", "WEIGHT_FILES"]

# Preference order: the first weights file present is read. (file name, format module opener)
WEIGHT_FILES = HUB_WEIGHT_FILES


def read_config(folder: str) -> dict:
    """The folder's ``config.json`` as a dict ({} when absent)."""
    from ckptkit.converters.config_io import read_json_config

    path = os.path.join(folder, "config.json")
    return read_json_config(path) if os.path.isfile(path) else {}


def open_hub_folder(path: str) -> Checkpoint:
    """Open the weights of a hub folder lazily; ``extras["config"]`` holds its config.json."""
    from ckptkit.converters.formats.safetensors_io import open_safetensors
    from ckptkit.converters.formats.torch_bin import open_torch_bin

    if not os.path.isdir(path):
        raise CheckpointNotFoundError("hub folder not found", path=path)
    openers = {"safetensors": open_safetensors, "pytorch": open_torch_bin}
    for filename, fmt in WEIGHT_FILES:
        weights = os.path.join(path, filename)
        if os.path.isfile(weights):
            ckpt = openers[fmt](weights)
            ckpt.extras.update(config=read_config(path), weights_format=fmt, folder=path)
            ckpt.format = "hub"
            return ckpt
    raise CheckpointNotFoundError("no weights in hub folder", path=path,
                                  hint="expected " + " or ".join(name for name, _ in WEIGHT_FILES))


def find_part_folders(path: str) -> dict[str, str] | None:
    """``{part: folder}`` when ``path`` is a folder of part folders (``discriminator/``, ``generator/``, each a
    hub folder with config.json) as a multi-part conversion writes them; else None.

    Example:
        >>> find_part_folders("examples/tiny-bert") is None
        True
    """
    if not os.path.isdir(path) or os.path.isfile(os.path.join(path, "config.json")):
        return None
    if not any(os.path.isfile(os.path.join(path, name, "config.json")) for name in os.listdir(path)):
        return None  # no hub folder inside: no need to import the families for their part names
    from ckptkit.converters.families import FAMILIES, get_family

    names = {p.name for f in FAMILIES for p in get_family(f).hf_parts}
    found = {n: os.path.join(path, n) for n in sorted(names) if os.path.isfile(os.path.join(path, n, "config.json"))}
    return found or None
