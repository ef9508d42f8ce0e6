"""NumPy reference forward pass of ALBERT over the TF variables (what ``verify`` compares against).

It follows google-research/albert's modeling.py: embeddings of width ``embedding_size`` (LayerNorm'd),
projected by ``embedding_hidden_mapping_in`` when that width differs from the hidden size, then layer
``l`` of ``num_hidden_layers`` runs the blocks ``inner_group_0..`` of group ``int(l / layers * groups)``;
each block is post-norm attention (``attention_1``, ``LayerNorm``) and feed-forward (``ffn_1``,
``LayerNorm_1``); additive -10000 attention mask, LayerNorm epsilon 1e-12, ``gelu`` the tanh form.

Example:
    >>> albert_group_of(5, layers=12, groups=2), albert_group_of(6, layers=12, groups=2)
    (0, 1)
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from ckptkit.converters.reference import (ACTIVATIONS, GOOGLE_ACTIVATIONS, Getter, bert_heads, dense, layer_norm,
                                          self_attention)

__all__ = ["albert_reference_forward", "albert_group_of", "albert_encoder"]


def albert_group_of(layer: int, *, layers: int, groups: int) -> int:
    """The shared group layer ``layer`` runs (modeling.py's ``int(layer_idx / num_hidden_layers * groups)``)."""
    return int(layer / layers * groups)


def _block(get: Getter, p: str, x: np.ndarray, mask_add: np.ndarray, heads: int, act) -> np.ndarray:
    q, k, v = (dense(x, get(f"{p}attention_1/self/{n}/kernel"), get(f"{p}attention_1/self/{n}/bias"))
               for n in ("query", "key", "value"))
    context = self_attention(x, q, k, v, mask_add, heads)
    attn = dense(context, get(f"{p}attention_1/output/dense/kernel"), get(f"{p}attention_1/output/dense/bias"))
    x = layer_norm(attn + x, get(f"{p}LayerNorm/gamma"), get(f"{p}LayerNorm/beta"))
    inter = act(dense(x, get(f"{p}ffn_1/intermediate/dense/kernel"), get(f"{p}ffn_1/intermediate/dense/bias")))
    out = dense(inter, get(f"{p}ffn_1/intermediate/output/dense/kernel"),
                get(f"{p}ffn_1/intermediate/output/dense/bias"))
    return layer_norm(out + x, get(f"{p}LayerNorm_1/gamma"), get(f"{p}LayerNorm_1/beta"))


def albert_encoder(get: Getter, names: set[str], config: Mapping, x: np.ndarray, attention_mask: np.ndarray, *,
                   act) -> list[np.ndarray]:
    """Every block output (official ``all_layer_outputs``) over embeddings ``x`` of width embedding_size."""
    if "bert/encoder/embedding_hidden_mapping_in/kernel" in names:
        x = dense(x, get("bert/encoder/embedding_hidden_mapping_in/kernel"),
                  get("bert/encoder/embedding_hidden_mapping_in/bias"))
    mask_add = (1.0 - attention_mask.astype(np.float64)) * -10000.0
    layers, groups = int(config["num_hidden_layers"]), int(config.get("num_hidden_groups", 1))
    outputs = []
    for layer in range(layers):
        group = albert_group_of(layer, layers=layers, groups=groups)
        for inner in range(int(config.get("inner_group_num", 1))):
            x = _block(get, f"bert/encoder/transformer/group_{group}/inner_group_{inner}/", x, mask_add,
                       int(config["num_attention_heads"]), act)
            outputs.append(x)
    return outputs


def albert_reference_forward(get: Getter, names: set[str], config: Mapping, inputs: Mapping[str, np.ndarray]
                             ) -> dict[str, np.ndarray]:
    """Outputs of an ALBERT checkpoint for ``inputs``: hidden states and every head present
    (``mlm_logits``, ``sop_logits``, ``logits``, ``start_logits``/``end_logits``)."""
    act = ACTIVATIONS[GOOGLE_ACTIVATIONS[config.get("hidden_act", "gelu")]]
    ids, types = inputs["input_ids"], inputs["token_type_ids"]
    e = "bert/embeddings/"
    x = get(f"{e}word_embeddings")[ids] + get(f"{e}token_type_embeddings")[types]
    x = layer_norm(x + get(f"{e}position_embeddings")[: ids.shape[1]][None], get(f"{e}LayerNorm/gamma"),
                   get(f"{e}LayerNorm/beta"))
    hidden = albert_encoder(get, names, config, x, inputs["attention_mask"], act=act)
    x = hidden[-1]
    out = {"last_hidden_state": x, "hidden_states": np.stack(hidden)}
    return out | bert_heads(get, names, x, act=act, pair_key="sop_logits")
