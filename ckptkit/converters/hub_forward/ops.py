"""Primitives of the hub-side NumPy engines, in transformers' layouts and conventions (float64).

- :func:`linear`: a ``torch.nn.Linear`` weight is ``[out, in]``;
- :data:`ACTIVATIONS` / :func:`activation`: what each ``hidden_act`` name means in transformers 5's
  ``ACT2FN`` (``gelu`` is the exact erf form, ``gelu_new`` / ``gelu_pytorch_tanh`` the tanh form,
  ``swish`` and ``silu`` the same function, ...);
- :func:`additive_mask` + :func:`attention`: transformers' eager attention, whose padding mask adds
  the dtype's most negative number (``torch.finfo(dtype).min``, not BERT's old -10000) at padded keys;
- :func:`layer_norm`, :func:`embedding_rows`, :func:`times_transposed`: shared with the TF-side
  reference (they do not depend on the names or the layout).

An engine raises :class:`Unsupported` for a config or class it does not compute exactly as
transformers does (verify then uses the transformers engine when it can).

Example:
    >>> float(activation("gelu_new")(np.array([1.0]))[0].round(6)), float(activation("gelu")(np.array([1.0]))[0].round(6))
    (0.841192, 0.841345)
"""

from __future__ import annotations

import math
from typing import Callable, Mapping

import numpy as np

from ckptkit.converters.reference import ACTIVATIONS as _REFERENCE_ACTIVATIONS
from ckptkit.converters.reference import embedding_rows, layer_norm, self_attention, times_transposed

__all__ = ["ACTIVATIONS", "Unsupported", "activation", "linear", "layer_norm", "additive_mask", "attention",
           "embedding_rows", "times_transposed", "pooler", "eps_of", "head_count"]


class Unsupported(Exception):
    """The engine does not compute this config / class as transformers does; the message says what."""


_gelu = _REFERENCE_ACTIVATIONS["gelu_erf"]
_gelu_tanh = _REFERENCE_ACTIVATIONS["gelu_tanh"]
_erf = np.vectorize(math.erf, otypes=[np.float64])


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # = 1 / (1 + exp(-x)), without overflow warnings


def _softplus(x: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, x)


def _laplace(x: np.ndarray, mu: float = 0.707107, sigma: float = 0.282095) -> np.ndarray:
    return 0.5 * (1.0 + _erf((x - mu) / (sigma * math.sqrt(2.0))))


# transformers 5 activations.ACT2CLS, name -> function (prelu and xielu carry weights: not here)
ACTIVATIONS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "gelu": _gelu,
    "gelu_python": _gelu,
    "gelu_10": lambda x: np.clip(_gelu(x), -10.0, 10.0),
    "gelu_new": _gelu_tanh,
    "gelu_pytorch_tanh": _gelu_tanh,
    "gelu_python_tanh": _gelu_tanh,
    "gelu_accurate": _gelu_tanh,
    "gelu_fast": lambda x: 0.5 * x * (1.0 + np.tanh(x * 0.7978845608 * (1.0 + 0.044715 * x * x))),
    "quick_gelu": lambda x: x * _sigmoid(1.702 * x),
    "laplace": _laplace,
    "linear": lambda x: x,
    "relu": lambda x: np.maximum(x, 0.0),
    "relu2": lambda x: np.maximum(x, 0.0) ** 2,
    "relu6": lambda x: np.clip(x, 0.0, 6.0),
    "leaky_relu": lambda x: np.where(x >= 0.0, x, 0.01 * x),
    "hardswish": lambda x: x * np.clip(x + 3.0, 0.0, 6.0) / 6.0,
    "sigmoid": _sigmoid,
    "silu": lambda x: x * _sigmoid(x),
    "swish": lambda x: x * _sigmoid(x),
    "mish": lambda x: x * np.tanh(_softplus(x)),
    "sqrtsoftplus": lambda x: np.sqrt(_softplus(x)),
    "tanh": np.tanh,
}


def activation(name: object) -> Callable[[np.ndarray], np.ndarray]:
    """transformers' activation called ``name`` (a config's ``hidden_act``)."""
    if not isinstance(name, str) or name not in ACTIVATIONS:
        raise Unsupported(f"hidden_act {name!r} (the NumPy engine knows " + ", ".join(sorted(ACTIVATIONS)) + ")")
    return ACTIVATIONS[name]


def linear(x: np.ndarray, weight: np.ndarray, bias: np.ndarray | None = None) -> np.ndarray:
    """``torch.nn.Linear``: ``x @ weight.T + bias`` with ``weight`` [out, in]; leading dimensions are
    flattened into one matrix product."""
    y = (x.reshape(-1, x.shape[-1]) @ weight.T).reshape(*x.shape[:-1], weight.shape[0])
    return y + bias if bias is not None else y


def additive_mask(attention_mask: np.ndarray, dtype=np.float64) -> np.ndarray:
    """[batch, keys] 0/1 padding mask -> what transformers adds to the scores: 0 at real keys, the
    dtype's minimum at padded ones (masking_utils' eager mask)."""
    return np.where(np.asarray(attention_mask) > 0, 0.0, np.finfo(dtype).min).astype(dtype)


def attention(q: np.ndarray, k: np.ndarray, v: np.ndarray, mask_add: np.ndarray, heads: int) -> np.ndarray:
    """Eager softmax attention of [batch, seq, heads * head_dim] projections scaled by head_dim ** -0.5,
    ``mask_add`` [batch, keys] added to the scores; returns the [batch, seq, hidden] context."""
    return self_attention(q, q, k, v, mask_add, heads)


def pooler(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """BERT's pooler: tanh of a Linear over the first token's hidden state."""
    return np.tanh(linear(x[:, 0], weight, bias))


def eps_of(config: Mapping, default: float = 1e-12) -> float:
    """``layer_norm_eps`` as the config class reads it (its class default when absent)."""
    return float(config.get("layer_norm_eps", default))


def head_count(config: Mapping) -> int:
    """``num_attention_heads``, required."""
    return int(config["num_attention_heads"])
