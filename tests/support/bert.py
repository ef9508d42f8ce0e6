"""Random but realistic Google-BERT variables, for the bundled example, tests and benchmarks.

Weights are non-trivial on purpose: biases and LayerNorm parameters away from their
initial values, so a mapping mistake (a swapped gamma/beta, a missing transpose) shows.

Example:
    >>> v = bert_tf_variables(vocab_size=10, hidden=8, layers=1, heads=2, intermediate=16, max_positions=8)
    >>> v["bert/encoder/layer_0/intermediate/dense/kernel"].shape
    (8, 16)
"""

from __future__ import annotations

import numpy as np

__all__ = ["bert_tf_variables", "bert_tf_config", "with_adam_slots", "tiny_wordpiece_vocab"]


def bert_tf_config(*, vocab_size: int, hidden: int, layers: int, heads: int, intermediate: int,
                   max_positions: int, type_vocab: int = 2, hidden_act: str = "gelu") -> dict:
    """A Google ``bert_config.json`` dict."""
    return {"vocab_size": vocab_size, "hidden_size": hidden, "num_hidden_layers": layers,
            "num_attention_heads": heads, "intermediate_size": intermediate, "hidden_act": hidden_act,
            "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
            "max_position_embeddings": max_positions, "type_vocab_size": type_vocab, "initializer_range": 0.02}


def bert_tf_variables(*, vocab_size: int, hidden: int, layers: int, heads: int, intermediate: int,
                      max_positions: int, type_vocab: int = 2, heads_: tuple[str, ...] = ("pooler", "mlm", "nsp"),
                      num_labels: int = 3, seed: int = 0, dtype=np.float32) -> dict[str, np.ndarray]:
    """Every variable google-research/bert creates for the given heads, with random values.

    ``heads_`` may hold ``pooler``, ``mlm``, ``nsp``, ``classifier`` (run_classifier) and ``qa`` (run_squad).
    """
    rng = np.random.default_rng(seed)
    scale = 1.0 / np.sqrt(hidden)

    def mat(*shape, s=scale):
        return (rng.standard_normal(shape) * s).astype(dtype)

    def vec(n, center=0.0, s=0.1):
        return (center + rng.standard_normal(n) * s).astype(dtype)

    v = {"bert/embeddings/word_embeddings": mat(vocab_size, hidden, s=0.5),
         "bert/embeddings/position_embeddings": mat(max_positions, hidden, s=0.5),
         "bert/embeddings/token_type_embeddings": mat(type_vocab, hidden, s=0.5),
         "bert/embeddings/LayerNorm/gamma": vec(hidden, 1.0), "bert/embeddings/LayerNorm/beta": vec(hidden)}
    for i in range(layers):
        p = f"bert/encoder/layer_{i}/"
        for n in ("query", "key", "value"):
            v[f"{p}attention/self/{n}/kernel"] = mat(hidden, hidden)
            v[f"{p}attention/self/{n}/bias"] = vec(hidden)
        v[f"{p}attention/output/dense/kernel"] = mat(hidden, hidden)
        v[f"{p}attention/output/dense/bias"] = vec(hidden)
        v[f"{p}attention/output/LayerNorm/gamma"] = vec(hidden, 1.0)
        v[f"{p}attention/output/LayerNorm/beta"] = vec(hidden)
        v[f"{p}intermediate/dense/kernel"] = mat(hidden, intermediate)
        v[f"{p}intermediate/dense/bias"] = vec(intermediate)
        v[f"{p}output/dense/kernel"] = mat(intermediate, hidden, s=1.0 / np.sqrt(intermediate))
        v[f"{p}output/dense/bias"] = vec(hidden)
        v[f"{p}output/LayerNorm/gamma"] = vec(hidden, 1.0)
        v[f"{p}output/LayerNorm/beta"] = vec(hidden)
    if "pooler" in heads_:
        v["bert/pooler/dense/kernel"] = mat(hidden, hidden)
        v["bert/pooler/dense/bias"] = vec(hidden)
    if "mlm" in heads_:
        v["cls/predictions/transform/dense/kernel"] = mat(hidden, hidden)
        v["cls/predictions/transform/dense/bias"] = vec(hidden)
        v["cls/predictions/transform/LayerNorm/gamma"] = vec(hidden, 1.0)
        v["cls/predictions/transform/LayerNorm/beta"] = vec(hidden)
        v["cls/predictions/output_bias"] = vec(vocab_size)
    if "nsp" in heads_:
        v["cls/seq_relationship/output_weights"] = mat(2, hidden)
        v["cls/seq_relationship/output_bias"] = vec(2)
    if "classifier" in heads_:
        v["output_weights"] = mat(num_labels, hidden)
        v["output_bias"] = vec(num_labels)
    if "qa" in heads_:
        v["cls/squad/output_weights"] = mat(2, hidden)
        v["cls/squad/output_bias"] = vec(2)
    return v


def with_adam_slots(variables: dict[str, np.ndarray], *, global_step: int = 1000,
                    slot_names: tuple[str, str] = ("adam_m", "adam_v"), seed: int = 1) -> dict[str, np.ndarray]:
    """Add optimizer slots ``<var>/<slot>`` and ``global_step`` as TF1 optimizers save them (default: the
    ``adam_m``/``adam_v`` of google-research/bert; BigBird's are ``AdamWeightDecayOptimizer(_1)``)."""
    rng = np.random.default_rng(seed)
    out = dict(variables)
    for name, value in variables.items():
        for slot in slot_names:
            out[f"{name}/{slot}"] = (rng.standard_normal(value.shape) * 1e-3).astype(value.dtype)
    out["global_step"] = np.asarray(global_step, dtype=np.int64)
    return out


def tiny_wordpiece_vocab(size: int) -> list[str]:
    """A WordPiece vocabulary of exactly ``size`` entries: specials, letters, ``##`` pieces, words."""
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)]
    pieces = [f"##{c}" for c in letters]
    words = ["the", "a", "model", "check", "##point", "convert", "tensor", "flow", "korean", "bert", ".", ",", "!",
             "?", "0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]
    vocab = list(dict.fromkeys(specials + letters + pieces + words))
    vocab += [f"[unused{i}]" for i in range(size - len(vocab))]
    return vocab[:size]
