"""Top-k teacher distributions with the rest of the mass kept as one bucket, and their exact KL.

A teacher cache cannot hold the whole vocabulary per token. It keeps, at the distillation
temperature ``T``, the log-probabilities of the teacher's ``k`` most likely tokens and the log of
the probability left over, ``log(1 - sum(top k))``: a distribution over ``k + 1`` buckets. The
student's full distribution is coarsened the same way (its probabilities at the same ``k`` ids, and
the rest), and the loss is the KL between the two bucketed distributions. So:

- it is a true KL: ``>= 0``, and exactly ``0`` when the student's distribution equals the teacher's;
- it equals the full-vocabulary KL when the top ``k`` hold all the teacher's mass (``k`` = vocab);
- otherwise it is the KL of the coarsened distributions, never more than the full KL.

Softmax over the top ``k`` alone (renormalised) is *not* a KL: identical logits give
``-log(student mass on the top k) > 0``.

Example:
    >>> import torch
    >>> logits = torch.randn(2, 3, 50)
    >>> top = bucketed_topk(logits, k=8, temperature=2.0)
    >>> float(bucketed_kl(logits, top.logprobs, top.indices, top.rest, temperature=2.0))
    0.0
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F

__all__ = ["TopK", "bucketed_topk", "bucketed_kl", "student_buckets", "normalise_buckets"]

EMPTY = -1e30   # log-mass of an empty bucket (finite, so that gradients stay finite)


class TopK(NamedTuple):
    """``logprobs`` ``[..., k]`` (descending), their token ``indices``, ``rest`` ``[...]`` = log of the mass left."""

    logprobs: torch.Tensor
    indices: torch.Tensor
    rest: torch.Tensor


def _rest_logmass(log_probs: torch.Tensor, indices: torch.Tensor) -> torch.Tensor:
    """``log(sum of exp(log_probs) outside indices)``, computed without cancellation.

    The top-k slots are filled with a huge finite negative number, not ``-inf``: when ``k`` covers
    the vocabulary the result is about ``-1e30`` (mass 0) and its gradient stays finite.
    """
    outside = log_probs.scatter(-1, indices, EMPTY)
    return torch.logsumexp(outside, dim=-1)


def bucketed_topk(logits: torch.Tensor, *, k: int, temperature: float) -> TopK:
    """The teacher's top ``k`` log-probabilities at ``temperature`` and the log of the remaining mass.

    Example:
        >>> t = bucketed_topk(torch.tensor([[0.0, 0.0, 0.0, 0.0]]), k=2, temperature=1.0)
        >>> [round(float(x), 4) for x in t.logprobs[0]], round(float(t.rest[0].exp()), 4)
        ([-1.3863, -1.3863], 0.5)
    """
    log_probs = F.log_softmax(logits.float() / temperature, dim=-1)
    k = min(k, log_probs.shape[-1])
    values, indices = log_probs.topk(k, dim=-1)
    return TopK(values, indices, _rest_logmass(log_probs, indices))


def student_buckets(student_logits: torch.Tensor, indices: torch.Tensor, *, temperature: float):
    """The student's log-probabilities at the teacher's ``indices`` and the log of its mass elsewhere."""
    log_probs = F.log_softmax(student_logits.float() / temperature, dim=-1)
    return log_probs.gather(-1, indices.long()), _rest_logmass(log_probs, indices.long())


def _plogp_ratio(log_p: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """``p * (log p - log q)`` with ``0 * anything = 0`` (an empty bucket adds nothing)."""
    p = log_p.exp()
    return torch.where(p > 0, p * (log_p - log_q), torch.zeros_like(p))


def normalise_buckets(logprobs: torch.Tensor, rest: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Shift stored (rounded, e.g. float16) bucket log-probabilities so that they sum to exactly one.

    Example:
        >>> lp, r = normalise_buckets(torch.tensor([[-0.7, -0.7]]), torch.tensor([-3.0]))
        >>> round(float(torch.cat([lp, r[:, None]], -1).exp().sum()), 6)
        1.0
    """
    logprobs, rest = logprobs.float(), rest.float()
    total = torch.logsumexp(torch.cat([logprobs, rest.unsqueeze(-1)], dim=-1), dim=-1, keepdim=True)
    return logprobs - total, rest - total.squeeze(-1)


def bucketed_kl(student_logits: torch.Tensor, teacher_logprobs: torch.Tensor, teacher_indices: torch.Tensor,
                teacher_rest: torch.Tensor, *, temperature: float = 2.0,
                mask: torch.Tensor | None = None) -> torch.Tensor:
    """KL(teacher || student) over the ``k + 1`` buckets, times ``temperature**2``, mean over the positions in ``mask``.

    ``student_logits`` ``[b, s, vocab]``; ``teacher_logprobs``/``teacher_indices`` ``[b, s, k]`` and
    ``teacher_rest`` ``[b, s]`` as made by :func:`bucketed_topk` at the same ``temperature``.

    Example:
        >>> s = torch.tensor([[[0.0, 1.0, 2.0]]])
        >>> t = bucketed_topk(torch.tensor([[[2.0, 1.0, 0.0]]]), k=3, temperature=1.0)
        >>> round(float(bucketed_kl(s, *t, temperature=1.0)), 4)  # = the full KL: k covers the vocabulary
        1.1504
    """
    if mask is not None:
        keep = mask.reshape(-1).bool()
        flat = lambda x: x.reshape(-1, *x.shape[2:])[keep]  # noqa: E731
        student_logits, teacher_logprobs = flat(student_logits), flat(teacher_logprobs)
        teacher_indices, teacher_rest = flat(teacher_indices), flat(teacher_rest)
    if student_logits.numel() == 0:
        return student_logits.sum() * 0.0
    student_top, student_rest = student_buckets(student_logits, teacher_indices, temperature=temperature)
    per_position = (_plogp_ratio(teacher_logprobs.float(), student_top).sum(-1)
                    + _plogp_ratio(teacher_rest.float(), student_rest))
    return per_position.mean() * temperature**2
