"""BigBird-Pegasus as transformers 5 computes it (``modeling_bigbird_pegasus``), in NumPy float64 over a hub
folder's own weights and ``config.json``: the ``bigbird_pegasus`` engine of :mod:`ckptkit.converters.hub_forward`.

What transformers does, and this engine therefore follows:

- config.json values missing from the file take ``BigBirdPegasusConfig``'s defaults;
- word embeddings times ``sqrt(d_model)`` under ``scale_embedding``; the encoder's and the decoder's own learned
  position tables from position 0; ``encoder/decoder.embed_tokens`` and ``lm_head`` are ``model.shared``
  while ``tie_word_embeddings`` (else the folder's own tensors);
- pre-norm layers; every LayerNorm is ``nn.LayerNorm(d_model)``: epsilon 1e-5 whatever the config says;
  the stacks end with ``layernorm_embedding``;
- the encoder's ``block_sparse`` attention falls back to full attention when the sequence has at most
  ``(5 + 2 * num_random_blocks) * block_size`` tokens (always so at verify's 16 tokens with real block sizes);
  longer sequences are refused here (block-sparse attention is not implemented);
- padded encoder keys and future decoder positions get float32's lowest value added to their scores;
- ``logits = decoder_output @ lm_head.T + final_logits_bias`` (zeros when the folder has none).

Outputs under verify's keys (:func:`ckptkit.converters.reference_pegasus.encoder_decoder_outputs`):
``encoder_last_hidden_state`` zeroed at padding, ``last_hidden_state`` (the decoder's, after its final norm),
``logits`` for the generation class.

Example:
    >>> _causal(3)[2].tolist() == [0.0, 0.0, 0.0], bool(_causal(3)[0, 1] < -1e38)
    (True, True)
"""

from __future__ import annotations

import math
from typing import Callable, Mapping

import numpy as np

from ckptkit.converters.hub_forward.ops import (ACTIVATIONS, Unsupported, activation, embedding_rows, layer_norm,
                                                linear, times_transposed)

__all__ = ["pegasus_forward", "PEGASUS_DEFAULTS"]

Getter = Callable[[str], np.ndarray]

# BigBirdPegasusConfig's defaults (transformers 5) for the keys the forward reads
PEGASUS_DEFAULTS: dict[str, object] = {
    "d_model": 1024, "encoder_layers": 16, "decoder_layers": 16, "encoder_attention_heads": 16,
    "decoder_attention_heads": 16, "activation_function": "gelu_new", "scale_embedding": True,
    "attention_type": "block_sparse", "block_size": 64, "num_random_blocks": 3, "tie_word_embeddings": True,
}
_EPS = 1e-5  # nn.LayerNorm's default: transformers builds every BigBird-Pegasus norm without eps
_MASKED = float(np.finfo(np.float32).min)
_CLASSES = ("BigBirdPegasusForConditionalGeneration", "BigBirdPegasusModel")


def _causal(length: int) -> np.ndarray:
    """[length, length] additive mask: 0 on and below the diagonal, masked above."""
    return np.where(np.tril(np.ones((length, length), dtype=bool)), 0.0, _MASKED)


class _Model:
    """config.json (with BigBirdPegasusConfig's defaults) and the folder's weights under the base prefix."""

    def __init__(self, get: Getter, names: set[str], config: Mapping):
        self.get, self.names = get, names
        self.c = c = {**PEGASUS_DEFAULTS, **config}
        self.base = "model." if any(n.startswith("model.encoder.") for n in names) else ""
        if c["activation_function"] not in ACTIVATIONS:
            raise Unsupported(f"activation_function {c['activation_function']!r}")
        self.act = activation(c["activation_function"])
        self.scale = math.sqrt(int(c["d_model"])) if c["scale_embedding"] else 1.0

    def tied(self, own: str, source: str) -> str:
        """The tensor transformers uses for ``own``: ``source`` while tied, else the folder's own if present."""
        if self.c["tie_word_embeddings"] and source in self.names:
            return source
        return own if own in self.names else source

    def linear(self, x: np.ndarray, name: str) -> np.ndarray:
        bias = f"{name}.bias"
        return linear(x, self.get(f"{name}.weight"), self.get(bias) if bias in self.names else None)

    def norm(self, x: np.ndarray, name: str) -> np.ndarray:
        return layer_norm(x, self.get(f"{name}.weight"), self.get(f"{name}.bias"), _EPS)

    def attention(self, x: np.ndarray, memory: np.ndarray, mask_add: np.ndarray, heads: int,
                  projections: tuple[str, str, str, str]) -> np.ndarray:
        """Multi-head attention: queries from ``x``, keys/values from ``memory``, ``mask_add`` [batch|1, from, to]
        added to the scores, then the output projection (the last of ``projections``)."""
        b, f, h = x.shape
        d = h // heads
        q, k, v = (self.linear(src, name).reshape(b, -1, heads, d).transpose(0, 2, 1, 3)
                   for src, name in zip((x, memory, memory), projections))
        scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(d) + mask_add[:, None]
        probs = np.exp(scores - scores.max(-1, keepdims=True))
        probs /= probs.sum(-1, keepdims=True)
        return self.linear((probs @ v).transpose(0, 2, 1, 3).reshape(b, f, h), projections[3])

    def ffn(self, x: np.ndarray, p: str) -> np.ndarray:
        return x + self.linear(self.act(self.linear(self.norm(x, f"{p}final_layer_norm"), f"{p}fc1")), f"{p}fc2")

    def embed(self, ids: np.ndarray, stack: str) -> np.ndarray:
        table = self.tied(f"{self.base}{stack}.embed_tokens.weight", f"{self.base}shared.weight")
        positions = embedding_rows(self.get, f"{self.base}{stack}.embed_positions.weight", np.arange(ids.shape[1]))
        return embedding_rows(self.get, table, ids) * self.scale + positions[None]

    def check_attention(self, length: int) -> None:
        """transformers runs full attention up to (5 + 2 * num_random_blocks) * block_size tokens."""
        full_up_to = (5 + 2 * int(self.c["num_random_blocks"])) * int(self.c["block_size"])
        if self.c["attention_type"] == "block_sparse" and length > full_up_to:
            raise Unsupported(f"block-sparse attention ({length} tokens > {full_up_to}, below which transformers "
                              "runs full attention)")

    def encode(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        self.check_attention(ids.shape[1])
        x = self.embed(ids, "encoder")
        keys = np.where(mask == 0, _MASKED, 0.0)[:, None, :]
        heads = int(self.c["encoder_attention_heads"])
        for i in range(int(self.c["encoder_layers"])):
            p = f"{self.base}encoder.layers.{i}."
            s = f"{p}self_attn.self."
            x = x + self.attention(self.norm(x, f"{p}self_attn_layer_norm"), self.norm(x, f"{p}self_attn_layer_norm"),
                                   keys, heads, (f"{s}query", f"{s}key", f"{s}value", f"{p}self_attn.output"))
            x = self.ffn(x, p)
        return self.norm(x, f"{self.base}encoder.layernorm_embedding")

    def decode(self, ids: np.ndarray, encoder: np.ndarray, mask: np.ndarray) -> np.ndarray:
        y = self.embed(ids, "decoder")
        causal, cross = _causal(ids.shape[1])[None], np.where(mask == 0, _MASKED, 0.0)[:, None, :]
        heads = int(self.c["decoder_attention_heads"])
        for i in range(int(self.c["decoder_layers"])):
            p = f"{self.base}decoder.layers.{i}."
            normed = self.norm(y, f"{p}self_attn_layer_norm")
            y = y + self.attention(normed, normed, causal, heads, _projections(f"{p}self_attn."))
            y = y + self.attention(self.norm(y, f"{p}encoder_attn_layer_norm"), encoder, cross, heads,
                                   _projections(f"{p}encoder_attn."))
            y = self.ffn(y, p)
        return self.norm(y, f"{self.base}decoder.layernorm_embedding")

    def logits(self, decoder: np.ndarray) -> np.ndarray:
        logits = times_transposed(self.get, self.tied("lm_head.weight", f"{self.base}shared.weight"), decoder)
        return logits + self.get("final_logits_bias").reshape(-1) if "final_logits_bias" in self.names else logits


def _projections(p: str) -> tuple[str, str, str, str]:
    return f"{p}q_proj", f"{p}k_proj", f"{p}v_proj", f"{p}out_proj"


def pegasus_forward(get: Getter, names: set[str], config: Mapping, class_name: str,
                    inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The outputs transformers' ``class_name`` (``BigBirdPegasusForConditionalGeneration`` or
    ``BigBirdPegasusModel``) gives for ``inputs``, under verify's keys (module docstring).

    Args:
        get: hub name -> float64 array (``get.stored`` for the shared table in chunks).
        names: the folder's tensor names. config: its config.json. class_name: ``architectures[0]``.
        inputs: ``input_ids``, ``attention_mask`` ([batch, seq]) and ``decoder_input_ids`` ([batch, target]).
    """
    if class_name not in _CLASSES:
        raise Unsupported(f"class {class_name} (the NumPy engine computes {', '.join(_CLASSES)})")
    model = _Model(get, names, config)
    mask = inputs["attention_mask"]
    encoder = model.encode(inputs["input_ids"], mask)
    decoder = model.decode(inputs["decoder_input_ids"], encoder, mask)
    out = {"encoder_last_hidden_state": encoder * mask[..., None], "last_hidden_state": decoder}
    if class_name == "BigBirdPegasusForConditionalGeneration":
        out["logits"] = model.logits(decoder)
    return out
