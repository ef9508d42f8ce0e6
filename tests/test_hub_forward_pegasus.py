"""verify's numpy engine for BigBird-Pegasus computes what transformers' BigBirdPegasus* classes compute: tiny
random models made and saved by transformers itself (with and without attention biases, scaled embeddings or
not, block-sparse configs at verify's length, untied output embeddings, unequal stacks), compared through verify's
own transformers path (``_hf_outputs``: encoder states zeroed at padding, the decoder's last state, logits) on
verify's padded encoder-decoder batch."""

from __future__ import annotations

import doctest

import numpy as np
import pytest

from ckptkit.converters.compare import forward_tolerance
from ckptkit.converters.convert import convert_checkpoint
from ckptkit.converters.hub_forward import pegasus as engine
from ckptkit.converters.hub_forward.ops import Unsupported
from ckptkit.converters.reference import fixed_inputs
from ckptkit.converters.reference_pegasus import encoder_decoder_inputs
from ckptkit.converters.verify import _hf_outputs, verify_conversion
from support.hub_models import (assert_engine_matches_transformers, engine_outputs, hub_getter, random_hub_folder,
                                reference_whole_and_chunked)
from support.pegasus import pegasus_config, pegasus_tf_variables, save_pegasus_checkpoint, write_flags
from test_verify_engine import _fresh  # the CLI in an interpreter that refuses torch and transformers

_SIZES = dict(model_type="bigbird_pegasus", vocab_size=64, d_model=16, encoder_layers=2, decoder_layers=2,
              encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=24, decoder_ffn_dim=24,
              max_position_embeddings=40, attention_type="original_full", block_size=4, num_random_blocks=1,
              activation_function="relu")
GENERATE = "BigBirdPegasusForConditionalGeneration"
CASES = {
    "pegasus-large-like": (GENERATE, dict(use_bias=False, scale_embedding=True)),
    "biases-unscaled-gelu": (GENERATE, dict(use_bias=True, scale_embedding=False, activation_function="gelu_new",
                                            decoder_layers=1)),
    "block-sparse-falls-back": (GENERATE, dict(attention_type="block_sparse", activation_function="gelu")),
    "untied": (GENERATE, dict(tie_word_embeddings=False, use_bias=True, encoder_layers=1)),
    "model": ("BigBirdPegasusModel", dict(use_bias=True)),
}


def _inputs(config: dict) -> dict:
    batch = fixed_inputs(vocab_size=config["vocab_size"], max_positions=config["max_position_embeddings"],
                         type_vocab_size=1)
    return encoder_decoder_inputs(batch, {**config, "is_encoder_decoder": True})


@pytest.mark.parametrize("case", CASES)
def test_engine_computes_what_transformers_computes(case, tmp_path):
    class_name, overrides = CASES[case]
    config = {**_SIZES, **overrides}
    assert_engine_matches_transformers(class_name, config, str(tmp_path / case), _inputs(config))


def test_layer_norms_use_torchs_epsilon_whatever_the_config_says(tmp_path):
    """Every norm is nn.LayerNorm(d_model): 1e-5. Small embeddings (variance ~1e-4) make it visible."""
    config = {**_SIZES, "scale_embedding": False}
    folder = random_hub_folder(GENERATE, config, str(tmp_path / "m"), scale={"shared": 1e-2, "embed_positions": 1e-2})
    inputs = _inputs(config)
    expected = _hf_outputs(folder, GENERATE, inputs)
    actual = engine_outputs(folder, inputs)
    for key, value in expected.items():
        assert np.max(np.abs(actual[key] - value)) <= forward_tolerance(actual[key]), key


def test_final_logits_bias_is_added_and_the_shared_table_read_in_stored_rows(tmp_path, monkeypatch):
    """The shared table goes through ``get.stored`` in chunks (7 rows here), never whole in float64."""
    from ckptkit.converters import reference

    monkeypatch.setattr(reference, "_ROWS_PER_CHUNK", 7)
    config = {**_SIZES}
    folder = random_hub_folder(GENERATE, config, str(tmp_path / "m"))
    inputs = _inputs(config)
    with hub_getter(folder) as (get, names, saved):
        with_bias = engine.pegasus_forward(get, names, saved, GENERATE, inputs)
        seen = list(get.seen)
        without = engine.pegasus_forward(get, names - {"final_logits_bias"}, saved, GENERATE, inputs)
        bias = get("final_logits_bias").reshape(-1)
    assert np.abs(bias).max() > 0.1
    np.testing.assert_allclose(with_bias["logits"] - without["logits"], np.broadcast_to(bias, without["logits"].shape),
                               atol=1e-12)
    assert "model.shared.weight" not in seen
    expected = _hf_outputs(folder, GENERATE, inputs)["logits"]
    assert np.max(np.abs(with_bias["logits"] - expected)) <= forward_tolerance(expected)


def test_the_tf_reference_reads_the_word_table_in_chunks_too(monkeypatch):
    """verify's other side (the official math over the TF variables): the word table through ``get.stored`` in
    row chunks, the logits as with the whole float64 table."""
    from ckptkit.converters.reference_pegasus import pegasus_reference_forward

    config = pegasus_config()
    inputs = encoder_decoder_inputs(fixed_inputs(vocab_size=64, max_positions=40, type_vocab_size=1),
                                    {"vocab_size": 64, "is_encoder_decoder": True})
    whole, chunked, seen = reference_whole_and_chunked(pegasus_reference_forward, pegasus_tf_variables(config),
                                                       config, inputs, monkeypatch)
    assert not {"pegasus/embeddings/word_embeddings", "pegasus/embeddings/position_embeddings"} & seen
    for key, value in whole.items():
        np.testing.assert_allclose(chunked[key], value, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("config, class_name, words", [
    ({"attention_type": "block_sparse", "block_size": 2, "num_random_blocks": 0}, GENERATE,
     r"block-sparse attention \(16 tokens > 10"),
    ({"activation_function": "xielu"}, GENERATE, "activation_function 'xielu'"),
    ({}, "BigBirdPegasusForCausalLM", "class BigBirdPegasusForCausalLM"),
])
def test_what_the_engine_does_not_compute_is_named(config, class_name, words):
    """verify falls back to transformers (or stops in one line) on Unsupported, naming what it says."""
    with pytest.raises(Unsupported, match=words):
        engine.pegasus_forward(lambda name: np.zeros(1), set(), {**_SIZES, **config}, class_name, _inputs(_SIZES))


def test_docstring_examples_run():
    result = doctest.testmod(engine)
    assert result.failed == 0 and result.attempted >= 1


def test_verify_with_the_numpy_engine_agrees_with_the_official_math(tmp_path):
    """End to end: a TF checkpoint (written by TensorFlow) converted, then verified without transformers'
    model: the engine's outputs equal the reference over the TF variables, and a transposed (square) weight
    shows in the engine's outputs too."""
    from safetensors.numpy import load_file, save_file

    config = pegasus_config(use_bias=True, num_decoder_layers=1)
    save_pegasus_checkpoint(str(tmp_path / "tf" / "model.ckpt-300"), pegasus_tf_variables(config), optimizer=None)
    write_flags(str(tmp_path / "tf" / "summarization.config"), config)
    convert_checkpoint(str(tmp_path / "tf"), str(tmp_path / "hf"))
    report = verify_conversion(str(tmp_path / "tf"), str(tmp_path / "hf"), tokenizer=False, engine="numpy")
    assert report.passed and report.engine == "numpy", report.summary()
    assert {r["output"] for r in report.outputs} == {"encoder_last_hidden_state", "last_hidden_state", "logits"}
    assert "NumPy engine" in report.compared
    fresh = _fresh("verify", tmp_path / "tf", tmp_path / "hf")  # an interpreter refusing torch and transformers
    assert fresh["code"] == 0 and fresh["attempts"] == [] and fresh["loaded"] == [], fresh
    assert "NumPy engine" in fresh["out"] and "verification PASSED" in fresh["out"]
    weights = load_file(str(tmp_path / "hf" / "model.safetensors"))
    name = "model.encoder.layers.1.self_attn.self.value.weight"
    weights[name] = weights[name].T.copy()
    save_file(weights, str(tmp_path / "hf" / "model.safetensors"), metadata={"format": "pt"})
    report = verify_conversion(str(tmp_path / "tf"), str(tmp_path / "hf"), tokenizer=False, engine="numpy")
    assert report.engine == "numpy" and not any(r["ok"] for r in report.outputs)
