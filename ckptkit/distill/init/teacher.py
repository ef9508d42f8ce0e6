"""The teacher: an open checkpoint seen through its Hugging Face names, with its config and family.

A hub teacher is read as it is (identity steps); a TF teacher through its TF -> HF conversion
plan, so only the tensors the student keeps are ever read. The family's :class:`StudentRules`
(``Family.student``) say which tensors are per layer.

Example:
    >>> from ckptkit.converters.formats import open_checkpoint
    >>> with open_checkpoint("examples/tiny-bert") as ckpt:
    ...     t = open_teacher(ckpt, "examples/tiny-bert")
    >>> t.family, t.num_layers, t.base, t.config["hidden_act"]
    ('bert', 2, 'bert.', 'gelu_new')
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

from ckptkit.converters.families.student import HF_ENCODER_LAYER, StudentRules
from ckptkit.converters.plan import Dropped, PlannedTensor
from ckptkit.converters.source import Source
from ckptkit.converters.tensors import Checkpoint
from ckptkit.errors import ConfigError, PlanError, UsageError

__all__ = ["Teacher", "open_teacher", "student_rules", "family_of_model_type", "LAYER_NAME", "WORD_EMBEDDINGS"]

LAYER_NAME = HF_ENCODER_LAYER
WORD_EMBEDDINGS = "embeddings.word_embeddings.weight"
# buffers some .bin files carry; transformers recomputes them
_BUFFERS = re.compile(r"(^|\.)(position_ids|token_type_ids)\Z")


def _families() -> dict:
    from ckptkit.converters.families import FAMILIES, get_family

    return {name: get_family(name) for name in FAMILIES}


def family_of_model_type(model_type: str) -> str:
    """ckptkit's family name of an HF ``model_type`` (``big_bird`` -> ``bigbird``); unknown ones as they are."""
    from ckptkit.converters.families import family_of_model_type as registered

    return registered(model_type) or model_type


def student_rules(family: str) -> StudentRules | None:
    """The :class:`StudentRules` the family declares, or None for a family ckptkit does not know."""
    found = _families().get(family)
    return found.student if found is not None else None


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
    def rules(self) -> StudentRules | None:
        """What the teacher's family declares for students (None: a family ckptkit does not know)."""
        return student_rules(self.family)

    @property
    def layer_pattern(self) -> re.Pattern:
        rules = self.rules
        return rules.layer_pattern if rules is not None else LAYER_NAME

    @property
    def base(self) -> str:
        """The base-model prefix of the HF names (``bert.``, ``electra.``, ``model.`` or empty)."""
        words = self.rules.word_embeddings if self.rules is not None else WORD_EMBEDDINGS
        hit = next((n for n in self.tensors if n.endswith(words)), None)
        if hit is None:
            raise PlanError(f"the teacher has no '{words}'", path=self.path,
                            hint="is this a BERT-family checkpoint?")
        return hit[: -len(words)]

    @property
    def stack_layers(self) -> dict[str, int] | None:
        """An encoder-decoder's layers per stack (``{"encoder": 16, "decoder": 16}``); None for an encoder."""
        if self.rules is None or not self.rules.stacks:
            return None
        from ckptkit.distill.init.stacks import stack_counts

        return stack_counts(self.rules.stacks, self.tensors, path=self.path)

    @property
    def num_layers(self) -> int:
        if self.stack_layers is not None:
            return sum(self.stack_layers.values())
        rules = self.rules
        if rules is not None and rules.layer_sets is not None:  # shared weights: the layers the config runs
            return int(self.config["num_hidden_layers"])
        found = {int(m.group("layer")) for m in map(self.layer_pattern.match, self.tensors) if m}
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


def _hf_teacher(source: Source, part: str | None = None) -> Teacher:
    from ckptkit.converters.config_io import read_json_config
    from ckptkit.converters.config_schema import validate_hf_config

    checkpoint, path = source.checkpoint, source.path
    folder = checkpoint.extras.get("folder") or source.folder
    config = checkpoint.extras.get("config") if not source.config else None
    found = os.path.join(folder, "config.json")
    if not config:
        found = source.config_file(("config.json",))
        if found is None:
            raise ConfigError("no config.json next to the teacher's weights", path=path,
                              hint="pass the teacher's config.json with --config")
        config = read_json_config(found)
    validate_hf_config(config, path=found)  # its family's schema, before anything is written
    tensors, dropped = _identity_view(checkpoint)
    model_type = config.get("model_type")
    if not model_type:
        raise ConfigError("the teacher's config.json has no model_type", path=path,
                          hint="pass a transformers config.json with --config")
    return Teacher(os.path.abspath(path), checkpoint.format, dict(config), family_of_model_type(model_type),
                   tensors, dropped, folder=folder)


def _tf_teacher(source: Source, part: str | None = None) -> Teacher:
    from ckptkit.converters.convert import ConversionOptions, prepare_conversion

    prepared = prepare_conversion(source, ConversionOptions(to="hf", family_options={"part": part}))
    if len(prepared.parts) > 1:
        names = ", ".join(p.subfolder or "?" for p in prepared.parts)
        raise UsageError(f"this TF checkpoint holds several models ({names})", path=source.path,
                         hint="choose the teacher with --part, e.g. --part discriminator")
    prepared = prepared.parts[0] if prepared.parts else prepared
    plan = prepared.plan
    tensors = {t.name: t for t in plan.outputs}
    return Teacher(os.path.abspath(source.path), source.checkpoint.format, dict(prepared.hf_config),
                   prepared.family.name, tensors, list(plan.dropped), vocab=prepared.vocab, spm=prepared.spm,
                   global_step=source.checkpoint.global_step)


def open_teacher(source: Source | Checkpoint, path: str | None = None, *, config_path: str | None = None,
                 part: str | None = None) -> Teacher:
    """The :class:`Teacher` view of a :class:`~ckptkit.converters.source.Source` (TF: through its conversion plan).

    An already opened checkpoint is accepted too (``config_path`` then names its config).

    Example:
        >>> from ckptkit.converters.source import open_source
        >>> with open_source("examples/tiny-bert") as source:
        ...     open_teacher(source).num_parameters > 0
        True
    """
    if not isinstance(source, Source):
        source = Source.of_checkpoint(source, config=config_path)
    if part and source.checkpoint.format != "tf":
        raise UsageError("--part applies to TF checkpoints holding several models (ELECTRA pretraining)",
                         path=path or source.path)
    return (_tf_teacher if source.checkpoint.format == "tf" else _hf_teacher)(source, part)
