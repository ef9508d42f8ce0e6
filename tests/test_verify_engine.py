"""`ckptkit verify` and `convert --verify` with the default engine (ckptkit's NumPy engine over the hub
folder's own weights and config.json): they pass on TF checkpoints of each BERT-like family, text and --json;
they import neither torch nor transformers; a config.json edited after conversion fails although every
tensor is bitwise equal (the engine reads config.json itself, the TF-side reference keeps Google's
constants); a model_type without an engine falls back to transformers, or stops with one line naming
--engine transformers when transformers is not installed."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from conftest import REPO
from support.cards import FAMILIES
from support.cli import run_cli

BERT_LIKE = ("bert", "bigbird", "electra", "albert")
ENGINE_WORDS = "ckptkit's NumPy engine over model.safetensors and config.json, float64"


@pytest.fixture(scope="module")
def converted(tmp_path_factory) -> dict[str, tuple[Path, Path]]:
    """family -> (TF checkpoint folder, hub output folder converted from it without verifying)."""
    from ckptkit.converters.convert import convert_checkpoint

    root = tmp_path_factory.mktemp("engine")
    folders = {}
    for family in BERT_LIKE:
        tf = root / family / "tf"
        tf.mkdir(parents=True)
        FAMILIES[family](tf)
        convert_checkpoint(str(tf), str(root / family / "hf"))
        folders[family] = (tf, root / family / "hf")
    return folders


@pytest.mark.parametrize("family", BERT_LIKE)
def test_verify_passes_with_the_numpy_engine(converted, family, capsys):
    tf, hf = converted[family]
    code, out, err = run_cli(["verify", tf, hf], capsys)
    assert code == 0, out + err
    compared = next(line for line in out.splitlines() if line.startswith("compared: "))
    parts = ("discriminator: ", "generator: ") if family == "electra" else ("",)
    for part in parts:
        assert re.search(rf"{part}[a-z_, ]*last_hidden_state", compared), compared
    assert compared.count(f"({ENGINE_WORDS}) vs a NumPy float64 forward pass over the TF variables") == len(parts)
    assert "verification PASSED" in out
    code, out, err = run_cli(["verify", tf, hf, "--json"], capsys)
    report = json.loads(out)
    assert code == 0 and report["passed"] and report["engine"] == "numpy" and ENGINE_WORDS in report["compared"]
    assert report["outputs"] and all(r["max_abs_diff"] <= 1e-9 for r in report["outputs"])  # float64 on both sides


def test_the_record_names_the_engine(converted, capsys):
    tf, hf = converted["bert"]
    assert run_cli(["verify", tf, hf, "--quiet"], capsys)[0] == 0
    entry = json.loads((hf / "ckptkit.json").read_text())["results"][-1]
    assert entry["kind"] == "verify" and entry["notes"].endswith("; engine: numpy")
    assert ENGINE_WORDS in entry["reference"]


def test_convert_verify_uses_the_numpy_engine(converted, tmp_path, capsys):
    tf, _ = converted["albert"]
    code, _, err = run_cli(["convert", tf, tmp_path / "out", "--verify"], capsys)
    assert code == 0, err
    verification = json.loads((tmp_path / "out" / "ckptkit.json").read_text())["verification"]
    assert verification["passed"] and verification["engine"] == "numpy" and ENGINE_WORDS in verification["compared"]
    line = next(s for s in err.splitlines() if s.startswith("  verified in "))
    assert line.endswith(" s")  # no "includes loading torch and transformers"
    code, _, err = run_cli(["convert", tf, tmp_path / "out2", "--verify", "--verify-engine", "transformers"], capsys)
    assert code == 0, err
    verification = json.loads((tmp_path / "out2" / "ckptkit.json").read_text())["verification"]
    assert verification["engine"] == "transformers" and "(transformers, float32)" in verification["compared"]
    assert "(includes loading torch and transformers)" in err


def _edit_config(folder: Path, **changes) -> None:
    path = folder / "config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}, indent=2))


@pytest.mark.parametrize("change,problem", [({"layer_norm_eps": 1e-3}, None),
                                            ({"tie_word_embeddings": False}, "cls.predictions.decoder.weight")])
def test_a_config_changed_after_conversion_fails(converted, tmp_path, change, problem, capsys):
    """Same tensors (bitwise), other config.json: the NumPy engine computes what transformers would from it."""
    import shutil

    tf, hf = converted["bert"]
    edited = tmp_path / "hf"
    shutil.copytree(hf, edited)
    _edit_config(edited, **change)
    code, out, _ = run_cli(["verify", tf, edited, "--json"], capsys)
    report = json.loads(out)
    assert code == 1 and not report["passed"]
    assert report["tensors"] and all(r["max_abs_diff"] == 0.0 for r in report["tensors"])
    if problem:
        assert f"{problem}: missing from the output (BertForPreTraining needs it)" in report["problems"]
    else:
        assert {r["output"] for r in report["outputs"] if not r["ok"]} >= {"last_hidden_state", "mlm_logits"}
    code, out, _ = run_cli(["verify", tf, edited], capsys)
    assert code == 1 and "verification FAILED" in out


def test_a_model_type_without_engine_falls_back_to_transformers(converted, monkeypatch, capsys):
    from ckptkit.converters import hub_forward

    monkeypatch.delitem(hub_forward.ENGINES, "bert")
    tf, hf = converted["bert"]
    code, out, err = run_cli(["verify", tf, hf], capsys)
    assert code == 0, out + err
    assert ("of BertForPreTraining (transformers, float32; ckptkit's NumPy engine does not compute model_type "
            "'bert') vs a NumPy float64 forward pass") in out
    code, out, _ = run_cli(["verify", tf, hf, "--json"], capsys)
    assert json.loads(out)["engine"] == "transformers"


def test_without_transformers_a_model_type_without_engine_is_one_line(converted, monkeypatch, capsys):
    from ckptkit.converters import hub_forward

    monkeypatch.delitem(hub_forward.ENGINES, "bert")
    monkeypatch.setattr("ckptkit.converters.verify_engine.transformers_available", lambda: False)
    tf, hf = converted["bert"]
    code, out, err = run_cli(["verify", tf, hf], capsys)
    assert code == 2 and out == ""
    assert err.startswith(f"ckptkit: error: {hf}: ckptkit's NumPy engine does not compute model_type 'bert' "
                          "(BertForPreTraining)") and len(err.strip().splitlines()) == 1
    assert "--engine transformers" in err and "pip install 'ckptkit[verify]'" in err
    code, _, err = run_cli(["verify", tf, hf, "--engine", "transformers"], capsys)
    assert code == 2 and "--engine transformers needs torch and transformers" in err


# Runs the CLI in a fresh interpreter that refuses torch and transformers (an install without ckptkit[verify])
# and records every attempt to import them.
REFUSING = textwrap.dedent("""
    import json, sys
    attempts = []
    class Refuse:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("torch", "transformers"):
                attempts.append(name)
                raise ImportError(f"{name} is not installed here")
    sys.meta_path.insert(0, Refuse())
    from ckptkit.cli import main
    try:
        main(sys.argv[1:])
        code = 0
    except SystemExit as e:
        code = e.code
    print(json.dumps({"code": code, "attempts": attempts,
                      "loaded": sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "transformers"))}))
""")


def _fresh(*args) -> dict:
    done = subprocess.run([sys.executable, "-c", REFUSING, *map(str, args)], capture_output=True, text=True,
                          timeout=180, cwd=REPO)
    assert done.returncode == 0, done.stderr
    return {**json.loads(done.stdout.splitlines()[-1]), "out": done.stdout, "err": done.stderr}


def test_verify_and_convert_verify_need_no_torch_or_transformers(converted, tmp_path):
    tf, hf = converted["bert"]
    result = _fresh("verify", tf, hf)
    assert result["code"] == 0 and result["attempts"] == [] and result["loaded"] == [], result
    assert ENGINE_WORDS in result["out"] and "tokenizer: identical ids" in result["out"]
    result = _fresh("convert", tf, tmp_path / "out", "--verify", "--quiet")
    assert result["code"] == 0 and result["attempts"] == [] and result["loaded"] == [], result
    assert json.loads((tmp_path / "out" / "ckptkit.json").read_text())["verification"]["passed"]
