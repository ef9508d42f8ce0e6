"""Distillation losses: pure functions of tensors, each pinned by a hand computation in the tests.

Conventions: ``mask`` is a ``[batch, seq]`` 0/1 (or bool) tensor of the positions that count;
hidden states are ``[batch, seq, hidden]``; ``hidden_states`` tuples are what transformers returns
with ``output_hidden_states=True`` (index 0 = embeddings, index ``i + 1`` = output of layer ``i``).

Example:
    >>> import torch
    >>> logits = torch.zeros(1, 3, 5)
    >>> float(soft_target_kl(logits, logits, temperature=2.0))
    0.0
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable, Sequence

import torch
import torch.nn.functional as F

__all__ = [
    "LossWeights",
    "soft_target_kl",
    "mlm_loss",
    "hidden_cosine_loss",
    "mapped_hidden_mse",
    "attention_kl",
    "mean_pool",
    "pooled_cosine_loss",
    "top1_agreement",
]


@dataclass(frozen=True)
class LossWeights:
    """Weight of each term; the defaults are DistilBERT's published training command.

    DistilBERT (Sanh et al. 2019, ``train.py --alpha_ce 5.0 --alpha_mlm 2.0 --alpha_cos 1.0``,
    temperature 2.0). Its ``alpha_mse`` was an MSE on logits and 0 by default; ours is the MSE on
    mapped hidden states, also 0 by default. ``pooled_cos`` is used by ``--objective hidden``.

    Example:
        >>> LossWeights().ce
        5.0
    """

    ce: float = 5.0
    mlm: float = 2.0
    cos: float = 1.0
    mse: float = 0.0
    attn: float = 0.0
    pooled_cos: float = 0.0

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def _selected(values: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Rows of ``values`` ``[b, s, ...]`` where ``mask`` ``[b, s]`` is set, as ``[n, ...]``."""
    flat = values.reshape(-1, *values.shape[2:])
    if mask is None:
        return flat
    return flat[mask.reshape(-1).bool()]


def soft_target_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor, *, temperature: float = 2.0,
                   mask: torch.Tensor | None = None) -> torch.Tensor:
    """KL(teacher || student) of the temperature-softened distributions, times ``temperature**2``.

    Averaged over the selected positions (``mask``), i.e. "batchmean" over positions. A teacher cache's
    top-k outputs go through :func:`ckptkit.distill.topk_kl.bucketed_kl` instead.

    Example:
        >>> s = torch.tensor([[[0.0, 1.0]]]); t = torch.tensor([[[1.0, 0.0]]])
        >>> round(float(soft_target_kl(s, t, temperature=1.0)), 4)
        0.4621
    """
    student_log_probs = F.log_softmax(_selected(student_logits, mask).float() / temperature, dim=-1)
    teacher_log_probs = F.log_softmax(_selected(teacher_logits, mask).float() / temperature, dim=-1)
    if student_log_probs.shape[0] == 0:
        return student_logits.sum() * 0.0
    per_position = (teacher_log_probs.exp() * (teacher_log_probs - student_log_probs)).sum(-1)
    return per_position.mean() * temperature**2


def mlm_loss(student_logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy on the masked-token labels (``-100`` = not a target), mean over targets.

    Example:
        >>> logits = torch.zeros(1, 2, 4); labels = torch.tensor([[1, -100]])
        >>> round(float(mlm_loss(logits, labels)), 4)  # log(4)
        1.3863
    """
    if not bool((labels != -100).any()):
        return student_logits.sum() * 0.0
    return F.cross_entropy(student_logits.float().reshape(-1, student_logits.shape[-1]), labels.reshape(-1),
                           ignore_index=-100)


def hidden_cosine_loss(student_hidden: torch.Tensor, teacher_hidden: torch.Tensor,
                       mask: torch.Tensor | None = None) -> torch.Tensor:
    """``1 - cos(student, teacher)`` per token, averaged over the non-padding positions in ``mask``.

    Example:
        >>> a = torch.tensor([[[1.0, 0.0], [0.0, 1.0]]]); b = torch.tensor([[[1.0, 0.0], [1.0, 0.0]]])
        >>> float(hidden_cosine_loss(a, b, torch.tensor([[1, 0]])))
        0.0
    """
    s, t = _selected(student_hidden, mask).float(), _selected(teacher_hidden, mask).float()
    if s.shape[0] == 0:
        return student_hidden.sum() * 0.0
    return (1.0 - F.cosine_similarity(s, t, dim=-1)).mean()


def mapped_hidden_mse(student_states: Sequence[torch.Tensor], teacher_states: Sequence[torch.Tensor],
                      layer_map: Sequence[int], mask: torch.Tensor | None = None) -> torch.Tensor:
    """Mean over student layers ``i`` of MSE(student layer ``i``, teacher layer ``layer_map[i]``).

    Each MSE is the mean of squared differences over the selected positions and all hidden units;
    both models need the same hidden size. ``*_states`` are ``hidden_states`` tuples (0 = embeddings).

    Example:
        >>> z = torch.zeros(1, 1, 2); o = torch.ones(1, 1, 2)
        >>> float(mapped_hidden_mse([z, z], [z, z, o], layer_map=[1]))
        1.0
    """
    terms = []
    for student_layer, teacher_layer in enumerate(layer_map):
        s = _selected(student_states[student_layer + 1], mask).float()
        t = _selected(teacher_states[teacher_layer + 1], mask).float()
        terms.append(F.mse_loss(s, t) if s.numel() else s.sum() * 0.0)
    return torch.stack(terms).mean()


def attention_kl(student_attentions: Sequence[torch.Tensor], teacher_attentions: Sequence[torch.Tensor],
                 layer_map: Sequence[int], mask: torch.Tensor | None = None) -> torch.Tensor:
    """KL(teacher || student) of each head's attention distribution, mean over mapped layers.

    ``*_attentions[i]`` is layer ``i``'s ``[batch, heads, query, key]`` probabilities (transformers'
    ``output_attentions``); both need the same number of heads. Averaged over heads and the query
    positions in ``mask`` (padding keys already have probability 0).

    Example:
        >>> a = torch.full((1, 1, 2, 2), 0.5)
        >>> float(attention_kl([a], [a], layer_map=[0]))
        0.0
    """
    eps = 1e-12
    terms = []
    for student_layer, teacher_layer in enumerate(layer_map):
        s = student_attentions[student_layer].float().clamp_min(eps)
        t = teacher_attentions[teacher_layer].float().clamp_min(eps)
        per_query = (t * (t.log() - s.log())).sum(-1)  # [b, h, q]
        if mask is None:
            terms.append(per_query.mean())
        else:
            weights = mask.float()[:, None, :].expand_as(per_query)
            terms.append((per_query * weights).sum() / weights.sum().clamp_min(1.0))
    return torch.stack(terms).mean()


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Average of the token vectors where ``mask`` is set: the sentence-transformers embedding.

    Example:
        >>> mean_pool(torch.tensor([[[1.0], [3.0], [9.0]]]), torch.tensor([[1, 1, 0]]))
        tensor([[2.]])
    """
    weights = mask.to(hidden.dtype).unsqueeze(-1)
    return (hidden * weights).sum(1) / weights.sum(1).clamp_min(1e-9)


def pooled_cosine_loss(student_hidden: torch.Tensor, teacher_hidden: torch.Tensor, mask: torch.Tensor, *,
                       pooling: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None) -> torch.Tensor:
    """``1 - cos`` between pooled student and teacher sentence embeddings, mean over the batch.

    ``pooling`` is the teacher's sentence-transformers pooling (:class:`ckptkit.distill.pooling.Pooling`);
    None: mean pooling.

    Example:
        >>> h = torch.ones(2, 3, 4)
        >>> float(pooled_cosine_loss(h, h, torch.ones(2, 3)))
        0.0
    """
    pool = pooling or mean_pool
    s = pool(student_hidden.float(), mask)
    t = pool(teacher_hidden.float(), mask)
    return (1.0 - F.cosine_similarity(s, t, dim=-1)).mean()


def top1_agreement(student_logits: torch.Tensor, teacher_logits: torch.Tensor,
                   mask: torch.Tensor | None = None) -> torch.Tensor:
    """Fraction of selected positions where the student's arg-max token equals the teacher's.

    Example:
        >>> s = torch.tensor([[[0.0, 1.0], [1.0, 0.0]]]); t = torch.tensor([[[0.0, 2.0], [0.0, 2.0]]])
        >>> float(top1_agreement(s, t))
        0.5
    """
    s = _selected(student_logits, mask).argmax(-1)
    t = _selected(teacher_logits, mask).argmax(-1)
    if s.numel() == 0:
        return torch.tensor(0.0)
    return (s == t).float().mean()
