"""NumPy reference forward pass over MobileBERT's TF variables (google-research ``mobilebert/modeling.py``
and ``run_pretraining.py`` math), in float64: what ``verify`` compares a converted model against.

As the official code: trigram input (next, current, previous token concatenated) and
``embedding_transformation``; the bottleneck with its three modes; ``num_feedforward_networks - 1`` extra
FFNs; ``no_norm`` = x*gamma+beta, ``layer_norm`` with epsilon 1e-12; padded keys scored
``scores*mask - 6*(1-mask)`` (transformers cannot express this: only rows without padding agree); the MLM
decoder is the word table concatenated with ``extra_output_weights``; the pooler only with
``classifier_activation``.

Example:
    >>> _fake_norm(np.ones((1, 2)), np.full(2, 2.0), np.zeros(2)).tolist()
    [[2.0, 2.0]]
"""

from __future__ import annotations

import math
from typing import Callable, Mapping

import numpy as np

from ckptkit.converters.reference import ACTIVATIONS, Getter, dense, embedding_rows, layer_norm, times_transposed

__all__ = ["mobilebert_reference_forward", "MOBILEBERT_ACTIVATIONS"]

# modeling.get_activation: "gelu" is the tanh approximation; "linear" is no activation
MOBILEBERT_ACTIVATIONS = {"gelu": "gelu_tanh", "relu": "relu", "tanh": "tanh", "linear": "linear"}
_ACTS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    **{name: ACTIVATIONS[kind] for name, kind in MOBILEBERT_ACTIVATIONS.items()},
    "relu6": lambda x: np.clip(x, 0.0, 6.0)}


def _fake_norm(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray) -> np.ndarray:
    return x * gamma + beta


class _Model:
    """The config's switches and a getter, with the official code's building blocks."""

    def __init__(self, get: Getter, names: set[str], config: Mapping):
        self.get, self.names = get, names
        self.c = {"trigram_input": False, "use_bottleneck": False, "use_bottleneck_attention": False,
                  "key_query_shared_bottleneck": False, "num_feedforward_networks": 1,
                  "normalization_type": "layer_norm", "classifier_activation": True, **config}
        self.act = _ACTS[self.c.get("hidden_act", "gelu")]
        self.norm_kind = "FakeLayerNorm" if self.c["normalization_type"] == "no_norm" else "LayerNorm"

    def dense(self, x: np.ndarray, scope: str) -> np.ndarray:
        return dense(x, self.get(f"{scope}/kernel"), self.get(f"{scope}/bias"))

    def norm(self, x: np.ndarray, scope: str) -> np.ndarray:
        gamma, beta = self.get(f"{scope}/{self.norm_kind}/gamma"), self.get(f"{scope}/{self.norm_kind}/beta")
        return _fake_norm(x, gamma, beta) if self.norm_kind == "FakeLayerNorm" else layer_norm(x, gamma, beta)

    def embeddings(self, inputs: Mapping[str, np.ndarray]) -> np.ndarray:
        ids, types = inputs["input_ids"], inputs["token_type_ids"]
        e = "bert/embeddings/"
        x = embedding_rows(self.get, f"{e}word_embeddings", ids)
        if self.c["trigram_input"]:
            pad = np.zeros_like(x[:, :1])
            x = np.concatenate([np.concatenate([x[:, 1:], pad], 1), x, np.concatenate([pad, x[:, :-1]], 1)], 2)
        if f"{e}embedding_transformation/kernel" in self.names:
            x = self.dense(x, f"{e}embedding_transformation")
        x = x + self.get(f"{e}token_type_embeddings")[types] + self.get(f"{e}position_embeddings")[: ids.shape[1]][None]
        return self.norm(x, "bert/embeddings")

    def attention(self, q_in, k_in, v_in, mask: np.ndarray, scope: str) -> np.ndarray:
        heads = int(self.c["num_attention_heads"])
        q, k, v = (self.dense(t, f"{scope}/{n}") for t, n in ((q_in, "query"), (k_in, "key"), (v_in, "value")))
        b, s, width = q.shape
        split = lambda t: t.reshape(b, s, heads, width // heads).transpose(0, 2, 1, 3)
        scores = split(q) @ split(k).transpose(0, 1, 3, 2) / math.sqrt(width // heads)
        keys = mask[:, None, None, :].astype(np.float64)
        scores = scores * keys + (1.0 - keys) * -6.0
        probs = np.exp(scores - scores.max(-1, keepdims=True))
        probs /= probs.sum(-1, keepdims=True)
        return (probs @ split(v)).transpose(0, 2, 1, 3).reshape(b, s, width)

    def layer(self, x: np.ndarray, mask: np.ndarray, p: str) -> np.ndarray:
        c = self.c
        q = k = v = layer_input = x
        if c["use_bottleneck"]:
            layer_input = self.norm(self.dense(x, f"{p}bottleneck/input/dense"), f"{p}bottleneck/input")
            if c["use_bottleneck_attention"]:
                q = k = v = layer_input
            elif c["key_query_shared_bottleneck"]:
                q = k = self.norm(self.dense(x, f"{p}bottleneck/attention/dense"), f"{p}bottleneck/attention")
        context = self.attention(q, k, v, mask, f"{p}attention/self")
        h = self.norm(self.dense(context, f"{p}attention/output/dense") + layer_input, f"{p}attention/output")
        for f in range(int(c["num_feedforward_networks"]) - 1):
            inner = self.act(self.dense(h, f"{p}ffn_layer_{f}/intermediate/dense"))
            h = self.norm(self.dense(inner, f"{p}ffn_layer_{f}/output/dense") + h, f"{p}ffn_layer_{f}/output")
        out = self.norm(self.dense(self.act(self.dense(h, f"{p}intermediate/dense")), f"{p}output/dense") + h,
                        f"{p}output")
        if c["use_bottleneck"]:
            out = self.norm(self.dense(out, f"{p}output/bottleneck/dense") + x, f"{p}output/bottleneck")
        return out

    def embedding_size(self) -> int:
        return int(self.c.get("embedding_size") or self.c["hidden_size"])

    def heads(self, x: np.ndarray, out: dict) -> None:
        names, get = self.names, self.get
        pooled = x[:, 0]
        if "bert/pooler/dense/kernel" in names:
            pooled = out["pooler_output"] = np.tanh(self.dense(x[:, 0], "bert/pooler/dense"))
        if "cls/predictions/output_bias" in names:
            t = self.act(self.dense(x, "cls/predictions/transform/dense"))
            t = layer_norm(t, get("cls/predictions/transform/LayerNorm/gamma"),
                           get("cls/predictions/transform/LayerNorm/beta"))
            # the decoder [word table, extra_output_weights] (concatenated along the hidden axis), in row chunks
            words = times_transposed(get, "bert/embeddings/word_embeddings", t[..., :self.embedding_size()])
            if "cls/predictions/extra_output_weights" in names:
                words = words + times_transposed(get, "cls/predictions/extra_output_weights",
                                                 t[..., self.embedding_size():])
            out["mlm_logits"] = words + get("cls/predictions/output_bias")
        for head, key in (("cls/seq_relationship/", "nsp_logits"), ("", "logits")):
            if f"{head}output_weights" in names:
                out[key] = pooled @ get(f"{head}output_weights").T + get(f"{head}output_bias")
        if "cls/squad/output_weights" in names:
            logits = x @ get("cls/squad/output_weights").T + get("cls/squad/output_bias")
            out["start_logits"], out["end_logits"] = logits[..., 0], logits[..., 1]


def mobilebert_reference_forward(get: Getter, names: set[str], config: Mapping, inputs: Mapping[str, np.ndarray]
                                 ) -> dict[str, np.ndarray]:
    """Outputs of an official MobileBERT checkpoint for ``inputs``: every layer's hidden states
    (``hidden_states``, the embeddings first), ``last_hidden_state``, the pooled output when there is a
    pooler, and every head present (MLM, NSP, classifier, SQuAD).

    Args:
        get: name -> float64 array of a TF variable.
        names: the TF variable names available (decides which heads run).
        config: the official ``bert_config.json`` values.
        inputs: ``input_ids``, ``token_type_ids``, ``attention_mask`` ([batch, seq]).
    """
    model = _Model(get, names, config)
    x = model.embeddings(inputs)
    states = [x]
    for i in range(int(model.c["num_hidden_layers"])):
        x = model.layer(x, inputs["attention_mask"], f"bert/encoder/layer_{i}/")
        states.append(x)
    out = {"last_hidden_state": x, "hidden_states": np.stack(states)}
    model.heads(x, out)
    return out
