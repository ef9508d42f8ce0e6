"""Keras layouts of SavedModel variables renamed to the official TF1 names, before any family sees them.

One layout is known: the TF Model Garden ``BertEncoder`` (``official.nlp.modeling.networks``), the encoder
of TF-Hub's BERT SavedModels (``bert_en_uncased_L-12_H-768_A-12/3`` and later). Its attention kernels are
Keras ``EinsumDense`` tensors (query/key/value ``[hidden, heads, head_size]``, output
``[heads, head_size, hidden]``); they are the TF1 2-D kernels reshaped, so each is renamed and seen
as ``[hidden, hidden]`` (a view: the bytes on disk are the same), and the heads are recorded in
``extras['num_heads']``. A layout is applied only when every variable it names is there.

Example:
    >>> _rename("transformer/layer_3/self_attention/query/kernel")
    'bert/encoder/layer_3/attention/self/query/kernel'
    >>> _rename("pooler_transform/bias")
    'bert/pooler/dense/bias'
"""

from __future__ import annotations

import dataclasses
import re
from typing import Mapping

from ckptkit.converters.tensors import LazyTensor

__all__ = ["MODEL_GARDEN_BERT", "rename_known_layouts"]

_L = r"transformer/layer_(?P<layer>\d+)/"
_T = "bert/encoder/layer_{layer}/"
# Model Garden BertEncoder variable name (regex) -> official TF1 BERT name.
MODEL_GARDEN_BERT: tuple[tuple[str, str], ...] = (
    (r"word_embeddings/embeddings", "bert/embeddings/word_embeddings"),
    (r"position_embedding/embeddings", "bert/embeddings/position_embeddings"),
    (r"type_embeddings/embeddings", "bert/embeddings/token_type_embeddings"),
    (r"embeddings/layer_norm/(?P<p>gamma|beta)", "bert/embeddings/LayerNorm/{p}"),
    (_L + r"self_attention/(?P<q>query|key|value)/(?P<p>kernel|bias)", _T + "attention/self/{q}/{p}"),
    (_L + r"self_attention/attention_output/(?P<p>kernel|bias)", _T + "attention/output/dense/{p}"),
    (_L + r"self_attention_layer_norm/(?P<p>gamma|beta)", _T + "attention/output/LayerNorm/{p}"),
    (_L + r"intermediate/(?P<p>kernel|bias)", _T + "intermediate/dense/{p}"),
    (_L + r"output/(?P<p>kernel|bias)", _T + "output/dense/{p}"),
    (_L + r"output_layer_norm/(?P<p>gamma|beta)", _T + "output/LayerNorm/{p}"),
    (r"pooler_transform/(?P<p>kernel|bias)", "bert/pooler/dense/{p}"),
)
_COMPILED = tuple((re.compile(pattern + "$"), target) for pattern, target in MODEL_GARDEN_BERT)
_SIGNATURE = ("word_embeddings/embeddings", "transformer/layer_0/self_attention/query/kernel")


def _rename(name: str) -> str | None:
    for pattern, target in _COMPILED:
        match = pattern.match(name)
        if match:
            return target.format(**match.groupdict())
    return None


def _two_d(shape: tuple[int, ...], name: str) -> tuple[int, ...]:
    """EinsumDense shapes as the TF1 dense shapes: [in, heads, size] -> [in, heads*size] (query/key/value),
    [heads, size, out] -> [heads*size, out] (attention output), [heads, size] -> [heads*size] (biases)."""
    if name.endswith("attention/output/dense/kernel") and len(shape) == 3:
        return (shape[0] * shape[1], shape[2])
    if len(shape) == 3:
        return (shape[0], shape[1] * shape[2])
    if len(shape) == 2 and name.endswith("/bias"):
        return (shape[0] * shape[1],)
    return shape


def _reshaped(tensor: LazyTensor, name: str, shape: tuple[int, ...]) -> LazyTensor:
    if shape == tensor.shape:
        return dataclasses.replace(tensor, name=name)
    loader = tensor.loader
    return dataclasses.replace(tensor, name=name, shape=shape, loader=lambda: loader().reshape(shape))


def rename_known_layouts(tensors: Mapping[str, LazyTensor]) -> tuple[dict[str, LazyTensor], dict] | None:
    """``tensors`` renamed (and einsum kernels seen 2-D) when they are a known Keras layout, with the facts for
    the checkpoint's extras (``names``: the layout, ``num_heads``: from the einsum kernels); None otherwise."""
    if not all(name in tensors for name in _SIGNATURE):
        return None
    renamed: dict[str, LazyTensor] = {}
    for name, tensor in tensors.items():
        target = _rename(name) if tensor.role == "weight" else None
        if target is None:
            renamed[name] = tensor
        else:
            renamed[target] = _reshaped(tensor, target, _two_d(tensor.shape, target))
    return renamed, {"names": "Model Garden BertEncoder names", "num_heads": tensors[_SIGNATURE[1]].shape[1]}
