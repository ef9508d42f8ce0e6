"""``ckptkit distill init`` for encoder-decoder teachers (BigBird-Pegasus, issue 15): ``--encoder-layers`` and
``--decoder-layers`` choose each stack's layers on their own ("shrink and fine-tune": 16+16 -> 16+4).

Students are checked against the teacher itself: tensor by tensor (every kept layer is the teacher layer it names,
every shared weight the teacher's), and by forward passes of transformers' BigBirdPegasusForConditionalGeneration:
a student keeping every layer gives the teacher's logits, a student with a shrunk decoder gives the teacher's
encoder output and the logits of the teacher run with only the kept decoder layers.
"""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from ckptkit.converters.convert import convert_checkpoint
from ckptkit.distill.student import build_student
from ckptkit.errors import UsageError
from support.bert import bert_tf_variables
from support.cli import run_cli
from support.pegasus import pegasus_config, pegasus_tf_variables, save_pegasus_checkpoint, write_flags

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytestmark = pytest.mark.xdist_group("distill")

LAYERS = 4  # encoder and decoder


@pytest.fixture(scope="module")
def teachers(tmp_path_factory) -> dict[str, str]:
    """A 4+4-layer BigBird-Pegasus TF checkpoint with Adam slots (official names) and its hub folder."""
    root = tmp_path_factory.mktemp("seq2seq")
    config = pegasus_config(num_hidden_layers=LAYERS, num_decoder_layers=LAYERS)
    save_pegasus_checkpoint(str(root / "tf" / "model.ckpt-300"), pegasus_tf_variables(config, seed=11))
    write_flags(str(root / "tf" / "summarization.config"), config)
    convert_checkpoint(str(root / "tf"), str(root / "hub"))
    return {"tf": str(root / "tf"), "hub": str(root / "hub")}


def _tensors(folder) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return load_file(os.path.join(folder, "model.safetensors"))


def _model(folder, *, decoder: list[int] | None = None):
    model = transformers.BigBirdPegasusForConditionalGeneration.from_pretrained(
        folder, attn_implementation="eager").eval()
    if decoder is not None:  # the teacher run with only these decoder layers, in order
        model.model.decoder.layers = torch.nn.ModuleList(model.model.decoder.layers[i] for i in decoder)
    return model


def _forward(model) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(3)
    ids = torch.from_numpy(rng.integers(3, 64, size=(2, 12)))
    mask = torch.ones_like(ids)
    mask[1, 8:] = 0
    decoder_ids = torch.from_numpy(rng.integers(3, 64, size=(2, 6)))
    with torch.no_grad():
        out = model(input_ids=ids, attention_mask=mask, decoder_input_ids=decoder_ids)
    return {"encoder": out.encoder_last_hidden_state.numpy(), "logits": out.logits.numpy()}


def test_keeping_every_layer_reproduces_the_teacher(teachers, tmp_path):
    every = ",".join(map(str, range(LAYERS)))
    build_student(teachers["hub"], str(tmp_path / "s"), encoder_layers=every, decoder_layers=every)
    teacher, student = _tensors(teachers["hub"]), _tensors(tmp_path / "s")
    assert sorted(student) == sorted(teacher) and all(np.array_equal(student[n], teacher[n]) for n in teacher)
    expected, actual = _forward(_model(teachers["hub"])), _forward(_model(tmp_path / "s"))
    for key in expected:
        np.testing.assert_array_equal(actual[key], expected[key], err_msg=key)


def test_a_shrunk_decoder_is_the_teachers_layers_it_names(teachers, tmp_path):
    report = build_student(teachers["hub"], str(tmp_path / "s"), decoder_layers=[0, 3])
    teacher, student = _tensors(teachers["hub"]), _tensors(tmp_path / "s")
    for name, value in student.items():
        source = name.replace("decoder.layers.1.", "decoder.layers.3.")
        np.testing.assert_array_equal(value, teacher[source], err_msg=name)
    kept = {n for n in teacher if ".decoder.layers.1." not in n and ".decoder.layers.2." not in n}
    assert {n.replace("decoder.layers.1.", "decoder.layers.3.") for n in student} == kept
    assert "model.shared.weight" in student and "lm_head.weight" not in student  # tied, re-tied on load
    config = json.loads((tmp_path / "s" / "config.json").read_text())
    assert (config["encoder_layers"], config["decoder_layers"], config["num_hidden_layers"]) == (LAYERS, 2, LAYERS)
    assert report.stacks == {"encoder": [0, 1, 2, 3], "decoder": [0, 3]}
    model = _model(tmp_path / "s")
    assert len(model.model.encoder.layers) == LAYERS and len(model.model.decoder.layers) == 2
    assert model.lm_head.weight.data_ptr() == model.model.shared.weight.data_ptr()
    expected, actual = _forward(_model(teachers["hub"], decoder=[0, 3])), _forward(model)
    np.testing.assert_array_equal(actual["encoder"], _forward(_model(teachers["hub"]))["encoder"])
    for key in expected:
        np.testing.assert_allclose(actual[key], expected[key], atol=1e-6, rtol=0, err_msg=key)


def test_both_stacks_shrunk_from_a_tf_teacher_equal_the_hub_teachers(teachers, tmp_path):
    tf = build_student(teachers["tf"], str(tmp_path / "tf"), encoder_layers="1,3", decoder_layers="2")
    build_student(teachers["hub"], str(tmp_path / "hub"), encoder_layers="1,3", decoder_layers="2")
    a, b = _tensors(tmp_path / "tf"), _tensors(tmp_path / "hub")
    assert sorted(a) == sorted(b) and all(np.array_equal(a[n], b[n]) for n in a)
    assert json.loads((tmp_path / "tf" / "config.json").read_text())["decoder_layers"] == 1
    assert tf.source_dropped["optimizer state"] > 0 and tf.source_dropped["training counter"] == 1
    student = json.loads((tmp_path / "tf" / "student.json").read_text())
    assert student["stacks"] == {"encoder": [1, 3], "decoder": [2]}
    assert student["teacher_stacks"] == {"encoder": LAYERS, "decoder": LAYERS}
    record = json.loads((tmp_path / "tf" / "ckptkit.json").read_text())
    assert record["student"]["arch"]["stacks"] == {"encoder": [1, 3], "decoder": [2]}
    assert record["command"].endswith("--encoder-layers 1,3 --decoder-layers 2 --arch same")
    card = (tmp_path / "tf" / "README.md").read_text()
    assert "is a 2+1-layer student (`BigBirdPegasusForConditionalGeneration`" in card
    assert "initialised from teacher layers encoder 1, 3; decoder 2 (0-based)" in card
    assert "| **Teacher layers taken (0-based)** | encoder: 1, 3 → student encoder layers 0, 1; decoder: 2 → " \
           "student decoder layers 0 |" in card


def test_cli_text_and_json(teachers, tmp_path, capsys):
    code, out, err = run_cli(["distill", "init", teachers["hub"], tmp_path / "s", "--decoder-layers", "0,3",
                              "--no-tensors"], capsys)
    assert code == 0, err
    lines = err.splitlines()
    assert lines[0] == f"student of {teachers['hub']} (bigbird_pegasus, BigBirdPegasusForConditionalGeneration, " \
                       "4+4 layers, hub)"
    assert lines[1] == "  architecture: BigBirdPegasusForConditionalGeneration (--arch same), 4+2 layers " \
                       "(4 encoder, 2 decoder)"
    assert lines[2] == "  encoder layers (4 of 4; student <- teacher, 1-based; 0-based in brackets):"
    at = lines.index("  decoder layers (2 of 4; student <- teacher, 1-based; 0-based in brackets):")
    assert lines[at + 1:at + 3] == ["    1 <- 1 [0]", "    2 <- 4 [3]"]
    assert any(line.startswith("    ") and "teacher decoder layer not kept: model.decoder.layers.1." in line
               for line in lines)
    code, out, _ = run_cli(["distill", "init", teachers["hub"], "--dry-run", "--json", "--decoder-layers", "1"],
                           capsys)
    report = json.loads(out)
    assert report["stacks"] == {"encoder": [0, 1, 2, 3], "decoder": [1]} and report["dry_run"]


@pytest.mark.parametrize("args, words", [
    (["--layers", "0,1"], ["--layers does not apply to an encoder-decoder teacher (bigbird_pegasus, 4+4 layers)",
                           "--encoder-layers and/or --decoder-layers"]),
    (["--num-layers", "2"], ["--num-layers does not apply to an encoder-decoder teacher"]),
    (["--decoder-layers", "0,4"], ["--decoder-layers 0,4: teacher decoder layer 4 is out of range",
                                   "numbered 0..3"]),
    (["--encoder-layers", "3,1"], ["--encoder-layers 3,1: not increasing", "e.g. 1,3"]),
    (["--decoder-layers", "1,1"], ["--decoder-layers 1,1: teacher decoder layer 1 is named twice"]),
    (["--decoder-layers", "a"], ["--decoder-layers a: not a comma-separated list of integers"]),
    (["--decoder-layers", "1", "--layers", "1"], ["not both"]),
    (["--decoder-layers", "1", "--arch", "distilbert"], ["--arch distilbert does not apply to encoder-decoder"]),
])
def test_wrong_layer_requests_are_one_line_errors(teachers, tmp_path, capsys, args, words):
    code, out, err = run_cli(["distill", "init", teachers["hub"], tmp_path / "s", *args], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and err.startswith("ckptkit: error: "), err
    for word in words:
        assert word in err, (word, err)
    assert not (tmp_path / "s").exists()


def test_stack_options_on_an_encoder_teacher_are_refused(tmp_path):
    from ckptkit.converters.formats.tf1 import write_tf_checkpoint

    write_tf_checkpoint(str(tmp_path / "bert" / "model.ckpt-1"), bert_tf_variables(
        vocab_size=40, hidden=16, layers=2, heads=2, intermediate=32, max_positions=16))
    with pytest.raises(UsageError, match=r"--decoder-layers: the teacher \(bert\) is not an encoder-decoder"):
        build_student(str(tmp_path / "bert"), str(tmp_path / "s"), decoder_layers="0")
