"""What ``distill train`` is asked to do: :class:`TrainOptions`, parsed and checked once at the edge.

Example:
    >>> opts = TrainOptions(student="out/student", train_files=["corpus.txt"], output_dir="out/distil")
    >>> opts.weights.ce, opts.train_files
    (5.0, ('corpus.txt',))
    >>> import dataclasses
    >>> dataclasses.replace(opts, objective="hidden", weights=None).weights.pooled_cos
    1.0
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from ckptkit.distill.losses import LossWeights
from ckptkit.errors import UsageError

__all__ = ["TrainOptions", "OBJECTIVE_WEIGHTS", "TRAINING_DEFAULTS", "REPORTERS", "resolve_weights",
           "check_reporters", "parse_cos_pairs", "default_mse_map"]

# objective -> default loss weights (``--objective mlm`` = DistilBERT's published command)
OBJECTIVE_WEIGHTS: dict[str, LossWeights] = {
    "mlm": LossWeights(),
    "hidden": LossWeights(ce=0.0, mlm=0.0, cos=1.0, mse=1.0, attn=0.0, pooled_cos=1.0),
}

# options ckptkit sets unless the caller gives its own value
TRAINING_DEFAULTS: dict[str, Any] = {
    "report_to": "none",
    "logging_steps": 10,
    "save_steps": 500,
    "save_total_limit": 3,
    "dataloader_num_workers": 0,
}

# --report-to integration -> (modules that provide it, the pip package to install)
REPORTERS: dict[str, tuple[tuple[str, ...], str]] = {
    "tensorboard": (("tensorboard", "tensorboardX"), "ckptkit[tensorboard]"),
    "wandb": (("wandb",), "wandb"),
    "mlflow": (("mlflow",), "mlflow"),
}
CE_ON = ("masked", "all")


def check_reporters(report_to: str | Sequence[str] | None) -> None:
    """A one-line error for a ``--report-to`` integration whose package is not installed."""
    import importlib.util

    names = report_to.split(",") if isinstance(report_to, str) else list(report_to or [])
    for name in (n.strip() for n in names):
        modules, package = REPORTERS.get(name, ((), ""))
        if modules and not any(importlib.util.find_spec(m) for m in modules):
            raise UsageError(f"--report-to {name} needs the {modules[0]} package, which is not installed",
                             hint=f"pip install '{package}', or --report-to none")


def parse_cos_pairs(text: str | Sequence[Sequence[int]]) -> tuple[tuple[int, int], ...]:
    """``--cos-layer-map "2:11,1:8"``: (student layer, teacher layer) pairs of the cosine terms, 0-based.

    Example:
        >>> parse_cos_pairs("2:11, 1:8")
        ((2, 11), (1, 8))
        >>> parse_cos_pairs("2")
        Traceback (most recent call last):
        ...
        ckptkit.errors.UsageError: --cos-layer-map 2: not a list of STUDENT:TEACHER layer pairs (e.g. --cos-layer-map 2:11 (0-based))
    """
    items = [p.strip().split(":") for p in text.split(",")] if isinstance(text, str) else [list(p) for p in text]
    try:
        pairs = tuple((int(s), int(t)) for s, t in items)
    except ValueError:
        raise UsageError(f"--cos-layer-map {text}: not a list of STUDENT:TEACHER layer pairs",
                         hint="e.g. --cos-layer-map 2:11 (0-based)") from None
    if not pairs:
        raise UsageError("--cos-layer-map is empty", hint="e.g. --cos-layer-map 2:11 (0-based)")
    return pairs


def default_mse_map(init_layers: Sequence[int], teacher_layers: int) -> tuple[int, ...]:
    """The default ``--layer-map`` of the MSE and attention terms: the layers the student started from,
    but the student's last layer mapped to the teacher's last, the layer the cosine terms use too.

    Two targets for one student layer conflict (an MSE toward teacher layer 8 and a cosine toward
    layer 11 pull the same output apart; the MSE then rises during training).

    Example:
        >>> default_mse_map([0, 4, 8], 12)
        (0, 4, 11)
    """
    return (*init_layers[:-1], teacher_layers - 1) if init_layers else ()


def resolve_weights(objective: str, overrides: dict[str, float | None] | None = None) -> LossWeights:
    """The objective's default weights with the given (non-None) ones replaced.

    Example:
        >>> resolve_weights("mlm", {"mse": 0.5, "ce": None}).mse
        0.5
        >>> resolve_weights("hidden").ce
        0.0
    """
    if objective not in OBJECTIVE_WEIGHTS:
        raise UsageError(f"unknown objective {objective!r}; choose one of {sorted(OBJECTIVE_WEIGHTS)}")
    chosen = {k: float(v) for k, v in (overrides or {}).items() if v is not None}
    weights = dataclasses.replace(OBJECTIVE_WEIGHTS[objective], **chosen)
    if objective == "hidden" and (weights.ce > 0 or weights.mlm > 0):
        raise UsageError("--objective hidden has no MLM head to train: --alpha-ce and --alpha-mlm must be 0")
    if not any(v > 0 for v in weights.as_dict().values()):
        raise UsageError("every loss weight is 0: nothing to train")
    return weights


def _check_baseline(opts: "TrainOptions") -> None:
    from ckptkit.distill.baseline import BASELINES

    if opts.baseline not in BASELINES:
        raise UsageError(f"unknown --baseline {opts.baseline!r}", hint="one of " + ", ".join(BASELINES))
    if opts.objective != "mlm":
        raise UsageError("--baseline mlm compares MLM students: it needs --objective mlm",
                         hint="give the student an MLM head with `ckptkit distill init --mlm-head`")
    if not opts.validation_files:
        raise UsageError("--baseline needs --validation-file: both students are scored on held-out text")


@dataclass(frozen=True)
class TrainOptions:
    """Every option of a distillation run; checked when made (change one with ``dataclasses.replace``).

    Args:
        student: hub folder of the student (from ``ckptkit distill init``: has ``student.json``).
        train_files: text files (one document/sentence per line) or one ``save_to_disk`` folder.
        output_dir: where checkpoints, logs and the final hub folder go.
        teacher: teacher hub folder (default: ``student.json``'s ``teacher``).
        objective: ``"mlm"`` (soft targets + MLM + hidden losses) or ``"hidden"`` (embedding models).
        weights: loss weights; default :data:`OBJECTIVE_WEIGHTS` of the objective.
        layer_map: ``"0,4,8"``: teacher layer of each student layer for the MSE and attention terms
            (default: :func:`default_mse_map` of ``student.json``'s layers, which agrees with the cosines).
        cos_layer_map: ``"2:11"``: (student, teacher) layer pairs of the cosine terms (cos,
            pooled_cos); default: the last layer of each, as DistilBERT.
        whole_word_mask: mask every piece of a chosen word together (WordPiece ``##``, SentencePiece ``▁``);
            a teacher cache must have been built with it (``distill cache --whole-word-mask``), else it is refused.
        cache_teacher: compute teacher outputs once (fixed masking) into ``output_dir/teacher-cache``, reuse them.
        teacher_cache: a teacher cache folder (``ckptkit distill cache``) to read, built or finished first if needed.
        streaming: stream the training files (text/jsonl/parquet; needs ``max_steps``); implied by a cache.
        resume: continue from the latest ``checkpoint-*`` in ``output_dir``.
        baseline: ``"mlm"``: also train the same student without the teacher (same data, steps, seed)
            into ``output_dir/baseline-mlm`` and report both curves and held-out scores.
        training_args: ``transformers.TrainingArguments`` fields (``max_steps``, ``learning_rate``...).
        quiet: no progress bars, no library logs, no step lines.
        print_lines: print a line per log step (when not quiet and no progress bar shows).
        push_to_hub: a Hub repo id to upload the distilled student to.
        command: the command line recorded in ``ckptkit.json``.
    """

    student: str | os.PathLike
    train_files: Sequence[str | os.PathLike]
    output_dir: str | os.PathLike
    teacher: str | os.PathLike | None = None
    validation_files: Sequence[str | os.PathLike] = ()
    objective: str = "mlm"
    weights: LossWeights | None = None
    temperature: float = 2.0
    ce_on: str = "all"
    layer_map: str | Sequence[int] | None = None
    cos_layer_map: str | Sequence[Sequence[int]] | None = None
    max_seq_length: int = 128
    mlm_probability: float = 0.15
    mlm_smoothing: float = 0.0
    whole_word_mask: bool = False
    text_column: str = "text"
    preprocessing_num_workers: int | None = None
    cache_teacher: bool = False
    cache_top_k: int = 64
    teacher_cache: str | os.PathLike | None = None
    streaming: bool = False
    resume: bool = False
    baseline: str | None = None
    training_args: Mapping[str, Any] = field(default_factory=dict)
    quiet: bool = False
    print_lines: bool = True
    push_to_hub: str | None = None
    command: str | None = None

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # frozen: normalise once, here
        set_(self, "train_files", tuple(self.train_files))
        set_(self, "validation_files", tuple(self.validation_files or ()))
        set_(self, "training_args", dict(self.training_args or {}))
        set_(self, "weights", self.weights or resolve_weights(self.objective))
        if self.layer_map:
            from ckptkit.distill.init.layers import parse_layer_list

            set_(self, "layer_map", parse_layer_list(self.layer_map, flag="--layer-map"))
        if self.cos_layer_map:
            set_(self, "cos_layer_map", parse_cos_pairs(self.cos_layer_map))
        if self.baseline is not None:
            _check_baseline(self)
        if self.ce_on not in CE_ON:
            raise UsageError(f"--ce-on must be 'masked' or 'all', got {self.ce_on!r}")
        if (self.cache_teacher or self.teacher_cache) and self.weights.attn > 0:
            raise UsageError("--cache-teacher does not store attentions: use --alpha-attn 0 or drop --cache-teacher")
