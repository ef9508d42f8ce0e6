"""Start-up (#18 item 4): `ckptkit --help` lists the commands without importing them, and the commands that
need no ML framework (inspect, TF <-> safetensors, tokenizer export) import none: checked on sys.modules
after running the real CLI in a fresh process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import click
import pytest

from ckptkit.cli import COMMANDS, SUMMARIES, cli, load_command
from conftest import KOBERT_DIR, REPO

TINY = REPO / "examples" / "tiny-bert"
FRAMEWORKS = ("torch", "transformers", "tensorflow")

RUN_THEN_LIST = textwrap.dedent("""
    import json, sys
    from ckptkit.cli import main
    try:
        main(sys.argv[1:])
    except SystemExit as e:
        code = e.code
    else:
        code = 0
    print(json.dumps({"code": code, "modules": sorted(sys.modules)}))
""")


def run_cli_output(*args: str) -> tuple[int, set[str], str, str]:
    """The real CLI in a fresh process: exit code, every module it imported, its stdout and stderr."""
    done = subprocess.run([sys.executable, "-c", RUN_THEN_LIST, *map(str, args)], capture_output=True, text=True,
                          timeout=120, cwd=REPO)
    assert done.returncode == 0, done.stderr
    *out, last = done.stdout.splitlines(keepends=True)
    result = json.loads(last)
    return result["code"], set(result["modules"]), "".join(out), done.stderr


def run_cli(*args: str) -> tuple[int, set[str]]:
    code, modules, _, _ = run_cli_output(*args)
    return code, modules


def frameworks(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if m.split(".")[0] in FRAMEWORKS)


def test_help_imports_no_command():
    code, modules = run_cli("--help")
    assert code == 0
    assert sorted(m for m in modules if m.startswith("ckptkit.cli.")) == []  # before #18: all seven commands
    assert frameworks(modules) == [] and "numpy" not in modules


@pytest.mark.parametrize("width", [40, 60, 80, 120])
def test_the_command_list_is_what_click_would_print(width):
    """SUMMARIES shortened as click shortens each command's own help, at every terminal width."""
    assert set(SUMMARIES) == set(COMMANDS)
    limit = width - 6 - max(len(name) for name in COMMANDS)
    for name, spec in COMMANDS.items():
        assert click.Command(name, help=SUMMARIES[name]).get_short_help_str(limit) == \
            load_command(spec).get_short_help_str(limit), name
    lazy = click.HelpFormatter(width=width)
    cli.format_commands(click.Context(cli), lazy)
    eager = click.HelpFormatter(width=width)
    click.Group.format_commands(cli, click.Context(cli), eager)
    assert lazy.getvalue() == eager.getvalue()


@pytest.fixture(scope="module")
def hub_folder(tmp_path_factory) -> str:
    out = tmp_path_factory.mktemp("startup") / "hf"
    assert run_cli("convert", TINY, out, "-q")[0] == 0
    return str(out)


@pytest.mark.parametrize("command", ["inspect", "tf-to-safetensors", "safetensors-to-tf1", "tokenizer-kobert"])
def test_commands_without_a_model_import_no_framework(command, hub_folder, tmp_path):
    spm = next(p for p in os.listdir(KOBERT_DIR) if p.endswith(".model"))
    args = {"inspect": ["inspect", TINY],
            "tf-to-safetensors": ["convert", TINY, tmp_path / "out", "-q"],
            "safetensors-to-tf1": ["convert", hub_folder, tmp_path / "out", "--to", "tf1", "-q"],
            "tokenizer-kobert": ["tokenizer", "kobert", tmp_path / "out", "--spm", KOBERT_DIR / spm,
                                 "--vocab", KOBERT_DIR / "vocab.txt"]}[command]
    code, modules = run_cli(*args)
    assert code == 0
    assert frameworks(modules) == []


@pytest.mark.parametrize("preset", [None, "2"])
def test_the_command_asks_openblas_for_one_thread_unless_the_user_chose(preset):
    """NumPy's OpenBLAS busy-waits one thread per core from import on: the command asks for one thread before
    NumPy is imported (numpy in a fresh process reads the variable then), and a user's own value stays."""
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_NUM_THREADS"}
    if preset:
        env["OPENBLAS_NUM_THREADS"] = preset
    code = "import os, sys, ckptkit.cli; print(os.environ.get('OPENBLAS_NUM_THREADS'), 'numpy' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, cwd=REPO, timeout=60)
    assert done.stdout.split() == [preset or "1", "False"], done.stderr


def test_a_single_file_conversion_does_not_import_the_hubs_shard_splitter(tmp_path):
    """huggingface_hub's splitter (its serialization package, ~10 ms) is only needed when --max-shard-size cuts
    the output into several files."""
    code, modules = run_cli("convert", TINY, tmp_path / "out", "-q")
    assert code == 0 and "huggingface_hub.serialization" not in modules
    code, modules = run_cli("convert", TINY, tmp_path / "sharded", "-q", "--max-shard-size", "100KB")
    assert code == 0 and "huggingface_hub.serialization" in modules
    assert len([p for p in os.listdir(tmp_path / "sharded") if p.endswith(".safetensors")]) > 1


LOG_AFTER_START = textwrap.dedent("""
    import sys
    import click
    from ckptkit import cli

    @click.command()
    def leaky():
        import logging  # a library bringing logging in only once a command runs
        logging.getLogger("some.library").warning("using token %s", "hf_" + "Z9" * 12)
        logging.getLogger("gcsfs").error("gcsfs retry noise")
        try:
            raise RuntimeError("hf_" + "Y8" * 12)
        except RuntimeError:
            logging.getLogger("some.library").exception("failed")

    cli.cli.add_command(leaky)
    print("logging" in sys.modules, file=sys.stderr)
    cli.main(sys.argv[1:])
""")


def test_logging_is_imported_only_when_something_needs_it_and_then_redacted():
    """`inspect` never imports logging (a third of the gap to its start-up target); when a library imports it
    later, its records are redacted and the remote libraries' are quiet, as when it was imported up front."""
    code, modules = run_cli("inspect", TINY)
    assert code == 0 and "logging" not in modules
    done = subprocess.run([sys.executable, "-c", LOG_AFTER_START, "leaky"], capture_output=True, text=True,
                          timeout=60, cwd=REPO)
    lines = done.stderr.splitlines()
    assert lines[0] == "False" and done.returncode == 0, done.stderr
    assert "using token hf_***" in done.stderr and "Z9Z9" not in done.stderr
    assert "RuntimeError: hf_***" in done.stderr and "Y8Y8" not in done.stderr
    assert "gcsfs retry noise" not in done.stderr


CORE_INSTALL = textwrap.dedent("""
    import sys

    class NotInstalled:  # the core install: no tokenizer libraries, no torch, no transformers
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("tokenizers", "sentencepiece", "transformers", "torch"):
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)

    sys.meta_path.insert(0, NotInstalled())
    from ckptkit.cli import main
    main(sys.argv[1:])
""")


def test_a_core_install_says_which_package_the_tokenizer_needs(tmp_path):
    """Without the verify extra, convert writes the weights and verify passes on them, and both say the
    tokenizer needs a package to install instead of blaming the vocab file."""
    out = tmp_path / "out"
    done = subprocess.run([sys.executable, "-c", CORE_INSTALL, "convert", TINY, out, "--verify"], capture_output=True,
                          text=True, timeout=120, cwd=REPO)
    assert done.returncode == 0, done.stderr
    text = done.stdout + done.stderr
    assert "the Python package 'tokenizers' is not installed" in text and "pip install 'ckptkit[verify]'" in text
    assert "fix the vocab file" not in text
    assert (out / "model.safetensors").is_file() and not (out / "tokenizer.json").exists()


def test_a_local_run_imports_nothing_remote_and_the_option_defaults_are_the_settings():
    """The remote options skip their settings module when left at its defaults (which they must equal)."""
    from ckptkit.cli.remote_options import DEFAULTS
    from ckptkit.remote.settings import RemoteSettings

    code, modules = run_cli("inspect", TINY)
    assert code == 0 and not [m for m in modules if m.startswith("ckptkit.remote")]
    assert DEFAULTS == vars(RemoteSettings())
