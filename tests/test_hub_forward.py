"""verify's NumPy engine (ckptkit.converters.hub_forward) computes what transformers computes, for every
BERT / ELECTRA / BigBird / ALBERT class ckptkit writes: tiny random models made and saved by transformers
itself (every parameter random, LayerNorms and biases included, so a wrong name or a wrong formula shows),
run through verify's own transformers path (`_hf_outputs`) and through the engine over the saved folder,
on verify's fixed padded batch. The key sets must be equal and every output within verify's tolerance."""

from __future__ import annotations

import numpy as np
import pytest

from ckptkit.converters.compare import forward_tolerance
from ckptkit.converters.hub_forward.bert_like import output_keys
from ckptkit.converters.hub_forward.ops import Unsupported
from ckptkit.converters.reference import fixed_inputs
from ckptkit.converters.source import open_source
from ckptkit.converters.verify import _hf_outputs
from ckptkit.converters.verify_engine import MissingWeight, numpy_outputs

import torch  # noqa: E402  (the reference: transformers itself)
import transformers  # noqa: E402

SMALL = dict(vocab_size=61, hidden_size=16, num_hidden_layers=2, num_attention_heads=2, intermediate_size=24,
             max_position_embeddings=40, type_vocab_size=2)

# (config class, model class, config options)
CASES = [
    ("BertConfig", "BertModel", {"hidden_act": "gelu"}),
    ("BertConfig", "BertForPreTraining", {"hidden_act": "gelu_new", "layer_norm_eps": 1e-6}),
    ("BertConfig", "BertForMaskedLM", {"hidden_act": "relu"}),
    ("BertConfig", "BertForMaskedLM", {"hidden_act": "gelu", "tie_word_embeddings": False}),
    ("BertConfig", "BertForSequenceClassification", {"hidden_act": "gelu", "num_labels": 3}),
    ("BertConfig", "BertForQuestionAnswering", {"hidden_act": "gelu_new"}),
    ("BertConfig", "BertForNextSentencePrediction", {"hidden_act": "silu"}),
    ("ElectraConfig", "ElectraModel", {"embedding_size": 16, "hidden_act": "gelu"}),
    ("ElectraConfig", "ElectraForPreTraining", {"embedding_size": 8, "hidden_act": "gelu_new"}),
    ("ElectraConfig", "ElectraForMaskedLM", {"embedding_size": 8, "hidden_size": 12, "hidden_act": "relu",
                                             "intermediate_size": 20}),
    ("ElectraConfig", "ElectraForSequenceClassification", {"embedding_size": 8, "num_labels": 2}),
    ("BigBirdConfig", "BigBirdModel", {"block_size": 4, "num_random_blocks": 1, "hidden_act": "gelu"}),
    ("BigBirdConfig", "BigBirdForPreTraining", {"block_size": 4, "num_random_blocks": 1, "use_bias": False,
                                                "rescale_embeddings": True}),
    ("BigBirdConfig", "BigBirdForMaskedLM", {"attention_type": "original_full", "hidden_act": "relu"}),
    ("AlbertConfig", "AlbertModel", {"embedding_size": 8, "hidden_act": "gelu"}),
    ("AlbertConfig", "AlbertForPreTraining", {"embedding_size": 8, "num_hidden_layers": 3, "num_hidden_groups": 2,
                                              "inner_group_num": 2}),
    ("AlbertConfig", "AlbertForMaskedLM", {"embedding_size": 16, "hidden_act": "relu"}),
    ("AlbertConfig", "AlbertForSequenceClassification", {"embedding_size": 8, "num_labels": 2}),
    ("AlbertConfig", "AlbertForQuestionAnswering", {"embedding_size": 8, "hidden_act": "gelu_new"}),
]


def save_random_model(folder, config_class: str, model_class: str, options: dict, *, seed: int = 0) -> None:
    """A transformers model with every parameter random (not at its initial value), saved as a hub folder."""
    torch.manual_seed(seed)
    config = getattr(transformers, config_class)(**{**SMALL, **options})
    model = getattr(transformers, model_class)(config).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_(torch.randn_like(p) * (0.1 if name.endswith("bias") else 0.4)
                    + (1.0 if "LayerNorm.weight" in name or "layer_norm.weight" in name else 0.0))
    model.save_pretrained(folder)


def engine_and_transformers(folder, class_name: str, config: dict):
    inputs = fixed_inputs(vocab_size=config["vocab_size"], max_positions=config["max_position_embeddings"],
                          type_vocab_size=config["type_vocab_size"])
    with open_source(str(folder)) as source:
        ours, how = numpy_outputs(source.checkpoint, source.checkpoint.extras["config"], class_name, inputs)
    return ours, _hf_outputs(str(folder), class_name, inputs), how


@pytest.mark.parametrize("config_class,model_class,options", CASES,
                         ids=[f"{c[1]}-{'-'.join(f'{k}={v}' for k, v in c[2].items())}" for c in CASES])
def test_engine_equals_transformers(tmp_path, config_class, model_class, options):
    save_random_model(tmp_path, config_class, model_class, options)
    ours, theirs, how = engine_and_transformers(tmp_path, model_class, {**SMALL, **options})
    assert set(ours) == set(theirs) == set(output_keys(model_class))
    for key in theirs:
        assert ours[key].shape == theirs[key].shape, key
        diff = float(np.max(np.abs(ours[key] - theirs[key].astype(np.float64))))
        assert diff <= forward_tolerance(ours[key]), (key, diff)
    assert "NumPy engine" in how and "float64" in how


def test_every_written_class_is_covered():
    """The classes above are every class the four families write (their ModelClass tables)."""
    from ckptkit.converters.families import get_family

    written = {c.name for f in ("bert", "electra", "bigbird", "albert") for c in get_family(f).classes}
    assert written == {c[1] for c in CASES}


def test_a_changed_config_changes_the_outputs(tmp_path):
    """The engine reads config.json: the same weights with layer_norm_eps / hidden_act edited give other outputs."""
    import json

    save_random_model(tmp_path, "BertConfig", "BertModel", {"hidden_act": "gelu"})
    config = {**SMALL}
    before, _, _ = engine_and_transformers(tmp_path, "BertModel", config)
    path = tmp_path / "config.json"
    path.write_text(json.dumps({**json.loads(path.read_text()), "hidden_act": "gelu_new"}))
    after, theirs, _ = engine_and_transformers(tmp_path, "BertModel", config)
    assert np.max(np.abs(before["last_hidden_state"] - after["last_hidden_state"])) > 1e-4
    assert np.max(np.abs(after["last_hidden_state"] - theirs["last_hidden_state"])) < 1e-5


def test_block_sparse_bigbird_and_unknown_classes_are_unsupported(tmp_path):
    save_random_model(tmp_path, "BigBirdConfig", "BigBirdModel", {"block_size": 2, "num_random_blocks": 0})
    with pytest.raises(Unsupported, match="block-sparse attention .16 tokens > 10"):
        engine_and_transformers(tmp_path, "BigBirdModel", SMALL)
    with pytest.raises(Unsupported, match="class BertForTokenClassification"):
        engine_and_transformers(tmp_path, "BertForTokenClassification", SMALL)
    with pytest.raises(Unsupported, match="hidden_act 'prelu'"):
        from ckptkit.converters.hub_forward.ops import activation
        activation("prelu")


def test_a_missing_weight_is_named(tmp_path):
    from safetensors.numpy import load_file, save_file

    save_random_model(tmp_path, "BertConfig", "BertModel", {})
    weights = load_file(tmp_path / "model.safetensors")
    del weights["encoder.layer.1.output.dense.weight"]
    save_file(weights, tmp_path / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(MissingWeight, match="encoder.layer.1.output.dense.weight"):
        engine_and_transformers(tmp_path, "BertModel", SMALL)
