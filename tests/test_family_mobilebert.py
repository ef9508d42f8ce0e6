"""MobileBERT: checkpoints written by TensorFlow under the official names (google-research ``mobilebert/``) ->
hub folders whose transformers outputs equal the official math, and back to exactly the official names.

Compared on rows without padding: the official code scores padded keys ``scores*mask - 6*(1-mask)``,
transformers adds a large negative number, so a padded row differs by design (asserted below too).
``layer_norm`` models get weights of a realistic scale: transformers' MobileBERT hard-codes epsilon 1e-5 in
the embeddings' and each layer's output LayerNorm (the official code: 1e-12), a relative difference of about
5e-6 / variance of the normalised values, below 1e-5 once that variance is well above 1.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from ckptkit.converters.convert import convert_checkpoint
from ckptkit.converters.families import detect_family
from ckptkit.converters.reference import fixed_inputs
from ckptkit.converters.reference_mobilebert import mobilebert_reference_forward
from ckptkit.converters.verify import verify_conversion
from ckptkit.errors import ConfigError
from support.bert import with_adam_slots
from support.cli import run_cli
from support.mobilebert import mobilebert_config, mobilebert_tf_variables
from tf_save import assert_tensorflow_reads, tf1_restore, tf1_save

# (name, config overrides): every structural switch of the official code, on and off
CASES = {
    "released": {},  # no_norm, trigram, key/query-shared bottleneck, FFNs, pooler: as uncased_L-24_H-128_B-512_A-4_F-4
    "plain": dict(normalization_type="layer_norm", use_bottleneck=False, trigram_input=False,
                  num_feedforward_networks=1, classifier_activation=False, hidden_act="gelu"),
    "bottleneck-attention": dict(normalization_type="layer_norm", use_bottleneck_attention=True,
                                 num_feedforward_networks=2, classifier_activation=False),
}


def _variables(config: dict) -> dict[str, np.ndarray]:
    """The factory's variables; for ``layer_norm`` models the values each LayerNorm normalises get a realistic
    spread (embedding tables x8, the biases added before a norm x40) so epsilon does not matter (docstring)."""
    variables = mobilebert_tf_variables(config)
    if config["normalization_type"] != "layer_norm":
        return variables
    scale = {n: 8.0 if n.endswith("_embeddings") else 40.0 if n.endswith("dense/bias") and "output/" in n else 1.0
             for n in variables}
    return {n: v * np.float32(scale[n]) for n, v in variables.items()}


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    """case -> (folder, config, variables): a TF checkpoint with LAMB slots and its hub folder."""
    made = {}
    for case, overrides in CASES.items():
        root = tmp_path_factory.mktemp(case)
        config, variables = mobilebert_config(**overrides), None
        variables = _variables(config)
        tf1_save(str(root / "tf" / "model.ckpt-100"), with_adam_slots(variables, global_step=100))
        (root / "tf" / "bert_config.json").write_text(json.dumps(config))
        result = convert_checkpoint(str(root / "tf"), str(root / "hf"))  # no --family: detected
        made[case] = (root, config, variables, result)
    return made


def _hf_outputs(folder, inputs):
    import torch
    import transformers

    model = transformers.MobileBertForPreTraining.from_pretrained(folder, attn_implementation="eager").eval()
    with torch.no_grad():
        out = model(**{k: torch.from_numpy(v) for k, v in inputs.items()}, output_hidden_states=True)
    return {"hidden_states": np.stack([h.numpy() for h in out.hidden_states]),
            "mlm_logits": out.prediction_logits.numpy(), "nsp_logits": out.seq_relationship_logits.numpy()}


@pytest.mark.parametrize("case", CASES)
def test_hub_folder_computes_the_official_math(converted, case):
    root, config, variables, result = converted[case]
    assert result.plan.info["family"] == "mobilebert"
    assert result.plan.info["model_class"] == "MobileBertForPreTraining"
    dropped = {d.name for d in result.plan.dropped}
    assert dropped == {f"{n}/{s}" for n in variables for s in ("adam_m", "adam_v")} | {"global_step"}
    inputs = fixed_inputs(vocab_size=config["vocab_size"], max_positions=32, type_vocab_size=2)
    expected = mobilebert_reference_forward(lambda n: variables[n].astype(np.float64), set(variables), config,
                                            inputs)
    actual = _hf_outputs(root / "hf", inputs)
    for key in ("hidden_states", "mlm_logits", "nsp_logits"):
        rows = (slice(None), 0) if key == "hidden_states" else 0  # row 0 has no padding
        assert np.abs(expected[key][rows] - actual[key][rows]).max() < 1e-5, key
    if case == "released":  # the documented difference: -6 for padded keys vs transformers' -inf-like mask
        assert np.abs(expected["hidden_states"][-1, 1] - actual["hidden_states"][-1, 1]).max() > 1e-3


@pytest.mark.parametrize("case", CASES)
def test_config_json_says_what_the_official_config_says(converted, case):
    root, config, _, _ = converted[case]
    hf = json.loads((root / "hf" / "config.json").read_text())
    assert hf["model_type"] == "mobilebert"
    for key in ("embedding_size", "trigram_input", "use_bottleneck", "intra_bottleneck_size",
                "num_feedforward_networks", "normalization_type", "classifier_activation", "use_bottleneck_attention"):
        assert hf[key] == config[key], key
    assert hf["hidden_act"] == {"relu": "relu", "gelu": "gelu_new"}[config["hidden_act"]]
    from safetensors import safe_open

    with safe_open(str(root / "hf" / "model.safetensors"), "np") as f:
        has_pooler = any(k.startswith("mobilebert.pooler.") for k in f.keys())
    assert has_pooler == config["classifier_activation"]


@pytest.mark.parametrize("case", CASES)
def test_back_to_tf_gives_the_official_names_and_tensorflow_restores_them(converted, case, tmp_path):
    root, config, variables, _ = converted[case]
    result = convert_checkpoint(str(root / "hf"), str(tmp_path / "tf"), to="tf1", global_step=100)
    assert result.plan.info["family"] == "mobilebert"
    prefix = str(tmp_path / "tf" / "model.ckpt")
    assert_tensorflow_reads(prefix, variables, extra={"global_step"})
    restored = tf1_restore(prefix, {n: v.shape for n, v in variables.items()},
                           {n: v.dtype for n, v in variables.items()})
    assert all(np.array_equal(restored[n], v) for n, v in variables.items())
    written = json.loads((tmp_path / "tf" / "bert_config.json").read_text())
    # transformers' key_query_shared_bottleneck is written false under use_bottleneck_attention (the same model)
    shared = config["key_query_shared_bottleneck"] and not config["use_bottleneck_attention"]
    assert {k: written[k] for k in config} == {**config, "key_query_shared_bottleneck": shared}


def test_verify_compares_rows_without_padding(converted):
    root, _, _, _ = converted["released"]
    report = verify_conversion(str(root / "tf"), str(root / "hf"), tokenizer=False)
    assert report.passed, report.summary()
    assert {r["output"] for r in report.outputs} >= {"last_hidden_state", "mlm_logits", "nsp_logits"}
    assert "rows without padding" in report.compared


@pytest.mark.parametrize("case", CASES)
def test_detected_without_family(converted, case):
    _, _, variables, _ = converted[case]
    assert detect_family(with_adam_slots(variables)) == "mobilebert"
    assert detect_family({n: v for n, v in variables.items() if not n.startswith("cls/")}) == "mobilebert"


def test_inspect_shows_the_family_and_dry_run_prints_the_plan(converted, capsys, tmp_path):
    root, _, _, _ = converted["released"]
    code, out, _ = run_cli(["inspect", root / "tf", "--json"], capsys)
    assert code == 0 and json.loads(out)["family"] == "mobilebert"
    code, out, _ = run_cli(["convert", root / "tf", tmp_path / "dry", "--dry-run"], capsys)
    assert code == 0 and "mobilebert" in out and "extra_output_weights" in out
    assert "FakeLayerNorm" in out and not (tmp_path / "dry").exists()


def test_a_config_that_contradicts_the_checkpoint_is_one_line(converted, capsys, tmp_path):
    root, config, _, _ = converted["released"]
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({**config, "normalization_type": "layer_norm"}))
    with pytest.raises(ConfigError, match="FakeLayerNorm|LayerNorm"):
        convert_checkpoint(str(root / "tf"), str(tmp_path / "out"), config=str(wrong))
    code, _, err = run_cli(["convert", root / "tf", tmp_path / "out2", "--config", wrong], capsys)
    assert code == 2 and err.startswith("ckptkit: error:") and "normalization_type" in err
    assert not (tmp_path / "out").exists() and not (tmp_path / "out2").exists()


def test_distill_init_selects_layers_each_with_its_own_weights(converted, tmp_path):
    from safetensors.numpy import load_file

    from ckptkit.distill.init import build_student

    root, _, variables, _ = converted["released"]
    teacher = load_file(str(root / "hf" / "model.safetensors"))
    for source in (root / "hf", root / "tf"):
        out = tmp_path / source.name
        report = build_student(str(source), str(out), layers=[1])
        student = load_file(str(out / "model.safetensors"))
        assert report.layers == [1] and json.loads((out / "config.json").read_text())["num_hidden_layers"] == 1
        layer = {k for k in teacher if k.startswith("mobilebert.encoder.layer.1.")}
        assert layer and all(np.array_equal(student[k.replace("layer.1.", "layer.0.")], teacher[k]) for k in layer)
        assert not any(k.startswith("mobilebert.encoder.layer.1.") for k in student)
        assert np.array_equal(student["mobilebert.embeddings.word_embeddings.weight"],
                              variables["bert/embeddings/word_embeddings"])


def test_distilbert_students_need_a_bert_shaped_teacher(converted, tmp_path):
    from ckptkit.distill.init import build_student
    from ckptkit.errors import UsageError

    root, _, _, _ = converted["released"]
    with pytest.raises(UsageError, match="use_bottleneck|embedding_size"):
        build_student(str(root / "hf"), str(tmp_path / "d"), layers=[0], arch="distilbert")
    assert not (tmp_path / "d").exists()


def _tf_official_forward(v: dict, c: dict, inputs: dict) -> np.ndarray:
    """Every layer's output, written here in TensorFlow ops after modeling.py (tf.pad trigram, 2-D dense layers,
    contrib-style LayerNorm with epsilon 1e-12 or FakeLayerNorm, the -6 padding mask); no ckptkit code."""
    import tensorflow as tf

    act = {"relu": tf.nn.relu, "gelu": lambda x: 0.5 * x * (1 + tf.tanh(0.7978845608 * (x + 0.044715 * x ** 3)))}
    act = act[c["hidden_act"]]
    kind = "FakeLayerNorm" if c["normalization_type"] == "no_norm" else "LayerNorm"

    def dense(x, scope):
        return tf.einsum("abc,cd->abd", x, v[f"{scope}/kernel"]) + v[f"{scope}/bias"]

    def norm(x, scope):
        gamma, beta = v[f"{scope}/{kind}/gamma"], v[f"{scope}/{kind}/beta"]
        if kind == "FakeLayerNorm":
            return x * gamma + beta
        mean, var = tf.nn.moments(x, [-1], keepdims=True)
        return tf.nn.batch_normalization(x, mean, var, beta, gamma, 1e-12)

    x = tf.gather(v["bert/embeddings/word_embeddings"], inputs["input_ids"])
    if c["trigram_input"]:
        x = tf.concat([tf.pad(x[:, 1:], ((0, 0), (0, 1), (0, 0))), x, tf.pad(x[:, :-1], ((0, 0), (1, 0), (0, 0)))], 2)
    if "bert/embeddings/embedding_transformation/kernel" in v:
        x = dense(x, "bert/embeddings/embedding_transformation")
    x = x + tf.gather(v["bert/embeddings/token_type_embeddings"], inputs["token_type_ids"])
    x = norm(x + v["bert/embeddings/position_embeddings"][None, : x.shape[1]], "bert/embeddings")
    mask = tf.cast(inputs["attention_mask"], tf.float32)[:, None, None, :]
    heads, states = c["num_attention_heads"], [x]
    for i in range(c["num_hidden_layers"]):
        p = f"bert/encoder/layer_{i}/"
        q = k = val = inp = x
        if c["use_bottleneck"]:
            inp = norm(dense(x, p + "bottleneck/input/dense"), p + "bottleneck/input")
            if c["use_bottleneck_attention"]:
                q = k = val = inp
            elif c["key_query_shared_bottleneck"]:
                q = k = norm(dense(x, p + "bottleneck/attention/dense"), p + "bottleneck/attention")
        q, k, val = (tf.reshape(dense(t, f"{p}attention/self/{n}"), [*t.shape[:2], heads, -1])
                     for t, n in ((q, "query"), (k, "key"), (val, "value")))
        scores = tf.einsum("BFNH,BTNH->BNFT", q, k) / float(q.shape[-1]) ** 0.5
        probs = tf.nn.softmax(scores * mask + (1 - mask) * -6)
        ctx = tf.reshape(tf.einsum("BNFT,BTNH->BFNH", probs, val), [*inp.shape[:2], -1])
        h = norm(dense(ctx, p + "attention/output/dense") + inp, p + "attention/output")
        for f in range(c["num_feedforward_networks"] - 1):
            s = f"{p}ffn_layer_{f}/"
            h = norm(dense(act(dense(h, s + "intermediate/dense")), s + "output/dense") + h, s + "output")
        out = norm(dense(act(dense(h, p + "intermediate/dense")), p + "output/dense") + h, p + "output")
        if c["use_bottleneck"]:
            out = norm(dense(out, p + "output/bottleneck/dense") + x, p + "output/bottleneck")
        x = out
        states.append(x)
    return np.stack([s.numpy() for s in states])


@pytest.mark.parametrize("case", CASES)
def test_numpy_reference_equals_the_official_math_in_tensorflow_padding_included(converted, case):
    _, config, variables, _ = converted[case]
    inputs = fixed_inputs(vocab_size=config["vocab_size"], max_positions=32, type_vocab_size=2)
    expected = _tf_official_forward(variables, config, inputs)
    reference = mobilebert_reference_forward(lambda n: variables[n].astype(np.float64), set(variables), config,
                                             inputs)
    assert np.abs(reference["hidden_states"] - expected).max() < 1e-5
