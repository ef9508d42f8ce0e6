"""BigBird-Pegasus configs both ways: the official ``summarization.config`` (JSON from ``flags.save``, or an absl
flagfile of ``--name=value`` lines) <-> transformers' ``BigBirdPegasusConfig`` ``config.json``.

The official rules kept here (bigbird/core/modeling.py ``TransformerModel.__init__``, decoder.py, flags.py):
``max_encoder_length <= 512`` switches the encoder to full attention; pad 0, eos 1 and the decoder start 2
are fixed in the code; one ``num_attention_heads`` and ``intermediate_size`` serve both stacks; the decoder
has ``num_decoder_layers`` layers when the config says so, else ``num_hidden_layers``.

Block-sparse attention is written as the official code decides it, but transformers computes it differently for
long inputs: in eval mode its BigBirdPegasus replaces the random blocks by zeros (block 0) "for determinism", where
the official code draws them with a fixed seed per layer. Real tokens within the first block (``verify``'s 16)
attend to every token on both sides (that block is global), so they are computed alike.

Example:
    >>> hf = pegasus_config_to_hf({**FLAG_DEFAULTS, "vocab_size": 100, "norm_type": "prenorm",
    ...                            "max_encoder_length": 1024, "block_size": 64}, model_class="BigBirdPegasusModel")
    >>> hf["attention_type"], hf["encoder_layers"], hf["decoder_start_token_id"], hf["activation_function"]
    ('block_sparse', 12, 2, 'gelu_new')
    >>> pegasus_config_to_hf({**FLAG_DEFAULTS, "vocab_size": 100, "norm_type": "prenorm"},
    ...                      model_class="BigBirdPegasusModel")["attention_type"]  # max_encoder_length 128
    'original_full'
"""

from __future__ import annotations

import json
import re
from typing import Mapping

from ckptkit.converters.config_schema import (HF_ACTIVATIONS, ConfigSchema, count, divisible, flag, names, one_of,
                                              positive_float, positive_int, probability, text)
from ckptkit.converters.families.bert_like import (GOOGLE_TO_HF_ACT, HF_TO_GOOGLE_ACT, bert_like_keys, flag_value,
                                                   google_act)
from ckptkit.converters.source import ConfigHints
from ckptkit.errors import ConfigError

__all__ = ["SCOPE", "FLAG_DEFAULTS", "PEGASUS_TF_SCHEMA", "PEGASUS_HF_SCHEMA", "scopes_of", "canonical_shapes",
           "parse_flags", "read_pegasus_config", "complete_pegasus_config", "check_pegasus_config",
           "infer_pegasus_config", "pegasus_config_to_hf", "hf_config_to_pegasus", "SPECIAL_IDS"]

SCOPE = "pegasus"  # the canonical scope the rules name (pegasus_large.sh: --scope=pegasus)

# bigbird/core/flags.py and summarization/run_summarization.py defaults, for what a config file omits.
FLAG_DEFAULTS: dict[str, object] = {
    "attention_probs_dropout_prob": 0.1, "hidden_act": "gelu", "hidden_dropout_prob": 0.1, "hidden_size": 768,
    "initializer_range": 0.02, "intermediate_size": 3072, "max_position_embeddings": 4096,
    "num_attention_heads": 12, "num_hidden_layers": 12, "type_vocab_size": 2, "use_bias": True,
    "rescale_embedding": False, "scope": "bert", "attention_type": "block_sparse", "norm_type": "postnorm",
    "block_size": 16, "num_rand_blocks": 3, "max_encoder_length": 128, "max_decoder_length": 128,
    "couple_encoder_decoder": False, "beam_size": 5, "alpha": 0.8, "label_smoothing": 0.1,
}
# pegasus_large.sh (the published bigbp_large recipe): what a checkpoint without any config is assumed to be.
RECIPE = {"hidden_act": "relu", "rescale_embedding": True, "norm_type": "prenorm", "use_bias": False,
          "block_size": 64, "attention_type": "block_sparse"}
# fixed in the official code: input_ids > 0 is the mask, </s> is 1 (get_inputs_from_targets), <s> 2 starts decoding
SPECIAL_IDS = {"pad_token_id": 0, "eos_token_id": 1, "bos_token_id": 2, "decoder_start_token_id": 2}
_ATTENTION = {"block_sparse": "block_sparse", "simulated_sparse": "block_sparse", "original_full": "original_full"}
_FULL_UP_TO = 512  # TransformerModel: max_encoder_length <= 512 -> original_full

PEGASUS_TF_SCHEMA = ConfigSchema(
    {**bert_like_keys(GOOGLE_TO_HF_ACT, required=False), "use_bias": flag(), "rescale_embedding": flag(),
     "scope": text(), "attention_type": one_of(*_ATTENTION), "norm_type": one_of("prenorm", "postnorm"),
     "block_size": positive_int(), "num_rand_blocks": count(), "max_encoder_length": positive_int(),
     "max_decoder_length": positive_int(), "num_decoder_layers": positive_int(), "couple_encoder_decoder": flag(),
     "vocab_model_file": text(nullable=True), "substitute_newline": text(nullable=True), "beam_size": positive_int()},
    (divisible("hidden_size", "num_attention_heads"),))
PEGASUS_HF_SCHEMA = ConfigSchema(
    {"model_type": text(), "architectures": names(), "vocab_size": positive_int(), "d_model": positive_int(),
     **{f"{s}_{k}": positive_int() for s in ("encoder", "decoder") for k in ("layers", "attention_heads", "ffn_dim")},
     "max_position_embeddings": positive_int(), "activation_function": one_of(*HF_ACTIVATIONS),
     "dropout": probability(), "attention_dropout": probability(), "activation_dropout": probability(),
     "init_std": positive_float(), "scale_embedding": flag(), "use_bias": flag(),
     "attention_type": one_of("block_sparse", "original_full"), "block_size": positive_int(),
     "num_random_blocks": count(), "tie_word_embeddings": flag(), "is_encoder_decoder": flag(),
     **{key: count(nullable=True) for key in SPECIAL_IDS}},
    (divisible("d_model", "encoder_attention_heads"), divisible("d_model", "decoder_attention_heads")))

_LAYER = re.compile(r"^[^/]+/(encoder|decoder)/layer_(\d+)/")
_WORDS = "/embeddings/word_embeddings"


def scopes_of(names) -> list[str]:
    """The variable scopes holding an encoder-decoder: those with a word table and decoder layers.

    Example:
        >>> scopes_of(["bigbp/embeddings/word_embeddings", "bigbp/decoder/layer_0/output/dense/bias", "x/y"])
        ['bigbp']
    """
    names = list(names)
    decoders = {n.split("/", 1)[0] for n in names if re.match(r"^[^/]+/decoder/layer_\d+/", n)}
    return sorted(s for s in decoders if f"{s}{_WORDS}" in set(names))


def canonical_shapes(shapes: Mapping[str, tuple[int, ...]]) -> dict[str, tuple[int, ...]]:
    """``shapes`` with the (one) scope renamed to ``pegasus``."""
    scopes = scopes_of(shapes)
    if len(scopes) != 1 or scopes[0] == SCOPE:
        return dict(shapes)
    prefix = scopes[0] + "/"
    return {(SCOPE + "/" + n[len(prefix):] if n.startswith(prefix) else n): s for n, s in shapes.items()}




def parse_flags(text: str, *, path: str | None = None) -> dict:
    """An absl flagfile: ``--name=value``, ``--flag``/``--noflag`` lines, ``#``/``//`` comments, blank lines.

    Example:
        >>> parse_flags("--scope=pegasus\\n# a comment\\n--rescale_embedding\\n--nouse_bias\\n--block_size=64")
        {'scope': 'pegasus', 'rescale_embedding': True, 'use_bias': False, 'block_size': 64}
        >>> parse_flags("scope: pegasus", path="f.txt")
        Traceback (most recent call last):
        ...
        ckptkit.errors.ConfigError: f.txt: line 1 is not a flag ('scope: pegasus'), expected --name=value (pass ...
    """
    config = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith(("#", "//")):
            continue
        if not re.match(r"^--?[A-Za-z_][\w.]*(=|$)", line):
            shown = line if len(line) <= 40 else line[:37] + "..."
            raise ConfigError(f"line {number} is not a flag ({shown!r}), expected --name=value", path=path,
                              hint="pass the summarization.config the official code saved, or --name=value lines")
        key, sep, value = line.lstrip("-").partition("=")
        if sep:
            config[key] = flag_value(value)
        elif key.startswith("no") and key[2:] in FLAG_DEFAULTS and isinstance(FLAG_DEFAULTS[key[2:]], bool):
            config[key[2:]] = False
        else:
            config[key] = True
    return config


def read_pegasus_config(path: str) -> dict:
    """``summarization.config`` as ``flags.save`` writes it (JSON), or an absl flagfile (``--flagfile``)."""
    try:
        with open(path, encoding="utf-8") as f:
            content = f.read()
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read the config ({getattr(e, 'strerror', None) or e})", path=path) from e
    stripped = content.lstrip()
    if stripped.startswith(("{", "[")):
        try:
            config = json.loads(content)
        except json.JSONDecodeError as e:
            raise ConfigError(f"invalid JSON ({e.msg} at line {e.lineno})", path=path) from None
    else:
        config = parse_flags(content, path=path)
    if not isinstance(config, dict) or not config:
        raise ConfigError("neither a JSON object nor --name=value flags", path=path,
                          hint="pass the summarization.config the official code saved (--config)")
    return config


def _from_shapes(shapes: Mapping[str, tuple[int, ...]]) -> dict:
    s = canonical_shapes(shapes)
    found = {}
    for key, name, axis in _SHAPE_CHECKS:
        if name in s:
            found[key] = s[name][axis]
    layers = {stack: 1 + max((int(m[2]) for m in map(_LAYER.match, s) if m and m[1] == stack), default=-1)
              for stack in ("encoder", "decoder")}
    if layers["encoder"]:
        found["num_hidden_layers"] = layers["encoder"]
    if layers["decoder"] and layers["decoder"] != layers["encoder"]:
        found["num_decoder_layers"] = layers["decoder"]
    if len(s.get(_QUERY, ())) == 3:
        found["num_attention_heads"] = s[_QUERY][1]
    if _QUERY in s:
        found["use_bias"] = _QUERY_BIAS in s
    if f"{SCOPE}/encoder/layer_0/attention/self/LayerNorm/gamma" in s:
        found["norm_type"] = "prenorm"
    return found


_QUERY = f"{SCOPE}/encoder/layer_0/attention/self/query/kernel"
_QUERY_BIAS = f"{SCOPE}/encoder/layer_0/attention/self/query/bias"
_SHAPE_CHECKS = (
    ("vocab_size", f"{SCOPE}{_WORDS}", 0), ("hidden_size", f"{SCOPE}{_WORDS}", 1),
    ("max_position_embeddings", f"{SCOPE}/embeddings/position_embeddings", 0),
    ("intermediate_size", f"{SCOPE}/encoder/layer_0/intermediate/dense/kernel", 1),
)


def complete_pegasus_config(config: Mapping, shapes: Mapping[str, tuple[int, ...]], hints: ConfigHints | None = None
                            ) -> dict:
    """The file's values, else the shapes, else the official flag defaults; ``scope`` as the names show.

    Example:
        >>> shapes = {"pegasus/embeddings/word_embeddings": (100, 32), "pegasus/decoder/layer_1/output/dense/bias": (32,),
        ...           "pegasus/encoder/layer_2/attention/self/query/kernel": (32, 32)}
        >>> c = complete_pegasus_config({"num_attention_heads": 4}, shapes)
        >>> c["vocab_size"], c["num_hidden_layers"], c["num_decoder_layers"], c["scope"]
        (100, 3, 2, 'pegasus')
    """
    hints = hints or ConfigHints()
    scopes = scopes_of(shapes)
    asked = (hints.family_options or {}).get("scope")
    if asked and scopes and asked not in scopes:
        raise ConfigError(f"--scope {asked}: the checkpoint's encoder-decoder is under {', '.join(s + '/' for s in scopes)}",
                          path=hints.config_path, hint=f"drop --scope or pass --scope {scopes[0]}")
    completed = {**FLAG_DEFAULTS, **_from_shapes(shapes), **config}
    if hints.num_heads:
        completed["num_attention_heads"] = int(hints.num_heads)
    completed["scope"] = asked or (scopes[0] if len(scopes) == 1 else config.get("scope", SCOPE))
    return completed


def infer_pegasus_config(shapes: Mapping[str, tuple[int, ...]], *, num_heads: int | None = None
                         ) -> tuple[dict, list[str]]:
    """A config from the shapes and the published recipe (pegasus_large.sh), and warnings naming each guess."""
    config = {**RECIPE, **_from_shapes(shapes)}
    config.setdefault("max_encoder_length", config.get("max_position_embeddings", 4096))
    if num_heads:
        config["num_attention_heads"] = int(num_heads)
    warnings = [f"assumed the pegasus_large.sh settings hidden_act={RECIPE['hidden_act']}, rescale_embedding=true, "
                f"block_size={RECIPE['block_size']} and max_encoder_length={config['max_encoder_length']}; pass the "
                "summarization.config with --config if the model was trained otherwise"]
    if "num_attention_heads" not in config:
        config["num_attention_heads"] = 16 if config.get("hidden_size") == 1024 else FLAG_DEFAULTS["num_attention_heads"]
        warnings.append(f"num_attention_heads not in a config and 2-D kernels: assumed {config['num_attention_heads']}; "
                        "pass --num-heads or --config if that is wrong")
    return config, warnings


def _check_shapes(c: Mapping, s: Mapping[str, tuple[int, ...]], path: str | None) -> None:
    for key, name, axis in _SHAPE_CHECKS:
        if key in c and name in s and int(c[key]) != s[name][axis]:
            raise ConfigError(f"config says {key}={c[key]} but {name} has shape {list(s[name])}", path=path,
                              hint="fix the config or pass the matching one with --config")
    found = _from_shapes(s)
    decoder = c.get("num_decoder_layers") or c.get("num_hidden_layers")
    counts = (("num_hidden_layers", c.get("num_hidden_layers"), found.get("num_hidden_layers"), "encoder"),
              ("num_decoder_layers", decoder, found.get("num_decoder_layers", found.get("num_hidden_layers")), "decoder"))
    for key, said, has, stack in counts:
        if said is not None and has and int(said) != has:
            raise ConfigError(f"config says {key}={said} but the checkpoint has {has} {stack} layers", path=path,
                              hint="fix the config or pass the matching one with --config")
    if "num_attention_heads" in found and int(c.get("num_attention_heads", found["num_attention_heads"])) \
            != found["num_attention_heads"]:
        raise ConfigError(f"config says num_attention_heads={c['num_attention_heads']} but {_QUERY} has shape "
                          f"{list(s[_QUERY])}", path=path, hint="fix the config or --num-heads")
    if "use_bias" in found and bool(c.get("use_bias")) != found["use_bias"]:
        has = "has" if found["use_bias"] else "has no"
        raise ConfigError(f"config says use_bias={str(bool(c.get('use_bias'))).lower()} but the checkpoint {has} "
                          "attention biases", path=path, hint="fix use_bias in the config")


def check_pegasus_config(config: Mapping, shapes: Mapping[str, tuple[int, ...]], *, config_path: str | None = None
                         ) -> None:
    """Raise a one-line ConfigError when the config contradicts the shapes or transformers cannot run it."""
    _check_shapes(config, canonical_shapes(shapes), config_path)
    if config.get("norm_type") != "prenorm":
        raise ConfigError(f"norm_type={config.get('norm_type')!r}: transformers' BigBirdPegasus is pre-norm "
                          "(Pegasus style) only", path=config_path,
                          hint="only --norm_type=prenorm encoder-decoders convert; fix the config if it says otherwise")
    if config.get("couple_encoder_decoder"):
        raise ConfigError("couple_encoder_decoder=true: the decoder shares the encoder's variables, which "
                          "transformers' BigBirdPegasus cannot express", path=config_path,
                          hint="convert an encoder-decoder trained with --couple_encoder_decoder=False")
    if str(config.get("hidden_act")) not in GOOGLE_TO_HF_ACT:
        raise ConfigError(f"unknown hidden_act {config.get('hidden_act')!r}", path=config_path,
                          hint="one of " + ", ".join(GOOGLE_TO_HF_ACT))
    if int(config.get("max_encoder_length", 0)) > int(config.get("max_position_embeddings", 0)):
        raise ConfigError(f"max_encoder_length={config['max_encoder_length']} is longer than "
                          f"max_position_embeddings={config['max_position_embeddings']} (the official code refuses it)",
                          path=config_path, hint="fix max_encoder_length in the config")


def attention_type(config: Mapping) -> str:
    """The encoder attention BigBird runs: full up to 512 tokens, else the flag's (simulated = block sparse)."""
    if int(config.get("max_encoder_length", FLAG_DEFAULTS["max_encoder_length"])) <= _FULL_UP_TO:
        return "original_full"
    return _ATTENTION[str(config.get("attention_type", "block_sparse"))]


def pegasus_config_to_hf(tf_config: Mapping, *, model_class: str) -> dict:
    """HF ``config.json`` (``model_type: bigbird_pegasus``) from the official config."""
    c = {**FLAG_DEFAULTS, **tf_config}
    act = str(c["hidden_act"])
    if act not in GOOGLE_TO_HF_ACT:
        raise ConfigError(f"unknown hidden_act {act!r}", hint="one of " + ", ".join(GOOGLE_TO_HF_ACT))
    layers, heads, ffn = int(c["num_hidden_layers"]), int(c["num_attention_heads"]), int(c["intermediate_size"])
    return {"architectures": [model_class], "model_type": "bigbird_pegasus", "vocab_size": int(c["vocab_size"]),
            "d_model": int(c["hidden_size"]), "encoder_layers": layers,
            "decoder_layers": int(c.get("num_decoder_layers") or layers),
            "encoder_attention_heads": heads, "decoder_attention_heads": heads,
            "encoder_ffn_dim": ffn, "decoder_ffn_dim": ffn,
            "max_position_embeddings": int(c["max_position_embeddings"]), "activation_function": GOOGLE_TO_HF_ACT[act],
            "dropout": float(c["hidden_dropout_prob"]), "attention_dropout": float(c["attention_probs_dropout_prob"]),
            "activation_dropout": 0.0, "init_std": float(c["initializer_range"]),
            "scale_embedding": bool(c["rescale_embedding"]), "use_bias": bool(c["use_bias"]),
            "attention_type": attention_type(c), "block_size": int(c["block_size"]),
            "num_random_blocks": int(c["num_rand_blocks"]), "tie_word_embeddings": True, "is_encoder_decoder": True,
            **SPECIAL_IDS}


def hf_config_to_pegasus(hf_config: Mapping) -> dict:
    """The official config (``summarization.config`` JSON, as ``flags.save`` writes it) from an HF config."""
    h = hf_config
    for key in ("attention_heads", "ffn_dim"):
        enc, dec = h.get(f"encoder_{key}"), h.get(f"decoder_{key}")
        if enc is not None and dec is not None and int(enc) != int(dec):
            raise ConfigError(f"encoder_{key}={enc} but decoder_{key}={dec}: the official code has one value for "
                              "both stacks", hint="only models with equal encoder and decoder sizes convert to TF")
    act = google_act(str(h.get("activation_function", "gelu_new")), HF_TO_GOOGLE_ACT, code="Google's BigBird code")
    max_positions = int(h.get("max_position_embeddings", 4096))
    config = {"vocab_size": int(h["vocab_size"]), "hidden_size": int(h.get("d_model", 1024)),
              "num_hidden_layers": int(h.get("encoder_layers", 16)),
              "num_attention_heads": int(h.get("encoder_attention_heads", 16)),
              "intermediate_size": int(h.get("encoder_ffn_dim", 4096)), "max_position_embeddings": max_positions,
              "hidden_act": act, "hidden_dropout_prob": float(h.get("dropout", 0.1)),
              "attention_probs_dropout_prob": float(h.get("attention_dropout", 0.0)),
              "initializer_range": float(h.get("init_std", 0.02)), "use_bias": bool(h.get("use_bias", False)),
              "rescale_embedding": bool(h.get("scale_embedding", True)), "scope": str(h.get("scope") or SCOPE),
              "norm_type": "prenorm", "attention_type": str(h.get("attention_type", "block_sparse")),
              "block_size": int(h.get("block_size", 64)), "num_rand_blocks": int(h.get("num_random_blocks", 3)),
              "max_encoder_length": max_positions, "couple_encoder_decoder": False, "vocab_model_file": "pegasus"}
    if int(h.get("decoder_layers", config["num_hidden_layers"])) != config["num_hidden_layers"]:
        config["num_decoder_layers"] = int(h["decoder_layers"])  # DecoderStack reads params["num_decoder_layers"]
    return config
