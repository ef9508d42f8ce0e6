"""The step every fast tokenizer ends with: special tokens registered, ``[CLS] A [SEP] B [SEP]`` template.

Example:
    >>> from tokenizers import Tokenizer
    >>> from tokenizers.models import WordLevel
    >>> tok = Tokenizer(WordLevel({"[UNK]": 0, "[CLS]": 1, "[SEP]": 2, "a": 3}, unk_token="[UNK]"))
    >>> finish_tokenizer(tok, {"unk_token": "[UNK]", "cls_token": "[CLS]", "sep_token": "[SEP]"})
    >>> tok.encode("a", add_special_tokens=True).ids
    [1, 3, 2]
"""

from __future__ import annotations

from pathlib import Path

from ckptkit.errors import ConfigError

__all__ = ["finish_tokenizer", "require_specials"]

_SINGLE, _PAIR = "{cls}:0 $A:0 {sep}:0", "{cls}:0 $A:0 {sep}:0 $B:1 {sep}:1"


def finish_tokenizer(tok, specials: dict[str, str], *, lstrip: frozenset[str] = frozenset()) -> None:
    """Register the special tokens as added tokens and add the [CLS]/[SEP] template."""
    from tokenizers import AddedToken, processors

    tok.add_special_tokens([AddedToken(content, special=True, normalized=False, lstrip=name in lstrip)
                            for name, content in specials.items()])
    cls, sep = specials["cls_token"], specials["sep_token"]
    tok.post_processor = processors.TemplateProcessing(
        single=_SINGLE.format(cls=cls, sep=sep), pair=_PAIR.format(cls=cls, sep=sep),
        special_tokens=[(cls, tok.token_to_id(cls)), (sep, tok.token_to_id(sep))])


def require_specials(tokens: dict[str, int], specials: dict[str, str], path: Path, hint: str) -> None:
    """Raise ConfigError naming the special tokens ``tokens`` lacks."""
    missing = [content for content in specials.values() if content not in tokens]
    if missing:
        raise ConfigError(f"vocabulary lacks special token(s) {', '.join(missing)}", path=path, hint=hint)
