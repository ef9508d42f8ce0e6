"""BigBird-Pegasus (encoder-decoder) as google-research/bigbird's summarization code writes it
(bigbird/core/{modeling,encoder,decoder,attention,utils}.py, summarization/run_summarization.py) and as
transformers' ``BigBirdPegasus*`` classes name it.

What the official ``TransformerModel`` creates under its scope (``--scope=pegasus`` in pegasus_large.sh):

- ``embeddings/word_embeddings`` ``[vocab, hidden]``: encoder input, decoder input and the bias-free output
  projection (``EmbeddingLayer.linear``); transformers ties ``model.shared``, both ``embed_tokens`` and
  ``lm_head`` to it and adds ``final_logits_bias`` (zeros here, a buffer transformers never trains).
- ``embeddings/position_embeddings`` ``[max_position_embeddings, hidden]``: one learned table both stacks
  slice from position 0; transformers keeps two (``encoder/decoder.embed_positions``), equal here.
- ``rescale_embedding``: word embeddings times sqrt(hidden) (transformers' ``scale_embedding``).
- Pre-norm layers (``norm_type=prenorm``): ``attention/self/LayerNorm`` before self-attention,
  ``attention/encdec/LayerNorm`` before cross-attention (decoder), ``intermediate/LayerNorm`` before the FFN;
  the stacks end with ``encoder/LayerNorm`` / ``decoder/LayerNorm`` (transformers' ``layernorm_embedding``).
- Attention: ``attention/self/{query,key,value}/kernel``, ``attention/output/dense/kernel`` and, in decoder
  layers, ``attention/encdec/...`` and ``attention/encdec_output/dense/kernel``. Kernels are 2-D ``[in, out]``
  (today's ``Dense3dLayer``); 3-D ``[hidden, heads, head_size]`` / ``[heads, head_size, hidden]`` are read too.
  ``use_bias=False`` leaves every attention projection without a bias; the FFN dense layers keep theirs.
- LayerNorm epsilon 1e-12 (``utils.NormLayer``); transformers hard-codes 1e-5: a relative difference of about
  5e-6 / variance of the normalised values (the residual stream of a trained model is far above 1).

Example:
    >>> table = PEGASUS.name_table(prefix="model.")
    >>> table.tf_to_hf("pegasus/decoder/layer_3/attention/encdec_output/dense/kernel")[0]
    'model.decoder.layers.3.encoder_attn.out_proj.weight'
    >>> table.hf_to_tf("model.encoder.layers.1.self_attn.self.query.weight")[0]
    'pegasus/encoder/layer_1/attention/self/query/kernel'
"""

from __future__ import annotations

import re
from typing import Callable, Mapping

from ckptkit.converters.families.bert_like import attention_bias_to_hf, attention_kernel_to_hf, attention_output_to_hf
from ckptkit.converters.families import DETECTION
from ckptkit.converters.families.base import Family, Generated, LayerStack, ModelClass, Part, Rule, Transform
from ckptkit.converters.families.options import FamilyOption
from ckptkit.converters.families.student import SEQ2SEQ_STUDENT
from ckptkit.converters.families.pegasus_config import (PEGASUS_HF_SCHEMA, PEGASUS_TF_SCHEMA, SCOPE, check_pegasus_config,
                                                        complete_pegasus_config, hf_config_to_pegasus,
                                                        infer_pegasus_config, pegasus_config_to_hf,
                                                        read_pegasus_config, scopes_of)
from ckptkit.converters.plan import Step

__all__ = ["PEGASUS", "FAMILY", "PEGASUS_RULES", "ENCODER_LAYERS", "DECODER_LAYERS", "PEGASUS_CLASSES",
           "PEGASUS_TIED", "split_scopes", "scope_rename"]

# The two layer stacks: {layer} counts encoder_layers, {decoder_layer} counts decoder_layers (HF config keys).
ENCODER_LAYERS = LayerStack("layer", "encoder_layers")
DECODER_LAYERS = LayerStack("decoder_layer", "decoder_layers")

_ENC_TF, _ENC_HF = f"{SCOPE}/encoder/layer_{{layer}}/", "{base}encoder.layers.{layer}."
_DEC_TF, _DEC_HF = f"{SCOPE}/decoder/layer_{{decoder_layer}}/", "{base}decoder.layers.{decoder_layer}."








def _transpose(shape, config) -> tuple[Step, ...]:
    return (Step("transpose", (1, 0)),)


def _heads(config: Mapping) -> int:
    return int(config["encoder_attention_heads"])


def _qkv_3d(shape, config) -> tuple[Step, ...]:
    return (Step("transpose", (1, 0)), Step("reshape", (shape[1], _heads(config), shape[0] // _heads(config))))


def _out_3d(shape, config) -> tuple[Step, ...]:
    return (Step("transpose", (1, 0)), Step("reshape", (_heads(config), shape[1] // _heads(config), shape[0])))


# Shape-adaptive readers; writers give the 2-D layout (``--tf-layout 3d`` swaps in the 3-D writers).
PEGASUS_TRANSFORMS: dict[str, Transform] = {
    "pegasus_qkv": Transform(attention_kernel_to_hf, _transpose),
    "pegasus_out": Transform(attention_output_to_hf, _transpose),
    "pegasus_bias": Transform(attention_bias_to_hf, lambda shape, config: ()),
    "pegasus_qkv_3d": Transform(attention_kernel_to_hf, _qkv_3d),
    "pegasus_out_3d": Transform(attention_output_to_hf, _out_3d),
    # the decoder's copy of the one position table: written tf->hf, not read back (tied hf->tf, checked equal)
    "copy_one_way": Transform(lambda shape, config: (), None),
}


def _norm(tf: str, hf: str) -> tuple[Rule, ...]:
    return (Rule(f"{tf}/LayerNorm/gamma", f"{hf}.weight"), Rule(f"{tf}/LayerNorm/beta", f"{hf}.bias"))


def _attention(tf: str, hf: str, out_tf: str, out_hf: str, names: Mapping[str, str]) -> tuple[Rule, ...]:
    """One MultiHeadedAttentionLayer (TF scope ``tf``) and its Dense3dProjLayer (``out_tf``); biases only
    under use_bias=True."""
    return (
        *(Rule(f"{tf}/{p}/kernel", f"{hf}.{names[p]}.weight", "pegasus_qkv") for p in ("query", "key", "value")),
        *(Rule(f"{tf}/{p}/bias", f"{hf}.{names[p]}.bias", "pegasus_bias", optional=True)
          for p in ("query", "key", "value")),
        Rule(f"{out_tf}/dense/kernel", f"{out_hf}.weight", "pegasus_out"),
        Rule(f"{out_tf}/dense/bias", f"{out_hf}.bias", optional=True),
    )


def _ffn(tf: str, hf: str) -> tuple[Rule, ...]:
    return (*_norm(f"{tf}intermediate", f"{hf}final_layer_norm"),
            Rule(f"{tf}intermediate/dense/kernel", f"{hf}fc1.weight", "transpose"),
            Rule(f"{tf}intermediate/dense/bias", f"{hf}fc1.bias"),
            Rule(f"{tf}output/dense/kernel", f"{hf}fc2.weight", "transpose"),
            Rule(f"{tf}output/dense/bias", f"{hf}fc2.bias"))


_ENCODER_QKV = {"query": "query", "key": "key", "value": "value"}
_DECODER_QKV = {"query": "q_proj", "key": "k_proj", "value": "v_proj"}

PEGASUS_RULES: tuple[Rule, ...] = (
    Rule(f"{SCOPE}/embeddings/word_embeddings", "{base}shared.weight"),
    Rule(f"{SCOPE}/embeddings/position_embeddings", "{base}encoder.embed_positions.weight"),
    Rule(f"{SCOPE}/embeddings/position_embeddings", "{base}decoder.embed_positions.weight", "copy_one_way"),
    *_norm(f"{SCOPE}/encoder", "{base}encoder.layernorm_embedding"),
    *_norm(f"{SCOPE}/decoder", "{base}decoder.layernorm_embedding"),
    # encoder layers: pre-norm self-attention, then the pre-norm FFN
    *_norm(f"{_ENC_TF}attention/self", f"{_ENC_HF}self_attn_layer_norm"),
    *_attention(f"{_ENC_TF}attention/self", f"{_ENC_HF}self_attn.self", f"{_ENC_TF}attention/output",
                f"{_ENC_HF}self_attn.output", _ENCODER_QKV),
    *_ffn(_ENC_TF, _ENC_HF),
    # decoder layers: pre-norm causal self-attention, pre-norm cross-attention ("encdec"), the pre-norm FFN
    *_norm(f"{_DEC_TF}attention/self", f"{_DEC_HF}self_attn_layer_norm"),
    *_attention(f"{_DEC_TF}attention/self", f"{_DEC_HF}self_attn", f"{_DEC_TF}attention/output",
                f"{_DEC_HF}self_attn.out_proj", _DECODER_QKV),
    *_norm(f"{_DEC_TF}attention/encdec", f"{_DEC_HF}encoder_attn_layer_norm"),
    *_attention(f"{_DEC_TF}attention/encdec", f"{_DEC_HF}encoder_attn", f"{_DEC_TF}attention/encdec_output",
                f"{_DEC_HF}encoder_attn.out_proj", _DECODER_QKV),
    *_ffn(_DEC_TF, _DEC_HF),
)

# The "pooler" group is not a head (ModelClass.heads leaves it out): it only says that the generation class,
# listed first, is the one a TF checkpoint becomes and holds final_logits_bias.
PEGASUS_CLASSES: tuple[ModelClass, ...] = (
    ModelClass("BigBirdPegasusForConditionalGeneration", frozenset({"base", "pooler"}), "model.",
               "AutoModelForSeq2SeqLM", "summarization"),
    ModelClass("BigBirdPegasusModel", frozenset({"base"}), "", "AutoModel", "feature-extraction"),
)

# HF name -> the tensor it repeats: not written tf->hf (transformers re-ties them), dropped hf->tf.
PEGASUS_TIED: dict[str, str] = {
    **{f"{p}{stack}.embed_tokens.weight": f"{p}shared.weight" for p in ("model.", "") for stack in ("encoder", "decoder")},
    "lm_head.weight": "model.shared.weight",
    **{f"{p}decoder.embed_positions.weight": f"{p}encoder.embed_positions.weight" for p in ("model.", "")},
}
# tied names transformers does not tie: dropped hf->tf only when equal to their partner (one TF variable)
_VALUE_TIES = ("model.decoder.embed_positions.weight", "decoder.embed_positions.weight")

FINAL_LOGITS_BIAS = Generated("final_logits_bias", f"{SCOPE}/final_logits_bias", "zeros", (1, "vocab_size"), None,
                              group="pooler")


def scope_rename(scope: str) -> tuple[Callable[[str], str], Callable[[str], str]]:
    """(stored -> canonical, canonical -> stored) name maps for variables under ``scope`` instead of ``pegasus``.

    Example:
        >>> rename, unrename = scope_rename("bigbp")
        >>> rename("bigbp/encoder/LayerNorm/gamma"), unrename("pegasus/encoder/LayerNorm/gamma")
        ('pegasus/encoder/LayerNorm/gamma', 'bigbp/encoder/LayerNorm/gamma')
    """
    def rename(name: str) -> str:
        return SCOPE + name[len(scope):] if name.startswith(scope + "/") else name

    def unrename(name: str) -> str:
        return scope + name[len(SCOPE):] if name.startswith(SCOPE + "/") else name

    return rename, unrename


def split_scopes(weights: Mapping[str, tuple[int, ...]]) -> tuple[Part, ...]:
    """One part per scope holding an encoder-decoder (normally one: ``pegasus``, or whatever ``--scope`` the
    official code ran with); variables outside it are reported, not converted."""
    scopes = scopes_of(weights) or [SCOPE]
    parts = []
    for scope in scopes:
        rename, unrename = scope_rename(scope)
        exclude = (lambda name, s=scope: None if name.startswith(s + "/") else f"outside the model's scope {s}/")
        parts.append(Part(scope, rename=None if scope == SCOPE else rename, unrename=None if scope == SCOPE
                          else unrename, exclude=exclude))
    return tuple(parts)


def _with_scope(hf_config: Mapping, options: Mapping) -> dict:
    """hf->tf: ``--scope`` (the variable scope the TF checkpoint gets) carried to the names and the flags file."""
    scope = options.get("scope")
    return {**hf_config, "scope": scope} if scope else dict(hf_config)


def _tf_names(hf_config: Mapping) -> Callable[[str], str] | None:
    scope = hf_config.get("scope") or SCOPE
    return None if scope == SCOPE else scope_rename(scope)[1]


PEGASUS_OPTIONS = (
    FamilyOption("scope", "BigBird-Pegasus: the variable scope of the TF checkpoint (the official --scope flag; "
                 "default pegasus, or the scope the checkpoint's names show)."),
)

PEGASUS = Family(
    name="bigbird_pegasus", model_types=DETECTION["bigbird_pegasus"][0], rules=PEGASUS_RULES, classes=PEGASUS_CLASSES,
    config_to_hf=pegasus_config_to_hf, config_to_tf=hf_config_to_pegasus, infer_tf_config=infer_pegasus_config,
    tied=PEGASUS_TIED, value_ties=_VALUE_TIES, check_tf_config=check_pegasus_config,
    read_tf_config=read_pegasus_config, tf_config_name="summarization.config",
    tf_config_aliases=("pretrain.config", "bigbird_config.json", "flags.txt"),
    tf_schema=PEGASUS_TF_SCHEMA, hf_schema=PEGASUS_HF_SCHEMA, approximate_acts={"gelu": "gelu_new"},
    complete_tf_config=complete_pegasus_config, split=split_scopes,
    tf_layouts={"2d": {}, "3d": {"pegasus_qkv": "pegasus_qkv_3d", "pegasus_out": "pegasus_out_3d"}},
    default_tf_layout="2d", spm_names=("pegasus.model", "vocab.model", "spiece.model"), tokenizer_kind="pegasus",
    reference="ckptkit.converters.reference_pegasus:pegasus_reference_forward", reference_rows="encoder_unpadded",
    generated=(FINAL_LOGITS_BIAS,),
    # a decoder layer, the pre-norm LayerNorms or the encoder-decoder attention, under any scope (TF), or the
    # HF names of the encoder-decoder's layers
    signature=re.compile(DETECTION["bigbird_pegasus"][1]),
    transforms=PEGASUS_TRANSFORMS, stacks=(ENCODER_LAYERS, DECODER_LAYERS), options=PEGASUS_OPTIONS,
    tf_names=_tf_names, with_options=_with_scope,
    student=SEQ2SEQ_STUDENT,  # distill init: --encoder-layers/--decoder-layers, each stack on its own
)
FAMILY = PEGASUS
