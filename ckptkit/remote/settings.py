"""What the CLI options set for remote reads (``--connections``, ``--cache-dir``,
``--allow-full-download``) and the transfer counters ``--json`` reports. Imports nothing remote."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field

__all__ = ["RemoteSettings", "SETTINGS", "STATS", "TransferStats", "configure", "default_cache_dir"]

DEFAULT_CONNECTIONS = 8


def default_cache_dir() -> str:
    """``$HF_HOME/ckptkit-remote`` (``~/.cache/huggingface/ckptkit-remote`` by default)."""
    home = os.environ.get("HF_HOME") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "huggingface")
    return os.path.join(home, "ckptkit-remote")


@dataclass
class RemoteSettings:
    """Options of remote reads for this process."""

    connections: int = DEFAULT_CONNECTIONS
    cache_dir: str | None = None
    allow_full_download: bool = False

    @property
    def cache(self) -> str:
        return os.path.abspath(os.path.expanduser(self.cache_dir or default_cache_dir()))


@dataclass
class TransferStats:
    """Bytes moved over the network, and bytes of remote weight files the run needed and left unread."""

    transferred: int = 0
    needed: int = 0
    weight_bytes: int = 0
    remote: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def add_transferred(self, count: int) -> None:
        with self._lock:
            self.transferred += count
        from ckptkit.remote.progress import advance

        advance(count)

    def add_needed(self, count: int) -> None:
        with self._lock:
            self.needed += count

    def to_json(self) -> dict:
        """``{"bytes_transferred", "bytes_skipped"}`` for ``--json``."""
        return {"bytes_transferred": self.transferred, "bytes_skipped": max(0, self.weight_bytes - self.needed)}

    def reset(self) -> None:
        self.transferred = self.needed = self.weight_bytes = 0
        self.remote = False


SETTINGS = RemoteSettings()
STATS = TransferStats()


def configure(*, connections: int | None = None, cache_dir: str | None = None,
              allow_full_download: bool | None = None) -> RemoteSettings:
    """Set the options of remote reads for this process (None keeps a value)."""
    if connections is not None:
        SETTINGS.connections = max(1, int(connections))
    if cache_dir is not None:
        SETTINGS.cache_dir = cache_dir
    if allow_full_download is not None:
        SETTINGS.allow_full_download = bool(allow_full_download)
    return SETTINGS
