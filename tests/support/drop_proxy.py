"""A TCP proxy on 127.0.0.1 in front of a local server (moto, a GCS emulator, the fake Hub) that cuts
connections mid-transfer: the first ``drops`` connections that carry more than ``after`` bytes back to
the client are closed after ``after`` bytes; requests whose first line matches ``deny`` (a regex) are
answered 403 without reaching the server. It counts the bytes it relayed to clients."""

from __future__ import annotations

import re
import socket
import threading

_FORBIDDEN = (b"HTTP/1.1 403 Forbidden\r\nContent-Type: application/xml\r\nContent-Length: 0\r\n"
              b"Connection: close\r\n\r\n")


class DropProxy:
    """Relay ``127.0.0.1:<port>`` to ``upstream`` (host, port); use as a context manager."""

    def __init__(self, upstream: tuple[str, int], *, drops: int = 0, after: int = 4096, deny: str | None = None):
        self.upstream, self.drops, self.after = upstream, drops, after
        self.deny = re.compile(deny.encode()) if deny else None
        self.bytes_relayed = 0
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._closed = False

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}"

    def __enter__(self) -> "DropProxy":
        threading.Thread(target=self._accept, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._closed = True
        self._listener.close()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.upstream)
            threading.Thread(target=self._pump, args=(client, server, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, True), daemon=True).start()

    def _take_drop(self) -> bool:
        with self._lock:
            if self.drops > 0:
                self.drops -= 1
                return True
            return False

    def _pump(self, source: socket.socket, target: socket.socket, to_client: bool) -> None:
        sent, cut = 0, None
        try:
            while True:
                data = source.recv(1 << 16)
                if not data:
                    break
                if not to_client and self.deny is not None and self.deny.search(data.split(b"\r\n", 1)[0]):
                    source.sendall(_FORBIDDEN)
                    break
                if to_client and cut is None and sent + len(data) > self.after:
                    cut = self._take_drop()
                    if cut:
                        target.sendall(data[:self.after - sent])
                        self._count(self.after - sent)
                        break
                target.sendall(data)
                sent += len(data)
                if to_client:
                    self._count(len(data))
        except OSError:
            pass
        for sock in (source, target):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def _count(self, count: int) -> None:
        with self._lock:
            self.bytes_relayed += count
