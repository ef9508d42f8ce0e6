"""Our TF reader and writer against real TensorFlow (imported only here).

TensorFlow writes checkpoints of every kind once per session; we read them and compare with
``tf.train.load_checkpoint``, rewrite them byte for byte, and let TensorFlow read what we write.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest

from ckptkit.converters.formats.tf1 import (
    TFCheckpointWriter, open_tf_checkpoint, rewrite_tf_checkpoint, write_tf_checkpoint,
)

pytestmark = pytest.mark.xdist_group("tensorflow")

NUMERIC = ["float32", "float64", "float16", "bfloat16", "int8", "int16", "int32", "int64", "uint8", "uint16",
           "uint32", "uint64", "bool"]
STRINGS = np.array([[b"a", b""], [b"x" * 300, "héllo".encode()]], dtype=object)


@pytest.fixture(scope="session")
def tf():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow

    return tensorflow


def sample(dtype: str, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if dtype == "bool":
        return rng.random((3, 5)) > 0.5
    return (rng.standard_normal((3, 5)) * 50).astype(ml_dtypes.bfloat16 if dtype == "bfloat16" else dtype)


def _tf1_saver(tf, prefix: Path, *, sharded: bool) -> str:
    graph = tf.Graph()
    with graph.as_default():
        for i, d in enumerate(NUMERIC):
            with tf.device(f"/cpu:{i % 3}" if sharded else "/cpu:0"):
                tf.compat.v1.get_variable(f"v/{d}", initializer=tf.constant(sample(d, i)), use_resource=i % 2 == 0)
        with tf.device("/cpu:1" if sharded else "/cpu:0"):
            tf.compat.v1.get_variable("bert/embeddings/word_embeddings", shape=(10, 4), dtype=tf.float32,
                                      partitioner=tf.compat.v1.fixed_size_partitioner(3))
            tf.compat.v1.get_variable("strs", initializer=tf.constant(STRINGS), dtype=tf.string)
            tf.compat.v1.get_variable("scalar_str", initializer=tf.constant(b"hi"), dtype=tf.string)
            step = tf.compat.v1.train.get_or_create_global_step()
            tf.compat.v1.get_variable("empty", shape=(0, 3), dtype=tf.float32)
        tf.compat.v1.get_variable("bert/pooler/dense/kernel/adam_m", shape=(2, 2))
        assign = tf.compat.v1.assign(step, 20000)
        saver = tf.compat.v1.train.Saver(sharded=sharded)
        config = tf.compat.v1.ConfigProto(device_count={"CPU": 3})
        with tf.compat.v1.Session(graph=graph, config=config) as session:
            session.run(tf.compat.v1.global_variables_initializer())
            session.run(assign)
            return saver.save(session, str(prefix), global_step=step)


def _tf2_keras(tf, prefix: Path) -> str:
    import keras

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4), keras.layers.Dense(2)])
    optimizer = keras.optimizers.Adam()
    model.compile(optimizer=optimizer, loss="mse")
    model.fit(np.ones((4, 3)), np.ones((4, 2)), verbose=0)
    return tf.train.Checkpoint(model=model, optimizer=optimizer).save(str(prefix))


def _tf2_slots(tf, prefix: Path) -> str:
    model = tf.Module()
    model.dense = tf.Module()
    model.dense.kernel = tf.Variable(np.arange(6, dtype=np.float32).reshape(2, 3))
    model.dense.bias = tf.Variable(np.ones(3, np.float32))
    model.odd = tf.Module()
    setattr(model.odd, "a.b", tf.Variable(1.5))
    optimizer = tf.compat.v1.train.AdamOptimizer(0.1)
    optimizer.minimize(lambda: tf.reduce_sum(model.dense.kernel) + tf.reduce_sum(model.dense.bias),
                       var_list=[model.dense.kernel, model.dense.bias])
    step = tf.Variable(7, dtype=tf.int64)
    return tf.train.Checkpoint(model=model, optimizer=optimizer, global_step=step).save(str(prefix))


def _tf2_sharded(tf, prefix: Path) -> str:
    big = tf.Module()
    big.w = tf.Variable(np.arange(4000, dtype=np.float32).reshape(100, 40))
    big.v = tf.Variable(np.ones((50, 8), np.float64))
    policy = tf.train.experimental.MaxShardSizePolicy(max_shard_size=4000)
    return tf.train.Checkpoint(big=big).save(str(prefix), options=tf.train.CheckpointOptions(
        experimental_sharding_callback=policy))


def _many_keys(tf, prefix: Path) -> str:
    names = [f"layer_{i:04d}/" + "x" * 150 + ("\xff" if i % 7 == 0 else "") for i in range(1300)]  # > 256 KiB index
    tf.raw_ops.SaveV2(prefix=str(prefix), tensor_names=names, shape_and_slices=[""] * len(names),
                      tensors=[tf.constant([i], tf.int32) for i in range(len(names))])
    return str(prefix)


@pytest.fixture(scope="session")
def tf_checkpoints(tf, tmp_path_factory) -> dict[str, str]:
    """name -> prefix of checkpoints TensorFlow wrote."""
    root = tmp_path_factory.mktemp("tf_written")
    makers = {"tf1": lambda p: _tf1_saver(tf, p, sharded=False), "tf1_sharded": lambda p: _tf1_saver(tf, p, sharded=True),
              "keras": lambda p: _tf2_keras(tf, p), "slots": lambda p: _tf2_slots(tf, p),
              "tf2_sharded": lambda p: _tf2_sharded(tf, p), "many": lambda p: _many_keys(tf, p)}
    out = {}
    for name, make in makers.items():
        (root / name).mkdir()
        out[name] = make(root / name / "model.ckpt")
    return out


KINDS = ["tf1", "tf1_sharded", "keras", "slots", "tf2_sharded", "many"]


@pytest.mark.parametrize("kind", KINDS)
def test_reader_matches_tensorflow(tf, tf_checkpoints, kind):
    prefix = tf_checkpoints[kind]
    reference = tf.train.load_checkpoint(prefix)
    shapes = reference.get_variable_to_shape_map()
    dtypes = reference.get_variable_to_dtype_map()
    with open_tf_checkpoint(prefix) as ckpt:
        assert sorted(t.key for t in ckpt.values()) == sorted(shapes)
        for tensor in ckpt.values():
            expected = np.asarray(reference.get_tensor(tensor.key))
            got = tensor.read()
            assert list(tensor.shape) == shapes[tensor.key] and got.shape == expected.shape
            assert tensor.dtype.name == ("object" if dtypes[tensor.key] == tf.string else dtypes[tensor.key].name)
            if tensor.dtype.name != "object":
                assert got.dtype == expected.dtype
            assert np.array_equal(got, expected), tensor.key


def test_tf1_details(tf_checkpoints):
    with open_tf_checkpoint(os.path.dirname(tf_checkpoints["tf1_sharded"])) as ckpt:
        assert ckpt.extras["num_shards"] == 4 and ckpt.extras["partitioned"] == 1 and ckpt.extras["kind"] == "tf1"
        assert ckpt.global_step == 20000
        assert ckpt["bert/pooler/dense/kernel/adam_m"].role == "optimizer"
        assert ckpt["global_step"].role == "counter" and ckpt["v/float32"].role == "weight"
        assert ckpt["strs"].read().tolist() == STRINGS.tolist()


def test_tf2_names_follow_the_object_graph(tf_checkpoints):
    with open_tf_checkpoint(tf_checkpoints["slots"]) as ckpt:
        assert ckpt.extras["kind"] == "tf2" and ckpt.global_step == 7
        roles = {name: t.role for name, t in ckpt.items()}
        assert roles["model/dense/kernel"] == "weight"
        assert ckpt["model/dense/kernel"].key == "model/dense/kernel/.ATTRIBUTES/VARIABLE_VALUE"
        assert roles["model/dense/kernel/.OPTIMIZER_SLOT/optimizer/m"] == "optimizer"
        assert roles["model/odd/a..b"] == "weight"
        assert ckpt["model/dense/kernel"].read().shape == (2, 3)  # values: test_reader_matches_tensorflow
    with open_tf_checkpoint(tf_checkpoints["keras"]) as ckpt:
        weights = sorted(t.name for t in ckpt.by_role("weight"))
        # Keras stores its kernels under optimizer/_trainable_variables/N; the name is the model's path.
        assert len(weights) == 4 and all(n.startswith("model/") for n in weights)
        assert ckpt[weights[0]].key.startswith("optimizer/_trainable_variables/")
        assert all(t.role == "optimizer" for t in ckpt.values() if t.key.startswith("optimizer/_variables/"))


@pytest.mark.parametrize("kind", KINDS)
def test_inspect_matches_tensorflow_without_numpy(tf, tf_checkpoints, kind):
    """``inspect --json`` of every kind TensorFlow wrote (TF2 object graphs, shards, partitions, strings) imports
    neither NumPy nor ml_dtypes, lists every key with TensorFlow's dtype and shape, and the step TensorFlow saved."""
    from ckptkit.converters.formats.tf1.reader import _COUNTER_NAMES
    from test_startup import run_cli_output

    prefix = tf_checkpoints[kind]
    code, modules, out, err = run_cli_output("inspect", prefix, "--json")
    assert code == 0, err
    assert sorted(m for m in modules if m.split(".")[0] in ("numpy", "ml_dtypes")) == []
    reference = tf.train.load_checkpoint(prefix)
    shapes, dtypes = reference.get_variable_to_shape_map(), reference.get_variable_to_dtype_map()
    with open_tf_checkpoint(prefix) as ckpt:
        keys = {name: tensor.key for name, tensor in ckpt.items()}
    doc = json.loads(out)
    assert {keys[t["name"]]: (t["dtype"], t["shape"]) for t in doc["tensors"]} == \
        {k: ("object" if dtypes[k] == tf.string else dtypes[k].name, shapes[k]) for k in shapes}
    counter = next((keys[n] for n in _COUNTER_NAMES if n in keys), None)
    assert doc["global_step"] == (None if counter is None else int(reference.get_tensor(counter)))


@pytest.mark.parametrize("kind", KINDS)
def test_rewrite_is_byte_identical(tf_checkpoints, tmp_path, kind):
    src = tf_checkpoints[kind]
    dst = rewrite_tf_checkpoint(src, tmp_path / "copy", write_state=False)
    src_dir, base = os.path.split(src)
    names = sorted(n for n in os.listdir(src_dir) if n.startswith(base + ".") and not n.endswith(".meta"))
    assert len(names) >= 2
    for name in names:
        copy = Path(dst + name[len(base):])
        assert copy.read_bytes() == Path(src_dir, name).read_bytes(), name


@pytest.fixture(scope="session")
def ours(tmp_path_factory) -> tuple[str, dict[str, np.ndarray]]:
    """A checkpoint our writer wrote: every dtype, strings, a partitioned variable, 3 shards."""
    tensors = {f"v/{d}": sample(d, i) for i, d in enumerate(NUMERIC)}
    tensors.update({"strs": STRINGS, "global_step": np.int64(42), "t": np.arange(12.0).reshape(3, 4).T})
    prefix = str(tmp_path_factory.mktemp("ours") / "model.ckpt-42")
    embedding = np.arange(40, dtype=np.float32).reshape(10, 4)
    with TFCheckpointWriter(prefix, num_shards=3) as writer:
        for name, value in tensors.items():
            writer.add(name, value)
        for start, length in ((0, 4), (4, 3), (7, 3)):
            writer.add_slice("emb", embedding[start:start + length], full_shape=(10, 4), extents=((start, length), None))
    tensors["emb"] = embedding
    return prefix, tensors


def test_tensorflow_loads_what_we_write(tf, ours):
    prefix, tensors = ours
    assert tf.train.latest_checkpoint(os.path.dirname(prefix)) == prefix
    reader = tf.train.load_checkpoint(prefix)
    assert sorted(reader.get_variable_to_shape_map()) == sorted(tensors)
    for name, expected in tensors.items():
        got = np.asarray(reader.get_tensor(name))
        assert got.shape == expected.shape and np.array_equal(got, expected), name
        if expected.dtype != object:
            assert got.dtype == expected.dtype


def test_tensorflow_saver_restores_what_we_write(tf, ours):
    prefix, tensors = ours
    graph = tf.Graph()
    with graph.as_default():
        variables = {name: tf.compat.v1.get_variable(name, shape=value.shape, dtype=tf.as_dtype(
            tf.string if value.dtype == object else value.dtype)) for name, value in tensors.items() if name != "emb"}
        emb = tf.compat.v1.get_variable("emb", shape=(10, 4), dtype=tf.float32,
                                        partitioner=tf.compat.v1.fixed_size_partitioner(3))
        saver = tf.compat.v1.train.Saver()
        with tf.compat.v1.Session(graph=graph) as session:
            saver.restore(session, prefix)
            for name, variable in variables.items():
                assert np.array_equal(np.asarray(session.run(variable)), tensors[name]), name
            assert np.array_equal(session.run(tf.convert_to_tensor(emb)), tensors["emb"])


def test_tensorflow_reads_max_shard_size_output(tf, tmp_path):
    tensors = {f"w{i}": np.full((i + 1, 3), i, np.int16) for i in range(6)}
    prefix = write_tf_checkpoint(tmp_path / "m", tensors, max_shard_size=30)
    assert len([n for n in os.listdir(tmp_path) if ".data-" in n]) > 2
    reader = tf.train.load_checkpoint(prefix)
    for name, expected in tensors.items():
        assert np.array_equal(reader.get_tensor(name), expected)
