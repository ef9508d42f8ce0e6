"""Random but realistic MobileBERT TF variables under the names google-research's ``mobilebert/`` code creates.

Shapes follow modeling.py for the config (trigram input, bottleneck modes, extra FFNs, norm type, pooler);
weights are non-trivial (biases and norm parameters away from their initial values).

Example:
    >>> c = mobilebert_config(use_bottleneck=True, normalization_type="no_norm")
    >>> v = mobilebert_tf_variables(c)
    >>> v["bert/encoder/layer_0/bottleneck/input/dense/kernel"].shape, v["cls/predictions/extra_output_weights"].shape
    ((32, 16), (60, 24))
"""

from __future__ import annotations

import numpy as np

__all__ = ["mobilebert_config", "mobilebert_tf_variables"]


def mobilebert_config(**overrides) -> dict:
    """A small official ``bert_config.json`` (every MobileBERT key), MobileBERT-like by default."""
    config = {"vocab_size": 60, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
              "intermediate_size": 40, "hidden_act": "relu", "hidden_dropout_prob": 0.0,
              "attention_probs_dropout_prob": 0.1, "max_position_embeddings": 32, "type_vocab_size": 2,
              "initializer_range": 0.02, "embedding_size": 8, "trigram_input": True, "use_bottleneck": True,
              "intra_bottleneck_size": 16, "use_bottleneck_attention": False, "key_query_shared_bottleneck": True,
              "num_feedforward_networks": 3, "normalization_type": "no_norm", "classifier_activation": True}
    config.update(overrides)
    return config


class _Random:
    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)

    def mat(self, *shape):
        return (self.rng.standard_normal(shape) / np.sqrt(shape[0])).astype(np.float32)

    def vec(self, n: int, center: float = 0.0, scale: float = 0.1):
        return (center + self.rng.standard_normal(n) * scale).astype(np.float32)


def _dense(v: dict, r: _Random, scope: str, n_in: int, n_out: int) -> None:
    v[f"{scope}/kernel"], v[f"{scope}/bias"] = r.mat(n_in, n_out), r.vec(n_out)


def _norm(v: dict, r: _Random, scope: str, width: int, kind: str) -> None:
    v[f"{scope}/{kind}/gamma"], v[f"{scope}/{kind}/beta"] = r.vec(width, 1.0, 0.2), r.vec(width)


def _layer(v: dict, r: _Random, p: str, c: dict, norm: str) -> None:
    hidden, inter = c["hidden_size"], c["intermediate_size"]
    true = c["intra_bottleneck_size"] if c["use_bottleneck"] else hidden
    qk_in = v_in = hidden
    if c["use_bottleneck"]:
        _dense(v, r, f"{p}bottleneck/input/dense", hidden, true)
        _norm(v, r, f"{p}bottleneck/input", true, norm)
        if c["use_bottleneck_attention"]:
            qk_in = v_in = true
        elif c["key_query_shared_bottleneck"]:
            qk_in = true
            _dense(v, r, f"{p}bottleneck/attention/dense", hidden, true)
            _norm(v, r, f"{p}bottleneck/attention", true, norm)
    for name, n_in in (("query", qk_in), ("key", qk_in), ("value", v_in)):
        _dense(v, r, f"{p}attention/self/{name}", n_in, true)
    _dense(v, r, f"{p}attention/output/dense", true, true)
    _norm(v, r, f"{p}attention/output", true, norm)
    for f in range(c["num_feedforward_networks"] - 1):
        _dense(v, r, f"{p}ffn_layer_{f}/intermediate/dense", true, inter)
        _dense(v, r, f"{p}ffn_layer_{f}/output/dense", inter, true)
        _norm(v, r, f"{p}ffn_layer_{f}/output", true, norm)
    _dense(v, r, f"{p}intermediate/dense", true, inter)
    _dense(v, r, f"{p}output/dense", inter, true)
    _norm(v, r, f"{p}output", true, norm)
    if c["use_bottleneck"]:
        _dense(v, r, f"{p}output/bottleneck/dense", true, hidden)
        _norm(v, r, f"{p}output/bottleneck", hidden, norm)


def mobilebert_tf_variables(config: dict, *, seed: int = 0, heads: tuple[str, ...] = ("mlm", "nsp")
                            ) -> dict[str, np.ndarray]:
    """Every variable the official code creates for ``config`` (float32), with the pretraining heads in ``heads``."""
    c, r, v = config, _Random(seed), {}
    hidden, emb = c["hidden_size"], c["embedding_size"]
    norm = "FakeLayerNorm" if c["normalization_type"] == "no_norm" else "LayerNorm"
    e = "bert/embeddings/"
    v[f"{e}word_embeddings"] = r.mat(c["vocab_size"], emb) * 3
    v[f"{e}token_type_embeddings"] = r.mat(c["type_vocab_size"], hidden)
    v[f"{e}position_embeddings"] = r.mat(c["max_position_embeddings"], hidden)
    if c["trigram_input"] or emb != hidden:
        _dense(v, r, f"{e}embedding_transformation", emb * (3 if c["trigram_input"] else 1), hidden)
    _norm(v, r, "bert/embeddings", hidden, norm)
    for i in range(c["num_hidden_layers"]):
        _layer(v, r, f"bert/encoder/layer_{i}/", c, norm)
    if c["classifier_activation"]:
        _dense(v, r, "bert/pooler/dense", hidden, hidden)
    if "mlm" in heads:
        _dense(v, r, "cls/predictions/transform/dense", hidden, hidden)
        _norm(v, r, "cls/predictions/transform", hidden, "LayerNorm")
        v["cls/predictions/output_bias"] = r.vec(c["vocab_size"])
        if hidden != emb:
            v["cls/predictions/extra_output_weights"] = r.mat(c["vocab_size"], hidden - emb)
    if "nsp" in heads:
        v["cls/seq_relationship/output_weights"] = r.mat(2, hidden)
        v["cls/seq_relationship/output_bias"] = r.vec(2)
    return v
