"""Random but realistic BigBird and ELECTRA TF variables under the names the official code creates.

Weights are non-trivial (biases and LayerNorm parameters away from their initial values) so a mapping
mistake shows. Optimizer slots follow each code base: BigBird's ``AdamWeightDecayOptimizer`` slots are
``<var>/AdamWeightDecayOptimizer`` and ``<var>/AdamWeightDecayOptimizer_1``; ELECTRA's are ``<var>/adam_m``
and ``<var>/adam_v``.

Example:
    >>> v = bigbird_tf_variables(vocab_size=70, hidden=16, layers=1, heads=2, intermediate=32, max_positions=64)
    >>> v["bert/encoder/layer_0/attention/self/query/kernel"].shape, v["transform/kernel"].shape
    ((16, 2, 8), (16, 16))
    >>> e = electra_tf_variables(vocab_size=50, embedding=8, hidden=16, layers=1, heads=2, intermediate=32,
    ...                          max_positions=32, generator_hidden=12, generator_heads=1)
    >>> e["generator/embeddings_project/kernel"].shape, e["electra/embeddings_project/kernel"].shape
    ((8, 12), (8, 16))
"""

from __future__ import annotations

import numpy as np

__all__ = ["bigbird_tf_variables", "bigbird_tf_config", "electra_tf_variables", "electra_hparams"]


class _Random:
    def __init__(self, seed: int, dtype):
        self.rng = np.random.default_rng(seed)
        self.dtype = dtype

    def mat(self, *shape, scale: float | None = None):
        scale = scale if scale is not None else 1.0 / np.sqrt(shape[0])
        return (self.rng.standard_normal(shape) * scale).astype(self.dtype)

    def vec(self, *shape, center: float = 0.0, scale: float = 0.1):
        return (center + self.rng.standard_normal(shape) * scale).astype(self.dtype)


def _encoder_layers(r: _Random, scope: str, *, hidden: int, layers: int, heads: int, intermediate: int,
                    kernel_3d: bool = False, bias_2d: bool = False) -> dict[str, np.ndarray]:
    v = {}
    size = hidden // heads
    for i in range(layers):
        p = f"{scope}/encoder/layer_{i}/"
        for n in ("query", "key", "value"):
            kernel = r.mat(hidden, hidden)
            v[f"{p}attention/self/{n}/kernel"] = kernel.reshape(hidden, heads, size) if kernel_3d else kernel
            bias = r.vec(hidden)
            v[f"{p}attention/self/{n}/bias"] = bias.reshape(heads, size) if bias_2d else bias
        kernel = r.mat(hidden, hidden)
        v[f"{p}attention/output/dense/kernel"] = kernel.reshape(heads, size, hidden) if kernel_3d else kernel
        v[f"{p}attention/output/dense/bias"] = r.vec(hidden)
        v[f"{p}attention/output/LayerNorm/gamma"] = r.vec(hidden, center=1.0)
        v[f"{p}attention/output/LayerNorm/beta"] = r.vec(hidden)
        v[f"{p}intermediate/dense/kernel"] = r.mat(hidden, intermediate)
        v[f"{p}intermediate/dense/bias"] = r.vec(intermediate)
        v[f"{p}output/dense/kernel"] = r.mat(intermediate, hidden)
        v[f"{p}output/dense/bias"] = r.vec(hidden)
        v[f"{p}output/LayerNorm/gamma"] = r.vec(hidden, center=1.0)
        v[f"{p}output/LayerNorm/beta"] = r.vec(hidden)
    return v


def bigbird_tf_config(*, vocab_size: int, hidden: int, layers: int, heads: int, intermediate: int,
                      max_positions: int, block_size: int = 4, num_rand_blocks: int = 1,
                      attention_type: str = "block_sparse", rescale_embedding: bool = True,
                      max_encoder_length: int | None = None, hidden_act: str = "gelu") -> dict:
    """A ``pretrain.config`` dict as bigbird/core/flags.py's ``as_dictionary`` writes it (model keys only)."""
    return {"attention_probs_dropout_prob": 0.1, "hidden_act": hidden_act, "hidden_dropout_prob": 0.1,
            "hidden_size": hidden, "initializer_range": 0.02, "intermediate_size": intermediate,
            "max_position_embeddings": max_positions, "num_attention_heads": heads, "num_hidden_layers": layers,
            "type_vocab_size": 2, "scope": "bert", "use_bias": True, "rescale_embedding": rescale_embedding,
            "attention_type": attention_type, "norm_type": "postnorm", "block_size": block_size,
            "num_rand_blocks": num_rand_blocks, "max_encoder_length": max_encoder_length or max_positions,
            "vocab_size": vocab_size, "use_nsp": True}


def bigbird_tf_variables(*, vocab_size: int, hidden: int, layers: int, heads: int, intermediate: int,
                         max_positions: int, layout: str = "3d", heads_: tuple[str, ...] = ("pooler", "mlm", "nsp"),
                         seed: int = 0, dtype=np.float32) -> dict[str, np.ndarray]:
    """Every variable bigbird's ``BertModel`` + run_pretraining.py's ``MaskedLMLayer``/``NSPLayer`` create.

    ``layout``: ``3d`` (query/key/value ``[hidden, heads, head_size]``, output ``[heads, head_size, hidden]``)
    or ``2d`` (``[hidden, hidden]``, as ``Dense3dLayer`` in today's repository stores them).
    """
    r = _Random(seed, dtype)
    v = {"bert/embeddings/word_embeddings": r.mat(vocab_size, hidden, scale=0.5),
         "bert/embeddings/token_type_embeddings": r.mat(2, hidden, scale=0.5),
         "bert/embeddings/position_embeddings": r.mat(max_positions, hidden, scale=0.5),
         "bert/encoder/LayerNorm/gamma": r.vec(hidden, center=1.0), "bert/encoder/LayerNorm/beta": r.vec(hidden)}
    v.update(_encoder_layers(r, "bert", hidden=hidden, layers=layers, heads=heads, intermediate=intermediate,
                             kernel_3d=layout == "3d"))
    if "pooler" in heads_:
        v["bert/pooler/dense/kernel"] = r.mat(hidden, hidden)
        v["bert/pooler/dense/bias"] = r.vec(hidden)
    if "mlm" in heads_:
        v["transform/kernel"] = r.mat(hidden, hidden)
        v["transform/bias"] = r.vec(hidden)
        v["transform/gamma"] = r.vec(hidden, center=1.0)
        v["transform/beta"] = r.vec(hidden)
        v["cls/predictions/output_bias"] = r.vec(vocab_size)
    if "nsp" in heads_:
        v["cls/seq_relationship/output_weights"] = r.mat(2, hidden)
        v["cls/seq_relationship/output_bias"] = r.vec(2)
    return v


def electra_hparams(*, vocab_size: int, embedding: int, hidden: int, layers: int, heads: int, intermediate: int,
                    max_positions: int, generator_hidden: int, generator_layers: int | None = None) -> dict:
    """An ELECTRA ``hparams.json`` (configure_pretraining.PretrainingConfig keys)."""
    return {"model_size": "small", "vocab_size": vocab_size, "embedding_size": embedding,
            "max_seq_length": max_positions, "generator_hidden_size": generator_hidden / hidden,
            "generator_layers": (generator_layers or layers) / layers,
            "model_hparam_overrides": {"hidden_size": hidden, "num_hidden_layers": layers,
                                       "num_attention_heads": heads, "intermediate_size": intermediate,
                                       "max_position_embeddings": max_positions}}


def electra_tf_variables(*, vocab_size: int, embedding: int, hidden: int, layers: int, heads: int,
                         intermediate: int, max_positions: int, generator_hidden: int | None = None,
                         generator_heads: int = 1, generator_layers: int | None = None,
                         generator_intermediate: int | None = None, discriminator: bool = True,
                         classifier_labels: int = 0, seed: int = 0, dtype=np.float32) -> dict[str, np.ndarray]:
    """Variables of google-research/electra's pretraining graph (run_pretraining.py + model/modeling.py).

    Shared ``electra/embeddings/*`` (the generator reuses them: untied_generator_embeddings=False),
    ``electra/embeddings_project`` and ``generator/embeddings_project`` when the embedding size differs from
    each model's hidden size, ``generator/encoder/*`` (untied generator), the two heads. With
    ``classifier_labels`` > 0 and ``generator_hidden=None`` a fine-tuned classifier (the transformers-style
    two-layer head ``classifier/dense`` + ``classifier/out_proj``) instead of the pretraining heads.
    """
    r = _Random(seed, dtype)
    v = {"electra/embeddings/word_embeddings": r.mat(vocab_size, embedding, scale=0.5),
         "electra/embeddings/token_type_embeddings": r.mat(2, embedding, scale=0.5),
         "electra/embeddings/position_embeddings": r.mat(max_positions, embedding, scale=0.5),
         "electra/embeddings/LayerNorm/gamma": r.vec(embedding, center=1.0),
         "electra/embeddings/LayerNorm/beta": r.vec(embedding)}
    if discriminator:
        if embedding != hidden:
            v["electra/embeddings_project/kernel"] = r.mat(embedding, hidden)
            v["electra/embeddings_project/bias"] = r.vec(hidden)
        v.update(_encoder_layers(r, "electra", hidden=hidden, layers=layers, heads=heads, intermediate=intermediate))
    if generator_hidden:
        g_layers = generator_layers or layers
        if embedding != generator_hidden:
            v["generator/embeddings_project/kernel"] = r.mat(embedding, generator_hidden)
            v["generator/embeddings_project/bias"] = r.vec(generator_hidden)
        v.update(_encoder_layers(r, "generator", hidden=generator_hidden, layers=g_layers, heads=generator_heads,
                                 intermediate=generator_intermediate or 4 * generator_hidden))
        v["generator_predictions/dense/kernel"] = r.mat(generator_hidden, embedding)
        v["generator_predictions/dense/bias"] = r.vec(embedding)
        v["generator_predictions/LayerNorm/gamma"] = r.vec(embedding, center=1.0)
        v["generator_predictions/LayerNorm/beta"] = r.vec(embedding)
        v["generator_predictions/output_bias"] = r.vec(vocab_size)
        if discriminator:
            v["discriminator_predictions/dense/kernel"] = r.mat(hidden, hidden)
            v["discriminator_predictions/dense/bias"] = r.vec(hidden)
            v["discriminator_predictions/dense_1/kernel"] = r.mat(hidden, 1)
            v["discriminator_predictions/dense_1/bias"] = r.vec(1)
    elif classifier_labels:
        v["classifier/dense/kernel"] = r.mat(hidden, hidden)
        v["classifier/dense/bias"] = r.vec(hidden)
        v["classifier/out_proj/kernel"] = r.mat(hidden, classifier_labels)
        v["classifier/out_proj/bias"] = r.vec(classifier_labels)
    return v
