"""Student names from teacher names: keep and renumber layers (``same``), or rename to DistilBERT's.

Each student tensor is a :class:`Copied` (its name, the teacher tensors it comes from, and how
it is read); every teacher tensor not written gets a reason. What is per layer, how a layer is
renumbered, what is tied and where the MLM head goes come from the teacher family's
:class:`~ckptkit.converters.families.student.StudentRules`.

Example:
    >>> from ckptkit.converters.source import open_source
    >>> from ckptkit.distill.init.teacher import open_teacher
    >>> with open_source("examples/tiny-bert") as src:
    ...     copied, dropped = same_names(open_teacher(src), [1])
    >>> dropped["bert.encoder.layer.0.output.dense.weight"]
    'teacher layer 0 is not kept'
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Sequence

from ckptkit.converters.families.student import StudentRules
from ckptkit.converters.plan import PlannedTensor, Step
from ckptkit.distill.init.distilbert import (DISTILBERT_EMBEDDINGS, DISTILBERT_LAYER, POSITION_EMBEDDINGS,
                                             TOKEN_TYPE_EMBEDDINGS)
from ckptkit.distill.init.teacher import Teacher, _families
from ckptkit.errors import PlanError, UsageError

__all__ = ["Copied", "same_names", "distilbert_names", "tied_aliases", "shared_sets"]


@dataclass(frozen=True)
class Copied:
    """One student tensor: where it came from in the teacher and what was done to it."""

    name: str
    teacher: tuple[str, ...]
    planned: PlannedTensor

    def to_json(self) -> dict:
        return {"name": self.name, "from": list(self.teacher), "source": list(self.planned.inputs),
                "ops": [s.describe() for s in self.planned.steps], "dtype": self.planned.dtype.name,
                "shape": list(self.planned.shape)}


def _rules(teacher: Teacher) -> StudentRules:
    """The family's rules; for a family ckptkit does not know, the default layout and every family's ties."""
    if teacher.rules is not None:
        return teacher.rules
    tied = tuple(t for fam in _families().values() if fam.student for t in fam.student.tied)
    return StudentRules(mlm={}, tied=tuple(dict.fromkeys(tied)))


def tied_aliases(teacher: Teacher) -> dict[str, str]:
    """Teacher names that repeat another stored tensor (not written; transformers re-ties them)."""
    out = {}
    for alias, target, flag in _rules(teacher).tied:
        target = target.replace("{base}", teacher.base)
        if alias in teacher.tensors and target in teacher.tensors and (flag is None or teacher.config.get(flag, True)):
            out[alias] = target
    return out


def _renamed(view: PlannedTensor, name: str) -> PlannedTensor:
    return dataclasses.replace(view, name=name)


def _copy(name: str, view: PlannedTensor, student: str) -> Copied:
    return Copied(student, (name,), _renamed(view, student))


def _folded(position: PlannedTensor, token_type: PlannedTensor, name: str) -> PlannedTensor:
    """position + token_type[0], composed over the source (both must be plain reads)."""
    if position.steps or token_type.steps or len(position.inputs) != 1 or len(token_type.inputs) != 1:
        raise PlanError("cannot fold token types: the teacher's embeddings are not stored as plain tensors",
                        hint="pass --drop-token-types")
    return PlannedTensor(name, (position.inputs[0], token_type.inputs[0]), (Step("add_row", (0,)),),
                         position.dtype, position.shape)


def shared_sets(teacher: Teacher, layers: Sequence[int]) -> tuple[dict[int, int], dict]:
    """Layers sharing weights (``StudentRules.layer_sets``, ALBERT's groups): teacher set -> student set for the
    sets the chosen ``layers`` run, and the student's config keys. A student runs its sets in the order the
    family's own rule gives its layers; a choice that rule cannot reproduce is refused."""
    rules = _rules(teacher)
    runs = rules.layer_sets(teacher.config)
    chosen = [runs[layer] for layer in layers]
    new_index = {t: s for s, t in enumerate(dict.fromkeys(chosen))}
    config = {"num_hidden_layers": len(layers), rules.sets_key: len(new_index)}
    wanted = [new_index[t] for t in chosen]
    if rules.layer_sets({**teacher.config, **config}) != wanted:
        raise UsageError(f"teacher layers {list(layers)} run weight sets {chosen}, which a {len(layers)}-layer "
                         f"student with {len(new_index)} {rules.sets_key} cannot run in that order",
                         hint="choose as many layers from each kept group (e.g. --num-layers with the "
                              "uniform strategy)")
    return new_index, config


def same_names(teacher: Teacher, layers: Sequence[int]) -> tuple[list[Copied], dict[str, str]]:
    """``--arch same``: every tensor kept under its name, kept layers renumbered, the others dropped
    (layers sharing weights: the weight sets the kept layers run, see :func:`shared_sets`)."""
    rules = _rules(teacher)
    shared = rules.layer_sets is not None
    new_index = shared_sets(teacher, layers)[0] if shared else {t: s for s, t in enumerate(layers)}
    aliases = tied_aliases(teacher)
    copied, dropped = [], {}
    for name, view in teacher.tensors.items():
        m = rules.layer_pattern.match(name)
        if name in aliases:
            dropped[name] = f"tied to {aliases[name]}; transformers re-ties it on load"
        elif m is None:
            copied.append(_copy(name, view, name))
        elif int(m.group("layer")) in new_index:
            student = rules.layer_name.format(base=m.group("base"), layer=new_index[int(m.group("layer"))],
                                              rest=m.group("rest"))
            copied.append(_copy(name, view, student))
        else:
            dropped[name] = (f"teacher weight set {m.group('layer')} is run by no kept layer" if shared
                             else f"teacher layer {m.group('layer')} is not kept")
    return copied, dropped


def _check_distilbert(teacher: Teacher, rules: StudentRules) -> list[str]:
    """Refuse what DistilBERT cannot compute; return warnings for what it computes slightly differently."""
    config, warnings = teacher.config, []
    for key, wanted, default, why in rules.requirements:
        if config.get(key, default) != wanted:
            raise UsageError(f"--arch distilbert: the teacher has {key}={config.get(key)!r}; {why}",
                             hint="use --arch same")
    if f"{teacher.base}embeddings_project.weight" in teacher.tensors or \
            config.get("embedding_size", config.get("hidden_size")) != config.get("hidden_size"):
        raise UsageError(f"--arch distilbert: the teacher's embedding_size ({config.get('embedding_size')}) differs "
                         f"from hidden_size ({config.get('hidden_size')}); DistilBERT has no embedding projection",
                         hint="use --arch same")
    eps = float(config.get("layer_norm_eps", 1e-12))
    if eps != 1e-12:
        warnings.append(f"DistilBERT's LayerNorm eps is fixed at 1e-12, the teacher's is {eps:g}: outputs differ "
                        "slightly from the teacher's (use --arch same for an exact copy)")
    if config.get("attention_type", "original_full") != "original_full":
        warnings.append(f"the teacher uses {config['attention_type']} attention; DistilBERT attends to all tokens, "
                        "as BigBird itself does for short inputs")
    return warnings


def _distilbert_rules(teacher: Teacher) -> StudentRules:
    rules = teacher.rules
    if rules is None or not rules.mlm:
        known = ", ".join(fam.model_type for fam in _families().values() if fam.student and fam.student.mlm)
        raise UsageError(f"--arch distilbert does not know {teacher.model_type!r} teachers",
                         hint="one of " + known + "; or use --arch same")
    return rules


@dataclass(frozen=True)
class _Target:
    """What decides where a teacher tensor goes in a DistilBERT student."""

    teacher: Teacher
    rules: StudentRules
    new_index: dict[int, int]
    aliases: dict[str, str]
    head: dict[str, str]        # teacher name -> DistilBERT head name
    has_mlm: bool
    tied: bool
    token_types: str

    @property
    def prefix(self) -> str:
        return "distilbert." if self.has_mlm else ""


def _layer_place(t: _Target, name: str, view: PlannedTensor, layer: int, rest: str) -> Copied | str:
    if layer not in t.new_index:
        return f"teacher layer {layer} is not kept"
    if rest not in DISTILBERT_LAYER:
        raise PlanError(f"--arch distilbert: no DistilBERT place for teacher tensor {name!r}", hint="use --arch same")
    return _copy(name, view, f"{t.prefix}transformer.layer.{t.new_index[layer]}.{DISTILBERT_LAYER[rest]}")


def _place(t: _Target, name: str, view: PlannedTensor) -> Copied | str:
    """The student tensor made from teacher tensor ``name``, or why it is not written."""
    base, views = t.teacher.base, t.teacher.tensors
    m = t.rules.layer_pattern.match(name)
    rest = name[len(base):] if name.startswith(base) else None
    token_type = base + TOKEN_TYPE_EMBEDDINGS
    if name in t.aliases:
        return f"tied to {t.aliases[name]}; DistilBERT re-ties vocab_projector.weight on load"
    if m is not None and m.group("base") == base:
        return _layer_place(t, name, view, int(m.group("layer")), m.group("rest"))
    if rest == POSITION_EMBEDDINGS and t.token_types == "fold" and token_type in views:
        student = t.prefix + DISTILBERT_EMBEDDINGS[rest]
        return Copied(student, (name, f"{token_type}[0]"), _folded(view, views[token_type], student))
    if rest in DISTILBERT_EMBEDDINGS:
        return _copy(name, view, t.prefix + DISTILBERT_EMBEDDINGS[rest])
    if rest == TOKEN_TYPE_EMBEDDINGS:
        return ("DistilBERT has no token types: row 0 (segment A) folded into the position embeddings"
                if t.token_types == "fold" else "DistilBERT has no token types: dropped (--drop-token-types)")
    if name in t.head and t.has_mlm:
        if t.head[name] == "vocab_projector.weight" and t.tied:
            return "tied to the word embeddings (tie_word_embeddings)"
        return _copy(name, view, t.head[name])
    if rest is not None and rest.startswith("pooler."):
        return "DistilBERT has no pooler"
    return "not part of " + ("DistilBertForMaskedLM" if t.has_mlm else "DistilBertModel")


def _target(teacher: Teacher, rules: StudentRules, layers: Sequence[int], token_types: str) -> _Target:
    aliases = tied_aliases(teacher)
    head: dict[str, str] = {}  # the first candidate present wins
    for target, candidates in rules.mlm.items():
        present = next((c for c in candidates if c in teacher.tensors and c not in aliases), None)
        if present:
            head[present] = target
    has_mlm = any(target != "vocab_projector.weight" for target in head.values())
    tied = bool(teacher.config.get("tie_word_embeddings", True)) or "vocab_projector.weight" not in head.values()
    return _Target(teacher, rules, {t: s for s, t in enumerate(layers)}, aliases, head, has_mlm, tied, token_types)


def distilbert_names(teacher: Teacher, layers: Sequence[int], token_types: str
                     ) -> tuple[list[Copied], dict[str, str], dict]:
    """``--arch distilbert``: DistilBERT names, the dropped teacher tensors, and the plan's info."""
    rules = _distilbert_rules(teacher)
    warnings = _check_distilbert(teacher, rules)
    target = _target(teacher, rules, layers, token_types)
    copied, dropped = [], {}
    for name, view in teacher.tensors.items():
        placed = _place(target, name, view)
        if isinstance(placed, str):
            dropped[name] = placed
        else:
            copied.append(placed)
    info = {"model_class": "DistilBertForMaskedLM" if target.has_mlm else "DistilBertModel",
            "tie_word_embeddings": target.tied, "warnings": warnings,
            "head_activation": rules.head_activation(teacher.config)}
    return copied, dropped, info
