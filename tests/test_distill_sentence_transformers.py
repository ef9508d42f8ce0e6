"""A sentence-transformers teacher gives a student that loads with the real `SentenceTransformer`, at init and after
training, with the same module stack (Transformer, Pooling, Normalize) and every tokenizer file."""

from __future__ import annotations

import json

import pytest
import torch

from ckptkit.cli import main
from distill_helpers import distill_world  # noqa: F401  (fixture)

pytestmark = pytest.mark.xdist_group("distill")
SENTENCES = ["the small cat sleeps in the house .", "고양이 가 집 에서 잔다 .", "the dog barks"]


@pytest.fixture(scope="module")
def st_teacher(distill_world, tmp_path_factory):
    """The tiny BERT teacher as a sentence-transformers model, saved by the library itself (mean pooling, Normalize)."""
    from sentence_transformers import SentenceTransformer, models

    transformer = models.Transformer(str(distill_world["teacher"]), max_seq_length=32)
    pooling = models.Pooling(transformer.get_embedding_dimension(), pooling_mode="mean")
    folder = tmp_path_factory.mktemp("st") / "teacher"
    SentenceTransformer(modules=[transformer, pooling, models.Normalize()], device="cpu").save(str(folder))
    return folder


def _stack(model) -> list[str]:
    return [type(module).__name__ for module in model]


def _reference_embeddings(folder) -> torch.Tensor:
    """Mean of the last hidden states over the tokens, L2-normalised: computed with transformers alone."""
    from transformers import AutoModel, AutoTokenizer

    tokenizer, model = AutoTokenizer.from_pretrained(folder), AutoModel.from_pretrained(folder).eval()
    batch = tokenizer(SENTENCES, padding=True, return_tensors="pt")
    with torch.no_grad():
        hidden = model(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).float()
    return torch.nn.functional.normalize((hidden * mask).sum(1) / mask.sum(1), dim=-1)


def _check_loads_like(folder, teacher_stack: list[str]) -> None:
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(folder), device="cpu")
    assert _stack(model) == teacher_stack
    got = torch.as_tensor(model.encode(SENTENCES, convert_to_numpy=True))
    torch.testing.assert_close(got, _reference_embeddings(folder), atol=1e-5, rtol=1e-4)


def test_student_keeps_the_module_stack_at_init_and_after_training(st_teacher, distill_world, tmp_path, capsys):
    from sentence_transformers import SentenceTransformer

    teacher_stack = _stack(SentenceTransformer(str(st_teacher), device="cpu"))
    assert teacher_stack == ["Transformer", "Pooling", "Normalize"]
    student = tmp_path / "student"
    main(["distill", "init", str(st_teacher), str(student), "--layers", "0", "-q"])
    assert (student / "1_Pooling" / "config.json").read_bytes() == (st_teacher / "1_Pooling" / "config.json").read_bytes()
    _check_loads_like(student, teacher_stack)

    out = tmp_path / "distilled"
    main(["distill", "train", "--student", str(student), "--train-file", str(distill_world["train"]),
          "--output-dir", str(out), "--objective", "hidden", "--max-seq-length", "32", "--max-steps", "3",
          "--learning-rate", "1e-3", "--use-cpu", "-q", "--json"])
    report = json.loads(capsys.readouterr().out)
    assert {"modules.json", "1_Pooling", "2_Normalize"} <= set(report["sentence_transformers_files"])
    _check_loads_like(out, teacher_stack)
    modules = json.loads((out / "modules.json").read_text())
    assert [m["path"] for m in modules] == ["", "1_Pooling", "2_Normalize"]
    for name in ("sentence_bert_config.json", "config_sentence_transformers.json", "tokenizer.json",
                 "tokenizer_config.json"):
        assert (out / name).read_bytes() == (student / name).read_bytes(), name
    trained = SentenceTransformer(str(out), device="cpu").encode(SENTENCES, convert_to_tensor=True)
    started = SentenceTransformer(str(student), device="cpu").encode(SENTENCES, convert_to_tensor=True)
    assert not torch.allclose(trained, started)  # the trained weights are the ones loaded


def test_every_tokenizer_file_of_the_student_reaches_the_output(distill_world, tmp_path, kobert_dir, capsys):
    """vocab.txt, special_tokens_map.json, added_tokens.json and a SentencePiece model besides tokenizer.json."""
    import shutil

    student = tmp_path / "student"
    shutil.copytree(distill_world["student"], student)
    from distill_helpers import vocabulary

    vocab = vocabulary()
    (student / "vocab.txt").write_text("\n".join(sorted(vocab, key=vocab.get)) + "\n", encoding="utf-8")
    (student / "special_tokens_map.json").write_text(json.dumps({"pad_token": "[PAD]", "mask_token": "[MASK]"}))
    (student / "added_tokens.json").write_text("{}")
    spm = next(p for p in kobert_dir.iterdir() if p.suffix == ".model")
    shutil.copyfile(spm, student / spm.name)
    out = tmp_path / "out"
    main(["distill", "train", "--student", str(student), "--train-file", str(distill_world["train"]),
          "--output-dir", str(out), "--max-seq-length", "32", "--max-steps", "1", "--use-cpu", "-q", "--json"])
    report = json.loads(capsys.readouterr().out)
    names = ["added_tokens.json", spm.name, "special_tokens_map.json", "tokenizer.json", "tokenizer_config.json",
             "vocab.txt"]
    assert sorted(report["tokenizer_files"]) == sorted(names)
    for name in names:
        assert (out / name).read_bytes() == (student / name).read_bytes(), name
