"""Keep a transformers forward pass at about one layer of resident weights (verify's HF side).

transformers loads safetensors weights as views of the memory-mapped files: nothing is resident until
the forward pass touches it, and then every layer stays resident. :func:`layer_by_layer` adds forward
hooks that drop each module's weight pages from the resident set as soon as the module has run. Only
pages of a private file mapping without a page copied on write (``Anonymous: 0`` in smaps) are
dropped: such pages are the page cache's (byte for byte the file, even while not yet written back), and
a module that runs again (tied embeddings) maps them again. Anything else (a weight transformers
copied, a mapping with a written page) is left alone.
"""

from __future__ import annotations

import contextlib
import mmap
import os
from typing import Iterator

from ckptkit.converters.memory import dont_need

__all__ = ["layer_by_layer", "clean_file_mappings"]


def clean_file_mappings(folder: str) -> list[tuple[int, int]]:
    """[start, end) of this process's private mappings of files inside ``folder`` with no page copied on write.

    Example:
        >>> clean_file_mappings("/nonexistent")
        []
    """
    folder = os.path.realpath(folder) + os.sep
    ranges, current, copied = [], None, False
    try:
        lines = open("/proc/self/smaps", encoding="utf-8", errors="replace").read().splitlines()
    except OSError:  # not Linux: nothing is released
        return []
    for line in lines + ["0-0 ---p 0 0:0 0"]:
        head = line.split()
        if head and "-" in head[0] and len(head) >= 5 and all(c in "0123456789abcdef-" for c in head[0]):
            if current is not None and not copied:
                ranges.append(current)
            path = head[5] if len(head) > 5 else ""
            start, end = (int(x, 16) for x in head[0].split("-"))
            current = (start, end) if head[1].endswith("p") and path.startswith(folder) else None
            copied = False
        elif head and head[0] == "Anonymous:" and int(head[1]) > 0:  # a page copied on write
            copied = True
    return ranges


def _release(module, ranges: list[tuple[int, int]]) -> None:
    for param in module.parameters(recurse=False):
        start = param.data_ptr()
        end = start + param.numel() * param.element_size()
        if any(low <= start and end <= high for low, high in ranges):
            first = -(-start // mmap.PAGESIZE) * mmap.PAGESIZE  # whole pages inside the tensor only
            last = end // mmap.PAGESIZE * mmap.PAGESIZE
            if last > first:
                dont_need(first, last - first)


@contextlib.contextmanager
def layer_by_layer(model, folder: str) -> Iterator[None]:
    """While inside, every module of ``model`` drops its mapped weight pages after its forward."""
    ranges = clean_file_mappings(folder)
    hooks = [] if not ranges else [
        module.register_forward_hook(lambda mod, args, out: _release(mod, ranges))
        for module in model.modules() if next(module.parameters(recurse=False), None) is not None]
    try:
        yield
    finally:
        for hook in hooks:
            hook.remove()
