"""ALBERT: official pretraining and fine-tuned checkpoints (written with TensorFlow under
google-research/albert's names, LAMB slots included) -> hub folders and back; outputs compared with a
TensorFlow-eager forward written here over the TF variables (not ckptkit's reference), on a padded
batch, factorised embeddings, one or two shared groups of one or two blocks."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from ckptkit.converters.convert import convert_checkpoint
from ckptkit.converters.families import detect_family
from ckptkit.converters.formats.tf1 import write_tf_checkpoint
from ckptkit.converters.reference import fixed_inputs
from ckptkit.converters.reference_albert import albert_reference_forward
from ckptkit.errors import ConfigError
from support.albert import albert_tf_config, albert_tf_variables
from support.bert import with_adam_slots
from support.cli import run_cli
from tf_save import assert_tensorflow_reads, tf1_save

DIMS = dict(vocab_size=70, embedding=8, hidden=16, heads=2, intermediate=24, max_positions=32)
SHAPES = {"one_group": dict(groups=1, inner=1, layers=3), "two_groups_two_blocks": dict(groups=2, inner=2, layers=4)}


def write(folder, variables, config, *, slots=True):
    folder.mkdir(parents=True, exist_ok=True)
    tf1_save(str(folder / "model.ckpt-10"), with_adam_slots(variables) if slots else variables)
    (folder / "albert_config.json").write_text(json.dumps(config))


def tf_albert(v: dict, config: dict, ids, mask, types) -> dict:
    """google-research/albert modeling.py + run_pretraining.py heads, in TF eager."""
    import tensorflow as tf

    def norm(x, s):
        mean, var = tf.nn.moments(x, [-1], keepdims=True)
        return tf.nn.batch_normalization(x, mean, var, v[f"{s}/beta"], v[f"{s}/gamma"], 1e-12)

    def fc(x, s):
        return tf.tensordot(x, v[f"{s}/kernel"], 1) + v[f"{s}/bias"]

    gelu = lambda t: tf.nn.gelu(t, approximate=True)  # noqa: E731
    e = "bert/embeddings/"
    x = tf.gather(v[e + "word_embeddings"], ids) + tf.gather(v[e + "token_type_embeddings"], types)
    x = norm(x + v[e + "position_embeddings"][None, : ids.shape[1]], e + "LayerNorm")
    if x.shape[-1] != config["hidden_size"]:  # modeling.py: `if input_width != hidden_size`, else no projection
        x = fc(x, "bert/encoder/embedding_hidden_mapping_in")
    heads, hidden = config["num_attention_heads"], config["hidden_size"]
    size = hidden // heads
    adder = (1.0 - tf.cast(mask[:, None, None, :], tf.float32)) * -10000.0
    split = lambda t: tf.transpose(tf.reshape(t, [ids.shape[0], -1, heads, size]), [0, 2, 1, 3])  # noqa: E731
    layers = config["num_hidden_layers"]
    for layer in range(layers):
        for inner in range(config["inner_group_num"]):
            group = int(layer / layers * config["num_hidden_groups"])
            p = f"bert/encoder/transformer/group_{group}/inner_group_{inner}/"
            q, k, val = (split(fc(x, f"{p}attention_1/self/{n}")) for n in ("query", "key", "value"))
            probs = tf.nn.softmax(tf.matmul(q, k, transpose_b=True) / math.sqrt(size) + adder)
            ctx = tf.reshape(tf.transpose(tf.matmul(probs, val), [0, 2, 1, 3]), [ids.shape[0], -1, hidden])
            x = norm(fc(ctx, f"{p}attention_1/output/dense") + x, f"{p}LayerNorm")
            ffn = fc(gelu(fc(x, f"{p}ffn_1/intermediate/dense")), f"{p}ffn_1/intermediate/output/dense")
            x = norm(ffn + x, f"{p}LayerNorm_1")
    pooled = tf.tanh(fc(x[:, 0], "bert/pooler/dense"))
    out = {"hidden": x.numpy()}
    if "cls/predictions/output_bias" in v:
        t = norm(gelu(fc(x, "cls/predictions/transform/dense")), "cls/predictions/transform/LayerNorm")
        out["mlm"] = (tf.einsum("bse,ve->bsv", t, v[e + "word_embeddings"]) + v["cls/predictions/output_bias"]).numpy()
        out["sop"] = (tf.matmul(pooled, v["cls/seq_relationship/output_weights"], transpose_b=True)
                      + v["cls/seq_relationship/output_bias"]).numpy()
    if "output_weights" in v:
        out["logits"] = (tf.matmul(pooled, v["output_weights"], transpose_b=True) + v["output_bias"]).numpy()
    return out


def batch():
    inputs = fixed_inputs(vocab_size=DIMS["vocab_size"], max_positions=32, type_vocab_size=2, seq_len=14)
    return inputs["input_ids"], inputs["attention_mask"], inputs["token_type_ids"]


def run_hf(folder, cls_name):
    import torch
    import transformers

    ids, mask, types = (torch.from_numpy(a) for a in batch())
    model = getattr(transformers, cls_name).from_pretrained(str(folder), dtype=torch.float32).eval()
    with torch.no_grad():
        return model(input_ids=ids, attention_mask=mask, token_type_ids=types, output_hidden_states=True)


def close(actual, expected, mask):
    """Equal to 1e-5 on every real token (padded positions carry no meaning on either side)."""
    rows = mask.astype(bool)
    np.testing.assert_allclose(np.asarray(actual)[rows], expected[rows], atol=1e-5, rtol=0)


@pytest.fixture(scope="module", params=sorted(SHAPES))
def pretraining(request, tmp_path_factory):
    root = tmp_path_factory.mktemp(f"albert_{request.param}")
    shape = SHAPES[request.param]
    variables = albert_tf_variables(**DIMS, groups=shape["groups"], inner=shape["inner"])
    config = albert_tf_config(**DIMS, **shape)
    write(root / "tf", variables, config)
    result = convert_checkpoint(str(root / "tf"), str(root / "hf"), verify=True)
    return root, variables, config, result


def _assert_pretraining_matches_official(hf_dir, variables, config):
    """AlbertForPreTraining on HF_DIR gives the official TF math's hidden states, MLM and SOP logits."""
    ids, mask, types = batch()
    expected = tf_albert(variables, config, ids, mask, types)
    out = run_hf(hf_dir, "AlbertForPreTraining")
    close(out.hidden_states[-1], expected["hidden"], mask)
    close(out.prediction_logits, expected["mlm"], mask)
    np.testing.assert_allclose(out.sop_logits.numpy(), expected["sop"], atol=1e-5, rtol=0)


def test_pretraining_outputs_match_the_official_math(pretraining):
    root, variables, config, result = pretraining
    hf_config = json.loads((root / "hf" / "config.json").read_text())
    assert hf_config["architectures"] == ["AlbertForPreTraining"] and hf_config["hidden_act"] == "gelu_new"
    assert (hf_config["num_hidden_groups"], hf_config["inner_group_num"], hf_config["embedding_size"]) == (
        config["num_hidden_groups"], config["inner_group_num"], 8)
    _assert_pretraining_matches_official(root / "hf", variables, config)
    assert result.verification["passed"] and "sop_logits" in result.verification["compared"]


def test_reference_forward_is_the_official_math(pretraining):
    """ckptkit's NumPy reference (what verify uses) against the TF-eager forward written here."""
    _, variables, config, _ = pretraining
    ids, mask, types = batch()
    expected = tf_albert(variables, config, ids, mask, types)
    ours = albert_reference_forward(lambda n: variables[n].astype(np.float64), set(variables), config,
                                    {"input_ids": ids, "attention_mask": mask, "token_type_ids": types})
    close(ours["last_hidden_state"], expected["hidden"], mask)
    close(ours["mlm_logits"], expected["mlm"], mask)
    np.testing.assert_allclose(ours["sop_logits"], expected["sop"], atol=1e-5, rtol=0)
    assert len(ours["hidden_states"]) == config["num_hidden_layers"] * config["inner_group_num"]


def test_lamb_slots_and_step_dropped_and_reported(pretraining):
    _, variables, _, result = pretraining
    reasons = {d.name: d.reason for d in result.plan.dropped}
    assert reasons["global_step"] == "training counter"
    assert {n for n, r in reasons.items() if r == "optimizer state"} == {
        f"{n}/{s}" for n in variables for s in ("adam_m", "adam_v")}


def test_hub_folder_back_to_official_names(pretraining, tmp_path):
    root, variables, config, _ = pretraining
    result = convert_checkpoint(str(root / "hf"), str(tmp_path / "back"), global_step=10, verify=True)
    assert_tensorflow_reads(str(tmp_path / "back"), variables, extra={"global_step"})
    assert result.verification["passed"]
    back = json.loads((tmp_path / "back" / "albert_config.json").read_text())
    assert back["hidden_act"] == "gelu" and all(back[k] == config[k] for k in (
        "num_hidden_groups", "inner_group_num", "embedding_size", "num_hidden_layers"))


def test_detected_inspected_and_planned_without_family(pretraining, tmp_path, capsys):
    from safetensors.numpy import load_file

    from support.bert import bert_tf_variables

    root, variables, _, _ = pretraining
    assert detect_family(variables) == "albert"
    assert detect_family(load_file(str(root / "hf" / "model.safetensors"))) == "albert"  # HF names, no model_type
    bert = bert_tf_variables(vocab_size=40, hidden=16, layers=2, heads=2, intermediate=32, max_positions=24)
    assert detect_family(bert) == "bert"  # both share bert/embeddings/: the layers decide
    code, out, err = run_cli(["inspect", root / "tf"], capsys)
    assert code == 0 and "albert" in out, err
    code, out, err = run_cli(["convert", root / "tf", tmp_path / "plan", "--dry-run"], capsys)
    assert code == 0, err
    assert "albert.encoder.albert_layer_groups.0.albert_layers.0.ffn_output.weight" in out
    assert not (tmp_path / "plan").exists()


SAME = {**DIMS, "embedding": DIMS["hidden"]}  # embedding_size == hidden_size: no embedding_hidden_mapping_in


@pytest.fixture(scope="module")
def same_width(tmp_path_factory):
    root = tmp_path_factory.mktemp("albert_same_width")
    variables = albert_tf_variables(**SAME, groups=1, inner=1)
    config = albert_tf_config(**SAME, groups=1, inner=1, layers=2)
    assert not any("embedding_hidden_mapping_in" in n for n in variables)
    write(root / "tf", variables, config)
    result = convert_checkpoint(str(root / "tf"), str(root / "hf"), verify=True)
    return root, variables, config, result


def test_equal_sizes_without_mapping_become_an_exact_identity(same_width):
    """The official code skips the projection when embedding_size == hidden_size; transformers always runs one:
    it gets eye and zeros, and the model computes what the official code does."""
    root, variables, config, result = same_width
    weights = _weights(root / "hf")
    mapping = "albert.encoder.embedding_hidden_mapping_in."
    assert np.array_equal(weights[mapping + "weight"], np.eye(SAME["hidden"], dtype=np.float32))
    assert np.array_equal(weights[mapping + "bias"], np.zeros(SAME["hidden"], dtype=np.float32))
    assert result.verification["passed"] and "sop_logits" in result.verification["compared"]
    _assert_pretraining_matches_official(root / "hf", variables, config)


def test_equal_sizes_back_to_official_names_without_mapping(same_width, tmp_path):
    root, variables, _, _ = same_width
    result = convert_checkpoint(str(root / "hf"), str(tmp_path / "back"), global_step=10, verify=True)
    assert_tensorflow_reads(str(tmp_path / "back"), variables, extra={"global_step"})  # exactly the official names
    assert result.verification["passed"]
    reasons = {d.name: d.reason for d in result.plan.dropped}
    for suffix in ("weight", "bias"):
        assert "creates no bert/encoder/embedding_hidden_mapping_in/" in reasons[
            f"albert.encoder.embedding_hidden_mapping_in.{suffix}"]


def test_equal_sizes_non_identity_mapping_refused(same_width, tmp_path, capsys):
    import shutil

    from safetensors.numpy import save_file

    root = same_width[0]
    shutil.copytree(root / "hf", tmp_path / "hf")
    weights = _weights(tmp_path / "hf")
    weights["albert.encoder.embedding_hidden_mapping_in.weight"] *= 1.5
    save_file(weights, str(tmp_path / "hf" / "model.safetensors"), metadata={"format": "pt"})
    code, _, err = run_cli(["convert", tmp_path / "hf", tmp_path / "back", "--to", "tf1"], capsys)
    assert code == 2 and err.count("\n") == 1 and err.startswith("ckptkit: error:"), err
    assert "embedding_hidden_mapping_in.weight is not an exact eye" in err and "Traceback" not in err
    assert not (tmp_path / "back").exists()


def test_fine_tuned_classifier(tmp_path):
    variables = albert_tf_variables(**DIMS, groups=1, inner=1, heads_of=("classifier",))
    config = albert_tf_config(**DIMS, groups=1, inner=1, layers=2)
    write(tmp_path / "tf", variables, config, slots=False)
    result = convert_checkpoint(str(tmp_path / "tf"), str(tmp_path / "hf"), verify=True)
    assert result.verification["passed"]
    ids, mask, types = batch()
    out = run_hf(tmp_path / "hf", "AlbertForSequenceClassification")
    np.testing.assert_allclose(out.logits.numpy(), tf_albert(variables, config, ids, mask, types)["logits"],
                               atol=1e-5, rtol=0)


def test_config_contradicting_the_groups_is_refused(tmp_path):
    variables = albert_tf_variables(**DIMS, groups=2, inner=1, heads_of=())
    write_tf_checkpoint(str(tmp_path / "tf" / "model.ckpt"), variables)
    (tmp_path / "tf" / "albert_config.json").write_text(json.dumps(albert_tf_config(**DIMS, groups=1, inner=1,
                                                                                    layers=2)))
    with pytest.raises(ConfigError, match="num_hidden_groups=1 but the checkpoint has 2"):
        convert_checkpoint(str(tmp_path / "tf"), str(tmp_path / "hf"))
    assert not (tmp_path / "hf").exists()


TEXTS = ["Hello World, this is ALBERT.", "Café naïve résumé façade — ``quoted'' text",
         "  two   spaces\tand a tab ", "The model converts CHECKPOINTS quickly", "pair one", "unknown ☃ 漢字"]


def official_ids(sp, text: str, *, lower: bool, keep_accents: bool) -> list[int]:
    """google-research/albert tokenization.py for a SentencePiece model: preprocess_text, then the pieces."""
    import unicodedata

    text = " ".join(text.strip().split()).replace("``", '"').replace("''", '"')
    if not keep_accents:
        text = "".join(c for c in unicodedata.normalize("NFKD", text) if not unicodedata.combining(c))
    return sp.encode(text.lower() if lower else text)


@pytest.fixture(scope="module")
def albert_spm(tmp_path_factory):
    import sentencepiece as spm

    folder = tmp_path_factory.mktemp("spm")
    corpus = [f"the model {w} converts checkpoint number {i} quickly, cafe resume facade hello world albert"
              for i, w in enumerate("abcdefghij" * 20)]
    spm.SentencePieceTrainer.train(sentence_iterator=iter(corpus), model_prefix=str(folder / "30k-clean"),
                                   vocab_size=70, pad_id=0, unk_id=1, eos_id=-1, bos_id=-1, hard_vocab_limit=False,
                                   control_symbols=["[CLS]", "[SEP]", "[MASK]"], user_defined_symbols=["(", ")", "-"],
                                   model_type="unigram", minloglevel=2)
    return folder / "30k-clean.model"


@pytest.mark.parametrize("keep_accents", [False, True])
def test_sentencepiece_becomes_albert_tokenizer(albert_spm, tmp_path, capsys, keep_accents):
    import sentencepiece as spm
    from transformers import AutoTokenizer

    sp = spm.SentencePieceProcessor(model_file=str(albert_spm))
    dims = {**DIMS, "vocab_size": sp.get_piece_size()}
    variables = albert_tf_variables(**dims, groups=1, inner=1)
    write(tmp_path / "tf", variables, albert_tf_config(**dims, groups=1, inner=1, layers=1), slots=False)
    (tmp_path / "tf" / "30k-clean.model").write_bytes(albert_spm.read_bytes())
    code, _, err = run_cli(["convert", tmp_path / "tf", tmp_path / "hf", "--verify",  # transformers: AutoTokenizer
                            *(["--keep-accents", "true", "--verify-engine", "transformers"] if keep_accents else [])],
                           capsys)
    assert code == 0, err
    record = json.loads((tmp_path / "hf" / "ckptkit.json").read_text())
    checked = record["verification"]["tokenizer"]
    assert checked["ok"] and checked["status"] == "identical", checked
    assert checked["source"].startswith("albert from")
    assert checked["output"].startswith("AlbertTokenizerFast" if keep_accents else "tokenizer.json")
    assert (tmp_path / "hf" / "spiece.model").read_bytes() == albert_spm.read_bytes()
    saved = json.loads((tmp_path / "hf" / "tokenizer_config.json").read_text())
    assert saved["keep_accents"] is keep_accents and saved["do_lower_case"] is True
    tok = AutoTokenizer.from_pretrained(str(tmp_path / "hf"))
    cls, sep = sp.piece_to_id("[CLS]"), sp.piece_to_id("[SEP]")
    assert (cls, sep, tok.pad_token_id, tok.mask_token_id) == (2, 3, 0, 4)
    for text in TEXTS:
        expected = [cls, *official_ids(sp, text, lower=True, keep_accents=keep_accents), sep]
        assert tok(text)["input_ids"] == expected, text
    pair = tok("pair one", "hello world")
    assert pair["token_type_ids"][-1] == 1 and pair["input_ids"].count(sep) == 2
    code, _, err = run_cli(["convert", tmp_path / "hf", tmp_path / "back", "--to", "tf1", "--verify"], capsys)
    assert code == 0, err  # the TF side's tokenizer, rebuilt with the hub folder's keep_accents, is identical
    assert (tmp_path / "back" / "vocab.model").read_bytes() == albert_spm.read_bytes()


def _weights(folder):
    from safetensors.numpy import load_file

    return load_file(str(folder / "model.safetensors"))


def test_students_by_fewer_repetitions_or_chosen_groups(pretraining, tmp_path):
    """One group: the student is the teacher's weights, run fewer times. Several: the chosen layers decide
    which groups stay; an order the student's own layer -> group rule cannot run is refused."""
    import torch
    import transformers

    from ckptkit.distill.init import build_student
    from ckptkit.errors import UsageError

    root, _, config, _ = pretraining
    teacher = _weights(root / "hf")
    groups = config["num_hidden_groups"]
    report = build_student(str(root / "tf"), str(tmp_path / "fewer"), num_layers=2)
    student = json.loads((tmp_path / "fewer" / "config.json").read_text())
    assert (student["num_hidden_layers"], student["num_hidden_groups"]) == (2, groups)
    tied = {"predictions.decoder.weight", "predictions.decoder.bias"}
    assert set(_weights(tmp_path / "fewer")) == set(teacher) - tied
    assert all(np.array_equal(v, teacher[k]) for k, v in _weights(tmp_path / "fewer").items())
    assert len(report.layers) == 2 and report.teacher_layers == config["num_hidden_layers"]
    ids, mask, types = (torch.from_numpy(a) for a in batch())
    shorter = transformers.AlbertForPreTraining.from_pretrained(str(root / "hf"), num_hidden_layers=2).eval()
    built = transformers.AlbertForPreTraining.from_pretrained(str(tmp_path / "fewer")).eval()
    with torch.no_grad():
        a, b = (m(input_ids=ids, attention_mask=mask, token_type_ids=types).prediction_logits for m in (shorter, built))
    assert torch.equal(a, b)
    if groups > 1:
        build_student(str(root / "hf"), str(tmp_path / "first_group"), layers="0,1")
        kept = json.loads((tmp_path / "first_group" / "config.json").read_text())
        assert (kept["num_hidden_layers"], kept["num_hidden_groups"]) == (2, 1)
        names = _weights(tmp_path / "first_group")
        assert not any(".albert_layer_groups.1." in n for n in names)
        with pytest.raises(UsageError, match="cannot run in that order"):
            build_student(str(root / "hf"), str(tmp_path / "bad"), layers="0,2,3")
