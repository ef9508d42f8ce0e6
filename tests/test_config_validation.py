"""Issue 12 item 8: every config (a TF config file of each family, an HF config.json read for --to tf1 or for a
distillation teacher) is checked against its family's schema before anything is written. A bad one is one
line `ckptkit: error: FILE: 'KEY' is ..., expected ...`, exit 2, and no output folder; every config that is
accepted gives a config.json that transformers loads.

Everything runs in-process through ``ckptkit.cli.main`` on tiny checkpoints written here.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from ckptkit.cli import main
from config_helpers import FAMILIES, leftovers, write_config, write_tf_model
from support.cli import run_cli

DROP = object()


run = run_cli


def mutate(config: dict, change) -> dict | str:
    """``change``: a dict of key -> new value (DROP removes the key, a dotted key reaches into a section),
    a whole replacement config, or raw text."""
    if not isinstance(change, dict) or change.get("_replace") is not None:
        return change["_replace"] if isinstance(change, dict) else change
    result = json.loads(json.dumps(config))
    for key, value in change.items():
        *sections, last = key.split(".")
        target = result
        for name in sections:
            target = target.setdefault(name, {})
        if value is DROP:
            target.pop(last, None)
        else:
            target[last] = value
    return result


# (family, change, key the message must name). Each was accepted or crashed with a traceback before.
TF_BAD = [
    ("bert", {"_replace": {"num_attention_heads": 2}}, "'vocab_size'"),
    ("bert", {"num_hidden_layers": DROP}, "'num_hidden_layers'"),
    ("bert", {"hidden_size": "abc"}, "'hidden_size'"),
    ("bert", {"vocab_size": [40]}, "'vocab_size'"),
    ("bert", {"intermediate_size": 32.5}, "'intermediate_size'"),
    ("bert", {"intermediate_size": "32"}, "'intermediate_size'"),
    ("bert", {"type_vocab_size": True}, "'type_vocab_size'"),
    ("bert", {"num_attention_heads": 0}, "'num_attention_heads'"),
    ("bert", {"num_attention_heads": -2}, "'num_attention_heads'"),
    ("bert", {"max_position_embeddings": -24}, "'max_position_embeddings'"),
    ("bert", {"vocab_size": 10**30}, "'vocab_size'"),
    ("bert", {"num_attention_heads": 3}, "'hidden_size'"),
    ("bert", {"hidden_act": "gelu_fancy"}, "'hidden_act'"),
    ("bert", {"hidden_act": ["gelu"]}, "'hidden_act'"),
    ("bert", {"hidden_dropout_prob": float("nan")}, "'hidden_dropout_prob'"),
    ("bert", {"attention_probs_dropout_prob": 1.5}, "'attention_probs_dropout_prob'"),
    ("bert", {"initializer_range": -0.02}, "'initializer_range'"),
    ("bigbird", "--block_size=abc\n--hidden_size=16\n", "'block_size'"),
    ("bigbird", {"num_rand_blocks": -1}, "'num_rand_blocks'"),
    ("bigbird", {"block_size": 0}, "'block_size'"),
    ("bigbird", {"attention_type": "sparse"}, "'attention_type'"),
    ("bigbird", {"use_bias": "yes"}, "'use_bias'"),
    ("bigbird", {"rescale_embedding": {"x": None}}, "'rescale_embedding'"),
    ("bigbird", {"num_attention_heads": 3}, "'hidden_size'"),
    ("bigbird", {"hidden_act": "gelu_new"}, "'hidden_act'"),
    ("bigbird", {"hidden_dropout_prob": "0.1"}, "'hidden_dropout_prob'"),
    ("electra", {"model_hparam_overrides": [1]}, "'model_hparam_overrides'"),
    ("electra", {"model_hparam_overrides.hidden_size": "x"}, "'model_hparam_overrides.hidden_size'"),
    ("electra", {"model_hparam_overrides.num_attention_heads": 3}, "hidden_size'"),
    ("electra", {"model_size": "huge"}, "'model_size'"),
    ("electra", {"model_size": ["small"]}, "'model_size'"),
    ("electra", {"embedding_size": 0}, "'embedding_size'"),
    ("electra", {"generator": {"num_attention_heads": -1}}, "'generator.num_attention_heads'"),
    ("electra", {"generator": "small"}, "'generator'"),
    ("electra", {"vocab_size": "50"}, "'vocab_size'"),
    ("electra", {"hidden_act": 3}, "'hidden_act'"),
]


@pytest.fixture(scope="module")
def tf_models(tmp_path_factory) -> dict[str, tuple[str, dict]]:
    root = tmp_path_factory.mktemp("tf-models")
    return {family: write_tf_model(root / family, family) for family in FAMILIES}


@pytest.fixture(scope="module")
def bert_hub(tmp_path_factory, tf_models) -> Path:
    """A BERT hub folder converted from the tiny TF checkpoint with its valid config."""
    root = tmp_path_factory.mktemp("bert-hub")
    prefix, config = tf_models["bert"]
    out = root / "hub"
    main_ok(["convert", prefix, out, "--config", write_config(root / "bert_config.json", config)])
    return out


def main_ok(argv) -> None:
    try:
        main([str(a) for a in argv])
    except SystemExit as e:
        assert e.code == 0, argv


def assert_one_line_error(code: int, err: str, *, path: str, key: str) -> None:
    assert code == 2, err
    assert err.startswith("ckptkit: error: ") and err.count("\n") == 1, err
    assert path in err and key in err and "expected" in err, err


@pytest.mark.parametrize("family,change,key", TF_BAD, ids=[f"{f}-{k.strip(chr(39))}-{i}"
                                                          for i, (f, _, k) in enumerate(TF_BAD)])
def test_bad_tf_config_is_one_line_naming_the_key(tmp_path, capsys, tf_models, family, change, key):
    prefix, valid = tf_models[family]
    config = write_config(tmp_path / FAMILIES[family][2], mutate(valid, change))
    code, _, err = run(["convert", prefix, tmp_path / "out", "--config", config], capsys)
    assert_one_line_error(code, err, path=config, key=key)
    assert leftovers(tmp_path, "out") == []


# (change to a valid HF config.json, key the message must name)
HF_BAD = [
    ({"hidden_size": DROP}, "'hidden_size'"),
    ({"num_attention_heads": "abc"}, "'num_attention_heads'"),
    ({"num_attention_heads": 3}, "'hidden_size'"),
    ({"model_type": ["bert"]}, "'model_type'"),
    ({"architectures": "BertForPreTraining"}, "'architectures'"),
    ({"hidden_act": "gelu_fancy"}, "'hidden_act'"),
    ({"vocab_size": -40}, "'vocab_size'"),
    ({"intermediate_size": 32.5}, "'intermediate_size'"),
    ({"num_hidden_layers": True}, "'num_hidden_layers'"),
    ({"layer_norm_eps": "1e-12"}, "'layer_norm_eps'"),
    ({"hidden_size": 32, "num_attention_heads": 4}, "hidden_size"),  # contradicts the weights
    ({"intermediate_size": 64}, "intermediate_size"),                 # contradicts the weights
]


def hub_copy(bert_hub: Path, folder: Path, change) -> Path:
    folder.mkdir()
    shutil.copyfile(bert_hub / "model.safetensors", folder / "model.safetensors")
    valid = json.loads((bert_hub / "config.json").read_text())
    write_config(folder / "config.json", mutate(valid, change))
    return folder


@pytest.mark.parametrize("change,key", HF_BAD, ids=[f"{k.strip(chr(39))}-{i}" for i, (_, k) in enumerate(HF_BAD)])
def test_bad_hub_config_to_tf1_is_one_line_naming_the_key(tmp_path, capsys, bert_hub, change, key):
    folder = hub_copy(bert_hub, tmp_path / "hub", change)
    code, _, err = run(["convert", folder, tmp_path / "tf", "--to", "tf1"], capsys)
    assert code == 2 and err.count("\n") == 1 and str(folder / "config.json") in err and key in err, err
    assert leftovers(tmp_path, "tf") == []


@pytest.mark.parametrize("change,key", [({"num_attention_heads": "4"}, "'num_attention_heads'"),
                                        ({"hidden_size": DROP}, "'hidden_size'")])
def test_bad_teacher_config_is_one_line_naming_the_key(tmp_path, capsys, bert_hub, change, key):
    folder = hub_copy(bert_hub, tmp_path / "teacher", change)
    code, _, err = run(["distill", "init", folder, tmp_path / "student", "--num-layers", "1"], capsys)
    assert_one_line_error(code, err, path=str(folder / "config.json"), key=key)
    assert leftovers(tmp_path, "student") == []


# Valid variants each family's official code writes: every one converts and transformers loads the result.
ACCEPTED = [
    ("bert", {}),
    ("bert", {"hidden_act": "relu", "hidden_dropout_prob": 0, "initializer_range": 1}),
    ("bigbird", {}),
    ("bigbird", {"_replace": {"block_size": 4, "num_rand_blocks": 1}}),   # the rest from shapes and flag defaults
    ("bigbird", "--block_size=4\n--num_rand_blocks=0\n--norescale_embedding\n--attention_type=original_full\n"),
    ("electra", {}),
    ("electra", {"embedding_size": None, "model_size": None}),             # null: the official default
    ("electra", {"_replace": {}}),
]


@pytest.mark.parametrize("family,change", ACCEPTED, ids=[f"{f}-{i}" for i, (f, _) in enumerate(ACCEPTED)])
def test_accepted_configs_give_folders_transformers_loads(tmp_path, capsys, tf_models, family, change):
    import transformers

    prefix, valid = tf_models[family]
    config = write_config(tmp_path / FAMILIES[family][2], mutate(valid, change))
    code, _, err = run(["convert", prefix, tmp_path / "out", "--config", config], capsys)
    assert code == 0, err
    folders = [p.parent for p in (tmp_path / "out").rglob("config.json")]
    assert folders
    for folder in folders:
        hf_config = transformers.AutoConfig.from_pretrained(folder)
        getattr(transformers, hf_config.architectures[0]).from_pretrained(folder)


@pytest.mark.parametrize("option,value", [("--num-heads", "0"), ("--num-heads", "-4"), ("--generator-heads", "0")])
def test_head_count_options_must_be_positive(tmp_path, capsys, tf_models, option, value):
    """Before: --num-heads 0 was ignored (falsy) and -4 written into config.json."""
    prefix, _ = tf_models["electra"]
    code, _, err = run(["convert", prefix, tmp_path / "out", option, value], capsys)
    assert code == 2 and err.count("\n") == 1 and option in err and "positive" in err, err
    assert leftovers(tmp_path, "out") == []
