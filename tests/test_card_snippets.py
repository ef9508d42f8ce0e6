"""The usage snippet of every card kind runs as written, against the folder ckptkit wrote.

Each family's tiny official-layout TF checkpoint (tests/support factories) is converted with the CLI;
the ```python block is read from the written README.md and executed from the working directory the
card was written in (the snippet names the folder relative to it). Students come from
`ckptkit distill init`; a sentence-transformers student is saved by the sentence-transformers library
itself, then carded. BigBird-Pegasus (an encoder-decoder) gets a snippet that generates.
"""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

import numpy as np
import pytest

from support.cards import FAMILIES, ckptkit as _ckptkit

pytestmark = pytest.mark.xdist_group("distill")  # torch-heavy: shares the worker with the distill tests

# card kind -> the folder (relative to the working directory) whose README.md is run
CARDS = {"bert": "out/bert", "bigbird": "out/bigbird", "electra discriminator": "out/electra/discriminator",
         "electra generator": "out/electra/generator", "mobilebert": "out/mobilebert", "albert": "out/albert",
         "student": "out/student", "electra student": "out/electra-student", "sentence-transformers student": "out/st",
         "bigbird-pegasus": "out/pegasus"}


def _sentence_transformers_student(work: Path) -> None:
    """A sentence-transformers folder saved by the library, over the BERT student, carded by ckptkit."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Pooling, Transformer

    from ckptkit.output.card import write_model_card
    from ckptkit.output.record import read_record, write_record

    encoder = Transformer(str(work / "out" / "student"))
    pooling = Pooling(encoder.get_embedding_dimension(), pooling_mode="mean")
    SentenceTransformer(modules=[encoder, pooling], device="cpu").save(str(work / "out" / "st"))
    record = read_record(work / "out" / "student")
    record.pop("created"), record.pop("ckptkit_version")
    write_record(work / "out" / "st", record)
    write_model_card(work / "out" / "st")


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    work = tmp_path_factory.mktemp("cards")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(work)
        for family, make in FAMILIES.items():
            (work / "tf" / family).mkdir(parents=True)
            make(work / "tf" / family)
            _ckptkit("convert", f"tf/{family}", f"out/{family}", "--quiet")
        _ckptkit("distill", "init", "out/bert", "out/student", "--layers", "1", "--quiet")
        _ckptkit("distill", "init", "out/electra/discriminator", "out/electra-student", "--layers", "0", "--quiet")
        _sentence_transformers_student(work)
    return work


def python_block(text: str) -> str:
    """The first ```python block of a card."""
    return re.search(r"```python\n(.*?)```", text, re.S).group(1)


def run_snippet(code: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README.md:usage", "exec"), {"__name__": "__snippet__"})
    return out.getvalue().strip()


@pytest.mark.parametrize("kind", sorted(CARDS))
def test_usage_snippet_of_every_card_kind_runs(work, kind, monkeypatch):
    monkeypatch.chdir(work)
    folder = work / CARDS[kind]
    code = python_block((folder / "README.md").read_text(encoding="utf-8"))
    assert f'"{CARDS[kind]}"' in code  # the folder, relative to where the card was written
    printed = run_snippet(code)
    assert printed, kind
    if kind == "bigbird-pegasus":
        assert "AutoModelForSeq2SeqLM" in code and "model.generate(" in code
    if kind == "sentence-transformers student":
        assert printed.startswith("(2, 16)")
        assert "library_name: sentence-transformers" in (folder / "README.md").read_text()


def test_snippet_output_is_what_the_model_computes(work, monkeypatch):
    """The BERT card's fill-mask line prints the tokens the model ranks first, checked against torch directly."""
    import torch
    from transformers import AutoModelForPreTraining, AutoTokenizer

    monkeypatch.chdir(work)
    code = python_block((work / "out" / "bert" / "README.md").read_text())
    printed = run_snippet(code)
    tokenizer = AutoTokenizer.from_pretrained("out/bert")
    model = AutoModelForPreTraining.from_pretrained("out/bert").eval()
    inputs = tokenizer("Paris is the capital of France.", return_tensors="pt")
    with torch.no_grad():
        outputs = model(**inputs)
    shapes = {name: tuple(value.shape) for name, value in outputs.items()}
    assert printed == str(shapes)
    assert np.isfinite(outputs.prediction_logits.numpy()).all()

