"""BERT as google-research/bert writes it (modeling.py, run_pretraining.py, run_classifier.py,
run_squad.py) and as transformers' Bert* classes name it.

Google's ``"gelu"`` is the tanh approximation (``0.5x(1+tanh(sqrt(2/pi)(x+0.044715x^3)))``),
which transformers calls ``"gelu_new"``; its ``"gelu"`` is the exact erf form. Copying the
string verbatim is a silent ~1e-3 error, so the activation goes through :data:`GOOGLE_TO_HF_ACT`.
"""

from __future__ import annotations

import re
from typing import Mapping

from ckptkit.converters.config_schema import ConfigSchema, divisible
from ckptkit.converters.families import DETECTION
from ckptkit.converters.families.base import Family, ModelClass, Rule
from ckptkit.converters.families.student import ABSOLUTE_POSITIONS, BERT_MLM_HEAD, StudentRules
from ckptkit.converters.families.bert_like import (BERT_LAYER_INDEX, BERT_SHAPE_CHECKS, GOOGLE_TO_HF_ACT,
                                                   HF_TO_GOOGLE_ACT, MLM_TRANSFORM_RULES, NSP_RULES, SIZE_KEYS,
                                                   bert_layer_rules, bert_like_keys, check_config_against_shapes,
                                                   count_layers, google_act, hf_keys, unmapped_act_hint,
                                                   with_hf_types)
from ckptkit.errors import ConfigError

__all__ = ["BERT", "FAMILY", "BERT_TF_SCHEMA", "BERT_HF_SCHEMA", "BERT_RULES", "bert_config_to_hf",
           "hf_config_to_bert", "infer_bert_config",
           # shared with the other BERT-like families (defined in bert_like, importable from here as before)
           "SIZE_KEYS", "bert_like_keys", "hf_keys", "with_hf_types", "unmapped_act_hint", "MLM_TRANSFORM_RULES",
           "NSP_RULES", "GOOGLE_TO_HF_ACT", "HF_TO_GOOGLE_ACT", "check_config_against_shapes", "count_layers"]

BERT_RULES: tuple[Rule, ...] = (
    Rule("bert/embeddings/word_embeddings", "{base}embeddings.word_embeddings.weight"),
    Rule("bert/embeddings/position_embeddings", "{base}embeddings.position_embeddings.weight"),
    Rule("bert/embeddings/token_type_embeddings", "{base}embeddings.token_type_embeddings.weight"),
    Rule("bert/embeddings/LayerNorm/gamma", "{base}embeddings.LayerNorm.weight"),
    Rule("bert/embeddings/LayerNorm/beta", "{base}embeddings.LayerNorm.bias"),
    *bert_layer_rules("bert/encoder/layer_{layer}/", "{base}encoder.layer.{layer}."),
    Rule("bert/pooler/dense/kernel", "{base}pooler.dense.weight", "transpose", "pooler"),
    Rule("bert/pooler/dense/bias", "{base}pooler.dense.bias", group="pooler"),
    *MLM_TRANSFORM_RULES,
    Rule("cls/predictions/output_bias", "cls.predictions.bias", group="mlm"),
    *NSP_RULES,
    Rule("output_weights", "classifier.weight", group="classifier"),
    Rule("output_bias", "classifier.bias", group="classifier"),
    Rule("cls/squad/output_weights", "qa_outputs.weight", group="qa"),
    Rule("cls/squad/output_bias", "qa_outputs.bias", group="qa"),
)

_ALL = frozenset({"base", "pooler"})
BERT_CLASSES: tuple[ModelClass, ...] = (
    ModelClass("BertForPreTraining", _ALL | {"mlm", "nsp"}, "bert.", "AutoModelForPreTraining", "fill-mask"),
    ModelClass("BertForMaskedLM", frozenset({"base", "mlm"}), "bert.", "AutoModelForMaskedLM", "fill-mask"),
    ModelClass("BertForSequenceClassification", _ALL | {"classifier"}, "bert.",
               "AutoModelForSequenceClassification", "text-classification"),
    ModelClass("BertForQuestionAnswering", frozenset({"base", "qa"}), "bert.", "AutoModelForQuestionAnswering",
               "question-answering"),
    ModelClass("BertForNextSentencePrediction", _ALL | {"nsp"}, "bert.", "AutoModelForNextSentencePrediction",
               None),
    ModelClass("BertModel", _ALL, "", "AutoModel", "feature-extraction"),
)

_HEADS_DIVIDE_HIDDEN = (divisible("hidden_size", "num_attention_heads"),)
BERT_TF_SCHEMA = ConfigSchema(bert_like_keys(GOOGLE_TO_HF_ACT, required=True), _HEADS_DIVIDE_HIDDEN)
BERT_HF_SCHEMA = ConfigSchema(hf_keys(), _HEADS_DIVIDE_HIDDEN)

# TF config keys copied to HF config.json under the same name.
_SHARED_KEYS = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                "hidden_dropout_prob", "attention_probs_dropout_prob", "max_position_embeddings",
                "type_vocab_size", "initializer_range")
SHAPE_CHECKS = BERT_SHAPE_CHECKS
_LAYER_INDEX = BERT_LAYER_INDEX


def infer_bert_config(shapes: Mapping[str, tuple[int, ...]], *, num_heads: int | None = None,
                      checks=SHAPE_CHECKS, layer_pattern: re.Pattern = _LAYER_INDEX) -> tuple[dict, list[str]]:
    """A Google-style config from tensor shapes alone, and the warnings it implies.

    Heads cannot be read from 2-D kernels: ``num_heads`` or hidden/64 (with a warning).
    """
    config = {key: shapes[tensor][axis] for key, tensor, axis in checks if tensor in shapes}
    config["num_hidden_layers"] = count_layers(shapes, layer_pattern)
    warnings = []
    if num_heads is None:
        num_heads = max(1, config.get("hidden_size", 64) // 64)
        warnings.append(f"num_attention_heads not in a config: assumed {num_heads} (head size 64); "
                        "pass --num-heads or --config if that is wrong")
    config.update(num_attention_heads=num_heads, hidden_act="gelu", hidden_dropout_prob=0.1,
                  attention_probs_dropout_prob=0.1, initializer_range=0.02)
    return config, warnings


def bert_config_to_hf(tf_config: Mapping, *, model_class: str, model_type: str = "bert",
                      act_table: Mapping[str, str] = GOOGLE_TO_HF_ACT) -> dict:
    """HF ``config.json`` content from a Google ``bert_config.json`` dict."""
    act = tf_config.get("hidden_act", "gelu")
    if act not in act_table:
        raise ConfigError(f"unknown hidden_act {act!r}", hint="one of " + ", ".join(act_table))
    config = {"architectures": [model_class], "model_type": model_type,
              **{k: tf_config[k] for k in _SHARED_KEYS if k in tf_config},
              "hidden_act": act_table[act], "layer_norm_eps": 1e-12, "pad_token_id": 0,
              "tie_word_embeddings": True}
    return with_hf_types(config)


def hf_config_to_bert(hf_config: Mapping, *, act_table: Mapping[str, str] = HF_TO_GOOGLE_ACT) -> dict:
    """Google ``bert_config.json`` content from an HF config; refuses activations Google BERT lacks."""
    act = google_act(hf_config.get("hidden_act", "gelu"),  # transformers' BertConfig default: the erf form
                     act_table, code="Google's BERT code")
    return {**{k: hf_config[k] for k in _SHARED_KEYS if k in hf_config}, "hidden_act": act}


# distill init: BERT's MLM head becomes DistilBERT's as is; DistilBERT has absolute positions only
BERT_STUDENT = StudentRules(mlm=BERT_MLM_HEAD, head_activation=lambda c: c.get("hidden_act", "gelu"),
                            requirements=(ABSOLUTE_POSITIONS,))

BERT = Family(
    name="bert", model_types=DETECTION["bert"][0], rules=BERT_RULES, classes=BERT_CLASSES,
    config_to_hf=bert_config_to_hf, config_to_tf=hf_config_to_bert, infer_tf_config=infer_bert_config,
    tied={"cls.predictions.decoder.weight": "bert.embeddings.word_embeddings.weight",
          "cls.predictions.decoder.bias": "cls.predictions.bias"},
    check_tf_config=check_config_against_shapes,
    tf_config_name="bert_config.json", tf_schema=BERT_TF_SCHEMA, hf_schema=BERT_HF_SCHEMA,
    approximate_acts={"gelu": "gelu_new"},
    reference="ckptkit.converters.reference:bert_reference_forward",
    student=BERT_STUDENT,
    signature=re.compile(DETECTION["bert"][1]),
)
FAMILY = BERT
