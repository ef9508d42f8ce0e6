"""Held-out scores of trained students against their teacher, on the same fixed-masked blocks.

Per student: MLM loss and accuracy on the masked tokens (against the true tokens); against the
teacher: top-1 agreement and KL(teacher || student) on the masked tokens (a teacher with an MLM
head), cosine of the last hidden states per token and of the sentence embeddings, pooled as the
teacher's sentence-transformers stack pools them (:mod:`ckptkit.distill.pooling`; mean pooling for
a teacher without one).

Example:
    >>> scores = held_out_scores(teacher, {"distilled": kd, "baseline_mlm": mlm}, tokenizer=tok,  # doctest: +SKIP
    ...                          eval_files=["held_out.txt"], max_seq_length=128)
    >>> scores["distilled"]["mlm_loss"] < scores["baseline_mlm"]["mlm_loss"]  # doctest: +SKIP
    True
"""

from __future__ import annotations

import os
from typing import Any, Mapping, Sequence

__all__ = ["held_out_scores", "SCORE_LABELS"]

# score -> (label, lower is better)
SCORE_LABELS: dict[str, tuple[str, bool]] = {
    "mlm_loss": ("held-out MLM loss", True),
    "mlm_accuracy": ("held-out MLM accuracy", False),
    "top1_agreement": ("top-1 agreement with the teacher", False),
    "kl": ("KL(teacher || student)", True),
    "hidden_cosine": ("last hidden state cosine", False),
    "embedding_cosine": ("sentence-embedding cosine", False),
}


def _zero_sums() -> dict[str, float]:
    return {"masked": 0, "nll": 0.0, "correct": 0, "agree": 0, "kl": 0.0, "cos": 0.0, "tokens": 0,
            "emb": 0.0, "rows": 0}


def _accumulate(sums: dict[str, float], batch, t_out, s_out, pool) -> None:
    import torch.nn.functional as F

    mask, tokens = batch["labels"] != -100, batch["attention_mask"].bool()
    labels = batch["labels"][mask]
    s_logp = F.log_softmax(s_out.logits[mask].float(), -1)
    sums["masked"] += int(labels.numel())
    sums["nll"] += float(-s_logp.gather(-1, labels[:, None]).sum())
    sums["correct"] += int((s_logp.argmax(-1) == labels).sum())
    if getattr(t_out, "logits", None) is not None:
        t_logp = F.log_softmax(t_out.logits[mask].float(), -1)
        sums["agree"] += int((t_logp.argmax(-1) == s_logp.argmax(-1)).sum())
        sums["kl"] += float((t_logp.exp() * (t_logp - s_logp)).sum())
    t_last, s_last = t_out.hidden_states[-1].float(), s_out.hidden_states[-1].float()
    if t_last.shape[-1] == s_last.shape[-1]:
        sums["cos"] += float(F.cosine_similarity(t_last[tokens], s_last[tokens], dim=-1).sum())
        mask_f = batch["attention_mask"]
        sums["emb"] += float(F.cosine_similarity(pool(t_last, mask_f), pool(s_last, mask_f), dim=-1).sum())
    sums["tokens"] += int(tokens.sum())
    sums["rows"] += int(tokens.shape[0])


def _scores(sums: dict[str, float], *, teacher_logits: bool, same_width: bool) -> dict[str, float]:
    n = max(1, sums["masked"])
    scores = {"mlm_loss": sums["nll"] / n, "mlm_accuracy": sums["correct"] / n}
    if teacher_logits:
        scores.update(top1_agreement=sums["agree"] / n, kl=sums["kl"] / n)
    if same_width:
        scores.update(hidden_cosine=sums["cos"] / max(1, sums["tokens"]),
                      embedding_cosine=sums["emb"] / max(1, sums["rows"]))
    return {k: round(v, 5) for k, v in scores.items()}


def held_out_scores(teacher, students: Mapping[str, Any], *, tokenizer, eval_files: Sequence[str | os.PathLike],
                    max_seq_length: int, batch_size: int = 16, max_batches: int = 50, seed: int = 42,
                    mlm_probability: float = 0.15, text_column: str = "text", pooling=None) -> dict[str, Any]:
    """Score each student (name -> MLM model) against ``teacher`` on the same masked blocks of ``eval_files``.

    ``pooling`` makes the sentence embeddings (a :class:`ckptkit.distill.pooling.Pooling`, the
    teacher's; None: mean pooling); the result's ``"pooling"`` says which was used.
    """
    import torch

    from ckptkit.distill import data as data_mod
    from ckptkit.distill.pooling import Pooling

    pooling = pooling or Pooling()

    blocks = data_mod.tokenize_and_pack(data_mod.load_texts(eval_files, text_column=text_column), tokenizer,
                                        max_seq_length=max_seq_length)
    collator = data_mod.MaskingCollator(pad_id=tokenizer.pad_token_id, mask_id=tokenizer.mask_token_id,
                                        special_ids=sorted(set(tokenizer.all_special_ids)), vocab_size=len(tokenizer),
                                        mlm_probability=mlm_probability, seed=seed, fixed=True)
    device = next(teacher.parameters()).device
    was_training = {name: model.training for name, model in students.items()}
    sums = {name: _zero_sums() for name in students}
    rows = min(len(blocks), batch_size * max_batches)
    teacher_logits, same_width = False, True
    for start in range(0, rows, batch_size):
        batch = collator([blocks[i] for i in range(start, min(rows, start + batch_size))])
        inputs = {k: batch[k].to(device) for k in ("input_ids", "attention_mask")}
        batch = {**batch, **inputs, "labels": batch["labels"].to(device)}
        with torch.inference_mode():
            t_out = teacher.eval()(**inputs, output_hidden_states=True)
            teacher_logits = getattr(t_out, "logits", None) is not None
            for name, model in students.items():
                s_out = model.eval()(**inputs, output_hidden_states=True)
                same_width = same_width and t_out.hidden_states[-1].shape[-1] == s_out.hidden_states[-1].shape[-1]
                _accumulate(sums[name], batch, t_out, s_out, pooling)
    for name, model in students.items():
        model.train(was_training[name])
    result: dict[str, Any] = {name: _scores(s, teacher_logits=teacher_logits, same_width=same_width)
                              for name, s in sums.items()}
    result["pooling"] = pooling.describe()
    result["blocks"], result["masked_tokens"] = rows, next(iter(sums.values()))["masked"] if sums else 0
    return result
