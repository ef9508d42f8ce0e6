"""``README.md`` model cards built from ``ckptkit.json`` with huggingface_hub's ModelCard.

The card has YAML metadata (``library_name``, ``language``, ``license``, ``tags``,
``pipeline_tag``, ``base_model``) and generated sections: what the model is, the source
checkpoint, the command that made it, the verification result, the student's teacher, layers,
losses and eval table, and a usage snippet that runs as written. Everything below
:data:`MARKER` is the user's and survives every rewrite.

Example:
    >>> from ckptkit.hub import write_model_card
    >>> write_model_card("out/kobert", language="ko", license="apache-2.0")  # doctest: +SKIP
    PosixPath('out/kobert/README.md')
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

from ckptkit.errors import ConfigError
from ckptkit.hub.record import STUDENT_FILE, _atomic_write_text, read_record, update_record

__all__ = ["MARKER", "write_model_card", "render_model_card", "usage_snippet", "auto_class_for"]

CARD_FILE = "README.md"
MARKER = "<!-- ckptkit: your own sections below this line are kept -->"
GENERATED = "<!-- ckptkit: generated from ckptkit.json by `ckptkit card`; edit only below the marker at the end -->"
CKPTKIT_URL = "https://github.com/ckptkit/ckptkit"

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
    ("Model", "AutoModel"),
)

# Auto class -> lines that turn `outputs` into something readable (default: every output's shape).
SHOW_OUTPUTS: dict[str, str] = {
    "AutoModelForMaskedLM": ('mask = inputs["input_ids"][0] == tokenizer.mask_token_id\n'
                             "print(tokenizer.decode(outputs.logits[0, mask].argmax(-1)))"),
    "AutoModelForSequenceClassification": "print(outputs.logits.softmax(-1).tolist())",
    "AutoModelForTokenClassification": "print(outputs.logits.argmax(-1).tolist())",
    "AutoModelForQuestionAnswering": "print(outputs.start_logits.argmax().item(), outputs.end_logits.argmax().item())",
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

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "spiece.model", "sentencepiece.bpe.model")
# metadata keys ckptkit writes; any other key a user put in the YAML block is kept.
MANAGED_METADATA = {"library_name", "language", "license", "tags", "pipeline_tag", "base_model"}
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass(frozen=True)
class CardContext:
    """Everything a section needs: the record, the student description, config.json, options."""

    folder: Path
    record: dict[str, Any]
    student: dict[str, Any]
    config: dict[str, Any]
    model_id: str
    language: tuple[str, ...]

    @property
    def name(self) -> str:
        return self.model_id.rsplit("/", 1)[-1] if _HUB_ID.match(self.model_id) else self.folder.name


def auto_class_for(model_class: str) -> str:
    """The transformers Auto class that loads ``model_class``.

    Example:
        >>> auto_class_for("BertForPreTraining"), auto_class_for("ElectraModel")
        ('AutoModelForPreTraining', 'AutoModel')
    """
    return next((auto for suffix, auto in AUTO_CLASSES if model_class.endswith(suffix)), "AutoModel")


def usage_snippet(model_id: str, model_class: str, *, language: Iterable[str] = ()) -> str:
    """Python code that loads the model and tokenizer and runs one sentence through it.

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
    return "\n".join([
        "import torch",
        f"from transformers import {auto}, AutoTokenizer",
        "",
        f"model_id = {json.dumps(model_id, ensure_ascii=False)}",
        "tokenizer = AutoTokenizer.from_pretrained(model_id)",
        f"model = {auto}.from_pretrained(model_id).eval()",
        "",
        text_line,
        encode,
        "with torch.no_grad():",
        "    outputs = model(**inputs)",
        SHOW_OUTPUTS.get(auto, DEFAULT_SHOW),
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
    model, source, kind = ctx.record["model"], ctx.record["source"], ctx.record["kind"]
    what = ", ".join(filter(None, [f"{model['family']} family", _params(model.get("num_parameters"))]))
    step = f" (step {source['global_step']:,})" if source.get("global_step") is not None else ""
    fmt = FORMAT_NAMES.get(source["format"], source["format"])
    teacher = ctx.student.get("teacher") or source.get("base_model") or source["path"]
    layers = ctx.student.get("layers") or []
    intros = {
        "conversion": f"a {_code(model['model_class'])} ({what}) converted from a {fmt} checkpoint{step} "
                      f"with [ckptkit]({CKPTKIT_URL})"
                      + (", and checked against it." if (ctx.record.get("verification") or {}).get("passed")
                         else "."),
        "student": f"a {len(layers) or '?'}-layer student ({_code(model['model_class'])}, {what}) of "
                   f"{_code(teacher)}, initialised from teacher layers {_cell(layers)} (0-based) with "
                   f"[ckptkit]({CKPTKIT_URL}). It has not been distilled yet.",
        "distilled": f"a {len(layers) or '?'}-layer {_code(model['model_class'])} ({what}) distilled from "
                     f"{_code(teacher)} with [ckptkit]({CKPTKIT_URL}).",
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
        "Hub id": _code(source["base_model"]) if source.get("base_model") else None,
    }
    return "## Source checkpoint\n\n" + _key_value_table(rows)


def _provenance(ctx: CardContext) -> str:
    rec = ctx.record
    return ("## How it was made\n\n```bash\n" + rec["command"] + "\n```\n\n"
            f"Made with ckptkit {rec['ckptkit_version']} on {rec['created']}. "
            "The full record is in `ckptkit.json` next to the weights.")


def _verification(ctx: CardContext) -> str | None:
    result = ctx.record.get("verification")
    if not result:
        if ctx.record["kind"] != "conversion":
            return None
        return ("## Verification\n\nThis folder was not verified. Run `ckptkit verify SOURCE FOLDER` "
                "to compare it with its source.")
    status = "**Passed**" if result["passed"] else "**Failed**"
    rows = {
        "Result": status,
        "Max abs difference": f"{result['max_abs_diff']:.3g}" if result.get("max_abs_diff") is not None else None,
        "Tolerance": result.get("tolerance"),
        "Compared": result.get("compared"),
        "Tensors checked": result.get("tensors_checked"),
    }
    return "## Verification\n\nThe converted model was run against its source on the same inputs.\n\n" + \
        _key_value_table(rows)


def _student(ctx: CardContext) -> str | None:
    if not ctx.student:
        return None
    layers = ctx.student.get("layers") or []
    taken = f"{_cell(layers)} → student layers {_cell(list(range(len(layers))))}" if layers else None
    rows = {"Teacher": _code(ctx.student["teacher"]) if ctx.student.get("teacher") else None,
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
    snippet = usage_snippet(ctx.model_id, ctx.record["model"]["model_class"], language=ctx.language)
    note = ""
    if not any((ctx.folder / name).is_file() for name in TOKENIZER_FILES):
        note = ("\n\nThis folder has no tokenizer files yet: copy the tokenizer of the source model into it "
                "before running the snippet.")
    return f"## Usage\n\n```python\n{snippet}\n```{note}"


SECTIONS: tuple[Callable[[CardContext], str | None], ...] = (
    _intro, _source, _provenance, _verification, _student, _training, _usage,
)


# ----------------------------------------------------------------------------- assembling
def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ConfigError(f"not valid JSON ({e})", path=path, hint="fix or rewrite the file") from e
    if not isinstance(data, dict):
        raise ConfigError("expected a JSON object", path=path)
    return data


def _as_list(value: str | Iterable[str] | None) -> list[str] | None:
    if value is None:
        return None
    return [value] if isinstance(value, str) else list(value)


def _split_existing(path: Path) -> tuple[dict[str, Any], str]:
    """(user metadata to keep, user text to keep) from an existing README.md."""
    if not path.is_file():
        return {}, ""
    from huggingface_hub import ModelCard

    text = path.read_text(encoding="utf-8")
    try:
        card = ModelCard(text, ignore_metadata_errors=True)
        metadata, body = card.data.to_dict(), card.text
    except Exception:  # a YAML block that does not parse: keep the whole text, drop no words
        metadata, body = {}, text
    keep = {k: v for k, v in metadata.items() if k not in MANAGED_METADATA}
    if MARKER in text:
        return keep, text.split(MARKER, 1)[1].strip("\n")
    if GENERATED in text:
        return keep, ""
    return keep, body.strip("\n")  # a hand-written README: move it below the marker, lose nothing


def _base_model(explicit: str | None, record: dict[str, Any], student: dict[str, Any]) -> str | None:
    candidates = [explicit, (record.get("card") or {}).get("base_model"), record["source"].get("base_model"),
                  student.get("teacher")]
    return next((c for c in candidates if c and _HUB_ID.match(c) and not os.path.exists(c)), None)


def render_model_card(folder: str | os.PathLike, *, language: str | Iterable[str] | None = None,
                      license: str | None = None, tags: Iterable[str] | None = None,
                      base_model: str | None = None, repo_id: str | None = None) -> str:
    """The README.md text for ``folder`` (options override those remembered in ckptkit.json).

    Example:
        >>> text = render_model_card("out/kobert", language="ko")  # doctest: +SKIP
        >>> text.startswith("---")  # doctest: +SKIP
        True
    """
    from huggingface_hub.repocard_data import ModelCardData  # not ModelCard: that imports the whole Hub client

    folder = Path(folder)
    record = read_record(folder)
    remembered = record.get("card") or {}
    student = {**(record.get("student") or {}), **_read_json(folder / STUDENT_FILE)}
    config = _read_json(folder / "config.json")
    langs = _as_list(language) if language is not None else remembered.get("language")
    user_tags = list(tags) if tags is not None else (remembered.get("tags") or [])
    model = record["model"]
    all_tags = list(dict.fromkeys(["ckptkit", model["family"], *KIND_TAGS[record["kind"]], *user_tags]))
    model_id = repo_id or remembered.get("repo_id") or folder.resolve().as_posix()
    ctx = CardContext(folder=folder, record=record, student=student, config=config, model_id=model_id,
                      language=tuple(langs or ()))

    kept_metadata, user_text = _split_existing(folder / CARD_FILE)
    data = ModelCardData(
        library_name="transformers",
        language=langs or None,
        license=license if license is not None else remembered.get("license"),
        tags=all_tags,
        pipeline_tag=model.get("pipeline_tag") or config.get("pipeline_tag"),
        base_model=_base_model(base_model, record, student),
        **kept_metadata,
    )
    body = "\n\n".join(s for s in (section(ctx) for section in SECTIONS) if s)
    tail = f"\n\n{user_text}\n" if user_text else "\n"
    return f"---\n{data.to_yaml()}\n---\n{GENERATED}\n\n{body}\n\n{MARKER}{tail}"


def write_model_card(folder: str | os.PathLike, *, language: str | Iterable[str] | None = None,
                     license: str | None = None, tags: Iterable[str] | None = None,
                     base_model: str | None = None, repo_id: str | None = None) -> Path:
    """(Re)write ``FOLDER/README.md`` from ckptkit.json; returns its path.

    Options given here are remembered in ckptkit.json's ``card`` section, so a later
    ``ckptkit card FOLDER`` without options writes the same card. Text below :data:`MARKER`
    (and any YAML key ckptkit does not manage) is kept; a hand-written README without the
    marker is moved below it.

    Args:
        folder: a hub folder written by ckptkit (has ckptkit.json).
        language: ISO 639-1 code(s), e.g. ``"ko"``.
        license: a Hub license id, e.g. ``"apache-2.0"``.
        tags: extra tags (``ckptkit`` and the family are always added).
        base_model: the Hub id this model derives from (default: from the record).
        repo_id: the Hub id the folder is published as (used in the usage snippet).

    Example:
        >>> write_model_card("out/kobert", language="ko", license="apache-2.0")  # doctest: +SKIP
        PosixPath('out/kobert/README.md')
    """
    folder = Path(folder)
    remembered = {key: value for key, value in {
        "language": _as_list(language), "license": license,
        "tags": list(tags) if tags is not None else None,
        "base_model": base_model, "repo_id": repo_id,
    }.items() if value is not None}
    if remembered:
        update_record(folder, "card", remembered)
    text = render_model_card(folder)
    path = folder / CARD_FILE
    _atomic_write_text(path, text)
    return path
