"""BigBird (encoder) as google-research/bigbird writes it and as transformers' BigBird* classes name it.

What differs from BERT (bigbird/core/{modeling,encoder,attention,utils}.py, pretrain/run_pretraining.py):

- The embedding LayerNorm is created by ``EncoderStack`` (post-norm), so it is saved as
  ``bert/encoder/LayerNorm/{gamma,beta}``; transformers keeps it in ``embeddings.LayerNorm``.
- Attention kernels are used as 3-D tensors: query/key/value ``[hidden, heads, head_size]`` and the
  output projection ``[heads, head_size, hidden]``. Checkpoints hold them either 3-D (the layout the
  issue and the trivia-qa checkpoints use; our default when writing) or 2-D ``[hidden, hidden]`` (what
  ``Dense3dLayer``/``Dense3dProjLayer`` in today's repository create with ``get_variable`` and reshape in
  ``call``). Both are read; ``tf_layout="2d"`` writes the latter.
- run_pretraining.py's ``MaskedLMLayer`` opens no ``cls/predictions`` variable scope for its transform:
  ``Dense2dLayer(..., "transform")`` and ``NormLayer(name="transform")`` create ``transform/kernel``,
  ``transform/bias``, ``transform/gamma``, ``transform/beta`` at the top level, while the output bias is
  ``cls/predictions/output_bias``. transformers' old loader looked for
  ``cls/predictions/transform/dense/kernel`` and so could not load the MLM head; the BERT-style names are
  accepted here too, as aliases.
- Google's ``gelu`` is the tanh approximation (``gelu_new``), as in BERT.

Example:
    >>> table = BIGBIRD.name_table(prefix="bert.")
    >>> table.tf_to_hf("bert/encoder/LayerNorm/gamma")[0]
    'bert.embeddings.LayerNorm.weight'
    >>> table.tf_to_hf("transform/kernel")[0]
    'cls.predictions.transform.dense.weight'
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from typing import Mapping

from ckptkit.converters.families import DETECTION
from ckptkit.converters.families.base import TRANSFORMS, Family, ModelClass, Rule, Transform
from ckptkit.converters.config_schema import (ConfigSchema, count, divisible, flag, one_of, positive_int,
                                              text)
from ckptkit.converters.families.bert_like import (BERT_LAYER_INDEX, BERT_SHAPE_CHECKS, GOOGLE_TO_HF_ACT,
                                                   HF_TO_GOOGLE_ACT, MLM_TRANSFORM_RULES, NSP_RULES,
                                                   attention_bias_to_hf, attention_kernel_to_hf,
                                                   attention_output_to_hf, bert_like_keys,
                                                   check_config_against_shapes, count_layers, flag_value, hf_keys,
                                                   google_act, layer_tail_rules, with_hf_types)
from ckptkit.converters.families.options import FamilyOption
from ckptkit.converters.families.student import BERT_MLM_HEAD, StudentRules
from ckptkit.converters.plan import Step
from ckptkit.converters.source import ConfigHints
from ckptkit.errors import ConfigError

__all__ = ["BIGBIRD", "BIGBIRD_RULES", "FLAG_DEFAULTS", "read_bigbird_config", "complete_bigbird_config",
           "bigbird_config_to_hf", "hf_config_to_bigbird", "infer_bigbird_config", "parse_flagfile"]

_LAYER_TF = "bert/encoder/layer_{layer}/"
_LAYER_HF = "{base}encoder.layer.{layer}."


def _heads(config: Mapping) -> int:
    return int(config["num_attention_heads"])








# BigBird's own transforms (merged over the common ones for its rules only): shape-adaptive readers;
# writers produce the 3-D layout (``tf_layout="2d"`` swaps in "transpose").
BIGBIRD_TRANSFORMS: dict[str, Transform] = {
    "bigbird_qkv": Transform(attention_kernel_to_hf, TRANSFORMS["qkv_3d"].to_tf),
    "bigbird_out": Transform(attention_output_to_hf, TRANSFORMS["out_3d"].to_tf),
    "bigbird_bias": Transform(attention_bias_to_hf, lambda shape, config: ()),
}

BIGBIRD_RULES: tuple[Rule, ...] = (
    Rule("bert/embeddings/word_embeddings", "{base}embeddings.word_embeddings.weight"),
    Rule("bert/embeddings/position_embeddings", "{base}embeddings.position_embeddings.weight"),
    Rule("bert/embeddings/token_type_embeddings", "{base}embeddings.token_type_embeddings.weight"),
    Rule("bert/encoder/LayerNorm/gamma", "{base}embeddings.LayerNorm.weight"),
    Rule("bert/encoder/LayerNorm/beta", "{base}embeddings.LayerNorm.bias"),
    *(Rule(f"{_LAYER_TF}attention/self/{p}/kernel", f"{_LAYER_HF}attention.self.{p}.weight", "bigbird_qkv")
      for p in ("query", "key", "value")),
    # use_bias=False (a pretrain.config flag) leaves query/key/value without biases
    *(Rule(f"{_LAYER_TF}attention/self/{p}/bias", f"{_LAYER_HF}attention.self.{p}.bias", "bigbird_bias",
           optional=True) for p in ("query", "key", "value")),
    Rule(f"{_LAYER_TF}attention/output/dense/kernel", f"{_LAYER_HF}attention.output.dense.weight", "bigbird_out"),
    Rule(f"{_LAYER_TF}attention/output/dense/bias", f"{_LAYER_HF}attention.output.dense.bias", optional=True),
    *layer_tail_rules(_LAYER_TF, _LAYER_HF),
    Rule("bert/pooler/dense/kernel", "{base}pooler.weight", "transpose", "pooler"),
    Rule("bert/pooler/dense/bias", "{base}pooler.bias", group="pooler"),
    # run_pretraining.py's MaskedLMLayer: the names the official code really creates (written back)...
    Rule("transform/kernel", "cls.predictions.transform.dense.weight", "transpose", "mlm"),
    Rule("transform/bias", "cls.predictions.transform.dense.bias", group="mlm"),
    Rule("transform/gamma", "cls.predictions.transform.LayerNorm.weight", group="mlm"),
    Rule("transform/beta", "cls.predictions.transform.LayerNorm.bias", group="mlm"),
    Rule("cls/predictions/output_bias", "cls.predictions.bias", group="mlm"),
    # ... and the BERT-style names some re-exports use (read only: the reverse lookup finds the first rule)
    *(dataclasses.replace(rule, optional=True) for rule in MLM_TRANSFORM_RULES),
    *NSP_RULES,
)

_ALL = frozenset({"base", "pooler"})
BIGBIRD_CLASSES: tuple[ModelClass, ...] = (
    ModelClass("BigBirdForPreTraining", _ALL | {"mlm", "nsp"}, "bert.", "AutoModelForPreTraining", "fill-mask"),
    ModelClass("BigBirdForMaskedLM", frozenset({"base", "mlm"}), "bert.", "AutoModelForMaskedLM", "fill-mask"),
    ModelClass("BigBirdModel", _ALL, "", "AutoModel", "feature-extraction"),
)

# bigbird/core/flags.py defaults (max_encoder_length: pretrain/run_pretraining.py) for what a config omits.
FLAG_DEFAULTS: dict[str, object] = {
    "attention_probs_dropout_prob": 0.1, "hidden_act": "gelu", "hidden_dropout_prob": 0.1, "hidden_size": 768,
    "initializer_range": 0.02, "intermediate_size": 3072, "max_position_embeddings": 4096,
    "num_attention_heads": 12, "num_hidden_layers": 12, "type_vocab_size": 2, "use_bias": True,
    "rescale_embedding": False, "scope": "bert", "attention_type": "block_sparse", "norm_type": "postnorm",
    "block_size": 16, "num_rand_blocks": 3, "max_encoder_length": 512,
}

# (config key, TF tensor, axis) checked against shapes and used to fill a config that omits the key.
SHAPE_CHECKS = BERT_SHAPE_CHECKS
_QUERY = "bert/encoder/layer_0/attention/self/query/kernel"
_LAYER_INDEX = BERT_LAYER_INDEX

# TF config key -> HF config key, for the keys whose names differ.
_RENAMED = {"num_rand_blocks": "num_random_blocks", "rescale_embedding": "rescale_embeddings"}
_SHARED = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
           "hidden_dropout_prob", "attention_probs_dropout_prob", "max_position_embeddings", "type_vocab_size",
           "initializer_range", "use_bias", "block_size")
# attention_type as the official code names it -> transformers (simulated_sparse is block_sparse's pattern
# computed with a dense mask)
_ATTENTION = {"block_sparse": "block_sparse", "simulated_sparse": "block_sparse", "original_full": "original_full"}
_SPM_TOKEN_IDS = {"pad_token_id": 0, "eos_token_id": 1, "bos_token_id": 2, "sep_token_id": 66}

# pretrain.config (bigbird/core/flags.py): every key optional (shapes, then the flag defaults, fill the rest).
BIGBIRD_TF_SCHEMA = ConfigSchema(
    {**bert_like_keys(GOOGLE_TO_HF_ACT, required=False), "use_bias": flag(), "rescale_embedding": flag(),
     "scope": text(), "attention_type": one_of(*_ATTENTION), "norm_type": one_of("postnorm", "prenorm"),
     "block_size": positive_int(), "num_rand_blocks": count(), "max_encoder_length": positive_int(),
     "vocab_model_file": text(nullable=True)},
    (divisible("hidden_size", "num_attention_heads"),))
BIGBIRD_HF_SCHEMA = ConfigSchema(
    {**hf_keys(), "attention_type": one_of("block_sparse", "original_full"), "block_size": positive_int(),
     "num_random_blocks": count(), "use_bias": flag(), "rescale_embeddings": flag(),
     **{key: count(nullable=True) for key in _SPM_TOKEN_IDS}},
    (divisible("hidden_size", "num_attention_heads"),))




def parse_flagfile(text: str) -> dict:
    """An absl flagfile (``--key=value``, ``--flag`` / ``--noflag`` lines, ``#`` comments) as a dict.

    Example:
        >>> parse_flagfile("--block_size=64\\n# comment\\n--rescale_embedding\\n--nouse_bias\\n--hidden_act=gelu")
        {'block_size': 64, 'rescale_embedding': True, 'use_bias': False, 'hidden_act': 'gelu'}
    """
    config = {}
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith("--"):
            continue
        key, sep, value = line[2:].partition("=")
        if sep:
            config[key] = flag_value(value)
        elif key.startswith("no") and key[2:] in FLAG_DEFAULTS:
            config[key[2:]] = False
        else:
            config[key] = True
    return config


def read_bigbird_config(path: str) -> dict:
    """A BigBird config: ``pretrain.config`` (JSON from ``flags.save``, or an absl flagfile) or a JSON file
    such as KoBigBird's ``pretrain_config.json``."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as e:
        raise ConfigError(f"cannot read the config ({e.strerror})", path=path) from e
    try:
        config = json.loads(text)
    except json.JSONDecodeError:
        config = parse_flagfile(text)
        if not config:
            raise ConfigError("neither JSON nor an absl flagfile (--key=value lines)", path=path,
                              hint="pass the pretrain.config the official code wrote, or a JSON config") from None
    if not isinstance(config, dict):
        raise ConfigError("not a JSON object", path=path)
    return config


def _spm_vocab_size(path: str) -> int | None:
    """The piece count of a SentencePiece model; None when it cannot be read (the tokenizer step says why)."""
    try:
        import sentencepiece

        return int(sentencepiece.SentencePieceProcessor(model_file=path).get_piece_size())
    except (ImportError, OSError, RuntimeError, ValueError):
        return None


def _find_spm(config: Mapping, hints: ConfigHints) -> str | None:
    """``--spm``, else the config's ``vocab_model_file`` name or ``vocab.model`` beside the checkpoint or config."""
    names = [os.path.basename(str(config["vocab_model_file"]))] if config.get("vocab_model_file") else []
    if hints.source is None:
        return None
    return hints.source.spm or hints.source.companion((*names, "vocab.model"), near=(hints.config_path,))


def complete_bigbird_config(config: Mapping, shapes: Mapping[str, tuple[int, ...]], hints: ConfigHints | None = None
                            ) -> dict:
    """A full BigBird TF config: the file's values, else the tensor shapes, else the official flag defaults.

    ``vocab_size`` missing from the file comes from the SentencePiece model (``vocab_model_file`` or a
    ``vocab.model`` beside the config/checkpoint) when there is one, else from the embedding shape.
    Heads come from 3-D kernels when the file does not say.

    Example:
        >>> shapes = {"bert/embeddings/word_embeddings": (100, 32),
        ...           "bert/encoder/layer_0/attention/self/query/kernel": (32, 4, 8)}
        >>> c = complete_bigbird_config({"block_size": 4}, shapes)
        >>> c["num_attention_heads"], c["vocab_size"], c["block_size"], c["num_rand_blocks"]
        (4, 100, 4, 3)
    """
    hints = hints or ConfigHints()
    from_shapes = {key: shapes[t][axis] for key, t, axis in SHAPE_CHECKS if t in shapes}
    layers = count_layers(shapes, _LAYER_INDEX)
    if layers:
        from_shapes["num_hidden_layers"] = layers
    if _QUERY in shapes and len(shapes[_QUERY]) == 3:
        from_shapes["num_attention_heads"] = shapes[_QUERY][1]
    if hints.num_heads:
        from_shapes["num_attention_heads"] = int(hints.num_heads)
    completed = {**FLAG_DEFAULTS, **from_shapes, **config}
    if hints.num_heads:
        completed["num_attention_heads"] = int(hints.num_heads)
    if "vocab_size" not in config:
        spm = _find_spm(config, hints)
        size = _spm_vocab_size(spm) if spm else None
        if size is not None:
            completed["vocab_size"] = size
    return completed


def check_bigbird_config(config: Mapping, shapes: Mapping[str, tuple[int, ...]], *, config_path: str | None = None
                         ) -> None:
    """Raise a ConfigError when the config contradicts the shapes or transformers cannot run it."""
    check_config_against_shapes(config, shapes, checks=SHAPE_CHECKS, layer_pattern=_LAYER_INDEX,
                                config_path=config_path)
    if _QUERY in shapes and len(shapes[_QUERY]) == 3 and "num_attention_heads" in config \
            and int(config["num_attention_heads"]) != shapes[_QUERY][1]:
        raise ConfigError(f"config says num_attention_heads={config['num_attention_heads']} but {_QUERY} has "
                          f"shape {list(shapes[_QUERY])}", path=config_path, hint="fix the config or --num-heads")
    if config.get("norm_type", "postnorm") != "postnorm":
        raise ConfigError(f"norm_type={config['norm_type']!r}: transformers' BigBird encoder is post-norm only",
                          path=config_path, hint="only postnorm (BERT-style) BigBird encoders can be converted")
    if config.get("attention_type", "block_sparse") not in _ATTENTION:
        raise ConfigError(f"unknown attention_type {config['attention_type']!r}", path=config_path,
                          hint="one of " + ", ".join(_ATTENTION))


def infer_bigbird_config(shapes: Mapping[str, tuple[int, ...]], *, num_heads: int | None = None
                         ) -> tuple[dict, list[str]]:
    """A BigBird TF config from shapes and the official flag defaults, and the warnings it implies."""
    config = complete_bigbird_config({}, shapes, ConfigHints(num_heads=num_heads))
    warnings = []
    if not num_heads and not (_QUERY in shapes and len(shapes[_QUERY]) == 3):
        warnings.append(f"num_attention_heads not in a config and 2-D kernels: assumed the flag default "
                        f"{config['num_attention_heads']}; pass --num-heads or --config if that is wrong")
    return config, warnings


def bigbird_config_to_hf(tf_config: Mapping, *, model_class: str) -> dict:
    """HF ``config.json`` (``model_type: big_bird``) from a BigBird TF config.

    Example:
        >>> c = bigbird_config_to_hf({**FLAG_DEFAULTS, "vocab_size": 100, "num_rand_blocks": 2}, model_class="BigBirdModel")
        >>> c["hidden_act"], c["num_random_blocks"], c["rescale_embeddings"], c["attention_type"]
        ('gelu_new', 2, False, 'block_sparse')
    """
    config = {**FLAG_DEFAULTS, **tf_config}
    act = config["hidden_act"]
    if act not in GOOGLE_TO_HF_ACT:
        raise ConfigError(f"unknown hidden_act {act!r}", hint="one of " + ", ".join(GOOGLE_TO_HF_ACT))
    vocab = int(config["vocab_size"])
    hf_config = {"architectures": [model_class], "model_type": "big_bird",
                 **{k: config[k] for k in _SHARED if k in config},
                 **{hf: config[tf] for tf, hf in _RENAMED.items()},
                 "attention_type": _ATTENTION.get(config["attention_type"], config["attention_type"]),
                 "hidden_act": GOOGLE_TO_HF_ACT[act], "layer_norm_eps": 1e-12, "tie_word_embeddings": True,
                 **{k: (v if v < vocab else None) for k, v in _SPM_TOKEN_IDS.items()}}
    return with_hf_types(hf_config)


def hf_config_to_bigbird(hf_config: Mapping) -> dict:
    """The official code's config (``pretrain.config`` JSON, as ``flags.save`` writes it) from an HF config."""
    act = google_act(hf_config.get("hidden_act", "gelu_new"), HF_TO_GOOGLE_ACT, code="Google's BigBird code")
    attention = hf_config.get("attention_type", "block_sparse")
    return {**{k: hf_config[k] for k in _SHARED if k in hf_config},
            **{tf: hf_config[hf] for tf, hf in _RENAMED.items() if hf in hf_config},
            "hidden_act": act, "attention_type": attention, "norm_type": "postnorm",
            "scope": "bert", "max_encoder_length": int(hf_config.get("max_position_embeddings", 4096))}


# distill init: BERT's head layout; the head applies hidden_act (gelu_new when unset)
BIGBIRD_STUDENT = StudentRules(
    mlm=BERT_MLM_HEAD, head_activation=lambda c: c.get("hidden_act", "gelu_new"),
    requirements=(("rescale_embeddings", False, False, "DistilBERT does not rescale embeddings"),))

BIGBIRD_OPTIONS = (
    FamilyOption("tf_layout", "BigBird --to tf1: attention kernels as 3-D [hidden, heads, head_size] (default, as "
                 "the published checkpoints) or 2-D (what today's official Dense3dLayer creates).", choices=("3d", "2d")),
)

BIGBIRD = Family(
    name="bigbird", model_types=DETECTION["bigbird"][0], rules=BIGBIRD_RULES, classes=BIGBIRD_CLASSES,
    config_to_hf=bigbird_config_to_hf, config_to_tf=hf_config_to_bigbird, infer_tf_config=infer_bigbird_config,
    tied={"cls.predictions.decoder.weight": "bert.embeddings.word_embeddings.weight",
          "cls.predictions.decoder.bias": "cls.predictions.bias"},
    check_tf_config=check_bigbird_config, read_tf_config=read_bigbird_config,
    tf_config_name="pretrain.config", tf_config_aliases=("pretrain_config.json", "bigbird_config.json"),
    tf_schema=BIGBIRD_TF_SCHEMA, hf_schema=BIGBIRD_HF_SCHEMA, approximate_acts={"gelu": "gelu_new"},
    complete_tf_config=complete_bigbird_config,
    tf_layouts={"3d": {}, "2d": {"bigbird_qkv": "transpose", "bigbird_out": "transpose"}},
    default_tf_layout="3d", spm_names=("vocab.model", "gpt2.model", "pegasus.model"),
    reference="ckptkit.converters.reference_families:bigbird_reference_forward",
    student=BIGBIRD_STUDENT,
    # every BERT name plus the embedding LayerNorm under bert/encoder and the MLM transform at the top level,
    # so it outscores bert exactly when those are present (a tie goes to bert, registered first).
    signature=re.compile(DETECTION["bigbird"][1]),
    transforms=BIGBIRD_TRANSFORMS, options=BIGBIRD_OPTIONS,
)
FAMILY = BIGBIRD
