"""Every failure of every command ends as one line (issue 12 items 11 and 12): an unexpected exception
is `ckptkit: internal error: ...` (exit 1) and leaves no output folder, `--debug` (anywhere on the line)
shows the traceback, and no message, traceback or log line ever shows a Hub token.

Everything runs in-process through ``ckptkit.cli.main``; the Hub is tests/fake_hub.py on 127.0.0.1.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from conftest import HUB_TOKEN, REPO
from fake_hub import FakeHub
from support.cli import run_cli

TINY_BERT = str(REPO / "examples" / "tiny-bert")
# huggingface_hub's LFS PUT passes `data=` to httpx2; not ours to fix
pytestmark = pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")


run = run_cli


def _boom(*args, **kwargs):
    raise RuntimeError("boom\nsecond line")


INTERNAL = "ckptkit: internal error: RuntimeError: boom second line (rerun with --debug and report it)"


def test_unexpected_exception_is_one_line_and_leaves_no_output(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr("ckptkit.converters.convert.write.execute", _boom)
    code, out, err = run(["convert", TINY_BERT, str(tmp_path / "out")], capsys)
    assert (code, err) == (1, INTERNAL + "\n")
    assert list(tmp_path.iterdir()) == []  # no output folder, no staged .out.tmp-PID left behind


@pytest.mark.parametrize("where", ["first", "after the subcommand", "last"])
def test_debug_anywhere_prints_the_traceback_then_the_line(tmp_path, monkeypatch, capsys, where):
    monkeypatch.setattr("ckptkit.converters.convert.write.execute", _boom)
    argv = ["convert", TINY_BERT, str(tmp_path / "out")]
    argv.insert({"first": 0, "after the subcommand": 1, "last": 3}[where], "--debug")
    code, _, err = run(argv, capsys)
    assert code == 1 and err.startswith("Traceback (most recent call last):")
    assert 'in _boom\n    raise RuntimeError("boom\\nsecond line")' in err
    assert err.splitlines()[-1] == ("ckptkit: internal error: RuntimeError: boom second line "
                                    "(report it with the traceback above)")
    assert list(tmp_path.iterdir()) == []


def test_debug_keeps_the_exit_status_of_user_errors(tmp_path, capsys):
    code, _, err = run(["inspect", str(tmp_path / "missing"), "--debug"], capsys)
    assert code == 2 and "Traceback" in err and "CheckpointNotFoundError" in err
    assert err.splitlines()[-1].startswith(f"ckptkit: error: {tmp_path / 'missing'}: no such file")
    code, _, err = run(["inspect", str(tmp_path / "missing")], capsys)
    assert code == 2 and len(err.splitlines()) == 1


def test_debug_after_a_double_dash_is_an_argument():
    from ckptkit.cli import split_debug

    assert split_debug(["inspect", "--", "--debug"]) == (["inspect", "--", "--debug"], False)


# every command, with its library call failing unexpectedly
COMMANDS = [
    (["inspect", TINY_BERT], "ckptkit.converters.formats.open_checkpoint"),
    (["convert", TINY_BERT, "--dry-run"], "ckptkit.converters.convert.dry_run.prepare_conversion"),
    (["verify", TINY_BERT, "{tmp}/x"], "ckptkit.converters.verify.verify_conversion"),
    (["card", "{tmp}"], "ckptkit.output.card.write_model_card"),
    (["upload", "{tmp}", "--repo-id", "me/x", "--dry-run"], "ckptkit.hub.upload.upload_folder"),
    (["tokenizer", "kobert", "{tmp}/tok"], "ckptkit.tokenizers.export.write_tokenizer_files"),
    (["distill", "init", TINY_BERT, "{tmp}/s", "--layers", "0"], "ckptkit.distill.student.build_student"),
]


@pytest.mark.parametrize("argv, target", COMMANDS, ids=[c[1].rsplit(".", 1)[1] for c in COMMANDS])
def test_every_command_ends_an_unexpected_exception_in_one_line(argv, target, tmp_path, monkeypatch, capsys):
    import importlib

    importlib.import_module(target.rsplit(".", 1)[0])  # else ckptkit.hub's lazy `upload` function hides the module
    monkeypatch.setattr(target, _boom)
    code, _, err = run([a.replace("{tmp}", str(tmp_path)) for a in argv], capsys)
    assert (code, err) == (1, INTERNAL + "\n")


# ---------------------------------------------------------------------------------------------- secrets
@pytest.fixture
def folder(tmp_path) -> Path:
    out = tmp_path / "tiny"
    out.mkdir()
    (out / "config.json").write_text('{"model_type": "bert"}')
    (out / "model.safetensors").write_bytes(b"\0" * 64)
    return out


def _secrets_absent(text: str, token: str) -> None:
    assert token not in text
    assert token.split("_")[-1] not in text  # not even its tail


@pytest.mark.parametrize("debug", [[], ["--debug"]], ids=["plain", "debug"])
def test_upload_never_shows_a_token_the_server_echoes(folder, hub, capsys, debug):
    hub.fail(r"/commit/", 422, message="bad commit", echo_auth=True)
    code, out, err = run(["upload", str(folder), "--repo-id", "me/tiny", "--endpoint", hub.url, *debug], capsys)
    assert code == 2
    assert err.splitlines()[-1].startswith("ckptkit: error: the Hub rejected the upload (422): bad commit; "
                                           "you sent Authorization: Bearer ***")
    assert ("Traceback" in err) == bool(debug)
    _secrets_absent(out + err, HUB_TOKEN)


@pytest.mark.parametrize("debug", [[], ["--debug"]], ids=["plain", "debug"])
def test_convert_push_to_hub_never_shows_the_token(tmp_path, hub, monkeypatch, capsys, debug):
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    hub.fail(r"/preupload/", 400, message="no", echo_auth=True)
    code, out, err = run(["convert", TINY_BERT, str(tmp_path / "out"), "--push-to-hub", "me/tiny-bert", *debug],
                         capsys)
    assert code == 2 and "Bearer ***" in err and ("Traceback" in err) == bool(debug)
    _secrets_absent(out + err, HUB_TOKEN)


@pytest.mark.parametrize("debug", [[], ["--debug"]], ids=["plain", "debug"])
def test_the_stored_login_token_is_redacted(folder, tmp_path, monkeypatch, capsys, debug):
    """No HF_TOKEN: huggingface_hub reads the token `hf auth login` stored; an odd-shaped one is hidden too."""
    from huggingface_hub import constants

    token = "login-token-not-hf-shaped-42"
    token_file = tmp_path / "hf-home" / "token"
    token_file.parent.mkdir()
    token_file.write_text(token)
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HUGGING_FACE_HUB_TOKEN", raising=False)
    monkeypatch.setenv("HF_HOME", str(token_file.parent))
    monkeypatch.setattr(constants, "HF_TOKEN_PATH", str(token_file))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    with FakeHub(token=token, lifetime=30) as hub:
        hub.fail(r"/commit/", 422, message="bad commit", echo_auth=True)
        code, out, err = run(["upload", str(folder), "--repo-id", "me/tiny", "--endpoint", hub.url, *debug], capsys)
    assert code == 2 and "Bearer ***" in err
    assert token not in out + err


def test_log_lines_and_warnings_are_redacted(folder, monkeypatch, capsys, caplog):
    def leaky_upload(*args, **kwargs):
        logging.getLogger("huggingface_hub").warning("retrying with Authorization: Bearer %s", HUB_TOKEN)
        import warnings
        warnings.warn(f"token hf_{'A1' * 10} looks old", UserWarning)
        raise RuntimeError(f"failed with {HUB_TOKEN}")

    monkeypatch.setenv("HF_TOKEN", HUB_TOKEN)
    monkeypatch.setattr("ckptkit.hub.upload.upload_folder", leaky_upload)
    with pytest.warns(UserWarning) as warned:
        code, out, err = run(["upload", str(folder), "--repo-id", "me/tiny", "--debug"], capsys)
    assert code == 1 and err.splitlines()[-1].startswith("ckptkit: internal error: RuntimeError: failed with ***")
    assert [r.getMessage() for r in caplog.records] == ["retrying with Authorization: Bearer ***"]
    import warnings
    shown = warnings.formatwarning(warned[0].message, UserWarning, "x.py", 1)
    assert "hf_***" in shown and "A1A1" not in shown
    _secrets_absent(out + err, HUB_TOKEN)


def test_redact_hides_env_tokens_and_hub_shaped_strings(monkeypatch):
    from ckptkit.errors import redact

    monkeypatch.setenv("HUGGING_FACE_HUB_TOKEN", "legacy-variable-token")
    text = redact("a legacy-variable-token and hf_0123456789abcdefXYZ, but hf_short and hf_hub stay")
    assert text == "a *** and hf_***, but hf_short and hf_hub stay"


def test_a_missing_optional_package_is_a_user_error(tmp_path, monkeypatch, capsys):
    def needs_torch(*args, **kwargs):
        raise ModuleNotFoundError("No module named 'torch'", name="torch")

    monkeypatch.setattr("ckptkit.converters.convert.write.execute", needs_torch)
    code, _, err = run(["convert", TINY_BERT, str(tmp_path / "out")], capsys)
    assert (code, err) == (2, "ckptkit: error: this command needs the Python package 'torch', which is not "
                              "installed (pip install 'ckptkit[full]')\n")
    assert list(tmp_path.iterdir()) == []


_LOGGING_RESOLVER = """
import logging, sys
from ckptkit.converters import source
from ckptkit.errors import CkptkitError
def failing_resolver(location):
    try:
        raise ConnectionError("Cannot connect to host storage.googleapis.com:443")
    except ConnectionError:
        logging.getLogger("gcsfs").exception("_request out of retries on exception")
    raise CkptkitError("transfer failed after 6 tries", path=location)
source.RESOLVERS["gs"] = failing_resolver
from ckptkit.cli import main
main(sys.argv[1:])
"""


def test_remote_libraries_own_tracebacks_are_not_printed(tmp_path):
    """gcsfs logs each failed try with its stack; the user still sees one line (all of it with --debug).
    A subprocess: pytest's log capture would hide what logging's last-resort handler prints."""
    import subprocess
    import sys

    argv = [sys.executable, "-c", _LOGGING_RESOLVER, "convert", "gs://bucket/model.ckpt-1", str(tmp_path / "out")]
    quiet = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    assert quiet.returncode == 2 and quiet.stderr.strip().splitlines() == [
        "ckptkit: error: gs://bucket/model.ckpt-1: transfer failed after 6 tries"], quiet.stderr
    debug = subprocess.run([*argv, "--debug"], capture_output=True, text=True, timeout=120)
    assert debug.returncode == 2 and "Cannot connect to host" in debug.stderr
