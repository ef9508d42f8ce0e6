"""The generated sections of a model card, each a small function of a :class:`CardContext`.

:data:`SECTIONS` lists them in order; a section returns Markdown or ``None`` (left out).
:func:`usage_snippet` is the Python code the card shows, and it runs as written.

Example:
    >>> auto_class_for("BertForMaskedLM")
    'AutoModelForMaskedLM'
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

from ckptkit.output.card_metadata import is_hub_id
from ckptkit.output.names import RECORD_FILE
from ckptkit.tokenizers.files import tokenizer_files

__all__ = ["CardContext", "SECTIONS", "usage_snippet", "auto_class_for", "is_hub_id", "CKPTKIT_NAME"]

# ckptkit is named, not linked: a card links only to addresses that exist (tests/test_card_links.py)
CKPTKIT_NAME = "ckptkit"

# model_class suffix -> transformers Auto class; the first suffix that matches wins.
AUTO_CLASSES: tuple[tuple[str, str], ...] = (
    ("ForPreTraining", "AutoModelForPreTraining"),
    ("ForMaskedLM", "AutoModelForMaskedLM"),
    ("ForSequenceClassification", "AutoModelForSequenceClassification"),
    ("ForTokenClassification", "AutoModelForTokenClassification"),
    ("ForQuestionAnswering", "AutoModelForQuestionAnswering"),
    ("ForMultipleChoice", "AutoModelForMultipleChoice"),
    ("ForNextSentencePrediction", "AutoModelForNextSentencePrediction"),
    ("ForCausalLM", "AutoModelForCausalLM"),
    ("ForConditionalGeneration", "AutoModelForSeq2SeqLM"),
    ("Model", "AutoModel"),
)

# Auto class -> lines that turn `outputs` into something readable (default: every output's shape).
SHOW_OUTPUTS: dict[str, str] = {
    "AutoModelForMaskedLM": ('mask = inputs["input_ids"][0] == tokenizer.mask_token_id\n'
                             "print(tokenizer.decode(outputs.logits[0, mask].argmax(-1)))"),
    "AutoModelForSequenceClassification": "print(outputs.logits.softmax(-1).tolist())",
    "AutoModelForTokenClassification": "print(outputs.logits.argmax(-1).tolist())",
    "AutoModelForQuestionAnswering": "print(outputs.start_logits.argmax().item(), outputs.end_logits.argmax().item())",
    "AutoModelForSeq2SeqLM": ("summary = model.generate(**inputs, max_new_tokens=16)\n"
                              "print(tokenizer.decode(summary[0], skip_special_tokens=True))"),
}
DEFAULT_SHOW = "print({name: tuple(value.shape) for name, value in outputs.items()})"

# language -> (plain sentence, sentence with {mask}); English when the language is not listed.
SAMPLE_TEXT: dict[str, tuple[str, str]] = {
    "en": ("Paris is the capital of France.", "Paris is the {mask} of France."),
    "ko": ("서울은 대한민국의 수도이다.", "서울은 대한민국의 {mask}이다."),
    "ja": ("東京は日本の首都です。", "東京は日本の{mask}です。"),
    "zh": ("北京是中国的首都。", "北京是中国的{mask}。"),
    "de": ("Berlin ist die Hauptstadt von Deutschland.", "Berlin ist die {mask} von Deutschland."),
    "fr": ("Paris est la capitale de la France.", "Paris est la {mask} de la France."),
}

FORMAT_NAMES: dict[str, str] = {
    "tf": "TensorFlow v1", "tf1": "TensorFlow v1", "tf2": "TensorFlow 2", "safetensors": "safetensors",
    "torch": "PyTorch `.bin`", "pytorch": "PyTorch `.bin`", "hub": "Hugging Face hub folder",
}

KIND_TAGS: dict[str, tuple[str, ...]] = {
    "conversion": (),
    "student": ("distillation", "student"),
    "distilled": ("distillation",),
}

@dataclass(frozen=True)
class CardContext:
    """Everything a section needs: the record, the student description, config.json, options."""

    folder: Path
    record: dict[str, Any]
    student: dict[str, Any]
    config: dict[str, Any]
    model_id: str
    language: tuple[str, ...]
    base_model: str | None = None  # the Hub id of the source or teacher (ckptkit.output.card_metadata.lineage)
    subfolder: str | None = None  # the part's folder inside a multi-part repo

    @property
    def name(self) -> str:
        return self.model_id.rsplit("/", 1)[-1] if is_hub_id(self.model_id) else self.folder.name


def auto_class_for(model_class: str) -> str:
    """The transformers Auto class that loads ``model_class``.

    Example:
        >>> auto_class_for("BertForPreTraining"), auto_class_for("ElectraModel")
        ('AutoModelForPreTraining', 'AutoModel')
    """
    return next((auto for suffix, auto in AUTO_CLASSES if model_class.endswith(suffix)), "AutoModel")


def usage_snippet(model_id: str, model_class: str, *, language: Iterable[str] = (), subfolder: str | None = None) -> str:
    """Python code that loads the model and tokenizer and runs one sentence through it.

    ``subfolder`` names the part's folder in a repo that holds several models (ELECTRA's
    discriminator and generator): ``from_pretrained(model_id, subfolder=...)``.

    Example:
        >>> print(usage_snippet("me/tiny", "BertModel").splitlines()[1])
        from transformers import AutoModel, AutoTokenizer
    """
    auto = auto_class_for(model_class)
    lang = next((code for code in language if code in SAMPLE_TEXT), "en")
    plain, masked = SAMPLE_TEXT[lang]
    if auto == "AutoModelForMaskedLM":
        text_line = "text = f" + json.dumps(masked, ensure_ascii=False).replace("{mask}", "{tokenizer.mask_token}")
    else:
        text_line = f"text = {json.dumps(plain, ensure_ascii=False)}"
    encode = 'inputs = tokenizer(text, return_tensors="pt")'
    if auto == "AutoModelForMultipleChoice":
        encode += "\ninputs = {name: value.unsqueeze(1) for name, value in inputs.items()}  # one choice"
    where = "model_id" + (f", subfolder={json.dumps(subfolder)}" if subfolder else "")
    return "\n".join([
        "import torch",
        f"from transformers import {auto}, AutoTokenizer",
        "",
        f"model_id = {json.dumps(model_id, ensure_ascii=False)}",
        f"tokenizer = AutoTokenizer.from_pretrained({where})",
        f"model = {auto}.from_pretrained({where}).eval()",
        "",
        text_line,
        encode,
        "with torch.no_grad():",
        "    outputs = model(**inputs)",
        SHOW_OUTPUTS.get(auto, DEFAULT_SHOW),
    ])


SENTENCE_TRANSFORMERS_FILE = "modules.json"  # a sentence-transformers folder (Transformer, Pooling, Normalize ...)


def is_sentence_transformers(folder: Path) -> bool:
    """Whether ``folder`` is a sentence-transformers model (it has ``modules.json``)."""
    return (Path(folder) / SENTENCE_TRANSFORMERS_FILE).is_file()


def sentence_snippet(model_id: str, *, language: Iterable[str] = ()) -> str:
    """Python code that loads a sentence-transformers folder and embeds two sentences.

    Example:
        >>> print(sentence_snippet("me/tiny-st").splitlines()[0])
        from sentence_transformers import SentenceTransformer
    """
    lang = next((code for code in language if code in SAMPLE_TEXT), "en")
    plain, _ = SAMPLE_TEXT[lang]
    return "\n".join([
        "from sentence_transformers import SentenceTransformer",
        "",
        f"model = SentenceTransformer({json.dumps(model_id, ensure_ascii=False)})",
        f"embeddings = model.encode([{json.dumps(plain, ensure_ascii=False)}, {json.dumps(SAMPLE_TEXT['en'][0])}])",
        "print(embeddings.shape, model.similarity(embeddings[:1], embeddings[1:]).item())",
    ])


# ----------------------------------------------------------------------------- small formatters
def _params(n: int | None) -> str | None:
    if not n:
        return None
    for scale, unit in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if n >= scale:
            return f"{n / scale:.1f}{unit} parameters"
    return f"{n} parameters"


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return ", ".join(_cell(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k}={_cell(v)}" for k, v in value.items())
    return str(value).replace("|", "\\|").replace("\n", " ")


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _key_value_table(items: dict[str, Any]) -> str:
    return _table(["", ""], [[f"**{k}**", v] for k, v in items.items() if v not in (None, "", [], {})])


def _data_table(data: Any, *, first: str, value: str = "value") -> str:
    """A table from a dict of scalars, a dict of dicts (one row each) or a list of dicts."""
    if isinstance(data, list) and all(isinstance(r, dict) for r in data):
        keys = list(dict.fromkeys(k for row in data for k in row))
        return _table(keys, [[row.get(k, "") for k in keys] for row in data])
    if isinstance(data, dict) and data and all(isinstance(v, dict) for v in data.values()):
        keys = list(dict.fromkeys(k for row in data.values() for k in row))
        return _table([first, *keys], [[name, *(row.get(k, "") for k in keys)] for name, row in data.items()])
    if isinstance(data, dict):
        return _table([first, value], [[k, v] for k, v in data.items()])
    if isinstance(data, list):
        return "\n".join(f"- {_cell(v)}" for v in data)
    return _cell(data)


def _code(value: Any) -> str:
    return f"`{value}`"


# ----------------------------------------------------------------------------- sections
def _intro(ctx: CardContext) -> str:
    model, source = ctx.record["model"], ctx.record["source"]
    what = ", ".join(filter(None, [f"{model['family']} family", _params(model.get("num_parameters"))]))
    step = f" (step {source['global_step']:,})" if source.get("global_step") is not None else ""
    fmt = FORMAT_NAMES.get(source["format"], source["format"])
    teacher = ctx.base_model or ctx.student.get("teacher") or source.get("base_model") or source["path"]
    layers, stacks = ctx.student.get("layers") or [], ctx.student.get("stacks")  # stacks: an encoder-decoder's
    size = "+".join(str(len(v)) for v in stacks.values()) if stacks else (len(layers) or "?")
    taken = "; ".join(f"{name} {_cell(v)}" for name, v in stacks.items()) if stacks else _cell(layers)
    intros = {
        "conversion": f"a {_code(model['model_class'])} ({what}) converted from a {fmt} checkpoint{step} "
                      f"with {CKPTKIT_NAME}"
                      + (", and checked against it (see Verification)." if _verified(ctx) else "."),
        "student": f"a {size}-layer student ({_code(model['model_class'])}, {what}) of "
                   f"{_code(teacher)}, initialised from teacher layers {taken} (0-based) with "
                   f"{CKPTKIT_NAME}. It has not been distilled yet.",
        "distilled": f"a {size}-layer {_code(model['model_class'])} ({what}) distilled from "
                     f"{_code(teacher)} with {CKPTKIT_NAME}.",
    }
    return (f"# {ctx.name}\n\n**{ctx.name}** is {intros[ctx.record['kind']]} "
            "It loads with plain `transformers`, without `trust_remote_code`.")


def _source(ctx: CardContext) -> str:
    source = ctx.record["source"]
    rows = {
        "Path": _code(source["path"]),
        "Format": FORMAT_NAMES.get(source["format"], source["format"]),
        "Family": source["family"],
        "global_step": source.get("global_step"),
        "Hub id": _code(ctx.base_model) if ctx.base_model and ctx.record["kind"] == "conversion" else None,
    }
    return "## Source checkpoint\n\n" + _key_value_table(rows)


def _provenance(ctx: CardContext) -> str:
    rec = ctx.record
    return ("## How it was made\n\n```bash\n" + rec["command"] + "\n```\n\n"
            f"Made with ckptkit {rec['ckptkit_version']} on {rec['created']}. "
            f"The full record is in `{RECORD_FILE}` next to the weights.")


def _student(ctx: CardContext) -> str | None:
    if not ctx.student:
        return None
    by_stack = ctx.student.get("stacks") or {"": ctx.student.get("layers") or []}  # an encoder-decoder: per stack
    taken = "; ".join(f"{name + ': ' if name else ''}{_cell(v)} → student {name + ' ' if name else ''}layers "
                      f"{_cell(list(range(len(v))))}" for name, v in by_stack.items() if v) or None
    rows = {"Teacher": _code(ctx.student["teacher"]) if ctx.student.get("teacher") else None,
            "Teacher on the Hub": _code(ctx.base_model) if ctx.base_model else None,
            "Teacher layers taken (0-based)": taken,
            "Architecture": ctx.student.get("arch")}
    return "## Student\n\n" + _key_value_table(rows)


def _training(ctx: CardContext) -> str | None:
    training = ctx.student.get("training") or {}
    if not training:
        return None
    parts = ["## Distillation"]
    other = {k: v for k, v in training.items() if k not in ("losses", "eval")}
    if other:
        parts.append(_key_value_table(other))
    if training.get("losses"):
        parts.append("### Losses\n\n" + _data_table(training["losses"], first="loss", value="weight"))
    if training.get("eval"):
        parts.append("### Evaluation\n\n" + _data_table(training["eval"], first="model"))
    return "\n\n".join(parts)


def _usage(ctx: CardContext) -> str:
    if is_sentence_transformers(ctx.folder):
        snippet = sentence_snippet(ctx.model_id, language=ctx.language)
    else:
        snippet = usage_snippet(ctx.model_id, ctx.record["model"]["model_class"], language=ctx.language,
                                subfolder=ctx.subfolder)
    note = ""
    if not is_hub_id(ctx.model_id):
        note = ("\n\n`model_id` is this folder, relative to where the card was written; `ckptkit upload` "
                "rewrites it to the Hub id.")
    if not tokenizer_files(ctx.folder):
        note += ("\n\nThis folder has no tokenizer files yet: copy the tokenizer of the source model into it "
                "before running the snippet.")
    return f"## Usage\n\n```python\n{snippet}\n```{note}"


def _verified(ctx: CardContext) -> bool:
    from ckptkit.output.card_metadata import measured_results

    runs = [r for r in measured_results(ctx.record) if r["kind"] == "verify"]
    return bool(runs) and (runs[-1].get("notes") or "").startswith("passed")


def _verification(ctx: CardContext) -> str | None:
    from ckptkit.output.card_results import verification_section

    return verification_section(ctx.record)


def _results(ctx: CardContext) -> str | None:
    from ckptkit.output.card_results import results_section

    return results_section(ctx.record)


SECTIONS: tuple[Callable[[CardContext], str | None], ...] = (
    _intro, _source, _provenance, _verification, _student, _training, _results, _usage,
)


