"""A range-capable HTTP file server on 127.0.0.1 for remote-checkpoint tests and the benchmark.

It serves a folder (HTML listings for directories, ``Range: bytes=a-b`` answered with 206), counts the
bytes it served, and injects faults: drop the connection mid-transfer, answer a status for matching
paths, ignore ranges. A token bucket limits its bandwidth when asked.
"""

from __future__ import annotations

import html
import io
import os
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import quote, unquote, urlsplit

_RANGE = re.compile(r"bytes=(\d+)-(\d*)$")


@dataclass
class Faults:
    """What the server gets wrong: ``drops`` GETs cut after ``drop_after`` bytes, ``status`` per path regex."""

    drops: int = 0
    drop_after: int = 16
    status: dict[str, int] = field(default_factory=dict)
    no_ranges: bool = False
    ranged_ok: int | None = None  # answer this many ranged GETs, then 500 to every other one
    listing_status: int | None = None  # answer folders with this status instead of an HTML listing (404, 403)


class TokenBucket:
    """``rate`` bytes per second shared by every connection."""

    def __init__(self, rate: float):
        self.rate, self.tokens, self.last = rate, 0.0, time.monotonic()
        self.lock = threading.Lock()

    def take(self, count: int) -> None:
        with self.lock:
            now = time.monotonic()
            self.tokens = min(self.rate * 0.05, self.tokens + (now - self.last) * self.rate)
            self.last = now
            self.tokens -= count
            wait = -self.tokens / self.rate if self.tokens < 0 else 0.0
        if wait:
            time.sleep(wait)


class RangeServer:
    """Serve ``root`` on 127.0.0.1; use as a context manager. ``url`` is its base URL."""

    def __init__(self, root: str, *, rate: float | None = None):
        self.root = os.path.abspath(root)
        self.faults = Faults()
        self.bytes_served = 0
        self.requests: list[tuple[str, str, str | None]] = []
        self.bucket = TokenBucket(rate) if rate else None
        self._lock = threading.Lock()
        server = self

        class Handler(_Handler):
            owner = server

        self.httpd = _QuietServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def count(self, nbytes: int) -> None:
        with self._lock:
            self.bytes_served += nbytes

    def reset(self) -> None:
        self.bytes_served = 0
        self.requests.clear()

    def __enter__(self) -> "RangeServer":
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address) -> None:  # a client that hung up is not news
        pass


class _Handler(BaseHTTPRequestHandler):
    owner: RangeServer
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, format, *args):  # keep test output clean
        pass

    def _local(self) -> str:
        path = unquote(urlsplit(self.path).path)
        return os.path.join(self.owner.root, path.lstrip("/"))

    def _listing(self, local: str) -> bytes:
        base = urlsplit(self.path).path.rstrip("/") + "/"
        links = "".join(f'<a href="{quote(base + n)}{"/" if os.path.isdir(os.path.join(local, n)) else ""}">'
                        f"{html.escape(n)}</a>\n" for n in sorted(os.listdir(local)))
        return f"<html><body>\n{links}</body></html>\n".encode()

    def _refuse(self, status: int, head_only: bool) -> None:
        body = b"" if head_only else f"status {status}\n".encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _answer(self, head_only: bool) -> None:
        owner, local = self.owner, self._local()
        owner.requests.append((self.command, self.path, self.headers.get("Range")))
        for pattern, status in owner.faults.status.items():
            if re.search(pattern, self.path):
                return self._refuse(status, head_only)
        if os.path.isdir(local) and owner.faults.listing_status:
            return self._refuse(owner.faults.listing_status, head_only)
        if os.path.isdir(local):
            return self._send(200, self._listing(local), None, head_only, "text/html")
        if not os.path.isfile(local):
            return self._refuse(404, head_only)
        size = os.path.getsize(local)
        start, end = 0, size
        match = _RANGE.match(self.headers.get("Range", "") or "")
        if match and owner.faults.ranged_ok is not None:
            if owner.faults.ranged_ok <= 0:
                return self._refuse(500, head_only)
            owner.faults.ranged_ok -= 1
        ranged = bool(match) and not owner.faults.no_ranges
        if ranged:
            start = int(match.group(1))
            end = min(int(match.group(2)) + 1 if match.group(2) else size, size)
        self._head(206 if ranged else 200, end - start, f"bytes {start}-{end - 1}/{size}" if ranged else None)
        if not head_only:
            with open(local, "rb") as f:
                f.seek(start)
                self._body(f, end - start)

    def _head(self, status: int, length: int, content_range: str | None,
              kind: str = "application/octet-stream") -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(length))
        if not self.owner.faults.no_ranges:
            self.send_header("Accept-Ranges", "bytes")
        if content_range:
            self.send_header("Content-Range", content_range)
        self.end_headers()

    def _send(self, status: int, body: bytes, content_range: str | None, head_only: bool,
              kind: str = "application/octet-stream") -> None:
        self._head(status, len(body), content_range, kind)
        if not head_only:
            self._body(io.BytesIO(body), len(body))

    def _body(self, source, length: int) -> None:
        """Send ``length`` bytes of ``source`` in 64 KiB pieces (token bucket; a drop fault cuts it short)."""
        faults, owner = self.owner.faults, self.owner
        if faults.drops > 0 and length > faults.drop_after:
            faults.drops -= 1
            self.wfile.write(source.read(faults.drop_after))
            owner.count(faults.drop_after)
            self.close_connection = True
            self.connection.shutdown(2)
            return
        left = length
        while left:
            piece = source.read(min(left, 1 << 16))
            if not piece:
                break
            if owner.bucket:
                owner.bucket.take(len(piece))
            self.wfile.write(piece)
            owner.count(len(piece))
            left -= len(piece)

    def do_GET(self):
        self._answer(False)

    def do_HEAD(self):
        self._answer(True)
