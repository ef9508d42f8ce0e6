"""What the BERT-like families share, written once: encoder-layer name rules, the BERT-style heads'
rules, the config keys their schemas share, and Google's activation names.

Family modules import from here (and from :mod:`.base`), never from one another, so each family stays
one self-contained module.

Example:
    >>> [r.hf for r in bert_layer_rules("bert/encoder/layer_{layer}/", "{base}encoder.layer.{layer}.")][:1]
    ['{base}encoder.layer.{layer}.attention.self.query.weight']
"""

from __future__ import annotations

import re
from typing import Mapping

from ckptkit.converters.config_schema import (HF_ACTIVATIONS, Spec, count, names, one_of, positive_float,
                                              positive_int, probability, text)
from ckptkit.converters.families.base import Rule
from ckptkit.converters.plan import Step
from ckptkit.errors import ConfigError

__all__ = ["attention_kernel_to_hf", "attention_output_to_hf", "attention_bias_to_hf", "flag_value",
           "layer_tail_rules", "bert_layer_rules", "MLM_TRANSFORM_RULES", "NSP_RULES", "GOOGLE_TO_HF_ACT",
           "HF_TO_GOOGLE_ACT", "SIZE_KEYS", "HF_FLOAT_KEYS", "bert_like_keys", "hf_keys", "with_hf_types",
           "unmapped_act_hint", "google_act", "count_layers", "check_config_against_shapes", "BERT_SHAPE_CHECKS", "BERT_LAYER_INDEX"]


def layer_tail_rules(tf: str, hf: str) -> tuple[Rule, ...]:
    """What every BERT-like layer has after its attention projection: the attention LayerNorm and
    the feed-forward block (``tf``/``hf`` are the layer's name prefixes, with ``{layer}``)."""
    return (
        Rule(f"{tf}attention/output/LayerNorm/gamma", f"{hf}attention.output.LayerNorm.weight"),
        Rule(f"{tf}attention/output/LayerNorm/beta", f"{hf}attention.output.LayerNorm.bias"),
        Rule(f"{tf}intermediate/dense/kernel", f"{hf}intermediate.dense.weight", "transpose"),
        Rule(f"{tf}intermediate/dense/bias", f"{hf}intermediate.dense.bias"),
        Rule(f"{tf}output/dense/kernel", f"{hf}output.dense.weight", "transpose"),
        Rule(f"{tf}output/dense/bias", f"{hf}output.dense.bias"),
        Rule(f"{tf}output/LayerNorm/gamma", f"{hf}output.LayerNorm.weight"),
        Rule(f"{tf}output/LayerNorm/beta", f"{hf}output.LayerNorm.bias"),
    )


def bert_layer_rules(tf: str, hf: str) -> tuple[Rule, ...]:
    """A whole BERT encoder layer (2-D attention kernels, with biases) under the name prefixes ``tf``/``hf``."""
    return (
        *(Rule(f"{tf}attention/self/{p}/kernel", f"{hf}attention.self.{p}.weight", "transpose")
          for p in ("query", "key", "value")),
        *(Rule(f"{tf}attention/self/{p}/bias", f"{hf}attention.self.{p}.bias") for p in ("query", "key", "value")),
        Rule(f"{tf}attention/output/dense/kernel", f"{hf}attention.output.dense.weight", "transpose"),
        Rule(f"{tf}attention/output/dense/bias", f"{hf}attention.output.dense.bias"),
        *layer_tail_rules(tf, hf),
    )


# run_pretraining.py's MLM transform (dense + LayerNorm before the tied decoder), shared with BigBird re-exports.
MLM_TRANSFORM_RULES: tuple[Rule, ...] = (
    Rule("cls/predictions/transform/dense/kernel", "cls.predictions.transform.dense.weight", "transpose", "mlm"),
    Rule("cls/predictions/transform/dense/bias", "cls.predictions.transform.dense.bias", group="mlm"),
    Rule("cls/predictions/transform/LayerNorm/gamma", "cls.predictions.transform.LayerNorm.weight", group="mlm"),
    Rule("cls/predictions/transform/LayerNorm/beta", "cls.predictions.transform.LayerNorm.bias", group="mlm"),
)
# NSP and fine-tuned heads store output_weights as [num_labels, hidden] (matmul transpose_b): HF layout.
NSP_RULES: tuple[Rule, ...] = (
    Rule("cls/seq_relationship/output_weights", "cls.seq_relationship.weight", group="nsp"),
    Rule("cls/seq_relationship/output_bias", "cls.seq_relationship.bias", group="nsp"),
)

# Google's BERT and BigBird: "gelu" is the tanh approximation, transformers' "gelu_new".
GOOGLE_TO_HF_ACT = {"gelu": "gelu_new", "relu": "relu", "tanh": "tanh", "linear": "linear", "swish": "silu"}
HF_TO_GOOGLE_ACT = {"gelu_new": "gelu", "gelu_pytorch_tanh": "gelu", "relu": "relu", "tanh": "tanh",
                    "linear": "linear", "silu": "swish", "swish": "swish"}

# The sizes the tensors' shapes depend on: required in a bert_config.json (Google's code has no usable
# default for them) and in an HF config.json.
HF_FLOAT_KEYS = ("initializer_range", "layer_norm_eps")  # float, not int, in transformers' config classes
SIZE_KEYS = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
             "max_position_embeddings", "type_vocab_size")


def bert_like_keys(activations, *, required: bool) -> dict[str, Spec]:
    """The schema rows BERT, BigBird and ELECTRA configs share (sizes, activation, dropouts)."""
    return {**{key: positive_int(required=required) for key in SIZE_KEYS}, "hidden_act": one_of(*activations),
            "hidden_dropout_prob": probability(), "attention_probs_dropout_prob": probability(),
            "initializer_range": positive_float()}


def hf_keys(*, required: bool = True) -> dict[str, Spec]:
    """The schema rows of a transformers BERT-like ``config.json`` (typed as transformers' config classes)."""
    return {**bert_like_keys(HF_ACTIVATIONS, required=required), "model_type": text(), "architectures": names(),
            **{key: positive_float(real=True) for key in HF_FLOAT_KEYS}, "pad_token_id": count(nullable=True)}


def with_hf_types(config: dict) -> dict:
    """``config`` with the keys transformers types as float written as floats (a TF config may say ``1``)."""
    return {**config, **{key: float(config[key]) for key in HF_FLOAT_KEYS if key in config}}


def unmapped_act_hint(act: str, approximable: tuple[str, ...] = ("gelu",), *,
                      replacement: str = "Google's tanh gelu", trained_with: str = "gelu_new") -> str:
    """What to do about an HF activation the TF code lacks: --approximate-gelu for the other gelu form."""
    if act in approximable:
        return (f"pass --approximate-gelu to write {replacement} instead; the max logit difference it makes "
                "is measured and reported")
    return f"the TF model would compute something else; convert a model trained with {trained_with}"



def google_act(act: str, table: Mapping[str, str], *, code: str) -> str:
    """The TF name of HF activation ACT from TABLE; a ConfigError naming CODE (a Google code base whose
    'gelu' is the tanh approximation) and what to do when it has none."""
    if act not in table:
        raise ConfigError(f"hidden_act {act!r} has no equivalent in {code} (its 'gelu' is the tanh approximation, "
                          "transformers' 'gelu_new')", hint=unmapped_act_hint(act))
    return table[act]

# (config key, TF tensor, axis): the config value must equal that tensor dimension (BERT's and BigBird's names).
BERT_SHAPE_CHECKS: tuple[tuple[str, str, int], ...] = (
    ("vocab_size", "bert/embeddings/word_embeddings", 0),
    ("hidden_size", "bert/embeddings/word_embeddings", 1),
    ("max_position_embeddings", "bert/embeddings/position_embeddings", 0),
    ("type_vocab_size", "bert/embeddings/token_type_embeddings", 0),
    ("intermediate_size", "bert/encoder/layer_0/intermediate/dense/kernel", 1),
)
BERT_LAYER_INDEX = re.compile(r"^bert/encoder/layer_(\d+)/")


def count_layers(names, pattern: re.Pattern = BERT_LAYER_INDEX) -> int:
    """Number of encoder layers: one more than the highest layer index in ``names``."""
    indices = [int(m.group(1)) for m in map(pattern.match, names) if m]
    return max(indices) + 1 if indices else 0


def check_config_against_shapes(config: Mapping, shapes: Mapping[str, tuple[int, ...]], *,
                                checks=BERT_SHAPE_CHECKS, layer_pattern: re.Pattern = BERT_LAYER_INDEX,
                                config_path: str | None = None) -> None:
    """Raise a ConfigError naming the key and the tensor when a config value contradicts a shape."""
    for key, tensor, axis in checks:
        if key in config and tensor in shapes and int(config[key]) != shapes[tensor][axis]:
            raise ConfigError(f"config says {key}={config[key]} but {tensor} has shape {list(shapes[tensor])}",
                              path=config_path, hint="fix the config or pass the matching one with --config")
    layers = count_layers(shapes, layer_pattern)
    if "num_hidden_layers" in config and layers and int(config["num_hidden_layers"]) != layers:
        raise ConfigError(f"config says num_hidden_layers={config['num_hidden_layers']} but the checkpoint has "
                          f"{layers} layers", path=config_path)
    if config.get("num_attention_heads") and int(config["hidden_size"]) % int(config["num_attention_heads"]):
        raise ConfigError(f"hidden_size={config['hidden_size']} is not divisible by "
                          f"num_attention_heads={config['num_attention_heads']}", path=config_path)


# Shape-adaptive readers of attention weights (BigBird and BigBird-Pegasus store them 2-D or 3-D).
def attention_kernel_to_hf(shape, config) -> tuple[Step, ...]:
    """query/key/value [hidden, hidden] or [hidden, heads, head_size] (in x out) -> [hidden, hidden] (out x in)."""
    reshape = (Step("reshape", (shape[0], shape[1] * shape[2])),) if len(shape) == 3 else ()
    return (*reshape, Step("transpose", (1, 0)))


def attention_output_to_hf(shape, config) -> tuple[Step, ...]:
    """Output dense [hidden, hidden] or [heads, head_size, hidden] (in x out) -> [hidden, hidden] (out x in)."""
    reshape = (Step("reshape", (shape[0] * shape[1], shape[2])),) if len(shape) == 3 else ()
    return (*reshape, Step("transpose", (1, 0)))


def attention_bias_to_hf(shape, config) -> tuple[Step, ...]:
    """[hidden] or [heads, head_size] -> [hidden]."""
    return (Step("reshape", (shape[0] * shape[1],)),) if len(shape) == 2 else ()


def flag_value(text: str):
    """A value of an absl flags file / ``pretrain.config`` line: bool, int, float or the unquoted string."""
    lowered = text.strip().lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text.strip().strip("'\"")
