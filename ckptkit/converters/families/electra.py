"""ELECTRA as google-research/electra writes it (model/modeling.py, run_pretraining.py) and as
transformers' Electra* classes name it.

One pretraining checkpoint holds two models (:class:`~ckptkit.converters.families.base.Part`):

- the discriminator: ``electra/embeddings/*`` (shared), ``electra/embeddings_project`` (only when
  embedding_size != hidden_size), ``electra/encoder/layer_i/*`` and ``discriminator_predictions/dense``
  + ``dense_1`` -> ``ElectraForPreTraining``;
- the generator: the *same* ``electra/embeddings/*`` (``BertModel`` opens ``electra/embeddings`` with
  AUTO_REUSE unless untied_generator_embeddings), its own ``generator/embeddings_project`` and
  ``generator/encoder/layer_i/*`` (untied generator, the default) and ``generator_predictions/{dense,
  LayerNorm,output_bias}`` -> ``ElectraForMaskedLM``. With ``untied_generator=False`` the generator *is*
  the discriminator's encoder and only its head differs.

The generator part is planned through canonical names: ``generator/encoder/...`` is read as
``electra/encoder/...``. Generator sizes come from shapes; its heads from the config, else
``max(1, hidden // 64)`` exactly as run_pretraining.py's ``get_generator_config`` sets them.

ELECTRA's ``gelu`` is the exact erf form (``tf.math.erf``), which transformers also calls ``gelu``:
unlike BERT and BigBird it maps to itself. transformers' ``ElectraGeneratorPredictions`` always uses
``gelu``, so a generator trained with another activation is refused.

Fine-tuned classifiers: the official fine-tuning head (run_finetuning.py: ``task_specific/<task>/dense``,
one dense layer on the [CLS] hidden state, no pooler) becomes ``ElectraForSequenceClassification``, whose
head is dense -> gelu -> out_proj. The identity gelu(z) - gelu(-z) = z makes that exact: ``classifier.dense``
computes [z; -z; 0...] (z = the task's logits) and ``out_proj`` subtracts the two halves. This needs
2 * num_labels <= hidden_size; the result equals the TF logits to float rounding. Going back to TF writes
transformers' head names (``classifier/dense`` + ``classifier/out_proj``), which also convert here.

Example:
    >>> parts = ELECTRA.split({"electra/encoder/layer_0/output/dense/kernel": (8, 8),
    ...                        "generator/encoder/layer_0/output/dense/kernel": (4, 4),
    ...                        "generator_predictions/output_bias": (10,)})
    >>> [p.name for p in parts], parts[1].rename("generator/encoder/layer_0/output/dense/kernel")
    (['discriminator', 'generator'], 'electra/encoder/layer_0/output/dense/kernel')
"""

from __future__ import annotations

import re
from typing import Mapping

from ckptkit.converters.config_io import read_json_config
from ckptkit.converters.config_schema import ConfigSchema, divisible, one_of, positive_int, section
from ckptkit.converters.families import DETECTION
from ckptkit.converters.families.base import Family, ModelClass, Part, Rule
from ckptkit.converters.families.options import DISTILL_INIT, FamilyOption
from ckptkit.converters.families.student import ABSOLUTE_POSITIONS, StudentRules
from ckptkit.converters.families.bert_like import (bert_layer_rules, bert_like_keys, count_layers, hf_keys,
                                                   unmapped_act_hint, with_hf_types)
from ckptkit.converters.source import ConfigHints
from ckptkit.errors import ConfigError

__all__ = ["ELECTRA", "ELECTRA_RULES", "ELECTRA_TO_HF_ACT", "HF_TO_ELECTRA_ACT", "split_electra",
           "complete_electra_config", "electra_config_to_hf", "hf_config_to_electra", "join_electra_configs"]

# google-research/electra model/modeling.py: "gelu" is the erf form -> transformers "gelu" (not gelu_new).
ELECTRA_TO_HF_ACT = {"gelu": "gelu", "relu": "relu", "tanh": "tanh", "linear": "linear", "swish": "silu"}
HF_TO_ELECTRA_ACT = {"gelu": "gelu", "relu": "relu", "tanh": "tanh", "linear": "linear", "silu": "swish",
                     "swish": "swish"}


ELECTRA_RULES: tuple[Rule, ...] = (
    Rule("electra/embeddings/word_embeddings", "{base}embeddings.word_embeddings.weight"),
    Rule("electra/embeddings/position_embeddings", "{base}embeddings.position_embeddings.weight"),
    Rule("electra/embeddings/token_type_embeddings", "{base}embeddings.token_type_embeddings.weight"),
    Rule("electra/embeddings/LayerNorm/gamma", "{base}embeddings.LayerNorm.weight"),
    Rule("electra/embeddings/LayerNorm/beta", "{base}embeddings.LayerNorm.bias"),
    Rule("electra/embeddings_project/kernel", "{base}embeddings_project.weight", "transpose", optional=True),
    Rule("electra/embeddings_project/bias", "{base}embeddings_project.bias", optional=True),
    *bert_layer_rules("electra/encoder/layer_{layer}/", "{base}encoder.layer.{layer}."),
    Rule("discriminator_predictions/dense/kernel", "discriminator_predictions.dense.weight", "transpose", "disc"),
    Rule("discriminator_predictions/dense/bias", "discriminator_predictions.dense.bias", group="disc"),
    Rule("discriminator_predictions/dense_1/kernel", "discriminator_predictions.dense_prediction.weight",
         "transpose", "disc"),
    Rule("discriminator_predictions/dense_1/bias", "discriminator_predictions.dense_prediction.bias", group="disc"),
    Rule("generator_predictions/dense/kernel", "generator_predictions.dense.weight", "transpose", "gen"),
    Rule("generator_predictions/dense/bias", "generator_predictions.dense.bias", group="gen"),
    Rule("generator_predictions/LayerNorm/gamma", "generator_predictions.LayerNorm.weight", group="gen"),
    Rule("generator_predictions/LayerNorm/beta", "generator_predictions.LayerNorm.bias", group="gen"),
    Rule("generator_predictions/output_bias", "generator_lm_head.bias", group="gen"),
    Rule("classifier/dense/kernel", "classifier.dense.weight", "transpose", "classifier"),
    Rule("classifier/dense/bias", "classifier.dense.bias", group="classifier"),
    Rule("classifier/out_proj/kernel", "classifier.out_proj.weight", "transpose", "classifier"),
    Rule("classifier/out_proj/bias", "classifier.out_proj.bias", group="classifier"),
    # run_finetuning.py's one-dense head, exactly (one-way: see the module docstring).
    Rule("task_specific/{task}/dense/kernel", "classifier.dense.weight", "signed_pair_kernel", "classifier", True),
    Rule("task_specific/{task}/dense/kernel", "classifier.out_proj.weight", "pair_difference", "classifier", True),
    Rule("task_specific/{task}/dense/bias", "classifier.dense.bias", "signed_pair_bias", "classifier", True),
    Rule("task_specific/{task}/dense/bias", "classifier.out_proj.bias", "zeros", "classifier", True),
)

ELECTRA_CLASSES: tuple[ModelClass, ...] = (
    ModelClass("ElectraForPreTraining", frozenset({"base", "disc"}), "electra.", "AutoModelForPreTraining",
               "token-classification"),
    ModelClass("ElectraForMaskedLM", frozenset({"base", "gen"}), "electra.", "AutoModelForMaskedLM", "fill-mask"),
    ModelClass("ElectraForSequenceClassification", frozenset({"base", "classifier"}), "electra.",
               "AutoModelForSequenceClassification", "text-classification"),
    ModelClass("ElectraModel", frozenset({"base"}), "", "AutoModel", "feature-extraction"),
)

_GEN_SCOPES = ("generator/", "generator_predictions/")
_DISC_ONLY = ("electra/encoder/", "electra/embeddings_project/", "discriminator_predictions/")


def _generator_rename(name: str) -> str:
    return "electra/" + name[len("generator/"):] if name.startswith("generator/") else name


def _generator_unrename(name: str) -> str:
    return "generator/" + name[len("electra/"):] if name.startswith(("electra/encoder/",
                                                                     "electra/embeddings_project/")) else name


def _exclude_generator(name: str) -> str | None:
    return "generator weights (converted into the generator folder)" if name.startswith(_GEN_SCOPES) else None


def _exclude_discriminator(name: str) -> str | None:
    return "discriminator weights (converted into the discriminator folder)" if name.startswith(_DISC_ONLY) \
        else None


def _exclude_discriminator_head(name: str) -> str | None:
    return "discriminator head (converted into the discriminator folder)" \
        if name.startswith("discriminator_predictions/") else None


def _discriminator_config(config: Mapping) -> dict:
    return {k: v for k, v in config.items() if k != "generator"}


def _generator_config(config: Mapping) -> dict:
    return {**_discriminator_config(config), **config.get("generator", {})}


DISCRIMINATOR = Part("discriminator", exclude=_exclude_generator, tf_config=_discriminator_config)
GENERATOR = Part("generator", rename=_generator_rename, unrename=_generator_unrename, exclude=_exclude_discriminator,
                 tf_config=_generator_config)
TIED_GENERATOR = Part("generator", exclude=_exclude_discriminator_head, tf_config=_discriminator_config)


def split_electra(shapes) -> tuple[Part, ...]:
    """The models an ELECTRA checkpoint holds: discriminator and/or generator (untied or tied)."""
    names = list(shapes)
    has = lambda prefix: any(n.startswith(prefix) for n in names)  # noqa: E731
    parts = []
    if has("electra/encoder/"):
        parts.append(DISCRIMINATOR)
    if has("generator_predictions/"):
        parts.append(GENERATOR if has("generator/encoder/") else TIED_GENERATOR)
    return tuple(parts) or (DISCRIMINATOR,)


# configure_pretraining.py / get_bert_config: model_size -> hidden size and layers.
MODEL_SIZES = {"small": {"hidden_size": 256, "num_hidden_layers": 12},
               "base": {"hidden_size": 768, "num_hidden_layers": 12},
               "large": {"hidden_size": 1024, "num_hidden_layers": 24}}
_SHAPES = (("vocab_size", "electra/embeddings/word_embeddings", 0),
           ("embedding_size", "electra/embeddings/word_embeddings", 1),
           ("max_position_embeddings", "electra/embeddings/position_embeddings", 0),
           ("type_vocab_size", "electra/embeddings/token_type_embeddings", 0))
_DIVISIBLE = (divisible("hidden_size", "num_attention_heads"),)
# An hparams.json (configure_pretraining.PretrainingConfig; null means the default) or a BERT-style config.
_MODEL_KEYS = {**bert_like_keys(ELECTRA_TO_HF_ACT, required=False), "embedding_size": positive_int(nullable=True)}
ELECTRA_TF_SCHEMA = ConfigSchema(
    {**_MODEL_KEYS, "model_size": one_of(*MODEL_SIZES, nullable=True),
     "model_hparam_overrides": section(ConfigSchema(_MODEL_KEYS, _DIVISIBLE)),
     "generator": section(ConfigSchema({k: positive_int() for k in ("hidden_size", "num_hidden_layers",
                                                                     "num_attention_heads", "intermediate_size")},
                                       _DIVISIBLE))},
    _DIVISIBLE)
ELECTRA_HF_SCHEMA = ConfigSchema({**hf_keys(), "embedding_size": positive_int(required=True)}, _DIVISIBLE)
_DEFAULTS = {"hidden_act": "gelu", "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1,
             "initializer_range": 0.02, "type_vocab_size": 2, "max_position_embeddings": 512}


def _encoder_dims(shapes: Mapping[str, tuple[int, ...]], scope: str) -> dict:
    query, inter = f"{scope}/encoder/layer_0/attention/self/query/kernel", f"{scope}/encoder/layer_0/intermediate/dense/kernel"
    dims = {}
    if query in shapes:
        dims["hidden_size"] = shapes[query][1]
    if inter in shapes:
        dims["intermediate_size"] = shapes[inter][1]
    layers = count_layers(shapes, re.compile(rf"^{scope}/encoder/layer_(\d+)/"))
    if layers:
        dims["num_hidden_layers"] = layers
    return dims


def read_electra_config(path: str) -> dict:
    """An ELECTRA hparams JSON (model_size, embedding_size, model_hparam_overrides, ...) or a BERT-style
    config, flattened to BERT config keys (+ embedding_size)."""
    raw = read_json_config(path)
    ELECTRA_TF_SCHEMA.validate(raw, path=path, hint="fix the config or pass the matching one with --config")
    overrides = raw.get("model_hparam_overrides") or {}
    config = {**MODEL_SIZES.get(raw.get("model_size"), {}),
              **{k: v for k, v in raw.items() if k != "model_hparam_overrides"}, **overrides}
    return {k: v for k, v in config.items() if v is not None}  # null: the official default


def complete_electra_config(config: Mapping, shapes: Mapping[str, tuple[int, ...]], hints: ConfigHints | None = None
                            ) -> dict:
    """The discriminator's TF config (+ ``generator`` sizes) from the file, the shapes and the official defaults.

    Heads: ``hints.num_heads`` / ``hints.family_options["generator_heads"]``, else the config, else ``max(1, hidden // 64)``
    (get_bert_config / get_generator_config).

    Example:
        >>> shapes = {"electra/embeddings/word_embeddings": (50, 8),
        ...           "electra/encoder/layer_0/attention/self/query/kernel": (128, 128),
        ...           "generator/encoder/layer_0/attention/self/query/kernel": (32, 32)}
        >>> c = complete_electra_config({}, shapes, ConfigHints(family_options={"generator_heads": 2}))
        >>> c["num_attention_heads"], c["embedding_size"], c["generator"]["num_attention_heads"]
        (2, 8, 2)
    """
    hints = hints or ConfigHints()
    from_shapes = {key: shapes[t][axis] for key, t, axis in _SHAPES if t in shapes}
    from_shapes.update(_encoder_dims(shapes, "electra"))
    completed = {**_DEFAULTS, **{k: v for k, v in config.items() if k != "generator"}}
    for key, value in from_shapes.items():
        if key in config and int(config[key]) != int(value):
            raise ConfigError(f"config says {key}={config[key]} but the checkpoint's shapes give {value}",
                              path=hints.config_path, hint="fix the config or pass the matching one")
        completed[key] = value
    hidden = int(completed.get("hidden_size", completed.get("embedding_size", 256)))
    completed.setdefault("hidden_size", hidden)
    completed.setdefault("intermediate_size", 4 * hidden)
    completed["num_attention_heads"] = int(hints.num_heads or config.get("num_attention_heads")
                                           or max(1, hidden // 64))
    generator = dict(config.get("generator", {}))
    gen_dims = _encoder_dims(shapes, "generator")
    if gen_dims:
        generator.update(gen_dims)
        generator["num_attention_heads"] = int(hints.family_options.get("generator_heads") or generator.get("num_attention_heads")
                                               or max(1, gen_dims["hidden_size"] // 64))
        completed["generator"] = generator
    for label, dims in (("discriminator", completed), ("generator", completed.get("generator"))):
        if dims and int(dims["hidden_size"]) % int(dims["num_attention_heads"]):
            raise ConfigError(f"{label} hidden size {dims['hidden_size']} is not divisible by "
                              f"{dims['num_attention_heads']} heads", path=hints.config_path,
                              hint=f"pass --{'num-heads' if label == 'discriminator' else 'generator-heads'}")
    return completed


def infer_electra_config(shapes: Mapping[str, tuple[int, ...]], *, num_heads: int | None = None
                         ) -> tuple[dict, list[str]]:
    config = complete_electra_config({}, shapes, ConfigHints(num_heads=num_heads))
    warnings = [] if num_heads else [f"num_attention_heads not in a config: {config['num_attention_heads']} "
                                     "(hidden/64, the official default); pass --num-heads if that is wrong"]
    return config, warnings


_SHARED = ("vocab_size", "embedding_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
           "intermediate_size", "hidden_dropout_prob", "attention_probs_dropout_prob", "max_position_embeddings",
           "type_vocab_size", "initializer_range")


def electra_config_to_hf(tf_config: Mapping, *, model_class: str) -> dict:
    """HF ``config.json`` (``model_type: electra``) for one ELECTRA model.

    Example:
        >>> electra_config_to_hf({"hidden_act": "gelu", "hidden_size": 8}, model_class="ElectraModel")["hidden_act"]
        'gelu'
    """
    act = tf_config.get("hidden_act", "gelu")
    if act not in ELECTRA_TO_HF_ACT:
        raise ConfigError(f"unknown hidden_act {act!r}", hint="one of " + ", ".join(ELECTRA_TO_HF_ACT))
    if model_class == "ElectraForMaskedLM" and act != "gelu":
        raise ConfigError(f"the generator uses hidden_act={act!r} but transformers' ElectraGeneratorPredictions "
                          "always applies gelu", hint="convert only the discriminator (--part discriminator)")
    return with_hf_types({"architectures": [model_class], "model_type": "electra",
                          **{k: tf_config[k] for k in _SHARED if k in tf_config},
                          "hidden_act": ELECTRA_TO_HF_ACT[act], "layer_norm_eps": 1e-12, "pad_token_id": 0,
                          "tie_word_embeddings": True})


def hf_config_to_electra(hf_config: Mapping) -> dict:
    """BERT-style config (+ embedding_size) of one ELECTRA model, as the reference forward reads it."""
    act = hf_config.get("hidden_act", "gelu")
    if act not in HF_TO_ELECTRA_ACT:
        raise ConfigError(f"hidden_act {act!r} has no equivalent in google-research/electra (its 'gelu' is the erf "
                          "form, transformers' 'gelu')", hint=unmapped_act_hint(
                              act, ("gelu_new", "gelu_pytorch_tanh"), replacement="ELECTRA's erf gelu",
                              trained_with="gelu"))
    return {**{k: hf_config[k] for k in _SHARED if k in hf_config}, "hidden_act": HF_TO_ELECTRA_ACT[act]}


def join_electra_configs(configs: Mapping[str, Mapping]) -> dict:
    """``hparams.json`` for run_pretraining.py from the discriminator's and generator's HF configs."""
    disc = hf_config_to_electra(configs.get("discriminator") or next(iter(configs.values())))
    hparams = {"vocab_size": disc["vocab_size"], "embedding_size": disc.get("embedding_size", disc["hidden_size"]),
               "untied_generator": True, "untied_generator_embeddings": False,
               "model_hparam_overrides": {k: disc[k] for k in ("hidden_size", "num_hidden_layers",
                                                               "num_attention_heads", "intermediate_size",
                                                               "max_position_embeddings", "type_vocab_size",
                                                               "hidden_act") if k in disc}}
    if "generator" in configs:
        gen = hf_config_to_electra(configs["generator"])
        hparams.update(generator_hidden_size=gen["hidden_size"] / disc["hidden_size"],
                       generator_layers=gen["num_hidden_layers"] / disc["num_hidden_layers"],
                       generator={k: gen[k] for k in ("hidden_size", "num_hidden_layers", "num_attention_heads",
                                                      "intermediate_size")})
    return hparams


# distill init: the generator's MLM head as DistilBERT's (a discriminator has none: DistilBertModel)
ELECTRA_STUDENT = StudentRules(
    mlm={"vocab_transform.weight": ("generator_predictions.dense.weight",),
         "vocab_transform.bias": ("generator_predictions.dense.bias",),
         "vocab_layer_norm.weight": ("generator_predictions.LayerNorm.weight",),
         "vocab_layer_norm.bias": ("generator_predictions.LayerNorm.bias",),
         "vocab_projector.bias": ("generator_lm_head.bias",),
         "vocab_projector.weight": ("generator_lm_head.weight",)},
    # transformers' ElectraGeneratorPredictions applies exact gelu whatever hidden_act says
    head_activation=lambda c: "gelu", requirements=(ABSOLUTE_POSITIONS,),
    tied=(("generator_lm_head.weight", "{base}embeddings.word_embeddings.weight", "tie_word_embeddings"),))

ELECTRA_OPTIONS = (
    FamilyOption("part", "ELECTRA pretraining checkpoints: which model(s) to write (default both).",
                 choices=("discriminator", "generator", "both")),
    FamilyOption("part", "A TF ELECTRA pretraining checkpoint holds both models: the one to take layers from.",
                 choices=("discriminator", "generator"), commands=(DISTILL_INIT,)),
    FamilyOption("generator_heads", "ELECTRA generator attention heads when shapes are ambiguous.", type=int,
                 minimum=1),
)

ELECTRA = Family(
    name="electra", model_types=DETECTION["electra"][0], rules=ELECTRA_RULES, classes=ELECTRA_CLASSES,
    config_to_hf=electra_config_to_hf, config_to_tf=hf_config_to_electra, infer_tf_config=infer_electra_config,
    tied={"generator_lm_head.weight": "electra.embeddings.word_embeddings.weight"},
    read_tf_config=read_electra_config, tf_config_name="hparams.json",
    tf_schema=ELECTRA_TF_SCHEMA, hf_schema=ELECTRA_HF_SCHEMA,
    approximate_acts={"gelu_new": "gelu", "gelu_pytorch_tanh": "gelu"},
    tf_config_aliases=("electra_config.json", "bert_config.json"),
    complete_tf_config=complete_electra_config, split=split_electra,
    hf_parts=(DISCRIMINATOR, GENERATOR), join_tf_config=join_electra_configs,
    reference="ckptkit.converters.reference_families:electra_reference_forward",
    student=ELECTRA_STUDENT,
    signature=re.compile(DETECTION["electra"][1]),
    options=ELECTRA_OPTIONS,
)
FAMILY = ELECTRA