"""The file names of an output folder, each defined here and nowhere else.

A hub folder ckptkit writes holds ``config.json``, the weights (one of :data:`HUB_WEIGHT_FILES`),
the tokenizer files (:data:`TOKENIZER_FILE_NAMES`), the provenance record :data:`RECORD_FILE`,
the model card :data:`CARD_FILE`, and for students :data:`STUDENT_FILE`. A finished folder
without a record of its own carries :data:`MARKER_FILE`, so ``--overwrite`` knows ckptkit wrote it.

Example:
    >>> RECORD_FILE, STUDENT_FILE, CARD_FILE
    ('ckptkit.json', 'student.json', 'README.md')
    >>> hub_weight_names()[:2]
    ('model.safetensors.index.json', 'model.safetensors')
"""

from __future__ import annotations

__all__ = ["RECORD_FILE", "STUDENT_FILE", "CARD_FILE", "CONFIG_FILE", "MARKER_FILE", "HUB_WEIGHT_FILES",
           "hub_weight_names", "TOKENIZER_FILE_NAMES", "TOKENIZER_SUFFIXES"]

RECORD_FILE = "ckptkit.json"  # provenance record (ckptkit.output.record)
STUDENT_FILE = "student.json"  # a student's teacher, layers and training summary
CARD_FILE = "README.md"  # the model card (ckptkit.output.card)
CONFIG_FILE = "config.json"  # the Hugging Face model config
MARKER_FILE = ".ckptkit-output"  # written when a finished folder has no ckptkit.json of its own

# The weights of a hub folder, in reading preference order: (file name, format that opens it).
HUB_WEIGHT_FILES: tuple[tuple[str, str], ...] = (
    ("model.safetensors.index.json", "safetensors"),
    ("model.safetensors", "safetensors"),
    ("pytorch_model.bin.index.json", "pytorch"),
    ("pytorch_model.bin", "pytorch"),
)

# Tokenizer files copied and published with a model, besides SentencePiece models (TOKENIZER_SUFFIXES).
TOKENIZER_FILE_NAMES = frozenset({"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json",
                                  "added_tokens.json", "vocab.txt", "vocab.json", "merges.txt",
                                  "chat_template.jinja", "chat_template.json"})
TOKENIZER_SUFFIXES = (".model",)  # SentencePiece models: spiece.model, tokenizer_78b3253a26.model, ...


def hub_weight_names() -> tuple[str, ...]:
    """The names of :data:`HUB_WEIGHT_FILES`, in preference order.

    Example:
        >>> "pytorch_model.bin" in hub_weight_names()
        True
    """
    return tuple(name for name, _ in HUB_WEIGHT_FILES)
