"""`ckptkit upload` of a folder of parts (ELECTRA's discriminator and generator) to the fake Hub.

One repo with subfolders and a top-level card, or one repo per part with ``--repo-id ...-{part}``;
either way every card's usage snippet is run against the fake Hub (transformers downloads the
files back from tests/fake_hub.py), and the text the command prints is checked.
"""

from __future__ import annotations

import json

import pytest

from support.cards import ckptkit, tiny_electra
from test_card_snippets import python_block, run_snippet

pytestmark = [pytest.mark.xdist_group("distill"),
              pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")]
PARTS = ("discriminator", "generator")


@pytest.fixture(scope="module")
def electra_once(tmp_path_factory):
    work = tmp_path_factory.mktemp("electra-parts")
    (work / "tf").mkdir()
    tiny_electra(work / "tf")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(work)
        ckptkit("convert", "tf", "out/electra", "--quiet")
    return work


@pytest.fixture
def electra(electra_once, hub, monkeypatch, tmp_path):
    """The converted folder, the working directory there, and huggingface_hub/transformers reading the fake Hub."""
    import transformers.utils.hub as transformers_hub
    from huggingface_hub import constants

    monkeypatch.setattr(transformers_hub, "_hf_api", None)  # transformers keeps one HfApi, made with the endpoint of its day
    monkeypatch.chdir(electra_once)
    monkeypatch.setenv("HF_ENDPOINT", hub.url)
    monkeypatch.setattr(constants, "ENDPOINT", hub.url)
    monkeypatch.setattr(constants, "HUGGINGFACE_CO_URL_TEMPLATE", hub.url + "/{repo_id}/resolve/{revision}/{filename}")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub-cache"))
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    return electra_once / "out" / "electra"


def test_one_repo_with_subfolders_loads_each_part_from_the_hub(electra, hub, capsys):
    ckptkit("upload", "out/electra", "--repo-id", "me/electra")
    printed = capsys.readouterr()
    assert printed.out.strip() == f"{hub.url}/me/electra/commit/{hub.repos['me/electra'].commits[-1].oid}"
    assert printed.err.startswith(f"uploaded {len(hub.files('me/electra'))} files (") and printed.err.strip().endswith(f"to {hub.url}/me/electra")
    files = hub.files("me/electra")
    for part in PARTS:
        assert {f"{part}/config.json", f"{part}/model.safetensors", f"{part}/README.md", f"{part}/ckptkit.json",
                f"{part}/tokenizer.json"} <= set(files)
        assert "working_directory" not in json.loads(files[f"{part}/ckptkit.json"])
    top = files["README.md"].decode()
    assert top.count("```python") == 2
    for part in PARTS:
        assert f'from_pretrained(model_id, subfolder="{part}")' in top
        part_card = files[f"{part}/README.md"].decode()
        printed = run_snippet(python_block(part_card))  # downloads the part from the fake Hub
        assert printed
    for block in top.split("```python\n")[1:]:
        assert run_snippet(block.split("```")[0])
    assert hub.calls(r"^/me/electra/resolve/[^/]+/generator/model.safetensors$", "GET")


def test_one_repo_per_part_with_the_part_placeholder(electra, hub, capsys):
    ckptkit("upload", "out/electra", "--repo-id", "me/electra-{part}")
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "me/electra-discriminator:" and "me/electra-generator:" in out
    for part in PARTS:
        files = hub.files(f"me/electra-{part}")
        assert {"config.json", "model.safetensors", "README.md", "ckptkit.json"} <= set(files)
        card = files["README.md"].decode()
        code = python_block(card)
        assert f'model_id = "me/electra-{part}"' in code and "subfolder" not in code
        assert run_snippet(code)


def test_dry_run_text_for_parts(electra, capsys):
    ckptkit("upload", "out/electra", "--repo-id", "me/electra", "--dry-run")
    out = capsys.readouterr().out
    assert "discriminator/model.safetensors" in out and "generator/tokenizer.json" in out
    assert ("refresh discriminator/README.md, generator/README.md and README.md from ckptkit.json "
            "(usage snippet names the repo, with subfolder=...)") in out
    assert "skip: ckptkit's output-folder marker (local only)" in out
    ckptkit("upload", "out/electra", "--repo-id", "me/electra-{part}", "--dry-run", "--quiet")
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "me/electra-discriminator:" and "me/electra-generator:" in lines
    assert not any("generator/" in line for line in lines)  # each part's files at its repo's root
    ckptkit("upload", "out/electra", "--repo-id", "me/electra-{part}", "--dry-run", "--json")
    docs = json.loads(capsys.readouterr().out)
    assert [d["repo_id"] for d in docs] == ["me/electra-discriminator", "me/electra-generator"]
    assert {f["path"] for f in docs[1]["files"]} >= {"config.json", "model.safetensors", "ckptkit.json"}


def test_part_placeholder_on_a_single_model_is_one_line(electra, capsys):
    with pytest.raises(SystemExit) as exited:
        ckptkit("upload", "out/electra/generator", "--repo-id", "me/x-{part}", "--dry-run")
    err = capsys.readouterr().err
    assert exited.value.code == 2
    assert err.strip() == ("ckptkit: error: --repo-id 'me/x-{part}' has {part}, but the folder holds one model "
                           "(drop {part})")
