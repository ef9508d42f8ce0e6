"""What a model family is, and the two generic plan builders that use it.

A family is data: name rules (TF pattern <-> HF pattern + a transform, with a ``{layer}``
placeholder), the HF model classes and the head groups each holds, and the config
translation. :func:`plan_tf_to_hf` and :func:`plan_hf_to_tf` are the same for every family;
the reverse direction is derived from the same rules.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

from ckptkit.converters.config_schema import ConfigSchema
from ckptkit.converters.families.student import StudentRules
from ckptkit.converters.plan import Dropped, Plan, PlannedTensor, Step, output_shape
from ckptkit.converters.tensors import ROLE_COUNTER, ROLE_METADATA, ROLE_OPTIMIZER, ROLE_WEIGHT, DType, LazyTensor
from ckptkit.errors import ConfigError, PlanError, UsageError

__all__ = ["Rule", "Transform", "TRANSFORMS", "ModelClass", "Family", "Part", "NameTable", "plan_tf_to_hf",
           "plan_hf_to_tf", "cast_dtype", "ROLE_DROP_REASONS"]


@dataclass(frozen=True)
class Rule:
    """One TF name pattern <-> one HF name pattern. ``{layer}`` is the layer index; ``{base}``
    the HF base-model prefix of the chosen class (``bert.`` or empty); ``{task}`` (TF side only)
    any one name component. Several rules may read the same TF name (one output each)."""

    tf: str
    hf: str
    transform: str = "copy"
    group: str = "base"
    optional: bool = False


@dataclass(frozen=True)
class Transform:
    """Steps from the TF layout to the HF layout and back, given the source shape and HF config.
    Without ``to_tf`` the transform is one-way: its rules only read TF checkpoints."""

    to_hf: Callable[[tuple[int, ...], Mapping], tuple[Step, ...]]
    to_tf: Callable[[tuple[int, ...], Mapping], tuple[Step, ...]] | None


def _no_steps(shape, config) -> tuple[Step, ...]:
    return ()


def _transpose(shape, config) -> tuple[Step, ...]:
    return (Step("transpose", (1, 0)),)


def _head_size(config: Mapping) -> int:
    return config["hidden_size"] // config["num_attention_heads"]


# name -> Transform. Families may register more (BigBird's 3-D attention kernels).
TRANSFORMS: dict[str, Transform] = {
    "copy": Transform(_no_steps, _no_steps),
    "transpose": Transform(_transpose, _transpose),
    # [hidden, heads, head_size] (TF, in x out) <-> [heads*head_size, hidden] (HF, out x in)
    "qkv_3d": Transform(
        lambda s, c: (Step("reshape", (s[0], s[1] * s[2])), Step("transpose", (1, 0))),
        lambda s, c: (Step("transpose", (1, 0)), Step("reshape", (s[1], c["num_attention_heads"], _head_size(c))))),
    # [heads, head_size] bias <-> [heads*head_size]
    "bias_3d": Transform(lambda s, c: (Step("reshape", (s[0] * s[1],)),),
                         lambda s, c: (Step("reshape", (c["num_attention_heads"], _head_size(c))),)),
    # [heads, head_size, hidden] (TF, in x out) <-> [hidden, heads*head_size] (HF, out x in)
    "out_3d": Transform(
        lambda s, c: (Step("reshape", (s[0] * s[1], s[2])), Step("transpose", (1, 0))),
        lambda s, c: (Step("transpose", (1, 0)), Step("reshape", (c["num_attention_heads"], _head_size(c), s[0])))),
    # One dense [hidden, labels] as dense -> gelu -> dense (ELECTRA's official fine-tuning head in
    # ElectraForSequenceClassification): the first dense computes [z; -z; 0...], the second z = gelu(z) - gelu(-z).
    "signed_pair_kernel": Transform(lambda s, c: (Step("transpose", (1, 0)), Step("signed_pair", (s[0],))), None),
    "signed_pair_bias": Transform(lambda s, c: (Step("signed_pair", (c["hidden_size"],)),), None),
    "pair_difference": Transform(lambda s, c: (Step("pair_difference", (s[0],)),), None),
    "zeros": Transform(lambda s, c: (Step("zeros"),), None),
}


@dataclass(frozen=True)
class ModelClass:
    """An HF model class: which head groups it holds and the prefix of its base model."""

    name: str
    groups: frozenset[str]
    prefix: str
    auto_class: str
    pipeline_tag: str | None = None

    @property
    def heads(self) -> frozenset[str]:
        return self.groups - {"base", "pooler"}


@dataclass(frozen=True)
class Part:
    """One of several models a single TF checkpoint holds (ELECTRA's discriminator and generator).

    ``rename`` maps a source TF name to the family's canonical TF name (the rules' side) and
    ``unrename`` maps it back; ``exclude`` returns why a source tensor belongs to another part
    (or None); ``tf_config`` picks this part's config out of the family's completed TF config.
    """

    name: str
    rename: Callable[[str], str] | None = None
    unrename: Callable[[str], str] | None = None
    exclude: Callable[[str], str | None] | None = None
    tf_config: Callable[[Mapping], dict] | None = None


ROLE_DROP_REASONS = {ROLE_OPTIMIZER: "optimizer state", ROLE_COUNTER: "training counter",
                     ROLE_METADATA: "checkpoint metadata"}


@dataclass(frozen=True)
class Family:
    """A model family as data plus a few functions (config translation, detection)."""

    name: str
    model_type: str
    rules: tuple[Rule, ...]
    classes: tuple[ModelClass, ...]
    config_to_hf: Callable[..., dict]          # (tf_config, shapes, model_class) -> HF config.json dict
    config_to_tf: Callable[[Mapping], dict]    # HF config -> TF config json (e.g. bert_config.json)
    infer_tf_config: Callable[..., dict]       # (shapes, num_heads) -> TF config from tensor shapes
    tied: Mapping[str, str] = field(default_factory=dict)  # HF name -> name it is tied to (not written)
    check_tf_config: Callable[..., None] | None = None  # (tf_config, shapes, config_path=) -> raises ConfigError
    read_tf_config: Callable[[str], dict] | None = None  # path -> TF config dict (default: JSON)
    tf_config_name: str = "bert_config.json"
    reference: str = ""                        # "module:function" NumPy forward pass over TF names (verify)
    tf_config_aliases: tuple[str, ...] = ()    # more TF config file names looked up next to a checkpoint
    # (tf_config, shapes, hints) -> a new TF config with what the file does not say filled from shapes/defaults
    complete_tf_config: Callable[..., dict] | None = None
    # source weight names -> the parts the checkpoint holds (None: one model per checkpoint)
    split: Callable[..., tuple[Part, ...]] | None = None
    # hf->tf layout variants: layout name -> {rule transform -> transform used instead}
    tf_layouts: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    default_tf_layout: str | None = None
    spm_names: tuple[str, ...] = ()            # SentencePiece model names looked up next to a checkpoint
    hf_parts: tuple[Part, ...] = ()            # part folders joined back into one TF checkpoint (hf->tf)
    join_tf_config: Callable[[Mapping[str, Mapping]], dict] | None = None  # {part: HF config} -> TF config
    tf_schema: ConfigSchema | None = None      # the TF config file's keys (checked as read, before completion)
    hf_schema: ConfigSchema | None = None      # an HF config.json's keys (read for hf->tf, and every one written)
    # --approximate-gelu: HF hidden_act the TF code lacks -> the HF activation the TF config's act computes
    approximate_acts: Mapping[str, str] = field(default_factory=dict)
    student: StudentRules | None = None        # what a distillation student of its teachers needs (distill init)

    def model_class(self, name: str) -> ModelClass:
        for cls in self.classes:
            if cls.name == name:
                return cls
        raise UsageError(f"{name!r} is not a {self.name} model class",
                         hint="one of " + ", ".join(c.name for c in self.classes))

    def class_for_heads(self, heads: frozenset[str]) -> ModelClass:
        for cls in self.classes:
            if cls.heads == heads:
                return cls
        raise PlanError(f"no {self.name} model class holds exactly the heads {sorted(heads)}",
                        hint="choose one with --model-class")


# Placeholders in rule patterns -> what they match.
_PLACEHOLDERS = {"{layer}": r"(?P<layer>\d+)", "{task}": r"(?P<task>[^/]+)"}
_PLACEHOLDER = re.compile("(" + "|".join(re.escape(p) for p in _PLACEHOLDERS) + ")")


class NameTable:
    """The rules compiled for one HF prefix: lookups in both directions, naming what failed.

    Example:
        >>> from ckptkit.converters.families.bert import BERT
        >>> table = NameTable(BERT.rules, prefix="bert.")
        >>> table.tf_to_hf("bert/encoder/layer_3/output/dense/kernel")[0]
        'bert.encoder.layer.3.output.dense.weight'
        >>> table.hf_to_tf("bert.encoder.layer.3.output.dense.weight")[0]
        'bert/encoder/layer_3/output/dense/kernel'
    """

    def __init__(self, rules: Sequence[Rule], *, prefix: str):
        def compile_(pattern: str) -> re.Pattern:
            parts = _PLACEHOLDER.split(pattern.replace("{base}", prefix))
            return re.compile("".join(_PLACEHOLDERS.get(p) or re.escape(p) for p in parts) + r"\Z")

        self.rules = tuple(rules)
        self.prefix = prefix
        self._tf = [(compile_(r.tf), r) for r in rules]
        self._hf = [(compile_(r.hf), r) for r in rules if TRANSFORMS[r.transform].to_tf is not None]

    @staticmethod
    def _lookup(table, name: str, target: Callable[[Rule], str], prefix: str):
        for pattern, rule in table:
            m = pattern.match(name)
            if m:
                layer = m.groupdict().get("layer")
                yield target(rule).replace("{base}", prefix).replace("{layer}", layer or ""), rule, layer

    def tf_to_hf(self, name: str) -> tuple[str, Rule, str | None] | None:
        return next(self._lookup(self._tf, name, lambda r: r.hf, self.prefix), None)

    def tf_to_hf_all(self, name: str) -> list[tuple[str, Rule, str | None]]:
        """Every output a TF name feeds (usually one)."""
        return list(self._lookup(self._tf, name, lambda r: r.hf, self.prefix))

    def hf_to_tf(self, name: str) -> tuple[str, Rule, str | None] | None:
        return next(self._lookup(self._hf, name, lambda r: r.tf, self.prefix), None)

    def expected(self, groups: frozenset[str], num_layers: int, *, side: str) -> set[str]:
        """Every required name of ``groups`` on one side (``tf`` or ``hf``) for ``num_layers`` layers."""
        names = set()
        for rule in self.rules:
            if rule.group in groups and not rule.optional:
                pattern = (rule.tf if side == "tf" else rule.hf).replace("{base}", self.prefix)
                layers = range(num_layers) if "{layer}" in pattern else [None]
                names.update(pattern.replace("{layer}", str(i)) for i in layers)
        return names


def cast_dtype(source: DType, target: DType | None) -> DType:
    """Floating tensors take the requested dtype; integer and bool tensors keep theirs."""
    return target if target is not None and source.is_float else source


def _drop_non_weights(source: Mapping[str, LazyTensor]) -> tuple[list[str], list[Dropped]]:
    weights, dropped = [], []
    for name, tensor in source.items():
        if tensor.role == ROLE_WEIGHT:
            weights.append(name)
        else:
            dropped.append(Dropped(name, ROLE_DROP_REASONS.get(tensor.role, tensor.role)))
    return weights, dropped


def _unknown(names: list[str], family: Family, allow_unused: bool, dropped: list[Dropped], side: str) -> None:
    if not names:
        return
    if not allow_unused:
        shown = ", ".join(sorted(names)[:3])
        raise PlanError(f"{len(names)} tensors are not {family.name} {side} variables: {shown}"
                        + (" ..." if len(names) > 3 else ""),
                        hint="pass --family if detection was wrong, or --allow-unused to drop them")
    dropped.extend(Dropped(n, f"not a {family.name} variable (--allow-unused)") for n in names)


def plan_tf_to_hf(family: Family, source: Mapping[str, LazyTensor], *, hf_config: Mapping,
                  model_class: str | None = None, dtype: DType | None = None, allow_unused: bool = False,
                  tf_rename: Callable[[str], str] | None = None,
                  exclude: Callable[[str], str | None] | None = None) -> Plan:
    """Plan a TF checkpoint (TF names) -> HF state dict for ``family``.

    ``tf_rename`` maps a source name to the family's canonical TF name (e.g. ELECTRA's generator
    scope); the plan still reads the original name. ``exclude`` returns a drop reason for source
    tensors that belong to another model in the same checkpoint (see :class:`Part`).
    """
    weights, dropped = _drop_non_weights(source)
    if exclude is not None:
        reasons = {name: exclude(name) for name in weights}
        dropped.extend(Dropped(name, reason) for name, reason in reasons.items() if reason)
        weights = [name for name in weights if not reasons[name]]
    probe = NameTable(family.rules, prefix="")
    canonical = {name: tf_rename(name) if tf_rename else name for name in weights}
    matched = {name: [hit[1] for hit in probe.tf_to_hf_all(canonical[name])] for name in weights}
    unknown = [name for name, rules in matched.items() if not rules]
    heads = frozenset(rule.group for rules in matched.values() for rule in rules) - {"base", "pooler"}
    cls = family.model_class(model_class) if model_class else family.class_for_heads(heads)
    missing_heads = cls.heads - heads
    if missing_heads:
        raise PlanError(f"{cls.name} needs the {sorted(missing_heads)} head(s), which the checkpoint lacks",
                        hint="choose another --model-class")
    _unknown(unknown, family, allow_unused, dropped, "TF")
    table = NameTable(family.rules, prefix=cls.prefix)
    outputs: list[PlannedTensor] = []
    for name, rules in matched.items():
        if rules and rules[0].group not in cls.groups:
            dropped.append(Dropped(name, f"'{rules[0].group}' head is not part of {cls.name}"))
            continue
        tensor = source[name]
        for hf_name, rule, _ in table.tf_to_hf_all(canonical[name]):
            steps = TRANSFORMS[rule.transform].to_hf(tensor.shape, hf_config)
            try:
                shape = output_shape([tensor.shape], steps)
            except ValueError as e:
                raise ConfigError(f"tensor {name!r} of shape {list(tensor.shape)} does not fit the config ({e})"
                                  ) from e
            outputs.append(PlannedTensor(hf_name, (name,), steps, cast_dtype(tensor.dtype, dtype), shape))
    _check_single_source(outputs)
    num_layers = int(hf_config["num_hidden_layers"])
    missing = sorted(table.expected(cls.groups, num_layers, side="hf") - {t.name for t in outputs})
    if missing:
        raise PlanError(f"{len(missing)} tensors that {cls.name} needs are missing from the checkpoint, "
                        f"e.g. {missing[0]!r}", hint="is this checkpoint complete? check --model-class")
    outputs.sort(key=lambda t: _natural_key(t.name))
    return Plan(outputs, dropped, {"family": family.name, "model_class": cls.name, "direction": "tf->hf"})


def plan_hf_to_tf(family: Family, source: Mapping[str, LazyTensor], *, hf_config: Mapping,
                  dtype: DType | None = None, allow_unused: bool = False,
                  tf_rename: Callable[[str], str] | None = None,
                  transform_overrides: Mapping[str, str] | None = None) -> Plan:
    """Plan an HF state dict -> TF checkpoint names and layouts for ``family`` (the rules reversed).

    ``transform_overrides`` swaps a rule's transform for another (a layout variant, see
    :attr:`Family.tf_layouts`), e.g. BigBird's 3-D attention kernels written 2-D.
    """
    weights, dropped = _drop_non_weights(source)
    architectures = hf_config.get("architectures") or []
    known = {c.name for c in family.classes}
    if architectures and architectures[0] in known:
        cls = family.model_class(architectures[0])
    else:  # infer the prefix from the names: a base model has none
        base = next(c for c in family.classes if not c.heads and c.prefix == "")
        cls = base if not any(n.startswith(family.classes[0].prefix) for n in weights) else family.classes[0]
    table = NameTable(family.rules, prefix=cls.prefix)
    outputs, unknown = [], []
    for name in weights:
        if name in family.tied or name.endswith(("position_ids", "token_type_ids")):
            dropped.append(Dropped(name, "tied or derived tensor, not stored in TF"))
            continue
        hit = table.hf_to_tf(name)
        if hit is None:
            unknown.append(name)
            continue
        tf_name, rule, _ = hit
        if tf_rename:
            tf_name = tf_rename(tf_name)
        tensor = source[name]
        transform = (transform_overrides or {}).get(rule.transform, rule.transform)
        steps = TRANSFORMS[transform].to_tf(tensor.shape, hf_config)
        try:
            shape = output_shape([tensor.shape], steps)
        except ValueError as e:
            raise ConfigError(f"tensor {name!r} of shape {list(tensor.shape)} does not fit the config ({e})",
                              hint="is config.json this model's?") from e
        outputs.append(PlannedTensor(tf_name, (name,), steps, cast_dtype(tensor.dtype, dtype), shape))
    _unknown(unknown, family, allow_unused, dropped, "HF")
    outputs.sort(key=lambda t: t.name.encode())
    return Plan(outputs, dropped, {"family": family.name, "model_class": cls.name, "direction": "hf->tf"})


def _check_single_source(outputs: Sequence[PlannedTensor]) -> None:
    """Two source tensors mapping to one output (e.g. a multi-task checkpoint's heads) is an error naming both."""
    first: dict[str, str] = {}
    for planned in outputs:
        other = first.setdefault(planned.name, planned.inputs[0])
        if other != planned.inputs[0]:
            raise PlanError(f"{other!r} and {planned.inputs[0]!r} both map to {planned.name!r}",
                            hint="the checkpoint holds two heads of one kind (several fine-tuning tasks?); "
                                 "--model-class with the base model converts the encoder alone")


def _natural_key(name: str) -> list:
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name)]
