"""A SavedModel directory as a source of ``inspect``, ``convert`` and ``distill init`` (issue 15).

SavedModels are written in the test by TensorFlow (``tf.saved_model.save``; a TF1 ``saved_model.Builder``),
in every naming ckptkit maps. What ckptkit converts is compared with TensorFlow's own reading of the same
SavedModel (``tf.saved_model.load`` / ``tf.train.load_checkpoint``), tensor by tensor, and the converted
model's outputs with the independent TensorFlow BERT forward pass over those variables.
"""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

from ckptkit.converters.convert import convert_checkpoint
from ckptkit.converters.formats import detect_format, open_checkpoint
from ckptkit.distill.student import build_student
from support.bert import bert_tf_config, bert_tf_variables, tiny_wordpiece_vocab
from support.cli import run_cli
from support.saved_model import save_bert_saved_model, tensorflow_reading
from tests.tf_bert_reference import padded_batch, tf_bert_outputs
from tests.tf_save import tf1_save

tf = pytest.importorskip("tensorflow")
pytestmark = pytest.mark.xdist_group("saved_model")

SHAPE = dict(vocab_size=96, hidden=32, layers=2, heads=4, intermediate=48, max_positions=32)
HEADS = {"names": ("pooler", "mlm", "nsp"), "paths": ("pooler", "mlm", "nsp"), "model_garden": ("pooler",),
         "tf1": ("pooler", "mlm", "nsp")}
CLASS = {"names": "BertForPreTraining", "paths": "BertForPreTraining", "model_garden": "BertModel",
         "tf1": "BertForPreTraining"}
NAMING = {"names": "variable names", "paths": "object paths", "model_garden": "Model Garden BertEncoder names",
          "tf1": "TF1 names"}


def _tf1_builder(directory: str, variables: dict[str, np.ndarray]) -> str:
    """A TF1 SavedModel (tf.compat.v1.saved_model.Builder, as TF-Hub v1 modules were made): name-based variables."""
    graph = tf.Graph()
    with graph.as_default():
        for name, value in variables.items():
            tf.compat.v1.get_variable(name, initializer=tf.constant(value), use_resource=False)
        with tf.compat.v1.Session(graph=graph) as session:
            session.run(tf.compat.v1.global_variables_initializer())
            builder = tf.compat.v1.saved_model.Builder(directory)
            builder.add_meta_graph_and_variables(session, ["serve"])
            builder.save()
    return directory


@pytest.fixture(scope="module")
def saved_models(tmp_path_factory) -> dict[str, tuple[str, dict]]:
    """layout -> (SavedModel directory, the TF1-named variables saved in it). ``names`` carries its vocab as an
    asset and its bert_config.json in the parent folder; ``paths`` and ``tf1`` carry bert_config.json inside;
    ``model_garden`` has no config (inferred; heads from the einsum kernels)."""
    root = tmp_path_factory.mktemp("saved_models")
    out = {}
    for layout, heads in HEADS.items():
        variables = bert_tf_variables(**SHAPE, heads_=heads, seed=5)
        directory = str(root / layout / "saved")
        os.makedirs(os.path.dirname(directory))
        if layout == "tf1":
            _tf1_builder(directory, variables)
        else:
            save_bert_saved_model(directory, variables, layout=layout, heads=SHAPE["heads"],
                                  vocab=tiny_wordpiece_vocab(SHAPE["vocab_size"]) if layout == "names" else None)
        config_folder = os.path.dirname(directory) if layout == "names" else directory
        if layout != "model_garden":
            with open(os.path.join(config_folder, "bert_config.json"), "w") as f:
                json.dump(bert_tf_config(**SHAPE), f)
        out[layout] = (directory, variables)
    return out


def _safetensors(folder) -> dict[str, np.ndarray]:
    from safetensors.numpy import load_file

    return load_file(os.path.join(folder, "model.safetensors"))


def _hf_outputs(folder, class_name: str, ids, types, mask) -> dict[str, np.ndarray]:
    import torch
    import transformers

    model = getattr(transformers, class_name).from_pretrained(folder).eval()
    with torch.no_grad():
        out = model(input_ids=torch.from_numpy(ids), token_type_ids=torch.from_numpy(types),
                    attention_mask=torch.from_numpy(mask), output_hidden_states=True)
    result = {"last_hidden_state": out.hidden_states[-1].numpy()}
    for attr, key in (("prediction_logits", "mlm_logits"), ("seq_relationship_logits", "nsp_logits"),
                      ("pooler_output", "pooler_output")):
        if getattr(out, attr, None) is not None:
            result[key] = getattr(out, attr).numpy()
    return result


def _reading(directory: str, layout: str, variables: dict) -> dict[str, np.ndarray]:
    if layout == "tf1":
        reader = tf.train.load_checkpoint(os.path.join(directory, "variables", "variables"))
        return {name: reader.get_tensor(name) for name in reader.get_variable_to_shape_map()}
    return tensorflow_reading(directory, layout=layout, tf1_names=list(variables))


@pytest.mark.parametrize("layout", sorted(HEADS))
def test_converted_weights_and_outputs_match_tensorflow(saved_models, tmp_path, layout):
    directory, variables = saved_models[layout]
    result = convert_checkpoint(directory, str(tmp_path / "hf"))
    assert result.plan.info["model_class"] == CLASS[layout]
    config = json.loads((tmp_path / "hf" / "config.json").read_text())
    assert config["num_attention_heads"] == SHAPE["heads"] and config["num_hidden_layers"] == SHAPE["layers"]
    # TensorFlow's own reading of the SavedModel, saved under the TF1 names, converted the known way
    reading = _reading(directory, layout, variables)
    assert sorted(reading) == sorted(variables)
    prefix = tf1_save(str(tmp_path / "tf1" / "model.ckpt-1"), reading)
    convert_checkpoint(prefix, str(tmp_path / "ref"), num_heads=SHAPE["heads"])
    ours, ref = _safetensors(tmp_path / "hf"), _safetensors(tmp_path / "ref")
    assert sorted(ours) == sorted(ref)
    for name in ref:
        np.testing.assert_array_equal(ours[name], ref[name], err_msg=name)
    ids, types, mask = padded_batch(SHAPE["vocab_size"])
    expected = tf_bert_outputs(prefix, bert_tf_config(**SHAPE), ids, types, mask)
    actual = _hf_outputs(str(tmp_path / "hf"), CLASS[layout], ids, types, mask)
    compared = sorted(set(expected) & set(actual))
    assert "last_hidden_state" in compared and len(compared) >= 2, compared
    for key in compared:
        np.testing.assert_allclose(actual[key], expected[key], atol=1e-5, rtol=0, err_msg=key)


def test_vocab_asset_and_parent_config_are_found(saved_models, tmp_path):
    directory, _ = saved_models["names"]
    convert_checkpoint(directory, str(tmp_path / "hf"))
    assert (tmp_path / "hf" / "vocab.txt").read_text().split() == tiny_wordpiece_vocab(SHAPE["vocab_size"])
    record = json.loads((tmp_path / "hf" / "ckptkit.json").read_text())
    assert record["source"]["format"] == "tf"


@pytest.mark.parametrize("layout", ["names", "model_garden"])
def test_inspect_text_and_json(saved_models, capsys, layout):
    directory, variables = saved_models[layout]
    code, out, err = run_cli(["inspect", directory], capsys)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0] == f"Checkpoint: {directory}"
    assert lines[1] == f"Format: tf (saved_model, {NAMING[layout]}, 1 shard(s))"
    assert "Family: bert" in lines
    assert f"Model weights: {len(variables)} tensors, {sum(v.size for v in variables.values()):,} parameters" \
        in out
    assert "bert/encoder/layer_1/attention/self/query/kernel" in out and "[32, 32]" in out
    code, out, _ = run_cli(["inspect", directory, "--json"], capsys)
    summary = json.loads(out)
    assert summary["extras"]["kind"] == "saved_model" and summary["extras"]["names"] == NAMING[layout]
    assert summary["files"][0] == os.path.join(directory, "saved_model.pb")


def test_the_pb_file_and_the_variables_folder_name_the_same_source(saved_models):
    directory, variables = saved_models["names"]
    for path in (directory, os.path.join(directory, "saved_model.pb"), os.path.join(directory, "variables")):
        assert detect_format(path) == "saved_model"
        with open_checkpoint(path) as ckpt:
            assert ckpt.path == directory
            assert {n for n, t in ckpt.items() if t.role == "weight"} == set(variables)


def test_convert_cli_text(saved_models, tmp_path, capsys):
    directory, variables = saved_models["paths"]
    code, out, err = run_cli(["convert", directory, tmp_path / "hf"], capsys)
    assert code == 0, err
    lines = err.splitlines()
    assert lines[0] == f"converted tf SavedModel (object paths) -> {tmp_path / 'hf'}"
    assert lines[1] == "  family bert, class BertForPreTraining"
    assert lines[2].startswith(f"  wrote {len(variables)} tensors (")
    assert "  dropped 1 checkpoint metadata" in lines
    assert (tmp_path / "hf" / "model.safetensors").is_file()


def test_distill_init_from_a_saved_model(saved_models, tmp_path, capsys):
    directory, variables = saved_models["names"]
    prefix = tf1_save(str(tmp_path / "tf1" / "model.ckpt-1"), variables)
    with open(tmp_path / "tf1" / "bert_config.json", "w") as f:
        json.dump(bert_tf_config(**SHAPE), f)
    code, out, err = run_cli(["distill", "init", directory, tmp_path / "student", "--layers", "1"], capsys)
    assert code == 0, err
    lines = err.splitlines()
    assert lines[0] == f"student of {directory} (bert, BertForPreTraining, 2 layers, tf)"
    assert "    1 <- 2 [1]" in lines and "     1 source tensors: checkpoint metadata" in lines
    assert "tokenizer: special_tokens_map.json, tokenizer.json, tokenizer_config.json, vocab.txt" in lines
    build_student(prefix, str(tmp_path / "ref"), layers=[1])
    ours, ref = _safetensors(tmp_path / "student"), _safetensors(tmp_path / "ref")
    assert sorted(ours) == sorted(ref) and all(np.array_equal(ours[n], ref[n]) for n in ref)
    np.testing.assert_array_equal(ours["bert.encoder.layer.0.attention.self.query.weight"],
                                  variables["bert/encoder/layer_1/attention/self/query/kernel"].T)
    assert json.loads((tmp_path / "student" / "config.json").read_text())["num_hidden_layers"] == 1


def _module_saved_model(directory, **attributes) -> str:
    root = tf.Module()
    for key, value in attributes.items():
        setattr(root, key, value)
    tf.saved_model.save(root, directory)
    return directory


def _one_line_error(capsys, tmp_path, argv) -> str:
    code, out, err = run_cli(argv, capsys)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("ckptkit: error: "), err
    assert not (tmp_path / "out").exists()
    return lines[0]


def test_unsupported_saved_models_are_one_line_errors(tmp_path, capsys):
    other = _module_saved_model(str(tmp_path / "other"), w=[tf.Variable(np.ones((3, 3), np.float32), name="w0"),
                                                            tf.Variable(np.ones(3, np.float32), name="w1")])
    assets = str(tmp_path / "assets_only")
    (tmp_path / "a.txt").write_text("x\n")
    _module_saved_model(assets, table=tf.saved_model.Asset(str(tmp_path / "a.txt")))
    no_variables = str(tmp_path / "no_variables")
    shutil.copytree(other, no_variables, ignore=shutil.ignore_patterns("variables*"))
    os.makedirs(tmp_path / "bad")
    (tmp_path / "bad" / "saved_model.pb").write_bytes(b"\x0a\xff\xff\xff")
    for command, layers in ((["convert"], []), (["distill", "init"], ["--layers", "0"])):
        line = _one_line_error(capsys, tmp_path, [*command, other, tmp_path / "out", *layers])
        assert other in line and "no BERT-family layout" in line and "'w0'" in line and "Model Garden" in line
        line = _one_line_error(capsys, tmp_path, [*command, assets, tmp_path / "out", *layers])
        assert f"{assets}: this SavedModel holds no variables: an asset-only SavedModel" in line
        line = _one_line_error(capsys, tmp_path, [*command, no_variables, tmp_path / "out", *layers])
        assert f"{no_variables}: this SavedModel holds no variables (no variables/variables.index)" in line
        line = _one_line_error(capsys, tmp_path, [*command, tmp_path / "bad", tmp_path / "out", *layers])
        assert "saved_model.pb: not a SavedModel" in line
    line = _one_line_error(capsys, tmp_path, ["inspect", tmp_path / "bad"])
    assert "not a SavedModel" in line


def test_an_exported_tf1_bigbird_pegasus_saved_model_converts_like_its_checkpoint(tmp_path):
    """bigbird's summarization exports are TF1 SavedModels (Estimator export): variables under the official names."""
    from support.pegasus import pegasus_config, pegasus_tf_variables, write_flags

    config = pegasus_config()
    variables = pegasus_tf_variables(config, seed=2)
    directory = _tf1_builder(str(tmp_path / "export" / "1700000000"), variables)
    write_flags(str(tmp_path / "export" / "summarization.config"), config)
    prefix = tf1_save(str(tmp_path / "tf" / "model.ckpt-1"), variables)
    write_flags(str(tmp_path / "tf" / "summarization.config"), config)
    result = convert_checkpoint(directory, str(tmp_path / "from-saved-model"))
    assert result.plan.info["model_class"] == "BigBirdPegasusForConditionalGeneration"
    assert result.plan.info["source_format"] == "tf SavedModel (TF1 names)"
    convert_checkpoint(prefix, str(tmp_path / "from-checkpoint"))
    ours, ref = _safetensors(tmp_path / "from-saved-model"), _safetensors(tmp_path / "from-checkpoint")
    assert sorted(ours) == sorted(ref) and all(np.array_equal(ours[n], ref[n]) for n in ref)
    assert json.loads((tmp_path / "from-saved-model" / "config.json").read_text()) == \
        json.loads((tmp_path / "from-checkpoint" / "config.json").read_text())
