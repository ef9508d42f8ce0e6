"""NumPy reference forward pass of a BigBird-Pegasus encoder-decoder over its *TF* variables (float64), after
google-research/bigbird's ``TransformerModel`` (modeling.py, encoder.py, decoder.py, attention.py, utils.py):
what ``verify`` compares a converted ``BigBirdPegasus*`` model against.

- Embeddings: ``word * sqrt(hidden)`` under ``rescale_embedding``, plus the position table from position 0
  (the encoder and the decoder slice the same table).
- Pre-norm layers, LayerNorm epsilon 1e-12, attention scores ``q.k / sqrt(head_size)`` plus ``-10000 * (1 - mask)``.
- The encoder's full attention masks ``from_mask x to_mask``: a padded *query* row gets -10000 on every key,
  so it attends uniformly-shifted to all keys (padding included) where transformers masks only the keys;
  padded encoder positions therefore differ by design, and ``verify`` compares encoder states at real tokens.
  The decoder never sees them (its cross-attention masks padded keys), so decoder states and logits are
  compared everywhere.
- The decoder: causal self-attention, cross-attention over the encoder output, the final ``decoder/LayerNorm``,
  logits ``x @ word_embeddings.T`` (no bias).
- Full attention only: ``verify`` feeds 16 tokens, all inside BigBird's first (global) block, where block-sparse
  attention equals full attention at every real token; transformers also falls back to full attention there.

Example:
    >>> batch = encoder_decoder_inputs({"input_ids": np.array([[0, 7, 9]]), "attention_mask": np.array([[1, 1, 0]]),
    ...                                 "token_type_ids": np.zeros((1, 3), int)},
    ...                                {"vocab_size": 10, "is_encoder_decoder": True})
    >>> batch["input_ids"].tolist(), int(batch["decoder_input_ids"][0, 0]), "token_type_ids" in batch
    ([[1, 7, 0]], 2, False)
"""

from __future__ import annotations

import math
import re
from typing import Mapping

import numpy as np

from ckptkit.converters.reference import (ACTIVATIONS, GOOGLE_ACTIVATIONS, Getter, dense, embedding_rows, layer_norm,
                                          times_transposed)

__all__ = ["pegasus_reference_forward", "encoder_decoder_inputs", "encoder_decoder_outputs", "DECODER_LENGTH",
           "DECODER_START"]

DECODER_START = 2     # TransformerModel._get_start_token_ids
DECODER_LENGTH = 6    # decoder_input_ids verify feeds: <s> then 5 tokens
_NEG = -10000.0


def encoder_decoder_inputs(inputs: Mapping[str, np.ndarray], hf_config: Mapping) -> dict[str, np.ndarray]:
    """``verify``'s batch made an encoder-decoder's: input ids 0 exactly at padding (the official mask is
    ``input_ids > 0``), no token types, and ``decoder_input_ids`` starting with <s> (2). Other models' batches
    are returned unchanged."""
    if not hf_config.get("is_encoder_decoder"):
        return dict(inputs)
    vocab, mask = int(hf_config["vocab_size"]), inputs["attention_mask"]
    ids = np.where(mask == 1, np.maximum(inputs["input_ids"], 1), 0).astype(np.int64)
    rng = np.random.default_rng(4321)
    decoder = rng.integers(3, max(vocab, 4), size=(ids.shape[0], DECODER_LENGTH)).astype(np.int64)
    decoder[:, 0] = DECODER_START
    return {"input_ids": ids, "attention_mask": mask, "decoder_input_ids": decoder}


def encoder_decoder_outputs(out, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The outputs of a transformers encoder-decoder (a Seq2Seq output with hidden states) under the reference's
    keys, encoder states zeroed at padding (see the module docstring); {} for other outputs."""
    encoder = getattr(out, "encoder_last_hidden_state", None)
    if encoder is None:
        return {}
    result = {"encoder_last_hidden_state": encoder.numpy() * inputs["attention_mask"][..., None]}
    decoder_states = getattr(out, "decoder_hidden_states", None)
    if decoder_states:
        result["last_hidden_state"] = decoder_states[-1].numpy()
    return result


def _scope(names: set[str]) -> str:
    found = sorted(n.split("/", 1)[0] for n in names if re.match(r"^[^/]+/embeddings/word_embeddings$", n))
    return found[0] if found else "pegasus"


class _Model:
    """The TF variables of one scope, read as 2-D [in, out] kernels whatever their stored layout."""

    def __init__(self, get: Getter, names: set[str], config: Mapping):
        self.get, self.names, self.scope = get, names, _scope(names)
        self.heads = int(config["num_attention_heads"])
        self.act = ACTIVATIONS[GOOGLE_ACTIVATIONS[str(config.get("hidden_act", "relu"))]]

    def kernel(self, name: str) -> np.ndarray:
        value = self.get(name)
        if value.ndim == 3:  # [hidden, heads, head_size] (query/key/value) or [heads, head_size, hidden] (output)
            return value.reshape(-1, value.shape[-1]) if "/dense/" in name else value.reshape(value.shape[0], -1)
        return value

    def dense(self, x: np.ndarray, scope: str) -> np.ndarray:
        bias = f"{scope}/bias"
        return dense(x, self.kernel(f"{scope}/kernel"), self.get(bias).reshape(-1) if bias in self.names else None)

    def norm(self, x: np.ndarray, scope: str) -> np.ndarray:
        return layer_norm(x, self.get(f"{scope}/LayerNorm/gamma"), self.get(f"{scope}/LayerNorm/beta"))

    def attention(self, x: np.ndarray, memory: np.ndarray, adder: np.ndarray, scope: str, out: str) -> np.ndarray:
        """MultiHeadedAttentionLayer ``scope`` (queries from x, keys/values from memory), then the projection
        ``out``; ``adder`` [batch, from, to] is added to the scores."""
        b, f, h = x.shape
        d = h // self.heads
        q, k, v = (self.dense(src, f"{scope}/{n}").reshape(b, -1, self.heads, d).transpose(0, 2, 1, 3)
                   for src, n in ((x, "query"), (memory, "key"), (memory, "value")))
        scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(d) + adder[:, None]
        scores -= scores.max(-1, keepdims=True)
        probs = np.exp(scores)
        probs /= probs.sum(-1, keepdims=True)
        context = (probs @ v).transpose(0, 2, 1, 3).reshape(b, f, h)
        return self.dense(context, f"{out}/dense")

    def ffn(self, x: np.ndarray, p: str) -> np.ndarray:
        return x + self.dense(self.act(self.dense(self.norm(x, p + "intermediate"), p + "intermediate/dense")),
                              p + "output/dense")

    def embed(self, ids: np.ndarray, rescale: bool) -> np.ndarray:
        """Rows of the word and position tables (only those rows converted to float64)."""
        words = embedding_rows(self.get, f"{self.scope}/embeddings/word_embeddings", ids)
        x = words * (math.sqrt(words.shape[-1]) if rescale else 1.0)
        return x + embedding_rows(self.get, f"{self.scope}/embeddings/position_embeddings",
                                  np.arange(ids.shape[1]))[None]


def _layers(names: set[str], scope: str, stack: str) -> int:
    pattern = re.compile(rf"^{re.escape(scope)}/{stack}/layer_(\d+)/")
    return 1 + max((int(m[1]) for m in map(pattern.match, names) if m), default=-1)


def pegasus_reference_forward(get: Getter, names: set[str], config: Mapping, inputs: Mapping[str, np.ndarray]
                              ) -> dict[str, np.ndarray]:
    """Encoder output, decoder output and logits of the official model for ``inputs`` (``input_ids``,
    ``attention_mask``, ``decoder_input_ids``); the encoder output is zeroed at padding (module docstring).

    Args:
        get: TF name -> float64 array. names: the TF names there are. config: the official config
            (``summarization.config`` keys: num_attention_heads, hidden_act, rescale_embedding).
    """
    m = _Model(get, names, config)
    rescale = bool(config.get("rescale_embedding", True))
    mask = inputs["attention_mask"].astype(np.float64)
    x = m.embed(inputs["input_ids"], rescale)
    full = (1.0 - mask[:, :, None] * mask[:, None, :]) * _NEG  # create_attention_mask_from_input_mask: from x to
    for i in range(_layers(names, m.scope, "encoder")):
        p = f"{m.scope}/encoder/layer_{i}/"
        x = x + m.attention(m.norm(x, p + "attention/self"), m.norm(x, p + "attention/self"), full,
                            p + "attention/self", p + "attention/output")
        x = m.ffn(x, p)
    encoder = m.norm(x, f"{m.scope}/encoder")
    ids = inputs["decoder_input_ids"]
    y = m.embed(ids, rescale)
    length = ids.shape[1]
    causal = np.broadcast_to((1.0 - np.tril(np.ones((length, length)))) * _NEG, (ids.shape[0], length, length))
    cross = np.broadcast_to(((1.0 - mask) * _NEG)[:, None, :], (ids.shape[0], length, mask.shape[1]))
    for i in range(_layers(names, m.scope, "decoder")):
        p = f"{m.scope}/decoder/layer_{i}/"
        normed = m.norm(y, p + "attention/self")
        y = y + m.attention(normed, normed, causal, p + "attention/self", p + "attention/output")
        y = y + m.attention(m.norm(y, p + "attention/encdec"), encoder, cross, p + "attention/encdec",
                            p + "attention/encdec_output")
        y = m.ffn(y, p)
    decoder = m.norm(y, f"{m.scope}/decoder")
    logits = times_transposed(get, f"{m.scope}/embeddings/word_embeddings", decoder)
    return {"encoder_last_hidden_state": encoder * mask[..., None], "last_hidden_state": decoder, "logits": logits}
