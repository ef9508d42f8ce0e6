"""Every example line in every `--help` runs (issue 12 item 17), in a fresh working folder per command.

The folder holds what the examples take as the user's own files (``PREREQUISITES``): the bundled
``examples/``, KoBERT's tokenizer files, a converted KoBERT-like model in ``out/kobert`` (a tiny 12-layer
stand-in), a student and two small text files. `ckptkit ...` lines run in-process; `python -c` lines
run their code in-process; after a ``|`` only the ckptkit command runs (the rest is another program, and
its input is checked to be what that program needs); Hub examples go to tests/fake_hub.py. Nothing is
left out; ``ADJUSTED`` lists the one change made to an example before it runs, and why.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import sys
from pathlib import Path

import click
import pytest

from ckptkit.cli import cli, main
from conftest import HUB_TOKEN, KOBERT_DIR, REPO
from fake_hub import FakeHub

pytestmark = [pytest.mark.xdist_group("distill"),  # shares the torch-heavy worker with the distill tests
              pytest.mark.filterwarnings("ignore:Use 'content=<...>':DeprecationWarning")]

PREREQUISITES = {
    "examples": "the repository's examples/ (tiny-bert)",
    "tokenizer_78b3253a26.model, vocab.txt": "KoBERT's tokenizer files, from ../shared/kobert",
    "out/kobert, out/bert-base": "a converted 12-layer model with the KoBERT tokenizer (tiny stand-in)",
    "out/student3, out/distil": "students made from out/kobert with `ckptkit distill init`",
    "out/bigbird-pegasus": "a converted 16+16-layer BigBird-Pegasus (tiny stand-in)",
    "corpus.txt, held_out.txt": "a few lines of text",
    "ratings_train.txt": "a few labelled rows in NSMC's layout (id, document, label)",
}
ADJUSTED = {"--max-steps 20000": ("--max-steps 1", "a real run's length; one step shows the command works")}
CORPUS = "한국어 문장을 토큰으로 나눕니다.\nThe converted model loads with plain transformers.\n" * 4


def help_examples(command: click.Command, path: tuple[str, ...]) -> dict[tuple[str, ...], list[str]]:
    """command path -> the example lines of its --help (continuation lines joined), for it and every subcommand."""
    ctx = click.Context(command, info_name=" ".join(path))
    found, lines, inside = {}, [], False
    for line in command.get_help(ctx).splitlines():
        if re.match(r"^\s*Examples?:$", line):
            inside = True
        elif inside and line.strip():
            lines.append(line.strip())
        elif inside:
            inside = False
    found[path] = [ex.strip() for ex in re.sub(r"\\\n\s*", " ", "\n".join(lines)).splitlines()]
    if isinstance(command, click.Group):
        for name in command.list_commands(ctx):
            found.update(help_examples(command.get_command(ctx, name), (*path, name)))
    return found


EXAMPLES = help_examples(cli, ("ckptkit",))


def test_every_command_has_examples():
    assert all(EXAMPLES.values()), [p for p, ex in EXAMPLES.items() if not ex]
    assert sum(len(ex) for ex in EXAMPLES.values()) >= 20


def _tiny_tf_bert(folder: Path) -> None:
    from ckptkit.converters.formats.tf1 import write_tf_checkpoint
    from support.bert import bert_tf_config, bert_tf_variables

    shape = dict(vocab_size=8002, hidden=8, layers=12, heads=2, intermediate=16, max_positions=128)
    folder.mkdir(parents=True)
    write_tf_checkpoint(str(folder / "model.ckpt-1"), sorted(bert_tf_variables(**shape, seed=1).items()))
    (folder / "bert_config.json").write_text(json.dumps(bert_tf_config(**shape)))


def _tiny_tf_bigbird_pegasus(folder: Path) -> None:
    from ckptkit.converters.formats.tf1 import write_tf_checkpoint
    from support.pegasus import pegasus_config, pegasus_tf_variables, write_flags

    config = pegasus_config(vocab_size=16, hidden_size=8, num_hidden_layers=16, num_attention_heads=2,
                            intermediate_size=8, max_position_embeddings=16, max_encoder_length=16,
                            max_decoder_length=8)
    folder.mkdir(parents=True)
    write_tf_checkpoint(str(folder / "model.ckpt-1"), sorted(pegasus_tf_variables(config).items()))
    write_flags(str(folder / "summarization.config"), config)


@pytest.fixture(autouse=True)
def _transformers_log_stream():
    """transformers' log handler keeps the sys.stderr of the moment it was made, which may be an earlier test's
    capsys stream, closed since ("--- Logging error ---"): remake it on the session's stream before each test."""
    hf_logging = sys.modules.get("transformers.utils.logging")
    if hf_logging is not None:
        hf_logging._reset_library_root_logger()
        hf_logging._configure_library_root_logger()
    yield


@pytest.fixture(scope="module")
def prerequisites(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("help-prerequisites")
    for name in ("tokenizer_78b3253a26.model", "vocab.txt"):
        shutil.copyfile(KOBERT_DIR / name, root / name)
    (root / "corpus.txt").write_text(CORPUS, encoding="utf-8")
    (root / "held_out.txt").write_text(CORPUS, encoding="utf-8")
    (root / "ratings_train.txt").write_text("id\tdocument\tlabel\n" + "".join(
        f"{i}\t{line}\t{i % 2}\n" for i, line in enumerate(CORPUS.splitlines() * 2)), encoding="utf-8")
    _tiny_tf_bert(root / "tf")
    kobert = root / "out" / "kobert"
    for argv in (["convert", str(root / "tf"), str(kobert), "--spm", str(root / "tokenizer_78b3253a26.model"),
                  "--vocab", str(root / "vocab.txt"), "-q"],
                 ["distill", "init", str(kobert), str(root / "out" / "student3"), "--num-layers", "3", "-q"],
                 ["distill", "init", str(kobert), str(root / "out" / "distil"), "--layers", "0", "-q"]):
        main(argv)
    shutil.copytree(kobert, root / "out" / "bert-base")
    shutil.rmtree(root / "tf")
    _tiny_tf_bigbird_pegasus(root / "tf-pegasus")
    main(["convert", str(root / "tf-pegasus"), str(root / "out" / "bigbird-pegasus"), "-q"])
    shutil.rmtree(root / "tf-pegasus")
    return root


@pytest.fixture
def workdir(prerequisites, tmp_path, monkeypatch) -> Path:
    work = tmp_path / "work"
    shutil.copytree(prerequisites, work)
    os.symlink(REPO / "examples", work / "examples")
    monkeypatch.chdir(work)
    return work


@pytest.fixture
def fake_hub_env(monkeypatch, tmp_path):
    """The upload examples' Hub: my-user with my-org, and my-org/kobert already holding a branch v2."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_DISABLE_XET", True)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.setenv("HF_TOKEN", HUB_TOKEN)
    with FakeHub(token=HUB_TOKEN, user="my-user", namespaces=("my-user", "my-org"), lifetime=45) as hub:
        hub.add_repo("my-org/kobert").branches["v2"] = {}
        monkeypatch.setenv("HF_ENDPOINT", hub.url)
        yield hub


def _adjust(example: str) -> str:
    for old, (new, _) in ADJUSTED.items():
        example = example.replace(old, new)
    return example


def _run_ckptkit(argv: list[str], capsys) -> str:
    try:
        main(argv)
    except SystemExit as exited:
        assert exited.code in (0, None), capsys.readouterr().err
    captured = capsys.readouterr()
    assert "error" not in captured.err.lower(), captured.err
    return captured.out


def run_example(example: str, capsys) -> None:
    command, _, piped_into = _adjust(example).partition(" | ")
    words = shlex.split(command)
    if words[0] == "python":
        assert words[1] == "-c"
        exec(compile(words[2], "<help example>", "exec"), {})
        return
    assert words[0] == "ckptkit", example
    out = _run_ckptkit(words[1:], capsys)
    if piped_into.startswith("jq "):
        document = json.loads(out)  # jq gets one JSON document with what its filter reads
        assert all("role" in t and "name" in t for t in document["tensors"])


@pytest.mark.parametrize("path", list(EXAMPLES), ids=[" ".join(p) for p in EXAMPLES])
def test_help_examples_run(path, workdir, fake_hub_env, capsys):
    for example in EXAMPLES[path]:
        run_example(example, capsys)
    if path == ("ckptkit", "upload"):
        assert set(fake_hub_env.files("my-user/kobert")) >= {"config.json", "model.safetensors", "README.md"}
        assert fake_hub_env.repos["my-user/kobert"].private and fake_hub_env.repos["my-org/kobert"].pull_requests
