"""``ckptkit inspect`` of a TF checkpoint reads its metadata without NumPy or ml_dtypes (#18 item 4): the index,
roles, family, totals, and the global step (8 bytes read and CRC-checked by hand) — checked on sys.modules
after the real CLI ran in a fresh process, against what was written."""

from __future__ import annotations

import json
import re

import ml_dtypes
import numpy as np
import pytest

from ckptkit.converters.families import DETECTION, FAMILIES, get_family
from ckptkit.converters.formats.tf1 import TFCheckpointWriter, open_tf_checkpoint
from test_startup import run_cli_output

NUMERIC = ("numpy", "ml_dtypes")
KERNEL = "bert/encoder/layer_0/attention/self/query/kernel"


def numeric(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if m.split(".")[0] in NUMERIC)


def bert_checkpoint(prefix, *, step=np.int64(1234), num_shards: int = 2) -> dict[str, np.ndarray]:
    """A BERT-like bundle: weights, Adam slots, a partitioned embedding over two shards, bf16, a counter."""
    emb = np.arange(10 * 4, dtype=np.float32).reshape(10, 4)
    tensors = {KERNEL: np.ones((4, 4), np.float32), f"{KERNEL}/adam_m": np.zeros((4, 4), np.float32),
               f"{KERNEL}/adam_v": np.full((4, 4), 2, np.float32), "bert/pooler/dense/bias": np.arange(4, dtype=np.float32),
               "bert/pooler/dense/kernel": np.ones((4, 4), ml_dtypes.bfloat16), "global_step": np.asarray(step)}
    with TFCheckpointWriter(prefix, num_shards=num_shards) as writer:
        for name, array in tensors.items():
            writer.add(name, array)
        writer.add_slice("bert/embeddings/word_embeddings", emb[:6], full_shape=(10, 4), extents=((0, 6), None), shard=0)
        writer.add_slice("bert/embeddings/word_embeddings", emb[6:], full_shape=(10, 4), extents=((6, 4), None),
                         shard=num_shards - 1)
    return {**tensors, "bert/embeddings/word_embeddings": emb}


def test_inspect_of_a_tf_checkpoint_imports_no_numpy(tmp_path):
    written = bert_checkpoint(tmp_path / "model.ckpt-1234")
    code, modules, out, err = run_cli_output("inspect", tmp_path, "--json")
    assert code == 0, err
    assert numeric(modules) == []  # before #18 item 4: numpy, ml_dtypes and their submodules
    doc = json.loads(out)
    assert doc["global_step"] == 1234 and doc["family"] == "bert" and doc["extras"]["partitioned"] == 1
    assert doc["extras"]["num_shards"] == 2
    assert {t["name"]: (t["dtype"], tuple(t["shape"]), t["nbytes"]) for t in doc["tensors"]} == \
        {name: (a.dtype.name, a.shape, a.nbytes) for name, a in written.items()}
    roles = {t["name"]: t["role"] for t in doc["tensors"]}
    assert roles[f"{KERNEL}/adam_v"] == "optimizer" and roles["global_step"] == "counter"
    assert doc["totals"]["by_role"]["optimizer"] == {"tensors": 2, "parameters": 32, "bytes": 128}

    code, modules, text, err = run_cli_output("inspect", f"{tmp_path}/model.ckpt-1234.index")
    assert code == 0 and numeric(modules) == [], err
    assert "global_step: 1234" in text and "Format: tf (tf1, 2 shard(s), 1 partitioned)" in text
    assert "bert/pooler/dense/kernel bfloat16 [4, 4] 32 B".split() in [line.split() for line in text.splitlines()]


@pytest.mark.parametrize("step", [np.int64(-5), np.int32(2**31 - 1), np.uint64(2**64 - 2), np.int64(2**40 + 3)])
def test_the_global_step_read_by_hand_is_the_stored_value(tmp_path, step):
    """Signed, unsigned, 4 and 8 bytes: the value read from the raw bytes equals NumPy's reading of the tensor."""
    bert_checkpoint(tmp_path / "m", step=step, num_shards=1)
    code, modules, out, err = run_cli_output("inspect", tmp_path / "m", "--json", "--quiet")
    assert code == 0 and numeric(modules) == [], err
    with open_tf_checkpoint(tmp_path / "m") as ckpt:
        assert json.loads(out)["global_step"] == int(step) == int(ckpt["global_step"].read())


def test_a_damaged_global_step_fails_its_crc_without_numpy(tmp_path):
    bert_checkpoint(tmp_path / "m", num_shards=1)
    with open_tf_checkpoint(tmp_path / "m") as ckpt:
        offset = ckpt["global_step"].entry.offset
    data = f"{tmp_path / 'm'}.data-00000-of-00001"
    raw = bytearray(open(data, "rb").read())
    raw[offset] ^= 0x01  # 1234 -> 1235: a plausible value only the checksum catches
    open(data, "wb").write(bytes(raw))
    code, modules, out, err = run_cli_output("inspect", tmp_path / "m")
    assert code == 2 and out == "" and numeric(modules) == []
    assert err.startswith("ckptkit: error: ") and err.count("\n") == 1
    assert "CRC mismatch in tensor 'global_step'" in err and data in err


def test_inspect_imports_no_family_module(tmp_path):
    """The family is detected from the registry's DETECTION rows: none of the family modules (tables, plans,
    config schemas) is imported to list a checkpoint."""
    bert_checkpoint(tmp_path / "m", num_shards=1)
    code, modules, out, err = run_cli_output("inspect", tmp_path / "m")
    assert code == 0 and "Family: bert" in out, err
    assert sorted(m for m in modules if m.startswith("ckptkit.converters.families.")) == []  # before: 14
    assert "ckptkit.converters.plan" not in modules


def test_inspect_of_a_folder_with_a_tf_config_imports_no_family_module(tmp_path):
    """A checkpoint folder with bert_config.json but no config.json is not a folder of part folders: finding that
    out needs no family module either."""
    folder = tmp_path / "run"
    folder.mkdir()
    bert_checkpoint(folder / "model.ckpt-1", num_shards=1)
    (folder / "bert_config.json").write_text("{}")
    (folder / "logs").mkdir()
    code, modules, out, err = run_cli_output("inspect", folder)
    assert code == 0 and "Family: bert" in out, err
    assert sorted(m for m in modules if m.startswith("ckptkit.converters.families.")) == []


def test_the_detection_rows_are_the_families_own():
    """DETECTION holds each family's model_types and signature so that detecting imports no family module: every
    registered family has its row, and its FAMILY is built from that row (one source, not a copy)."""
    assert list(DETECTION) == list(FAMILIES)
    for name in FAMILIES:
        family = get_family(name)
        model_types, pattern = DETECTION[name]
        assert model_types == family.model_types, name
        assert pattern == (family.signature.pattern if family.signature is not None else None), name
        assert family.signature is None or re.compile(pattern).flags == family.signature.flags, name


def _write_weights(kind: str, root) -> str:
    """BERT-like weights (bf16 among them) and a global_step as a safetensors file, a .bin or a hub folder."""
    from ckptkit.converters.formats.safetensors_io import save_safetensors
    from ckptkit.converters.formats.torch_bin import save_torch_bin

    tensors = {"bert.embeddings.word_embeddings.weight": np.ones((6, 4), np.float32),
               "bert.encoder.layer.0.output.dense.weight": np.ones((4, 4), ml_dtypes.bfloat16),
               "global_step": np.asarray(np.int64(-20000 if kind == "pytorch" else 20000))}
    if kind == "pytorch":
        import torch

        save_torch_bin(str(root / "pytorch_model.bin"), tensors)
        assert torch.load(root / "pytorch_model.bin")["global_step"].shape == ()  # was [1] before the 0-d fix
        return str(root / "pytorch_model.bin")
    save_safetensors(str(root / "model.safetensors"), tensors)
    if kind == "hub":
        (root / "config.json").write_text(json.dumps({"model_type": "electra"}))
        return str(root)
    return str(root / "model.safetensors")


@pytest.mark.parametrize("kind,family", [("safetensors", "bert"), ("pytorch", "bert"), ("hub", "electra")])
def test_inspect_of_safetensors_bin_and_hub_folders_imports_no_numpy(tmp_path, kind, family):
    """Their headers, the zip's pickle and config.json are read without NumPy; so is the global step, from its
    stored little-endian bytes."""
    path = _write_weights(kind, tmp_path)
    code, modules, out, err = run_cli_output("inspect", path, "--json")
    assert code == 0, err
    assert numeric(modules) == []  # before #18 item 4: numpy and ml_dtypes
    doc = json.loads(out)
    assert doc["global_step"] == (-20000 if kind == "pytorch" else 20000) and doc["family"] == family
    assert {t["name"]: (t["dtype"], t["shape"]) for t in doc["tensors"]} == {
        "bert.embeddings.word_embeddings.weight": ("float32", [6, 4]),
        "bert.encoder.layer.0.output.dense.weight": ("bfloat16", [4, 4]), "global_step": ("int64", [])}
