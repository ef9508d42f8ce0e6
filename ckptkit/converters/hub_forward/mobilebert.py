"""MobileBERT as transformers 5 computes it (``modeling_mobilebert``), in NumPy float64 over a hub folder's
own weights and ``config.json``: the ``mobilebert`` engine of :mod:`ckptkit.converters.hub_forward`.

What transformers does that the official TF code (:mod:`ckptkit.converters.reference_mobilebert`) does not,
and which this engine therefore follows:

- config.json values missing from the file take ``MobileBertConfig``'s defaults (``save_pretrained`` writes
  only what differs from them), ``hidden_act`` by transformers' names (``gelu`` is the erf form);
- the embeddings' and every layer's output LayerNorm are built without ``eps`` (1e-5, ``nn.LayerNorm``'s
  default); the other norms use ``layer_norm_eps``; ``no_norm`` is ``x * weight + bias`` (NoNorm);
- padded keys get the dtype's lowest value added to their scores (they drop out of the softmax);
- ``embedding_transformation`` runs when ``trigram_input`` or ``embedding_size != hidden_size``;
- the MLM decoder is ``[word table; cls.predictions.dense.weight]`` (tied to the word table and
  ``cls.predictions.bias`` unless ``tie_word_embeddings`` is false and the folder has its own).

Example:
    >>> _norm(np.array([[1.0, 3.0]]), np.ones(2), np.zeros(2), "layer_norm", 1e-12).round(6).tolist()
    [[-1.0, 1.0]]
    >>> _norm(np.array([[1.0, 3.0]]), np.full(2, 2.0), np.ones(2), "no_norm", 1e-12).tolist()
    [[3.0, 7.0]]
"""

from __future__ import annotations

from typing import Callable, Mapping

import numpy as np

from ckptkit.converters.hub_forward.ops import (Unsupported, activation, additive_mask, attention, embedding_rows,
                                                layer_norm, linear, times_transposed)

__all__ = ["mobilebert_forward", "MOBILEBERT_DEFAULTS"]

Getter = Callable[[str], np.ndarray]

# MobileBertConfig's defaults (transformers 5) for the keys the forward reads
MOBILEBERT_DEFAULTS: dict[str, object] = {
    "hidden_size": 512, "num_hidden_layers": 24, "num_attention_heads": 4, "intermediate_size": 512,
    "hidden_act": "relu", "layer_norm_eps": 1e-12, "embedding_size": 128, "trigram_input": True,
    "use_bottleneck": True, "intra_bottleneck_size": 128, "use_bottleneck_attention": False,
    "key_query_shared_bottleneck": True, "num_feedforward_networks": 4, "normalization_type": "no_norm",
    "classifier_activation": True, "tie_word_embeddings": True,
}
_TORCH_LAYER_NORM_EPS = 1e-5


def _norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, kind: str, eps: float) -> np.ndarray:
    """``no_norm`` (NoNorm: ``x * weight + bias``) or ``layer_norm``."""
    return x * weight + bias if kind == "no_norm" else layer_norm(x, weight, bias, eps)


_COLUMNS_PER_CHUNK = 4096


def _times_columns(get: Getter, name: str, x: np.ndarray) -> np.ndarray:
    """``x @ get(name)`` for a ``[in, vocab]`` matrix, in float64 chunks of columns of the stored array when the
    getter offers ``get.stored`` (the MLM head's extra ``[hidden - embedding, vocab]`` weights)."""
    stored = getattr(get, "stored", None)
    if stored is None:
        return x @ get(name)
    matrix = stored(name)
    return np.concatenate([x @ matrix[:, i:i + _COLUMNS_PER_CHUNK].astype(np.float64)
                           for i in range(0, matrix.shape[1], _COLUMNS_PER_CHUNK)], axis=-1)


class _Model:
    """config.json (with MobileBertConfig's defaults) and the folder's weights under the base prefix."""

    def __init__(self, get: Getter, names: set[str], config: Mapping):
        self.get, self.names = get, names
        self.c = c = {**MOBILEBERT_DEFAULTS, **config}
        self.base = "mobilebert." if "mobilebert.embeddings.word_embeddings.weight" in names else ""
        self.act = activation(c["hidden_act"])
        self.kind = str(c["normalization_type"])
        if self.kind not in ("no_norm", "layer_norm"):
            raise Unsupported(f"normalization_type {self.kind!r}")
        self.eps = float(c["layer_norm_eps"])
        plain_bottleneck = c["use_bottleneck"] and not (c["use_bottleneck_attention"]
                                                        or c["key_query_shared_bottleneck"])
        if plain_bottleneck and int(c["intra_bottleneck_size"]) != int(c["hidden_size"]):
            raise Unsupported("use_bottleneck without a shared bottleneck and intra_bottleneck_size != hidden_size "
                              "(transformers' query layer cannot take the hidden states either)")

    def linear(self, x: np.ndarray, name: str) -> np.ndarray:
        """``nn.Linear`` ``name``: weight ``[out, in]``, the bias when the folder has one."""
        bias = f"{name}.bias"
        return linear(x, self.get(f"{name}.weight"), self.get(bias) if bias in self.names else None)

    def norm(self, x: np.ndarray, name: str, eps: float | None = None, kind: str | None = None) -> np.ndarray:
        return _norm(x, self.get(f"{name}.weight"), self.get(f"{name}.bias"), kind or self.kind,
                     self.eps if eps is None else eps)

    def embeddings(self, inputs: Mapping[str, np.ndarray]) -> np.ndarray:
        ids = inputs["input_ids"]
        e = f"{self.base}embeddings."
        x = embedding_rows(self.get, f"{e}word_embeddings.weight", ids)
        if self.c["trigram_input"]:
            pad = np.zeros_like(x[:, :1])
            x = np.concatenate([np.concatenate([x[:, 1:], pad], 1), x, np.concatenate([pad, x[:, :-1]], 1)], 2)
        if self.c["trigram_input"] or int(self.c["embedding_size"]) != int(self.c["hidden_size"]):
            x = self.linear(x, f"{e}embedding_transformation")
        types = inputs.get("token_type_ids")
        types = np.zeros_like(ids) if types is None else types
        x = x + embedding_rows(self.get, f"{e}position_embeddings.weight", np.arange(ids.shape[1]))[None]
        x = x + self.get(f"{e}token_type_embeddings.weight")[types]
        return self.norm(x, f"{e}LayerNorm", _TORCH_LAYER_NORM_EPS)

    def attention(self, q_in: np.ndarray, k_in: np.ndarray, v_in: np.ndarray, mask_add: np.ndarray,
                  p: str) -> np.ndarray:
        q, k, v = (self.linear(t, f"{p}{n}") for t, n in ((q_in, "query"), (k_in, "key"), (v_in, "value")))
        return attention(q, k, v, mask_add, int(self.c["num_attention_heads"]))

    def bottleneck(self, x: np.ndarray, p: str) -> tuple[np.ndarray, ...]:
        """(query, key, value, residual) inputs of a layer's attention (MobileBertLayer + Bottleneck)."""
        if not self.c["use_bottleneck"]:
            return x, x, x, x
        inner = self.norm(self.linear(x, f"{p}bottleneck.input.dense"), f"{p}bottleneck.input.LayerNorm")
        if self.c["use_bottleneck_attention"]:
            return inner, inner, inner, inner
        if self.c["key_query_shared_bottleneck"]:
            shared = self.norm(self.linear(x, f"{p}bottleneck.attention.dense"), f"{p}bottleneck.attention.LayerNorm")
            return shared, shared, x, inner
        return x, x, x, inner

    def layer(self, x: np.ndarray, mask_add: np.ndarray, p: str) -> np.ndarray:
        q, k, v, residual = self.bottleneck(x, p)
        context = self.attention(q, k, v, mask_add, f"{p}attention.self.")
        h = self.norm(self.linear(context, f"{p}attention.output.dense") + residual, f"{p}attention.output.LayerNorm")
        for f in range(int(self.c["num_feedforward_networks"]) - 1):
            inner = self.act(self.linear(h, f"{p}ffn.{f}.intermediate.dense"))
            h = self.norm(self.linear(inner, f"{p}ffn.{f}.output.dense") + h, f"{p}ffn.{f}.output.LayerNorm")
        out = self.linear(self.act(self.linear(h, f"{p}intermediate.dense")), f"{p}output.dense")
        out = self.norm(out + h, f"{p}output.LayerNorm", _TORCH_LAYER_NORM_EPS)
        if self.c["use_bottleneck"]:
            out = self.norm(self.linear(out, f"{p}output.bottleneck.dense") + x, f"{p}output.bottleneck.LayerNorm")
        return out

    def encode(self, inputs: Mapping[str, np.ndarray]) -> np.ndarray:
        x = self.embeddings(inputs)
        mask = inputs.get("attention_mask")
        mask = np.ones_like(inputs["input_ids"]) if mask is None else mask
        mask_add = additive_mask(mask)
        for i in range(int(self.c["num_hidden_layers"])):
            x = self.layer(x, mask_add, f"{self.base}encoder.layer.{i}.")
        return x

    def pooled(self, x: np.ndarray) -> np.ndarray:
        """MobileBertPooler: tanh(dense(first token)) with ``classifier_activation``, else the first token."""
        if not self.c["classifier_activation"]:
            return x[:, 0]
        return np.tanh(self.linear(x[:, 0], f"{self.base}pooler.dense"))

    def tied(self, own: str, source: str) -> str:
        """The tensor transformers uses for ``own``: ``source`` while tied, else the folder's own if present."""
        return own if not self.c["tie_word_embeddings"] and own in self.names else source

    def mlm_logits(self, x: np.ndarray) -> np.ndarray:
        """MobileBertLMPredictionHead: transform, then ``[decoder.weight.T; dense.weight]`` and the bias."""
        t = self.norm(self.act(self.linear(x, "cls.predictions.transform.dense")),
                      "cls.predictions.transform.LayerNorm", kind="layer_norm")
        table = self.tied("cls.predictions.decoder.weight", f"{self.base}embeddings.word_embeddings.weight")
        width = int(self.c["embedding_size"])
        logits = times_transposed(self.get, table, t[..., :width])
        if "cls.predictions.dense.weight" in self.names:
            logits = logits + _times_columns(self.get, "cls.predictions.dense.weight", t[..., width:])
        return logits + self.get(self.tied("cls.predictions.decoder.bias", "cls.predictions.bias"))


def _span(m: _Model, x: np.ndarray) -> dict[str, np.ndarray]:
    logits = m.linear(x, "qa_outputs")
    return {"start_logits": logits[..., 0], "end_logits": logits[..., 1]}


# class -> the outputs transformers' class gives (beside last_hidden_state), under verify's keys
_HEADS: dict[str, Callable[[_Model, np.ndarray], dict[str, np.ndarray]]] = {
    "MobileBertModel": lambda m, x: {"pooler_output": m.pooled(x)},
    "MobileBertForPreTraining": lambda m, x: {"mlm_logits": m.mlm_logits(x),
                                              "nsp_logits": m.linear(m.pooled(x), "cls.seq_relationship")},
    "MobileBertForMaskedLM": lambda m, x: {"mlm_logits": m.mlm_logits(x)},
    "MobileBertForNextSentencePrediction": lambda m, x: {"nsp_logits": m.linear(m.pooled(x), "cls.seq_relationship")},
    "MobileBertForSequenceClassification": lambda m, x: {"logits": m.linear(m.pooled(x), "classifier")},
    "MobileBertForTokenClassification": lambda m, x: {"logits": m.linear(x, "classifier")},
    "MobileBertForQuestionAnswering": _span,
}


def mobilebert_forward(get: Getter, names: set[str], config: Mapping, class_name: str,
                       inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The outputs transformers' ``class_name`` gives for ``inputs`` (see :mod:`ckptkit.converters.hub_forward`):
    ``last_hidden_state`` and the class's heads (``pooler_output``, ``mlm_logits``, ``nsp_logits``, ``logits``,
    ``start_logits``/``end_logits``).

    Args:
        get: hub name -> float64 array (``get.stored`` for the word table in chunks).
        names: the folder's tensor names. config: its config.json. class_name: ``architectures[0]``.
        inputs: ``input_ids``, ``attention_mask``, ``token_type_ids`` ([batch, seq]).
    """
    if class_name not in _HEADS:
        raise Unsupported(f"class {class_name} (the NumPy engine computes {', '.join(_HEADS)})")
    model = _Model(get, names, config)
    x = model.encode(inputs)
    return {"last_hidden_state": x, **_HEADS[class_name](model, x)}
