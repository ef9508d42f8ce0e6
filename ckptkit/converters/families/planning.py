"""The two generic plan builders: a TF checkpoint -> HF state dict and back, for any :class:`Family`.

Both read only metadata (names, shapes, dtypes) and the family's rules; the reverse direction uses
the same rules read the other way.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Callable, Mapping, Sequence

from ckptkit.converters.plan import Dropped, Plan, PlannedTensor, materialize, output_shape
from ckptkit.converters.tensors import (ROLE_COUNTER, ROLE_METADATA, ROLE_OPTIMIZER, ROLE_WEIGHT, DType, LazyTensor,
                                        dtype_by_name)
from ckptkit.errors import ConfigError, PlanError

if TYPE_CHECKING:
    from ckptkit.converters.families.base import Family, Generated, ModelClass

__all__ = ["plan_tf_to_hf", "plan_hf_to_tf", "cast_dtype", "ROLE_DROP_REASONS"]

ROLE_DROP_REASONS = {ROLE_OPTIMIZER: "optimizer state", ROLE_COUNTER: "training counter",
                     ROLE_METADATA: "checkpoint metadata"}


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
    probe = family.name_table(prefix="")
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
    table = family.name_table(prefix=cls.prefix)
    outputs: list[PlannedTensor] = []
    for name, rules in matched.items():
        if rules and rules[0].group not in cls.groups:
            dropped.append(Dropped(name, f"'{rules[0].group}' head is not part of {cls.name}"))
            continue
        tensor = source[name]
        for hf_name, rule, _ in table.tf_to_hf_all(canonical[name]):
            steps = family.transform(rule.transform).to_hf(tensor.shape, hf_config)
            try:
                shape = output_shape([tensor.shape], steps)
            except ValueError as e:
                raise ConfigError(f"tensor {name!r} of shape {list(tensor.shape)} does not fit the config ({e})"
                                  ) from e
            outputs.append(PlannedTensor(hf_name, (name,), steps, cast_dtype(tensor.dtype, dtype), shape))
    _check_single_source(outputs)
    outputs += _generated_outputs(family, cls, hf_config, outputs, dtype)
    expected = table.expected(cls.groups, family.stack_counts(hf_config), side="hf")
    missing = sorted(expected - {t.name for t in outputs})
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
    table = family.name_table(prefix=cls.prefix)
    spelled = family.tf_names(hf_config) if family.tf_names else None
    outputs, unknown = [], []
    for name in weights:
        if name in family.tied or name.endswith(("position_ids", "token_type_ids")):
            if name in family.value_ties:
                _check_equal_tie(name, family.tied[name], source)
            dropped.append(Dropped(name, "tied or derived tensor, not stored in TF"))
            continue
        stand_in = _stand_in(family, cls, hf_config, name)
        if stand_in is not None:  # raises when the tensor is not the value the TF code computes with
            dropped.append(_drop_generated(stand_in, name, source[name], hf_config))
            continue
        hit = table.hf_to_tf(name)
        if hit is None:
            unknown.append(name)
            continue
        tf_name, rule, _ = hit
        if spelled:
            tf_name = spelled(tf_name)
        if tf_rename:
            tf_name = tf_rename(tf_name)
        tensor = source[name]
        transform = (transform_overrides or {}).get(rule.transform, rule.transform)
        steps = family.transform(transform).to_tf(tensor.shape, hf_config)
        try:
            shape = output_shape([tensor.shape], steps)
        except ValueError as e:
            raise ConfigError(f"tensor {name!r} of shape {list(tensor.shape)} does not fit the config ({e})",
                              hint="is config.json this model's?") from e
        outputs.append(PlannedTensor(tf_name, (name,), steps, cast_dtype(tensor.dtype, dtype), shape))
    _unknown(unknown, family, allow_unused, dropped, "HF")
    outputs.sort(key=lambda t: t.name.encode())
    return Plan(outputs, dropped, {"family": family.name, "model_class": cls.name, "direction": "hf->tf"})


_FLOAT32 = dtype_by_name("float32")


def _generated_outputs(family: Family, cls: ModelClass, hf_config: Mapping, outputs: Sequence[PlannedTensor],
                       dtype: DType | None) -> list[PlannedTensor]:
    """The family's :class:`Generated` tensors the TF code left out under ``hf_config`` (and the checkpoint
    lacks), each as one generating step with no input, in the dtype of the other floating outputs."""
    present = {t.name for t in outputs}
    like = next((t.dtype for t in outputs if t.dtype.is_float), _FLOAT32)
    generated = []
    for g in family.generated:
        name = g.hf.replace("{base}", cls.prefix)
        if g.group in cls.groups and g.applies(hf_config) and name not in present:
            steps = g.steps(hf_config)
            generated.append(PlannedTensor(name, (), steps, cast_dtype(like, dtype), output_shape([], steps)))
    return generated


def _stand_in(family: Family, cls: ModelClass, hf_config: Mapping, name: str) -> Generated | None:
    """The :class:`Generated` row HF tensor ``name`` is, when the TF code leaves it out under ``hf_config``."""
    return next((g for g in family.generated
                 if g.applies(hf_config) and g.hf.replace("{base}", cls.prefix) == name), None)


def _drop_generated(generated: Generated, name: str, tensor: LazyTensor, hf_config: Mapping) -> Dropped:
    """Drop an HF tensor the TF code leaves out, after checking it holds exactly the value the TF code computes
    with; any other value has no TF variable to go to (a PlanError)."""
    import numpy as np

    steps = generated.steps(hf_config)
    expected = materialize(PlannedTensor(name, (), steps, _FLOAT32, output_shape([], steps)), [])
    actual = tensor.read()
    if tuple(actual.shape) != expected.shape or not np.array_equal(np.asarray(actual, dtype=np.float32), expected):
        first, second = generated.when_equal or (None, None)
        why = f"with {first} == {second} ({hf_config[first]}) " if first else ""
        raise PlanError(f"{name} is not an exact {generated.op}{list(expected.shape)}, but {why}"
                        f"the official TF code has no {generated.tf} to hold it",
                        hint="keep it in the PyTorch world (--to hf, safetensors or pytorch): a TF checkpoint "
                             "of the official code cannot represent it")
    return Dropped(name, generated.reason)


def _check_equal_tie(name: str, partner: str, source: Mapping[str, LazyTensor]) -> None:
    """An HF tensor the TF code keeps in one variable with ``partner``: dropped only when it holds the same values."""
    import numpy as np

    if partner in source and not np.array_equal(np.asarray(source[name].read()), np.asarray(source[partner].read())):
        raise PlanError(f"{name} differs from {partner}, but the official TF code has one variable for both",
                        hint="keep the model in the PyTorch world (--to safetensors or pytorch), or make them equal")


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
