"""ELECTRA: one pretraining checkpoint -> discriminator and generator folders (and back), a fine-tuned
classifier, the erf gelu; outputs compared with a TensorFlow-eager forward written here over the TF
variables (not ckptkit's reference.py), on a padded batch, embedding size != hidden size."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from ckptkit.converters.convert import convert_checkpoint
from ckptkit.converters.families.bert import GOOGLE_TO_HF_ACT
from ckptkit.converters.families.electra import ELECTRA_TO_HF_ACT
from ckptkit.converters.formats.tf1 import write_tf_checkpoint
from ckptkit.errors import ConfigError, PlanError
from support.bert import tiny_wordpiece_vocab, with_adam_slots
from support.families import electra_hparams, electra_tf_variables
from tf_save import assert_tensorflow_reads

DIMS = dict(vocab_size=90, embedding=16, hidden=32, layers=2, heads=2, intermediate=64, max_positions=40)
GEN = dict(generator_hidden=24, generator_heads=3)


def write(folder, variables, *, hparams=None, slots=True):
    folder.mkdir(parents=True, exist_ok=True)
    write_tf_checkpoint(str(folder / "model.ckpt-10"), with_adam_slots(variables) if slots else variables)
    if hparams is not None:
        (folder / "hparams.json").write_text(json.dumps(hparams))
    (folder / "vocab.txt").write_text("\n".join(tiny_wordpiece_vocab(DIMS["vocab_size"])) + "\n")


def tf_electra(v: dict, ids, mask, *, scope: str, heads: int, project: bool) -> "tf.Tensor":
    """google-research/electra modeling.py math in TF eager: shared embeddings, optional projection,
    post-norm layers with the erf gelu."""
    import tensorflow as tf

    def norm(x, s):
        mean, var = tf.nn.moments(x, [-1], keepdims=True)
        return tf.nn.batch_normalization(x, mean, var, v[f"{s}/beta"], v[f"{s}/gamma"], 1e-12)

    e = "electra/embeddings/"
    x = tf.gather(v[e + "word_embeddings"], ids) + tf.gather(v[e + "token_type_embeddings"], np.zeros_like(ids))
    x = norm(x + v[e + "position_embeddings"][None, : ids.shape[1]], e + "LayerNorm")
    if project:
        x = tf.tensordot(x, v[f"{scope}/embeddings_project/kernel"], 1) + v[f"{scope}/embeddings_project/bias"]
    hidden = x.shape[-1]
    size = hidden // heads
    adder = (1.0 - tf.cast(mask[:, None, None, :], tf.float32)) * -10000.0
    split = lambda t: tf.transpose(tf.reshape(t, [ids.shape[0], -1, heads, size]), [0, 2, 1, 3])  # noqa: E731
    layers = len({n.split("/")[2] for n in v if n.startswith(f"{scope}/encoder/layer_")})
    for i in range(layers):
        p = f"{scope}/encoder/layer_{i}/"
        q, k, val = (split(tf.tensordot(x, v[f"{p}attention/self/{n}/kernel"], 1) + v[f"{p}attention/self/{n}/bias"])
                     for n in ("query", "key", "value"))
        probs = tf.nn.softmax(tf.matmul(q, k, transpose_b=True) / math.sqrt(size) + adder)
        ctx = tf.reshape(tf.transpose(tf.matmul(probs, val), [0, 2, 1, 3]), [ids.shape[0], -1, hidden])
        out = tf.tensordot(ctx, v[f"{p}attention/output/dense/kernel"], 1) + v[f"{p}attention/output/dense/bias"]
        x = norm(out + x, f"{p}attention/output/LayerNorm")
        inter = tf.nn.gelu(tf.tensordot(x, v[f"{p}intermediate/dense/kernel"], 1) + v[f"{p}intermediate/dense/bias"],
                           approximate=False)
        x = norm(tf.tensordot(inter, v[f"{p}output/dense/kernel"], 1) + v[f"{p}output/dense/bias"] + x,
                 f"{p}output/LayerNorm")
    return x


def tf_heads(v: dict, ids, mask) -> dict:
    import tensorflow as tf

    gelu = lambda t: tf.nn.gelu(t, approximate=False)  # noqa: E731
    disc = tf_electra(v, ids, mask, scope="electra", heads=DIMS["heads"], project=True)
    h = gelu(tf.tensordot(disc, v["discriminator_predictions/dense/kernel"], 1) + v["discriminator_predictions/dense/bias"])
    disc_logits = tf.squeeze(tf.tensordot(h, v["discriminator_predictions/dense_1/kernel"], 1)
                             + v["discriminator_predictions/dense_1/bias"], -1)
    gen = tf_electra(v, ids, mask, scope="generator", heads=GEN["generator_heads"], project=True)
    h = gelu(tf.tensordot(gen, v["generator_predictions/dense/kernel"], 1) + v["generator_predictions/dense/bias"])
    mean, var = tf.nn.moments(h, [-1], keepdims=True)
    h = tf.nn.batch_normalization(h, mean, var, v["generator_predictions/LayerNorm/beta"],
                                  v["generator_predictions/LayerNorm/gamma"], 1e-12)
    mlm = tf.matmul(tf.reshape(h, [-1, h.shape[-1]]), v["electra/embeddings/word_embeddings"], transpose_b=True)
    mlm = tf.reshape(mlm, [ids.shape[0], ids.shape[1], -1]) + v["generator_predictions/output_bias"]
    return {"disc_hidden": disc.numpy(), "disc_logits": disc_logits.numpy(), "gen_hidden": gen.numpy(),
            "mlm": mlm.numpy()}


def batch():
    ids = np.random.default_rng(5).integers(5, DIMS["vocab_size"], size=(2, 14))
    mask = np.ones_like(ids)
    mask[1, 9:] = 0
    ids[1, 9:] = 0
    return ids, mask


def run_hf(folder, cls_name, ids, mask):
    import torch
    import transformers

    model = getattr(transformers, cls_name).from_pretrained(str(folder), dtype=torch.float32).eval()
    with torch.no_grad():
        return model(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask),
                     token_type_ids=torch.zeros_like(torch.from_numpy(ids)), output_hidden_states=True)


@pytest.fixture(scope="module")
def pretraining(tmp_path_factory):
    root = tmp_path_factory.mktemp("electra")
    variables = electra_tf_variables(**DIMS, **GEN)
    write(root / "tf", variables, hparams={**electra_hparams(**DIMS, generator_hidden=24),
                                           "generator": {"num_attention_heads": 3}})
    result = convert_checkpoint(str(root / "tf"), str(root / "hf"), verify=True)
    return root, variables, result


def test_two_folders_with_their_own_configs(pretraining):
    root, _, result = pretraining
    disc = json.loads((root / "hf" / "discriminator" / "config.json").read_text())
    gen = json.loads((root / "hf" / "generator" / "config.json").read_text())
    assert disc["architectures"] == ["ElectraForPreTraining"] and gen["architectures"] == ["ElectraForMaskedLM"]
    assert (disc["hidden_size"], disc["num_attention_heads"], disc["embedding_size"]) == (32, 2, 16)
    assert (gen["hidden_size"], gen["num_attention_heads"], gen["intermediate_size"]) == (24, 3, 96)
    assert disc["hidden_act"] == gen["hidden_act"] == "gelu"
    assert (root / "hf" / "generator" / "tokenizer.json").is_file()
    assert result.verification["discriminator"]["passed"] and result.verification["generator"]["passed"]
    assert {d.reason for d in result.plan.dropped} >= {"optimizer state", "training counter"}


def test_outputs_match_tf_forward(pretraining):
    root, variables, _ = pretraining
    ids, mask = batch()
    expected = tf_heads(variables, ids, mask)
    disc = run_hf(root / "hf" / "discriminator", "ElectraForPreTraining", ids, mask)
    gen = run_hf(root / "hf" / "generator", "ElectraForMaskedLM", ids, mask)
    pairs = {"disc_hidden": disc.hidden_states[-1], "disc_logits": disc.logits, "gen_hidden": gen.hidden_states[-1],
             "mlm": gen.logits}
    for key, actual in pairs.items():
        assert np.max(np.abs(expected[key] - actual.numpy())) < 1e-5, key


def test_gelu_is_erf_on_purpose():
    assert ELECTRA_TO_HF_ACT["gelu"] == "gelu" and GOOGLE_TO_HF_ACT["gelu"] == "gelu_new"
    x = np.linspace(-3, 3, 61)
    erf = 0.5 * x * (1 + np.vectorize(math.erf)(x / math.sqrt(2)))
    tanh = 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))
    assert np.max(np.abs(erf - tanh)) > 1e-4  # copying BERT's mapping would be a visible error


def test_part_option_and_generator_heads(pretraining, tmp_path):
    root, _, _ = pretraining
    result = convert_checkpoint(str(root / "tf"), str(tmp_path / "gen"), part="generator", generator_heads=2)
    config = json.loads((tmp_path / "gen" / "config.json").read_text())
    assert config["architectures"] == ["ElectraForMaskedLM"] and config["num_attention_heads"] == 2
    assert result.plan.info["part"] == "generator"
    with pytest.raises(ConfigError, match="generator-heads"):
        convert_checkpoint(str(root / "tf"), str(tmp_path / "bad"), part="generator", generator_heads=5)


def test_hf_to_tf_joins_the_folders_with_shared_names(pretraining, tmp_path):
    root, variables, _ = pretraining
    result = convert_checkpoint(str(root / "hf"), str(tmp_path / "back"), global_step=10)
    assert_tensorflow_reads(str(tmp_path / "back"), variables, extra={"global_step"})
    shared = [d for d in result.plan.dropped if d.reason.startswith("shared TF variable")]
    assert len(shared) == 5 and all(d.name.startswith("generator:electra.embeddings.") for d in shared)
    hparams = json.loads((tmp_path / "back" / "hparams.json").read_text())
    assert hparams["embedding_size"] == 16 and hparams["generator_hidden_size"] == 0.75


def test_verify_joined_checkpoint_against_part_folders(pretraining, tmp_path, capsys):
    """`verify` pairs each part folder with its share of the one TF checkpoint, in both directions,
    and catches a changed tensor in one part."""
    import shutil

    from safetensors.numpy import load_file, save_file

    from ckptkit.cli import main
    from ckptkit.converters.verify import verify_conversion

    root, _, _ = pretraining
    result = convert_checkpoint(str(root / "hf"), str(tmp_path / "back"), verify=True)
    assert result.verification["passed"] and "mlm_logits of ElectraForMaskedLM" in result.verification["compared"]
    for pair in ((root / "hf", tmp_path / "back"), (root / "tf", root / "hf")):
        report = verify_conversion(*map(str, pair))
        assert report.passed, report.problems
        assert {r["output"] for r in report.outputs} >= {"discriminator: disc_logits", "generator: mlm_logits"}
    shutil.copytree(root / "hf", tmp_path / "edited")
    weights = tmp_path / "edited" / "generator" / "model.safetensors"
    tensors = load_file(str(weights))
    tensors["generator_predictions.dense.bias"] = tensors["generator_predictions.dense.bias"] + 1e-3
    save_file(tensors, str(weights), metadata={"format": "pt"})
    report = verify_conversion(str(tmp_path / "edited"), str(tmp_path / "back"))
    bad = {r["name"] for r in report.tensors if not r["ok"]}
    assert bad == {"generator: generator_predictions/dense/bias"} and not report.passed
    with pytest.raises(SystemExit) as exited:
        main(["verify", str(tmp_path / "edited"), str(tmp_path / "back")])
    assert exited.value.code == 1 and "verification FAILED" in capsys.readouterr().out


def test_classifier_and_official_task_head(tmp_path):
    import tensorflow as tf

    variables = electra_tf_variables(**DIMS, classifier_labels=3)
    write(tmp_path / "cls", variables, hparams=electra_hparams(**DIMS, generator_hidden=24), slots=False)
    result = convert_checkpoint(str(tmp_path / "cls"), str(tmp_path / "hf"), verify=True)
    assert result.plan.info["model_class"] == "ElectraForSequenceClassification"
    assert result.hf_config["id2label"] == {"0": "LABEL_0", "1": "LABEL_1", "2": "LABEL_2"}
    ids, mask = batch()
    hidden = tf_electra(variables, ids, mask, scope="electra", heads=DIMS["heads"], project=True)
    h = tf.nn.gelu(hidden[:, 0] @ variables["classifier/dense/kernel"] + variables["classifier/dense/bias"],
                   approximate=False)
    expected = (h @ variables["classifier/out_proj/kernel"] + variables["classifier/out_proj/bias"]).numpy()
    actual = run_hf(tmp_path / "hf", "ElectraForSequenceClassification", ids, mask).logits.numpy()
    assert np.max(np.abs(expected - actual)) < 1e-5


def official_task_head(labels: int, task: str = "mnli") -> dict[str, np.ndarray]:
    """run_finetuning.py's variables: the encoder (no pooler) + task_specific/<task>/dense on [CLS]."""
    variables = {k: a for k, a in electra_tf_variables(**DIMS, classifier_labels=1).items()
                 if not k.startswith("classifier/")}
    rng = np.random.default_rng(11)
    variables[f"task_specific/{task}/dense/kernel"] = rng.standard_normal((DIMS["hidden"], labels)).astype(np.float32)
    variables[f"task_specific/{task}/dense/bias"] = rng.standard_normal(labels).astype(np.float32)
    return variables


def test_official_task_head_converts_exactly(tmp_path):
    """One dense on [CLS] held by ElectraForSequenceClassification's dense -> gelu -> out_proj, exactly."""
    variables = official_task_head(labels=3)
    write(tmp_path / "official", variables, hparams=electra_hparams(**DIMS, generator_hidden=24))
    result = convert_checkpoint(str(tmp_path / "official"), str(tmp_path / "hf"), verify=True)
    assert result.plan.info["model_class"] == "ElectraForSequenceClassification"
    assert result.hf_config["id2label"] == {"0": "LABEL_0", "1": "LABEL_1", "2": "LABEL_2"}
    assert {d.reason for d in result.plan.dropped if d.name.startswith("task_specific/")} == {"optimizer state"}
    ids, mask = batch()
    hidden = tf_electra(variables, ids, mask, scope="electra", heads=DIMS["heads"], project=True)
    expected = (hidden[:, 0] @ variables["task_specific/mnli/dense/kernel"]
                + variables["task_specific/mnli/dense/bias"]).numpy()
    actual = run_hf(tmp_path / "hf", "ElectraForSequenceClassification", ids, mask).logits.numpy()
    assert np.abs(expected).max() > 0.5  # logits far from zero, where gelu(z) - gelu(-z) = z is tested
    assert np.max(np.abs(expected - actual)) < 1e-5


def test_official_task_head_errors(tmp_path):
    too_many = official_task_head(labels=DIMS["hidden"] // 2 + 1)
    write(tmp_path / "wide", too_many, slots=False)
    with pytest.raises(ConfigError, match="do not fit in 32 rows"):
        convert_checkpoint(str(tmp_path / "wide"), str(tmp_path / "hf"))
    two_tasks = {**official_task_head(labels=2), **{k.replace("mnli", "sst"): a
                                                    for k, a in official_task_head(labels=2).items()
                                                    if k.startswith("task_specific/")}}
    write(tmp_path / "multi", two_tasks, slots=False)
    with pytest.raises(PlanError, match="both map to 'electra.classifier|both map to 'classifier"):
        convert_checkpoint(str(tmp_path / "multi"), str(tmp_path / "hf"))
    result = convert_checkpoint(str(tmp_path / "multi"), str(tmp_path / "enc"), model_class="ElectraModel")
    assert {d.name for d in result.plan.dropped} >= {"task_specific/mnli/dense/kernel", "task_specific/sst/dense/bias"}
    assert not (tmp_path / "hf").exists()
