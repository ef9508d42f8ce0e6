"""The fixed KoBERT tokenizer: a transformers ``PreTrainedTokenizer`` over SentencePiece + vocab.txt.

Special tokens (``[UNK] [PAD] [CLS] [SEP] [MASK]``, ids 0-4) are split off the text first; every
other span goes through the SentencePiece model and its pieces are looked up in ``vocab.txt``
(pieces missing there become ``[UNK]``). Pairs are ``[CLS] A [SEP] B [SEP]`` with token type ids
0 for ``[CLS] A [SEP]`` and 1 for ``B [SEP]``.

Example:
    >>> tok = KoBertTokenizer(sp_model_file="../shared/kobert/tokenizer_78b3253a26.model",
    ...                       vocab_file="../shared/kobert/vocab.txt")  # doctest: +SKIP
    >>> tok.tokenize("[CLS] 한국어 모델을 공유합니다. [SEP]")  # doctest: +SKIP
    ['[CLS]', '▁한국', '어', '▁모델', '을', '▁공유', '합니다', '.', '[SEP]']
"""

from __future__ import annotations

import contextvars
import os
import shutil
from pathlib import Path
from typing import Any

import sentencepiece as spm
from transformers import AddedToken, PreTrainedTokenizer
from transformers.tokenization_utils_base import TruncationStrategy

from ckptkit.errors import CheckpointNotFoundError, ConfigError, UsageError
from ckptkit.tokenizers.resources import KOBERT_DIR_ENV, find_kobert_files, kobert_config, read_vocab_txt
from ckptkit.tokenizers.unigram import SPIECE_UNDERLINE

__all__ = ["KoBertTokenizer", "SPIECE_UNDERLINE", "KoBertOptionError"]
_CONFIG = kobert_config()
_SPECIALS: dict[str, dict[str, Any]] = _CONFIG["special_tokens"]


# Keyword arguments the transformers base classes consume (PreTrainedTokenizerBase/PreTrainedTokenizer
# __init__ in transformers 5), besides the special tokens; anything else is a typo and is refused.
_BASE_KEYS = frozenset({
    "added_tokens_decoder", "additional_special_tokens", "backend", "chat_control_tokens", "chat_template",
    "clean_up_tokenization_spaces", "extra_special_tokens", "max_len", "model_input_names", "model_max_length",
    "model_specific_special_tokens", "name_or_path", "padding_side", "processor_class", "response_schema",
    "response_template", "special_tokens_pattern", "split_special_tokens", "token_type_ids_include_special_tokens",
    "token_type_ids_pattern", "truncation_side", "verbose", "bos_token", "eos_token", "unk_token", "sep_token",
    "pad_token", "cls_token", "mask_token"})
# ... and the loading options of from_pretrained (its signature, what AutoTokenizer adds, and private ones).
_LOAD_KEYS = frozenset({
    "cache_dir", "force_download", "local_files_only", "token", "revision", "trust_remote_code", "subfolder",
    "proxies", "user_agent", "use_fast", "tokenizer_type", "config", "gguf_file", "resume_download",
    "use_auth_token", "from_pipeline", "vocab_file", "sp_model_file", "do_lower_case", "tokenizer_file"})
# True while from_pretrained builds the tokenizer: tokenizer_config.json keys of other tools are tolerated.
_LOADING: contextvars.ContextVar[bool] = contextvars.ContextVar("ckptkit_kobert_loading", default=False)


class KoBertOptionError(UsageError, TypeError):
    """An unknown keyword argument to :class:`KoBertTokenizer` (a ``TypeError`` like any bad keyword)."""


def _check_keywords(kwargs: dict[str, Any], allowed: frozenset[str], call: str) -> None:
    unknown = sorted(k for k in kwargs if k not in allowed and not k.startswith("_"))
    if unknown:
        raise KoBertOptionError(f"{call} got unexpected keyword argument(s) {', '.join(map(repr, unknown))}",
                                hint="accepted: vocab_file, sp_model_file, do_lower_case and the transformers "
                                     "tokenizer options (model_max_length, padding_side, *_token, ...)")


def _local_kobert_folder(name: str | os.PathLike) -> str | None:
    """``$CKPTKIT_KOBERT_DIR`` when ``name`` is KoBERT's Hub id and the variable is set, else None."""
    folder = os.environ.get(KOBERT_DIR_ENV)
    if not folder or os.fspath(name) != _CONFIG["hub_repo_id"] or os.path.isdir(os.fspath(name)):
        return None
    for filename in (_CONFIG["vocab_filename"], _CONFIG["sp_model_filename"]):
        if not os.path.isfile(os.path.join(folder, filename)):
            raise CheckpointNotFoundError(f"{KOBERT_DIR_ENV} points to a folder without {filename}", path=folder,
                                          hint=f"put {filename} there or unset {KOBERT_DIR_ENV}")
    return folder


def _special(name: str) -> AddedToken:
    return AddedToken(_SPECIALS[name]["content"], lstrip=False, rstrip=False, normalized=False, special=True)


def _check_vocab(tokens: list[str], path: str | os.PathLike) -> None:
    for name, spec in _SPECIALS.items():
        found = tokens[spec["id"]] if spec["id"] < len(tokens) else None
        if found != spec["content"]:
            raise ConfigError(f"vocab id {spec['id']} is {found!r}, expected {spec['content']!r} ({name})",
                              path=path, hint="KoBERT vocab.txt starts [UNK] [PAD] [CLS] [SEP] [MASK]")


def _longest_first_lengths(first: int, second: int, budget: int) -> tuple[int, int]:
    """Lengths that ``longest_first`` keeps of a pair within ``budget`` tokens (tokenizers' rule).

    Example:
        >>> _longest_first_lengths(34, 166, 29), _longest_first_lengths(5, 40, 29)
        ((14, 15), (5, 24))
    """
    if first + second <= budget:
        return first, second
    swap = first > second
    short, long_ = (second, first) if swap else (first, second)
    if short <= budget // 2:
        short, long_ = short, budget - short
    else:
        short, long_ = budget // 2, budget - budget // 2
    return (long_, short) if swap else (short, long_)


class KoBertTokenizer(PreTrainedTokenizer):
    """KoBERT's SentencePiece tokenizer with BERT-style special tokens, for transformers 5.

    Args:
        vocab_file: ``vocab.txt`` (8002 entries for KoBERT); found automatically when None.
        sp_model_file: the SentencePiece model; found automatically when None.
        do_lower_case: lower-case text (not special tokens) before SentencePiece. KoBERT: False.

    Example:
        >>> tok = KoBertTokenizer()  # with $CKPTKIT_KOBERT_DIR set or monologg/kobert cached  # doctest: +SKIP
        >>> tok("한국어", "모델")["token_type_ids"]  # doctest: +SKIP
        [0, 0, 0, 0, 1, 1]
    """

    vocab_files_names = {"vocab_file": _CONFIG["vocab_filename"], "sp_model_file": _CONFIG["sp_model_filename"]}
    model_input_names = list(_CONFIG["model_input_names"])

    def __init__(self, vocab_file: str | os.PathLike | None = None,
                 sp_model_file: str | os.PathLike | None = None, *,
                 do_lower_case: bool = _CONFIG["do_lower_case"], **kwargs: Any):
        if not _LOADING.get():
            _check_keywords(kwargs, _BASE_KEYS, "KoBertTokenizer()")
        files = find_kobert_files(spm_file=sp_model_file, vocab_file=vocab_file)
        self.vocab_file = str(files.vocab_file)
        self.sp_model_file = str(files.spm_file)
        self.do_lower_case = do_lower_case
        tokens = read_vocab_txt(files.vocab_file)
        _check_vocab(tokens, files.vocab_file)
        self.ids_to_tokens: list[str] = tokens
        self.vocab: dict[str, int] = {t: i for i, t in enumerate(tokens)}
        self.sp_model = spm.SentencePieceProcessor()
        try:
            self.sp_model.Load(self.sp_model_file)
        except (OSError, RuntimeError) as e:
            raise ConfigError(f"not a SentencePiece model: {e}", path=files.spm_file,
                              hint="pass KoBERT's tokenizer_78b3253a26.model") from e
        for name in _SPECIALS:
            kwargs.setdefault(name, _special(name))
        kwargs.setdefault("model_max_length", _CONFIG["model_max_length"])
        kwargs.setdefault("clean_up_tokenization_spaces", False)
        kwargs.setdefault("special_tokens_pattern", "cls_sep")
        kwargs.setdefault("token_type_ids_pattern", "bert_style")
        super().__init__(do_lower_case=do_lower_case, **kwargs)

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path: str | os.PathLike, *init_inputs: Any,
                        **kwargs: Any) -> "KoBertTokenizer":
        """Load from a folder or the Hub; ``monologg/kobert`` is read from ``$CKPTKIT_KOBERT_DIR`` when set,
        without any network access.

        Example:
            >>> os.environ["CKPTKIT_KOBERT_DIR"] = "../shared/kobert"  # doctest: +SKIP
            >>> KoBertTokenizer.from_pretrained("monologg/kobert").vocab_size  # doctest: +SKIP
            8002
        """
        _check_keywords(kwargs, _BASE_KEYS | _LOAD_KEYS, "KoBertTokenizer.from_pretrained()")
        local = _local_kobert_folder(pretrained_model_name_or_path)
        if local is not None:
            pretrained_model_name_or_path, kwargs = local, {**kwargs, "local_files_only": True}
        loading = _LOADING.set(True)
        try:
            return super().from_pretrained(pretrained_model_name_or_path, *init_inputs, **kwargs)
        finally:
            _LOADING.reset(loading)

    # -- vocabulary ---------------------------------------------------------------------------
    @property
    def vocab_size(self) -> int:
        return len(self.ids_to_tokens)

    def get_vocab(self) -> dict[str, int]:
        return {**self.vocab, **self.added_tokens_encoder}

    def _convert_token_to_id(self, token: str) -> int:
        return self.vocab.get(token, self.vocab[str(self.unk_token)])

    def _convert_id_to_token(self, index: int) -> str:
        if 0 <= index < len(self.ids_to_tokens):
            return self.ids_to_tokens[index]
        return str(self.unk_token)

    # -- text <-> tokens ----------------------------------------------------------------------
    def _tokenize(self, text: str, **kwargs: Any) -> list[str]:
        """SentencePiece pieces of one span that contains no special token."""
        if self.do_lower_case:
            text = text.lower()
        return self.sp_model.encode(text, out_type=str)

    def convert_tokens_to_string(self, tokens: list[str]) -> str:
        """Join pieces, turning ``▁`` back into spaces (the dummy prefix of the first one is dropped).

        Example:
            >>> tok.convert_tokens_to_string(["▁한국", "어", "▁모델"])  # doctest: +SKIP
            '한국어 모델'
        """
        text = "".join(tokens).replace(SPIECE_UNDERLINE, " ")
        return text[1:] if tokens and tokens[0].startswith(SPIECE_UNDERLINE) else text

    # -- special tokens -----------------------------------------------------------------------
    def build_inputs_with_special_tokens(self, token_ids_0: list[int],
                                         token_ids_1: list[int] | None = None) -> list[int]:
        cls, sep = [self.cls_token_id], [self.sep_token_id]
        if token_ids_1 is None:
            return cls + token_ids_0 + sep
        return cls + token_ids_0 + sep + token_ids_1 + sep

    def get_special_tokens_mask(self, token_ids_0: list[int], token_ids_1: list[int] | None = None,
                                already_has_special_tokens: bool = False) -> list[int]:
        if already_has_special_tokens:
            if token_ids_1 is not None:
                raise ValueError("token_ids_1 must be None when the ids already contain special tokens")
            special = set(self.all_special_ids)
            return [int(i in special) for i in token_ids_0]
        if token_ids_1 is None:
            return [1] + [0] * len(token_ids_0) + [1]
        return [1] + [0] * len(token_ids_0) + [1] + [0] * len(token_ids_1) + [1]

    def create_token_type_ids_from_sequences(self, token_ids_0: list[int],
                                             token_ids_1: list[int] | None = None) -> list[int]:
        first = [0] * (len(token_ids_0) + 2)
        return first if token_ids_1 is None else first + [1] * (len(token_ids_1) + 1)

    # -- truncation ---------------------------------------------------------------------------
    def truncate_sequences(self, ids: list[int], pair_ids: list[int] | None = None, num_tokens_to_remove: int = 0,
                           truncation_strategy: str | TruncationStrategy = "longest_first",
                           stride: int = 0) -> tuple[list[int], list[int] | None, list[int]]:
        """Truncate like the ``tokenizers`` library does, so slow and fast agree on pairs.

        ``longest_first`` on a pair keeps the shorter sequence whole when it fits in half the budget,
        otherwise splits the budget in halves with the odd token going to the longer one;
        ``only_first``/``only_second`` raise when the chosen sequence is too short.

        Example:
            >>> tok.truncate_sequences(list(range(34)), list(range(166)), 171)[:2]  # doctest: +SKIP
            (list(range(14)), list(range(15)))
        """
        strategy = TruncationStrategy(truncation_strategy)
        if num_tokens_to_remove <= 0 or pair_ids is None or strategy == TruncationStrategy.DO_NOT_TRUNCATE:
            return super().truncate_sequences(ids, pair_ids, num_tokens_to_remove, strategy, stride)
        if strategy == TruncationStrategy.LONGEST_FIRST:
            first, second = _longest_first_lengths(len(ids), len(pair_ids), len(ids) + len(pair_ids)
                                                   - num_tokens_to_remove)
            return self._keep(ids, first), self._keep(pair_ids, second), []
        target = ids if strategy == TruncationStrategy.ONLY_FIRST else pair_ids
        if len(target) <= num_tokens_to_remove:
            raise ValueError("Truncation error: Sequence to truncate too short to respect the provided max_length")
        return super().truncate_sequences(ids, pair_ids, num_tokens_to_remove, strategy, stride)

    def _keep(self, ids: list[int], length: int) -> list[int]:
        return ids[:length] if self.truncation_side == "right" else ids[len(ids) - length:]

    # -- saving -------------------------------------------------------------------------------
    def save_vocabulary(self, save_directory: str, filename_prefix: str | None = None) -> tuple[str, ...]:
        folder = Path(save_directory)
        if not folder.is_dir():
            raise ConfigError("not a directory", path=folder, hint="create it first")
        prefix = f"{filename_prefix}-" if filename_prefix else ""
        written = []
        for source, name in ((self.vocab_file, self.vocab_files_names["vocab_file"]),
                             (self.sp_model_file, self.vocab_files_names["sp_model_file"])):
            target = folder / f"{prefix}{name}"
            if not target.exists() or not os.path.samefile(source, target):
                shutil.copyfile(source, target)
            written.append(str(target))
        return tuple(written)
