"""One remote location kind seen through fsspec: list a folder, read a byte range, with retries and
one-line errors that name the URL and the fix.

fsspec, and the filesystem of each kind (gcsfs, s3fs, huggingface_hub's HfFileSystem, aiohttp for
https), are imported here only, on first use: a local path never loads them.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from typing import Any, Callable

from ckptkit.errors import RemoteError

__all__ = ["RemoteFS", "remote_fs", "RemoteEntry", "CREDENTIAL_HINTS", "EXTRA_HINT"]

EXTRA_HINT = "install the remote extra: pip install 'ckptkit[remote]'"

# kind -> how a user gives credentials for it.
CREDENTIAL_HINTS: dict[str, str] = {
    "gs": "run `gcloud auth application-default login` or set GOOGLE_APPLICATION_CREDENTIALS",
    "s3": "set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE (or run `aws configure`)",
    "hf": "run `hf auth login` or set HF_TOKEN",
    "https": "check that the URL is public (or download it with its own credentials)",
    "http": "check that the URL is public (or download it with its own credentials)",
}

# kind -> (fsspec protocol, keyword arguments read from the environment at call time).
_PROTOCOLS: dict[str, tuple[str, Callable[[], dict[str, Any]]]] = {
    "gs": ("gcs", lambda: _gcs_emulator()),
    "gcs": ("gcs", lambda: _gcs_emulator()),
    "s3": ("s3", lambda: {"endpoint_url": os.environ["AWS_ENDPOINT_URL"]}
           if os.environ.get("AWS_ENDPOINT_URL") else {}),
    "hf": ("hf", lambda: {"endpoint": os.environ["HF_ENDPOINT"]} if os.environ.get("HF_ENDPOINT") else {}),
    "https": ("https", lambda: {}),
    "http": ("http", lambda: {}),
}

def _gcs_emulator() -> dict[str, Any]:
    """With ``STORAGE_EMULATOR_HOST`` (a local GCS emulator): its endpoint, anonymous."""
    host = os.environ.get("STORAGE_EMULATOR_HOST")
    if not host:
        return {}
    return {"endpoint_url": host if "://" in host else f"http://{host}", "token": "anon"}


def _make(protocol: str, kwargs: dict[str, Any]):
    import fsspec

    if protocol == "gcs" and kwargs.get("token") == "anon":
        from gcsfs.core import GCSFileSystem  # an emulator speaks JSON only: not the gRPC bucket-type probe

        return GCSFileSystem(skip_instance_cache=True, **kwargs)
    return fsspec.filesystem(protocol, skip_instance_cache=True, **kwargs)


# environment variables that change who a filesystem is: a change makes a new one.
_CREDENTIAL_VARIABLES = ("AWS_", "HF_", "GOOGLE_", "STORAGE_EMULATOR_HOST", "GCSFS_")

RETRIES = 5
BACKOFF_S = 0.2
CONNECT_TIMEOUT_S = 5.0  # the first request of a run checks that the server takes connections at all

# kind -> (environment variable naming its endpoint, the default endpoint), for that first check.
_ENDPOINTS: dict[str, tuple[str, str]] = {
    "gs": ("STORAGE_EMULATOR_HOST", "https://storage.googleapis.com"),
    "gcs": ("STORAGE_EMULATOR_HOST", "https://storage.googleapis.com"),
    "s3": ("AWS_ENDPOINT_URL", "https://s3.amazonaws.com"),
    "hf": ("HF_ENDPOINT", "https://huggingface.co"),
}
_PROXY_VARIABLES = ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "https_proxy", "http_proxy", "all_proxy")


@dataclass(frozen=True)
class RemoteEntry:
    """One file of a remote folder: its base name, URL and size."""

    name: str
    url: str
    size: int


def _status(error: BaseException) -> int | None:
    if type(error).__name__ == "HttpError" and isinstance(getattr(error, "code", None), int):  # gcsfs
        return error.code
    for attr in ("status", "status_code"):
        value = getattr(error, attr, None)
        if isinstance(value, int):
            return value
    response = getattr(error, "response", None)
    if response is not None:
        if isinstance(getattr(response, "status_code", None), int):
            return response.status_code
        if isinstance(response, dict):  # botocore ClientError
            code = response.get("Error", {}).get("Code")
            return int(code) if str(code).isdigit() else {"NoSuchKey": 404, "AccessDenied": 403}.get(code)
    return None


def _credentials_missing(error: BaseException) -> bool:
    name = type(error).__name__
    return name in ("NoCredentialsError", "DefaultCredentialsError", "LocalTokenNotFoundError") or \
        "credentials" in str(error).lower() and "could not" in str(error).lower()


def _host_unknown(error: BaseException) -> bool:
    """A DNS failure anywhere in the cause chain: no retry will resolve the host (offline, or a typo)."""
    import socket

    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, socket.gaierror) or "DNSError" in type(seen).__name__:
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def translate(error: BaseException, url: str, kind: str) -> RemoteError | None:
    """The one-line error for a failure that retrying cannot fix, else None (retry it)."""
    if _host_unknown(error):
        return RemoteError(f"cannot resolve the server's host name ({error})", path=url,
                           hint="check the URL and that this machine is online")
    if type(error).__name__ == "OfflineModeIsEnabled":
        return RemoteError("the Hub is in offline mode (HF_HUB_OFFLINE is set)", path=url,
                           hint="unset HF_HUB_OFFLINE to read hf:// locations")
    status = _status(error) or (_status(error.__cause__) if error.__cause__ is not None else None)
    if isinstance(error, FileNotFoundError) and status in (None, 404) or status == 404:
        return RemoteError("not found (404)", path=url, hint="check the URL, the bucket/repo and the revision")
    if _credentials_missing(error) or status == 401:
        return RemoteError("no credentials", path=url, hint=CREDENTIAL_HINTS.get(kind, "log in"))
    if isinstance(error, PermissionError) or status == 403 or str(error).startswith("Forbidden:"):  # gcsfs
        return RemoteError("access denied (403)", path=url,
                           hint=CREDENTIAL_HINTS.get(kind, "check your credentials") + " with read access")
    if status is not None and 400 <= status < 500 and status not in (408, 429):
        return RemoteError(f"request refused ({status})", path=url, hint="check the URL")
    return None


def _endpoint(kind: str, url: str) -> tuple[str, int, str | None]:
    """(host, port, the environment variable that named it or None) a request for ``url`` goes to."""
    from urllib.parse import urlsplit

    variable, default = _ENDPOINTS.get(kind, ("", ""))
    named = os.environ.get(variable) if variable else None
    target = (named if "://" in named else f"http://{named}") if named else (default or url)
    parts = urlsplit(target)
    return parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80), variable if named else None


def check_reachable(kind: str, url: str, *, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """Fail at once, in one line, when the server of ``url`` takes no connection (refused, no answer in
    ``timeout`` seconds, unknown host): the libraries' own retries would take a minute to say so. Skipped
    behind a proxy (the connection would go through it)."""
    import socket

    if any(os.environ.get(v) for v in _PROXY_VARIABLES):
        return
    host, port, variable = _endpoint(kind, url)
    if not host:
        return
    where = f" (from {variable})" if variable else ""
    hint = f"check {variable} and that the server runs" if variable else "check the URL and that this machine is online"
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except socket.gaierror as e:
        raise RemoteError(f"cannot resolve the server's host name {host}{where} ({e})", path=url,
                          hint=hint) from None
    except (socket.timeout, TimeoutError):
        raise RemoteError(f"cannot connect to {host}:{port}{where}: no answer in {timeout:.0f} s", path=url,
                          hint=hint) from None
    except OSError as e:
        raise RemoteError(f"cannot connect to {host}:{port}{where} ({e.strerror or e})", path=url,
                          hint=hint) from None


class RemoteFS:
    """A remote location kind: listing, sizes and ranged reads, retried on 5xx and dropped connections."""

    def __init__(self, kind: str):
        self.kind = kind
        self._fs = None
        self._kwargs: dict | None = None
        self._kept: dict[str, bytes] = {}
        self._reached: set[tuple] = set()  # endpoints that took a connection in this process

    @property
    def fs(self):
        """The fsspec filesystem (made again when its environment, e.g. an endpoint, changed)."""
        protocol, make_kwargs = _PROTOCOLS[self.kind]
        kwargs = make_kwargs()
        key = (kwargs, sorted((k, v) for k, v in os.environ.items() if k.startswith(_CREDENTIAL_VARIABLES)))
        if self._fs is None or key != self._kwargs:
            try:
                self._fs, self._kwargs = _make(protocol, kwargs), key
            except ImportError as e:
                raise RemoteError(f"reading {self.kind}:// needs {e.name or 'fsspec'}", hint=EXTRA_HINT) from e
        return self._fs

    def _call(self, url: str, action: Callable[[], Any]) -> Any:
        endpoint = _endpoint(self.kind, url)
        if endpoint not in self._reached:
            check_reachable(self.kind, url)
            self._reached.add(endpoint)
        for attempt in range(RETRIES + 1):
            try:
                return action()
            except RemoteError:
                raise
            except ImportError as e:
                raise RemoteError(f"reading {self.kind}:// needs {e.name}", path=url, hint=EXTRA_HINT) from e
            except Exception as e:  # noqa: BLE001 - every transport error is translated or retried
                fatal = translate(e, url, self.kind)
                if fatal is not None:
                    raise fatal from None
                if attempt == RETRIES:
                    raise RemoteError(f"transfer failed after {RETRIES + 1} tries ({type(e).__name__}: {e})",
                                      path=url, hint="check the network and run again (what was read is "
                                                     "cached and not fetched again)") from None
                time.sleep(BACKOFF_S * 2 ** attempt)
        raise AssertionError("unreachable")

    def _path(self, url: str) -> str:
        return url if self.kind in ("http", "https") else url.split("://", 1)[1]

    def _url(self, path: str) -> str:
        return path if "://" in path else f"{self.kind}://{path}"

    def listing(self, folder_url: str) -> list[RemoteEntry]:
        """The files directly in ``folder_url`` (empty when it cannot be listed)."""
        return self.contents(folder_url)[0]

    def contents(self, folder_url: str) -> tuple[list[RemoteEntry], list[str]]:
        """(the files, the names of the subfolders) directly in ``folder_url``; both empty when it cannot
        be listed."""
        self.fs.invalidate_cache()  # list afresh on every run
        try:
            items = self._call(folder_url, lambda: self.fs.ls(self._path(folder_url.rstrip("/") + "/"), detail=True))
        except RemoteError as e:
            if "404" in e.message:
                return [], []
            raise
        entries, folders = [], []
        for item in items:
            name = item["name"].rstrip("/").rsplit("/", 1)[-1]
            if item.get("type") == "directory" or item["name"].endswith("/"):
                folders.append(name)
                continue
            if item.get("type") not in ("file", None):
                continue
            url, size = self._url(item["name"]), item.get("size")
            entries.append(RemoteEntry(name, url, int(size) if size is not None else self.size(url)))
        return entries, folders

    def size(self, url: str) -> int:
        """The size of the file at ``url`` (a 404 is a one-line error)."""
        info = self._call(url, lambda: self.fs.info(self._path(url)))
        if info.get("size") is None:
            raise RemoteError("the server does not tell the file's size", path=url, hint="give another mirror")
        return int(info["size"])

    def read(self, url: str, start: int, end: int) -> bytes:
        """Bytes ``[start, end)`` of ``url``; a server that ignores ranges returns the whole file."""
        if self.kind == "hf":  # HfFileSystem's cat_file reads ahead in 5 MB blocks: read exactly the range
            return self._call(url, lambda: self._exact(url, start, end))
        return self._call(url, lambda: self.fs.cat_file(self._path(url), start=start, end=end))

    def _exact(self, url: str, start: int, end: int) -> bytes:
        with self.fs.open(self._path(url), "rb", block_size=max(1, end - start), cache_type="none") as f:
            f.seek(start)
            return f.read(end - start)

    def read_all(self, url: str, *, keep: bool = False) -> bytes:
        """The whole file at ``url``; with ``keep``, the next ``read_all`` of it returns the same bytes
        without a transfer (a file read to find others, which the mirror then stores)."""
        if url in self._kept:
            return self._kept.pop(url) if not keep else self._kept[url]
        data = self._call(url, lambda: self.fs.cat_file(self._path(url)))
        if keep:
            self._kept[url] = data
        return data

    def forget(self) -> None:
        """Drop the bytes kept by ``read_all(keep=True)`` (at the start of each resolution)."""
        self._kept.clear()


_FILESYSTEMS: dict[str, RemoteFS] = {}


def remote_fs(kind: str) -> RemoteFS:
    """The :class:`RemoteFS` of ``kind`` (one per process)."""
    if kind not in _FILESYSTEMS:
        _FILESYSTEMS[kind] = RemoteFS(kind)
    return _FILESYSTEMS[kind]
