"""BERT's forward pass written with TensorFlow ops over TF variable names, as in
google-research/bert's modeling.py: the independent reference for conversion tests.

It reads variables with ``tf.train.load_checkpoint`` (not ckptkit's reader) and shares no
code with ``ckptkit.converters.reference``.
"""

from __future__ import annotations

import math

import numpy as np


def tf_bert_outputs(prefix: str, config: dict, input_ids, token_type_ids, attention_mask, *,
                    activation: str = "gelu_tanh") -> dict[str, np.ndarray]:
    import tensorflow as tf

    reader = tf.train.load_checkpoint(prefix)
    names = set(reader.get_variable_to_shape_map())
    get = lambda n: tf.constant(reader.get_tensor(n), dtype=tf.float64)
    acts = {
        "gelu_tanh": lambda x: 0.5 * x * (1.0 + tf.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * tf.pow(x, 3)))),
        "gelu_erf": lambda x: 0.5 * x * (1.0 + tf.math.erf(x / math.sqrt(2.0))),
    }
    act = acts[activation]

    def ln(x, scope):
        mean, var = tf.nn.moments(x, axes=[-1], keepdims=True)
        return tf.nn.batch_normalization(x, mean, var, get(f"{scope}/beta"), get(f"{scope}/gamma"), 1e-12)

    def dense(x, scope):
        return tf.tensordot(x, get(f"{scope}/kernel"), axes=1) + get(f"{scope}/bias")

    ids = tf.constant(input_ids)
    b, s = input_ids.shape
    h = config["hidden_size"]
    n = config["num_attention_heads"]
    d = h // n
    x = tf.gather(get("bert/embeddings/word_embeddings"), ids)
    x += get("bert/embeddings/position_embeddings")[:s][None]
    x += tf.gather(get("bert/embeddings/token_type_embeddings"), tf.constant(token_type_ids))
    x = ln(x, "bert/embeddings/LayerNorm")
    adder = (1.0 - tf.cast(tf.constant(attention_mask)[:, None, None, :], tf.float64)) * -10000.0
    for i in range(config["num_hidden_layers"]):
        p = f"bert/encoder/layer_{i}"
        heads = lambda t: tf.transpose(tf.reshape(t, [b, s, n, d]), [0, 2, 1, 3])
        q, k, v = (heads(dense(x, f"{p}/attention/self/{m}")) for m in ("query", "key", "value"))
        probs = tf.nn.softmax(tf.matmul(q, k, transpose_b=True) / math.sqrt(d) + adder)
        ctx = tf.reshape(tf.transpose(tf.matmul(probs, v), [0, 2, 1, 3]), [b, s, h])
        x = ln(dense(ctx, f"{p}/attention/output/dense") + x, f"{p}/attention/output/LayerNorm")
        x = ln(dense(act(dense(x, f"{p}/intermediate/dense")), f"{p}/output/dense") + x, f"{p}/output/LayerNorm")
    out = {"last_hidden_state": x.numpy()}
    if "bert/pooler/dense/kernel" in names:
        pooled = tf.tanh(dense(x[:, 0], "bert/pooler/dense"))
        out["pooler_output"] = pooled.numpy()
    if "cls/predictions/output_bias" in names:
        t = ln(act(dense(x, "cls/predictions/transform/dense")), "cls/predictions/transform/LayerNorm")
        out["mlm_logits"] = (tf.matmul(t, get("bert/embeddings/word_embeddings"), transpose_b=True)
                             + get("cls/predictions/output_bias")).numpy()
    if "cls/seq_relationship/output_weights" in names:
        out["nsp_logits"] = (tf.matmul(pooled, get("cls/seq_relationship/output_weights"), transpose_b=True)
                             + get("cls/seq_relationship/output_bias")).numpy()
    if "output_weights" in names:
        out["logits"] = (tf.matmul(pooled, get("output_weights"), transpose_b=True) + get("output_bias")).numpy()
    if "cls/squad/output_weights" in names:
        logits = tf.tensordot(x, tf.transpose(get("cls/squad/output_weights")), axes=1) + get("cls/squad/output_bias")
        out["start_logits"], out["end_logits"] = logits[..., 0].numpy(), logits[..., 1].numpy()
    return out


def padded_batch(vocab_size: int, seq: int = 12, seed: int = 7):
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, vocab_size, size=(3, seq)).astype(np.int64)
    types = np.zeros_like(ids)
    types[0, seq // 2:] = 1
    types[2, 3:] = 1
    mask = np.ones_like(ids)
    mask[1, seq - 4:] = 0
    mask[2, seq - 7:] = 0
    return ids, types, mask
