"""Make a distillation student: a Plan over the teacher's tensors (select layers, renumber, rename, fold).

The student is built by the same streaming engine as the converters. The teacher is seen
through its Hugging Face names (``<base>encoder.layer.{i}.…``, which BERT, BigBird and
ELECTRA share); a TF teacher is seen through its TF -> HF conversion plan, and the student's
steps are composed onto it, so the teacher is converted on the fly and only the tensors the
student keeps are read.

Two student architectures:

* ``same``: the teacher's own class and config with fewer layers (token types kept), e.g.
  DistilKoBERT's 3-layer ``BertForMaskedLM`` from KoBERT layers 0, 4, 8.
* ``distilbert``: ``DistilBertForMaskedLM`` (or ``DistilBertModel`` for a teacher without an
  MLM head) with the teacher's activation, vocabulary and special-token ids. DistilBERT has no
  token-type embeddings: segment 0's row is folded into the position embeddings (single-segment
  inputs then embed exactly as in the teacher) or dropped (``token_types="drop"``, as DistilBERT did).

Example:
    >>> select_layers(12, num_layers=3, strategy="uniform")
    [0, 4, 8]
    >>> select_layers(12, num_layers=6, strategy="distilbert")
    [0, 2, 4, 7, 9, 11]
    >>> report = build_student("examples/tiny-bert", "/tmp/ckptkit-doc-student", layers=[1],
    ...                        overwrite=True)  # doctest: +SKIP
    >>> report.layers, report.model_class  # doctest: +SKIP
    ([1], 'BertForPreTraining')
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import numpy as np

from ckptkit.converters.plan import Dropped, Plan, PlannedTensor, Step
from ckptkit.errors import ConfigError, PlanError, UsageError

__all__ = ["STRATEGIES", "ARCHS", "TOKEN_TYPE_MODES", "select_layers", "parse_layers", "Teacher", "open_teacher",
           "plan_student", "student_config", "StudentReport", "build_student", "STUDENT_FILE", "stream_plan"]

STUDENT_FILE = "student.json"


# ---------------------------------------------------------------------------------------------- layer choice
def _uniform(n: int, k: int) -> list[int]:
    return [i * n // k for i in range(k)]


def _first(n: int, k: int) -> list[int]:
    return list(range(k))


def _last(n: int, k: int) -> list[int]:
    return list(range(n - k, n))


def _distilbert(n: int, k: int) -> list[int]:
    if k == 1:
        return [0]
    return [int(np.floor(i * (n - 1) / (k - 1) + 0.5)) for i in range(k)]


# strategy -> (rule, one-line description for --help and the report)
STRATEGIES: dict[str, tuple[Callable[[int, int], list[int]], str]] = {
    "uniform": (_uniform, "every n/k-th layer from the bottom: floor(i*n/k), e.g. 0,4,8 of 12 (DistilKoBERT)"),
    "first": (_first, "the bottom k layers: 0..k-1"),
    "last": (_last, "the top k layers: n-k..n-1"),
    "distilbert": (_distilbert, "spread over both ends: round(i*(n-1)/(k-1)), e.g. 0,2,4,7,9,11 of 12 "
                                "(DistilBERT); k=1 gives 0"),
}


def select_layers(teacher_layers: int, *, num_layers: int, strategy: str = "uniform") -> list[int]:
    """The 0-based teacher layers a ``num_layers``-layer student starts from.

    Example:
        >>> [select_layers(12, num_layers=3, strategy=s) for s in ("uniform", "first", "last", "distilbert")]
        [[0, 4, 8], [0, 1, 2], [9, 10, 11], [0, 6, 11]]
    """
    if strategy not in STRATEGIES:
        raise UsageError(f"unknown layer strategy {strategy!r}", hint="one of " + ", ".join(STRATEGIES))
    if not 1 <= num_layers <= teacher_layers:
        raise UsageError(f"--num-layers {num_layers} is out of range: the teacher has {teacher_layers} layers",
                         hint=f"choose 1..{teacher_layers}")
    return STRATEGIES[strategy][0](teacher_layers, num_layers)


def parse_layers(text: str | Sequence[int], teacher_layers: int) -> list[int]:
    """Validate a 0-based layer list (``"0,4,8"`` or a sequence); out-of-range and duplicates are errors.

    Example:
        >>> parse_layers("0, 4,8", 12)
        [0, 4, 8]
        >>> parse_layers("0,4,4", 12)
        Traceback (most recent call last):
        ...
        ckptkit.errors.UsageError: --layers 0,4,4: teacher layer 4 is named twice (each teacher layer can start one student layer)
    """
    shown = text if isinstance(text, str) else ",".join(str(i) for i in text)
    try:
        layers = [int(p) for p in text.split(",")] if isinstance(text, str) else [int(i) for i in text]
    except ValueError:
        raise UsageError(f"--layers {shown}: not a comma-separated list of integers",
                         hint="e.g. --layers 0,4,8 (0-based teacher layers)") from None
    if not layers:
        raise UsageError("--layers is empty", hint="e.g. --layers 0,4,8 (0-based teacher layers)")
    bad = [i for i in layers if not 0 <= i < teacher_layers]
    if bad:
        raise UsageError(f"--layers {shown}: teacher layer {bad[0]} is out of range",
                         hint=f"the teacher has {teacher_layers} layers, numbered 0..{teacher_layers - 1}")
    twice = next((i for k, i in enumerate(layers) if i in layers[:k]), None)
    if twice is not None:
        raise UsageError(f"--layers {shown}: teacher layer {twice} is named twice",
                         hint="each teacher layer can start one student layer")
    return layers


# ---------------------------------------------------------------------------------------------- the teacher
LAYER_NAME = re.compile(r"^(?P<base>(?:[A-Za-z_]+\.)?)encoder\.layer\.(?P<layer>\d+)\.(?P<rest>.+)\Z")
WORD_EMBEDDINGS = "embeddings.word_embeddings.weight"
# buffers some .bin files carry; transformers recomputes them
_BUFFERS = re.compile(r"(^|\.)(position_ids|token_type_ids)\Z")
# model_type -> ckptkit family name (for the record), when ckptkit's own family name differs
_FAMILY_OF_MODEL_TYPE = {"big_bird": "bigbird"}


@dataclass
class Teacher:
    """A teacher seen through its HF names: each is a PlannedTensor over the source checkpoint.

    ``tensors`` maps an HF name to how it is read (for a hub folder: an identity step; for a TF
    checkpoint: the TF -> HF conversion step). ``dropped`` are source tensors that are not part
    of the HF model (optimizer slots, counters, buffers).
    """

    path: str
    format: str
    config: dict
    family: str
    tensors: dict[str, PlannedTensor]
    dropped: list[Dropped] = field(default_factory=list)
    folder: str | None = None           # where tokenizer files are copied from (hub teachers)
    vocab: str | None = None            # vocab.txt / SentencePiece model (TF teachers)
    spm: str | None = None
    global_step: int | None = None

    @property
    def model_type(self) -> str:
        return str(self.config.get("model_type", self.family))

    @property
    def base(self) -> str:
        """The base-model prefix of the HF names (``bert.``, ``electra.`` or empty)."""
        hit = next((n for n in self.tensors if n.endswith(WORD_EMBEDDINGS)), None)
        if hit is None:
            raise PlanError(f"the teacher has no '{WORD_EMBEDDINGS}'", path=self.path,
                            hint="is this a BERT-family checkpoint?")
        return hit[: -len(WORD_EMBEDDINGS)]

    @property
    def num_layers(self) -> int:
        found = {int(m.group("layer")) for m in map(LAYER_NAME.match, self.tensors) if m}
        if not found:
            raise PlanError("the teacher has no encoder layers (no '<base>encoder.layer.N.' tensors)", path=self.path)
        return max(found) + 1

    @property
    def model_class(self) -> str:
        return (self.config.get("architectures") or ["?"])[0]

    @property
    def num_parameters(self) -> int:
        return sum(int(np.prod(t.shape, dtype=np.int64)) for t in self.tensors.values())

    @property
    def nbytes(self) -> int:
        return sum(t.nbytes for t in self.tensors.values())


def _identity_view(source: Mapping) -> tuple[dict[str, PlannedTensor], list[Dropped]]:
    tensors, dropped = {}, []
    for name, t in source.items():
        if _BUFFERS.search(name):
            dropped.append(Dropped(name, "buffer, recomputed by transformers"))
        else:
            tensors[name] = PlannedTensor(name, (name,), (), t.dtype, t.shape)
    return tensors, dropped


def _hf_teacher(source, path: str, config_path: str | None, part: str | None = None) -> Teacher:
    from ckptkit.converters.config_io import checkpoint_folder, find_companion, read_json_config
    from ckptkit.converters.config_schema import validate_hf_config

    folder = source.extras.get("folder") or checkpoint_folder(path)
    config = source.extras.get("config") if not config_path else None
    found = os.path.join(folder, "config.json")
    if not config:
        found = find_companion(path, ("config.json",), explicit=config_path)
        if found is None:
            raise ConfigError("no config.json next to the teacher's weights", path=path,
                              hint="pass the teacher's config.json with --config")
        config = read_json_config(found)
    validate_hf_config(config, path=found)  # its family's schema, before anything is written
    tensors, dropped = _identity_view(source)
    model_type = config.get("model_type")
    if not model_type:
        raise ConfigError("the teacher's config.json has no model_type", path=path,
                          hint="pass a transformers config.json with --config")
    return Teacher(os.path.abspath(path), source.format, dict(config),
                   _FAMILY_OF_MODEL_TYPE.get(model_type, model_type), tensors, dropped, folder=folder)


def _tf_teacher(source, path: str, config_path: str | None, part: str | None = None) -> Teacher:
    from ckptkit.converters.convert import ConversionOptions, prepare_conversion

    prepared = prepare_conversion(source, ConversionOptions(to="hf", config=config_path, part=part))
    if len(prepared.parts) > 1:
        names = ", ".join(p.subfolder or "?" for p in prepared.parts)
        raise UsageError(f"this TF checkpoint holds several models ({names})", path=path,
                         hint="choose the teacher with --part, e.g. --part discriminator")
    prepared = prepared.parts[0] if prepared.parts else prepared
    plan = prepared.plan
    tensors = {t.name: t for t in plan.outputs}
    return Teacher(os.path.abspath(path), source.format, dict(prepared.hf_config), prepared.family.name, tensors,
                   list(plan.dropped), vocab=prepared.vocab, spm=prepared.spm, global_step=source.global_step)


def open_teacher(source, path: str, *, config_path: str | None = None, part: str | None = None) -> Teacher:
    """The :class:`Teacher` view of an open checkpoint (TF: through its conversion plan).

    Example:
        >>> from ckptkit.converters.formats import open_checkpoint
        >>> with open_checkpoint("examples/tiny-bert") as ckpt:
        ...     t = open_teacher(ckpt, "examples/tiny-bert")
        >>> t.family, t.num_layers, t.base, t.config["hidden_act"]
        ('bert', 2, 'bert.', 'gelu_new')
    """
    if part and source.format != "tf":
        raise UsageError("--part applies to TF checkpoints holding several models (ELECTRA pretraining)", path=path)
    return (_tf_teacher if source.format == "tf" else _hf_teacher)(source, path, config_path, part)


# ---------------------------------------------------------------------------------------------- name tables
ARCHS = ("same", "distilbert")
TOKEN_TYPE_MODES = ("fold", "drop")

# DistilBERT names, as data. (teacher name after the base prefix, DistilBERT name after "<prefix>")
DISTILBERT_EMBEDDINGS: dict[str, str] = {
    "embeddings.word_embeddings.weight": "embeddings.word_embeddings.weight",
    "embeddings.position_embeddings.weight": "embeddings.position_embeddings.weight",
    "embeddings.LayerNorm.weight": "embeddings.LayerNorm.weight",
    "embeddings.LayerNorm.bias": "embeddings.LayerNorm.bias",
}
# (part of a teacher layer, part of a DistilBERT TransformerBlock); each has .weight and .bias
_DISTILBERT_LAYER_PARTS = (
    ("attention.self.query", "attention.q_lin"), ("attention.self.key", "attention.k_lin"),
    ("attention.self.value", "attention.v_lin"), ("attention.output.dense", "attention.out_lin"),
    ("attention.output.LayerNorm", "sa_layer_norm"), ("intermediate.dense", "ffn.lin1"),
    ("output.dense", "ffn.lin2"), ("output.LayerNorm", "output_layer_norm"),
)
DISTILBERT_LAYER: dict[str, str] = {f"{t}.{p}": f"{d}.{p}" for t, d in _DISTILBERT_LAYER_PARTS
                                    for p in ("weight", "bias")}
TOKEN_TYPE_EMBEDDINGS = "embeddings.token_type_embeddings.weight"
POSITION_EMBEDDINGS = "embeddings.position_embeddings.weight"

_BERT_MLM = {"vocab_transform.weight": ("cls.predictions.transform.dense.weight",),
             "vocab_transform.bias": ("cls.predictions.transform.dense.bias",),
             "vocab_layer_norm.weight": ("cls.predictions.transform.LayerNorm.weight",),
             "vocab_layer_norm.bias": ("cls.predictions.transform.LayerNorm.bias",),
             "vocab_projector.bias": ("cls.predictions.bias", "cls.predictions.decoder.bias"),
             "vocab_projector.weight": ("cls.predictions.decoder.weight",)}
_ELECTRA_MLM = {"vocab_transform.weight": ("generator_predictions.dense.weight",),
                "vocab_transform.bias": ("generator_predictions.dense.bias",),
                "vocab_layer_norm.weight": ("generator_predictions.LayerNorm.weight",),
                "vocab_layer_norm.bias": ("generator_predictions.LayerNorm.bias",),
                "vocab_projector.bias": ("generator_lm_head.bias",),
                "vocab_projector.weight": ("generator_lm_head.weight",)}


@dataclass(frozen=True)
class HeadRules:
    """How a teacher family's MLM head becomes DistilBERT's, and what DistilBERT cannot express."""

    mlm: Mapping[str, tuple[str, ...]]          # DistilBERT head name -> teacher candidates, first present wins
    head_activation: Callable[[Mapping], str]   # the activation the teacher's MLM head applies
    # (config key, value the key must have for DistilBERT to compute the same, default, why)
    requirements: tuple[tuple[str, object, object, str], ...] = ()


_ABSOLUTE = ("position_embedding_type", "absolute", "absolute", "DistilBERT has absolute positions only")
HEADS: dict[str, HeadRules] = {
    "bert": HeadRules(_BERT_MLM, lambda c: c.get("hidden_act", "gelu"), (_ABSOLUTE,)),
    "big_bird": HeadRules(_BERT_MLM, lambda c: c.get("hidden_act", "gelu_new"),
                          (("rescale_embeddings", False, False, "DistilBERT does not rescale embeddings"),)),
    # transformers' ElectraGeneratorPredictions applies exact gelu whatever hidden_act says
    "electra": HeadRules(_ELECTRA_MLM, lambda c: "gelu", (_ABSOLUTE,)),
}

# tied aliases: (alias after the head, tensor it repeats (``{base}`` expands), config flag that ties them or None)
TIED_ALIASES: tuple[tuple[str, str, str | None], ...] = (
    ("cls.predictions.decoder.weight", "{base}embeddings.word_embeddings.weight", "tie_word_embeddings"),
    ("cls.predictions.decoder.bias", "cls.predictions.bias", None),
    ("generator_lm_head.weight", "{base}embeddings.word_embeddings.weight", "tie_word_embeddings"),
)


def _tied_aliases(teacher: Teacher) -> dict[str, str]:
    """Teacher names that repeat another stored tensor (not written; transformers re-ties them)."""
    out = {}
    for alias, target, flag in TIED_ALIASES:
        target = target.replace("{base}", teacher.base)
        if alias in teacher.tensors and target in teacher.tensors and (flag is None or teacher.config.get(flag, True)):
            out[alias] = target
    return out


# ---------------------------------------------------------------------------------------------- the plan
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


def _renamed(view: PlannedTensor, name: str) -> PlannedTensor:
    return dataclasses.replace(view, name=name)


def _folded(position: PlannedTensor, token_type: PlannedTensor, name: str) -> PlannedTensor:
    """position + token_type[0], composed over the source (both must be plain reads)."""
    if position.steps or token_type.steps or len(position.inputs) != 1 or len(token_type.inputs) != 1:
        raise PlanError("cannot fold token types: the teacher's embeddings are not stored as plain tensors",
                        hint="pass --drop-token-types")
    return PlannedTensor(name, (position.inputs[0], token_type.inputs[0]), (Step("add_row", (0,)),),
                         position.dtype, position.shape)


def _same_names(teacher: Teacher, layers: Sequence[int], token_types: str) -> tuple[list[Copied], dict[str, str]]:
    new_index = {t: s for s, t in enumerate(layers)}
    aliases = _tied_aliases(teacher)
    copied, dropped = [], {}
    for name, view in teacher.tensors.items():
        m = LAYER_NAME.match(name)
        if name in aliases:
            dropped[name] = f"tied to {aliases[name]}; transformers re-ties it on load"
        elif m is None:
            copied.append(Copied(name, (name,), _renamed(view, name)))
        elif int(m.group("layer")) in new_index:
            student = f"{m.group('base')}encoder.layer.{new_index[int(m.group('layer'))]}.{m.group('rest')}"
            copied.append(Copied(student, (name,), _renamed(view, student)))
        else:
            dropped[name] = f"teacher layer {m.group('layer')} is not kept"
    return copied, dropped


def _check_distilbert(teacher: Teacher, rules: HeadRules) -> list[str]:
    """Refuse what DistilBERT cannot compute; return warnings for what it computes slightly differently."""
    config, warnings = teacher.config, []
    for key, wanted, default, why in rules.requirements:
        if config.get(key, default) != wanted:
            raise UsageError(f"--arch distilbert: the teacher has {key}={config.get(key)!r}; {why}",
                             hint="use --arch same")
    base = teacher.base
    if f"{base}embeddings_project.weight" in teacher.tensors or \
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


def _distilbert_names(teacher: Teacher, layers: Sequence[int], token_types: str
                      ) -> tuple[list[Copied], dict[str, str], dict]:
    rules = HEADS.get(teacher.model_type)
    if rules is None:
        raise UsageError(f"--arch distilbert does not know {teacher.model_type!r} teachers",
                         hint="one of " + ", ".join(HEADS) + "; or use --arch same")
    warnings = _check_distilbert(teacher, rules)
    base, views = teacher.base, teacher.tensors
    aliases = _tied_aliases(teacher)
    head: dict[str, str] = {}  # teacher name -> DistilBERT head name: the first candidate present wins
    for target, candidates in rules.mlm.items():
        present = next((c for c in candidates if c in views and c not in aliases), None)
        if present:
            head[present] = target
    has_mlm = any(target != "vocab_projector.weight" for target in head.values())
    prefix = "distilbert." if has_mlm else ""
    new_index = {t: s for s, t in enumerate(layers)}
    copied, dropped = [], {}
    tied = bool(teacher.config.get("tie_word_embeddings", True)) or "vocab_projector.weight" not in head.values()
    for name, view in views.items():
        m = LAYER_NAME.match(name)
        rest = name[len(base):] if name.startswith(base) else None
        if name in aliases:
            dropped[name] = f"tied to {aliases[name]}; DistilBERT re-ties vocab_projector.weight on load"
        elif m is not None and m.group("base") == base:
            layer = int(m.group("layer"))
            if layer not in new_index:
                dropped[name] = f"teacher layer {layer} is not kept"
            elif m.group("rest") not in DISTILBERT_LAYER:
                raise PlanError(f"--arch distilbert: no DistilBERT place for teacher tensor {name!r}",
                                hint="use --arch same")
            else:
                student = f"{prefix}transformer.layer.{new_index[layer]}.{DISTILBERT_LAYER[m.group('rest')]}"
                copied.append(Copied(student, (name,), _renamed(view, student)))
        elif rest == POSITION_EMBEDDINGS and token_types == "fold" and base + TOKEN_TYPE_EMBEDDINGS in views:
            student = prefix + DISTILBERT_EMBEDDINGS[rest]
            tok = base + TOKEN_TYPE_EMBEDDINGS
            copied.append(Copied(student, (name, f"{tok}[0]"), _folded(view, views[tok], student)))
        elif rest in DISTILBERT_EMBEDDINGS:
            student = prefix + DISTILBERT_EMBEDDINGS[rest]
            copied.append(Copied(student, (name,), _renamed(view, student)))
        elif rest == TOKEN_TYPE_EMBEDDINGS:
            dropped[name] = ("DistilBERT has no token types: row 0 (segment A) folded into the position embeddings"
                             if token_types == "fold" else
                             "DistilBERT has no token types: dropped (--drop-token-types)")
        elif name in head and has_mlm and not (head[name] == "vocab_projector.weight" and tied):
            copied.append(Copied(head[name], (name,), _renamed(view, head[name])))
        elif name in head and has_mlm:
            dropped[name] = "tied to the word embeddings (tie_word_embeddings)"
        elif rest is not None and rest.startswith("pooler."):
            dropped[name] = "DistilBERT has no pooler"
        else:
            dropped[name] = "not part of " + ("DistilBertForMaskedLM" if has_mlm else "DistilBertModel")
    info = {"model_class": "DistilBertForMaskedLM" if has_mlm else "DistilBertModel", "tie_word_embeddings": tied,
            "warnings": warnings, "head_activation": rules.head_activation(teacher.config)}
    return copied, dropped, info


def _natural_key(name: str) -> list:
    return [int(p) if p.isdigit() else p for p in re.split(r"(\d+)", name)]


def plan_student(teacher: Teacher, *, layers: Sequence[int], arch: str = "same", token_types: str = "fold"
                 ) -> tuple[Plan, list[Copied], dict[str, str]]:
    """The student's plan over the teacher's source tensors, the copy list, and the dropped teacher tensors.

    Args:
        teacher: from :func:`open_teacher`.
        layers: the 0-based teacher layer each student layer starts from, in student order.
        arch: ``same`` or ``distilbert``.
        token_types: ``fold`` or ``drop`` (DistilBERT only; ``same`` keeps them).

    Example:
        >>> from ckptkit.converters.formats import open_checkpoint
        >>> with open_checkpoint("examples/tiny-bert") as ckpt:
        ...     plan, copied, dropped = plan_student(open_teacher(ckpt, "examples/tiny-bert"), layers=[1])
        >>> [c.teacher[0] for c in copied if c.name.endswith("layer.0.output.dense.weight")]
        ['bert.encoder.layer.1.output.dense.weight']
    """
    if arch not in ARCHS:
        raise UsageError(f"unknown student architecture {arch!r}", hint="one of " + ", ".join(ARCHS))
    if token_types not in TOKEN_TYPE_MODES:
        raise UsageError(f"unknown token-type handling {token_types!r}", hint="one of " + ", ".join(TOKEN_TYPE_MODES))
    layers = parse_layers(list(layers), teacher.num_layers)
    info: dict = {"warnings": []}
    if arch == "same":
        copied, dropped = _same_names(teacher, layers, token_types)
        info["model_class"] = teacher.model_class
    else:
        copied, dropped, info = _distilbert_names(teacher, layers, token_types)
    copied.sort(key=lambda c: _natural_key(c.name))
    source_dropped = list(teacher.dropped)
    used = {i for c in copied for i in c.planned.inputs}
    for name, reason in dropped.items():
        source_dropped.extend(Dropped(src, reason if src == name else f"{reason} ({name})")
                              for src in teacher.tensors[name].inputs if src not in used)
    plan = Plan([c.planned for c in copied], source_dropped,
                {"family": teacher.family, "direction": "student", **info})
    return plan, copied, dropped


# ---------------------------------------------------------------------------------------------- the config
_DISTILBERT_FROM_TEACHER = (  # (DistilBERT key, teacher key, default)
    ("vocab_size", "vocab_size", None), ("max_position_embeddings", "max_position_embeddings", 512),
    ("n_heads", "num_attention_heads", None), ("dim", "hidden_size", None),
    ("hidden_dim", "intermediate_size", None), ("dropout", "hidden_dropout_prob", 0.1),
    ("attention_dropout", "attention_probs_dropout_prob", 0.1), ("activation", "hidden_act", "gelu"),
    ("initializer_range", "initializer_range", 0.02), ("pad_token_id", "pad_token_id", 0),
)
_KEPT_IF_PRESENT = ("bos_token_id", "eos_token_id", "sep_token_id", "cls_token_id", "dtype", "torch_dtype")


def student_config(teacher_config: Mapping, *, arch: str, num_layers: int, model_class: str,
                   tie_word_embeddings: bool = True) -> dict:
    """The student's config.json: the teacher's with ``num_layers`` layers, or its DistilBERT translation.

    Example:
        >>> c = student_config({"model_type": "bert", "hidden_size": 32, "num_attention_heads": 4,
        ...     "intermediate_size": 64, "vocab_size": 99, "hidden_act": "gelu_new", "pad_token_id": 1,
        ...     "num_hidden_layers": 12}, arch="distilbert", num_layers=3, model_class="DistilBertForMaskedLM")
        >>> c["n_layers"], c["activation"], c["pad_token_id"], c["dim"]
        (3, 'gelu_new', 1, 32)
    """
    if arch == "same":
        return {**teacher_config, "architectures": [model_class], "num_hidden_layers": num_layers}
    config = {"architectures": [model_class], "model_type": "distilbert", "n_layers": num_layers,
              "sinusoidal_pos_embds": False, "qa_dropout": 0.1, "seq_classif_dropout": 0.2,
              "tie_word_embeddings": bool(tie_word_embeddings)}
    for key, teacher_key, default in _DISTILBERT_FROM_TEACHER:
        value = teacher_config.get(teacher_key, default)
        if value is None:
            raise ConfigError(f"the teacher's config has no {teacher_key}", hint="pass a complete config.json")
        config[key] = value
    config.update({k: teacher_config[k] for k in _KEPT_IF_PRESENT if teacher_config.get(k) is not None})
    if not isinstance(config["activation"], str):
        raise ConfigError(f"the teacher's hidden_act {config['activation']!r} is not a named activation")
    return config


# ---------------------------------------------------------------------------------------------- the report
@dataclass
class StudentReport:
    """What ``build_student`` did; ``to_json()`` is written as ``student.json`` next to the weights."""

    teacher: str
    teacher_format: str
    family: str
    teacher_model_class: str
    teacher_layers: int
    layers: list[int]
    arch: str
    model_class: str
    token_types: str
    destination: str | None
    copied: list[Copied]
    dropped: dict[str, str]
    source_dropped: dict[str, int]
    bytes_before: int
    bytes_after: int
    params_before: int
    params_after: int
    config: dict
    tokenizer_files: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    seconds: float = 0.0
    dry_run: bool = False

    def to_json(self) -> dict:
        return {
            "teacher": self.teacher, "teacher_format": self.teacher_format, "family": self.family,
            "teacher_model_class": self.teacher_model_class, "teacher_num_layers": self.teacher_layers,
            "layers": list(self.layers), "layers_1based": [i + 1 for i in self.layers],
            "arch": self.arch, "model_class": self.model_class, "num_layers": len(self.layers),
            "token_types": self.token_types,
            "activation": self.config.get("activation", self.config.get("hidden_act")),
            "pad_token_id": self.config.get("pad_token_id"), "vocab_size": self.config.get("vocab_size"),
            "size": {"teacher_bytes": self.bytes_before, "student_bytes": self.bytes_after,
                     "teacher_parameters": self.params_before, "student_parameters": self.params_after,
                     "ratio": round(self.params_after / self.params_before, 4) if self.params_before else None},
            "tensors": [c.to_json() for c in self.copied],
            "dropped": [{"name": n, "reason": r} for n, r in self.dropped.items()],
            "source_dropped": dict(self.source_dropped),
            "tokenizer_files": list(self.tokenizer_files), "warnings": list(self.warnings),
            "destination": self.destination, "files": list(self.files), "seconds": round(self.seconds, 3),
            "dry_run": self.dry_run,
        }

    def format_text(self, *, tensors: bool = True) -> str:
        """A readable report: layer map (0- and 1-based), sizes, every tensor and its origin, drops."""
        mib = 2 ** 20
        token_types = {"kept": "kept (same architecture)",
                       "folded": "folded: teacher segment-0 row added to the position embeddings",
                       "dropped": "dropped (--drop-token-types)"}[self.token_types]
        lines = [f"student of {self.teacher} ({self.family}, {self.teacher_model_class}, "
                 f"{self.teacher_layers} layers, {self.teacher_format})",
                 f"  architecture: {self.model_class} (--arch {self.arch}), {len(self.layers)} layers",
                 "  layers (student <- teacher, 1-based; 0-based in brackets):"]
        lines += [f"    {s + 1} <- {t + 1} [{t}]" for s, t in enumerate(self.layers)]
        lines += [f"  token types: {token_types}",
                  f"  activation: {self.config.get('activation', self.config.get('hidden_act'))}, "
                  f"pad_token_id: {self.config.get('pad_token_id')}, vocab: {self.config.get('vocab_size')}",
                  f"  parameters: {self.params_before:,} -> {self.params_after:,} "
                  f"({self.params_after / max(self.params_before, 1):.1%})",
                  f"  size: {self.bytes_before / mib:.1f} MiB -> {self.bytes_after / mib:.1f} MiB"]
        if tensors:
            width = max((len(c.name) for c in self.copied), default=10)
            lines.append(f"{len(self.copied)} tensors written:")
            lines += [f"  {c.name:<{width}}  <- {' + '.join(c.teacher)}"
                      + (f"  [{' -> '.join(s.describe() for s in c.planned.steps)}]" if c.planned.steps else "")
                      for c in self.copied]
        by_reason: dict[str, list[str]] = {}
        for name, reason in self.dropped.items():
            key = "teacher layer not kept" if reason.startswith("teacher layer") else reason
            by_reason.setdefault(key, []).append(name)
        lines.append(f"{len(self.dropped)} teacher tensors not written:")
        for reason, names in by_reason.items():
            shown = ", ".join(names[:2]) + (f", ... (+{len(names) - 2})" if len(names) > 2 else "")
            lines.append(f"  {len(names):>4} {reason}: {shown}")
        lines += [f"  {n:>4} source tensors: {r}" for r, n in self.source_dropped.items()]
        if self.tokenizer_files:
            lines.append("tokenizer: " + ", ".join(self.tokenizer_files))
        lines += [f"warning: {w}" for w in self.warnings]
        if self.destination and not self.dry_run:
            lines.append(f"wrote {self.destination} in {self.seconds:.2f} s")
        return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- streaming
def stream_plan(plan: Plan, source: Mapping, sink, *, desc: str = "student") -> None:
    """:func:`ckptkit.converters.plan.execute` (which releases each tensor's mapped pages once written)."""
    from ckptkit.converters.plan import execute

    execute(plan, source, sink, desc=desc)


# ---------------------------------------------------------------------------------------------- files
# top-level files of a hub teacher that are not copied into the student (everything else is tokenizer & co.)
_NOT_COPIED = re.compile(r"^(config\.json|ckptkit\.json|student\.json|README\.md|training_args\.bin|"
                         r"trainer_state\.json|optimizer\.pt|scheduler\.pt|rng_state.*\.pth|"
                         r".*\.(safetensors|bin|h5|msgpack|ckpt.*|index|index\.json)|\..*)$")


def _copy_tokenizer(teacher: Teacher, folder: str, config: dict) -> list[str]:
    """Copy a hub teacher's tokenizer files, or build them from a TF teacher's vocab; returns the names."""
    if teacher.folder:
        names = sorted(n for n in os.listdir(teacher.folder)
                       if not _NOT_COPIED.match(n) and os.path.isfile(os.path.join(teacher.folder, n)))
        for n in names:
            shutil.copyfile(os.path.join(teacher.folder, n), os.path.join(folder, n))
        return names
    if not teacher.vocab and not teacher.spm:
        return []
    from ckptkit.tokenizers.export import choose_tokenizer, write_tokenizer_files

    kind, vocab, spm, _ = choose_tokenizer(teacher.vocab, teacher.spm, prefer_spm=teacher.family == "bigbird")
    info = write_tokenizer_files(folder, kind=kind, vocab_file=vocab, spm_file=spm,
                                 model_max_length=int(teacher.config.get("max_position_embeddings", 512)))
    teacher.config["pad_token_id"] = info.pad_token_id  # the tokenizer knows the teacher's pad id (KoBERT: 1)
    return sorted(n for n in os.listdir(folder) if n.startswith(("tokenizer", "special_tokens", "vocab")))


def _write_json(path: str, document: Mapping) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(json.dumps(document, indent=2, ensure_ascii=False, default=str) + "\n")


def _record(report: StudentReport, teacher: Teacher, command: str) -> dict:
    return {
        "kind": "student", "command": command,
        "model": {"family": "distilbert" if report.arch == "distilbert" else teacher.family,
                  "model_class": report.model_class,
                  "pipeline_tag": "fill-mask" if report.model_class.endswith(("MaskedLM", "PreTraining")) else None,
                  "num_parameters": report.params_after},
        "source": {"path": teacher.path, "format": teacher.format, "family": teacher.family,
                   "global_step": teacher.global_step, "base_model": None},
        "student": {"teacher": teacher.path, "layers": list(report.layers),
                    "arch": {"kind": report.arch, "model_class": report.model_class,
                             "num_layers": len(report.layers), "token_types": report.token_types}},
    }


def _equivalent_command(report: StudentReport) -> str:
    """The CLI line that makes the same student (recorded when the library is called directly)."""
    import shlex

    args = ["ckptkit", "distill", "init", report.teacher, report.destination or "OUT",
            "--layers", ",".join(str(i) for i in report.layers), "--arch", report.arch]
    return shlex.join(args + (["--drop-token-types"] if report.token_types == "dropped" else []))


# ---------------------------------------------------------------------------------------------- the command
def build_student(teacher_path: str, destination: str | None, *, layers: Sequence[int] | str | None = None,
                  num_layers: int | None = None, strategy: str = "uniform", arch: str = "same",
                  drop_token_types: bool = False, config: str | None = None, overwrite: bool = False,
                  dry_run: bool = False, command: str | None = None, card: Mapping | None = None,
                  part: str | None = None) -> StudentReport:
    """Make a student hub folder at ``destination`` from the layers of ``teacher_path``, atomically.

    Args:
        teacher_path: a hub folder, a safetensors/``.bin`` file (with ``config.json`` beside it or
            ``config``), or a TF checkpoint (converted on the fly).
        destination: the student folder (must be new or empty unless ``overwrite``); ignored with ``dry_run``.
        layers: 0-based teacher layers, one per student layer (``"0,4,8"`` or ``[0, 4, 8]``).
        num_layers: instead of ``layers``: how many, chosen by ``strategy`` (see :data:`STRATEGIES`).
        arch: ``same`` (the teacher's class) or ``distilbert`` (DistilBertForMaskedLM).
        drop_token_types: DistilBERT: drop the token-type embeddings instead of folding row 0.
        config: the teacher's config (HF config.json, or bert_config.json for TF) when not beside it.
        overwrite: replace an existing non-empty ``destination``.
        dry_run: plan and report only; read no tensor and write nothing.
        command: the command line recorded in ckptkit.json.
        card: model-card options (language, license, tags).
        part: a TF ELECTRA pretraining checkpoint holds two models: ``discriminator`` or ``generator``.

    Returns:
        A :class:`StudentReport` (also written as ``student.json``).

    Example:
        >>> r = build_student("examples/tiny-bert", None, num_layers=1, strategy="last", dry_run=True)
        >>> r.layers, r.model_class, r.token_types
        ([1], 'BertForPreTraining', 'kept')
    """
    from ckptkit.converters.formats import open_checkpoint

    if (layers is None) == (num_layers is None):
        raise UsageError("give either --layers or --num-layers", hint="e.g. --layers 0,4,8 or --num-layers 3")
    if arch not in ARCHS:
        raise UsageError(f"unknown student architecture {arch!r}", hint="one of " + ", ".join(ARCHS))
    if drop_token_types and arch != "distilbert":
        raise UsageError("--drop-token-types needs --arch distilbert",
                         hint="--arch same keeps the teacher's token-type embeddings")
    if destination is None and not dry_run:
        raise UsageError("no output folder given")
    started = time.perf_counter()
    with open_checkpoint(teacher_path) as source:
        teacher = open_teacher(source, teacher_path, config_path=config, part=part)
        n = teacher.num_layers
        chosen = parse_layers(layers, n) if layers is not None else select_layers(n, num_layers=num_layers,
                                                                                  strategy=strategy)
        mode = "drop" if drop_token_types else "fold"
        plan, copied, dropped = plan_student(teacher, layers=chosen, arch=arch, token_types=mode)
        plan.check(source)
        has_token_types = any(c.name.endswith(TOKEN_TYPE_EMBEDDINGS) for c in copied)
        token_types = "kept" if has_token_types else ("dropped" if drop_token_types else "folded")
        source_dropped: dict[str, int] = {}
        for d in teacher.dropped:
            source_dropped[d.reason] = source_dropped.get(d.reason, 0) + 1
        report = StudentReport(
            teacher=teacher.path, teacher_format=teacher.format, family=teacher.family,
            teacher_model_class=teacher.model_class, teacher_layers=n, layers=chosen, arch=arch,
            model_class=plan.info["model_class"], token_types=token_types,
            destination=os.path.abspath(destination) if destination else None, copied=copied, dropped=dropped,
            source_dropped=source_dropped, bytes_before=teacher.nbytes, bytes_after=plan.total_bytes,
            params_before=teacher.num_parameters,
            params_after=sum(int(np.prod(t.shape, dtype=np.int64)) for t in plan.outputs),
            config={}, warnings=list(plan.info.get("warnings", [])), dry_run=dry_run)
        if arch == "distilbert":
            act = teacher.config.get("hidden_act")
            if plan.info.get("head_activation") not in (None, act) and report.model_class.endswith("MaskedLM"):
                report.warnings.append(f"the teacher's MLM head applies {plan.info['head_activation']} but its "
                                       f"layers {act}; DistilBERT uses {act} for both, so MLM logits differ")
        if dry_run:
            report.config = student_config(teacher.config, arch=arch, num_layers=len(chosen),
                                           model_class=report.model_class,
                                           tie_word_embeddings=plan.info.get("tie_word_embeddings", True))
            return report
        from ckptkit.converters.sinks import SafetensorsSink
        from ckptkit.converters.staging import staged_folder

        with staged_folder(destination, overwrite=overwrite, sources=[teacher_path, *source.files, config]) as folder:
            stream_plan(plan, source, SafetensorsSink(folder), desc="student")
            report.tokenizer_files = _copy_tokenizer(teacher, folder, teacher.config)
            report.config = student_config(teacher.config, arch=arch, num_layers=len(chosen),
                                           model_class=report.model_class,
                                           tie_word_embeddings=plan.info.get("tie_word_embeddings", True))
            _write_json(os.path.join(folder, "config.json"), report.config)
            report.files = sorted([*os.listdir(folder), STUDENT_FILE, "ckptkit.json", "README.md"])
            report.seconds = time.perf_counter() - started
            _write_json(os.path.join(folder, STUDENT_FILE), report.to_json())
            from ckptkit.hub.record import write_record

            write_record(folder, _record(report, teacher, command or _equivalent_command(report)))
    from ckptkit.hub.model_card import write_model_card

    # after the rename, so the card names the folder, not its staging name (README.md is written atomically)
    write_model_card(report.destination, **{k: v for k, v in (card or {}).items() if v})
    report.seconds = time.perf_counter() - started
    return report
