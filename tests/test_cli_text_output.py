"""The text report of `ckptkit convert` (stderr), line by line, for every family and every --part; the
official ELECTRA pretraining layout (issue 12 items 7 and 17).

Checkpoints are tiny and written once per module; commands run in-process through ``ckptkit.cli.main``.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import pytest

from ckptkit.converters.formats.tf1 import write_tf_checkpoint
from support.bert import tiny_wordpiece_vocab, with_adam_slots
from support.families import bigbird_tf_config, bigbird_tf_variables, electra_hparams, electra_tf_variables
from conftest import REPO
from support.cli import run_cli

ELECTRA = dict(vocab_size=90, embedding=16, hidden=32, layers=2, heads=2, intermediate=64, max_positions=40)
BIGBIRD = dict(vocab_size=90, hidden=32, layers=2, heads=4, intermediate=64, max_positions=64)
TOKENIZER_FILES = {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.txt"}
SECONDS = r"\d+\.\d\d s"


def official_pretrain_hparams(data_dir: str, model_name: str) -> dict:
    """What google-research/electra's configure_pretraining.PretrainingConfig holds (its __dict__ as JSON):
    the model keys plus every training, TPU and path setting, with vocab_file = DATA_DIR/vocab.txt."""
    model = electra_hparams(**ELECTRA, generator_hidden=16)
    model_dir = os.path.join(data_dir, "models", model_name)
    return {"model_name": model_name, "debug": False, "do_train": True, "do_eval": False, "electra_objective": True,
            "electric_objective": False, "gen_weight": 1.0, "disc_weight": 50.0, "mask_prob": 0.15,
            "learning_rate": 5e-4, "lr_decay_power": 1.0, "weight_decay_rate": 0.01, "num_warmup_steps": 10000,
            "iterations_per_loop": 200, "save_checkpoints_steps": 1000, "num_train_steps": 1000000,
            "num_eval_steps": 100, "keep_checkpoint_max": 5, **model, "do_lower_case": True,
            "uniform_generator": False, "two_tower_generator": False, "untied_generator_embeddings": False,
            "untied_generator": True, "temperature": 1.0, "disallow_correct": False, "train_batch_size": 128,
            "eval_batch_size": 128, "use_tpu": False, "num_tpu_cores": 1, "tpu_job_name": None, "tpu_name": None,
            "tpu_zone": None, "gcp_project": None,
            "pretrain_tfrecords": os.path.join(data_dir, "pretrain_tfrecords/pretrain_data.tfrecord*"),
            "vocab_file": os.path.join(data_dir, "vocab.txt"), "model_dir": model_dir,
            "results_txt": os.path.join(model_dir, "results", "unsup_results.txt"),
            "results_pkl": os.path.join(model_dir, "results", "unsup_results.pkl"), "max_predictions_per_seq": 6}


def electra_run(data_dir: Path, *, vocab_beside_checkpoint: bool) -> tuple[Path, Path]:
    """DATA_DIR/models/NAME/model.ckpt-10 as run_pretraining.py writes it; returns (checkpoint dir, config)."""
    folder = data_dir / "models" / "tiny"
    folder.mkdir(parents=True)
    write_tf_checkpoint(str(folder / "model.ckpt-10"),
                        with_adam_slots(electra_tf_variables(**ELECTRA, generator_hidden=16, generator_heads=1)))
    vocab = (folder if vocab_beside_checkpoint else data_dir) / "vocab.txt"
    vocab.write_text("\n".join(tiny_wordpiece_vocab(ELECTRA["vocab_size"])) + "\n")
    config = data_dir / "pretrain_hparams.json"
    config.write_text(json.dumps(official_pretrain_hparams(str(data_dir), "tiny")))
    return folder, config


@pytest.fixture(scope="module")
def sources(tmp_path_factory) -> dict[str, list[str]]:
    """family -> the command-line arguments naming its checkpoint (and config)."""
    root = tmp_path_factory.mktemp("sources")
    electra, config = electra_run(root / "electra", vocab_beside_checkpoint=True)
    bigbird = root / "bigbird"
    bigbird.mkdir()
    write_tf_checkpoint(str(bigbird / "model.ckpt-1000"), with_adam_slots(bigbird_tf_variables(**BIGBIRD)))
    (bigbird / "pretrain.config").write_text(json.dumps(bigbird_tf_config(**BIGBIRD, block_size=4,
                                                                          num_rand_blocks=1)))
    (bigbird / "vocab.txt").write_text("\n".join(tiny_wordpiece_vocab(BIGBIRD["vocab_size"])) + "\n")
    return {"bert": [str(REPO / "examples" / "tiny-bert")], "bigbird": [str(bigbird)],
            "electra": [str(electra), "--config", str(config)]}


run = run_cli


def written(folder: Path) -> list[str]:
    """The files a user sees in ``folder`` (ckptkit's own hidden marker files aside)."""
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))


def tokenizer_line(prefix: str, vocab: int, cls: str = "BertTokenizerFast") -> str:
    return re.escape(f"  {prefix}tokenizer {cls} ({vocab} tokens, pad_token_id 0)")


SINGLE = {  # family -> (class line, dropped lines, tokenizer size)
    "bert": ("family bert, class BertForPreTraining, global_step 20000", ["92 optimizer state", "1 training counter"],
             128),
    "bigbird": ("family bigbird, class BigBirdForPreTraining, global_step 1000",
                ["92 optimizer state", "1 training counter"], 90),
}
ELECTRA_PARTS = {
    "discriminator": ("family electra, class ElectraForPreTraining, global_step 1000", 43,
                      ["160 optimizer state", "1 training counter",
                       "37 generator weights (not converted: --part discriminator)"]),
    "generator": ("family electra, class ElectraForMaskedLM, global_step 1000", 42,
                  ["160 optimizer state", "1 training counter",
                   "38 discriminator weights (not converted: --part generator)"]),
}


def expected_lines(family: str, part: str | None, files: list[str]) -> list[str]:
    """The report's lines as regexes (times vary)."""
    if family in SINGLE:
        model, dropped, vocab = SINGLE[family]
        wrote, tokenizers = "46 tensors \\(0.1 MiB\\)", [tokenizer_line("", vocab)]
    elif part in ("discriminator", "generator"):
        model, tensors, dropped = ELECTRA_PARTS[part]
        wrote, tokenizers = f"{tensors} tensors \\(0.[01] MiB\\)", [tokenizer_line("", 90)]
    else:
        model = ("family electra, parts discriminator/ (ElectraForPreTraining), generator/ (ElectraForMaskedLM), "
                 "global_step 1000")
        wrote, dropped = "85 tensors \\(0.1 MiB\\)", ["160 optimizer state", "1 training counter"]
        tokenizers = [tokenizer_line("discriminator/: ", 90), tokenizer_line("generator/: ", 90)]
    return [r"converted tf -> .*", re.escape(f"  {model}"), f"  wrote {wrote} in {SECONDS}: " +
            re.escape(", ".join(files)), *(re.escape(f"  dropped {d}") for d in dropped), *tokenizers,
            f"  done in {SECONDS}"]


CASES = [("bert", None), ("bert", "both"), ("bigbird", None), ("bigbird", "both"),
         ("electra", None), ("electra", "both"), ("electra", "discriminator"), ("electra", "generator")]


@pytest.mark.parametrize("family, part", CASES, ids=[f"{f}-{p or 'default'}" for f, p in CASES])
def test_convert_text_report_line_by_line(family, part, sources, tmp_path, capsys):
    out = tmp_path / "out"
    code, stdout, err = run(["convert", *sources[family], str(out), *(["--part", part] if part else [])], capsys)
    assert code == 0, err
    assert stdout == ""  # the report goes to stderr; stdout stays clean for pipes
    files = written(out)
    lines = err.rstrip("\n").split("\n")
    patterns = expected_lines(family, part, files)
    assert len(lines) == len(patterns), err
    for line, pattern in zip(lines, patterns):
        assert re.fullmatch(pattern, line), (line, pattern)
    assert lines[0] == f"converted tf -> {out}"
    if part in ("discriminator", "generator"):  # one model: no part folder is claimed, none is written
        other = {"discriminator": "generator", "generator": "discriminator"}[part]
        assert f"{other}/" not in err and "folder" not in err
        assert TOKENIZER_FILES <= set(files) and not any("/" in f for f in files)
    if family != "electra" and part == "both":  # --part names a model of a multi-model checkpoint only
        code, _, err = run(["convert", *sources[family], str(tmp_path / "o2"), "--part", "discriminator"], capsys)
        assert code == 2 and err.count("\n") == 1 and not (tmp_path / "o2").exists()
        assert err.startswith("ckptkit: error: ") and f"this is a {family} checkpoint (drop --part)" in err
    if family == "electra" and part in (None, "both"):
        assert {f.split("/")[0] for f in files} == {"discriminator", "generator"}
        for name in ("discriminator", "generator"):
            assert {f"{name}/{t}" for t in TOKENIZER_FILES} <= set(files)


def test_official_electra_data_dir_layout_finds_the_vocab(tmp_path, capsys):
    """configure_pretraining puts vocab.txt in DATA_DIR and the checkpoints in DATA_DIR/models/NAME: the config's
    vocab_file is used, and both part folders get a complete tokenizer."""
    checkpoint, config = electra_run(tmp_path / "data", vocab_beside_checkpoint=False)
    out = tmp_path / "out"
    code, _, err = run(["convert", str(checkpoint), str(out), "--config", str(config)], capsys)
    assert code == 0, err
    for name in ("discriminator", "generator"):
        assert TOKENIZER_FILES <= {p.name for p in (out / name).iterdir()}
        assert (out / name / "vocab.txt").read_bytes() == (tmp_path / "data" / "vocab.txt").read_bytes()
    assert "warning: no vocab" not in err


class _Report:
    outputs = [{"output": "logits", "max_abs_diff": 3e-6}]  # per-output rows (the record's verify table)

    def summary(self) -> dict:
        return {"tensors_bitwise": 46, "tensors_checked": 46, "max_abs_diff": 3e-6, "passed": True,
                "engine": "transformers"}


def test_wrote_times_the_writing_alone(sources, tmp_path, monkeypatch, capsys):
    """A slow verification (here 0.4 s) is reported on its own line, not inside "wrote ... in N s"."""
    def slow_verify(*args, **kwargs):
        time.sleep(0.4)
        return _Report()

    monkeypatch.setattr("ckptkit.converters.verify.verify_conversion", slow_verify)
    code, _, err = run(["convert", *sources["bert"], str(tmp_path / "out"), "--verify"], capsys)
    assert code == 0, err
    wrote = float(re.search(r"^  wrote .* in (\d+\.\d\d) s: ", err, re.M).group(1))
    verified = float(re.search(r"^  verified in (\d+\.\d\d) s \(includes loading torch and transformers\)$",
                               err, re.M).group(1))
    total = float(re.search(r"^  done in (\d+\.\d\d) s$", err, re.M).group(1))
    assert wrote < 0.3 <= 0.4 <= verified <= total
    assert "  verified: 46/46 tensors bitwise, forward max |diff| 3.00e-06 (PASS)\n" in err


def test_inspect_check_says_what_was_read_and_checked(tmp_path, capsys):
    tiny = REPO / "examples" / "tiny-bert" / "model.ckpt-20000.index"
    code, out, err = run(["inspect", str(tiny), "--check", "--quiet"], capsys)
    assert code == 0 and err == ""
    assert out.splitlines()[-1] == "Checked: read all 139 tensors (301.5 KiB), every CRC32C checksum matches"
    code, out, _ = run(["inspect", str(tiny), "--check", "--json"], capsys)
    assert json.loads(out)["check"] == {"tensors": 139, "bytes": 308768, "checksum": "CRC32C", "passed": True}
    code, out, _ = run(["convert", str(tiny), str(tmp_path / "hf"), "-q"], capsys)
    code, out, _ = run(["inspect", str(tmp_path / "hf"), "--check", "-q"], capsys)
    assert out.splitlines()[-1] == ("Checked: read all 46 tensors (100.5 KiB); this format stores no checksums, "
                                    "every tensor is complete and readable")
    code, out, _ = run(["inspect", str(tiny), "-q"], capsys)
    assert "Checked" not in out
