"""verify's numpy engine for MobileBERT computes what transformers' MobileBert* classes compute: tiny random
models made and saved by transformers itself, in every structural variant (NoNorm and LayerNorm, the three
bottleneck modes, extra FFNs, trigram input or not, pooler or not, each activation family), each class ckptkit
writes, compared through verify's own transformers path (``_hf_outputs``) on verify's padded batch."""

from __future__ import annotations

import doctest
import json

import numpy as np
import pytest

from ckptkit.converters.compare import forward_tolerance
from ckptkit.converters.convert import convert_checkpoint
from ckptkit.converters.hub_forward import mobilebert as engine
from ckptkit.converters.hub_forward.ops import Unsupported
from ckptkit.converters.reference import fixed_inputs
from ckptkit.converters.verify import _hf_outputs, verify_conversion
from support.hub_models import (assert_engine_matches_transformers, engine_outputs, hub_getter, random_hub_folder,
                                reference_whole_and_chunked)
from support.mobilebert import mobilebert_config, mobilebert_tf_variables
from test_verify_engine import _fresh  # the CLI in an interpreter that refuses torch and transformers
from tf_save import tf1_save

_SIZES = dict(model_type="mobilebert", vocab_size=50, hidden_size=24, num_hidden_layers=2, num_attention_heads=2,
              intermediate_size=20, max_position_embeddings=20, type_vocab_size=2, embedding_size=8,
              intra_bottleneck_size=12)
# (class, config): every switch of MobileBertConfig on and off, each class ckptkit's family writes
CASES = {
    "released": ("MobileBertForPreTraining", dict(num_feedforward_networks=3)),  # config defaults: no_norm, trigram..
    "layer-norm-plain": ("MobileBertForSequenceClassification",
                         dict(normalization_type="layer_norm", use_bottleneck=False, trigram_input=False,
                              embedding_size=24, num_feedforward_networks=1, classifier_activation=False,
                              hidden_act="gelu", num_labels=3)),
    "bottleneck-attention": ("MobileBertForMaskedLM",
                             dict(normalization_type="layer_norm", use_bottleneck_attention=True,
                                  num_feedforward_networks=2, hidden_act="gelu_new")),
    "unshared-bottleneck": ("MobileBertForQuestionAnswering",
                            dict(key_query_shared_bottleneck=False, trigram_input=False, hidden_act="relu6",
                                 intra_bottleneck_size=24)),  # transformers' query takes true_hidden_size inputs
    "model-no-pooler-activation": ("MobileBertModel", dict(classifier_activation=False, hidden_act="tanh")),
    "model-pooler": ("MobileBertModel", dict(normalization_type="layer_norm", num_feedforward_networks=2)),
    "nsp": ("MobileBertForNextSentencePrediction", dict(hidden_act="gelu_new", num_feedforward_networks=1)),
    "token-classification": ("MobileBertForTokenClassification", dict(use_bottleneck=False, num_labels=4,
                                                                        num_feedforward_networks=2)),
    "untied-mlm": ("MobileBertForMaskedLM", dict(tie_word_embeddings=False, embedding_size=24, trigram_input=False)),
}


def test_each_norm_uses_the_epsilon_transformers_gives_it(tmp_path):
    """The embeddings' and the layers' output LayerNorm: 1e-5 (built without eps); the others layer_norm_eps.
    Small embeddings (variance ~1e-4) and a large layer_norm_eps make every epsilon visible in the outputs."""
    config = {**_SIZES, "normalization_type": "layer_norm", "layer_norm_eps": 1e-3}
    folder = random_hub_folder("MobileBertForPreTraining", config, str(tmp_path / "m"),
                               scale={"embeddings.word": 1e-2, "embeddings.position": 1e-2,
                                      "embeddings.token_type": 1e-2, "embedding_transformation.bias": 1e-2})
    inputs = _inputs(config)
    expected = _hf_outputs(folder, "MobileBertForPreTraining", inputs)
    actual = engine_outputs(folder, inputs)
    for key, value in expected.items():
        assert np.max(np.abs(actual[key] - value)) <= forward_tolerance(actual[key]), key


def _inputs(config: dict) -> dict:
    return fixed_inputs(vocab_size=config["vocab_size"], max_positions=config["max_position_embeddings"],
                        type_vocab_size=config["type_vocab_size"])


@pytest.mark.filterwarnings("ignore:Initializing zero-element tensors")  # untied-mlm: an empty extra decoder
@pytest.mark.parametrize("case", CASES)
def test_engine_computes_what_transformers_computes(case, tmp_path):
    class_name, overrides = CASES[case]
    config = {**_SIZES, **overrides}
    assert_engine_matches_transformers(class_name, config, str(tmp_path / case), _inputs(config))


def test_a_wrong_config_value_shows_as_a_difference(tmp_path):
    """The engine reads config.json: a normalization_type the weights were not made for changes the outputs."""
    config = {**_SIZES, "normalization_type": "layer_norm"}
    folder = random_hub_folder("MobileBertModel", config, str(tmp_path / "m"))
    inputs = _inputs(config)
    expected = _hf_outputs(folder, "MobileBertModel", inputs)
    with hub_getter(folder) as (get, names, saved):
        wrong = engine.mobilebert_forward(get, names, {**saved, "normalization_type": "no_norm"}, "MobileBertModel",
                                          inputs)
    assert np.max(np.abs(wrong["last_hidden_state"] - expected["last_hidden_state"])) > 1e-2


def test_the_big_matrices_are_read_in_stored_chunks_only(tmp_path, monkeypatch):
    """The word table and the MLM head's extra [hidden - embedding, vocab] weights go through ``get.stored`` in
    chunks (7 rows / columns here), never whole through ``get`` in float64; the logits are unchanged."""
    from ckptkit.converters import reference

    monkeypatch.setattr(reference, "_ROWS_PER_CHUNK", 7)
    monkeypatch.setattr(engine, "_COLUMNS_PER_CHUNK", 7)
    config = {**_SIZES}
    folder = random_hub_folder("MobileBertForPreTraining", config, str(tmp_path / "m"))
    inputs = _inputs(config)
    with hub_getter(folder) as (get, names, saved):
        out = engine.mobilebert_forward(get, names, saved, "MobileBertForPreTraining", inputs)
    assert not {"mobilebert.embeddings.word_embeddings.weight", "cls.predictions.dense.weight"} & set(get.seen)
    expected = _hf_outputs(folder, "MobileBertForPreTraining", inputs)["mlm_logits"]
    assert np.max(np.abs(out["mlm_logits"] - expected)) <= forward_tolerance(expected)


def test_the_tf_reference_reads_the_big_tables_in_chunks_too(monkeypatch):
    """verify's other side (the official math over the TF variables): the word table and extra_output_weights
    through ``get.stored`` in row chunks, the MLM logits as with whole float64 tables."""
    from ckptkit.converters.reference_mobilebert import mobilebert_reference_forward

    config = mobilebert_config()
    inputs = fixed_inputs(vocab_size=config["vocab_size"], max_positions=32, type_vocab_size=2)
    whole, chunked, seen = reference_whole_and_chunked(mobilebert_reference_forward, mobilebert_tf_variables(config),
                                                       config, inputs, monkeypatch)
    assert not {"bert/embeddings/word_embeddings", "cls/predictions/extra_output_weights"} & seen
    np.testing.assert_allclose(chunked["mlm_logits"], whole["mlm_logits"], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("config, class_name, words", [
    ({"hidden_act": "xielu"}, "MobileBertModel", "hidden_act 'xielu'"),
    ({"normalization_type": "rms_norm"}, "MobileBertModel", "normalization_type 'rms_norm'"),
    ({"key_query_shared_bottleneck": False}, "MobileBertModel", "intra_bottleneck_size != hidden_size"),
    ({}, "MobileBertForMultipleChoice", "class MobileBertForMultipleChoice"),
])
def test_what_the_engine_does_not_compute_is_named(config, class_name, words):
    """verify falls back to transformers (or stops in one line) on Unsupported, naming what it says."""
    with pytest.raises(Unsupported, match=words):
        engine.mobilebert_forward(lambda name: np.zeros(1), set(), {**_SIZES, **config}, class_name,
                                  _inputs(_SIZES))


def test_docstring_examples_run():
    result = doctest.testmod(engine)
    assert result.failed == 0 and result.attempted >= 2


def _tamper_config(folder, **changes) -> None:
    path = folder / "config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), **changes}))


def test_verify_with_the_numpy_engine_agrees_with_the_official_math(tmp_path):
    """End to end: a TF checkpoint (written by TensorFlow) converted, then verified without transformers'
    model: the engine's outputs equal the reference over the TF variables, and a config.json value the weights
    were not trained with (every tensor still bitwise equal) fails the forward comparison."""
    config = mobilebert_config()  # the released layout: no_norm, trigram, shared bottleneck, extra FFNs, pooler
    tf1_save(str(tmp_path / "tf" / "model.ckpt-1"), mobilebert_tf_variables(config))
    (tmp_path / "tf" / "bert_config.json").write_text(json.dumps(config))
    convert_checkpoint(str(tmp_path / "tf"), str(tmp_path / "hf"))
    report = verify_conversion(str(tmp_path / "tf"), str(tmp_path / "hf"), tokenizer=False, engine="numpy")
    assert report.passed and report.engine == "numpy", report.summary()
    assert {r["output"] for r in report.outputs} == {"last_hidden_state", "mlm_logits", "nsp_logits"}
    assert "NumPy engine" in report.compared
    fresh = _fresh("verify", tmp_path / "tf", tmp_path / "hf")  # an interpreter refusing torch and transformers
    assert fresh["code"] == 0 and fresh["attempts"] == [] and fresh["loaded"] == [], fresh
    assert "NumPy engine" in fresh["out"] and "verification PASSED" in fresh["out"]
    _tamper_config(tmp_path / "hf", classifier_activation=False)  # the pooler's weights are then ignored
    report = verify_conversion(str(tmp_path / "tf"), str(tmp_path / "hf"), tokenizer=False, engine="numpy")
    assert all(r["ok"] for r in report.tensors)
    assert [r["output"] for r in report.outputs if not r["ok"]] == ["nsp_logits"]
