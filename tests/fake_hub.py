"""A small stand-in for the Hugging Face Hub on 127.0.0.1, for tests that must never reach the real one.

It implements what huggingface_hub's HfApi calls to create a repo, a branch and a commit:
``/api/whoami-v2``, ``/api/repos/create``, repo info, ``/branch``, ``/api/validate-yaml``,
``/preupload``, the git-LFS batch endpoint, the LFS ``PUT`` and the NDJSON ``/commit``; for reads, the
tree listing and ``/resolve/`` downloads with ``Range`` (``bytes_served`` counts them). It keeps
repos in memory, records every request, and can be told to fail (``hub.fail(...)``).

It is bounded: it runs in a daemon thread, refuses bodies over ``max_body`` bytes and shuts itself
down after ``lifetime`` seconds even if a test forgets to stop it.

Example:
    >>> with FakeHub(token="hf_x") as hub:  # doctest: +SKIP
    ...     os.environ["HF_ENDPOINT"] = hub.url
    ...     HfApi(endpoint=hub.url, token="hf_x").create_repo("me/tiny")
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable
from urllib.parse import parse_qs, unquote, urlsplit

MAX_BODY = 64 * 2**20


@dataclass
class Recorded:
    """One request as it arrived."""

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def ndjson(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.body.splitlines() if line.strip()]


@dataclass
class Commit:
    """A commit as the fake hub applied it."""

    oid: str
    revision: str
    summary: str
    description: str
    create_pr: bool
    files: dict[str, bytes]


@dataclass
class Repo:
    repo_id: str
    private: bool
    branches: dict[str, dict[str, bytes]] = field(default_factory=lambda: {"main": {}})
    commits: list[Commit] = field(default_factory=list)
    pull_requests: list[Commit] = field(default_factory=list)
    snapshots: dict[str, dict[str, bytes]] = field(default_factory=dict)  # commit oid -> the tree after it


@dataclass
class Failure:
    method: str | None
    path: re.Pattern
    status: int
    body: dict[str, Any]
    headers: dict[str, str]
    times: int | None
    echo_auth: bool = False


class Answer(Exception):
    """Raised by a route to answer with an error status."""

    def __init__(self, status: int, error: str, *, error_code: str | None = None, **extra: Any):
        super().__init__(error)
        self.status, self.error, self.error_code, self.extra = status, error, error_code, extra


@dataclass
class RawFile:
    """A route's answer that is a file's bytes, not JSON (the handler honours ``Range``)."""

    data: bytes
    headers: dict[str, str]


class FakeHub:
    """An in-memory Hub on ``http://127.0.0.1:PORT``; use as a context manager."""

    def __init__(self, *, token: str = "hf_fake_token_0123456789", user: str = "me",
                 namespaces: tuple[str, ...] = ("me", "my-org"), lfs_threshold: int = 4096,
                 lifetime: float = 60.0, max_body: int = MAX_BODY):
        self.token, self.user, self.namespaces = token, user, set(namespaces)
        self.lfs_threshold, self.lifetime, self.max_body = lfs_threshold, lifetime, max_body
        self.requests: list[Recorded] = []
        self.repos: dict[str, Repo] = {}
        self.lfs: dict[str, bytes] = {}
        self.failures: list[Failure] = []
        self.bytes_served = 0  # file bytes sent by the resolve route
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._timer: threading.Timer | None = None

    # ------------------------------------------------------------------ lifecycle
    @property
    def url(self) -> str:
        assert self._server is not None, "start the FakeHub first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "FakeHub":
        hub = self

        class Handler(_Handler):
            fake = hub

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        self._timer = threading.Timer(self.lifetime, self.stop)
        self._timer.daemon = True
        self._timer.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if self._timer is not None:
            self._timer.cancel()
        if server is not None:
            server.shutdown()
            server.server_close()

    def __enter__(self) -> "FakeHub":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ test helpers
    def fail(self, path: str, status: int, *, method: str | None = None, message: str = "injected failure",
             error_code: str | None = None, times: int | None = None, echo_auth: bool = False) -> None:
        """Answer requests whose path matches the regex ``path`` with ``status`` (``times`` times, or always).

        With ``echo_auth`` the answer quotes the request's Authorization header (as a careless server might),
        in the JSON body and in ``X-Error-Message``."""
        headers = {"X-Error-Code": error_code} if error_code else {}
        self.failures.append(Failure(method, re.compile(path), status, {"error": message}, headers, times,
                                     echo_auth))

    def add_repo(self, repo_id: str, *, private: bool = False) -> Repo:
        repo = Repo(repo_id, private)
        self.repos[repo_id] = repo
        return repo

    def calls(self, path_regex: str, method: str | None = None) -> list[Recorded]:
        """The recorded requests whose path matches ``path_regex``."""
        return [r for r in self.requests if re.search(path_regex, r.path) and (method is None or r.method == method)]

    def files(self, repo_id: str, revision: str = "main") -> dict[str, bytes]:
        """The files of ``repo_id`` at the tip of ``revision``."""
        return dict(self.repos[repo_id].branches[revision])

    # ------------------------------------------------------------------ routes
    def _repo(self, repo_id: str) -> Repo:
        if repo_id not in self.repos:
            raise Answer(404, "Repository not found", error_code="RepoNotFound")
        return self.repos[repo_id]

    def _branch(self, repo: Repo, revision: str) -> dict[str, bytes]:
        if revision in repo.snapshots:  # a commit id (snapshot_download pins the revision it resolved)
            return repo.snapshots[revision]
        if revision not in repo.branches:
            raise Answer(404, f"Invalid rev id: {revision}", error_code="RevisionNotFound")
        return repo.branches[revision]

    def whoami(self, req: Recorded, m: dict) -> dict:
        return {"type": "user", "name": self.user, "orgs": [{"name": n} for n in self.namespaces - {self.user}]}

    def create_repo(self, req: Recorded, m: dict) -> dict:
        payload = req.json()
        namespace = payload.get("organization") or self.user
        repo_id = f"{namespace}/{payload['name']}"
        if namespace not in self.namespaces:
            raise Answer(403, f'You don\'t have the rights to create a model under the namespace "{namespace}"')
        if repo_id in self.repos:
            raise Answer(409, "You already created this model repo", url=f"{self.url}/{repo_id}")
        self.add_repo(repo_id, private=payload.get("visibility") == "private" or bool(payload.get("private")))
        return {"url": f"{self.url}/{repo_id}", "name": repo_id}

    def repo_info(self, req: Recorded, m: dict) -> dict:
        repo = self._repo(m["repo"])
        revision = m.get("rev") or "main"
        self._branch(repo, revision)
        sha = next((c.oid for c in reversed(repo.commits) if c.revision == revision), "0" * 40)
        return {"id": repo.repo_id, "modelId": repo.repo_id, "sha": sha, "private": repo.private, "siblings": []}

    def create_branch(self, req: Recorded, m: dict) -> dict:
        repo = self._repo(m["repo"])
        if m["branch"] in repo.branches:
            raise Answer(409, "Reference already exists")
        repo.branches[m["branch"]] = dict(repo.branches["main"])
        return {}

    def validate_yaml(self, req: Recorded, m: dict) -> dict:
        return {"errors": [], "warnings": []}

    def preupload(self, req: Recorded, m: dict) -> dict:
        repo = self._repo(m["repo"])
        existing = self._branch(repo, m["rev"])
        answers = []
        for item in req.json()["files"]:
            mode = "lfs" if item["size"] >= self.lfs_threshold else "regular"
            old = existing.get(item["path"])
            oid = None if old is None else (hashlib.sha256(old).hexdigest() if mode == "lfs" else _git_sha1(old))
            answers.append({"path": item["path"], "uploadMode": mode, "shouldIgnore": False, "oid": oid})
        return {"files": answers, "commitOid": "0" * 40}

    def lfs_batch(self, req: Recorded, m: dict) -> dict:
        self._repo(m["repo"])
        objects = []
        for obj in req.json()["objects"]:
            entry = {"oid": obj["oid"], "size": obj["size"], "authenticated": True}
            if obj["oid"] not in self.lfs:
                entry["actions"] = {"upload": {"href": f"{self.url}/lfs-upload/{obj['oid']}", "header": {}}}
            objects.append(entry)
        return {"transfer": "basic", "objects": objects}

    def lfs_put(self, req: Recorded, m: dict) -> dict:
        if hashlib.sha256(req.body).hexdigest() != m["oid"]:
            raise Answer(400, "sha256 of the body does not match the object id")
        self.lfs[m["oid"]] = req.body
        return {}

    def commit(self, req: Recorded, m: dict) -> dict:
        repo = self._repo(m["repo"])
        revision = m["rev"]
        tree = dict(self._branch(repo, revision))
        lines = req.ndjson()
        header = next(line["value"] for line in lines if line["key"] == "header")
        changed: dict[str, bytes] = {}
        for line in lines:
            key, value = line["key"], line["value"]
            if key == "file":
                changed[value["path"]] = base64.b64decode(value["content"])
            elif key == "lfsFile":
                if value["oid"] not in self.lfs:
                    raise Answer(422, f"LFS object {value['oid']} for '{value['path']}' was never uploaded")
                changed[value["path"]] = self.lfs[value["oid"]]
            elif key in ("deletedFile", "deletedFolder"):
                tree.pop(value["path"], None)
        tree.update(changed)
        create_pr = req.query.get("create_pr") == ["1"]
        commit = Commit(uuid.uuid4().hex + "00000000", revision, header["summary"], header.get("description", ""),
                        create_pr, changed)
        if create_pr:
            repo.pull_requests.append(commit)
            number = len(repo.pull_requests)
            return {"commitUrl": f"{self.url}/{repo.repo_id}/commit/{commit.oid}", "commitOid": commit.oid,
                    "pullRequestUrl": f"{self.url}/{repo.repo_id}/discussions/{number}"}
        repo.branches[revision] = tree
        repo.snapshots[commit.oid] = dict(tree)
        repo.commits.append(commit)
        return {"commitUrl": f"{self.url}/{repo.repo_id}/commit/{commit.oid}", "commitOid": commit.oid,
                "pullRequestUrl": None}

    def tree(self, req: Recorded, m: dict) -> list:
        """The files and folders directly under ``path`` (the Hub's tree listing, one page)."""
        files = self._branch(self._repo(m["repo"]), m["rev"])
        prefix = (m.get("path") or "").strip("/")
        prefix = prefix + "/" if prefix else ""
        entries, folders = [], set()
        for name, data in sorted(files.items()):
            if not name.startswith(prefix):
                continue
            rest = name[len(prefix):]
            if "/" in rest:
                folders.add(prefix + rest.split("/", 1)[0])
            else:
                entries.append({"type": "file", "oid": _git_sha1(data), "size": len(data), "path": name})
        return [{"type": "directory", "oid": "0" * 40, "path": f} for f in sorted(folders)] + entries

    def resolve(self, req: Recorded, m: dict) -> "RawFile":
        """A file's bytes (``Range`` honoured by the handler)."""
        files = self._branch(self._repo(m["repo"]), m["rev"])
        if m["path"] not in files:
            raise Answer(404, "Entry not found", error_code="EntryNotFound")
        data = files[m["path"]]
        return RawFile(data, {"ETag": f'"{_git_sha1(data)}"', "X-Repo-Commit": "0" * 40})

    ROUTES: tuple[tuple[str, re.Pattern, str, bool], ...] = tuple(
        (method, re.compile(pattern), name, needs_auth) for method, pattern, name, needs_auth in (
            ("GET", r"^/api/whoami-v2$", "whoami", True),
            ("POST", r"^/api/repos/create$", "create_repo", True),
            ("GET", r"^/api/models/(?P<repo>[^/]+/[^/]+)(?:/revision/(?P<rev>[^/]+))?$", "repo_info", True),
            ("POST", r"^/api/models/(?P<repo>[^/]+/[^/]+)/branch/(?P<branch>[^/]+)$", "create_branch", True),
            ("POST", r"^/api/validate-yaml$", "validate_yaml", True),
            ("POST", r"^/api/models/(?P<repo>[^/]+/[^/]+)/preupload/(?P<rev>[^/]+)$", "preupload", True),
            ("POST", r"^/(?P<repo>[^/]+/[^/]+)\.git/info/lfs/objects/batch$", "lfs_batch", True),
            ("PUT", r"^/lfs-upload/(?P<oid>[0-9a-f]{64})$", "lfs_put", False),  # a presigned URL: no token
            ("POST", r"^/api/models/(?P<repo>[^/]+/[^/]+)/commit/(?P<rev>[^/]+)$", "commit", True),
            ("GET", r"^/api/models/(?P<repo>[^/]+/[^/]+)/tree/(?P<rev>[^/]+)(?:/(?P<path>.*))?$", "tree", True),
            ("GET", r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<path>.+)$", "resolve", True),
            ("HEAD", r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<rev>[^/]+)/(?P<path>.+)$", "resolve", True),
        ))

    def handle(self, req: Recorded) -> tuple[int, dict[str, Any], dict[str, str]]:
        """(status, JSON body, extra headers) for one request."""
        with self._lock:
            self.requests.append(req)
            for failure in self.failures:
                if failure.times != 0 and failure.path.search(req.path) and failure.method in (None, req.method):
                    if failure.times is not None:
                        failure.times -= 1
                    if failure.echo_auth:
                        said = f"{failure.body['error']}; you sent Authorization: {req.headers.get('authorization')}"
                        return failure.status, {"error": said}, {**failure.headers, "X-Error-Message": said}
                    return failure.status, failure.body, failure.headers
            for method, pattern, name, needs_auth in self.ROUTES:
                match = pattern.match(req.path) if method == req.method else None
                if match is None:
                    continue
                if needs_auth and req.headers.get("authorization") != f"Bearer {self.token}":
                    return 401, {"error": "Invalid credentials in Authorization header"}, \
                        {"X-Error-Message": "Invalid credentials in Authorization header"}
                groups = {k: unquote(v) for k, v in match.groupdict().items() if v is not None}
                try:
                    route: Callable[[Recorded, dict], dict] = getattr(self, name)
                    return 200, route(req, groups), {}
                except Answer as answer:
                    headers = {"X-Error-Code": answer.error_code} if answer.error_code else {}
                    return answer.status, {"error": answer.error, **answer.extra}, headers
            return 404, {"error": f"fake hub has no route for {req.method} {req.path}"}, {}


def _git_sha1(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


class _Handler(BaseHTTPRequestHandler):
    fake: FakeHub
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body in separate writes: no 40 ms delayed-ACK stall

    def log_message(self, format: str, *args: Any) -> None:  # keep test output clean
        pass

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks, total = [], 0
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return b"".join(chunks)
                total += size
                if total > self.fake.max_body:
                    raise ValueError("body too large")
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        if length > self.fake.max_body:
            raise ValueError("body too large")
        return self.rfile.read(length)

    def _serve(self) -> None:
        split = urlsplit(self.path)
        try:
            body = self._read_body()
        except ValueError:
            status, payload, headers = 413, {"error": "body too large for the fake hub"}, {}
            self.close_connection = True
        else:
            req = Recorded(self.command, split.path, parse_qs(split.query),
                           {k.lower(): v for k, v in self.headers.items()}, body)
            status, payload, headers = self.fake.handle(req)
        if isinstance(payload, RawFile):
            return self._send_raw(payload)
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in headers.items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _send_raw(self, raw: RawFile) -> None:
        data, status, extra = raw.data, 200, dict(raw.headers)
        match = re.match(r"bytes=(\d+)-(\d*)$", self.headers.get("Range") or "")
        if match:
            start = int(match.group(1))
            end = min(int(match.group(2)) + 1 if match.group(2) else len(data), len(data))
            data, status = data[start:end], 206
            extra["Content-Range"] = f"bytes {start}-{end - 1}/{len(raw.data)}"
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Accept-Ranges", "bytes")
        for key, value in extra.items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)
            with self.fake._lock:
                self.fake.bytes_served += len(data)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _serve
