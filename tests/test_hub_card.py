"""Model cards: metadata, sections, kept user text, and a usage snippet that really runs."""

from __future__ import annotations

import contextlib
import io
import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from ckptkit.output.card import MARKER, auto_class_for, write_model_card
from ckptkit.output.record import read_record, write_record

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "paris", "is", "the", "capital", "of", "france", "."]

CONVERSION = {
    "kind": "conversion",
    "command": "ckptkit convert model.ckpt-20000 out/tiny --verify --language ko",
    "model": {"family": "bert", "model_class": "BertForMaskedLM", "pipeline_tag": "fill-mask", "num_parameters": 12345},
    "source": {"path": "model.ckpt-20000", "format": "tf", "family": "bert", "global_step": 20000,
               "base_model": "google-bert/bert-base-uncased"},
    "verification": {"passed": True, "max_abs_diff": 1.2e-6, "compared": "hidden states, MLM logits on a fixed batch",
                     "tensors_checked": 199},
}


@pytest.fixture(scope="module")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A tiny BertForMaskedLM + a BertTokenizerFast from a tiny vocab, saved like a hub folder."""
    from transformers import BertConfig, BertForMaskedLM, BertTokenizerFast

    folder = tmp_path_factory.mktemp("tiny-bert")
    # transformers 5 takes the vocab itself (`vocab_file=` is silently ignored there)
    tokenizer = BertTokenizerFast(vocab={token: i for i, token in enumerate(VOCAB)})
    assert len(tokenizer) == len(VOCAB)
    tokenizer.save_pretrained(folder)
    config = BertConfig(vocab_size=len(VOCAB), hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                        intermediate_size=32, max_position_embeddings=32)
    BertForMaskedLM(config).save_pretrained(folder)
    write_record(folder, CONVERSION)
    return folder


def _python_block(text: str) -> str:
    return re.search(r"```python\n(.*?)```", text, re.S).group(1)


def test_metadata_and_sections(tiny_model_dir):
    from huggingface_hub import ModelCard

    path = write_model_card(tiny_model_dir, language="ko", license="apache-2.0", tags=["korean"])
    text = path.read_text()
    data = ModelCard(text).data.to_dict()
    assert data["library_name"] == "transformers"
    assert data["language"] == ["ko"]
    assert data["license"] == "apache-2.0"
    assert data["pipeline_tag"] == "fill-mask"
    assert data["base_model"] == "google-bert/bert-base-uncased"
    assert data["tags"] == ["ckptkit", "bert", "korean"]
    for expected in ("TensorFlow v1", "20000", CONVERSION["command"], "ckptkit 0.1.0", "1.2e-06",
                     "hidden states, MLM logits on a fixed batch", "199", "**Passed**", "AutoModelForMaskedLM",
                     "AutoTokenizer"):
        assert expected in text, expected
    assert text.rstrip().endswith(MARKER)
    # the options are remembered in ckptkit.json for the next `ckptkit card`
    assert read_record(tiny_model_dir)["card"] == {"language": ["ko"], "license": "apache-2.0", "tags": ["korean"]}


def test_usage_snippet_runs_as_written(tiny_model_dir, monkeypatch):
    monkeypatch.chdir(tiny_model_dir.parent)  # the snippet names the folder relative to where the card is written
    text = write_model_card(tiny_model_dir, language="en").read_text()
    code = _python_block(text)
    assert f'model_id = "{tiny_model_dir.name}"' in code and str(tiny_model_dir.parent) not in text
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README.md:usage", "exec"), {"__name__": "__snippet__"})
    predicted = out.getvalue().strip()
    assert predicted and all(word in VOCAB for word in predicted.split())


def test_user_sections_below_the_marker_survive_a_rewrite(tiny_model_dir):
    path = write_model_card(tiny_model_dir, license="apache-2.0")
    mine = "\n## My notes\n\nTrained on my own corpus; ask me before using it.\n"
    path.write_text(path.read_text() + mine)
    write_model_card(tiny_model_dir, license="mit")
    text = path.read_text()
    assert "license: mit" in text and "license: apache-2.0" not in text
    assert text.count("## My notes") == 1
    assert text.split(MARKER, 1)[1].strip() == mine.strip()
    # a rewrite with no options keeps the remembered ones and the user text
    write_model_card(tiny_model_dir)
    assert path.read_text() == text


def test_hand_written_readme_and_extra_metadata_are_kept(tmp_path):
    write_record(tmp_path, CONVERSION)
    (tmp_path / "README.md").write_text("---\ndatasets:\n- my/corpus\nlicense: mit\n---\n# My model\n\nHello.\n")
    text = write_model_card(tmp_path).read_text()
    assert "- my/corpus" in text  # a YAML key ckptkit does not manage
    assert text.split(MARKER, 1)[1].strip() == "# My model\n\nHello."
    assert "no tokenizer files" in text


def test_student_card_has_teacher_layers_losses_and_eval(tmp_path):
    student = {"teacher": "monologg/kobert", "layers": [1, 5, 9], "arch": {"num_hidden_layers": 3},
               "training": {"steps": 1000, "losses": {"kd_logits": 0.5, "mlm": 0.5},
                            "eval": {"teacher": {"nsmc_acc": 0.901}, "student": {"nsmc_acc": 0.872}}}}
    write_record(tmp_path, {**CONVERSION, "kind": "distilled", "command": "ckptkit distill train t s",
                            "verification": None,
                            "source": {"path": "t", "format": "hub", "family": "bert", "base_model": None}})
    (tmp_path / "student.json").write_text(json.dumps(student))
    text = write_model_card(tmp_path, language=["ko"]).read_text()
    assert "base_model: monologg/kobert" in text
    assert "1, 5, 9 → student layers 0, 1, 2" in text
    assert "| kd_logits | 0.5 |" in text
    assert "| student | 0.872 |" in text and "| teacher | 0.901 |" in text
    assert "distillation" in text and "## Verification" not in text
    assert "{tokenizer.mask_token}" in _python_block(text)  # Korean fill-mask sample


@pytest.mark.parametrize("model_class, auto", [
    ("BertForPreTraining", "AutoModelForPreTraining"), ("ElectraForPreTraining", "AutoModelForPreTraining"),
    ("BigBirdForMaskedLM", "AutoModelForMaskedLM"), ("BertModel", "AutoModel"),
    ("BertForSequenceClassification", "AutoModelForSequenceClassification"), ("Unknown", "AutoModel"),
])
def test_auto_class_table(model_class, auto):
    assert auto_class_for(model_class) == auto


def test_card_command(tiny_model_dir):
    from ckptkit.cli.hub_cmd import card_command

    result = CliRunner().invoke(card_command, [str(tiny_model_dir), "--language", "ko", "--license", "apache-2.0",
                                               "--repo-id", "me/tiny-bert", "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert doc["card"]["repo_id"] == "me/tiny-bert"
    assert 'model_id = "me/tiny-bert"' in (tiny_model_dir / "README.md").read_text()
    missing = CliRunner().invoke(card_command, [str(tiny_model_dir / "nope")])
    assert missing.exit_code != 0
