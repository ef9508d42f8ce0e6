"""Loading teacher and student, and the checks that they can be distilled into each other.

Example:
    >>> read_student_json("out/student")["layers"]  # doctest: +SKIP
    [0, 4, 8]
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Sequence

from ckptkit.errors import CheckpointNotFoundError, ConfigError, UsageError
from ckptkit.output.names import STUDENT_FILE

__all__ = ["read_student_json", "parse_layer_map", "load_model", "num_layers", "check_pair", "fit_seq_length",
           "MODEL_CLASSES"]


# objective -> transformers Auto class that is loaded for teacher and student
MODEL_CLASSES: dict[str, str] = {"mlm": "AutoModelForMaskedLM", "hidden": "AutoModel"}


def read_student_json(folder: str | os.PathLike) -> dict[str, Any]:
    """``FOLDER/student.json`` as a dict, or ``{}`` when there is none.

    Example:
        >>> read_student_json("/nonexistent")
        {}
    """
    path = Path(folder) / STUDENT_FILE
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise ConfigError(f"not valid JSON ({e})", path=path) from e


def parse_layer_map(text: str | Sequence[int] | None, student_info: dict[str, Any]) -> tuple[int, ...]:
    """``"0,4,8"`` (``--layer-map``, read by the one layer-list parser) or else ``student.json``'s ``layers``.

    Example:
        >>> parse_layer_map("1, 5,9", {})
        (1, 5, 9)
        >>> parse_layer_map(None, {"layers": [0, 2]})
        (0, 2)
    """
    if text:
        from ckptkit.distill.init.layers import parse_layer_list

        return parse_layer_list(text, flag="--layer-map")
    return tuple(int(x) for x in student_info.get("layers") or ())


def num_layers(config) -> int:
    """Number of transformer layers of a BERT-family or DistilBERT config."""
    for name in ("num_hidden_layers", "n_layers", "num_layers"):
        if getattr(config, name, None):
            return int(getattr(config, name))
    raise ConfigError(f"cannot tell the number of layers of a {type(config).__name__}")


def load_model(path: str | os.PathLike, *, objective: str, role: str, attn_implementation: str | None = None):
    """Load ``path`` with the Auto class of ``objective``; an MLM teacher must have its MLM head.

    Example:
        >>> load_model("out/student", objective="mlm", role="student")  # doctest: +SKIP
    """
    import transformers

    path = Path(path)
    if not (path / "config.json").is_file():
        raise CheckpointNotFoundError(f"{role} is not a hub folder (no config.json)", path=path)
    auto = getattr(transformers, MODEL_CLASSES[objective])
    kwargs = {"attn_implementation": attn_implementation} if attn_implementation else {}
    try:
        model, info = auto.from_pretrained(str(path), output_loading_info=True, **kwargs)
    except (OSError, ValueError) as e:
        raise ConfigError(f"cannot load the {role}: {e}", path=path) from e
    if objective == "mlm" and info.get("missing_keys"):
        missing = sorted(info["missing_keys"])
        raise UsageError(f"the {role} has no trained MLM head (missing {missing[0]}"
                         f"{f' and {len(missing) - 1} more' if len(missing) > 1 else ''})", path=path,
                         hint="distil an embedding model with --objective hidden")
    return model


def check_pair(teacher, student, *, teacher_vocab: dict[str, int] | None, student_vocab: dict[str, int] | None,
               layer_map: Sequence[int], needs_map: bool, needs_same_width: bool, needs_same_heads: bool) -> None:
    """Refuse a teacher/student pair the chosen losses cannot compare, naming the fix."""
    t_cfg, s_cfg = teacher.config, student.config
    if t_cfg.vocab_size != s_cfg.vocab_size or (teacher_vocab and student_vocab and teacher_vocab != student_vocab):
        raise ConfigError(f"teacher and student do not share the vocabulary (teacher {t_cfg.vocab_size} tokens, "
                          f"student {s_cfg.vocab_size})",
                          hint="make the student with `ckptkit distill init` from this teacher")
    t_layers, s_layers = num_layers(t_cfg), num_layers(s_cfg)
    if needs_map:
        if len(layer_map) != s_layers:
            raise UsageError(f"the layer map {list(layer_map)} has {len(layer_map)} entries but the student has "
                             f"{s_layers} layers", hint="pass --layer-map with one teacher layer per student layer")
        bad = [j for j in layer_map if not 0 <= j < t_layers]
        if bad:
            raise UsageError(f"layer map names teacher layer(s) {bad}; the teacher has layers 0..{t_layers - 1}")
    if needs_same_width and _width(t_cfg) != _width(s_cfg):
        raise ConfigError(f"hidden-state losses need the same hidden size (teacher {_width(t_cfg)}, "
                          f"student {_width(s_cfg)})", hint="set --alpha-cos/--alpha-mse to 0")
    if needs_same_heads and _heads(t_cfg) != _heads(s_cfg):
        raise ConfigError(f"the attention loss needs the same number of heads (teacher {_heads(t_cfg)}, "
                          f"student {_heads(s_cfg)})", hint="set --alpha-attn 0")


def fit_seq_length(requested: int, *configs) -> int:
    """``requested`` capped at the smallest ``max_position_embeddings`` of ``configs``.

    Example:
        >>> from types import SimpleNamespace
        >>> fit_seq_length(128, SimpleNamespace(max_position_embeddings=64))
        64
    """
    limits = [int(getattr(c, "max_position_embeddings", None) or requested) for c in configs]
    return min([requested, *limits])


def _width(config) -> int:
    return int(getattr(config, "hidden_size", None) or getattr(config, "dim"))


def _heads(config) -> int:
    return int(getattr(config, "num_attention_heads", None) or getattr(config, "n_heads"))
