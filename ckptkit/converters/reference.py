"""NumPy forward passes over *TF* variable names and layouts, in float64: the independent
reference that ``verify`` compares a converted transformers model against.

They follow google-research/bert's modeling.py: additive -10000 attention mask, LayerNorm
epsilon 1e-12, Google's ``gelu`` = the tanh approximation.

Example:
    >>> float(ACTIVATIONS["gelu_tanh"](np.array([1.0]))[0].round(6))
    0.841192
"""

from __future__ import annotations

import math
import threading
from typing import Callable, Mapping

import numpy as np

__all__ = ["ACTIVATIONS", "GOOGLE_ACTIVATIONS", "layer_norm", "dense", "self_attention", "fixed_inputs",
           "embedding_rows", "times_transposed", "float64_getter",
           "bert_encoder", "bert_heads", "bert_reference_forward"]

_erf = np.vectorize(math.erf, otypes=[np.float64])

ACTIVATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "gelu_tanh": lambda x: 0.5 * x * (1.0 + np.tanh(math.sqrt(2.0 / math.pi) * (x + 0.044715 * x ** 3))),
    "gelu_erf": lambda x: 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0))),
    "relu": lambda x: np.maximum(x, 0.0),
    "tanh": np.tanh,
    "linear": lambda x: x,
    "swish": lambda x: x / (1.0 + np.exp(-x)),
}
# What the name in a Google bert_config.json means in Google's code.
GOOGLE_ACTIVATIONS = {"gelu": "gelu_tanh", "relu": "relu", "tanh": "tanh", "linear": "linear", "swish": "swish"}

Getter = Callable[[str], np.ndarray]


def layer_norm(x: np.ndarray, gamma: np.ndarray, beta: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * gamma + beta


def dense(x: np.ndarray, kernel: np.ndarray, bias: np.ndarray | None = None) -> np.ndarray:
    """TF layout: kernel is [in, out]. Leading dimensions are flattened into one matrix product (one BLAS
    call instead of one per batch row)."""
    y = (x.reshape(-1, x.shape[-1]) @ kernel).reshape(*x.shape[:-1], kernel.shape[-1])
    return y + bias if bias is not None else y


def self_attention(x: np.ndarray, q: np.ndarray, k: np.ndarray, v: np.ndarray, mask_add: np.ndarray,
                   heads: int) -> np.ndarray:
    """Scaled dot-product attention over [batch, seq, hidden] projections; returns the context."""
    b, s, h = q.shape
    d = h // heads
    split = lambda t: t.reshape(b, s, heads, d).transpose(0, 2, 1, 3)
    scores = split(q) @ split(k).transpose(0, 1, 3, 2) / math.sqrt(d) + mask_add[:, None, None, :]
    scores = scores - scores.max(-1, keepdims=True)
    probs = np.exp(scores)
    probs /= probs.sum(-1, keepdims=True)
    return (probs @ split(v)).transpose(0, 2, 1, 3).reshape(b, s, h)


def fixed_inputs(*, vocab_size: int, max_positions: int, type_vocab_size: int, seq_len: int = 16,
                 seed: int = 1234) -> dict[str, np.ndarray]:
    """A deterministic batch of two rows, the second padded, both segments used when possible."""
    rng = np.random.default_rng(seed)
    seq = min(seq_len, max_positions)
    ids = rng.integers(0, vocab_size, size=(2, seq))
    mask = np.ones((2, seq), dtype=np.int64)
    mask[1, seq - max(1, seq // 3):] = 0
    types = np.zeros((2, seq), dtype=np.int64)
    if type_vocab_size > 1:
        types[0, seq // 2:] = 1
    return {"input_ids": ids.astype(np.int64), "token_type_ids": types, "attention_mask": mask}


def bert_encoder(get: Getter, config: Mapping, x: np.ndarray, attention_mask: np.ndarray, *,
                 scope: str = "bert", act: Callable[[np.ndarray], np.ndarray]) -> np.ndarray:
    """Run every ``{scope}/encoder/layer_i`` over embeddings ``x``."""
    mask_add = (1.0 - attention_mask.astype(np.float64)) * -10000.0
    heads = int(config["num_attention_heads"])
    for i in range(int(config["num_hidden_layers"])):
        p = f"{scope}/encoder/layer_{i}/"
        q, k, v = (dense(x, get(f"{p}attention/self/{n}/kernel"), get(f"{p}attention/self/{n}/bias"))
                   for n in ("query", "key", "value"))
        context = self_attention(x, q, k, v, mask_add, heads)
        attn = dense(context, get(f"{p}attention/output/dense/kernel"), get(f"{p}attention/output/dense/bias"))
        x = layer_norm(attn + x, get(f"{p}attention/output/LayerNorm/gamma"),
                       get(f"{p}attention/output/LayerNorm/beta"))
        inter = act(dense(x, get(f"{p}intermediate/dense/kernel"), get(f"{p}intermediate/dense/bias")))
        out = dense(inter, get(f"{p}output/dense/kernel"), get(f"{p}output/dense/bias"))
        x = layer_norm(out + x, get(f"{p}output/LayerNorm/gamma"), get(f"{p}output/LayerNorm/beta"))
    return x


_KEPT_BYTES = 1 << 20


def float64_getter(stored: Callable[[str], np.ndarray]) -> Getter:
    """A forward pass's ``get`` over ``stored`` (name -> the tensor as stored, read when asked): each tensor in
    float64 when the pass reaches it, so about one layer's weights are held at a time; vectors (biases, norms)
    are kept, matrices read again when used again. ``get.stored`` is ``stored``, for chunked use of the big
    tables (:func:`embedding_rows`, :func:`times_transposed`)."""
    small: dict[str, np.ndarray] = {}

    def get(name: str) -> np.ndarray:
        if name in small:
            return small[name]
        value = np.asarray(stored(name), dtype=np.float64)
        if value.ndim <= 1 and value.nbytes <= _KEPT_BYTES:
            small[name] = value
        return value

    get.stored = stored  # type: ignore[attr-defined]
    return get


_ROWS_PER_CHUNK = 4096
# verify runs the reference and the hub-side forward side by side: only one of them holds a whole (stored)
# vocabulary table at a time, so their peaks do not add up
_ONE_TABLE_AT_A_TIME = threading.Lock()


def embedding_rows(get: Getter, name: str, ids: np.ndarray) -> np.ndarray:
    """``get(name)[ids]`` in float64, converting only the rows used when the getter can give the stored
    array (``get.stored``: verify's, so a 30k-row vocabulary is never held in float64)."""
    stored = getattr(get, "stored", None)
    if stored is None:
        return get(name)[ids]
    with _ONE_TABLE_AT_A_TIME:
        return stored(name)[ids].astype(np.float64)


def times_transposed(get: Getter, name: str, x: np.ndarray) -> np.ndarray:
    """``x @ get(name).T`` (tied output embeddings), in float64 chunks of rows of the stored matrix when the
    getter offers ``get.stored``."""
    stored = getattr(get, "stored", None)
    if stored is None:
        return x @ get(name).T
    with _ONE_TABLE_AT_A_TIME:
        matrix = stored(name)
        return np.concatenate([x @ matrix[i:i + _ROWS_PER_CHUNK].astype(np.float64).T
                               for i in range(0, matrix.shape[0], _ROWS_PER_CHUNK)], axis=-1)


def bert_embeddings(get: Getter, inputs: Mapping[str, np.ndarray], *, scope: str = "bert") -> np.ndarray:
    ids, types = inputs["input_ids"], inputs["token_type_ids"]
    e = f"{scope}/embeddings/"
    x = embedding_rows(get, f"{e}word_embeddings", ids) + get(f"{e}position_embeddings")[: ids.shape[1]][None]
    x = x + get(f"{e}token_type_embeddings")[types]
    return layer_norm(x, get(f"{e}LayerNorm/gamma"), get(f"{e}LayerNorm/beta"))


def bert_heads(get: Getter, names: set[str], x: np.ndarray, *, act: Callable[[np.ndarray], np.ndarray],
               pair_key: str) -> dict[str, np.ndarray]:
    """The heads of a Google BERT-style checkpoint present in ``names``, on hidden states ``x``.

    ``pooler_output``, ``mlm_logits`` (tied to the word embeddings), PAIR_KEY (``cls/seq_relationship``:
    NSP for BERT, SOP for ALBERT), ``logits`` and ``start_logits``/``end_logits``.
    """
    out = {}
    if "bert/pooler/dense/kernel" in names:
        out["pooler_output"] = np.tanh(dense(x[:, 0], get("bert/pooler/dense/kernel"), get("bert/pooler/dense/bias")))
    if "cls/predictions/output_bias" in names:
        t = act(dense(x, get("cls/predictions/transform/dense/kernel"), get("cls/predictions/transform/dense/bias")))
        t = layer_norm(t, get("cls/predictions/transform/LayerNorm/gamma"),
                       get("cls/predictions/transform/LayerNorm/beta"))
        out["mlm_logits"] = times_transposed(get, "bert/embeddings/word_embeddings", t) + \
            get("cls/predictions/output_bias")
    pooled = out.get("pooler_output")
    for head, key in (("cls/seq_relationship/", pair_key), ("", "logits")):
        if f"{head}output_weights" in names and pooled is not None:
            out[key] = pooled @ get(f"{head}output_weights").T + get(f"{head}output_bias")
    if "cls/squad/output_weights" in names:
        logits = x @ get("cls/squad/output_weights").T + get("cls/squad/output_bias")
        out["start_logits"], out["end_logits"] = logits[..., 0], logits[..., 1]
    return out


def bert_reference_forward(get: Getter, names: set[str], config: Mapping, inputs: Mapping[str, np.ndarray]
                           ) -> dict[str, np.ndarray]:
    """Outputs of a Google BERT checkpoint for ``inputs``: hidden states and every head present.

    Args:
        get: name -> float64 array of a TF variable.
        names: the TF variable names available (decides which heads run).
        config: the Google ``bert_config.json`` values.
    """
    act = ACTIVATIONS[GOOGLE_ACTIVATIONS[config.get("hidden_act", "gelu")]]
    x = bert_encoder(get, config, bert_embeddings(get, inputs), inputs["attention_mask"], act=act)
    return {"last_hidden_state": x} | bert_heads(get, names, x, act=act, pair_key="nsp_logits")
