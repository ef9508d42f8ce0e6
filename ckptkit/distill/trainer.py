"""``DistillationTrainer``: a ``transformers.Trainer`` whose loss is the weighted distillation terms.

Everything else (optimizer, schedule, accumulation, mixed precision, checkpoints with optimizer,
scheduler and RNG state, DDP under torchrun / accelerate) is the stock Trainer.

Example:
    >>> trainer = DistillationTrainer(model=student, args=args, train_dataset=ds, data_collator=collate,  # doctest: +SKIP
    ...                               teacher=teacher, options=DistillOptions(layer_map=(0, 4, 8)))
    >>> trainer.train()  # doctest: +SKIP
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Callable

import torch
from transformers import Trainer, TrainerCallback

from ckptkit.distill import losses
from ckptkit.distill.teacher_cache import TeacherCache, TeacherOutputs
from ckptkit.distill.topk_kl import bucketed_kl

__all__ = ["DistillOptions", "DistillationTrainer", "EpochCallback", "compute_terms"]


@dataclass(frozen=True)
class DistillOptions:
    """What to distil. ``layer_map[i]`` is the teacher layer student layer ``i`` mirrors (mse, attn terms).

    ``cos_pairs`` are the (student layer, teacher layer) pairs of the cosine terms (cos, pooled_cos);
    empty: the student's last layer with the teacher's last, DistilBERT's choice.
    ``objective="mlm"`` uses the MLM heads (ce, mlm terms); ``"hidden"`` only hidden states.
    ``pooling`` makes the pooled_cos term's sentence embeddings (the teacher's
    :class:`~ckptkit.distill.pooling.Pooling`; None: mean pooling).

    Example:
        >>> DistillOptions(ce_on="masked").temperature
        2.0
    """

    weights: losses.LossWeights = field(default_factory=losses.LossWeights)
    temperature: float = 2.0
    ce_on: str = "all"
    layer_map: tuple[int, ...] = ()
    objective: str = "mlm"
    teacher_layers: int = 0
    cos_pairs: tuple[tuple[int, int], ...] = ()
    pooling: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None  # pooled_cos; None: mean

    @property
    def cosine_pairs(self) -> tuple[tuple[int, int], ...]:
        """(student layer, teacher layer) of the cosine terms; ``-1`` is a model's last layer."""
        return self.cos_pairs or ((-1, self.teacher_layers - 1),)

    @property
    def needs_hidden(self) -> bool:
        w = self.weights
        return self.objective == "hidden" or w.cos > 0 or w.mse > 0 or w.pooled_cos > 0

    @property
    def needs_teacher(self) -> bool:
        """Whether any active term reads the teacher (an MLM-only baseline runs no teacher forward)."""
        return any(weight > 0 for name, weight in self.weights.as_dict().items() if name in TEACHER_TERMS)

    @property
    def teacher_hidden_indices(self) -> list[int]:
        """The teacher ``hidden_states`` indices the active losses read (last layer for cosines)."""
        wanted = set()
        if self.weights.cos > 0 or self.weights.pooled_cos > 0:
            wanted.update(t % self.teacher_layers + 1 for _, t in self.cosine_pairs)
        if self.weights.mse > 0:
            wanted.update(j + 1 for j in self.layer_map)
        return sorted(wanted)


@dataclass
class _Step:
    """The tensors of one step that the loss terms read."""

    student: Any
    teacher: TeacherOutputs
    labels: torch.Tensor
    attention_mask: torch.Tensor
    options: DistillOptions

    @property
    def ce_mask(self) -> torch.Tensor:
        return self.labels != -100 if self.options.ce_on == "masked" else self.attention_mask.bool()

    def cosine(self, loss: Callable[..., torch.Tensor]) -> torch.Tensor:
        """``loss`` (a cosine term) averaged over the options' (student layer, teacher layer) pairs."""
        states, teacher_layers = self.student.hidden_states, self.options.teacher_layers
        terms = [loss(states[s + 1 if s >= 0 else s], self.teacher.hidden[t % teacher_layers + 1], self.attention_mask)
                 for s, t in self.options.cosine_pairs]
        return torch.stack(terms).mean()


# the terms that compare with the teacher (every other one, ``mlm``, reads the labels only)
TEACHER_TERMS = frozenset({"ce", "cos", "mse", "attn", "pooled_cos"})

# term name -> loss of one step; only the terms with a positive weight are computed.
TERMS: dict[str, Callable[[_Step], torch.Tensor]] = {
    # a teacher cache gives top-k log-probs + the rest of the mass: the bucketed KL (ckptkit.distill.topk_kl)
    "ce": lambda s: losses.soft_target_kl(s.student.logits, s.teacher.logits, temperature=s.options.temperature,
                                          mask=s.ce_mask) if s.teacher.indices is None else
    bucketed_kl(s.student.logits, s.teacher.logits, s.teacher.indices, s.teacher.rest,
                temperature=s.options.temperature, mask=s.ce_mask),
    "mlm": lambda s: losses.mlm_loss(s.student.logits, s.labels),
    "cos": lambda s: s.cosine(losses.hidden_cosine_loss),
    "mse": lambda s: losses.mapped_hidden_mse(s.student.hidden_states, s.teacher.hidden, s.options.layer_map,
                                              s.attention_mask),
    "attn": lambda s: losses.attention_kl(s.student.attentions, s.teacher.attentions, s.options.layer_map,
                                          s.attention_mask),
    "pooled_cos": lambda s: s.cosine(partial(losses.pooled_cosine_loss, pooling=s.options.pooling)),
}


def compute_terms(step: _Step) -> dict[str, torch.Tensor]:
    """Each active term's value (unweighted)."""
    weights = step.options.weights.as_dict()
    return {name: fn(step) for name, fn in TERMS.items() if weights[name] > 0}


def _agreement(step: _Step) -> torch.Tensor | None:
    """Top-1 agreement on the masked positions (None without logits)."""
    if step.teacher.logits is None or getattr(step.student, "logits", None) is None:
        return None
    mask = step.labels != -100
    if not bool(mask.any()):
        mask = step.attention_mask.bool()
    teacher_top1 = step.teacher.indices[..., 0] if step.teacher.indices is not None else step.teacher.logits.argmax(-1)
    return (step.student.logits.argmax(-1)[mask] == teacher_top1[mask]).float().mean()


class _Meter:
    """Running sums of logged values between two log lines."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = defaultdict(float)
        self.steps = 0
        self.tokens = 0
        self.since = time.perf_counter()

    def add(self, values: dict[str, float], tokens: int) -> None:
        for name, value in values.items():
            self.sums[name] += value
        self.steps += 1
        self.tokens += tokens

    def pop(self, prefix: str, device: torch.device | None = None) -> dict[str, float]:
        """Means since the last pop, over every process when distributed (a collective: all ranks call it)."""
        elapsed = max(time.perf_counter() - self.since, 1e-9)
        names = sorted(self.sums)
        totals = [self.sums[name] for name in names] + [float(self.steps), float(self.tokens)]
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            packed = torch.tensor(totals, dtype=torch.float64, device=device)
            torch.distributed.all_reduce(packed)
            totals = packed.tolist()
        steps, tokens = totals[-2], totals[-1]
        out = {f"{prefix}{name}": value / max(1.0, steps) for name, value in zip(names, totals)}
        if tokens and not prefix:
            out["tokens_per_second"] = tokens / elapsed
        self.__init__()
        return out


class EpochCallback(TrainerCallback):
    """Tell the masking collator which epoch it is (fresh masks each epoch, reproducible)."""

    def __init__(self, collator) -> None:
        self.collator = collator

    def on_epoch_begin(self, args, state, control, **kwargs):
        self.collator.epoch = int(state.epoch or 0)


class DistillationTrainer(Trainer):
    """A Trainer that distils ``teacher`` into ``model`` with the losses in ``options``.

    The teacher runs in eval mode under ``torch.inference_mode`` in the student's precision, on
    this process's device (one teacher per process under DDP), or is read from ``teacher_cache``.
    Logged per step: ``loss_<term>``, ``top1_agreement``, ``tokens_per_second``, learning rate; under
    DDP each is the mean (tokens/s the sum) over all processes.

    Example:
        >>> DistillationTrainer(model=student, args=args, teacher=teacher, options=DistillOptions(),  # doctest: +SKIP
        ...                     train_dataset=ds, data_collator=collator).train()
    """

    def __init__(self, *args, teacher=None, options: DistillOptions, teacher_cache: TeacherCache | None = None,
                 **kwargs):
        super().__init__(*args, **kwargs)
        self.options = options
        self.teacher_cache = teacher_cache
        # our losses are means over the micro-batch: Trainer must divide by the accumulation steps.
        self.model_accepts_loss_kwargs = False
        self.teacher = None
        if teacher is not None:
            teacher.eval().requires_grad_(False)
            self.teacher = teacher.to(device=self.args.device, dtype=self.compute_dtype)
        self._meters = {True: _Meter(), False: _Meter()}

    @property
    def compute_dtype(self) -> torch.dtype:
        table = {(True, False): torch.bfloat16, (False, True): torch.float16}
        return table.get((bool(self.args.bf16), bool(self.args.fp16)), torch.float32)

    def _teacher_outputs(self, inputs: dict[str, torch.Tensor], example_ids) -> TeacherOutputs:
        if not self.options.needs_teacher:
            return TeacherOutputs(logits=None, hidden={}, attentions=None)
        if self.teacher_cache is not None:
            return self.teacher_cache.lookup(example_ids, seq_len=inputs["input_ids"].shape[1],
                                             device=inputs["input_ids"].device)
        want_attn = self.options.weights.attn > 0
        with torch.inference_mode():
            out = self.teacher(**inputs, output_hidden_states=self.options.needs_hidden, output_attentions=want_attn)
        hidden = {i: out.hidden_states[i].clone() for i in self.options.teacher_hidden_indices}
        logits = getattr(out, "logits", None)
        return TeacherOutputs(logits=logits.clone() if logits is not None else None, hidden=hidden,
                              attentions=[a.clone() for a in out.attentions] if want_attn else None)

    def compute_loss(self, model, inputs, return_outputs: bool = False, num_items_in_batch=None):
        inputs = dict(inputs)
        example_ids = inputs.pop("example_id", None)
        labels = inputs.pop("labels")
        student_out = model(**inputs, output_hidden_states=self.options.needs_hidden,
                            output_attentions=self.options.weights.attn > 0)
        step = _Step(student=student_out, teacher=self._teacher_outputs(inputs, example_ids), labels=labels,
                     attention_mask=inputs["attention_mask"], options=self.options)
        terms = compute_terms(step)
        weights = self.options.weights.as_dict()
        loss = sum(weights[name] * value for name, value in terms.items())
        logged = {f"loss_{name}": float(value.detach()) for name, value in terms.items()}
        agreement = _agreement(step)
        if agreement is not None:
            logged["top1_agreement"] = float(agreement)
        self._meters[model.training].add(logged, int(inputs["attention_mask"].sum()))
        return (loss, student_out) if return_outputs else loss

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None):
        inputs = self._prepare_inputs(inputs)
        with torch.no_grad():
            loss = self.compute_loss(model, inputs)
        return loss.detach(), None, None

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "loss" in logs:
            logs.update(self._meters[True].pop("", self.args.device))
        elif "eval_loss" in logs:
            logs.update(self._meters[False].pop("eval_", self.args.device))
        super().log(logs, start_time)
