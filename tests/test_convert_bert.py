"""BERT conversion, proven against an independent TensorFlow forward pass over checkpoints that
TensorFlow itself wrote, and TF reading what we write back."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from ckptkit.converters.convert import convert_checkpoint
from support.bert import bert_tf_config, bert_tf_variables, tiny_wordpiece_vocab, with_adam_slots
from tests.tf_bert_reference import padded_batch, tf_bert_outputs
from tests.tf_save import tf1_restore, tf1_save

SHAPE = dict(vocab_size=96, hidden=32, layers=2, heads=4, intermediate=48, max_positions=32)
HEAD_CASES = {
    "pretraining": (("pooler", "mlm", "nsp"), "BertForPreTraining"),
    "classifier": (("pooler", "classifier"), "BertForSequenceClassification"),
    "squad": (("pooler", "qa"), "BertForQuestionAnswering"),
    "base": (("pooler",), "BertModel"),
}


def make_tf_checkpoint(folder, heads, *, seed=0, config_overrides=None, adam=True, vocab=True):
    variables = bert_tf_variables(**SHAPE, heads_=heads, seed=seed)
    if adam:
        variables = with_adam_slots(variables, global_step=777)
    prefix = tf1_save(os.path.join(folder, "model.ckpt-777"), variables)
    config = {**bert_tf_config(**SHAPE), **(config_overrides or {})}
    with open(os.path.join(folder, "bert_config.json"), "w") as f:
        json.dump(config, f)
    if vocab:
        with open(os.path.join(folder, "vocab.txt"), "w") as f:
            f.write("\n".join(tiny_wordpiece_vocab(SHAPE["vocab_size"])) + "\n")
    return prefix, config


def hf_outputs(folder, class_name, ids, types, mask):
    import torch
    import transformers

    model = getattr(transformers, class_name).from_pretrained(folder).eval()
    with torch.no_grad():
        out = model(input_ids=torch.from_numpy(ids), token_type_ids=torch.from_numpy(types),
                    attention_mask=torch.from_numpy(mask), output_hidden_states=True)
    result = {"last_hidden_state": out.hidden_states[-1].numpy()}
    table = {"prediction_logits": "mlm_logits", "seq_relationship_logits": "nsp_logits",
             "start_logits": "start_logits", "end_logits": "end_logits", "pooler_output": "pooler_output"}
    result.update({key: getattr(out, attr).numpy() for attr, key in table.items() if getattr(out, attr, None)
                   is not None})
    if class_name == "BertForSequenceClassification":
        result["logits"] = out.logits.numpy()
    return result


@pytest.mark.parametrize("case", sorted(HEAD_CASES))
def test_converted_model_matches_tensorflow_forward(tmp_path, case):
    heads, expected_class = HEAD_CASES[case]
    prefix, config = make_tf_checkpoint(tmp_path / "tf", heads)
    result = convert_checkpoint(prefix, str(tmp_path / "hf"))
    assert result.plan.info["model_class"] == expected_class
    hf_config = json.loads((tmp_path / "hf" / "config.json").read_text())
    assert hf_config["hidden_act"] == "gelu_new"  # Google's gelu is the tanh approximation
    ids, types, mask = padded_batch(SHAPE["vocab_size"])
    expected = tf_bert_outputs(prefix, config, ids, types, mask)
    actual = hf_outputs(str(tmp_path / "hf"), expected_class, ids, types, mask)
    compared = sorted(set(expected) & set(actual))
    assert "last_hidden_state" in compared and len(compared) >= 2, compared
    for key in compared:
        np.testing.assert_allclose(actual[key], expected[key], atol=1e-5, rtol=0, err_msg=key)


def test_copying_gelu_verbatim_would_be_wrong(tmp_path):
    """The check above can fail: exact gelu gives a difference far above the 1e-5 tolerance."""
    prefix, config = make_tf_checkpoint(tmp_path / "tf", ("pooler", "mlm", "nsp"))
    ids, types, mask = padded_batch(SHAPE["vocab_size"])
    tanh = tf_bert_outputs(prefix, config, ids, types, mask)["mlm_logits"]
    erf = tf_bert_outputs(prefix, config, ids, types, mask, activation="gelu_erf")["mlm_logits"]
    assert np.max(np.abs(tanh - erf)) > 1e-4


def test_pretraining_checkpoint_drops_optimizer_state_and_reports_it(tmp_path):
    prefix, _ = make_tf_checkpoint(tmp_path / "tf", ("pooler", "mlm", "nsp"))
    result = convert_checkpoint(prefix, str(tmp_path / "hf"))
    reasons = {d.reason for d in result.plan.dropped}
    assert reasons == {"optimizer state", "training counter"}
    assert sum(d.reason == "optimizer state" for d in result.plan.dropped) == 2 * len(result.plan.outputs)
    record = json.loads((tmp_path / "hf" / "ckptkit.json").read_text())
    assert record["source"]["global_step"] == 777


def test_tokenizer_files_and_pad_id(tmp_path):
    from transformers import AutoTokenizer

    prefix, _ = make_tf_checkpoint(tmp_path / "tf", ("pooler", "mlm", "nsp"))
    convert_checkpoint(prefix, str(tmp_path / "hf"))
    tok = AutoTokenizer.from_pretrained(str(tmp_path / "hf"))
    assert tok.is_fast and type(tok).__name__.startswith("BertTokenizer")  # v5: BertTokenizer is the fast class
    assert tok.model_max_length == SHAPE["max_positions"]
    config = json.loads((tmp_path / "hf" / "config.json").read_text())
    assert config["pad_token_id"] == tok.pad_token_id == 0
    assert tok("the model")["input_ids"][0] == tok.cls_token_id


@pytest.mark.parametrize("dtype,tol", [("bfloat16", 0), ("float16", 0)])
def test_dtype_cast_verifies(tmp_path, dtype, tol):
    from ckptkit.converters.verify import verify_conversion

    prefix, _ = make_tf_checkpoint(tmp_path / "tf", ("pooler", "mlm", "nsp"), adam=False)
    convert_checkpoint(prefix, str(tmp_path / "hf"), dtype=dtype)
    config = json.loads((tmp_path / "hf" / "config.json").read_text())
    assert config["dtype"] == dtype
    report = verify_conversion(prefix, str(tmp_path / "hf"))
    assert report.passed, report.to_json()
    assert all(r["dtype"] == dtype for r in report.tensors)


def test_to_tf1_is_restored_by_a_tf1_saver_with_google_names(tmp_path):
    """hf -> tf1: TF restores every variable Google's modeling.py declares, with the original values."""
    prefix, config = make_tf_checkpoint(tmp_path / "tf", ("pooler", "mlm", "nsp"), adam=False)
    convert_checkpoint(prefix, str(tmp_path / "hf"))
    convert_checkpoint(str(tmp_path / "hf"), str(tmp_path / "back"), to="tf1", global_step=777)
    original = bert_tf_variables(**SHAPE, heads_=("pooler", "mlm", "nsp"), seed=0)
    restored = tf1_restore(str(tmp_path / "back" / "model.ckpt"), {n: v.shape for n, v in original.items()},
                           {n: v.dtype for n, v in original.items()})
    for name, value in original.items():
        np.testing.assert_array_equal(restored[name], value, err_msg=name)
    import tensorflow as tf

    reader = tf.train.load_checkpoint(str(tmp_path / "back"))
    assert set(reader.get_variable_to_shape_map()) == set(original) | {"global_step"}
    assert int(reader.get_tensor("global_step")) == 777
    assert json.loads((tmp_path / "back" / "bert_config.json").read_text())["hidden_act"] == "gelu"
    assert (tmp_path / "back" / "vocab.txt").read_text() == (tmp_path / "tf" / "vocab.txt").read_text()


def test_config_inferred_from_shapes_with_heads_warning(tmp_path):
    prefix, _ = make_tf_checkpoint(tmp_path / "tf", ("pooler", "mlm", "nsp"), adam=False)
    os.remove(tmp_path / "tf" / "bert_config.json")
    result = convert_checkpoint(prefix, str(tmp_path / "a"))
    assert any("num_attention_heads" in w for w in result.plan.warnings)
    config = json.loads((tmp_path / "a" / "config.json").read_text())
    assert (config["num_hidden_layers"], config["hidden_size"], config["intermediate_size"]) == (2, 32, 48)
    assert config["num_attention_heads"] == 1  # 32 // 64 -> at least one head
    convert_checkpoint(prefix, str(tmp_path / "b"), num_heads=4)
    assert json.loads((tmp_path / "b" / "config.json").read_text())["num_attention_heads"] == 4


def run_cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "ckptkit", *args], capture_output=True, text=True, cwd=cwd)


def test_config_contradicting_shapes_is_a_one_line_error(tmp_path):
    prefix, _ = make_tf_checkpoint(tmp_path / "tf", ("pooler",), config_overrides={"hidden_size": 64}, adam=False)
    out = run_cli("convert", prefix, str(tmp_path / "hf"))
    assert out.returncode == 2
    assert "hidden_size=64" in out.stderr and "word_embeddings" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and "Traceback" not in out.stderr
    assert not (tmp_path / "hf").exists()


def test_unknown_tensors_fail_unless_allowed(tmp_path):
    variables = bert_tf_variables(**SHAPE, heads_=("pooler",))
    variables["my_custom_head/kernel"] = np.ones((32, 3), np.float32)
    prefix = tf1_save(str(tmp_path / "tf" / "model.ckpt"), variables)
    out = run_cli("convert", prefix, str(tmp_path / "hf"), "--num-heads", "4")
    assert out.returncode == 2 and "my_custom_head/kernel" in out.stderr and "--allow-unused" in out.stderr
    result = convert_checkpoint(prefix, str(tmp_path / "hf"), num_heads=4, allow_unused=True)
    assert any(d.name == "my_custom_head/kernel" for d in result.plan.dropped)


def test_dry_run_json_lists_every_output_and_drop(tmp_path):
    prefix, _ = make_tf_checkpoint(tmp_path / "tf", ("pooler", "mlm", "nsp"))
    out = run_cli("convert", prefix, "--dry-run", "--json")
    assert out.returncode == 0, out.stderr
    plan = json.loads(out.stdout)
    names = {o["name"] for o in plan["outputs"]}
    assert "bert.encoder.layer.1.attention.self.query.weight" in names
    query = next(o for o in plan["outputs"] if o["name"] == "bert.encoder.layer.1.attention.self.query.weight")
    assert query["inputs"] == ["bert/encoder/layer_1/attention/self/query/kernel"]
    assert query["ops"] == ["transpose[1, 0]"]
    assert {d["reason"] for d in plan["dropped"]} == {"optimizer state", "training counter"}
    assert not list(tmp_path.glob("hf*"))


def test_corrupt_source_leaves_no_output_folder(tmp_path):
    prefix, _ = make_tf_checkpoint(tmp_path / "tf", ("pooler",), adam=False)
    data = next((tmp_path / "tf").glob("model.ckpt-777.data-*"))
    raw = bytearray(data.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    data.write_bytes(bytes(raw))
    out = run_cli("convert", prefix, str(tmp_path / "hf"))
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert not (tmp_path / "hf").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".hf")]


def test_sharding_matches_save_pretrained(tmp_path):
    """Shard file names, split and index keys are those transformers writes for the same limit."""
    import transformers

    prefix, _ = make_tf_checkpoint(tmp_path / "tf", ("pooler", "mlm", "nsp"), adam=False)
    convert_checkpoint(prefix, str(tmp_path / "ours"), max_shard_size="20KB")
    model = transformers.BertForPreTraining.from_pretrained(str(tmp_path / "ours"))
    model.save_pretrained(str(tmp_path / "theirs"), max_shard_size="20KB")
    ours = json.loads((tmp_path / "ours" / "model.safetensors.index.json").read_text())
    theirs = json.loads((tmp_path / "theirs" / "model.safetensors.index.json").read_text())
    assert ours["metadata"]["total_size"] == theirs["metadata"]["total_size"]
    assert set(ours["weight_map"]) == set(theirs["weight_map"])
    assert len(set(ours["weight_map"].values())) == len(set(theirs["weight_map"].values())) > 1
    assert all(f.startswith("model-000") for f in ours["weight_map"].values())
    reloaded = transformers.BertForPreTraining.from_pretrained(str(tmp_path / "ours"))
    for (n, a), (_, b) in zip(model.state_dict().items(), reloaded.state_dict().items()):
        assert (a == b).all(), n


def test_pytorch_bin_with_tied_weights_to_safetensors_and_back(tmp_path):
    import torch
    import transformers

    config = transformers.BertConfig(vocab_size=64, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                     intermediate_size=32, max_position_embeddings=16)
    torch.manual_seed(0)
    model = transformers.BertForMaskedLM(config).eval()
    model.save_pretrained(str(tmp_path / "bin"), safe_serialization=False)
    torch.save({**model.state_dict()}, str(tmp_path / "bin" / "pytorch_model.bin"))  # keeps the tied alias
    convert_checkpoint(str(tmp_path / "bin"), str(tmp_path / "st"), to="safetensors")
    convert_checkpoint(str(tmp_path / "st"), str(tmp_path / "bin2"), to="pytorch")
    ids = torch.tensor([[2, 5, 7, 9, 3]])
    reference = model(ids).logits
    for folder in ("st", "bin2"):
        loaded = transformers.BertForMaskedLM.from_pretrained(str(tmp_path / folder)).eval()
        assert torch.equal(loaded(ids).logits, reference), folder
        assert loaded.cls.predictions.decoder.weight.data_ptr() == \
            loaded.bert.embeddings.word_embeddings.weight.data_ptr()
    assert (tmp_path / "st" / "config.json").exists()


def test_bundled_example_converts_and_verifies(tmp_path):
    out = run_cli("convert", "examples/tiny-bert", str(tmp_path / "hf"), "--verify", "--json")
    assert out.returncode == 0, out.stderr
    summary = json.loads(out.stdout)
    assert summary["verification"]["passed"] and summary["verification"]["max_abs_diff"] < 1e-5
    assert summary["model_class"] == "BertForPreTraining"


def test_sharded_pytorch_bin_written_loaded_by_transformers_and_read_back(tmp_path):
    """--to pytorch --max-shard-size writes pytorch_model-0000x-of-0000y.bin + index that transformers
    loads; ckptkit reads that sharded folder back into safetensors."""
    import torch
    import transformers

    config = transformers.BertConfig(vocab_size=64, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                                     intermediate_size=32, max_position_embeddings=16)
    torch.manual_seed(1)
    model = transformers.BertModel(config).eval()
    model.save_pretrained(str(tmp_path / "st"))
    convert_checkpoint(str(tmp_path / "st"), str(tmp_path / "bin"), to="pytorch", max_shard_size="8KB")
    index = json.loads((tmp_path / "bin" / "pytorch_model.bin.index.json").read_text())
    shards = sorted(set(index["weight_map"].values()))
    assert len(shards) > 1 and all(s.startswith("pytorch_model-000") for s in shards)
    convert_checkpoint(str(tmp_path / "bin"), str(tmp_path / "st2"), to="safetensors")
    for folder in ("bin", "st2"):
        loaded = transformers.BertModel.from_pretrained(str(tmp_path / folder)).eval()
        for (name, a), (_, b) in zip(model.state_dict().items(), loaded.state_dict().items()):
            assert torch.equal(a, b), f"{folder}: {name}"
