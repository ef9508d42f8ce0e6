"""ALBERT as google-research/albert writes it (modeling.py, run_pretraining.py, run_classifier.py) and as
transformers' Albert* classes name it.

What differs from BERT: factorised embeddings (a ``[vocab, embedding_size]`` table projected to the hidden
size by ``bert/encoder/embedding_hidden_mapping_in``; with equal sizes the official code has no projection and
transformers' exact identity stands in for it, see ``ALBERT_GENERATED``), and layers sharing weights: ``num_hidden_groups``
weight sets ``bert/encoder/transformer/group_G/``, each ``inner_group_num`` blocks ``inner_group_I/``; layer
``l`` of ``num_hidden_layers`` runs group ``int(l / num_hidden_layers * num_hidden_groups)``. Inside a block
the attention is ``attention_1``, the feed-forward ``ffn_1/intermediate/dense`` and
``ffn_1/intermediate/output/dense``, and the two LayerNorms are ``LayerNorm`` then ``LayerNorm_1``. The MLM
head projects hidden -> embedding size before the decoder tied to the word embeddings; the
sentence-order head is stored as ``cls/seq_relationship``. ALBERT's ``gelu`` is the tanh form
(transformers' ``gelu_new``). The LAMB / AdamW slots (``adam_m``, ``adam_v``) and ``global_step`` are
dropped and reported.

Example:
    >>> table = ALBERT.name_table(prefix="albert.")
    >>> table.tf_to_hf("bert/encoder/transformer/group_1/inner_group_0/ffn_1/intermediate/output/dense/kernel")[0]
    'albert.encoder.albert_layer_groups.1.albert_layers.0.ffn_output.weight'
    >>> sorted(ALBERT.stack_counts({"num_hidden_groups": 2, "inner_group_num": 1}).items())
    [('group', 2), ('inner', 1)]
"""

from __future__ import annotations

import re
from typing import Mapping

from ckptkit.converters.config_schema import ConfigSchema, divisible, positive_int
from ckptkit.converters.families import DETECTION
from ckptkit.converters.families.base import Family, Generated, LayerStack, ModelClass, Rule
from ckptkit.converters.families.options import FamilyOption
from ckptkit.converters.families.bert_like import (GOOGLE_TO_HF_ACT, HF_TO_GOOGLE_ACT, bert_like_keys, hf_keys,
                                                   google_act, with_hf_types)
from ckptkit.converters.families.student import StudentRules
from ckptkit.errors import ConfigError

__all__ = ["ALBERT", "FAMILY", "ALBERT_RULES", "ALBERT_STACKS", "albert_layer_groups", "albert_config_to_hf",
           "hf_config_to_albert", "infer_albert_config", "check_albert_config", "complete_albert_config", "ALBERT_STUDENT",
           "ALBERT_GENERATED"]

_TF_BLOCK = "bert/encoder/transformer/group_{group}/inner_group_{inner}/"
_HF_BLOCK = "{base}encoder.albert_layer_groups.{group}.albert_layers.{inner}."
# (TF name under a block, HF name under a block, transform)
_BLOCK = (
    *((f"attention_1/self/{p}/kernel", f"attention.{p}.weight", "transpose") for p in ("query", "key", "value")),
    *((f"attention_1/self/{p}/bias", f"attention.{p}.bias", "copy") for p in ("query", "key", "value")),
    ("attention_1/output/dense/kernel", "attention.dense.weight", "transpose"),
    ("attention_1/output/dense/bias", "attention.dense.bias", "copy"),
    ("LayerNorm/gamma", "attention.LayerNorm.weight", "copy"),
    ("LayerNorm/beta", "attention.LayerNorm.bias", "copy"),
    ("ffn_1/intermediate/dense/kernel", "ffn.weight", "transpose"),
    ("ffn_1/intermediate/dense/bias", "ffn.bias", "copy"),
    ("ffn_1/intermediate/output/dense/kernel", "ffn_output.weight", "transpose"),
    ("ffn_1/intermediate/output/dense/bias", "ffn_output.bias", "copy"),
    ("LayerNorm_1/gamma", "full_layer_layer_norm.weight", "copy"),
    ("LayerNorm_1/beta", "full_layer_layer_norm.bias", "copy"),
)

ALBERT_RULES: tuple[Rule, ...] = (
    Rule("bert/embeddings/word_embeddings", "{base}embeddings.word_embeddings.weight"),
    Rule("bert/embeddings/position_embeddings", "{base}embeddings.position_embeddings.weight"),
    Rule("bert/embeddings/token_type_embeddings", "{base}embeddings.token_type_embeddings.weight"),
    Rule("bert/embeddings/LayerNorm/gamma", "{base}embeddings.LayerNorm.weight"),
    Rule("bert/embeddings/LayerNorm/beta", "{base}embeddings.LayerNorm.bias"),
    Rule("bert/encoder/embedding_hidden_mapping_in/kernel", "{base}encoder.embedding_hidden_mapping_in.weight",
         "transpose"),
    Rule("bert/encoder/embedding_hidden_mapping_in/bias", "{base}encoder.embedding_hidden_mapping_in.bias"),
    *(Rule(_TF_BLOCK + tf, _HF_BLOCK + hf, transform) for tf, hf, transform in _BLOCK),
    Rule("bert/pooler/dense/kernel", "{base}pooler.weight", "transpose", "pooler"),
    Rule("bert/pooler/dense/bias", "{base}pooler.bias", group="pooler"),
    # run_pretraining.py: dense hidden -> embedding_size, LayerNorm, decoder tied to the word embeddings
    Rule("cls/predictions/transform/dense/kernel", "predictions.dense.weight", "transpose", "mlm"),
    Rule("cls/predictions/transform/dense/bias", "predictions.dense.bias", group="mlm"),
    Rule("cls/predictions/transform/LayerNorm/gamma", "predictions.LayerNorm.weight", group="mlm"),
    Rule("cls/predictions/transform/LayerNorm/beta", "predictions.LayerNorm.bias", group="mlm"),
    Rule("cls/predictions/output_bias", "predictions.bias", group="mlm"),
    # the sentence-order head keeps BERT's NSP scope; [2, hidden] is the HF layout already
    Rule("cls/seq_relationship/output_weights", "sop_classifier.classifier.weight", group="sop"),
    Rule("cls/seq_relationship/output_bias", "sop_classifier.classifier.bias", group="sop"),
    # run_classifier.py / classifier_utils.py: output_weights [num_labels, hidden] on the pooled output
    Rule("output_weights", "classifier.weight", group="classifier"),
    Rule("output_bias", "classifier.bias", group="classifier"),
    Rule("cls/squad/output_weights", "qa_outputs.weight", group="qa"),
    Rule("cls/squad/output_bias", "qa_outputs.bias", group="qa"),
)

# modeling.py projects the embeddings only `if input_width != hidden_size`: with equal sizes there is no
# embedding_hidden_mapping_in, while transformers' AlbertModel always has one, so it is an exact identity there
_SAME_WIDTH = ("embedding_size", "hidden_size")
ALBERT_GENERATED = (
    Generated("{base}encoder.embedding_hidden_mapping_in.weight", "bert/encoder/embedding_hidden_mapping_in/kernel",
              "eye", ("hidden_size", "embedding_size"), _SAME_WIDTH),
    Generated("{base}encoder.embedding_hidden_mapping_in.bias", "bert/encoder/embedding_hidden_mapping_in/bias",
              "zeros", ("hidden_size",), _SAME_WIDTH),
)

ALBERT_STACKS = (LayerStack("group", "num_hidden_groups"), LayerStack("inner", "inner_group_num"))

_POOLED = frozenset({"base", "pooler"})
ALBERT_CLASSES: tuple[ModelClass, ...] = (
    ModelClass("AlbertForPreTraining", _POOLED | {"mlm", "sop"}, "albert.", "AutoModelForPreTraining", "fill-mask"),
    ModelClass("AlbertForMaskedLM", frozenset({"base", "mlm"}), "albert.", "AutoModelForMaskedLM", "fill-mask"),
    ModelClass("AlbertForSequenceClassification", _POOLED | {"classifier"}, "albert.",
               "AutoModelForSequenceClassification", "text-classification"),
    ModelClass("AlbertForQuestionAnswering", frozenset({"base", "qa"}), "albert.", "AutoModelForQuestionAnswering",
               "question-answering"),
    ModelClass("AlbertModel", _POOLED, "", "AutoModel", "feature-extraction"),
)

_GROUPS_KEYS = {"embedding_size": positive_int(), "num_hidden_groups": positive_int(),
                "inner_group_num": positive_int()}
_RELATIONS = (divisible("hidden_size", "num_attention_heads"),)
ALBERT_TF_SCHEMA = ConfigSchema({**bert_like_keys(GOOGLE_TO_HF_ACT, required=True), **_GROUPS_KEYS}, _RELATIONS)
ALBERT_HF_SCHEMA = ConfigSchema({**hf_keys(), **_GROUPS_KEYS}, _RELATIONS)

_SHARED_KEYS = ("vocab_size", "embedding_size", "hidden_size", "num_hidden_layers", "num_hidden_groups",
                "num_attention_heads", "intermediate_size", "inner_group_num", "hidden_dropout_prob",
                "attention_probs_dropout_prob", "max_position_embeddings", "type_vocab_size", "initializer_range")
_FIRST = _TF_BLOCK.format(group=0, inner=0)
# (config key, TF tensor, axis): the config value must equal that tensor dimension
ALBERT_SHAPE_CHECKS: tuple[tuple[str, str, int], ...] = (
    ("vocab_size", "bert/embeddings/word_embeddings", 0),
    ("embedding_size", "bert/embeddings/word_embeddings", 1),
    ("max_position_embeddings", "bert/embeddings/position_embeddings", 0),
    ("type_vocab_size", "bert/embeddings/token_type_embeddings", 0),
    ("hidden_size", _FIRST + "attention_1/self/query/kernel", 1),
    ("intermediate_size", _FIRST + "ffn_1/intermediate/dense/kernel", 1),
)
_GROUP = re.compile(r"^bert/encoder/transformer/group_(\d+)/inner_group_(\d+)/")


def _stack_sizes(names) -> dict[str, int]:
    """num_hidden_groups / inner_group_num from the names (absent: no shared block in the checkpoint)."""
    found = [m.groups() for m in map(_GROUP.match, names) if m]
    if not found:
        return {}
    return {"num_hidden_groups": max(int(g) for g, _ in found) + 1,
            "inner_group_num": max(int(i) for _, i in found) + 1}


def infer_albert_config(shapes: Mapping[str, tuple[int, ...]], *, num_heads: int | None = None
                        ) -> tuple[dict, list[str]]:
    """An albert_config.json from tensor shapes alone, and the warnings it implies: the number of layers
    (how often the shared groups run) and the heads are not in the shapes."""
    config = {key: shapes[t][axis] for key, t, axis in ALBERT_SHAPE_CHECKS if t in shapes}
    config.update(_stack_sizes(shapes))
    hidden = int(config.get("hidden_size", config.get("embedding_size", 64)))
    config.setdefault("hidden_size", hidden)
    warnings = ["num_hidden_layers not in a config: assumed 12 (the released ALBERT models); pass --config "
                "with albert_config.json if that is wrong"]
    if num_heads is None:
        num_heads = max(1, hidden // 64)
        warnings.append(f"num_attention_heads not in a config: assumed {num_heads} (head size 64); "
                        "pass --num-heads or --config if that is wrong")
    config.update(num_hidden_layers=max(12, config.get("num_hidden_groups", 1)), num_attention_heads=num_heads,
                  hidden_act="gelu", hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0,
                  initializer_range=0.02)
    return config, warnings


def complete_albert_config(config: Mapping, shapes: Mapping[str, tuple[int, ...]], hints=None) -> dict:
    """The config with what the official AlbertConfig would default (embedding_size, num_hidden_groups,
    inner_group_num) taken from the checkpoint instead; contradictions are left to :func:`check_albert_config`."""
    found = {key: shapes[t][axis] for key, t, axis in ALBERT_SHAPE_CHECKS[:2] if t in shapes}
    return {**found, **_stack_sizes(shapes), **config}


def check_albert_config(config: Mapping, shapes: Mapping[str, tuple[int, ...]], *,
                        config_path: str | None = None) -> None:
    """Raise a ConfigError naming the key and the tensor when a config value contradicts the checkpoint."""
    for key, tensor, axis in ALBERT_SHAPE_CHECKS:
        if key in config and tensor in shapes and int(config[key]) != shapes[tensor][axis]:
            raise ConfigError(f"config says {key}={config[key]} but {tensor} has shape {list(shapes[tensor])}",
                              path=config_path, hint="fix the config or pass the matching one with --config")
    for key, found in _stack_sizes(shapes).items():
        if int(config.get(key, 1)) != found:
            raise ConfigError(f"config says {key}={config.get(key, 1)} but the checkpoint has {found}",
                              path=config_path, hint="fix the config or pass the matching one with --config")
    if int(config.get("num_hidden_groups", 1)) > int(config.get("num_hidden_layers", 1)):
        raise ConfigError(f"num_hidden_groups={config['num_hidden_groups']} is more than "
                          f"num_hidden_layers={config['num_hidden_layers']}", path=config_path)


def albert_config_to_hf(tf_config: Mapping, *, model_class: str) -> dict:
    """HF ``config.json`` (``model_type: albert``) from an ``albert_config.json`` dict."""
    act = tf_config.get("hidden_act", "gelu")
    if act not in GOOGLE_TO_HF_ACT:
        raise ConfigError(f"unknown hidden_act {act!r}", hint="one of " + ", ".join(GOOGLE_TO_HF_ACT))
    config = {"architectures": [model_class], "model_type": "albert", "num_hidden_groups": 1, "inner_group_num": 1,
              **{k: tf_config[k] for k in _SHARED_KEYS if k in tf_config}, "hidden_act": GOOGLE_TO_HF_ACT[act],
              "layer_norm_eps": 1e-12, "pad_token_id": 0, "bos_token_id": 2, "eos_token_id": 3,
              "tie_word_embeddings": True}
    return with_hf_types(config)


def hf_config_to_albert(hf_config: Mapping) -> dict:
    """``albert_config.json`` content from an HF config; refuses activations Google's ALBERT lacks."""
    act = google_act(hf_config.get("hidden_act", "gelu_new"),  # transformers' AlbertConfig default
                     HF_TO_GOOGLE_ACT, code="google-research/albert")
    return {"num_hidden_groups": 1, "inner_group_num": 1, "down_scale_factor": 1,
            **{k: hf_config[k] for k in _SHARED_KEYS if k in hf_config}, "hidden_act": act}




def albert_layer_groups(config: Mapping) -> list[int]:
    """The group each of the ``num_hidden_layers`` layers runs (the official ``group_idx``)."""
    from ckptkit.converters.reference_albert import albert_group_of  # the reference forward imports NumPy

    layers, groups = int(config["num_hidden_layers"]), int(config.get("num_hidden_groups", 1))
    return [albert_group_of(layer, layers=layers, groups=groups) for layer in range(layers)]


# distill init (--arch same): a student keeps the groups its chosen layers run and runs them fewer times. One
# group: an exact copy of every weight with a smaller num_hidden_layers. Several: the chosen layers decide which
# groups stay (num_hidden_groups shrinks with them). ALBERT's MLM head has no DistilBERT form (--arch distilbert
# is refused).
ALBERT_STUDENT = StudentRules(
    layer_sets=albert_layer_groups, sets_key="num_hidden_groups",
    mlm={}, tied=(("predictions.decoder.weight", "{base}embeddings.word_embeddings.weight", "tie_word_embeddings"),
                  ("predictions.decoder.bias", "predictions.bias", None)),
    layer_pattern=re.compile(r"^(?P<base>(?:albert\.)?)encoder\.albert_layer_groups\.(?P<layer>\d+)\.(?P<rest>.+)\Z"),
    layer_name="{base}encoder.albert_layer_groups.{layer}.{rest}")

ALBERT_OPTIONS = (
    FamilyOption("keep_accents", "ALBERT's SentencePiece tokenizer: keep accents (default false: stripped, as "
                 "the official ALBERT tokenization.py does).", type=bool),
)

ALBERT = Family(
    name="albert", model_types=DETECTION["albert"][0], rules=ALBERT_RULES, classes=ALBERT_CLASSES,
    config_to_hf=albert_config_to_hf, config_to_tf=hf_config_to_albert, infer_tf_config=infer_albert_config,
    tied={"predictions.decoder.weight": "albert.embeddings.word_embeddings.weight",
          "predictions.decoder.bias": "predictions.bias"},
    check_tf_config=check_albert_config, complete_tf_config=complete_albert_config, tf_config_name="albert_config.json", tf_config_aliases=("bert_config.json",),
    tf_schema=ALBERT_TF_SCHEMA, hf_schema=ALBERT_HF_SCHEMA, approximate_acts={"gelu": "gelu_new"},
    reference="ckptkit.converters.reference_albert:albert_reference_forward",
    student=ALBERT_STUDENT, spm_names=("30k-clean.model", "spiece.model"), stacks=ALBERT_STACKS,
    options=ALBERT_OPTIONS, generated=ALBERT_GENERATED,
    signature=re.compile(DETECTION["albert"][1]),
)
FAMILY = ALBERT
