"""``distill init --mlm-head``: a student that can be trained with MLM (and compared with an MLM-only baseline).

A student of a teacher with an MLM head (``BertForMaskedLM``, ``BertForPreTraining``,
``DistilBertForMaskedLM``) already has the teacher's head, copied by the plan. A teacher without
one (a sentence-transformers ``BertModel`` such as all-MiniLM-L6-v2) gives a base-model student;
``--mlm-head`` then renames its tensors under the MLM class's base prefix and adds a fresh head,
initialised as transformers initialises BERT's (dense weights ``N(0, initializer_range)``,
biases 0, LayerNorm 1 and 0), with the decoder tied to the word embeddings. The pooler, which the
MLM class does not have, is dropped. NumPy only: no torch.

Example:
    >>> HEADS["BertModel"].masked_lm_class, HEADS["DistilBertModel"].prefix
    ('BertForMaskedLM', 'distilbert.')
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Mapping

import numpy as np

from ckptkit.errors import UsageError

__all__ = ["HEADS", "HAS_HEAD", "HeadSpec", "add_mlm_head"]

# student classes that already have an MLM head (copied from the teacher by the plan)
HAS_HEAD = frozenset({"BertForMaskedLM", "BertForPreTraining", "DistilBertForMaskedLM"})


@dataclass(frozen=True)
class HeadSpec:
    """How a base-model class becomes its MLM class: the base prefix, the head's tensors, what is dropped.

    ``tensors`` maps a head tensor to ``(init, size)``: ``normal`` (``N(0, initializer_range)``),
    ``zeros`` or ``ones``; ``size`` is ``"hidden"`` or ``"vocab"``, twice for a square matrix.
    """

    masked_lm_class: str
    prefix: str
    tensors: Mapping[str, tuple[str, tuple[str, ...]]]
    dropped: tuple[str, ...] = ()


_H, _V = "hidden", "vocab"
HEADS: dict[str, HeadSpec] = {
    "BertModel": HeadSpec("BertForMaskedLM", "bert.", {
        "cls.predictions.transform.dense.weight": ("normal", (_H, _H)),
        "cls.predictions.transform.dense.bias": ("zeros", (_H,)),
        "cls.predictions.transform.LayerNorm.weight": ("ones", (_H,)),
        "cls.predictions.transform.LayerNorm.bias": ("zeros", (_H,)),
        "cls.predictions.bias": ("zeros", (_V,)),
    }, dropped=("pooler.",)),
    "DistilBertModel": HeadSpec("DistilBertForMaskedLM", "distilbert.", {
        "vocab_transform.weight": ("normal", (_H, _H)),
        "vocab_transform.bias": ("zeros", (_H,)),
        "vocab_layer_norm.weight": ("ones", (_H,)),
        "vocab_layer_norm.bias": ("zeros", (_H,)),
        "vocab_projector.bias": ("zeros", (_V,)),
    }),
}
_INIT = {
    "normal": lambda rng, shape, std: rng.normal(0.0, std, size=shape),
    "zeros": lambda rng, shape, std: np.zeros(shape),
    "ones": lambda rng, shape, std: np.ones(shape),
}


def _fresh_head(spec: HeadSpec, *, hidden: int, vocab: int, std: float, dtype, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    sizes = {_H: hidden, _V: vocab}
    return {name: _INIT[init](rng, tuple(sizes[s] for s in dims), std).astype(dtype)
            for name, (init, dims) in spec.tensors.items()}


def add_mlm_head(folder: str | os.PathLike, *, model_class: str, config: Mapping, seed: int = 0) -> dict:
    """Give the student in ``folder`` (its ``model.safetensors``) an MLM head; returns what was done.

    Returns:
        ``{"mlm_head": "copied from the teacher" | "fresh ...", "model_class": ...}``.
    """
    if model_class in HAS_HEAD or model_class.endswith("ForMaskedLM"):
        return {"mlm_head": "copied from the teacher", "model_class": model_class}
    spec = HEADS.get(model_class)
    if spec is None:
        raise UsageError(f"--mlm-head: cannot add an MLM head to a {model_class} student",
                         hint="supported: " + ", ".join(sorted(HEADS)) + " (and students that already have one)")
    from safetensors.numpy import load_file, save_file

    path = os.path.join(str(folder), "model.safetensors")
    if not os.path.isfile(path):
        raise UsageError("--mlm-head needs the student in one model.safetensors (it is sharded)", path=folder)
    tensors = load_file(path)
    kept = {spec.prefix + name: value for name, value in tensors.items() if not name.startswith(spec.dropped)}
    word = next(v for k, v in kept.items() if k.endswith("embeddings.word_embeddings.weight"))
    hidden, vocab = int(word.shape[1]), int(word.shape[0])
    std = float(config.get("initializer_range", 0.02))
    kept.update(_fresh_head(spec, hidden=hidden, vocab=vocab, std=std, dtype=word.dtype, seed=seed))
    save_file(kept, path, metadata={"format": "pt"})
    return {"mlm_head": f"fresh: dense N(0, {std:g}), LayerNorm 1/0, biases 0 (seed {seed}); decoder tied to the "
                        "word embeddings",
            "model_class": spec.masked_lm_class, "parameters_added": sum(
                int(np.prod(v.shape)) for k, v in kept.items() if not k.startswith(spec.prefix))}
