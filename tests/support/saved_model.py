"""SavedModels written by TensorFlow itself (``tf.saved_model.save``) holding BERT variables, and TensorFlow's
own reading of them back, for the SavedModel-source tests.

Layouts (how the variables are held and named):
    ``names``        a ``tf.Module`` with a list of ``tf.Variable(value, name=<official TF1 name>)``;
    ``paths``        nested ``tf.Module``s along the TF1 scopes (object paths = TF1 names, variable names not unique);
    ``model_garden`` ``tf.Variable``s named as TF Model Garden's Keras ``BertEncoder`` names them (TF-Hub BERT
                     SavedModels), attention kernels in their einsum shapes.
"""

from __future__ import annotations

import os
import re

import numpy as np

__all__ = ["save_bert_saved_model", "tensorflow_reading", "MODEL_GARDEN_NAMES"]

_SUFFIX = "/.ATTRIBUTES/VARIABLE_VALUE"
# TF1 name (regex over the official names) -> Model Garden BertEncoder variable name; written out here
# independently of ckptkit's table.
MODEL_GARDEN_NAMES = (
    (r"bert/embeddings/word_embeddings", "word_embeddings/embeddings"),
    (r"bert/embeddings/position_embeddings", "position_embedding/embeddings"),
    (r"bert/embeddings/token_type_embeddings", "type_embeddings/embeddings"),
    (r"bert/embeddings/LayerNorm/(gamma|beta)", r"embeddings/layer_norm/\1"),
    (r"bert/encoder/layer_(\d+)/attention/self/(query|key|value)/(kernel|bias)",
     r"transformer/layer_\1/self_attention/\2/\3"),
    (r"bert/encoder/layer_(\d+)/attention/output/dense/(kernel|bias)",
     r"transformer/layer_\1/self_attention/attention_output/\2"),
    (r"bert/encoder/layer_(\d+)/attention/output/LayerNorm/(gamma|beta)",
     r"transformer/layer_\1/self_attention_layer_norm/\2"),
    (r"bert/encoder/layer_(\d+)/intermediate/dense/(kernel|bias)", r"transformer/layer_\1/intermediate/\2"),
    (r"bert/encoder/layer_(\d+)/output/dense/(kernel|bias)", r"transformer/layer_\1/output/\2"),
    (r"bert/encoder/layer_(\d+)/output/LayerNorm/(gamma|beta)", r"transformer/layer_\1/output_layer_norm/\2"),
    (r"bert/pooler/dense/(kernel|bias)", r"pooler_transform/\1"),
)


def _model_garden(name: str, value: np.ndarray, heads: int) -> tuple[str, np.ndarray]:
    keras = _keras_name(name)
    if re.search(r"self_attention/(query|key|value)/kernel$", keras):
        value = value.reshape(value.shape[0], heads, -1)
    elif re.search(r"self_attention/(query|key|value)/bias$", keras):
        value = value.reshape(heads, -1)
    elif keras.endswith("attention_output/kernel"):
        value = value.reshape(heads, -1, value.shape[1])
    return keras, value


def _nested(tf, variables: dict[str, np.ndarray]):
    root = tf.Module()
    for name, value in variables.items():
        *scopes, leaf = name.split("/")
        node = root
        for scope in scopes:
            if not hasattr(node, scope):
                setattr(node, scope, tf.Module())
            node = getattr(node, scope)
        setattr(node, leaf, tf.Variable(value, name=leaf))
    return root


def save_bert_saved_model(directory: str, variables: dict[str, np.ndarray], *, layout: str = "names",
                          heads: int = 4, vocab: list[str] | None = None) -> str:
    """Save ``variables`` (official TF1 names) as a SavedModel in ``layout``; ``vocab`` becomes assets/vocab.txt."""
    import tensorflow as tf

    if layout == "paths":
        root = _nested(tf, variables)
    else:
        root = tf.Module()
        named = dict(_model_garden(n, v, heads) for n, v in variables.items()) if layout == "model_garden" \
            else variables
        root.vars = [tf.Variable(value, name=name) for name, value in named.items()]
    first = next(iter(root.trainable_variables))
    root.serve = tf.function(lambda x: x * tf.reduce_sum(first), input_signature=[tf.TensorSpec([None], tf.float32)])
    if vocab is not None:
        os.makedirs(os.path.join(os.path.dirname(directory) or ".", "asset-source"), exist_ok=True)
        path = os.path.join(os.path.dirname(directory) or ".", "asset-source", "vocab.txt")
        with open(path, "w") as f:
            f.write("\n".join(vocab) + "\n")
        root.vocab = tf.saved_model.Asset(path)
    tf.saved_model.save(root, directory)
    return directory


def tensorflow_reading(directory: str, *, layout: str, tf1_names=()) -> dict[str, np.ndarray]:
    """The SavedModel's variables as TensorFlow reads them, under the official TF1 names and shapes.

    ``names``/``model_garden``: ``tf.saved_model.load`` and each variable's own ``.name``; ``paths``:
    ``tf.train.load_checkpoint`` on ``variables/variables``, keys without their attribute suffix.
    ``model_garden`` needs the ``tf1_names`` it was saved from (their Keras names are matched back).
    """
    import tensorflow as tf

    if layout == "paths":
        reader = tf.train.load_checkpoint(os.path.join(directory, "variables", "variables"))
        return {k[:-len(_SUFFIX)]: reader.get_tensor(k) for k in reader.get_variable_to_shape_map()
                if k.endswith(_SUFFIX)}
    loaded = tf.saved_model.load(directory)
    read = {v.name.rsplit(":", 1)[0]: v.numpy() for v in loaded.vars}
    if layout == "names":
        return read
    tf1 = {_keras_name(name): name for name in tf1_names}
    return {tf1[keras]: _two_d(keras, value) for keras, value in read.items()}


def _keras_name(name: str) -> str:
    return next(re.sub(p, t, name) for p, t in MODEL_GARDEN_NAMES if re.fullmatch(p, name))


def _two_d(keras: str, value: np.ndarray) -> np.ndarray:
    if keras.endswith("attention_output/kernel"):
        return value.reshape(-1, value.shape[-1])
    if value.ndim == 3:
        return value.reshape(value.shape[0], -1)
    return value.reshape(-1) if "self_attention/" in keras and keras.endswith("/bias") else value
