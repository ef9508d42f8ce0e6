"""Whole-word masking (``--whole-word-mask``): every piece of a chosen word is masked together.

A word is a piece that starts one plus the pieces that continue it. Which pieces continue a word
depends on the tokenizer's scheme: WordPiece marks continuations (``##ing``), SentencePiece marks
starts (``▁play``; a piece without ``▁`` continues the word before it, KoBERT's ``▁한국`` ``어``).
Special tokens are never masked and stand alone; a block of a packed corpus starts a word.

Example:
    >>> starts = word_start_table(["[CLS]", "play", "##ing", "now"], specials=[0])
    >>> word_ids(np.array([0, 1, 2, 3]), starts).tolist()
    [1, 2, 2, 3]
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ckptkit.distill.data import IGNORE_INDEX, MaskingCollator

__all__ = ["WORD_SCHEMES", "word_scheme", "word_start_table", "word_ids", "WholeWordMaskingCollator",
           "with_whole_words"]

# scheme -> (how a vocabulary shows it, whether a piece starts a word)
WORD_SCHEMES = {
    "sentencepiece": (lambda tokens: any(t.startswith("▁") for t in tokens), lambda t: t.startswith("▁")),
    "wordpiece": (lambda tokens: any(t.startswith("##") for t in tokens), lambda t: not t.startswith("##")),
}


def word_scheme(tokens: Sequence[str]) -> str:
    """``sentencepiece`` or ``wordpiece``, told from the vocabulary's marks (no mark: every piece is a word).

    Example:
        >>> word_scheme(["▁한국", "어"]), word_scheme(["play", "##ing"]), word_scheme(["cat"])
        ('sentencepiece', 'wordpiece', 'wordpiece')
    """
    return next((name for name, (shows, _) in WORD_SCHEMES.items() if shows(tokens)), "wordpiece")


def word_start_table(tokens: Sequence[str], *, specials: Sequence[int] = ()) -> np.ndarray:
    """A bool per token id: whether that piece starts a word (special tokens do).

    Example:
        >>> word_start_table(["[CLS]", "▁한국", "어"], specials=[0]).tolist()
        [True, True, False]
    """
    starts_word = WORD_SCHEMES[word_scheme(tokens)][1]
    table = np.fromiter((starts_word(t) for t in tokens), dtype=bool, count=len(tokens))
    table[list(specials)] = True
    return table


def word_ids(ids: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """The word number of each position of ``ids`` (position 0 always starts a word)."""
    first = starts[ids].copy()
    if first.size:
        first[0] = True
    return np.cumsum(first)


@dataclass
class WholeWordMaskingCollator(MaskingCollator):
    """:class:`MaskingCollator` that chooses whole words: about ``mlm_probability`` of the tokens, in words.

    Words are drawn without replacement (weighted by their pieces' largest ``mask_weights`` when
    given) until the next would pass the token budget; at least one word is chosen. Each chosen
    piece then gets the 80/10/10 treatment on its own, as in Google's BERT pretraining data.
    """

    word_starts: np.ndarray | None = None

    def mask_row(self, ids: np.ndarray, example_id: int) -> tuple[np.ndarray, np.ndarray]:
        if self.word_starts is None:
            return super().mask_row(ids, example_id)
        labels = np.full_like(ids, IGNORE_INDEX)
        candidates = np.flatnonzero(~self._special[ids])
        if self.mlm_probability <= 0 or candidates.size == 0:
            return ids, labels
        rng = np.random.default_rng([self.seed, 0 if self.fixed else self.epoch, example_id])
        words = word_ids(ids, self.word_starts)[candidates]
        unique, first = np.unique(words, return_index=True)
        groups = np.split(candidates, first[1:])
        budget = max(1, int(self.mlm_probability * candidates.size + 0.5))
        p = None
        if self.mask_weights is not None:
            w = np.array([self.mask_weights[ids[g]].max() for g in groups])
            p = w / w.sum() if w.sum() > 0 else None
        chosen: list[int] = []
        for k in rng.choice(unique.size, size=unique.size, replace=False, p=p):
            if chosen and len(chosen) + groups[k].size > budget:
                continue
            chosen.extend(groups[k].tolist())
        chosen_positions = np.array(sorted(chosen), dtype=np.int64)
        return self._replace(ids, labels, chosen_positions, rng)

    def _replace(self, ids: np.ndarray, labels: np.ndarray, chosen: np.ndarray, rng) -> tuple[np.ndarray, np.ndarray]:
        labels[chosen] = ids[chosen]
        u = rng.random(chosen.size)
        masked = ids.copy()
        masked[chosen[u < self.mask_replace]] = self.mask_id
        randomised = chosen[(u >= self.mask_replace) & (u < self.mask_replace + self.random_replace)]
        masked[randomised] = rng.choice(self._random_pool, size=randomised.size)
        return masked, labels


def with_whole_words(collator: MaskingCollator, tokenizer) -> WholeWordMaskingCollator:
    """The same collator (every setting kept) masking whole words of ``tokenizer``'s vocabulary.

    Example:
        >>> wwm = with_whole_words(collator, tokenizer)  # doctest: +SKIP
    """
    import dataclasses

    vocab = tokenizer.get_vocab()
    tokens = [""] * max(len(tokenizer), max(vocab.values()) + 1)
    for token, index in vocab.items():
        tokens[index] = token
    settings = {f.name: getattr(collator, f.name) for f in dataclasses.fields(collator) if f.init}
    starts = word_start_table(tokens, specials=tokenizer.all_special_ids)
    return WholeWordMaskingCollator(**{**settings, "word_starts": starts[:collator.vocab_size]})
