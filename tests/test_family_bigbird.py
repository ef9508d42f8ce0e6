"""BigBird: official names and shapes both ways, config translation, and outputs against forwards that do
not use ckptkit's reference.py.

Compared:
- full attention (inputs short enough that transformers falls back to ``original_full``, as the official
  code itself does for ``max_encoder_length <= 512``): transformers vs a TensorFlow-eager forward written
  here over the TF variables with the official einsum layouts (3-D kernels), at the non-padded positions
  (the official ``from_mask x to_mask`` also hides every key from a padded query, transformers does not;
  padded positions are never read) and the NSP logits;
- block-sparse (input long enough that transformers keeps ``block_sparse``): transformers in eval mode,
  whose random blocks are deterministic (all point at block 0), vs a NumPy block-sparse forward written
  here (global first/last blocks, 3-block sliding window, random blocks = block 0), at the non-padded
  positions (padded queries get a different mask mix in both implementations and are never read).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from ckptkit.converters.convert import convert_checkpoint
from ckptkit.converters.families.bigbird import BIGBIRD, parse_flagfile
from ckptkit.converters.formats import open_checkpoint
from ckptkit.converters.formats.tf1 import write_tf_checkpoint
from support.bert import with_adam_slots
from support.families import bigbird_tf_config, bigbird_tf_variables
from tf_save import assert_tensorflow_reads

DIMS = dict(vocab_size=90, hidden=32, layers=2, heads=4, intermediate=64, max_positions=64)
SLOTS = ("AdamWeightDecayOptimizer", "AdamWeightDecayOptimizer_1")


def make_checkpoint(folder, *, layout="3d", config=True, **overrides):
    folder.mkdir(parents=True, exist_ok=True)
    variables = bigbird_tf_variables(**DIMS, layout=layout)
    write_tf_checkpoint(str(folder / "model.ckpt-1000"), with_adam_slots(variables, slot_names=SLOTS))
    if config:
        cfg = bigbird_tf_config(**DIMS, block_size=4, num_rand_blocks=1, **overrides)
        (folder / "pretrain.config").write_text(json.dumps(cfg))
    return variables


def padded_ids(seq: int, valid: int, seed: int = 3) -> np.ndarray:
    """Two rows, pad id 0 (the official code masks ids == 0); the second padded after ``valid`` tokens."""
    ids = np.random.default_rng(seed).integers(5, DIMS["vocab_size"], size=(2, seq))
    ids[1, valid:] = 0
    return ids


def tf_bigbird_full(v: dict, ids: np.ndarray, *, heads: int, rescale: bool) -> dict:
    """Official BigBird math (utils.Dense3dLayer/Dense3dProjLayer einsums, post-norm, full attention), TF eager."""
    import tensorflow as tf

    def gelu(x):  # bigbird/core/utils.py gelu: the tanh approximation
        return 0.5 * x * (1.0 + tf.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * tf.pow(x, 3))))

    def norm(x, scope):
        mean, var = tf.nn.moments(x, [-1], keepdims=True)
        return tf.nn.batch_normalization(x, mean, var, v[f"{scope}/beta"], v[f"{scope}/gamma"], 1e-12)

    hidden = v["bert/embeddings/word_embeddings"].shape[1]
    size = hidden // heads
    x = tf.gather(v["bert/embeddings/word_embeddings"], ids)
    if rescale:
        x = x * hidden ** 0.5
    x = x + tf.gather(v["bert/embeddings/token_type_embeddings"], np.zeros_like(ids))
    x = x + v["bert/embeddings/position_embeddings"][None, : ids.shape[1]]
    x = norm(x, "bert/encoder/LayerNorm")
    mask = tf.cast(ids > 0, tf.float32)
    adder = (1.0 - tf.einsum("BF,BT->BFT", mask, mask))[:, None] * -10000.0
    for i in range(DIMS["layers"]):
        p = f"bert/encoder/layer_{i}/attention/"
        q, k, val = (tf.einsum("BFH,HND->BNFD", x, tf.reshape(v[f"{p}self/{n}/kernel"], [hidden, heads, size]))
                     + tf.reshape(v[f"{p}self/{n}/bias"], [1, heads, 1, size]) for n in ("query", "key", "value"))
        scores = tf.einsum("BNFD,BNTD->BNFT", q, k) / math.sqrt(size) + adder
        ctx = tf.einsum("BNFT,BNTD->BFND", tf.nn.softmax(scores), val)
        out = tf.einsum("BFND,NDH->BFH", ctx, tf.reshape(v[f"{p}output/dense/kernel"], [heads, size, hidden]))
        x = norm(out + v[f"{p}output/dense/bias"] + x, f"{p}output/LayerNorm")
        p = f"bert/encoder/layer_{i}/"
        inter = gelu(tf.einsum("BFH,HI->BFI", x, v[f"{p}intermediate/dense/kernel"]) + v[f"{p}intermediate/dense/bias"])
        out = tf.einsum("BFI,IH->BFH", inter, v[f"{p}output/dense/kernel"]) + v[f"{p}output/dense/bias"]
        x = norm(out + x, f"{p}output/LayerNorm")
    pooled = tf.tanh(x[:, 0] @ v["bert/pooler/dense/kernel"] + v["bert/pooler/dense/bias"])
    t = norm(gelu(tf.einsum("BFH,HK->BFK", x, v["transform/kernel"]) + v["transform/bias"]), "transform")
    mlm = tf.einsum("BFH,VH->BFV", t, v["bert/embeddings/word_embeddings"]) + v["cls/predictions/output_bias"]
    nsp = tf.matmul(pooled, v["cls/seq_relationship/output_weights"], transpose_b=True) \
        + v["cls/seq_relationship/output_bias"]
    return {"hidden": x.numpy(), "mlm": mlm.numpy(), "nsp": nsp.numpy()}


def hf_outputs(folder, ids: np.ndarray) -> dict:
    import torch
    import transformers

    model = transformers.BigBirdForPreTraining.from_pretrained(str(folder), dtype=torch.float32).eval()
    with torch.no_grad():
        out = model(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy((ids > 0).astype(np.int64)),
                    token_type_ids=torch.zeros_like(torch.from_numpy(ids)), output_hidden_states=True)
    return {"hidden": out.hidden_states[-1].numpy(), "mlm": out.prediction_logits.numpy(),
            "nsp": out.seq_relationship_logits.numpy(), "attention_type": model.bert.attention_type}


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    root = tmp_path_factory.mktemp("bigbird")
    variables = make_checkpoint(root / "tf")
    result = convert_checkpoint(str(root / "tf"), str(root / "hf"), verify=True)
    return root, variables, result


def test_tf_to_hf_names_config_and_dropped_slots(converted):
    root, variables, result = converted
    config = json.loads((root / "hf" / "config.json").read_text())
    assert config["model_type"] == "big_bird" and config["architectures"] == ["BigBirdForPreTraining"]
    assert config["hidden_act"] == "gelu_new"  # Google's gelu is the tanh approximation
    assert (config["attention_type"], config["block_size"], config["num_random_blocks"]) == ("block_sparse", 4, 1)
    assert config["rescale_embeddings"] is True
    reasons = {d.reason for d in result.plan.dropped}
    assert reasons == {"optimizer state", "training counter"}
    assert sum(d.reason == "optimizer state" for d in result.plan.dropped) == 2 * len(variables)
    assert result.verification["passed"] and result.verification["max_abs_diff"] < 1e-5


def test_full_attention_matches_official_math_in_tf(converted):
    root, variables, _ = converted
    ids = padded_ids(16, 11)
    expected = tf_bigbird_full(variables, ids, heads=DIMS["heads"], rescale=True)
    actual = hf_outputs(root / "hf", ids)
    assert actual["attention_type"] == "original_full"  # 16 <= (5 + 2 * 1) * 4: transformers falls back
    valid = ids > 0  # the official mask also hides every key from a padded query; transformers does not
    for key in ("hidden", "mlm"):
        assert np.max(np.abs(expected[key][valid] - actual[key][valid])) < 1e-5, key
    assert np.max(np.abs(expected["nsp"] - actual["nsp"])) < 1e-5


def numpy_block_sparse(v: dict, ids: np.ndarray, *, heads: int, block: int, rand_blocks: int) -> dict:
    """BigBird block-sparse attention written as per-block key lists (duplicates kept): first and last query
    blocks see every key; query block 1 sees blocks 0,1,2,last; block n-2 sees 0,n-3,n-2,last; the middle
    blocks see their 3-block window plus blocks 0 and last; every non-global block also sees
    ``rand_blocks`` random blocks, which transformers' eval mode fixes to block 0."""
    gelu = lambda x: 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))  # noqa: E731

    def norm(x, scope):
        mean, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
        return (x - mean) / np.sqrt(var + 1e-12) * v[f"{scope}/gamma"] + v[f"{scope}/beta"]

    v = {k: a.astype(np.float64) for k, a in v.items()}
    b, s = ids.shape
    n = s // block
    hidden = v["bert/embeddings/word_embeddings"].shape[1]
    size = hidden // heads
    keys_of = {0: list(range(n)), n - 1: list(range(n)), 1: [0, 1, 2, n - 1] + [0] * rand_blocks,
               n - 2: [0, n - 3, n - 2, n - 1] + [0] * rand_blocks}
    for i in range(2, n - 2):
        keys_of[i] = [i - 1, i, i + 1, 0, n - 1] + [0] * rand_blocks
    x = v["bert/embeddings/word_embeddings"][ids] * hidden ** 0.5 + v["bert/embeddings/token_type_embeddings"][0]
    x = norm(x + v["bert/embeddings/position_embeddings"][None, :s], "bert/encoder/LayerNorm")
    penalty = (ids == 0) * -10000.0
    for layer in range(DIMS["layers"]):
        p = f"bert/encoder/layer_{layer}/attention/"
        q, k, val = (np.einsum("bfh,hnd->bnfd", x, v[f"{p}self/{m}/kernel"].reshape(hidden, heads, size))
                     + v[f"{p}self/{m}/bias"].reshape(1, heads, 1, size) for m in ("query", "key", "value"))
        ctx = np.zeros_like(q)
        for qb in range(n):
            tokens = np.concatenate([np.arange(kb * block, (kb + 1) * block) for kb in keys_of[qb]])
            rows = slice(qb * block, (qb + 1) * block)
            scores = np.einsum("bnfd,bntd->bnft", q[:, :, rows], k[:, :, tokens]) / math.sqrt(size)
            scores = scores + penalty[:, None, None, tokens]
            probs = np.exp(scores - scores.max(-1, keepdims=True))
            ctx[:, :, rows] = np.einsum("bnft,bntd->bnfd", probs / probs.sum(-1, keepdims=True), val[:, :, tokens])
        out = np.einsum("bnfd,ndh->bfh", ctx, v[f"{p}output/dense/kernel"].reshape(heads, size, hidden))
        x = norm(out + v[f"{p}output/dense/bias"] + x, f"{p}output/LayerNorm")
        p = f"bert/encoder/layer_{layer}/"
        inter = gelu(x @ v[f"{p}intermediate/dense/kernel"] + v[f"{p}intermediate/dense/bias"])
        x = norm(inter @ v[f"{p}output/dense/kernel"] + v[f"{p}output/dense/bias"] + x, f"{p}output/LayerNorm")
    pooled = np.tanh(x[:, 0] @ v["bert/pooler/dense/kernel"] + v["bert/pooler/dense/bias"])
    t = norm(gelu(x @ v["transform/kernel"] + v["transform/bias"]), "transform")
    return {"hidden": x, "mlm": t @ v["bert/embeddings/word_embeddings"].T + v["cls/predictions/output_bias"],
            "nsp": pooled @ v["cls/seq_relationship/output_weights"].T + v["cls/seq_relationship/output_bias"]}


def test_block_sparse_matches_numpy_block_sparse_at_valid_positions(converted):
    root, variables, _ = converted
    ids = padded_ids(48, 37)  # 48 > (5 + 2 * 1) * 4 = 28: block_sparse stays on; 12 blocks of 4
    actual = hf_outputs(root / "hf", ids)
    assert actual["attention_type"] == "block_sparse"
    expected = numpy_block_sparse(variables, ids, heads=DIMS["heads"], block=4, rand_blocks=1)
    valid = ids > 0
    for key in ("hidden", "mlm"):
        assert np.max(np.abs(expected[key][valid] - actual[key][valid])) < 1e-5, key
    assert np.max(np.abs(expected["nsp"] - actual["nsp"])) < 1e-5
    full = tf_bigbird_full(variables, ids, heads=DIMS["heads"], rescale=True)
    assert np.max(np.abs(full["hidden"][valid] - actual["hidden"][valid])) > 1e-3  # really sparse


def test_hf_to_tf_official_names_shapes_and_round_trip(converted, tmp_path):
    import tensorflow as tf

    root, variables, _ = converted
    result = convert_checkpoint(str(root / "hf"), str(tmp_path / "back"), global_step=1000, verify=True)
    assert result.verification["passed"]
    reader = assert_tensorflow_reads(str(tmp_path / "back"), variables, extra={"global_step"})
    assert reader.get_variable_to_dtype_map()["transform/kernel"] == tf.float32
    tf_config = json.loads((tmp_path / "back" / "pretrain.config").read_text())
    assert (tf_config["num_rand_blocks"], tf_config["rescale_embedding"], tf_config["hidden_act"]) == (1, True, "gelu")


def test_2d_kernels_read_and_written(tmp_path):
    variables = make_checkpoint(tmp_path / "tf", layout="2d")
    convert_checkpoint(str(tmp_path / "tf"), str(tmp_path / "hf"), verify=True)
    convert_checkpoint(str(tmp_path / "hf"), str(tmp_path / "back"), tf_layout="2d")
    with open_checkpoint(str(tmp_path / "back")) as back:
        for name, value in variables.items():
            np.testing.assert_array_equal(back[name].read(), value)


def test_flagfile_config_and_shapes_fill_the_rest(tmp_path):
    make_checkpoint(tmp_path / "tf", config=False)
    (tmp_path / "tf" / "pretrain.config").write_text(
        "# flags\n--attention_type=original_full\n--block_size=8\n--num_rand_blocks=2\n--rescale_embedding\n")
    result = convert_checkpoint(str(tmp_path / "tf"), str(tmp_path / "hf"), verify=True)
    config = result.hf_config
    assert (config["attention_type"], config["block_size"], config["num_random_blocks"]) == ("original_full", 8, 2)
    assert (config["num_attention_heads"], config["vocab_size"], config["hidden_size"]) == (4, 90, 32)  # 3-D shapes
    assert parse_flagfile("--nouse_bias\n--hidden_size=8") == {"use_bias": False, "hidden_size": 8}


def test_spm_vocab_gives_vocab_size_and_bigbird_tokenizer(tmp_path):
    import sentencepiece as spm
    from transformers import AutoTokenizer

    corpus = [f"the model {w} converts checkpoint number {i} quickly" for i, w in enumerate("abcdefghij" * 20)]
    spm.SentencePieceTrainer.train(sentence_iterator=iter(corpus), model_prefix=str(tmp_path / "vocab"),
                                   vocab_size=60, pad_id=0, eos_id=1, bos_id=2, unk_id=3, hard_vocab_limit=False,
                                   user_defined_symbols=["[CLS]", "[SEP]", "[MASK]"], minloglevel=2)
    pieces = spm.SentencePieceProcessor(model_file=str(tmp_path / "vocab.model")).get_piece_size()
    folder = tmp_path / "tf"
    folder.mkdir()
    dims = {**DIMS, "vocab_size": pieces}
    write_tf_checkpoint(str(folder / "model.ckpt-1"), bigbird_tf_variables(**dims))
    cfg = bigbird_tf_config(**dims)
    del cfg["vocab_size"]
    (folder / "pretrain.config").write_text(json.dumps({**cfg, "vocab_model_file": "/gone/vocab.model"}))
    (folder / "vocab.model").write_bytes((tmp_path / "vocab.model").read_bytes())
    result = convert_checkpoint(str(folder), str(tmp_path / "hf"))
    assert result.hf_config["vocab_size"] == pieces
    assert result.tokenizer["kind"] == "bigbird"
    tok = AutoTokenizer.from_pretrained(str(tmp_path / "hf"))
    assert tok.convert_tokens_to_ids("[MASK]") == 6 and tok.pad_token_id == 0


def test_bert_style_mlm_names_are_read_too(tmp_path):
    variables = bigbird_tf_variables(**DIMS)
    renamed = {("cls/predictions/transform/" + {"kernel": "dense/kernel", "bias": "dense/bias", "gamma": "LayerNorm/gamma",
                                                "beta": "LayerNorm/beta"}[k.split("/")[1]]
                if k.startswith("transform/") else k): a for k, a in variables.items()}
    (tmp_path / "tf").mkdir()
    write_tf_checkpoint(str(tmp_path / "tf" / "model.ckpt-1"), renamed)
    result = convert_checkpoint(str(tmp_path / "tf"), str(tmp_path / "hf"), verify=True)
    assert result.plan.info["model_class"] == "BigBirdForPreTraining" and result.verification["passed"]


def test_rules_reverse_to_the_official_names():
    table = BIGBIRD.name_table(prefix="bert.")  # its rules with its own transforms
    assert table.hf_to_tf("cls.predictions.transform.LayerNorm.weight")[0] == "transform/gamma"
    assert table.hf_to_tf("bert.embeddings.LayerNorm.bias")[0] == "bert/encoder/LayerNorm/beta"
    hf_names = [r.hf for r in BIGBIRD.rules if not r.optional or "predictions" not in r.tf]
    assert len(hf_names) == len(set(hf_names))  # one-to-one apart from the read-only aliases
