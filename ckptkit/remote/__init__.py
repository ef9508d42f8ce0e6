"""Remote checkpoints: gs://, s3://, hf://ORG/REPO[@REV]/path and https:// read through fsspec, fetching
only the index, the companions and the byte ranges of the tensors a command reads (cached on disk).

Nothing here is imported for a local path; fsspec and each kind's filesystem load on first remote use.
"""

from __future__ import annotations

from ckptkit.remote.settings import SETTINGS, STATS, configure

__all__ = ["resolve", "configure", "SETTINGS", "STATS", "REMOTE_KINDS"]

REMOTE_KINDS = ("gs", "gcs", "s3", "hf", "https", "http")


def resolve(location: str) -> str:
    """The local (mirror) path the format readers open for a remote ``location``."""
    from ckptkit.remote.mirror import resolve_remote

    return resolve_remote(location)
