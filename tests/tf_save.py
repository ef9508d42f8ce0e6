"""Write checkpoints with TensorFlow itself (tf.compat.v1 Saver), so tests read genuine TF files."""

from __future__ import annotations

import os

import numpy as np


def tf1_save(prefix: str, variables: dict[str, np.ndarray]) -> str:
    """Save ``variables`` under their exact names with a TF1 Saver, as Google's BERT code does."""
    import tensorflow as tf

    os.makedirs(os.path.dirname(prefix), exist_ok=True)
    graph = tf.Graph()
    with graph.as_default():
        tf_vars = [tf.compat.v1.get_variable(name, initializer=tf.constant(value), use_resource=False)
                   for name, value in variables.items()]
        saver = tf.compat.v1.train.Saver(tf_vars)
        with tf.compat.v1.Session(graph=graph) as session:
            session.run(tf.compat.v1.global_variables_initializer())
            return saver.save(session, prefix, write_meta_graph=False)


def tf1_restore(prefix: str, shapes: dict[str, tuple], dtypes: dict[str, np.dtype]) -> dict[str, np.ndarray]:
    """Declare variables with these names/shapes in a graph and restore them with a TF1 Saver."""
    import tensorflow as tf

    graph = tf.Graph()
    with graph.as_default():
        tf_vars = {name: tf.compat.v1.get_variable(name, shape=shape, dtype=tf.as_dtype(dtypes[name]),
                                                   use_resource=False)
                   for name, shape in shapes.items()}
        saver = tf.compat.v1.train.Saver(list(tf_vars.values()))
        with tf.compat.v1.Session(graph=graph) as session:
            saver.restore(session, prefix)
            return {name: session.run(v) for name, v in tf_vars.items()}


def assert_tensorflow_reads(path: str, variables: dict[str, np.ndarray], *, extra: set[str] = frozenset()):
    """TensorFlow's own reader finds exactly ``variables`` (+ ``extra`` names) at ``path``, with equal
    shapes and values; returns the reader for further checks."""
    import tensorflow as tf

    reader = tf.train.load_checkpoint(path)
    shapes = reader.get_variable_to_shape_map()
    assert set(shapes) == set(variables) | set(extra)
    for name, value in variables.items():
        assert tuple(shapes[name]) == value.shape, name
        np.testing.assert_array_equal(reader.get_tensor(name), value, err_msg=name)
    return reader
