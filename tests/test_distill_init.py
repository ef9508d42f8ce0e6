"""``ckptkit distill init``: students are exact slices of their teachers.

Every numeric check compares against the teacher itself: all layers kept must reproduce the
teacher (bitwise for ``--arch same``, 1e-5 for DistilBERT with folded token types), and a real
subset (0, 4, 8 of 12) must equal a forward pass that runs only those teacher layers through the
teacher's own transformers modules.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from ckptkit.converters.convert import convert_checkpoint
from ckptkit.converters.formats import open_checkpoint
from ckptkit.converters.formats.tf1.writer import write_tf_checkpoint
from ckptkit.distill.student import STRATEGIES, build_student, select_layers
from ckptkit.errors import UsageError
from support.bert import bert_tf_config, bert_tf_variables, tiny_wordpiece_vocab, with_adam_slots

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

SHAPE = dict(vocab_size=128, hidden=32, layers=12, heads=4, intermediate=64, max_positions=40)
SUBSET = [0, 4, 8]


def _tf_teacher(folder, *, shape=SHAPE, vocab_lines=None, spm=None, adam=True) -> str:
    os.makedirs(folder, exist_ok=True)
    variables = bert_tf_variables(**shape, seed=3)
    if adam:
        variables = with_adam_slots(variables, global_step=4242)
    prefix = write_tf_checkpoint(os.path.join(folder, "model.ckpt-4242"), variables)
    with open(os.path.join(folder, "bert_config.json"), "w") as f:
        json.dump(bert_tf_config(**shape), f)
    with open(os.path.join(folder, "vocab.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(vocab_lines or tiny_wordpiece_vocab(shape["vocab_size"])) + "\n")
    if spm:
        shutil.copyfile(spm, os.path.join(folder, "vocab.model"))
    return str(folder)


@pytest.fixture(scope="module")
def teachers(tmp_path_factory):
    """A 12-layer TF teacher (with Adam slots) and its hub-folder conversion (BertForPreTraining, gelu_new)."""
    root = tmp_path_factory.mktemp("teachers")
    tf = _tf_teacher(root / "tf")
    convert_checkpoint(tf, str(root / "hub"))
    return {"tf": tf, "hub": str(root / "hub"), "root": root}


def _batch(vocab=SHAPE["vocab_size"], *, seed=0, pad_id=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(5, vocab, size=(3, 11))
    mask = np.ones_like(ids)
    mask[1, 8:] = 0
    mask[2, 5:] = 0
    ids[mask == 0] = pad_id
    types = np.zeros_like(ids)
    types[0, 6:] = 1  # a second segment in row 0 (only for models that keep token types)
    return torch.from_numpy(ids), torch.from_numpy(types), torch.from_numpy(mask)


def _load(folder, cls="AutoModelForMaskedLM"):
    return getattr(transformers, cls).from_pretrained(folder, attn_implementation="eager").eval()


def _tensors(folder) -> dict[str, np.ndarray]:
    with open_checkpoint(folder) as ckpt:
        return {n: np.array(t.read()) for n, t in ckpt.items()}


def _max_diff(a, b) -> float:
    return float((a - b).abs().max())


# ------------------------------------------------------------------------------------------ layer choice
def test_strategies_follow_their_documented_rules():
    assert select_layers(12, num_layers=3, strategy="uniform") == [0, 4, 8]  # DistilKoBERT's 1, 5, 9 (1-based)
    assert select_layers(12, num_layers=6, strategy="distilbert") == [0, 2, 4, 7, 9, 11]  # DistilBERT
    assert select_layers(12, num_layers=6, strategy="uniform") == [0, 2, 4, 6, 8, 10]
    assert select_layers(12, num_layers=2, strategy="first") == [0, 1]
    assert select_layers(12, num_layers=2, strategy="last") == [10, 11]
    for name in STRATEGIES:
        for n in range(1, 13):
            for k in range(1, n + 1):
                chosen = select_layers(n, num_layers=k, strategy=name)
                assert len(chosen) == k == len(set(chosen)) and all(0 <= i < n for i in chosen), (name, n, k)
                assert chosen == sorted(chosen)
    with pytest.raises(UsageError, match="out of range"):
        select_layers(12, num_layers=13)


# ------------------------------------------------------------------------------------------ exactness
def test_same_arch_with_all_layers_reproduces_the_teacher_bitwise(teachers, tmp_path):
    report = build_student(teachers["hub"], str(tmp_path / "s"), layers=list(range(12)))
    assert report.token_types == "kept" and report.model_class == "BertForPreTraining"
    assert _tensors(teachers["hub"]).keys() == _tensors(tmp_path / "s").keys()
    ids, types, mask = _batch()
    teacher, student = _load(teachers["hub"], "BertForPreTraining"), _load(tmp_path / "s", "BertForPreTraining")
    with torch.no_grad():
        t = teacher(input_ids=ids, token_type_ids=types, attention_mask=mask, output_hidden_states=True)
        s = student(input_ids=ids, token_type_ids=types, attention_mask=mask, output_hidden_states=True)
    assert torch.equal(t.prediction_logits, s.prediction_logits)
    assert torch.equal(t.seq_relationship_logits, s.seq_relationship_logits)
    assert all(torch.equal(a, b) for a, b in zip(t.hidden_states, s.hidden_states))


def test_distilbert_with_all_layers_reproduces_hidden_states_and_mlm_logits(teachers, tmp_path):
    report = build_student(teachers["hub"], str(tmp_path / "d"), num_layers=12, arch="distilbert")
    assert (report.model_class, report.token_types, report.layers) == ("DistilBertForMaskedLM", "folded",
                                                                       list(range(12)))
    config = json.loads((tmp_path / "d" / "config.json").read_text())
    assert config["activation"] == "gelu_new"  # Google BERT's tanh gelu is kept, not DistilBERT's default
    assert (config["n_layers"], config["dim"], config["hidden_dim"], config["n_heads"]) == (12, 32, 64, 4)
    assert config["max_position_embeddings"] == 40 and config["tie_word_embeddings"] is True
    ids, _, mask = _batch()
    teacher, student = _load(teachers["hub"], "BertForMaskedLM"), _load(tmp_path / "d")
    assert type(student).__name__ == "DistilBertForMaskedLM"
    assert student.activation.__class__.__name__ == "NewGELUActivation"
    assert student.vocab_projector.weight.data_ptr() == student.distilbert.embeddings.word_embeddings.weight.data_ptr()
    with torch.no_grad():
        t = teacher(input_ids=ids, token_type_ids=torch.zeros_like(ids), attention_mask=mask,
                    output_hidden_states=True)
        s = student(input_ids=ids, attention_mask=mask, output_hidden_states=True)
    assert len(t.hidden_states) == len(s.hidden_states) == 13
    for a, b in zip(t.hidden_states, s.hidden_states):
        assert _max_diff(a, b) < 1e-5
    assert _max_diff(t.logits, s.logits) < 1e-5


def _teacher_subset_forward(teacher, layers, ids, types, mask=None):
    """An independent reference: the teacher's own embeddings, layers ``layers`` only, and its MLM head."""
    bert = teacher.bert
    h = bert.embeddings(input_ids=ids, token_type_ids=types)
    hidden = [h]
    for i in layers:
        h = bert.encoder.layer[i](h)
        h = h[0] if isinstance(h, tuple) else h
        hidden.append(h)
    return hidden, teacher.cls(h)


@pytest.mark.parametrize("arch", ["same", "distilbert"])
def test_a_real_subset_equals_the_teacher_layers_it_names(teachers, tmp_path, arch):
    out = tmp_path / arch
    report = build_student(teachers["hub"], str(out), num_layers=3, strategy="uniform", arch=arch)
    assert report.layers == SUBSET
    teacher_t, student_t = _tensors(teachers["hub"]), _tensors(out)
    renames = {"same": lambda rest: f"bert.encoder.layer.{{}}.{rest}",
               "distilbert": lambda rest: f"distilbert.transformer.layer.{{}}.{DISTILBERT_PARTS[rest]}"}[arch]
    for s, t in enumerate(SUBSET):  # tensor for tensor, bitwise
        for rest in DISTILBERT_PARTS:
            assert np.array_equal(student_t[renames(rest).format(s)], teacher_t[f"bert.encoder.layer.{t}.{rest}"])
    assert not any(f"layer.{i}." in n for n in student_t for i in (3, 4, 5, 6, 7, 8, 9, 10, 11))
    ids, types, mask = _batch()
    ones = torch.ones_like(ids)
    teacher = _load(teachers["hub"], "BertForMaskedLM")
    with torch.no_grad():
        if arch == "same":
            hidden, logits = _teacher_subset_forward(teacher, SUBSET, ids, types)
            s = _load(out, "BertForMaskedLM")(input_ids=ids, token_type_ids=types, attention_mask=ones,
                                              output_hidden_states=True)
            tol = 1e-6
        else:
            hidden, logits = _teacher_subset_forward(teacher, SUBSET, ids, torch.zeros_like(ids))
            s = _load(out)(input_ids=ids, attention_mask=ones, output_hidden_states=True)
            tol = 1e-5
    assert len(s.hidden_states) == 4
    for a, b in zip(hidden, s.hidden_states):
        assert _max_diff(a, b) < tol
    assert _max_diff(logits, s.logits) < tol


DISTILBERT_PARTS = {
    "attention.self.query.weight": "attention.q_lin.weight", "attention.self.key.bias": "attention.k_lin.bias",
    "attention.self.value.weight": "attention.v_lin.weight", "attention.output.dense.weight": "attention.out_lin.weight",
    "attention.output.LayerNorm.weight": "sa_layer_norm.weight", "intermediate.dense.weight": "ffn.lin1.weight",
    "output.dense.bias": "ffn.lin2.bias", "output.LayerNorm.bias": "output_layer_norm.bias",
}


def test_only_the_tensors_the_student_keeps_are_read(teachers, tmp_path, monkeypatch):
    from ckptkit.converters import tensors

    read = []
    original = tensors.LazyTensor.read
    monkeypatch.setattr(tensors.LazyTensor, "read", lambda self: read.append(self.name) or original(self))
    build_student(teachers["hub"], str(tmp_path / "s"), layers=SUBSET, arch="distilbert")
    assert read and not any(f"layer.{i}." in n for n in read for i in (1, 2, 3, 5, 6, 7, 9, 10, 11))
    assert not any("pooler" in n or "seq_relationship" in n for n in read)
    read.clear()
    build_student(teachers["tf"], str(tmp_path / "t"), layers=[4])
    assert read and all("layer_4/" in n or "layer_" not in n for n in read)
    assert not any(n.endswith(("adam_m", "adam_v")) for n in read)


def test_token_types_fold_or_drop(teachers, tmp_path):
    teacher_t = _tensors(teachers["hub"])
    build_student(teachers["hub"], str(tmp_path / "fold"), layers="1", arch="distilbert")
    r = build_student(teachers["hub"], str(tmp_path / "drop"), layers="1", arch="distilbert", drop_token_types=True)
    pos, tok = teacher_t["bert.embeddings.position_embeddings.weight"], teacher_t[
        "bert.embeddings.token_type_embeddings.weight"]
    folded = _tensors(tmp_path / "fold")["distilbert.embeddings.position_embeddings.weight"]
    np.testing.assert_allclose(folded, pos + tok[0], rtol=0, atol=1e-7)
    assert np.array_equal(_tensors(tmp_path / "drop")["distilbert.embeddings.position_embeddings.weight"], pos)
    assert r.token_types == "dropped"
    assert json.loads((tmp_path / "drop" / "student.json").read_text())["token_types"] == "dropped"
    with pytest.raises(UsageError, match="--drop-token-types needs --arch distilbert"):
        build_student(teachers["hub"], str(tmp_path / "x"), layers="1", drop_token_types=True)


# ------------------------------------------------------------------------------------------ teachers
def test_tf_teacher_is_converted_on_the_fly(teachers, tmp_path):
    """Straight from the TF checkpoint (optimizer slots dropped, not read) = via a converted hub folder."""
    for arch in ("same", "distilbert"):
        direct = build_student(teachers["tf"], str(tmp_path / f"tf-{arch}"), layers=SUBSET, arch=arch)
        build_student(teachers["hub"], str(tmp_path / f"hub-{arch}"), layers=SUBSET, arch=arch)
        a, b = _tensors(tmp_path / f"tf-{arch}"), _tensors(tmp_path / f"hub-{arch}")
        assert a.keys() == b.keys() and all(np.array_equal(a[n], b[n]) for n in a)
        assert direct.source_dropped == {"optimizer state": 2 * len(bert_tf_variables(**SHAPE)),
                                         "training counter": 1}
        assert json.loads((tmp_path / f"tf-{arch}" / "config.json").read_text()) == \
            json.loads((tmp_path / f"hub-{arch}" / "config.json").read_text())
        for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt"):
            assert (tmp_path / f"tf-{arch}" / name).is_file()
        record = json.loads((tmp_path / f"tf-{arch}" / "ckptkit.json").read_text())
        assert record["source"]["global_step"] == 4242 and record["source"]["format"] == "tf"


def test_bundled_example_through_the_cli(tmp_path):
    out = tmp_path / "student1"
    done = subprocess.run([sys.executable, "-m", "ckptkit", "distill", "init", "examples/tiny-bert", str(out),
                           "--layers", "1", "--arch", "distilbert", "--json"],
                          capture_output=True, text=True, cwd=os.path.dirname(os.path.dirname(__file__)))
    assert done.returncode == 0, done.stderr
    document = json.loads(done.stdout)
    assert document["layers"] == [1] and document["layers_1based"] == [2]
    model = _load(out)
    assert model.config.n_layers == 1 and model.config.activation == "gelu_new"


def test_kobert_style_teacher_keeps_pad_id_1_and_its_tokenizer(kobert_dir, tmp_path):
    vocab = (kobert_dir / "vocab.txt").read_text(encoding="utf-8").splitlines()
    shape = dict(SHAPE, vocab_size=len(vocab), layers=4)
    spm = next(p for p in kobert_dir.iterdir() if p.suffix == ".model")
    tf = _tf_teacher(tmp_path / "kobert-tf", shape=shape, vocab_lines=vocab, spm=spm, adam=False)
    convert_checkpoint(tf, str(tmp_path / "kobert"))
    assert json.loads((tmp_path / "kobert" / "config.json").read_text())["pad_token_id"] == 1
    for teacher in (tf, str(tmp_path / "kobert")):  # TF (tokenizer built) and hub (tokenizer copied)
        for arch, key in (("same", "pad_token_id"), ("distilbert", "pad_token_id")):
            out = tmp_path / f"s-{arch}-{os.path.basename(teacher)}"
            build_student(teacher, str(out), layers=[0, 2], arch=arch)
            assert json.loads((out / "config.json").read_text())[key] == 1
            tok = transformers.AutoTokenizer.from_pretrained(out)
            assert tok.pad_token_id == 1 and tok.pad_token == "[PAD]"
    ids, _, mask = _batch(len(vocab), pad_id=1)
    teacher = _load(tmp_path / "kobert", "BertForMaskedLM")
    student = _load(tmp_path / "s-distilbert-kobert")
    assert torch.equal(student.distilbert.embeddings.word_embeddings.weight[1],
                       teacher.bert.embeddings.word_embeddings.weight[1])  # the pad row is a real, trained row
    with torch.no_grad():
        hidden, logits = _teacher_subset_forward(teacher, [0, 2], ids, torch.zeros_like(ids))
        s = student(input_ids=ids, output_hidden_states=True)
    assert _max_diff(hidden[-1], s.hidden_states[-1]) < 1e-5 and _max_diff(logits, s.logits) < 1e-5


def test_safetensors_and_bin_files_with_config(teachers, tmp_path):
    folder = tmp_path / "files"
    folder.mkdir()
    shutil.copyfile(os.path.join(teachers["hub"], "model.safetensors"), folder / "weights.safetensors")
    state = {n: torch.from_numpy(a) for n, a in _tensors(teachers["hub"]).items()}
    torch.save(state, folder / "weights.bin")
    with pytest.raises(Exception, match="config.json"):
        build_student(str(folder / "weights.safetensors"), str(tmp_path / "x"), layers="0")
    config = os.path.join(teachers["hub"], "config.json")
    expected = _tensors(build_student(teachers["hub"], str(tmp_path / "ref"), layers=SUBSET).destination)
    for name in ("weights.safetensors", "weights.bin"):
        report = build_student(str(folder / name), str(tmp_path / name), layers=SUBSET, config=config)
        got = _tensors(tmp_path / name)
        assert got.keys() == expected.keys() and all(np.array_equal(got[n], expected[n]) for n in got)
        assert report.teacher_format in ("safetensors", "pytorch")


# ------------------------------------------------------------------------------------------ other families
def _hf_teacher(folder, cls_name, config_cls, **config):
    torch.manual_seed(0)
    model = getattr(transformers, cls_name)(getattr(transformers, config_cls)(**config)).eval()
    with torch.no_grad():  # LayerNorms and biases away from their init, so a mapping slip shows
        for name, p in model.named_parameters():
            if "LayerNorm" in name or name.endswith("bias"):
                p.add_(torch.randn_like(p) * 0.1)
    model.save_pretrained(folder)
    return str(folder)


SMALL = dict(vocab_size=90, hidden_size=32, num_hidden_layers=5, num_attention_heads=4, intermediate_size=48,
             max_position_embeddings=40)


@pytest.mark.parametrize("kind", ["electra-generator", "electra-discriminator", "bigbird"])
def test_bigbird_and_electra_hub_teachers(tmp_path, kind):
    cls, cfg, extra = {
        "electra-generator": ("ElectraForMaskedLM", "ElectraConfig", dict(embedding_size=32, hidden_act="gelu")),
        "electra-discriminator": ("ElectraForPreTraining", "ElectraConfig", dict(embedding_size=32)),
        "bigbird": ("BigBirdForMaskedLM", "BigBirdConfig", dict(attention_type="original_full",
                                                                hidden_act="gelu_new")),
    }[kind]
    teacher_dir = _hf_teacher(tmp_path / "teacher", cls, cfg, **SMALL, **extra)
    ids, types, mask = _batch(SMALL["vocab_size"])
    teacher = _load(teacher_dir, cls)
    with torch.no_grad():
        t = teacher(input_ids=ids, attention_mask=mask, output_hidden_states=True)
    same = build_student(teacher_dir, str(tmp_path / "same"), layers=list(range(5)))
    with torch.no_grad():
        s = _load(tmp_path / "same", cls)(input_ids=ids, attention_mask=mask, output_hidden_states=True)
    assert torch.equal(t.logits, s.logits) and same.model_class == cls
    distil = build_student(teacher_dir, str(tmp_path / "distil"), layers=list(range(5)), arch="distilbert")
    expected_class = "DistilBertModel" if kind == "electra-discriminator" else "DistilBertForMaskedLM"
    assert distil.model_class == expected_class and distil.token_types == "folded"
    student = getattr(transformers, expected_class).from_pretrained(tmp_path / "distil").eval()
    with torch.no_grad():
        d = student(input_ids=ids, attention_mask=mask, output_hidden_states=True)
    for a, b in zip(t.hidden_states, d.hidden_states):
        assert _max_diff(a, b) < 1e-5
    if expected_class.endswith("MaskedLM"):
        assert _max_diff(t.logits, d.logits) < 1e-5
    subset = build_student(teacher_dir, str(tmp_path / "sub"), layers=[4, 1])  # any order, renumbered
    got, ref = _tensors(tmp_path / "sub"), _tensors(teacher_dir)
    prefix = "electra." if kind.startswith("electra") else "bert."
    for s_i, t_i in enumerate([4, 1]):
        key = "encoder.layer.{}.attention.self.query.weight"
        assert np.array_equal(got[prefix + key.format(s_i)], ref[prefix + key.format(t_i)])
    assert subset.layers == [4, 1]


def test_electra_generator_with_an_embedding_projection_refuses_distilbert(tmp_path):
    teacher_dir = _hf_teacher(tmp_path / "t", "ElectraForMaskedLM", "ElectraConfig", **SMALL, embedding_size=16)
    with pytest.raises(UsageError, match="embedding_size"):
        build_student(teacher_dir, str(tmp_path / "d"), layers="0", arch="distilbert")
    assert not (tmp_path / "d").exists()
    build_student(teacher_dir, str(tmp_path / "s"), layers="0")  # --arch same is fine


# ------------------------------------------------------------------------------------------ report and CLI
def test_student_json_record_card_and_report(teachers, tmp_path):
    out = tmp_path / "s"
    report = build_student(teachers["hub"], str(out), layers=SUBSET, arch="distilbert")
    doc = json.loads((out / "student.json").read_text())
    assert doc["teacher"] == os.path.abspath(teachers["hub"]) and os.path.isabs(doc["teacher"])
    assert (doc["layers"], doc["layers_1based"], doc["arch"], doc["token_types"]) == (SUBSET, [1, 5, 9],
                                                                                      "distilbert", "folded")
    written = {t["name"]: t for t in doc["tensors"]}
    assert written["distilbert.transformer.layer.1.ffn.lin1.weight"]["from"] == [
        "bert.encoder.layer.4.intermediate.dense.weight"]
    assert written["distilbert.embeddings.position_embeddings.weight"]["ops"] == ["add_row[0]"]
    assert set(written) == set(_tensors(out))
    dropped = {d["name"]: d["reason"] for d in doc["dropped"]}
    assert dropped["bert.pooler.dense.weight"] == "DistilBERT has no pooler"
    assert "not kept" in dropped["bert.encoder.layer.11.output.dense.weight"]
    assert len(written) + len(dropped) == len(_tensors(teachers["hub"]))  # every teacher tensor accounted for
    size = doc["size"]
    assert size["student_parameters"] == sum(a.size for a in _tensors(out).values()) < size["teacher_parameters"]
    assert size["student_bytes"] == 4 * size["student_parameters"]
    record = json.loads((out / "ckptkit.json").read_text())
    assert record["kind"] == "student" and record["student"]["layers"] == SUBSET
    assert record["model"]["model_class"] == "DistilBertForMaskedLM"
    card = (out / "README.md").read_text()
    assert "3-layer student" in card and "0, 4, 8" in card and "# s\n" in card and ".tmp-" not in card
    assert "ckptkit distill init " in record["command"] and "--layers 0,4,8 --arch distilbert" in record["command"]
    text = report.format_text()
    assert "1 <- 1 [0]" in text and "2 <- 5 [4]" in text and "3 <- 9 [8]" in text and "folded" in text


def _cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "ckptkit", "distill", "init", *args], capture_output=True,
                          text=True, cwd=cwd)


@pytest.mark.parametrize("args, message", [
    (["--layers", "0,4,4"], "teacher layer 4 is named twice"),
    (["--layers", "0,12"], "teacher layer 12 is out of range"),
    (["--layers", "a,b"], "not a comma-separated list"),
    (["--num-layers", "13"], "--num-layers 13 is out of range"),
    (["--layers", "1", "--num-layers", "2"], "not both"),
    ([], "give either --layers or --num-layers"),
    (["--layers", "1", "--drop-token-types"], "needs --arch distilbert"),
])
def test_cli_errors_are_one_line_exit_2(teachers, tmp_path, args, message):
    out = tmp_path / "never"
    done = _cli(teachers["hub"], str(out), *args)
    assert done.returncode == 2, done.stderr
    assert done.stderr.count("\n") == 1 and message in done.stderr and done.stderr.startswith("ckptkit: error:")
    assert not out.exists() and not any(p.name.startswith(".never") for p in tmp_path.iterdir())


def test_cli_dry_run_quiet_and_no_torch_for_hub_teachers(teachers, tmp_path):
    done = _cli(teachers["hub"], "--num-layers", "3", "--dry-run")
    assert done.returncode == 0 and "3 <- 9 [8]" in done.stdout, done.stderr
    out = tmp_path / "q"
    probe = ("import sys, runpy; sys.argv = ['ckptkit', 'distill', 'init', %r, %r, '--layers', '0,4,8', '-q'];"
             "from ckptkit.cli import main\ntry: main()\nexcept SystemExit: pass\n"
             "print(sorted(m for m in ('torch', 'transformers', 'tensorflow') if m in sys.modules))"
             % (teachers["hub"], str(out)))
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == "[]" and done.stderr == "", done.stderr
    assert (out / "model.safetensors").is_file()
    again = _cli(teachers["hub"], str(out), "--layers", "0")
    assert again.returncode == 2 and "--overwrite" in again.stderr
    assert _cli(teachers["hub"], str(out), "--layers", "0", "--overwrite", "-q").returncode == 0
    assert json.loads((out / "student.json").read_text())["layers"] == [0]


def test_docstring_examples_run(monkeypatch):
    import doctest

    import importlib

    from ckptkit.distill import init

    monkeypatch.chdir(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # examples/tiny-bert
    modules = [init, importlib.import_module("ckptkit.distill.student"),
               *(importlib.import_module(f"ckptkit.distill.init.{name}") for name in init.INIT_MODULES)]
    results = [doctest.testmod(module, optionflags=doctest.ELLIPSIS) for module in modules]
    assert sum(r.failed for r in results) == 0 and sum(r.attempted for r in results) >= 10


# ------------------------------------------------------------------------------------------ TF BigBird / ELECTRA
def _same_as_converted(tf_dir, tmp_path, *, layers, arch, part=None):
    """A student straight from the TF checkpoint = the student of its converted hub folder, tensor for tensor."""
    convert_checkpoint(tf_dir, str(tmp_path / "hub"), part=part) if part else \
        convert_checkpoint(tf_dir, str(tmp_path / "hub"))
    hub = tmp_path / "hub"
    report = build_student(tf_dir, str(tmp_path / "direct"), layers=layers, arch=arch, part=part)
    build_student(str(hub), str(tmp_path / "via-hub"), layers=layers, arch=arch)
    a, b = _tensors(tmp_path / "direct"), _tensors(tmp_path / "via-hub")
    assert a.keys() == b.keys() and all(np.array_equal(a[n], b[n]) for n in a)
    return report, hub


def test_tf_bigbird_teacher(tmp_path):
    from support.families import bigbird_tf_config, bigbird_tf_variables

    dims = dict(vocab_size=90, hidden=32, layers=3, heads=4, intermediate=64, max_positions=64)
    tf_dir = tmp_path / "tf"
    tf_dir.mkdir()
    write_tf_checkpoint(str(tf_dir / "model.ckpt-10"), bigbird_tf_variables(**dims))
    (tf_dir / "pretrain.config").write_text(json.dumps(bigbird_tf_config(**dims, block_size=4, num_rand_blocks=1,
                                                                          attention_type="original_full",
                                                                          rescale_embedding=False)))
    (tf_dir / "vocab.txt").write_text("\n".join(tiny_wordpiece_vocab(90)) + "\n")
    report, hub = _same_as_converted(str(tf_dir), tmp_path, layers=[0, 2], arch="distilbert")
    assert report.family == "bigbird" and report.model_class == "DistilBertForMaskedLM"
    ids, _, _ = _batch(90)
    teacher, student = _load(hub, "BigBirdForMaskedLM"), _load(tmp_path / "direct")
    with torch.no_grad():
        hidden, logits = _teacher_subset_forward(teacher, [0, 2], ids, torch.zeros_like(ids))
        s = student(input_ids=ids, output_hidden_states=True)
    assert _max_diff(hidden[-1], s.hidden_states[-1]) < 1e-5 and _max_diff(logits, s.logits) < 1e-5


@pytest.mark.parametrize("part", ["discriminator", "generator"])
def test_tf_electra_pretraining_teacher_needs_a_part(tmp_path, part):
    from support.families import electra_hparams, electra_tf_variables

    dims = dict(vocab_size=90, embedding=32, hidden=32, layers=3, heads=2, intermediate=64, max_positions=40,
                generator_hidden=32)
    tf_dir = tmp_path / "tf"
    tf_dir.mkdir()
    write_tf_checkpoint(str(tf_dir / "model.ckpt-10"), electra_tf_variables(**dims))
    (tf_dir / "hparams.json").write_text(json.dumps(electra_hparams(**dims)))
    (tf_dir / "vocab.txt").write_text("\n".join(tiny_wordpiece_vocab(90)) + "\n")
    with pytest.raises(UsageError, match="--part"):
        build_student(str(tf_dir), str(tmp_path / "x"), layers=[0])
    report, hub = _same_as_converted(str(tf_dir), tmp_path, layers=[2, 0], arch="same", part=part)
    assert report.family == "electra" and report.layers == [2, 0]
