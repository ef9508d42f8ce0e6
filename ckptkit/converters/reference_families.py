"""NumPy reference forward passes over TF names for BigBird and ELECTRA (what ``verify`` compares against).

BigBird runs *full* attention: ``verify`` feeds 16 tokens, which transformers' BigBird also computes
with full attention (it falls back from block_sparse when ``seq_len <= (5 + 2 * num_random_blocks) *
block_size``), so both sides are deterministic. ELECTRA's ``gelu`` is the exact erf form.

Example:
    >>> sorted(ELECTRA_ACTIVATIONS)[:2]
    ['gelu', 'linear']
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from ckptkit.converters.reference import (ACTIVATIONS, GOOGLE_ACTIVATIONS, Getter, bert_encoder, dense,
                                          layer_norm)

__all__ = ["bigbird_reference_forward", "electra_reference_forward", "ELECTRA_ACTIVATIONS"]

# What the name in an ELECTRA config means in google-research/electra's model/modeling.py.
ELECTRA_ACTIVATIONS = {"gelu": "gelu_erf", "relu": "relu", "tanh": "tanh", "linear": "linear", "swish": "swish"}


def _two_d(get: Getter, prefix: str) -> Getter:
    """BigBird's 3-D attention kernels seen as the 2-D [in, out] kernels bert_encoder expects."""

    def read(name: str) -> np.ndarray:
        value = get(name)
        if name.startswith(prefix) and value.ndim == 3:
            return value.reshape(value.shape[0], -1) if "/self/" in name else value.reshape(-1, value.shape[-1])
        if name.startswith(prefix) and value.ndim == 2 and name.endswith("/bias"):
            return value.reshape(-1)
        return value

    return read


def _zero_bias(get: Getter, names: set[str]) -> Getter:
    def read(name: str) -> np.ndarray:
        if name in names or not name.endswith("/bias"):
            return get(name)
        return np.zeros(1)  # use_bias=False: no query/key/value bias

    return read


def bigbird_reference_forward(get: Getter, names: set[str], config: Mapping, inputs: Mapping[str, np.ndarray]
                              ) -> dict[str, np.ndarray]:
    """Outputs of a BigBird checkpoint (post-norm, full attention) for ``inputs``."""
    act = ACTIVATIONS[GOOGLE_ACTIVATIONS[config.get("hidden_act", "gelu")]]
    read = _zero_bias(_two_d(get, "bert/encoder/layer_"), names)
    ids, types = inputs["input_ids"], inputs["token_type_ids"]
    hidden = int(config["hidden_size"])
    x = read("bert/embeddings/word_embeddings")[ids]
    if config.get("rescale_embedding"):
        x = x * hidden ** 0.5
    x = x + read("bert/embeddings/token_type_embeddings")[types]
    x = x + read("bert/embeddings/position_embeddings")[: ids.shape[1]][None]
    x = layer_norm(x, read("bert/encoder/LayerNorm/gamma"), read("bert/encoder/LayerNorm/beta"))
    x = bert_encoder(read, config, x, inputs["attention_mask"], act=act)
    out = {"last_hidden_state": x}
    if "bert/pooler/dense/kernel" in names:
        out["pooler_output"] = np.tanh(dense(x[:, 0], read("bert/pooler/dense/kernel"), read("bert/pooler/dense/bias")))
    scope = "transform/" if "transform/kernel" in names else "cls/predictions/transform/"
    norm = scope if scope == "transform/" else scope + "LayerNorm/"
    if "cls/predictions/output_bias" in names:
        dense_scope = scope if scope == "transform/" else scope + "dense/"
        t = act(dense(x, read(dense_scope + "kernel"), read(dense_scope + "bias")))
        t = layer_norm(t, read(norm + "gamma"), read(norm + "beta"))
        out["mlm_logits"] = t @ read("bert/embeddings/word_embeddings").T + read("cls/predictions/output_bias")
    if "cls/seq_relationship/output_weights" in names and "pooler_output" in out:
        out["nsp_logits"] = (out["pooler_output"] @ read("cls/seq_relationship/output_weights").T
                             + read("cls/seq_relationship/output_bias"))
    return out


def electra_reference_forward(get: Getter, names: set[str], config: Mapping, inputs: Mapping[str, np.ndarray]
                              ) -> dict[str, np.ndarray]:
    """Outputs of an ELECTRA model over canonical TF names (``electra/...``; a generator's names renamed)."""
    act = ACTIVATIONS[ELECTRA_ACTIVATIONS[config.get("hidden_act", "gelu")]]
    ids, types = inputs["input_ids"], inputs["token_type_ids"]
    e = "electra/embeddings/"
    x = get(f"{e}word_embeddings")[ids] + get(f"{e}position_embeddings")[: ids.shape[1]][None]
    x = layer_norm(x + get(f"{e}token_type_embeddings")[types], get(f"{e}LayerNorm/gamma"), get(f"{e}LayerNorm/beta"))
    if "electra/embeddings_project/kernel" in names:
        x = dense(x, get("electra/embeddings_project/kernel"), get("electra/embeddings_project/bias"))
    x = bert_encoder(get, config, x, inputs["attention_mask"], scope="electra", act=act)
    out = {"last_hidden_state": x}
    if "discriminator_predictions/dense/kernel" in names:
        h = act(dense(x, get("discriminator_predictions/dense/kernel"), get("discriminator_predictions/dense/bias")))
        out["disc_logits"] = dense(h, get("discriminator_predictions/dense_1/kernel"),
                                   get("discriminator_predictions/dense_1/bias"))[..., 0]
    if "generator_predictions/output_bias" in names:
        h = act(dense(x, get("generator_predictions/dense/kernel"), get("generator_predictions/dense/bias")))
        h = layer_norm(h, get("generator_predictions/LayerNorm/gamma"), get("generator_predictions/LayerNorm/beta"))
        out["mlm_logits"] = h @ get(f"{e}word_embeddings").T + get("generator_predictions/output_bias")
    if "classifier/dense/kernel" in names:
        h = ACTIVATIONS["gelu_erf"](dense(x[:, 0], get("classifier/dense/kernel"), get("classifier/dense/bias")))
        out["logits"] = dense(h, get("classifier/out_proj/kernel"), get("classifier/out_proj/bias"))
    task_kernel = next((n for n in sorted(names) if n.startswith("task_specific/") and n.endswith("/dense/kernel")),
                       None)
    if task_kernel:  # run_finetuning.py: one dense on the [CLS] hidden state
        out["logits"] = dense(x[:, 0], get(task_kernel), get(task_kernel[:-len("kernel")] + "bias"))
    return out
