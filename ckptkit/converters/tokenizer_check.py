"""The tokenizer part of ``verify``: the output must tokenize exactly as its source does.

Each side's tokenizer is made from what that side carries: a hub folder's is what ``AutoTokenizer``
loads (else one built from its ``vocab.txt`` / SentencePiece model), a TF checkpoint's is built from the
``vocab.txt`` / SentencePiece model beside it, found and built as ``convert`` finds and builds them
(:mod:`ckptkit.tokenizers.companions`). Both encode :data:`TEXTS` (English, Korean, rare characters,
``[MASK]``, pairs); any difference in ids, or a tokenizer the output lost, fails the verification.

Example:
    >>> check = compare_sides(None, None, expected=True)
    >>> check["ok"], check["message"]
    (True, 'none on either side')
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from ckptkit.converters.source import Source
from ckptkit.converters.tensors import Checkpoint
from ckptkit.tokenizers.companions import hub_spm, plan_tokenizer
from ckptkit.tokenizers.files import tokenizer_files

__all__ = ["TEXTS", "TokenizerSide", "tokenizer_side", "compare_sides", "check_tokenizers", "merge_checks",
           "made_without_tokenizer", "declared_lower_case", "hub_folder"]

# A text, or a (first, second) pair encoded as one sequence pair.
TEXTS: tuple[str | tuple[str, str], ...] = (
    "한국어 모델을 공유합니다.",
    "The quick brown fox jumps over the lazy dog.",
    "Hello, World! It's 3:45pm -- isn't it? UPPER lower MiXeD 12345 3.14",
    "오늘 날씨가 정말 좋네요! 산책하러 갈까요?",
    "서울특별시 강남구 테헤란로 123",
    "ㅋㅋㅋ 진짜 웃기다 ㅠㅠ",
    "KoBERT는 SKT에서 공개한 BERT 모델입니다.",
    "The capital of France is [MASK].",
    "서울은 한국의 [MASK]입니다.",
    "naïve café – “quotes” ½ × ÷ ñ ü ß Ω 😀 中文 日本語 ﬁ ①",
    "  leading,   repeated\tand trailing   spaces  ",
    "",
    ("Is this the first sentence?", "Yes, and this is the second one."),
    ("한국어 문장입니다.", "두 번째 [MASK] 문장입니다."),
)
# Files that hold vocabulary: without one of them a folder has no tokenizer (a lone
# special_tokens_map.json or tokenizer_config.json cannot tokenize anything).
_CONFIG_ONLY = frozenset({"tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
                          "chat_template.jinja", "chat_template.json"})


@dataclass
class TokenizerSide:
    """One side's tokenizer: ``encode(text, pair) -> ids`` and ``token(id) -> str``, or why it has none."""

    name: str
    encode: Callable[[str, str | None], list[int]] | None = None
    token: Callable[[int], str] | None = None
    error: str | None = None  # the side carries tokenizer files but no tokenizer could be made of them


def _one_line(error: Exception) -> str:
    return " ".join(str(error).split())[:300] or type(error).__name__


def _hf_side(tok: Any, name: str) -> TokenizerSide:
    def encode(text: str, pair: str | None) -> list[int]:
        return list(tok(text, text_pair=pair, add_special_tokens=True)["input_ids"])

    return TokenizerSide(name, encode, lambda i: str(tok.convert_ids_to_tokens(i)))


def _built_side(built: Any, name: str) -> TokenizerSide:
    tok = built.tokenizer

    def encode(text: str, pair: str | None) -> list[int]:
        return list(tok.encode(text, pair, add_special_tokens=True).ids)

    return TokenizerSide(name, encode, lambda i: str(tok.id_to_token(i)))


def _from_files(vocab: str | None, spm: str | None, *, prefer_spm: bool, do_lower_case: bool | None,
                keep_accents: bool | None = None, kind: str | None = None) -> TokenizerSide | None:
    """The tokenizer ``convert`` builds from these files (None without files)."""
    if vocab is None and spm is None:
        return None
    used = " + ".join(os.path.basename(p) for p in (vocab, spm) if p)
    step = plan_tokenizer(vocab=vocab, spm=spm, prefer_spm=prefer_spm, do_lower_case=do_lower_case,
                          keep_accents=keep_accents, kind=kind)
    if step.built is None:
        return TokenizerSide(used, error=step.warnings[0] if step.warnings else "cannot be built")
    return _built_side(step.built, f"{step.built.kind} from {used}")


def _auto_tokenizer(folder: str) -> TokenizerSide:
    from transformers import AutoTokenizer
    from transformers.utils import logging

    logging.set_verbosity_error()
    tok = AutoTokenizer.from_pretrained(folder)
    declared = _tokenizer_config(folder).get("tokenizer_class")
    return _hf_side(tok, f"{declared if isinstance(declared, str) else type(tok).__name__} ({len(tok)} tokens)")


def _tokenizer_json(folder: str) -> TokenizerSide | None:
    """The folder's ``tokenizer.json`` as the ``tokenizers`` library loads it (what a fast tokenizer wraps),
    without transformers; None when the folder has none."""
    path = os.path.join(folder, "tokenizer.json")
    if not os.path.isfile(path):
        return None
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(path)

    def encode(text: str, pair: str | None) -> list[int]:
        return list(tok.encode(text, pair, add_special_tokens=True).ids)

    return TokenizerSide(f"tokenizer.json ({tok.get_vocab_size()} tokens)", encode, lambda i: str(tok.id_to_token(i)))


def _tokenizer_config(folder: str) -> dict:
    try:
        with open(os.path.join(folder, "tokenizer_config.json"), encoding="utf-8") as f:
            config = json.load(f)
    except (OSError, ValueError):
        return {}
    return config if isinstance(config, dict) else {}


def declared_lower_case(folder: str | None, key: str = "do_lower_case") -> bool | None:
    """``do_lower_case`` (or another flag ``key``, e.g. ALBERT's ``keep_accents``) as a hub folder's
    ``tokenizer_config.json`` states it (None: not stated)."""
    value = _tokenizer_config(folder).get(key) if folder else None
    return value if isinstance(value, bool) else None


def _hub_folder_side(folder: str, *, prefer_spm: bool, auto: bool = True) -> TokenizerSide | None:
    """What ``AutoTokenizer`` loads from ``folder`` (``auto``; else its tokenizer.json through ``tokenizers``,
    without importing transformers), else the tokenizer of its vocab files."""
    if not set(tokenizer_files(folder)) - _CONFIG_ONLY:
        return None
    try:
        side = _auto_tokenizer(folder) if auto else _tokenizer_json(folder)
        if side is None:
            raise FileNotFoundError(f"no tokenizer.json in {folder}")
        return side
    except Exception as e:  # noqa: BLE001 - e.g. a tokenizer_class transformers does not know (KoBertTokenizer)
        vocab = os.path.join(folder, "vocab.txt")
        side = _from_files(vocab if os.path.isfile(vocab) else None, hub_spm(folder), prefer_spm=prefer_spm,
                           do_lower_case=declared_lower_case(folder),
                           keep_accents=declared_lower_case(folder, "keep_accents"))
        return side or TokenizerSide("AutoTokenizer", error=_one_line(e))


def hub_folder(checkpoint: Checkpoint) -> str | None:
    """The folder whose tokenizer files belong to ``checkpoint`` (None for a bare weights file)."""
    return checkpoint.extras.get("folder")


def tokenizer_side(path: str, checkpoint: Checkpoint, *, spm_names: tuple[str, ...] = (),
                   do_lower_case: bool | None = None, vocab: str | None = None, spm: str | None = None,
                   keep_accents: bool | None = None, kind: str | None = None, auto: bool = True
                   ) -> TokenizerSide | None:
    """The tokenizer one side of a conversion carries (None: it carries none).

    Args:
        path: the path the user gave for this side.
        checkpoint: that path opened.
        spm_names: the family's SentencePiece model names (BigBird: ``vocab.model`` ...); they also
            mean the family prefers SentencePiece when both kinds of file are there.
        do_lower_case: for a TF checkpoint (which does not record it): the other side's setting.
        vocab, spm: files the conversion was told to use; they replace what the side carries.
        keep_accents: like ``do_lower_case``, for ALBERT's SentencePiece tokenizer.
        kind: the family's tokenizer kind for a SentencePiece model (``Family.tokenizer_kind``).
        auto: a hub folder's tokenizer is what transformers' ``AutoTokenizer`` loads; False: its
            tokenizer.json through the ``tokenizers`` library (verify's torch-free engine).
    """
    prefer_spm = bool(spm_names)
    if vocab or spm:
        return _from_files(vocab, spm, prefer_spm=prefer_spm, do_lower_case=do_lower_case, keep_accents=keep_accents,
                           kind=kind)
    if checkpoint.format == "tf":
        companions = Source(location=path, path=path, _checkpoint=checkpoint)  # the files beside it, found once
        return _from_files(companions.vocab_file(), companions.spm_file(names=spm_names),
                           prefer_spm=prefer_spm, do_lower_case=do_lower_case, keep_accents=keep_accents, kind=kind)
    folder = hub_folder(checkpoint)
    return _hub_folder_side(folder, prefer_spm=prefer_spm, auto=auto) if folder else None


def made_without_tokenizer(folder: str | None) -> bool:
    """Whether ``folder``'s ``ckptkit.json`` says it was written with ``--no-tokenizer``.

    Example:
        >>> made_without_tokenizer("/nonexistent")
        False
    """
    try:
        with open(os.path.join(folder or "", "ckptkit.json"), encoding="utf-8") as f:
            return json.load(f).get("no_tokenizer") is True
    except (OSError, ValueError, AttributeError):
        return False


def _show(text: str | tuple[str, str], limit: int = 40) -> str:
    shown = " / ".join(text) if isinstance(text, tuple) else text
    return repr(shown if len(shown) <= limit else shown[:limit] + "...")


def _first_difference(source: TokenizerSide, output: TokenizerSide, expected: list[int], actual: list[int]) -> str:
    at = next((i for i, (a, b) in enumerate(zip(expected, actual)) if a != b), min(len(expected), len(actual)))
    lengths = f"{len(expected)} ids vs {len(actual)}"
    if at == min(len(expected), len(actual)):
        return f"{lengths}, equal up to position {at}"
    return (f"at position {at} the source has {expected[at]} {source.token(expected[at])!r} and the output "
            f"{actual[at]} {output.token(actual[at])!r} ({lengths})")


def _ids(side: TokenizerSide, text: str | tuple[str, str]) -> list[int]:
    first, second = text if isinstance(text, tuple) else (text, None)
    return side.encode(first, second)


def _compare_ids(source: TokenizerSide, output: TokenizerSide) -> dict:
    names = {"source": source.name, "output": output.name, "texts": len(TEXTS)}
    for number, text in enumerate(TEXTS, 1):
        try:
            expected, actual = _ids(source, text), _ids(output, text)
        except Exception as e:  # noqa: BLE001 - a tokenizer that fails on a text differs from one that does not
            return {**names, "ok": False, "status": "different",
                    "message": f"text {number} {_show(text)} cannot be tokenized: {_one_line(e)}"}
        if expected != actual:
            return {**names, "ok": False, "status": "different",
                    "message": f"ids differ on text {number} {_show(text)}: "
                               f"{_first_difference(source, output, expected, actual)}"}
    return {**names, "ok": True, "status": "identical",
            "message": f"identical ids on {len(TEXTS)} texts ({source.name} vs {output.name})"}


def compare_sides(source: TokenizerSide | None, output: TokenizerSide | None, *, expected: bool) -> dict:
    """The tokenizer row of a verify report: ``ok``, ``status``, ``message`` (one line) and the names.

    Args:
        source, output: each side's tokenizer (None: that side has none).
        expected: False when the output was made with ``--no-tokenizer`` (it may lack one).
    """
    names = {"source": source and source.name, "output": output and output.name, "texts": 0}
    if source is None or source.error:
        status, message = (("none", "none on either side") if source is None and output is None else
                           ("not compared", "not compared: the source has none") if source is None else
                           ("not compared", f"not compared: the source's cannot be built ({source.error})"))
        return {**names, "ok": True, "status": status, "message": message}
    if output is None:
        if not expected:
            return {**names, "ok": True, "status": "not compared",
                    "message": "not compared: the output was made with --no-tokenizer"}
        return {**names, "ok": False, "status": "lost",
                "message": f"lost: the source has one ({source.name}) but the output has none "
                           "(convert again; pass --no-tokenizer only to leave it out on purpose)"}
    if output.error:
        return {**names, "ok": False, "status": "broken",
                "message": f"the output's cannot be loaded: {output.error}"}
    return _compare_ids(source, output)


def check_tokenizers(source_path: str, src: Checkpoint, output_path: str, dst: Checkpoint, *,
                     spm_names: tuple[str, ...] = (), expected: bool = True, vocab: str | None = None,
                     spm: str | None = None, kind: str | None = None, auto: bool = True) -> dict:
    """Compare the tokenizer ``dst`` carries with the one ``src`` carries (see :func:`compare_sides`).

    A TF side takes ``do_lower_case`` (and ``keep_accents``) from the hub side's ``tokenizer_config.json``
    (a TF checkpoint does not record them). ``vocab``/``spm``: files the conversion was told to use instead of the source's.
    """
    hub_sides = [hub_folder(c) for c in (src, dst) if c.format != "tf"]
    casing, accents = (next((declared_lower_case(f, key) for f in hub_sides), None)
                       for key in ("do_lower_case", "keep_accents"))
    expected = expected and not made_without_tokenizer(hub_folder(dst))
    source = tokenizer_side(source_path, src, spm_names=spm_names, do_lower_case=casing, vocab=vocab, spm=spm,
                            keep_accents=accents, kind=kind, auto=auto)
    output = tokenizer_side(output_path, dst, spm_names=spm_names, do_lower_case=casing, keep_accents=accents,
                            kind=kind, auto=auto)
    return compare_sides(source, output, expected=expected)


def merge_checks(checks: Mapping[str, dict]) -> dict:
    """One row for several parts (ELECTRA's discriminator/ and generator/): the first failing part's, else
    the first part's, each message prefixed with its part."""
    if not checks:
        return compare_sides(None, None, expected=True)
    name, first = next(((n, c) for n, c in checks.items() if not c["ok"]), next(iter(checks.items())))
    message = "; ".join(f"{n}: {c['message']}" for n, c in checks.items()) if first["ok"] else \
        f"{name}: {first['message']}"
    return {**first, "message": message, "parts": dict(checks)}
