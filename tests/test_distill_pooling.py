"""Sentence embeddings are pooled as the teacher's sentence-transformers stack pools them.

The reference is the sentence-transformers library itself: its Pooling module loaded from the same
config file, its Normalize module, and `SentenceTransformer.encode` of the teacher and student folders.
"""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from ckptkit.cli import main
from ckptkit.distill.pooling import LEGACY_KEYS, Pooling, read_pooling
from distill_helpers import distill_world  # noqa: F401  (fixture)

pytestmark = pytest.mark.xdist_group("distill")
SENTENCES = ["the small cat sleeps in the house .", "고양이 가 집 에서 잔다 .", "the dog barks"]
LEGACY = {key: False for key in LEGACY_KEYS}
# config.json of the Pooling module -> the modes it means
CONFIGS = [
    *[({**LEGACY, key: True}, (mode,)) for key, mode in LEGACY_KEYS.items()],
    ({**LEGACY, "pooling_mode_mean_tokens": True, "pooling_mode_cls_token": True, "pooling_mode_max_tokens": True},
     ("cls", "max", "mean")),
    ({**LEGACY, "pooling_mode_lasttoken": True, "pooling_mode_mean_sqrt_len_tokens": True},
     ("mean_sqrt_len_tokens", "lasttoken")),
    (LEGACY, ("mean",)),
    ({"pooling_mode": "weightedmean"}, ("weightedmean",)),
    ({"pooling_mode": ["lasttoken", "cls", "weightedmean"]}, ("lasttoken", "cls", "weightedmean")),
]


def _tokens() -> tuple[torch.Tensor, torch.Tensor]:
    """Token embeddings and a mask with right padding, left padding, a full row and a one-token row."""
    hidden = torch.randn(4, 6, 5, generator=torch.Generator().manual_seed(0))
    mask = torch.tensor([[1, 1, 1, 1, 0, 0], [0, 0, 1, 1, 1, 1], [1, 1, 1, 1, 1, 1], [1, 0, 0, 0, 0, 0]])
    return hidden, mask


def _st_folder(root, config: dict, *, normalize: bool = False, pooling_path: str = "1_Pooling"):
    """A sentence-transformers stack's module list and Pooling folder (the Transformer's files are not read)."""
    modules = [{"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
               {"idx": 1, "name": "1", "path": pooling_path, "type": "sentence_transformers.models.Pooling"}]
    if normalize:
        modules.append({"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"})
    root.mkdir(parents=True, exist_ok=True)
    (root / "modules.json").write_text(json.dumps(modules))
    (root / pooling_path).mkdir()
    (root / pooling_path / "config.json").write_text(json.dumps({"word_embedding_dimension": 5, **config}))
    return root


@pytest.mark.parametrize("config, modes", CONFIGS, ids=lambda v: "+".join(v) if isinstance(v, tuple) else None)
def test_each_mode_equals_sentence_transformers_pooling(tmp_path, config, modes):
    from sentence_transformers.sentence_transformer.modules import Pooling as STPooling

    folder = _st_folder(tmp_path / "st", config)
    pooling = read_pooling(folder)
    assert pooling.modes == modes and not pooling.normalize and pooling.source == "1_Pooling/config.json"
    hidden, mask = _tokens()
    reference = STPooling.load(str(folder / "1_Pooling"))
    expected = reference({"token_embeddings": hidden, "attention_mask": mask})["sentence_embedding"]
    torch.testing.assert_close(pooling(hidden, mask), expected, rtol=1e-6, atol=1e-6)


def test_normalize_after_pooling_equals_sentence_transformers(tmp_path):
    from sentence_transformers.sentence_transformer.modules import Normalize
    from sentence_transformers.sentence_transformer.modules import Pooling as STPooling

    folder = _st_folder(tmp_path / "st", {"pooling_mode": ["cls", "max"]}, normalize=True)
    pooling = read_pooling(folder)
    assert pooling.normalize and pooling.label == "CLS+max-pooled"
    assert "L2-normalised" in pooling.describe() and "1_Pooling/config.json" in pooling.describe()
    hidden, mask = _tokens()
    features = STPooling.load(str(folder / "1_Pooling"))({"token_embeddings": hidden, "attention_mask": mask})
    torch.testing.assert_close(pooling(hidden, mask), Normalize()(features)["sentence_embedding"])


def test_a_dense_after_pooling_is_named_as_not_applied(tmp_path):
    folder = _st_folder(tmp_path / "st", {"pooling_mode": "cls"}, normalize=True)
    modules = json.loads((folder / "modules.json").read_text())
    modules.insert(2, {"idx": 2, "name": "2", "path": "2_Dense", "type": "sentence_transformers.models.Dense"})
    (folder / "modules.json").write_text(json.dumps(modules))
    pooling = read_pooling(folder)
    assert pooling.not_applied == ("Dense",) and pooling.normalize
    assert pooling.describe() == ("CLS-pooled, L2-normalised (the teacher's sentence-transformers "
                                  "1_Pooling/config.json; not applied: Dense)")


@pytest.mark.parametrize("broken, named", [("modules", "WordWeights"), ("json", "cannot read")])
def test_a_stack_ckptkit_cannot_pool_is_a_config_error(tmp_path, broken, named):
    from ckptkit.errors import ConfigError

    folder = _st_folder(tmp_path / "st", {"pooling_mode": "mean"})
    if broken == "modules":
        modules = json.loads((folder / "modules.json").read_text())
        modules.insert(1, {"idx": 1, "name": "w", "path": "w", "type": "sentence_transformers.models.WordWeights"})
        (folder / "modules.json").write_text(json.dumps(modules))
    else:
        (folder / "1_Pooling" / "config.json").write_text("{not json")
    with pytest.raises(ConfigError, match=named):
        read_pooling(folder)


def test_a_folder_without_the_stack_is_mean_pooled(tmp_path):
    assert read_pooling(tmp_path) == Pooling() and read_pooling(tmp_path / "missing") == Pooling()
    assert Pooling().describe() == "mean-pooled (no sentence-transformers stack)"


def test_pooled_cos_term_uses_the_options_pooling():
    from sentence_transformers.sentence_transformer.modules import Pooling as STPooling

    from ckptkit.distill.trainer import DistillOptions, TERMS, _Step
    from ckptkit.distill.losses import LossWeights

    hidden, mask = _tokens()
    student = hidden + torch.randn(hidden.shape, generator=torch.Generator().manual_seed(1))
    options = DistillOptions(weights=LossWeights(ce=0, mlm=0, cos=0, pooled_cos=1), objective="hidden",
                             teacher_layers=1, pooling=Pooling(modes=("cls",)))
    step = _Step(student=type("Out", (), {"hidden_states": (student, student)})(),
                 teacher=type("T", (), {"hidden": {1: hidden}})(), labels=mask * 0 - 100, attention_mask=mask,
                 options=options)
    cls = STPooling(5, pooling_mode="cls")
    s, t = (cls({"token_embeddings": h, "attention_mask": mask})["sentence_embedding"] for h in (student, hidden))
    expected = (1 - torch.nn.functional.cosine_similarity(s, t, dim=-1)).mean()
    torch.testing.assert_close(TERMS["pooled_cos"](step), expected)


# ------------------------------------------------------------------ teachers on disk
@pytest.fixture(scope="module")
def cls_pair(distill_world, tmp_path_factory):
    """The tiny teacher as a sentence-transformers model with CLS pooling (saved by the library), and its student."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling as STPooling
    from sentence_transformers.sentence_transformer.modules import Transformer

    transformer = Transformer(str(distill_world["teacher"]), max_seq_length=32)
    pooling = STPooling(transformer.get_embedding_dimension(), pooling_mode="cls")
    root = tmp_path_factory.mktemp("st_cls")
    SentenceTransformer(modules=[transformer, pooling], device="cpu").save(str(root / "teacher"))
    main(["distill", "init", str(root / "teacher"), str(root / "student"), "--layers", "0", "-q"])
    return root / "teacher", root / "student"


def test_eval_embedding_cosine_is_the_cls_embeddings_cosine(cls_pair, tmp_path, capsys):
    from sentence_transformers import SentenceTransformer

    teacher, student = cls_pair
    lines = tmp_path / "lines.txt"
    lines.write_text("\n".join(SENTENCES) + "\n", encoding="utf-8")
    main(["distill", "eval", "--teacher", str(teacher), "--student", str(student), "--eval-file", str(lines),
          "--objective", "hidden", "--max-seq-length", "32", "--latency-runs", "1", "-q", "--json"])
    result = json.loads(capsys.readouterr().out)
    t, s = (SentenceTransformer(str(f), device="cpu").encode(SENTENCES, convert_to_tensor=True) for f in cls_pair)
    expected = float(torch.nn.functional.cosine_similarity(t, s, dim=-1).mean())
    assert result["agreement"]["embedding_cosine"] == pytest.approx(expected, abs=1e-5)
    assert result["pooling"].startswith("CLS-pooled (the teacher's sentence-transformers 1_Pooling/config.json")
    main(["distill", "eval", "--teacher", str(teacher), "--student", str(student), "--eval-file", str(lines),
          "--objective", "hidden", "--max-seq-length", "32", "--latency-runs", "1", "-q"])
    assert "sentence-embedding cosine (CLS-pooled" in capsys.readouterr().out
    assert "sentence embeddings CLS-pooled" in (student / "README.md").read_text(encoding="utf-8")  # the recorded result


def test_held_out_embedding_cosine_pools_with_cls(cls_pair, distill_world):
    from sentence_transformers.sentence_transformer.modules import Pooling as STPooling
    from transformers import AutoTokenizer

    from ckptkit.distill import data as data_mod
    from ckptkit.distill.held_out import held_out_scores
    from ckptkit.distill.models import load_model

    teacher_dir = cls_pair[0]  # the CLS stack; the same encoder with its MLM head, and an MLM student, score
    tokenizer = AutoTokenizer.from_pretrained(str(teacher_dir))
    teacher = load_model(distill_world["teacher"], objective="mlm", role="teacher")
    student = load_model(distill_world["student"], objective="mlm", role="student")
    scores = held_out_scores(teacher, {"s": student}, tokenizer=tokenizer, eval_files=[distill_world["held_out"]],
                             max_seq_length=32, batch_size=4, max_batches=2, pooling=read_pooling(teacher_dir))
    assert scores["pooling"].startswith("CLS-pooled")
    # the same fixed-masked blocks, pooled by the library's own CLS Pooling
    blocks = data_mod.tokenize_and_pack(data_mod.load_texts([distill_world["held_out"]]), tokenizer,
                                        max_seq_length=32)
    collator = data_mod.MaskingCollator(pad_id=tokenizer.pad_token_id, mask_id=tokenizer.mask_token_id,
                                        special_ids=sorted(set(tokenizer.all_special_ids)), vocab_size=len(tokenizer),
                                        mlm_probability=0.15, seed=42, fixed=True)
    cls, cosines = STPooling.load(str(teacher_dir / "1_Pooling")), []
    for start in (0, 4):
        batch = collator([blocks[i] for i in range(start, start + 4)])
        inputs = {"input_ids": batch["input_ids"], "attention_mask": batch["attention_mask"]}
        with torch.no_grad():
            t, s = (cls({"token_embeddings": m(**inputs, output_hidden_states=True).hidden_states[-1],
                         "attention_mask": inputs["attention_mask"]})["sentence_embedding"] for m in (teacher, student))
        cosines.append(torch.nn.functional.cosine_similarity(t, s, dim=-1))
    assert scores["s"]["embedding_cosine"] == pytest.approx(float(torch.cat(cosines).mean()), abs=1e-4)
    mean = held_out_scores(teacher, {"s": student}, tokenizer=tokenizer, eval_files=[distill_world["held_out"]],
                           max_seq_length=32, batch_size=4, max_batches=2)
    assert mean["pooling"].startswith("mean-pooled")
    assert abs(mean["s"]["embedding_cosine"] - scores["s"]["embedding_cosine"]) > 0.01  # the pooling matters here


@pytest.mark.parametrize("config, named", [({"pooling_mode": "attention"}, "'attention'"),
                                           ({"pooling_mode_attention_tokens": True}, "'pooling_mode_attention_tokens'")])
def test_unknown_mode_is_one_line_before_training(cls_pair, distill_world, tmp_path, capsys, config, named):
    teacher = tmp_path / "teacher"
    shutil.copytree(cls_pair[0], teacher)
    (teacher / "1_Pooling" / "config.json").write_text(json.dumps({"embedding_dimension": 32, **config}))
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exited:
        main(["distill", "train", "--student", str(cls_pair[1]), "--teacher", str(teacher), "--train-file",
              str(distill_world["train"]), "--output-dir", str(out), "--objective", "hidden",
              "--max-seq-length", "32", "--max-steps", "1", "--use-cpu", "-q"])
    err = capsys.readouterr().err.strip()
    assert exited.value.code == 2 and not out.exists()
    assert len(err.splitlines()) == 1 and err.startswith("ckptkit: error: ")
    assert str(teacher / "1_Pooling" / "config.json") in err and named in err and "modules.json" in err


def test_train_summary_names_the_pooling(cls_pair, distill_world, tmp_path, capsys):
    out = tmp_path / "out"
    main(["distill", "train", "--student", str(cls_pair[1]), "--train-file", str(distill_world["train"]),
          "--output-dir", str(out), "--objective", "hidden", "--max-seq-length", "32", "--max-steps", "2",
          "--use-cpu", "-q", "--json"])
    summary = json.loads((out / "student.json").read_text())["training"]
    assert summary["pooling"].startswith("CLS-pooled (the teacher's sentence-transformers 1_Pooling/config.json")
    assert "CLS-pooled" in (out / "README.md").read_text(encoding="utf-8")
