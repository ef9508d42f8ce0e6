"""Find the KoBERT SentencePiece model and ``vocab.txt``, and read the bundled tokenizer config.

Each file is looked up, in order, at: the explicit path, ``$CKPTKIT_KOBERT_DIR``, then the
Hugging Face cache or a download of ``monologg/kobert`` (``hf_hub_download``, which honours
``HF_HUB_OFFLINE`` and ``HF_HUB_CACHE``).

Example:
    >>> files = find_kobert_files(spm_file="../shared/kobert/tokenizer_78b3253a26.model",
    ...                           vocab_file="../shared/kobert/vocab.txt")  # doctest: +SKIP
    >>> files.vocab_file.name  # doctest: +SKIP
    'vocab.txt'
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from ckptkit.errors import CheckpointNotFoundError, ConfigError

__all__ = ["KOBERT_DIR_ENV", "KobertFiles", "find_kobert_files", "kobert_config", "read_vocab_txt"]

KOBERT_DIR_ENV = "CKPTKIT_KOBERT_DIR"
_CONFIG_NAME = "kobert_tokenizer_config.json"


@dataclass(frozen=True)
class KobertFiles:
    """Where the KoBERT tokenizer's two data files are."""

    spm_file: Path
    vocab_file: Path


@lru_cache(maxsize=1)
def _load_config() -> str:
    return resources.files("ckptkit.tokenizers").joinpath(_CONFIG_NAME).read_text(encoding="utf-8")


def kobert_config() -> dict[str, Any]:
    """The bundled KoBERT tokenizer config (special tokens, ids, lengths, file names), a fresh copy.

    Example:
        >>> kobert_config()["special_tokens"]["cls_token"]
        {'content': '[CLS]', 'id': 2}
    """
    return json.loads(_load_config())


def _explicit(path: str | os.PathLike) -> Path:
    found = Path(path)
    if not found.is_file():
        raise CheckpointNotFoundError("no such file", path=found,
                                      hint="pass an existing SentencePiece model / vocab.txt path")
    return found


def _from_env(filename: str) -> Path | None:
    folder = os.environ.get(KOBERT_DIR_ENV)
    if not folder:
        return None
    found = Path(folder) / filename
    if not found.is_file():
        raise CheckpointNotFoundError(f"{KOBERT_DIR_ENV} points to a folder without {filename}", path=folder,
                                      hint=f"put {filename} there or unset {KOBERT_DIR_ENV}")
    return found


def _from_hub(repo_id: str, filename: str) -> Path:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import HfHubHTTPError, LocalEntryNotFoundError

    try:
        return Path(hf_hub_download(repo_id=repo_id, filename=filename))
    except LocalEntryNotFoundError as e:
        raise CheckpointNotFoundError(
            f"{filename} of {repo_id} is not in the Hugging Face cache and cannot be downloaded (offline?)",
            hint=f"pass --spm/--vocab, set {KOBERT_DIR_ENV}, or download once with network access") from e
    except (HfHubHTTPError, OSError) as e:
        raise CheckpointNotFoundError(f"could not fetch {filename} from {repo_id}: {e}",
                                      hint=f"pass --spm/--vocab or set {KOBERT_DIR_ENV}") from e


def _find(explicit: str | os.PathLike | None, filename: str, repo_id: str) -> Path:
    if explicit is not None:
        return _explicit(explicit)
    return _from_env(filename) or _from_hub(repo_id, filename)


def find_kobert_files(*, spm_file: str | os.PathLike | None = None,
                      vocab_file: str | os.PathLike | None = None) -> KobertFiles:
    """Locate the SentencePiece model and vocab.txt (explicit path > env var > HF cache/download).

    Args:
        spm_file: explicit SentencePiece model path.
        vocab_file: explicit vocab.txt path.

    Returns:
        The two resolved paths.

    Example:
        >>> os.environ[KOBERT_DIR_ENV] = "../shared/kobert"  # doctest: +SKIP
        >>> find_kobert_files().spm_file.name  # doctest: +SKIP
        'tokenizer_78b3253a26.model'
    """
    config = kobert_config()
    repo = config["hub_repo_id"]
    return KobertFiles(spm_file=_find(spm_file, config["sp_model_filename"], repo),
                       vocab_file=_find(vocab_file, config["vocab_filename"], repo))


def read_vocab_txt(path: str | os.PathLike) -> list[str]:
    """Read a BERT-style ``vocab.txt`` (one token per line, id = line number).

    Example:
        >>> read_vocab_txt("../shared/kobert/vocab.txt")[:3]  # doctest: +SKIP
        ['[UNK]', '[PAD]', '[CLS]']
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError as e:
        raise CheckpointNotFoundError("no such vocab file", path=path) from e
    except UnicodeDecodeError as e:
        raise ConfigError(f"vocab file is not UTF-8 ({e.reason} at byte {e.start})", path=path,
                          hint="pass a text vocab.txt, one token per line") from e
    tokens = text.split("\n")
    if tokens and tokens[-1] == "":
        tokens.pop()
    tokens = [t.rstrip("\r") for t in tokens]
    if not tokens:
        raise ConfigError("vocab file is empty", path=path, hint="pass a vocab.txt with one token per line")
    return tokens
