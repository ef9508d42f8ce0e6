"""What a model family is: one :class:`Family` row per family module, and the name tables it compiles.

A family is data: name rules (TF pattern <-> HF pattern + a transform, with a placeholder per
layer stack), its own transforms merged over the common ones, its layer stacks, the HF model
classes and the head groups each holds, its HF ``model_type`` names and detection signature, the
options it reads, and the config translation. The plan builders (:mod:`.planning`) are the same for
every family; the reverse direction is derived from the same rules.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Callable, Mapping, Sequence

from ckptkit.converters.config_schema import ConfigSchema
from ckptkit.converters.families.options import FamilyOption
from ckptkit.converters.families.student import StudentRules
from ckptkit.converters.plan import Step
from ckptkit.errors import PlanError, UsageError

__all__ = ["Rule", "Transform", "TRANSFORMS", "ModelClass", "Family", "Part", "LayerStack", "LAYERS", "NameTable",
           "Generated", "plan_tf_to_hf", "plan_hf_to_tf", "cast_dtype", "ROLE_DROP_REASONS"]


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
class Generated:
    """An HF tensor the TF code does not create when two config sizes are equal, computing as if it held
    ``op``'s value instead (ALBERT: no ``embedding_hidden_mapping_in`` when embedding_size == hidden_size, i.e. an
    identity projection). tf->hf writes that value when the checkpoint lacks ``tf``; hf->tf drops a tensor equal
    to it and refuses any other value (the TF code has no variable to hold it).

    Example:
        >>> g = Generated("{base}proj.weight", "proj/kernel", "eye", ("hidden_size", "embedding_size"),
        ...               ("embedding_size", "hidden_size"))
        >>> g.applies({"embedding_size": 4, "hidden_size": 4}), g.steps({"embedding_size": 4, "hidden_size": 4})
        (True, (Step(op='eye', args=(4, 4)),))
    """

    hf: str                      # HF name pattern ({base} is the class prefix)
    tf: str                      # the TF variable the official code leaves out
    op: str                      # a generating op of plan.OPS ("eye", "zeros")
    shape: tuple[str | int, ...]  # HF config keys (or sizes) giving the op's shape
    when_equal: tuple[str, str] | None  # HF config keys: left out when they are equal (None: always left out)
    group: str = "base"

    def applies(self, hf_config: Mapping) -> bool:
        """Whether the TF code leaves this tensor out under ``hf_config``."""
        if self.when_equal is None:
            return True
        first, second = (hf_config.get(k) for k in self.when_equal)
        return first is not None and int(first) == int(second or 0)

    def steps(self, hf_config: Mapping) -> tuple[Step, ...]:
        """The one generating step (no input) of the value the TF code computes with."""
        return (Step(self.op, tuple(k if isinstance(k, int) else int(hf_config[k]) for k in self.shape)),)

    @property
    def reason(self) -> str:
        """Why the TF side has no such variable (a drop reason)."""
        when = f" when {self.when_equal[0]} == {self.when_equal[1]}" if self.when_equal else ""
        return f"{self.op}{when}: the TF code creates no {self.tf}"


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


# name -> Transform, the ones every family may use (read-only: a family declares its own in Family.transforms,
# e.g. BigBird's 3-D attention kernels, and its rules see them merged over these).
TRANSFORMS: Mapping[str, Transform] = MappingProxyType({
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
})


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


@dataclass(frozen=True)
class LayerStack:
    """A stack of numbered weight sets: rules name the index ``{placeholder}``; the HF config key ``count``
    says how many sets there are. BERT has one (``{layer}`` x ``num_hidden_layers``); a model sharing one set
    across layers numbers groups instead (ALBERT: ``{group}`` x ``num_hidden_groups``); an encoder-decoder
    has two stacks."""

    placeholder: str
    count: str


LAYERS = LayerStack("layer", "num_hidden_layers")


@dataclass(frozen=True)
class Family:
    """A model family as data plus a few functions (config translation, detection)."""

    name: str
    model_types: tuple[str, ...]               # HF config model_type(s); the first is the one written
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
    # names this family's checkpoints hold (TF or HF); detection picks the family matching the most names
    signature: re.Pattern | None = None
    transforms: Mapping[str, Transform] = field(default_factory=dict)  # its own, merged over TRANSFORMS
    stacks: tuple[LayerStack, ...] = (LAYERS,)
    options: tuple[FamilyOption, ...] = ()     # options only this family reads (the CLI shows them)
    # hf->tf: HF config -> a rewrite of the TF names the rules give (None: as the rules say), e.g. MobileBERT's
    # norms spelled FakeLayerNorm under normalization_type no_norm
    tf_names: Callable[[Mapping], Callable[[str], str] | None] | None = None
    # which batch rows verify compares with the reference: "all", or "unpadded" when the TF code masks padding
    # in a way transformers cannot express (MobileBERT)
    reference_rows: str = "all"
    # HF tensors the TF code leaves out when two sizes are equal (generated tf->hf, dropped if equal hf->tf)
    generated: tuple[Generated, ...] = ()
    # names in ``tied`` transformers does not tie: hf->tf drops them only when equal to their partner
    value_ties: tuple[str, ...] = ()
    # the tokenizer kind a SentencePiece model of this family becomes (None: chosen from the files)
    tokenizer_kind: str | None = None
    # hf->tf: (HF config, family options) -> the HF config the plan and config_to_tf see (Pegasus: --scope)
    with_options: Callable[[Mapping, Mapping], dict] | None = None

    @property
    def model_type(self) -> str:
        """The HF ``model_type`` written into config.json."""
        return self.model_types[0]

    def transform(self, name: str) -> Transform:
        """The transform a rule names: the family's own, else a common one."""
        return self.transforms[name] if name in self.transforms else TRANSFORMS[name]

    def name_table(self, *, prefix: str) -> "NameTable":
        """This family's rules compiled for the HF base prefix ``prefix``."""
        return NameTable(self.rules, prefix=prefix, transforms={**TRANSFORMS, **self.transforms},
                         stacks=self.stacks)

    def stack_counts(self, hf_config: Mapping) -> dict[str, int]:
        """placeholder -> number of weight sets, read from an HF config (``{"layer": 12}``)."""
        return {stack.placeholder: int(hf_config[stack.count]) for stack in self.stacks}

    def option_names(self, command: str) -> frozenset[str]:
        """The names of the options this family reads in ``command``."""
        return frozenset(o.name for o in self.options if command in o.commands)

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


# Placeholders in rule patterns -> what they match (each layer stack's placeholder matches a number).
_TASK = {"{task}": r"(?P<task>[^/]+)"}


class NameTable:
    """The rules compiled for one HF prefix: lookups in both directions, naming what failed.

    ``transforms`` says which rules can be read backwards (those whose transform has a ``to_tf``);
    ``stacks`` names the numbered placeholders (``{layer}`` by default).

    Example:
        >>> from ckptkit.converters.families.bert import BERT
        >>> table = NameTable(BERT.rules, prefix="bert.")
        >>> table.tf_to_hf("bert/encoder/layer_3/output/dense/kernel")[0]
        'bert.encoder.layer.3.output.dense.weight'
        >>> table.hf_to_tf("bert.encoder.layer.3.output.dense.weight")[0]
        'bert/encoder/layer_3/output/dense/kernel'
        >>> sorted(table.expected(frozenset({"pooler"}), {"layer": 2}, side="tf"))
        ['bert/pooler/dense/bias', 'bert/pooler/dense/kernel']
    """

    def __init__(self, rules: Sequence[Rule], *, prefix: str, transforms: Mapping[str, Transform] = TRANSFORMS,
                 stacks: Sequence[LayerStack] = (LAYERS,)):
        self.rules = tuple(rules)
        self.prefix = prefix
        self.stacks = tuple(stacks)
        numbered = {f"{{{s.placeholder}}}": rf"(?P<{s.placeholder}>\d+)" for s in self.stacks}
        self._patterns = {**numbered, **_TASK}
        self._split = re.compile("(" + "|".join(re.escape(p) for p in self._patterns) + ")")
        self._tf = [(self._compile(r.tf), r) for r in rules]
        self._hf = [(self._compile(r.hf), r) for r in rules if transforms[r.transform].to_tf is not None]

    def _compile(self, pattern: str) -> re.Pattern:
        parts = self._split.split(pattern.replace("{base}", self.prefix))
        return re.compile("".join(self._patterns.get(p) or re.escape(p) for p in parts) + r"\Z")

    def _lookup(self, table, name: str, target: Callable[[Rule], str]):
        for pattern, rule in table:
            m = pattern.match(name)
            if m:
                found = m.groupdict()
                out = target(rule).replace("{base}", self.prefix)
                for stack in self.stacks:
                    out = out.replace(f"{{{stack.placeholder}}}", found.get(stack.placeholder) or "")
                yield out, rule, next((found[s.placeholder] for s in self.stacks if found.get(s.placeholder)), None)

    def tf_to_hf(self, name: str) -> tuple[str, Rule, str | None] | None:
        """The HF name a TF name maps to, the rule, and its layer index (None: not a layer tensor)."""
        return next(self._lookup(self._tf, name, lambda r: r.hf), None)

    def tf_to_hf_all(self, name: str) -> list[tuple[str, Rule, str | None]]:
        """Every output a TF name feeds (usually one)."""
        return list(self._lookup(self._tf, name, lambda r: r.hf))

    def hf_to_tf(self, name: str) -> tuple[str, Rule, str | None] | None:
        """The TF name an HF name maps back to (only rules whose transform has a way back)."""
        return next(self._lookup(self._hf, name, lambda r: r.tf), None)

    def expected(self, groups: frozenset[str], counts: Mapping[str, int], *, side: str) -> set[str]:
        """Every required name of ``groups`` on one side (``tf`` or ``hf``), each stack placeholder expanded
        ``counts[placeholder]`` times (``{"layer": 12}``; see :meth:`Family.stack_counts`)."""
        names = set()
        for rule in self.rules:
            if rule.group in groups and not rule.optional:
                pattern = (rule.tf if side == "tf" else rule.hf).replace("{base}", self.prefix)
                used = [s.placeholder for s in self.stacks if f"{{{s.placeholder}}}" in pattern]
                for indices in itertools.product(*(range(int(counts[p])) for p in used)):
                    name = pattern
                    for placeholder, index in zip(used, indices):
                        name = name.replace(f"{{{placeholder}}}", str(index))
                    names.add(name)
        return names


# The plan builders live in .planning (which imports nothing from here); importable from here as before.
from ckptkit.converters.families.planning import (ROLE_DROP_REASONS, cast_dtype, plan_hf_to_tf,  # noqa: E402
                                                  plan_tf_to_hf)


