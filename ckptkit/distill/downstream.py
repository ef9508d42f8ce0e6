"""``distill eval --task FILE``: fine-tune teacher and student on a labelled set and compare their accuracy.

Both models get the same classification head (``AutoModelForSequenceClassification``, a fresh
linear layer on the pooled output), the same training rows in the same order, the same short
schedule (AdamW, linear warm-up and decay) and the same held-out rows. Reported: accuracy of each,
the majority-class rate (chance), training time. A plain PyTorch loop: small and deterministic.

Example:
    >>> r = evaluate_task(teacher="out/kobert", student="out/distil", task_file="ratings_train.txt")  # doctest: +SKIP
    >>> r["student"]["accuracy"], r["teacher"]["accuracy"]  # doctest: +SKIP
    (0.86, 0.89)
"""

from __future__ import annotations

import os
import time
from collections import Counter
from dataclasses import asdict, dataclass
from typing import Any

from ckptkit.distill.task_data import TaskData, read_task, split_task

__all__ = ["TaskSchedule", "evaluate_task", "finetune_and_score", "format_task_table"]


@dataclass(frozen=True)
class TaskSchedule:
    """The fine-tuning schedule (short by default: one pass over at most 20,000 rows)."""

    epochs: float = 1.0
    learning_rate: float = 5e-5
    batch_size: int = 32
    max_seq_length: int = 128
    warmup: float = 0.1
    weight_decay: float = 0.01
    max_train: int | None = 20_000
    max_test: int | None = 5_000
    test_fraction: float = 0.1
    seed: int = 42


def _encode(tokenizer, texts: list[str], max_seq_length: int) -> list[list[int]]:
    return tokenizer(texts, truncation=True, max_length=max_seq_length)["input_ids"]


def _batch(rows: list[list[int]], labels, pad_id: int):
    import torch

    length = max(len(r) for r in rows)
    ids = torch.full((len(rows), length), pad_id, dtype=torch.long)
    mask = torch.zeros_like(ids)
    for i, row in enumerate(rows):
        ids[i, :len(row)], mask[i, :len(row)] = torch.tensor(row), 1
    return {"input_ids": ids, "attention_mask": mask, "labels": torch.tensor(labels, dtype=torch.long)}


def _load_classifier(folder, num_labels: int):
    import transformers
    from transformers import AutoModelForSequenceClassification

    level = transformers.utils.logging.get_verbosity()
    transformers.utils.logging.set_verbosity_error()  # "newly initialized classifier": that is the point
    try:
        return AutoModelForSequenceClassification.from_pretrained(str(folder), num_labels=num_labels)
    finally:
        transformers.utils.logging.set_verbosity(level)


def _train(model, ids, labels, *, schedule: TaskSchedule, pad_id: int, desc: str, quiet: bool) -> int:
    import torch
    from tqdm.auto import tqdm
    from transformers import get_linear_schedule_with_warmup

    generator = torch.Generator().manual_seed(schedule.seed)
    per_epoch = -(-len(ids) // schedule.batch_size)
    steps = max(1, int(round(per_epoch * schedule.epochs)))
    optimizer = torch.optim.AdamW(model.parameters(), lr=schedule.learning_rate, weight_decay=schedule.weight_decay)
    lr = get_linear_schedule_with_warmup(optimizer, int(schedule.warmup * steps), steps)
    order: list[int] = []
    model.train()
    for _ in tqdm(range(steps), desc=desc, disable=quiet, leave=False):
        if len(order) < schedule.batch_size:
            order += torch.randperm(len(ids), generator=generator).tolist()
        chosen, order = order[:schedule.batch_size], order[schedule.batch_size:]
        loss = model(**_batch([ids[i] for i in chosen], [labels[i] for i in chosen], pad_id)).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step(), lr.step(), optimizer.zero_grad()
    return steps


def _accuracy(model, ids, labels, *, pad_id: int, batch_size: int) -> float:
    import torch

    model.eval()
    correct = 0
    with torch.inference_mode():
        for start in range(0, len(ids), batch_size):
            batch = _batch(ids[start:start + batch_size], labels[start:start + batch_size], pad_id)
            predicted = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.argmax(-1)
            correct += int((predicted == batch["labels"]).sum())
    return correct / max(1, len(ids))


def finetune_and_score(folder, *, train: TaskData, test: TaskData, tokenizer, schedule: TaskSchedule,
                       desc: str = "fine-tuning", quiet: bool = False) -> dict[str, Any]:
    """Fine-tune the model in ``folder`` on ``train`` and return its accuracy on ``test`` (and the cost)."""
    import torch

    torch.manual_seed(schedule.seed)
    model = _load_classifier(folder, len(train.label_names))
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    started = time.perf_counter()
    steps = _train(model, _encode(tokenizer, train.texts, schedule.max_seq_length), train.labels, schedule=schedule,
                   pad_id=pad_id, desc=desc, quiet=quiet)
    train_s = time.perf_counter() - started
    accuracy = _accuracy(model, _encode(tokenizer, test.texts, schedule.max_seq_length), test.labels, pad_id=pad_id,
                         batch_size=2 * schedule.batch_size)
    return {"accuracy": round(accuracy, 4), "steps": steps, "train_s": round(train_s, 2)}


def evaluate_task(*, teacher: str | os.PathLike, student: str | os.PathLike, task_file: str | os.PathLike,
                  schedule: TaskSchedule | None = None, text_column: str | int | None = None,
                  label_column: str | int | None = None, quiet: bool = False) -> dict[str, Any]:
    """Fine-tune ``teacher`` and ``student`` on ``task_file`` (held-out split) and compare their accuracy.

    Returns:
        ``{"task", "columns", "labels", "train_examples", "test_examples", "chance", "schedule",
        "teacher": {"accuracy", "steps", "train_s"}, "student": {...}}``.
    """
    from transformers import AutoTokenizer

    schedule = schedule or TaskSchedule()
    task = read_task(task_file, text_column=text_column, label_column=label_column)
    train, test = split_task(task, test_fraction=schedule.test_fraction, seed=schedule.seed,
                             max_train=schedule.max_train, max_test=schedule.max_test)
    tokenizer = AutoTokenizer.from_pretrained(str(teacher))
    majority = Counter(test.labels).most_common(1)[0][1] / len(test.labels)
    result: dict[str, Any] = {
        "task": str(task_file), "columns": {"text": task.columns[0], "label": task.columns[1]},
        "labels": task.label_names, "skipped_rows": task.skipped, "train_examples": len(train.texts),
        "test_examples": len(test.texts), "chance": round(majority, 4), "schedule": asdict(schedule)}
    for role, folder in (("teacher", teacher), ("student", student)):
        result[role] = {"path": str(folder), **finetune_and_score(folder, train=train, test=test, tokenizer=tokenizer,
                                                                  schedule=schedule, desc=f"fine-tuning {role}",
                                                                  quiet=quiet)}
    return result


def format_task_table(result: dict[str, Any]) -> str:
    """Teacher and student accuracy side by side, with chance and the cost of fine-tuning."""
    from ckptkit.formatting import format_table

    rows = [["accuracy (held out)", f"{result['teacher']['accuracy']:.4f}", f"{result['student']['accuracy']:.4f}"],
            ["majority class (chance)", f"{result['chance']:.4f}", f"{result['chance']:.4f}"],
            ["fine-tuning steps", str(result["teacher"]["steps"]), str(result["student"]["steps"])],
            ["fine-tuning time", f"{result['teacher']['train_s']:.1f} s", f"{result['student']['train_s']:.1f} s"]]
    head = (f"task {os.path.basename(result['task'])}: {result['train_examples']} training / {result['test_examples']} "
            f"held-out rows, {len(result['labels'])} labels (text column {result['columns']['text']!r}, label column "
            f"{result['columns']['label']!r})")
    return head + "\n" + format_table(rows, ["", "teacher", "student"], right={1, 2})
