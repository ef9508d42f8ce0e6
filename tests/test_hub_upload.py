"""`ckptkit upload` / upload_folder against tests/fake_hub.py on 127.0.0.1 (never the real Hub).

huggingface_hub reads HF_ENDPOINT, HF_HUB_OFFLINE and HF_HUB_DISABLE_XET at import time, so
in-process tests pass ``endpoint=`` and patch those two constants; CLI tests run a subprocess
with the environment set.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from ckptkit.errors import HubError, UsageError
from ckptkit.output.record import write_record
from ckptkit.hub.upload import upload_folder
from fake_hub import FakeHub

from conftest import HUB_TOKEN as TOKEN  # noqa: E402
RECORD = {
    "kind": "conversion", "command": "ckptkit convert model.ckpt out",
    "model": {"family": "bert", "model_class": "BertForMaskedLM", "pipeline_tag": "fill-mask"},
    "source": {"path": "model.ckpt", "format": "tf", "family": "bert", "global_step": 7},
}
# huggingface_hub's LFS PUT passes `data=` to httpx2; not ours to fix
pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")
KEPT = {"config.json", "model.safetensors", "ckptkit.json", "README.md", "tokenizer.json"}


@pytest.fixture
def folder(tmp_path) -> Path:
    out = tmp_path / "tiny"
    out.mkdir()
    (out / "config.json").write_text('{"model_type": "bert"}')
    (out / "tokenizer.json").write_text('{"version": "1.0"}')
    (out / "model.safetensors").write_bytes(os.urandom(20_000))  # past the fake's LFS threshold
    write_record(out, RECORD)
    (out / ".model.safetensors.tmp.123").write_bytes(b"half written")
    (out / "__pycache__").mkdir()
    (out / "__pycache__" / "x.pyc").write_bytes(b"\0")
    (out / ".cache" / "huggingface").mkdir(parents=True)
    (out / ".cache" / "huggingface" / "upload.lock").write_text("")
    (out / "checkpoint-500").mkdir()  # distill train's resume state stays local
    (out / "checkpoint-500" / "optimizer.pt").write_bytes(b"optimizer state")
    (out / "teacher-cache").mkdir()
    (out / "teacher-cache" / "shard-0.safetensors").write_bytes(b"cached logits")
    return out


def _local_files(folder: Path) -> dict[str, bytes]:
    """What the Hub should hold: the files as they are, but ckptkit.json without local paths."""
    files = {name: (folder / name).read_bytes() for name in KEPT}
    record = json.loads(files["ckptkit.json"])
    assert record.pop("working_directory") == os.getcwd()  # the local record keeps where it was written
    files["ckptkit.json"] = (json.dumps(record, indent=2, ensure_ascii=False) + "\n").encode()
    return files


def test_one_commit_with_exactly_the_folders_files(folder, hub):
    result = upload_folder(folder, repo_id="me/tiny", commit_message="first upload", endpoint=hub.url)
    assert hub.files("me/tiny") == _local_files(folder)  # bytes equal, skipped files absent
    commits = hub.calls(r"/commit/", "POST")
    assert len(commits) == 1 and commits[0].path == "/api/models/me/tiny/commit/main"
    assert commits[0].ndjson()[0] == {"key": "header", "value": {"summary": "first upload", "description": ""}}
    assert hub.repos["me/tiny"].commits[0].summary == "first upload"
    # the weights went through LFS: batch + one PUT of exactly their bytes
    weights = (folder / "model.safetensors").read_bytes()
    puts = hub.calls(r"^/lfs-upload/", "PUT")
    assert [p.body for p in puts] == [weights]
    assert puts[0].path.endswith(hashlib.sha256(weights).hexdigest())
    # nothing skipped reached the server, and every Hub call carried the token
    sent = b"".join(r.body for r in hub.requests)
    assert b"half written" not in sent and b".tmp" not in sent and b"__pycache__" not in sent
    assert all(r.headers.get("authorization") == f"Bearer {TOKEN}" for r in hub.requests if r.method != "PUT")
    assert result.commit_url.endswith(result.commit_oid)
    assert {f.path for f in result.uploaded} == KEPT
    assert {f.path: f.action for f in result.skipped} == {
        ".cache/huggingface/upload.lock": "skip: cache", ".model.safetensors.tmp.123": "skip: temporary file",
        "__pycache__/x.pyc": "skip: cache",
        "checkpoint-500/optimizer.pt": "skip: training checkpoint (distill train --resume state)",
        "teacher-cache/shard-0.safetensors": "skip: cached teacher outputs (distill train --cache-teacher)"}
    # the card was refreshed so that its usage snippet names the repo
    assert b'model_id = "me/tiny"' in hub.files("me/tiny")["README.md"]


def test_private_branch_and_pull_request(folder, hub):
    upload_folder(folder, repo_id="my-org/tiny", private=True, revision="v2", endpoint=hub.url)
    create = hub.calls(r"/api/repos/create")[0].json()
    assert create == {"name": "tiny", "organization": "my-org", "visibility": "private", "type": "model"}
    assert hub.repos["my-org/tiny"].private
    assert hub.calls(r"/branch/v2$", "POST")
    assert set(hub.files("my-org/tiny", "v2")) == KEPT and hub.files("my-org/tiny", "main") == {}

    (folder / "config.json").write_text('{"model_type": "bert", "changed": true}')
    result = upload_folder(folder, repo_id="my-org/tiny", revision="v2", create_pr=True, endpoint=hub.url,
                           commit_message="fix config")
    assert result.pr_url.endswith("/discussions/1") and result.url == result.pr_url
    last = hub.calls(r"/commit/", "POST")[-1]
    assert last.path == "/api/models/my-org/tiny/commit/v2" and last.query == {"create_pr": ["1"]}
    assert hub.repos["my-org/tiny"].pull_requests[0].files == {"config.json": (folder / "config.json").read_bytes()}
    assert hub.files("my-org/tiny", "v2")["config.json"] == b'{"model_type": "bert"}'  # branch untouched


def test_dry_run_needs_no_token_and_sends_nothing(folder, hub, monkeypatch):
    monkeypatch.delenv("HF_TOKEN")
    before = (folder / "README.md").exists()
    result = upload_folder(folder, repo_id="me/tiny", dry_run=True, endpoint=hub.url)
    assert hub.requests == []
    assert (folder / "README.md").exists() == before
    sizes = {f.path: f.size for f in result.files}
    assert sizes["model.safetensors"] == 20_000
    assert {f.path: f.action for f in result.uploaded}["model.safetensors"] == "upload (LFS)"
    assert any("create public repo me/tiny" in step for step in result.steps)


def test_server_error_leaves_nothing_a_retry_cannot_finish(folder, hub):
    hub.fail(r"/commit/", 500, message="internal error", times=1)
    with pytest.raises(HubError, match=r"answered 500 \(server error\); nothing was committed .*run the same command"):
        upload_folder(folder, repo_id="me/tiny", endpoint=hub.url)
    assert hub.files("me/tiny") == {}
    result = upload_folder(folder, repo_id="me/tiny", endpoint=hub.url)
    assert hub.files("me/tiny") == _local_files(folder) and result.commit_oid
    assert len(hub.calls(r"^/lfs-upload/", "PUT")) == 1  # the weights were not sent twice


@pytest.mark.parametrize("setup, repo_id, words", [
    (lambda hub: hub.fail(r"/preupload/", 404, message="Repository not found", error_code="RepoNotFound"),
     "me/tiny", r"repository me/tiny or namespace 'me' not found \(404\) \(check --repo-id"),
    (lambda hub: None, "someone-else/tiny", r"no write access to someone-else/tiny \(403 Forbidden\)"),
    (lambda hub: hub.fail(r"/commit/", 422, message="model.safetensors is larger than 50 GB"),
     "me/tiny", r"the Hub rejected the upload \(422\): model.safetensors is larger than 50 GB"),
])
def test_errors_are_one_line_with_what_to_do(folder, hub, setup, repo_id, words):
    setup(hub)
    with pytest.raises(HubError, match=words) as info:
        upload_folder(folder, repo_id=repo_id, endpoint=hub.url)
    assert "\n" not in str(info.value) and TOKEN not in str(info.value)


def test_bad_options(folder):
    with pytest.raises(UsageError, match="is not NAMESPACE/NAME"):
        upload_folder(folder, repo_id="no-namespace", dry_run=True)
    with pytest.raises(UsageError, match="large-folder upload opens pull requests against 'main' only"):
        upload_folder(folder, repo_id="me/x", revision="v2", create_pr=True, large=True, dry_run=True)


# ----------------------------------------------------------------------------- the CLI, in a subprocess
def _cli(args: list[str], *, endpoint: str, token: str | None, home: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items()
           if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")}
    env.update(HF_ENDPOINT=endpoint, HF_HOME=str(home), HF_HUB_DISABLE_XET="1", HF_HUB_DISABLE_TELEMETRY="1")
    if token is not None:
        env["HF_TOKEN"] = token
    return subprocess.run([sys.executable, "-m", "ckptkit", "upload", *args], capture_output=True, text=True,
                          env=env, timeout=60)


def test_cli_upload_json(folder, tmp_path):
    with FakeHub(token=TOKEN, lifetime=45) as hub:
        out = _cli([str(folder), "--repo-id", "me/tiny", "--commit-message", "via cli", "--json"],
                   endpoint=hub.url, token=TOKEN, home=tmp_path)
        assert out.returncode == 0, out.stderr
        doc = json.loads(out.stdout)
        assert doc["commit_message"] == "via cli" and doc["revision"] == "main"
        assert hub.files("me/tiny") == _local_files(folder)
        assert TOKEN not in out.stdout + out.stderr


def test_cli_401_and_network_failure_exit_2_with_one_line(folder, tmp_path):
    wrong = "hf_wrong_token_abcdef"
    with FakeHub(token=TOKEN, lifetime=45) as hub:
        out = _cli([str(folder), "--repo-id", "me/tiny"], endpoint=hub.url, token=wrong, home=tmp_path)
    assert out.returncode == 2
    assert out.stderr.strip().splitlines()[-1].startswith("ckptkit: error: ")
    assert "rejected the token (401 Unauthorized)" in out.stderr and "HF_TOKEN" in out.stderr
    assert wrong not in out.stdout + out.stderr and "Traceback" not in out.stderr

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{s.getsockname()[1]}"
    out = _cli([str(folder), "--repo-id", "me/tiny", "--no-card-update"], endpoint=closed, token=wrong, home=tmp_path)
    assert out.returncode == 2
    assert f"cannot reach {closed}" in out.stderr and "run the same command again" in out.stderr
    assert wrong not in out.stdout + out.stderr

    out = _cli([str(folder), "--repo-id", "me/tiny"], endpoint=closed, token=None, home=tmp_path)
    assert out.returncode == 2 and "no Hugging Face token found" in out.stderr


def test_cli_dry_run_lists_files_without_token(folder, tmp_path):
    out = _cli([str(folder), "--repo-id", "me/tiny", "--dry-run"], endpoint="http://127.0.0.1:9", token=None,
               home=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "model.safetensors" in out.stdout and "19.5 KiB" in out.stdout and "upload (LFS)" in out.stdout
    assert "skip: temporary file" in out.stdout and "in one commit to branch 'main'" in out.stdout


def test_large_folder_path_uploads_the_same_files(folder, hub):
    (folder / "weird [1].txt").write_text("brackets are not a glob here")
    result = upload_folder(folder, repo_id="me/big", large=True, commit_message="large", endpoint=hub.url)
    assert result.strategy == "large folder"
    assert hub.files("me/big") == {**_local_files(folder), "weird [1].txt": b"brackets are not a glob here"}
    assert hub.repos["me/big"].commits[-1].summary == "large"


def test_convert_push_to_hub_uploads_the_converted_folder(hub, tmp_path, monkeypatch, capsys):
    """`ckptkit convert ... --push-to-hub` chains into the upload: the fake Hub gets the hub folder."""
    from ckptkit.cli import main

    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    out = tmp_path / "tiny-bert"
    main(["convert", str(Path(__file__).parent.parent / "examples" / "tiny-bert"), str(out), "--push-to-hub",
          "me/tiny-bert", "--private", "--json", "--quiet"])
    summary = json.loads(capsys.readouterr().out)
    assert summary["upload"]["repo_id"] == "me/tiny-bert"
    received = hub.files("me/tiny-bert")
    assert received["model.safetensors"] == (out / "model.safetensors").read_bytes()
    assert {"config.json", "tokenizer.json", "ckptkit.json", "README.md"} <= set(received)
    assert hub.repos["me/tiny-bert"].private
    assert b'model_id = "me/tiny-bert"' in received["README.md"]


def test_tf1_output_marker_is_never_uploaded(tmp_path):
    """A TF or two-part output carries ckptkit's local marker file; it stays local."""
    from ckptkit.output.names import MARKER_FILE
    from ckptkit.hub.upload import plan_files

    (tmp_path / MARKER_FILE).write_text("")
    (tmp_path / "model.ckpt.index").write_bytes(b"x")
    actions = {a.path: a.action for a in plan_files(tmp_path)}
    assert actions["model.ckpt.index"] == "upload"
    assert actions[MARKER_FILE].startswith("skip")
