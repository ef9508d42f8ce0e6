"""Real links only: every http(s) address in the package and README.md is one that exists, or a placeholder.

ckptkit itself is named, not linked: a package called ``ckptkit`` exists on PyPI, but nothing ties it
to this project, and the project has no public repository of its own yet, so any link would point
somewhere we do not control (the card once linked github.com/ckptkit/ckptkit, which does not exist).
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from ckptkit.output.card import render_model_card
from ckptkit.output.record import write_record

REPO = Path(__file__).resolve().parent.parent
URL = re.compile(r"https?://[^\s\"'<>()`\]\\]+")

# addresses that exist (checked by hand when added), each with where it is used
REAL = {
    "https://huggingface.co": "the Hub's endpoint (huggingface_hub's default)",
    "https://storage.googleapis.com": "Google Cloud Storage's endpoint (gs:// reads)",
    "https://s3.amazonaws.com": "Amazon S3's endpoint (s3:// reads)",
}
REAL_PREFIXES = (
    "https://huggingface.co/docs/",  # the Hub's documentation
    "https://github.com/google-research/",  # the official TF code of BERT, ELECTRA, BigBird, Pegasus
    "https://github.com/huggingface/",  # transformers, huggingface_hub, safetensors
)
# not addresses at all: local test servers, the docs' own placeholders, a result's shape in a docstring
PLACEHOLDER_HOSTS = {"127.0.0.1", "localhost", "host", "{host}", "…", "example.com"}
EXAMPLE_NAMESPACES = ("me", "my-user", "my-org")  # the user's own repo in examples: huggingface.co/me/...


def _allowed(url: str) -> bool:
    url = url.rstrip(".,;:")
    if url in REAL or url.startswith(REAL_PREFIXES):
        return True
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2].split(":")[0]
    if host in PLACEHOLDER_HOSTS or host.endswith(".example") or re.fullmatch(r"\{\w+\}", host):  # {host}: a format field
        return True
    return host == "huggingface.co" and parts.path.split("/")[1:2] in ([n] for n in EXAMPLE_NAMESPACES)


def _sources() -> list[Path]:
    files = [p for p in (REPO / "ckptkit").rglob("*") if p.is_file() and p.suffix in (".py", ".json", ".md", ".txt")]
    return files + [REPO / "README.md"]


def test_every_address_in_the_package_and_readme_is_real_or_a_placeholder():
    found = {(path.relative_to(REPO).as_posix(), url) for path in _sources()
             for url in URL.findall(path.read_text(encoding="utf-8", errors="replace"))}
    assert found, "the scan found no address at all: the pattern is broken"
    assert [f"{where}: {url}" for where, url in sorted(found) if not _allowed(url)] == []


@pytest.mark.parametrize("url, ok", [
    ("https://github.com/ckptkit/ckptkit", False),  # invented: the card linked it once
    ("https://pypi.org/project/ckptkit/", False),  # someone's package of that name, not ours
    ("https://huggingface.co/docs/hub/model-cards", True),
    ("https://huggingface.co/google-bert/bert-base-uncased", False),  # a real repo, but not on the list
    ("http://127.0.0.1:8000/x", True),
])
def test_the_allow_list_itself(url, ok):
    assert _allowed(url) is ok


def test_cards_of_every_kind_link_nowhere_invented(tmp_path):
    record = {"kind": "conversion", "command": "ckptkit convert m.ckpt out",
              "model": {"family": "bert", "model_class": "BertForMaskedLM"},
              "source": {"path": "m.ckpt", "format": "tf", "family": "bert"}}
    for kind in ("conversion", "student", "distilled"):
        folder = tmp_path / kind
        folder.mkdir()
        write_record(folder, {**record, "kind": kind, "student": {"teacher": "t", "layers": [0]}})
        text = render_model_card(folder, repo_id="me/x")
        assert "ckptkit" in text
        assert [u for u in URL.findall(text) if not _allowed(u)] == []
