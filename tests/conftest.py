"""Shared fixtures. Tests make their own models and data, or read ../shared (never the network)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
if str(REPO / "tests") not in sys.path:  # `import support` (the test factories) under any import mode or xdist
    sys.path.insert(0, str(REPO / "tests"))
SHARED = REPO.parent / "shared"
KOBERT_DIR = SHARED / "kobert"
HUB_TOKEN = "hf_fake_token_0123456789"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def kobert_dir() -> Path:
    """The real KoBERT SentencePiece model and vocab.txt from ../shared/kobert."""
    if not (KOBERT_DIR / "vocab.txt").is_file():
        pytest.fail(f"missing test data {KOBERT_DIR}: the checkout must sit next to shared/")
    return KOBERT_DIR


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Under CI (CKPTKIT_STRICT_SKIPS=1) a skipped test or an empty run fails the session."""
    if os.environ.get("CKPTKIT_STRICT_SKIPS") != "1":
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is None or hasattr(session.config, "workerinput"):
        return
    skipped = len(reporter.stats.get("skipped", []))
    passed = len(reporter.stats.get("passed", []))
    if skipped or passed == 0:
        reporter.write_line(f"CKPTKIT_STRICT_SKIPS: {skipped} skipped, {passed} passed -> failing the run",
                            red=True)
        session.exitstatus = 1


@pytest.fixture
def hub(monkeypatch, tmp_path):
    """Our fake Hub on 127.0.0.1 (tests/fake_hub.py), with a token and online mode for this test only."""
    from huggingface_hub import constants

    from fake_hub import FakeHub

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)  # offline mode stays on for every other test
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)  # the fake speaks git-LFS, not Xet
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))  # no stored token from this machine
    monkeypatch.setenv("HF_TOKEN", HUB_TOKEN)
    with FakeHub(token=HUB_TOKEN, lifetime=45) as server:
        yield server
