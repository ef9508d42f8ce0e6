"""The NumPy engine for transformers' BERT-like encoders: ``bert``, ``electra``, ``big_bird`` and ``albert``
(every class ckptkit writes for them), over a hub folder's own names and config.json.

What each architecture does, as transformers 5 computes it:

- BERT: word + token-type + position embeddings, LayerNorm; post-norm layers; pooler ``tanh(Linear)`` on
  the first token (only in classes that build one); MLM head ``transform`` (Linear, ``hidden_act``,
  LayerNorm) then the decoder, tied to the word embeddings when ``tie_word_embeddings`` (the default).
- ELECTRA: BERT's embeddings of width ``embedding_size`` (config default 128), ``embeddings_project`` when
  that differs from ``hidden_size``; no pooler; the discriminator head is Linear, ``hidden_act``, Linear to
  one logit; the generator head and the classification head use ``gelu`` whatever ``hidden_act`` says.
- BigBird: word embeddings times ``sqrt(hidden_size)`` when ``rescale_embeddings``; query/key/value without
  bias unless ``use_bias``; full attention, which transformers also runs when the sequence is at most
  ``(5 + 2 * num_random_blocks) * block_size`` tokens (verify's batch is 16); longer ones are block-sparse
  (random: :class:`~ckptkit.converters.hub_forward.ops.Unsupported` here).
- ALBERT: embeddings of width ``embedding_size``, always mapped in by ``embedding_hidden_mapping_in``;
  layer ``i`` runs group ``int(i / (num_hidden_layers / num_hidden_groups))``, each group ``inner_group_num``
  layers; SOP on the pooled output.

Defaults are those of the config classes (BigBird's and ALBERT's ``hidden_act`` is ``gelu_new``).

Example:
    >>> output_keys("BertForPreTraining"), output_keys("AlbertModel")
    (('last_hidden_state', 'mlm_logits', 'nsp_logits'), ('last_hidden_state', 'pooler_output'))
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Mapping

import numpy as np

from ckptkit.converters.hub_forward.ops import (Unsupported, activation, additive_mask, attention, embedding_rows,
                                                layer_norm, linear, times_transposed)

__all__ = ["bert_like_forward", "output_keys", "ARCHITECTURES"]

_COMMON = {"hidden_act": "gelu", "layer_norm_eps": 1e-12, "tie_word_embeddings": True, "type_vocab_size": 2,
           "is_decoder": False, "position_embedding_type": "absolute"}


@dataclass(frozen=True)
class _Architecture:
    """One model_type: its class-name prefix, the base model's attribute, config defaults, pooler name and,
    per class suffix, the heads that class runs (the first item of each: the keys it returns)."""

    class_prefix: str
    base: str
    defaults: Mapping[str, object]
    pooler: str | None
    heads: Mapping[str, tuple[str, ...]]
    embed: str = "bert"
    encode: str = "bert"


@dataclass
class _Run:
    """One forward: the getter, the folder's names, the config with its class defaults, the base model's
    prefix in the names (``bert.`` or none) and the hidden states once computed."""

    get: Callable[[str], np.ndarray]
    names: set[str]
    config: Mapping
    prefix: str
    arch: _Architecture
    x: np.ndarray | None = None
    _pooled: np.ndarray | None = field(default=None, repr=False)

    def w(self, name: str) -> np.ndarray:
        return self.get(name)

    def lin(self, name: str, x: np.ndarray, *, bias: bool = True) -> np.ndarray:
        """The Linear ``name`` (``name.weight`` / ``name.bias``) on ``x``."""
        return linear(x, self.get(f"{name}.weight"), self.get(f"{name}.bias") if bias else None)

    def norm(self, name: str, x: np.ndarray) -> np.ndarray:
        return layer_norm(x, self.get(f"{name}.weight"), self.get(f"{name}.bias"), float(self.config["layer_norm_eps"]))

    def pooled(self) -> np.ndarray:
        if self._pooled is None:
            self._pooled = np.tanh(self.lin(f"{self.prefix}{self.arch.pooler}", self.x[:, 0]))
        return self._pooled

    @property
    def act(self) -> Callable[[np.ndarray], np.ndarray]:
        return activation(self.config["hidden_act"])


# ---- embeddings (inputs -> first hidden states) ----

def _bert_embeddings(run: _Run, inputs: Mapping[str, np.ndarray]) -> np.ndarray:
    e = f"{run.prefix}embeddings."
    ids = inputs["input_ids"]
    x = embedding_rows(run.get, f"{e}word_embeddings.weight", ids)
    if run.config.get("rescale_embeddings"):  # BigBird
        x = x * float(run.config["hidden_size"]) ** 0.5
    x = x + run.w(f"{e}token_type_embeddings.weight")[_token_types(inputs)]
    x = x + run.w(f"{e}position_embeddings.weight")[: ids.shape[1]][None]
    x = run.norm(f"{e}LayerNorm", x)
    if run.arch.embed == "electra" and int(run.config["embedding_size"]) != int(run.config["hidden_size"]):
        x = run.lin(f"{run.prefix}embeddings_project", x)
    if run.arch.embed == "albert":
        x = run.lin(f"{run.prefix}encoder.embedding_hidden_mapping_in", x)
    return x


def _token_types(inputs: Mapping[str, np.ndarray]) -> np.ndarray:
    types = inputs.get("token_type_ids")
    return np.zeros_like(inputs["input_ids"]) if types is None else types


# ---- encoders ----

def _post_norm_layer(run: _Run, p: str, names: Mapping[str, str], x: np.ndarray, mask_add: np.ndarray,
                     *, qkv_bias: bool = True) -> np.ndarray:
    """One post-norm transformer layer; ``names`` gives each part's module name under ``p``."""
    q, k, v = (run.lin(p + names[part], x, bias=qkv_bias) for part in ("query", "key", "value"))
    context = attention(q, k, v, mask_add, int(run.config["num_attention_heads"]))
    x = run.norm(p + names["attention_norm"], run.lin(p + names["attention_out"], context) + x)
    inner = run.act(run.lin(p + names["intermediate"], x))
    return run.norm(p + names["output_norm"], run.lin(p + names["output"], inner) + x)


_BERT_LAYER = {"query": "attention.self.query", "key": "attention.self.key", "value": "attention.self.value",
               "attention_out": "attention.output.dense", "attention_norm": "attention.output.LayerNorm",
               "intermediate": "intermediate.dense", "output": "output.dense", "output_norm": "output.LayerNorm"}
_ALBERT_LAYER = {"query": "attention.query", "key": "attention.key", "value": "attention.value",
                 "attention_out": "attention.dense", "attention_norm": "attention.LayerNorm",
                 "intermediate": "ffn", "output": "ffn_output", "output_norm": "full_layer_layer_norm"}


def _bert_encoder(run: _Run, x: np.ndarray, mask_add: np.ndarray) -> np.ndarray:
    qkv_bias = bool(run.config.get("use_bias", True))  # BigBird's use_bias; always True for the others
    for i in range(int(run.config["num_hidden_layers"])):
        x = _post_norm_layer(run, f"{run.prefix}encoder.layer.{i}.", _BERT_LAYER, x, mask_add, qkv_bias=qkv_bias)
    return x


def _albert_encoder(run: _Run, x: np.ndarray, mask_add: np.ndarray) -> np.ndarray:
    layers, groups = int(run.config["num_hidden_layers"]), int(run.config["num_hidden_groups"])
    for i in range(layers):
        group = int(i / (layers / groups))  # transformers' AlbertTransformer, float division included
        for inner in range(int(run.config["inner_group_num"])):
            p = f"{run.prefix}encoder.albert_layer_groups.{group}.albert_layers.{inner}."
            x = _post_norm_layer(run, p, _ALBERT_LAYER, x, mask_add)
    return x


_ENCODERS = {"bert": _bert_encoder, "albert": _albert_encoder}


# ---- heads (hidden states -> outputs) ----

def _decoder(run: _Run, t: np.ndarray, *, weight: str, bias: str) -> np.ndarray:
    """An output-embedding decoder: tied to the word embeddings when ``tie_word_embeddings``, else its own
    weight; read in row chunks."""
    tied = f"{run.prefix}embeddings.word_embeddings.weight"
    logits = times_transposed(run.get, tied if run.config["tie_word_embeddings"] else weight, t)
    return logits + run.w(bias)


def _bert_mlm(run: _Run) -> dict[str, np.ndarray]:
    t = run.norm("cls.predictions.transform.LayerNorm",
                 run.act(run.lin("cls.predictions.transform.dense", run.x)))
    tied = run.config["tie_word_embeddings"] or "cls.predictions.decoder.bias" not in run.names
    bias = "cls.predictions.bias" if tied else "cls.predictions.decoder.bias"
    return {"mlm_logits": _decoder(run, t, weight="cls.predictions.decoder.weight", bias=bias)}


def _albert_mlm(run: _Run) -> dict[str, np.ndarray]:
    t = run.norm("predictions.LayerNorm", run.act(run.lin("predictions.dense", run.x)))
    tied = run.config["tie_word_embeddings"] or "predictions.decoder.bias" not in run.names
    bias = "predictions.bias" if tied else "predictions.decoder.bias"
    return {"mlm_logits": _decoder(run, t, weight="predictions.decoder.weight", bias=bias)}


def _electra_generator(run: _Run) -> dict[str, np.ndarray]:
    gelu = activation("gelu")  # ElectraGeneratorPredictions: gelu whatever hidden_act is
    t = run.norm("generator_predictions.LayerNorm", gelu(run.lin("generator_predictions.dense", run.x)))
    return {"mlm_logits": _decoder(run, t, weight="generator_lm_head.weight", bias="generator_lm_head.bias")}


def _electra_discriminator(run: _Run) -> dict[str, np.ndarray]:
    h = run.act(run.lin("discriminator_predictions.dense", run.x))
    return {"disc_logits": run.lin("discriminator_predictions.dense_prediction", h)[..., 0]}


def _electra_classifier(run: _Run) -> dict[str, np.ndarray]:
    h = activation("gelu")(run.lin("classifier.dense", run.x[:, 0]))  # ElectraClassificationHead: gelu
    return {"logits": run.lin("classifier.out_proj", h)}


def _qa(run: _Run) -> dict[str, np.ndarray]:
    logits = run.lin("qa_outputs", run.x)
    return {"start_logits": logits[..., 0], "end_logits": logits[..., 1]}


_HEADS: dict[str, Callable[[_Run], dict[str, np.ndarray]]] = {
    "pooler": lambda run: {"pooler_output": run.pooled()},
    "bert_mlm": _bert_mlm,
    "nsp": lambda run: {"nsp_logits": run.lin("cls.seq_relationship", run.pooled())},
    "classifier": lambda run: {"logits": run.lin("classifier", run.pooled())},
    "qa": _qa,
    "albert_mlm": _albert_mlm,
    "sop": lambda run: {"sop_logits": run.lin("sop_classifier.classifier", run.pooled())},
    "electra_disc": _electra_discriminator,
    "electra_gen": _electra_generator,
    "electra_classifier": _electra_classifier,
}
# head -> the keys it returns (for output_keys)
_HEAD_KEYS = {"pooler": ("pooler_output",), "bert_mlm": ("mlm_logits",), "nsp": ("nsp_logits",),
              "classifier": ("logits",), "qa": ("start_logits", "end_logits"), "albert_mlm": ("mlm_logits",),
              "sop": ("sop_logits",), "electra_disc": ("disc_logits",), "electra_gen": ("mlm_logits",),
              "electra_classifier": ("logits",)}

_BERT_HEADS = {"Model": ("pooler",), "ForPreTraining": ("bert_mlm", "nsp"), "ForMaskedLM": ("bert_mlm",),
               "ForSequenceClassification": ("classifier",), "ForQuestionAnswering": ("qa",),
               "ForNextSentencePrediction": ("nsp",)}
ARCHITECTURES: dict[str, _Architecture] = {
    "bert": _Architecture("Bert", "bert", _COMMON, "pooler.dense", _BERT_HEADS),
    "electra": _Architecture(
        "Electra", "electra", {**_COMMON, "embedding_size": 128}, None,
        {"Model": (), "ForPreTraining": ("electra_disc",), "ForMaskedLM": ("electra_gen",),
         "ForSequenceClassification": ("electra_classifier",)}, embed="electra"),
    "big_bird": _Architecture(
        "BigBird", "bert", {**_COMMON, "hidden_act": "gelu_new", "use_bias": True, "rescale_embeddings": False,
                            "attention_type": "block_sparse", "block_size": 64, "num_random_blocks": 3},
        "pooler", {"Model": ("pooler",), "ForPreTraining": ("bert_mlm", "nsp"), "ForMaskedLM": ("bert_mlm",)}),
    "albert": _Architecture(
        "Albert", "albert", {**_COMMON, "hidden_act": "gelu_new", "embedding_size": 128, "num_hidden_groups": 1,
                             "inner_group_num": 1}, "pooler",
        {"Model": ("pooler",), "ForPreTraining": ("albert_mlm", "sop"), "ForMaskedLM": ("albert_mlm",),
         "ForSequenceClassification": ("classifier",), "ForQuestionAnswering": ("qa",)},
        embed="albert", encode="albert"),
}
_BY_PREFIX = {arch.class_prefix: arch for arch in ARCHITECTURES.values()}


def _heads_of(class_name: str, arch: _Architecture | None = None) -> tuple[_Architecture, tuple[str, ...]]:
    for prefix, candidate in sorted(_BY_PREFIX.items(), key=lambda kv: -len(kv[0])):
        if (arch is None or candidate is arch) and class_name.startswith(prefix) \
                and class_name[len(prefix):] in candidate.heads:
            return candidate, candidate.heads[class_name[len(prefix):]]
    raise Unsupported(f"class {class_name} (the NumPy engine computes "
                      + ", ".join(a.class_prefix + s for a in ([arch] if arch else ARCHITECTURES.values())
                                  for s in a.heads) + ")")


def output_keys(class_name: str) -> tuple[str, ...]:
    """The keys verify compares for ``class_name``, as transformers' output for that class gives them."""
    _, heads = _heads_of(class_name)
    return ("last_hidden_state", *sorted(k for head in heads for k in _HEAD_KEYS[head]))


def _check_supported(config: Mapping, seq_len: int) -> None:
    if config.get("is_decoder") or config.get("add_cross_attention"):
        raise Unsupported("is_decoder / add_cross_attention (a causal decoder)")
    if config.get("position_embedding_type", "absolute") != "absolute":
        raise Unsupported(f"position_embedding_type {config['position_embedding_type']!r}")
    if config.get("attention_type") == "block_sparse":  # BigBird: full attention up to this length only
        full_up_to = (5 + 2 * int(config["num_random_blocks"])) * int(config["block_size"])
        if seq_len > full_up_to:
            raise Unsupported(f"block-sparse attention ({seq_len} tokens > {full_up_to}, random blocks)")


def bert_like_forward(get: Callable[[str], np.ndarray], names: set[str], config: Mapping, class_name: str,
                      inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The outputs of ``class_name`` (a BERT / ELECTRA / BigBird / ALBERT class) for ``inputs``: see
    :mod:`ckptkit.converters.hub_forward` for the arguments and keys."""
    arch = ARCHITECTURES.get(str(config.get("model_type")))
    if arch is None:
        raise Unsupported(f"model_type {config.get('model_type')!r}")
    arch, heads = _heads_of(class_name, arch)
    config = {**arch.defaults, **{k: v for k, v in config.items() if v is not None}}
    _check_supported(config, int(inputs["input_ids"].shape[1]))
    prefix = f"{arch.base}." if f"{arch.base}.embeddings.word_embeddings.weight" in names else ""
    run = _Run(get, names, config, prefix, arch)
    x = _bert_embeddings(run, inputs)
    run.x = _ENCODERS[arch.encode](run, x, additive_mask(inputs["attention_mask"]))
    out = {"last_hidden_state": run.x}
    for head in heads:
        out.update(_HEADS[head](run))
    return out
