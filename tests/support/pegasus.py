"""Random but realistic BigBird-Pegasus TF variables under the names google-research/bigbird's ``TransformerModel``
creates (scope ``pegasus``, pre-norm encoder and decoder, 2-D attention kernels), and checkpoints written with
TensorFlow itself, optionally with the optimizer state run_summarization.py saves.

Weights are non-trivial (norms and biases away from their initial values) and of a realistic scale: the residual
stream's variance is far above 1, so transformers' LayerNorm epsilon (1e-5, the official code's 1e-12) stays
below 1e-5 in every output.

Example:
    >>> c = pegasus_config(num_decoder_layers=1)
    >>> v = pegasus_tf_variables(c)
    >>> v["pegasus/decoder/layer_0/attention/encdec_output/dense/kernel"].shape, "pegasus/decoder/layer_1/output/dense/bias" in v
    ((32, 32), False)
"""

from __future__ import annotations

import json
import os

import numpy as np

__all__ = ["pegasus_config", "pegasus_tf_variables", "save_pegasus_checkpoint", "adafactor_slots", "write_flags"]


def pegasus_config(**overrides) -> dict:
    """A small official config (the keys ``flags.save`` writes that the model reads), pegasus_large.sh-like."""
    config = {"vocab_size": 64, "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4,
              "intermediate_size": 48, "hidden_act": "relu", "hidden_dropout_prob": 0.1,
              "attention_probs_dropout_prob": 0.1, "max_position_embeddings": 40, "initializer_range": 0.02,
              "type_vocab_size": 2, "use_bias": False, "rescale_embedding": True, "scope": "pegasus",
              "attention_type": "block_sparse", "norm_type": "prenorm", "block_size": 4, "num_rand_blocks": 1,
              "max_encoder_length": 32, "max_decoder_length": 16, "couple_encoder_decoder": False,
              "vocab_model_file": "pegasus.model", "substitute_newline": "<n>", "use_gradient_checkpointing": False}
    config.update(overrides)
    return config


class _Random:
    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)

    def mat(self, n_in: int, n_out: int, scale: float = 1.0) -> np.ndarray:
        return (self.rng.standard_normal((n_in, n_out)) * scale / np.sqrt(n_in)).astype(np.float32)

    def vec(self, n: int, center: float = 0.0, scale: float = 0.1) -> np.ndarray:
        return (center + self.rng.standard_normal(n) * scale).astype(np.float32)


def _norm(v: dict, r: _Random, scope: str, width: int, center: float = 1.0) -> None:
    v[f"{scope}/LayerNorm/beta"], v[f"{scope}/LayerNorm/gamma"] = r.vec(width), r.vec(width, center, 0.2 * center)


def _attention(v: dict, r: _Random, scope: str, out: str, c: dict) -> None:
    h = c["hidden_size"]
    for name in ("query", "key", "value"):
        v[f"{scope}/{name}/kernel"] = r.mat(h, h)
        if c["use_bias"]:
            v[f"{scope}/{name}/bias"] = r.vec(h)
    v[f"{out}/dense/kernel"] = r.mat(h, h, 3.0)  # the output projection adds to a wide residual stream
    if c["use_bias"]:
        v[f"{out}/dense/bias"] = r.vec(h, scale=1.0)


def _ffn(v: dict, r: _Random, p: str, c: dict) -> None:
    h, inner = c["hidden_size"], c["intermediate_size"]
    _norm(v, r, p + "intermediate", h)
    v[p + "intermediate/dense/kernel"], v[p + "intermediate/dense/bias"] = r.mat(h, inner), r.vec(inner)
    v[p + "output/dense/kernel"], v[p + "output/dense/bias"] = r.mat(inner, h, 3.0), r.vec(h, scale=1.0)


def pegasus_tf_variables(config: dict, *, seed: int = 0) -> dict[str, np.ndarray]:
    """Every variable the official code creates for ``config`` (float32), under ``config["scope"]``."""
    c, r, v, s = config, _Random(seed), {}, config.get("scope", "pegasus")
    h = c["hidden_size"]
    words = 0.5 if c["rescale_embedding"] else 3.0  # sqrt(hidden) scales them otherwise
    positions = 1.0 if c["rescale_embedding"] else 3.0
    v[f"{s}/embeddings/word_embeddings"] = (r.rng.standard_normal((c["vocab_size"], h)) * words).astype(np.float32)
    v[f"{s}/embeddings/position_embeddings"] = (r.rng.standard_normal((c["max_position_embeddings"], h))
                                                * positions).astype(np.float32)
    for i in range(c["num_hidden_layers"]):
        p = f"{s}/encoder/layer_{i}/"
        _norm(v, r, p + "attention/self", h)
        _attention(v, r, p + "attention/self", p + "attention/output", c)
        _ffn(v, r, p, c)
    _norm(v, r, f"{s}/encoder", h)
    for i in range(c.get("num_decoder_layers") or c["num_hidden_layers"]):
        p = f"{s}/decoder/layer_{i}/"
        _norm(v, r, p + "attention/self", h)
        _attention(v, r, p + "attention/self", p + "attention/output", c)
        _norm(v, r, p + "attention/encdec", h)
        _attention(v, r, p + "attention/encdec", p + "attention/encdec_output", c)
        _ffn(v, r, p, c)
    _norm(v, r, f"{s}/decoder", h, center=0.5 / words)  # logits of a moderate size whatever the table's scale
    return v


def adafactor_slots(variables: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """tensor2tensor's AdafactorOptimizer slots as TF1's slot_creator names them: a matrix's factored row and
    column statistics ``<var>/Adafactor`` (vr) and ``<var>/Adafactor_1`` (vc), a vector's ``<var>/Adafactor`` (v)."""
    slots = {}
    for name, value in variables.items():
        if value.ndim >= 2:
            slots[f"{name}/Adafactor"] = np.abs(value).mean(-1).astype(np.float32)
            slots[f"{name}/Adafactor_1"] = np.abs(value).mean(-2).astype(np.float32)
        else:
            slots[f"{name}/Adafactor"] = np.abs(value).astype(np.float32)
    return slots


def save_pegasus_checkpoint(prefix: str, variables: dict[str, np.ndarray], *, optimizer: str | None = "adam",
                            frozen: tuple[str, ...] = ("/embeddings/position_embeddings",),
                            global_step: int = 300) -> dict[str, np.ndarray]:
    """Write ``variables`` with a TF1 Saver; ``optimizer="adam"`` first runs one tf.compat.v1.train.AdamOptimizer
    step (its ``/Adam``, ``/Adam_1``, ``beta1_power``, ``beta2_power``) over every variable but the ``frozen`` ones
    (run_summarization.py keeps the position table out of training under use_bias=False), ``"adafactor"`` adds
    :func:`adafactor_slots`. Returns the weights as saved (Adam's step changes them)."""
    import tensorflow as tf

    os.makedirs(os.path.dirname(prefix), exist_ok=True)
    graph = tf.Graph()
    with graph.as_default():
        tf_vars = {n: tf.compat.v1.get_variable(n, initializer=tf.constant(a), use_resource=False)
                   for n, a in variables.items()}
        if optimizer == "adafactor":
            for n, a in adafactor_slots(variables).items():
                tf.compat.v1.get_variable(n, initializer=tf.constant(a), use_resource=False, trainable=False)
        step = tf.compat.v1.train.get_or_create_global_step()
        train = None
        if optimizer == "adam":
            trained = [var for n, var in tf_vars.items() if not n.endswith(frozen)]
            grads = [tf.constant(np.random.default_rng(7).standard_normal(var.shape).astype(np.float32))
                     for var in trained]
            train = tf.compat.v1.train.AdamOptimizer(1e-3).apply_gradients(zip(grads, trained), global_step=step)
        with tf.compat.v1.Session(graph=graph) as session:
            session.run(tf.compat.v1.global_variables_initializer())
            session.run(step.assign(global_step - 1 if train is not None else global_step))
            if train is not None:
                session.run(train)
            tf.compat.v1.train.Saver(tf.compat.v1.global_variables()).save(session, prefix, write_meta_graph=False)
            return {n: session.run(var) for n, var in tf_vars.items()}


def write_flags(path: str, config: dict, *, as_json: bool = True) -> None:
    """``summarization.config`` as ``flags.save`` writes it (JSON, sorted keys), or an absl flagfile."""
    with open(path, "w", encoding="utf-8") as f:
        if as_json:
            json.dump(config, f, indent=4, sort_keys=True)
        else:
            f.write("".join(f"--{k}={str(v).lower() if isinstance(v, bool) else v}\n" for k, v in config.items()))
