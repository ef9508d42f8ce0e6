"""BigBird-Pegasus: checkpoints written by TensorFlow under google-research/bigbird's names (scope, pre-norm
encoder and decoder, optimizer state) -> hub folders whose transformers outputs equal the official math, computed
here in TensorFlow ops from the TF variables; and back to exactly the official names, read by TensorFlow.

transformers' LayerNorm epsilon is 1e-5 where the official code's is 1e-12: test weights give the residual stream a
realistic variance (well above 1), which keeps that difference below 1e-5.

Encoder states are compared at real tokens: the official full attention masks ``from_mask x to_mask`` (a padded
query row attends everywhere, shifted by -10000), transformers masks keys only; the decoder never sees padded
encoder positions, so decoder states and logits are compared everywhere (asserted below, the difference too).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from ckptkit.converters.convert import convert_checkpoint
from ckptkit.converters.families import detect_family
from ckptkit.converters.families.pegasus_config import pegasus_config_to_hf
from ckptkit.converters.reference_pegasus import pegasus_reference_forward
from ckptkit.converters.verify import verify_conversion
from support.cli import run_cli
from support.pegasus import pegasus_config, pegasus_tf_variables, save_pegasus_checkpoint, write_flags
from tf_save import assert_tensorflow_reads, tf1_restore

# case -> (config overrides, optimizer, flags as JSON, 3-D attention kernels)
CASES = {
    # pegasus_large.sh: relu, no attention biases, rescaled embeddings; Adam state; summarization.config as JSON
    "released": ({}, "adam", True, False),
    # another scope, biases, gelu, no rescaling, a shallower decoder, Adafactor state, an absl flagfile, 3-D kernels
    "variant": (dict(scope="bigbp", use_bias=True, hidden_act="gelu", rescale_embedding=False, num_decoder_layers=1),
                "adafactor", False, True),
}
BATCH = {"input_ids": np.array([[5, 9, 13, 21, 33, 8, 17, 3], [7, 11, 19, 4, 0, 0, 0, 0]]),
         "decoder_input_ids": np.array([[2, 14, 9, 30, 5], [2, 6, 40, 12, 22]])}
BATCH["attention_mask"] = (BATCH["input_ids"] > 0).astype(np.int64)  # the official mask: input_ids > 0


def _three_d(variables: dict, config: dict) -> dict:
    """Attention kernels as the older 3-D variables: [hidden, heads, head_size] and [heads, head_size, hidden]."""
    heads, out = config["num_attention_heads"], {}
    for name, value in variables.items():
        if name.endswith(("query/kernel", "key/kernel", "value/kernel")):
            value = value.reshape(value.shape[0], heads, -1)
        elif name.endswith(("attention/output/dense/kernel", "encdec_output/dense/kernel")):
            value = value.reshape(heads, -1, value.shape[1])
        out[name] = value
    return out


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    """case -> (root, config, weights as saved, every saved name, conversion result)."""
    import tensorflow as tf

    cases = {}
    for case, (overrides, optimizer, as_json, three_d) in CASES.items():
        root = tmp_path_factory.mktemp(case)
        config = pegasus_config(**overrides)
        variables = pegasus_tf_variables(config)
        variables = _three_d(variables, config) if three_d else variables
        saved = save_pegasus_checkpoint(str(root / "tf" / "model.ckpt-300"), variables, optimizer=optimizer)
        write_flags(str(root / "tf" / ("summarization.config" if as_json else "flags.txt")), config, as_json=as_json)
        names = set(tf.train.load_checkpoint(str(root / "tf" / "model.ckpt-300")).get_variable_to_shape_map())
        extra = [] if as_json else ["--config", root / "tf" / "flags.txt"]
        result = convert_checkpoint(str(root / "tf"), str(root / "hf"), config=str(extra[1]) if extra else None)
        cases[case] = (root, config, saved, names, result)
    return cases


def _official_forward(v: dict, c: dict, batch: dict) -> dict:
    """The official TransformerModel's encoder output, decoder output and logits, in TensorFlow ops after
    modeling.py, encoder.py, decoder.py, attention.py and utils.py (no ckptkit code)."""
    import tensorflow as tf

    s, heads, h = c["scope"], c["num_attention_heads"], c["hidden_size"]
    d = h // heads
    act = {"relu": tf.nn.relu, "gelu": lambda x: 0.5 * x * (1 + tf.tanh(0.7978845608 * (x + 0.044715 * x ** 3)))}
    act = act[c["hidden_act"]]

    def norm(x, scope):  # utils.NormLayer
        mean, var = tf.nn.moments(x, [-1], keepdims=True)
        return tf.nn.batch_normalization(x, mean, var, v[f"{scope}/LayerNorm/beta"], v[f"{scope}/LayerNorm/gamma"], 1e-12)

    def dense3d(x, scope):  # utils.Dense3dLayer, head_first: [b, heads, seq, d]
        out = tf.einsum("abc,cde->adbe", x, tf.reshape(v[f"{scope}/kernel"], [h, heads, d]))
        return out + tf.reshape(v[f"{scope}/bias"], [1, heads, 1, d]) if f"{scope}/bias" in v else out

    def proj(x, scope):  # utils.Dense3dProjLayer
        out = tf.einsum("BFNH,NHD->BFD", x, tf.reshape(v[f"{scope}/dense/kernel"], [heads, d, h]))
        return out + v[f"{scope}/dense/bias"] if f"{scope}/dense/bias" in v else out

    def attention(x, memory, mask, scope):  # MultiHeadedAttentionLayer.original_full_attention
        q, k, val = dense3d(x, f"{scope}/query"), dense3d(memory, f"{scope}/key"), dense3d(memory, f"{scope}/value")
        scores = tf.einsum("BNFH,BNTH->BNFT", q, k) * (1.0 / np.sqrt(float(d))) + (1.0 - mask) * -10000.0
        return tf.einsum("BNFT,BNTH->BFNH", tf.nn.softmax(scores), val)

    def ffn(x, p):  # the pre-norm Dense2dLayer pair
        inner = act(tf.tensordot(norm(x, p + "intermediate"), v[p + "intermediate/dense/kernel"], 1)
                    + v[p + "intermediate/dense/bias"])
        return x + tf.tensordot(inner, v[p + "output/dense/kernel"], 1) + v[p + "output/dense/bias"]

    def embed(ids):  # utils.EmbeddingLayer, positions from 0
        out = tf.nn.embedding_lookup(v[f"{s}/embeddings/word_embeddings"], ids)
        out = out * h ** 0.5 if c["rescale_embedding"] else out
        return out + v[f"{s}/embeddings/position_embeddings"][None, : ids.shape[1]]

    mask = tf.cast(batch["input_ids"] > 0, tf.float32)
    full = tf.expand_dims(tf.einsum("BF,BT->BFT", mask, mask), 1)  # create_attention_mask_from_input_mask
    x = embed(batch["input_ids"])
    for i in range(c["num_hidden_layers"]):
        p = f"{s}/encoder/layer_{i}/"
        normed = norm(x, p + "attention/self")
        x = ffn(x + proj(attention(normed, normed, full, p + "attention/self"), p + "attention/output"), p)
    encoder = norm(x, f"{s}/encoder")
    length = batch["decoder_input_ids"].shape[1]
    causal = tf.reshape(tf.linalg.band_part(tf.ones([length, length]), -1, 0), [1, 1, length, length])
    cross = mask[:, None, None, :]
    y = embed(batch["decoder_input_ids"])
    for i in range(c.get("num_decoder_layers") or c["num_hidden_layers"]):
        p = f"{s}/decoder/layer_{i}/"
        normed = norm(y, p + "attention/self")
        y = y + proj(attention(normed, normed, causal, p + "attention/self"), p + "attention/output")
        y = y + proj(attention(norm(y, p + "attention/encdec"), encoder, cross, p + "attention/encdec"),
                     p + "attention/encdec_output")
        y = ffn(y, p)
    decoder = norm(y, f"{s}/decoder")
    logits = tf.tensordot(decoder, v[f"{s}/embeddings/word_embeddings"], [[-1], [1]])  # EmbeddingLayer.linear
    return {"encoder": encoder.numpy(), "decoder": decoder.numpy(), "logits": logits.numpy()}


def _hf_forward(folder, batch: dict) -> dict:
    import torch
    import transformers

    model = transformers.BigBirdPegasusForConditionalGeneration.from_pretrained(
        folder, attn_implementation="eager").eval()
    with torch.no_grad():
        out = model(**{k: torch.from_numpy(a) for k, a in batch.items()}, output_hidden_states=True)
    return {"encoder": out.encoder_last_hidden_state.numpy(), "decoder": out.decoder_hidden_states[-1].numpy(),
            "logits": out.logits.numpy()}


@pytest.mark.parametrize("case", CASES)
def test_hub_folder_computes_the_official_math(made, case):
    root, config, saved, _, result = made[case]
    assert result.plan.info["family"] == "bigbird_pegasus"
    assert result.plan.info["model_class"] == "BigBirdPegasusForConditionalGeneration"
    expected, actual = _official_forward(saved, config, BATCH), _hf_forward(root / "hf", BATCH)
    real = BATCH["attention_mask"].astype(bool)
    assert np.abs(expected["encoder"][real] - actual["encoder"][real]).max() < 1e-5
    assert np.abs(expected["decoder"] - actual["decoder"]).max() < 1e-5
    assert np.abs(expected["logits"] - actual["logits"]).max() < 1e-5
    assert np.abs(expected["logits"]).max() > 1.0  # non-trivial outputs
    # the documented difference: padded encoder rows (the official code attends from them to every key)
    assert np.abs(expected["encoder"][~real] - actual["encoder"][~real]).max() > 1e-3


@pytest.mark.parametrize("case", CASES)
def test_numpy_reference_of_verify_equals_the_official_math(made, case):
    _, config, saved, names, _ = made[case]
    expected = _official_forward(saved, config, BATCH)
    reference = pegasus_reference_forward(lambda n: saved[n].astype(np.float64), set(saved), config, BATCH)
    real = BATCH["attention_mask"].astype(bool)
    assert np.abs(reference["encoder_last_hidden_state"][real] - expected["encoder"][real]).max() < 1e-5
    assert np.abs(reference["last_hidden_state"] - expected["decoder"]).max() < 1e-5
    assert np.abs(reference["logits"] - expected["logits"]).max() < 1e-5


def test_optimizer_state_is_dropped_and_reported(made):
    _, _, saved, names, result = made["released"]
    dropped = {d.name: d.reason for d in result.plan.dropped}
    adam = {f"{n}/{slot}" for n in saved if not n.endswith("position_embeddings") for slot in ("Adam", "Adam_1")}
    assert adam <= set(names) and "beta1_power" in names  # TensorFlow's AdamOptimizer wrote them
    assert set(dropped) == adam | {"beta1_power", "beta2_power", "global_step"}
    assert {dropped[n] for n in adam | {"beta1_power", "beta2_power"}} == {"optimizer state"}
    _, _, saved, names, result = made["variant"]
    dropped = {d.name: d.reason for d in result.plan.dropped}
    assert {n for n in names if "/Adafactor" in n} == {n for n, r in dropped.items() if r == "optimizer state"}
    assert any(n.endswith("/Adafactor_1") for n in dropped)


@pytest.mark.parametrize("case", CASES)
def test_config_json_says_what_the_official_flags_say(made, case):
    root, config, _, _, _ = made[case]
    hf = json.loads((root / "hf" / "config.json").read_text())
    assert hf["model_type"] == "bigbird_pegasus" and hf["architectures"] == ["BigBirdPegasusForConditionalGeneration"]
    assert (hf["pad_token_id"], hf["eos_token_id"], hf["decoder_start_token_id"]) == (0, 1, 2)
    assert hf["attention_type"] == "original_full"  # max_encoder_length 32 <= 512: BigBird switches to full
    assert (hf["block_size"], hf["num_random_blocks"]) == (config["block_size"], config["num_rand_blocks"])
    assert hf["max_position_embeddings"] == config["max_position_embeddings"]
    assert hf["scale_embedding"] == config["rescale_embedding"] and hf["use_bias"] == config["use_bias"]
    assert hf["activation_function"] == {"relu": "relu", "gelu": "gelu_new"}[config["hidden_act"]]
    assert hf["decoder_layers"] == (config.get("num_decoder_layers") or config["num_hidden_layers"])
    assert hf["tie_word_embeddings"] is True
    from safetensors.numpy import load_file

    weights = load_file(str(root / "hf" / "model.safetensors"))
    assert not weights["final_logits_bias"].any() and weights["final_logits_bias"].shape == (1, config["vocab_size"])
    assert np.array_equal(weights["model.encoder.embed_positions.weight"], weights["model.decoder.embed_positions.weight"])


@pytest.mark.parametrize("length, attention, expected", [
    (512, "block_sparse", "original_full"), (513, "block_sparse", "block_sparse"),
    (1024, "simulated_sparse", "block_sparse"), (4096, "original_full", "original_full")])
def test_attention_type_is_decided_as_bigbird_decides(length, attention, expected):
    config = {**pegasus_config(max_position_embeddings=4096), "max_encoder_length": length, "attention_type": attention}
    assert pegasus_config_to_hf(config, model_class="BigBirdPegasusModel")["attention_type"] == expected


@pytest.mark.parametrize("case", CASES)
def test_back_to_tf_gives_exactly_the_official_names_and_tensorflow_restores_them(made, case, tmp_path):
    root, config, saved, _, _ = made[case]
    layout = {"tf_layout": "3d"} if CASES[case][3] else {}
    scope = {"scope": config["scope"]} if config["scope"] != "pegasus" else {}
    result = convert_checkpoint(str(root / "hf"), str(tmp_path / "tf"), to="tf1", global_step=300,
                                family_options={**layout, **scope})
    assert result.plan.info["family"] == "bigbird_pegasus"
    prefix = str(tmp_path / "tf" / "model.ckpt")
    assert_tensorflow_reads(prefix, saved, extra={"global_step"})  # exactly the official name/shape set
    restored = tf1_restore(prefix, {n: a.shape for n, a in saved.items()}, {n: a.dtype for n, a in saved.items()})
    assert all(np.array_equal(restored[n], a) for n, a in saved.items())
    written = json.loads((tmp_path / "tf" / "summarization.config").read_text())
    for key in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                "hidden_act", "use_bias", "rescale_embedding", "scope", "norm_type", "block_size", "num_rand_blocks",
                "max_position_embeddings"):
        assert written[key] == config[key], key
    assert written.get("num_decoder_layers") == config.get("num_decoder_layers")
    assert written["attention_type"] == "original_full" and written["couple_encoder_decoder"] is False
    report = verify_conversion(str(root / "hf"), str(tmp_path / "tf"), tokenizer=False)  # its scope and layout too
    assert report.passed and len(report.tensors) == len(saved), report.summary()


def test_hf_tensors_the_official_code_cannot_hold_are_refused(made, tmp_path, capsys):
    import shutil

    from safetensors.numpy import load_file, save_file

    root = made["released"][0]
    for name, change in (("final_logits_bias", "final_logits_bias"), ("positions", "model.decoder.embed_positions.weight")):
        folder = tmp_path / name
        shutil.copytree(root / "hf", folder)
        weights = load_file(str(folder / "model.safetensors"))
        weights[change] = weights[change] + np.float32(0.5)
        save_file(weights, str(folder / "model.safetensors"), metadata={"format": "pt"})
        code, _, err = run_cli(["convert", folder, tmp_path / f"{name}-out", "--to", "tf1"], capsys)
        assert code == 2 and err.startswith("ckptkit: error:") and len(err.strip().splitlines()) == 1, err
        assert change in err and "Traceback" not in err
        assert not (tmp_path / f"{name}-out").exists()


def test_verify_passes_both_directions_and_says_what_it_compared(made, tmp_path, capsys):
    root = made["variant"][0]
    report = verify_conversion(str(root / "tf"), str(root / "hf"), tokenizer=False)
    assert report.passed, report.summary()
    assert {r["output"] for r in report.outputs} == {"encoder_last_hidden_state", "last_hidden_state", "logits"}
    assert "encoder states at real tokens only" in report.compared
    code, out, err = run_cli(["verify", made["released"][0] / "tf", made["released"][0] / "hf"], capsys)
    assert code == 0, err
    said = out + err
    assert "encoder_last_hidden_state" in said and "logits" in said and "passed" in said.lower()


def test_verify_catches_a_wrong_weight(made, tmp_path):
    import shutil

    from safetensors.numpy import load_file, save_file

    root = made["released"][0]
    shutil.copytree(root / "hf", tmp_path / "hf")
    weights = load_file(str(tmp_path / "hf" / "model.safetensors"))
    name = "model.decoder.layers.1.encoder_attn.k_proj.weight"
    weights[name] = weights[name].T.copy()  # transposed: what a converter forgetting the layout writes
    save_file(weights, str(tmp_path / "hf" / "model.safetensors"), metadata={"format": "pt"})
    report = verify_conversion(str(root / "tf"), str(tmp_path / "hf"), tokenizer=False)
    assert not report.passed
    assert any(not r["ok"] for r in report.tensors) and any(not r["ok"] for r in report.outputs)


def test_inspect_and_convert_text_output(made, tmp_path, capsys):
    root = made["released"][0]
    code, out, _ = run_cli(["inspect", root / "tf"], capsys)
    assert code == 0 and "Family: bigbird_pegasus" in out
    assert "Optimizer state: 132 tensors" in out  # Adam's slots and beta powers, not model weights
    code, out, _ = run_cli(["convert", root / "tf", tmp_path / "dry", "--dry-run"], capsys)
    assert code == 0 and "model.decoder.layers.1.encoder_attn.out_proj.weight" in out
    assert "pegasus/decoder/layer_1/attention/encdec_output/dense/kernel" in out and not (tmp_path / "dry").exists()
    code, out, err = run_cli(["convert", root / "tf", tmp_path / "out"], capsys)
    assert code == 0, err
    said = out + err  # the report goes to stderr, like the progress bars
    assert "family bigbird_pegasus, class BigBirdPegasusForConditionalGeneration, global_step 300" in said
    assert "dropped 132 optimizer state" in said  # 64 variables x Adam, Adam_1 (the position table is frozen) + 2 betas


@pytest.mark.parametrize("flags, words", [
    ("scope: pegasus\n", "line 6 is not a flag"),
    ("--hidden_size=abc\n", "'hidden_size' is 'abc'"),
    ("--norm_type=postnorm\n", "pre-norm"),
    ("--couple_encoder_decoder=true\n", "couple_encoder_decoder"),
    ("--max_encoder_length=4096\n", "max_encoder_length=4096"),
    ("--num_hidden_layers=3\n", "num_hidden_layers=3"),
    ("--use_bias=true\n", "use_bias=true"),
    ("--attention_type=sparse\n", "attention_type"),
])
def test_a_bad_flags_file_is_one_line_and_exit_2(made, tmp_path, capsys, flags, words):
    root, config, _, _, _ = made["released"]
    path = tmp_path / "flags.txt"
    good = "".join(f"--{k}={v}\n" for k, v in (("scope", "pegasus"), ("norm_type", "prenorm"), ("use_bias", "false"),
                                               ("hidden_act", "relu"), ("num_attention_heads", 4)))
    path.write_text(good + flags)
    code, out, err = run_cli(["convert", root / "tf", tmp_path / "out", "--config", path], capsys)
    assert code == 2 and err.startswith("ckptkit: error:") and len(err.strip().splitlines()) == 1, err
    assert words in err and "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_scope_option_must_name_the_checkpoints_scope(made, tmp_path, capsys):
    root = made["variant"][0]
    code, _, err = run_cli(["convert", root / "tf", tmp_path / "out", "--config", root / "tf" / "flags.txt",
                            "--scope", "pegasus"], capsys)
    assert code == 2 and "bigbp/" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_detected_without_family_under_any_scope(made):
    for case in CASES:
        _, _, _, names, _ = made[case]
        assert detect_family(names) == "bigbird_pegasus"


@pytest.mark.parametrize("change, words", [
    ({"encoder_layers": "two"}, "'encoder_layers' is 'two'"),
    ({"decoder_attention_heads": 2}, "decoder_attention_heads=2"),
    ({"activation_function": "gelu"}, "hidden_act 'gelu'"),
    ({"d_model": 30}, "'d_model' is 30"),
])
def test_a_config_json_the_official_code_cannot_take_is_one_line(made, tmp_path, capsys, change, words):
    import shutil

    root = made["released"][0]
    shutil.copytree(root / "hf", tmp_path / "hf")
    config = json.loads((tmp_path / "hf" / "config.json").read_text())
    (tmp_path / "hf" / "config.json").write_text(json.dumps({**config, **change}))
    code, _, err = run_cli(["convert", tmp_path / "hf", tmp_path / "out", "--to", "tf1"], capsys)
    assert code == 2 and err.startswith("ckptkit: error:") and len(err.strip().splitlines()) == 1, err
    assert words in err and not (tmp_path / "out").exists()


def test_without_a_config_the_published_recipe_is_assumed_and_said(made, tmp_path):
    import shutil

    root, _, _, _, _ = made["released"]
    shutil.copytree(root / "tf", tmp_path / "tf", ignore=shutil.ignore_patterns("summarization.config"))
    result = convert_checkpoint(str(tmp_path / "tf"), str(tmp_path / "hf"), num_heads=4)
    assert any("pegasus_large.sh" in w for w in result.plan.warnings)
    inferred = json.loads((tmp_path / "hf" / "config.json").read_text())
    written = json.loads((root / "hf" / "config.json").read_text())
    guessed = ("dropout", "attention_dropout", "block_size", "num_random_blocks")  # not in the shapes
    assert {k: inferred[k] for k in written if k not in guessed} == {k: written[k] for k in written if k not in guessed}
    assert (inferred["block_size"], inferred["num_random_blocks"]) == (64, 3)  # pegasus_large.sh
