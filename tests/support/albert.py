"""Random but realistic ALBERT TF variables under the names google-research/albert creates.

Weights are non-trivial (biases and LayerNorm parameters away from their initial values) so a mapping
mistake shows; the shared blocks are ``bert/encoder/transformer/group_G/inner_group_I/``.

Example:
    >>> v = albert_tf_variables(vocab_size=40, embedding=8, hidden=16, groups=2, inner=1, heads=2,
    ...                         intermediate=24, max_positions=32)
    >>> v["bert/encoder/embedding_hidden_mapping_in/kernel"].shape
    (8, 16)
    >>> v["bert/encoder/transformer/group_1/inner_group_0/ffn_1/intermediate/output/dense/kernel"].shape
    (24, 16)
"""

from __future__ import annotations

import numpy as np

__all__ = ["albert_tf_variables", "albert_tf_config"]


def _block(r: np.random.Generator, p: str, hidden: int, intermediate: int) -> dict[str, np.ndarray]:
    mat = lambda i, o: (r.standard_normal((i, o)) / np.sqrt(i)).astype(np.float32)  # noqa: E731
    vec = lambda n, c=0.0: (c + 0.1 * r.standard_normal(n)).astype(np.float32)  # noqa: E731
    v = {}
    for n in ("query", "key", "value"):
        v[f"{p}attention_1/self/{n}/kernel"] = mat(hidden, hidden)
        v[f"{p}attention_1/self/{n}/bias"] = vec(hidden)
    v[f"{p}attention_1/output/dense/kernel"] = mat(hidden, hidden)
    v[f"{p}attention_1/output/dense/bias"] = vec(hidden)
    v[f"{p}LayerNorm/gamma"], v[f"{p}LayerNorm/beta"] = vec(hidden, 1.0), vec(hidden)
    v[f"{p}ffn_1/intermediate/dense/kernel"] = mat(hidden, intermediate)
    v[f"{p}ffn_1/intermediate/dense/bias"] = vec(intermediate)
    v[f"{p}ffn_1/intermediate/output/dense/kernel"] = mat(intermediate, hidden)
    v[f"{p}ffn_1/intermediate/output/dense/bias"] = vec(hidden)
    v[f"{p}LayerNorm_1/gamma"], v[f"{p}LayerNorm_1/beta"] = vec(hidden, 1.0), vec(hidden)
    return v


def albert_tf_variables(*, vocab_size: int, embedding: int, hidden: int, groups: int, inner: int, heads: int,
                        intermediate: int, max_positions: int, heads_of: tuple[str, ...] = ("mlm", "sop"),
                        num_labels: int = 3, seed: int = 0) -> dict[str, np.ndarray]:
    """Every variable run_pretraining.py (``heads_of`` mlm, sop) or run_classifier.py (classifier) creates
    (no ``embedding_hidden_mapping_in`` when ``embedding == hidden``, as in the official code)."""
    del heads  # the 2-D kernels do not depend on it
    r = np.random.default_rng(seed)
    mat = lambda i, o: (r.standard_normal((i, o)) / np.sqrt(i)).astype(np.float32)  # noqa: E731
    vec = lambda n, c=0.0: (c + 0.1 * r.standard_normal(n)).astype(np.float32)  # noqa: E731
    e = "bert/embeddings/"
    v = {f"{e}word_embeddings": mat(vocab_size, embedding), f"{e}position_embeddings": mat(max_positions, embedding),
         f"{e}token_type_embeddings": mat(2, embedding), f"{e}LayerNorm/gamma": vec(embedding, 1.0),
         f"{e}LayerNorm/beta": vec(embedding)}
    if embedding != hidden:  # modeling.py projects only `if input_width != hidden_size`
        v.update({"bert/encoder/embedding_hidden_mapping_in/kernel": mat(embedding, hidden),
                  "bert/encoder/embedding_hidden_mapping_in/bias": vec(hidden)})
    v.update({"bert/pooler/dense/kernel": mat(hidden, hidden), "bert/pooler/dense/bias": vec(hidden)})
    for g in range(groups):
        for i in range(inner):
            v.update(_block(r, f"bert/encoder/transformer/group_{g}/inner_group_{i}/", hidden, intermediate))
    if "mlm" in heads_of:
        v.update({"cls/predictions/transform/dense/kernel": mat(hidden, embedding),
                  "cls/predictions/transform/dense/bias": vec(embedding),
                  "cls/predictions/transform/LayerNorm/gamma": vec(embedding, 1.0),
                  "cls/predictions/transform/LayerNorm/beta": vec(embedding),
                  "cls/predictions/output_bias": vec(vocab_size)})
    if "sop" in heads_of:
        v.update({"cls/seq_relationship/output_weights": mat(2, hidden), "cls/seq_relationship/output_bias": vec(2)})
    if "classifier" in heads_of:
        v.update({"output_weights": mat(num_labels, hidden), "output_bias": vec(num_labels)})
    return v


def albert_tf_config(*, vocab_size: int, embedding: int, hidden: int, groups: int, inner: int, heads: int,
                     intermediate: int, max_positions: int, layers: int) -> dict:
    """The albert_config.json the official code reads for these sizes."""
    return {"vocab_size": vocab_size, "embedding_size": embedding, "hidden_size": hidden, "num_hidden_layers": layers,
            "num_hidden_groups": groups, "inner_group_num": inner, "num_attention_heads": heads,
            "intermediate_size": intermediate, "hidden_act": "gelu", "hidden_dropout_prob": 0,
            "attention_probs_dropout_prob": 0, "max_position_embeddings": max_positions, "type_vocab_size": 2,
            "initializer_range": 0.02, "down_scale_factor": 1, "layers_to_keep": [], "net_structure_type": 0,
            "gap_size": 0, "num_memory_blocks": 0}
