"""The tokenizer step of a conversion: find the vocab files beside a checkpoint, build the tokenizer
before anything is written, and never let a tokenizer problem stop the weights.

TF -> hub folder: :func:`find_spm` finds a SentencePiece model beside the checkpoint (also next to a
``vocab.txt``: KoBERT needs both), :func:`plan_tokenizer` builds and checks the fast tokenizer in memory
(a failure becomes a warning and no tokenizer file is written), :func:`write_planned_tokenizer` writes
it. Hub folder -> TF: :func:`hub_spm` finds the folder's SentencePiece model and
:func:`tf_tokenizer_copies` names the files the TF folder gets (``vocab.txt``, ``vocab.model``), names
that :func:`find_spm` finds on the way back.

Example:
    >>> step = plan_tokenizer(vocab=None, spm=None, prefer_spm=False)
    >>> step.built is None, step.warnings[0].startswith("no vocab.txt")
    (True, True)
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Iterable

from ckptkit.errors import CkptkitError
from ckptkit.tokenizers.resources import kobert_config

__all__ = ["TokenizerStep", "SPM_NAMES", "TF_SPM_NAME", "find_spm", "hub_spm", "plan_tokenizer",
           "write_planned_tokenizer", "tf_tokenizer_copies", "NO_VOCAB_WARNING"]

# SentencePiece model names looked up beside a checkpoint or in a hub folder, after the family's own.
SPM_NAMES = ("vocab.model", "spiece.model", kobert_config()["sp_model_filename"])
TF_SPM_NAME = "vocab.model"  # what a TF folder written by ckptkit calls its SentencePiece model
NO_VOCAB_WARNING = ("no vocab.txt / SentencePiece model found: no tokenizer files written "
                    "(pass --vocab or --spm)")


@dataclass
class TokenizerStep:
    """A tokenizer built and checked before the conversion writes anything (or why there is none)."""

    built: Any = None  # ckptkit.tokenizers.export.BuiltTokenizer
    warnings: list[str] = field(default_factory=list)

    @property
    def files(self) -> tuple[str, ...]:
        """The file names :func:`write_planned_tokenizer` will write (none without a tokenizer)."""
        return self.built.files if self.built is not None else ()


def _unique(names: Iterable[str | None]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(n for n in names if n))


def find_spm(folders: Iterable[str], *, names: Iterable[str | None] = ()) -> str | None:
    """The first SentencePiece model called ``names`` (then :data:`SPM_NAMES`) in ``folders``.

    Example:
        >>> find_spm(["/nonexistent"], names=["gpt2.model"]) is None
        True
    """
    candidates = _unique([*names, *SPM_NAMES])
    for folder in folders:
        for name in candidates:
            path = os.path.join(folder, name)
            if os.path.isfile(path):
                return path
    return None


def hub_spm(folder: str) -> str | None:
    """A hub folder's SentencePiece model: a known name, else its only ``*.model`` file.

    Example:
        >>> hub_spm("/nonexistent") is None
        True
    """
    known = find_spm([folder])
    if known or not os.path.isdir(folder):
        return known
    models = sorted(n for n in os.listdir(folder) if n.endswith(".model") and os.path.isfile(os.path.join(folder, n)))
    return os.path.join(folder, models[0]) if len(models) == 1 else None


def _describe(error: Exception) -> str:
    text = str(error) if isinstance(error, CkptkitError) else f"{type(error).__name__}: {error}"
    return " ".join(text.split())


def plan_tokenizer(*, vocab: str | None, spm: str | None, prefer_spm: bool, do_lower_case: bool | None = None,
                   vocab_size: int | None = None, enabled: bool = True, keep_accents: bool | None = None,
                   kind: str | None = None) -> TokenizerStep:
    """Build the tokenizer of ``vocab``/``spm`` in memory; every failure becomes a warning.

    Args:
        vocab: ``vocab.txt`` or None.
        spm: SentencePiece model or None.
        prefer_spm: the family tokenizes with SentencePiece (BigBird) when both files are there.
        do_lower_case: None = inferred from the vocab.
        vocab_size: the model's; a tokenizer of another size gets a warning.
        enabled: False for ``--no-tokenizer``: nothing is built and nothing said.
        keep_accents: ALBERT's SentencePiece tokenizer keeps accents (default: stripped, as the official code).
        kind: the family's tokenizer kind for a SentencePiece model (BigBird-Pegasus: ``pegasus``); None: chosen
            from the files.

    Returns:
        A :class:`TokenizerStep`: ``built`` is None when no tokenizer will be written, and the
        warnings say why (or which special tokens were substituted).
    """
    from ckptkit.tokenizers.export import build_tokenizer, choose_tokenizer

    if not enabled:
        return TokenizerStep()
    if vocab is None and spm is None:
        return TokenizerStep(warnings=[NO_VOCAB_WARNING])
    try:
        kind, vocab, spm, notes = ((kind, None, spm, []) if kind and spm
                                   else choose_tokenizer(vocab, spm, prefer_spm=prefer_spm))
        built = build_tokenizer(kind, vocab_file=vocab, spm_file=spm, do_lower_case=do_lower_case,
                                keep_accents=keep_accents)
    except ModuleNotFoundError as e:  # a core install: the tokenizer libraries come with the verify extra
        package = (e.name or "a tokenizer library").split(".")[0]
        return TokenizerStep(warnings=[f"no tokenizer written: the Python package {package!r} is not installed; "
                                       "the weights are converted (pip install 'ckptkit[verify]' and rerun, "
                                       "or pass --no-tokenizer)"])
    except Exception as e:  # noqa: BLE001 - any tokenizer failure leaves the weights alone
        return TokenizerStep(warnings=[f"no tokenizer written: {_describe(e)}; the weights are converted "
                                       "(fix the vocab file and rerun, or pass --no-tokenizer)"])
    warnings = [*notes, *built.notes]
    size = built.tokenizer.get_vocab_size()
    if vocab_size is not None and size != vocab_size:
        warnings.append(f"tokenizer has {size} tokens but the model's vocab_size is {vocab_size}")
    return TokenizerStep(built, warnings)


def write_planned_tokenizer(step: TokenizerStep, folder: str, *, model_max_length: int) -> dict | None:
    """Write the tokenizer of ``step`` into ``folder``; returns the summary for reports (None: none written).

    Example:
        >>> write_planned_tokenizer(TokenizerStep(), "/tmp", model_max_length=512) is None
        True
    """
    from ckptkit.tokenizers.export import write_built_tokenizer

    if step.built is None:
        return None
    info = write_built_tokenizer(folder, step.built, model_max_length=model_max_length)
    return {"kind": info.kind, "class": info.tokenizer_class, "vocab_size": info.vocab_size,
            "pad_token_id": info.pad_token_id, "do_lower_case": info.do_lower_case,
            "special_tokens": dict(step.built.specials), "files": list(info.files)}


def tf_tokenizer_copies(vocab: str | None, spm: str | None) -> dict[str, str]:
    """The tokenizer files a TF folder gets: ``vocab.txt`` and the SentencePiece model as ``vocab.model``.

    Example:
        >>> tf_tokenizer_copies("hub/vocab.txt", "hub/tokenizer_78b3253a26.model")
        {'vocab.txt': 'hub/vocab.txt', 'vocab.model': 'hub/tokenizer_78b3253a26.model'}
    """
    return {name: path for name, path in (("vocab.txt", vocab), (TF_SPM_NAME, spm)) if path}
