"""The DistilBERT student architecture as data: its tensor names and its config.

Teacher names are Hugging Face BERT-family names after the base prefix (``bert.``, ``electra.``);
DistilBERT names go after ``distilbert.`` (with an MLM head) or nothing (``DistilBertModel``).

Example:
    >>> DISTILBERT_LAYER["attention.self.query.weight"]
    'attention.q_lin.weight'
"""

from __future__ import annotations

from typing import Mapping

from ckptkit.errors import ConfigError

__all__ = ["DISTILBERT_EMBEDDINGS", "DISTILBERT_LAYER", "TOKEN_TYPE_EMBEDDINGS", "POSITION_EMBEDDINGS",
           "student_config"]

# (teacher name after the base prefix, DistilBERT name after "<prefix>")
DISTILBERT_EMBEDDINGS: dict[str, str] = {
    "embeddings.word_embeddings.weight": "embeddings.word_embeddings.weight",
    "embeddings.position_embeddings.weight": "embeddings.position_embeddings.weight",
    "embeddings.LayerNorm.weight": "embeddings.LayerNorm.weight",
    "embeddings.LayerNorm.bias": "embeddings.LayerNorm.bias",
}
# (part of a teacher layer, part of a DistilBERT TransformerBlock); each has .weight and .bias
_DISTILBERT_LAYER_PARTS = (
    ("attention.self.query", "attention.q_lin"), ("attention.self.key", "attention.k_lin"),
    ("attention.self.value", "attention.v_lin"), ("attention.output.dense", "attention.out_lin"),
    ("attention.output.LayerNorm", "sa_layer_norm"), ("intermediate.dense", "ffn.lin1"),
    ("output.dense", "ffn.lin2"), ("output.LayerNorm", "output_layer_norm"),
)
DISTILBERT_LAYER: dict[str, str] = {f"{t}.{p}": f"{d}.{p}" for t, d in _DISTILBERT_LAYER_PARTS
                                    for p in ("weight", "bias")}
TOKEN_TYPE_EMBEDDINGS = "embeddings.token_type_embeddings.weight"
POSITION_EMBEDDINGS = "embeddings.position_embeddings.weight"

_DISTILBERT_FROM_TEACHER = (  # (DistilBERT key, teacher key, default)
    ("vocab_size", "vocab_size", None), ("max_position_embeddings", "max_position_embeddings", 512),
    ("n_heads", "num_attention_heads", None), ("dim", "hidden_size", None),
    ("hidden_dim", "intermediate_size", None), ("dropout", "hidden_dropout_prob", 0.1),
    ("attention_dropout", "attention_probs_dropout_prob", 0.1), ("activation", "hidden_act", "gelu"),
    ("initializer_range", "initializer_range", 0.02), ("pad_token_id", "pad_token_id", 0),
)
_KEPT_IF_PRESENT = ("bos_token_id", "eos_token_id", "sep_token_id", "cls_token_id", "dtype", "torch_dtype")


def student_config(teacher_config: Mapping, *, arch: str, num_layers: int, model_class: str,
                   tie_word_embeddings: bool = True) -> dict:
    """The student's config.json: the teacher's with ``num_layers`` layers, or its DistilBERT translation.

    Example:
        >>> c = student_config({"model_type": "bert", "hidden_size": 32, "num_attention_heads": 4,
        ...     "intermediate_size": 64, "vocab_size": 99, "hidden_act": "gelu_new", "pad_token_id": 1,
        ...     "num_hidden_layers": 12}, arch="distilbert", num_layers=3, model_class="DistilBertForMaskedLM")
        >>> c["n_layers"], c["activation"], c["pad_token_id"], c["dim"]
        (3, 'gelu_new', 1, 32)
    """
    if arch == "same":
        return {**teacher_config, "architectures": [model_class], "num_hidden_layers": num_layers}
    config = {"architectures": [model_class], "model_type": "distilbert", "n_layers": num_layers,
              "sinusoidal_pos_embds": False, "qa_dropout": 0.1, "seq_classif_dropout": 0.2,
              "tie_word_embeddings": bool(tie_word_embeddings)}
    for key, teacher_key, default in _DISTILBERT_FROM_TEACHER:
        value = teacher_config.get(teacher_key, default)
        if value is None:
            raise ConfigError(f"the teacher's config has no {teacher_key}", hint="pass a complete config.json")
        config[key] = value
    config.update({k: teacher_config[k] for k in _KEPT_IF_PRESENT if teacher_config.get(k) is not None})
    if not isinstance(config["activation"], str):
        raise ConfigError(f"the teacher's hidden_act {config['activation']!r} is not a named activation")
    return config
