"""gs:// failures a user meets before any byte is read, against real servers on 127.0.0.1:
- a server that refuses anonymous callers the way GCS does (401 with GCS's JSON error body; 403 for a
  caller without access): one line naming GOOGLE_APPLICATION_CREDENTIALS and
  `gcloud auth application-default login`, nothing written;
- an unreachable host (a closed port), for gs:// and the other kinds: one line within a few seconds
  naming the host and the variable that set it, not gcsfs's own retries (~50 s).
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from support.cli import run_cli
from support.remote import free_port

REPO = Path(__file__).resolve().parent.parent
URL = "gs://private-bucket/bert/model.ckpt-1000"

# What GCS answers an anonymous caller (401, reason "required") and a caller without access (403).
GCS_ERRORS = {
    401: ("Anonymous caller does not have storage.objects.list access to the Google Cloud Storage bucket. "
          "Permission 'storage.objects.list' denied on resource (or it may not exist).", "required"),
    403: ("reader@project.iam.gserviceaccount.com does not have storage.objects.list access to the Google Cloud "
          "Storage bucket. Permission 'storage.objects.list' denied on resource (or it may not exist).",
          "forbidden"),
}


class RefusingGCS:
    """A JSON-API endpoint on 127.0.0.1 that answers every request with ``status`` and GCS's error body."""

    def __init__(self, status: int):
        message, reason = GCS_ERRORS[status]
        body = json.dumps({"error": {"code": status, "message": message, "errors": [
            {"message": message, "domain": "global", "reason": reason}]}}).encode()
        self.requests: list[str] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _refuse(self):
                owner.requests.append(f"{self.command} {self.path}")
                self.send_response(status)
                self.send_header("Content-Type", "application/json; charset=UTF-8")
                self.send_header("Content-Length", str(len(body)))
                if status == 401:
                    self.send_header("WWW-Authenticate", 'Bearer realm="https://accounts.google.com/"')
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(body)

            do_GET = do_HEAD = do_POST = _refuse

            def log_message(self, *args):
                pass

        class Quiet(ThreadingHTTPServer):
            def handle_error(self, request, client_address):  # a client that hung up is not news
                pass

        self.httpd = Quiet(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.mark.parametrize("status, words", [(401, "no credentials"), (403, "access denied (403)")])
def test_gcs_refusing_anonymous_callers_names_the_credentials_fix(tmp_path, capsys, monkeypatch, status, words):
    server = RefusingGCS(status)
    try:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", server.url)
        start = time.monotonic()
        code, _, err = run_cli(["convert", URL, tmp_path / "out", "--quiet", "--cache-dir", tmp_path / "c"], capsys)
        took = time.monotonic() - start
    finally:
        server.close()
    assert code == 2 and err.count("\n") == 1, err
    assert err.startswith("ckptkit: error: gs://private-bucket/bert: ") and words in err, err
    assert "GOOGLE_APPLICATION_CREDENTIALS" in err and "gcloud auth application-default login" in err
    assert 0 < len(server.requests) <= 8 and took < 10, (took, server.requests)  # refused at once, not retried
    assert not (tmp_path / "out").exists()


UNREACHABLE = {  # kind: (location, the environment variable that names the endpoint, or None for the URL's own)
    "gs": ("gs://private-bucket/bert/model.ckpt-1000", "STORAGE_EMULATOR_HOST"),
    "s3": ("s3://private-bucket/bert/model.ckpt-1000", "AWS_ENDPOINT_URL"),
    "hf": ("hf://me/bert/model.ckpt-1000", "HF_ENDPOINT"),
    "https": ("http://127.0.0.1:{port}/bert/model.ckpt-1000", None),
}


@pytest.mark.parametrize("kind", sorted(UNREACHABLE))
def test_unreachable_host_fails_in_one_line_within_seconds(tmp_path, kind):
    """A closed port (connection refused) through the real CLI in a child process: gcsfs alone retried
    for ~50 s (and ckptkit's own retries on top), the others for several seconds."""
    import os

    port = free_port()
    location, variable = UNREACHABLE[kind]
    location = location.format(port=port)
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "STORAGE_EMULATOR_HOST",
                                                            "AWS_ENDPOINT_URL", "HF_ENDPOINT")}
    if variable:
        env[variable] = f"http://127.0.0.1:{port}"
    if kind == "s3":  # credentials are there: what fails is the connection
        env.update(AWS_ACCESS_KEY_ID="x", AWS_SECRET_ACCESS_KEY="x")
    start = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "ckptkit", "convert", location, str(tmp_path / "out"), "--quiet",
                           "--cache-dir", str(tmp_path / "c")], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=60)
    took = time.monotonic() - start
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr[-3000:]
    assert proc.stderr.startswith(f"ckptkit: error: {location.rsplit('/', 1)[0]}"), proc.stderr
    assert f"cannot connect to 127.0.0.1:{port}" in proc.stderr and (variable or "check the URL") in proc.stderr
    assert took < 8, f"{took:.1f} s"
    assert not (tmp_path / "out").exists()
