"""Where the teacher cache pays: time per epoch with and without it, its build time, the break-even (issue 17).

A BERT teacher (``--teacher-layers`` x ``--hidden``, random weights: speed does not depend on them)
and a student of ``--student-layers`` train for whole epochs over a synthetic corpus with a plain
loop (AdamW, the soft-target KL at T=2 plus MLM): without a cache the teacher runs on every batch
(full-vocabulary KL); with one, its top-k log-probs + rest are read from disk (bucketed KL). The
cache is built once beforehand by the code behind ``ckptkit distill cache``.

    epochs to break even = build time / (epoch without cache - epoch with cache)

Example (a check; the full run is ``--corpus-mb 20 --teacher-layers 12 --hidden 768 --epochs 3``):
    python benchmarks/bench_teacher_cache.py --corpus-mb 0.3 --teacher-layers 4 --hidden 128 --epochs 2
"""

from __future__ import annotations

import argparse
import json
import statistics
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _measure import machine_line  # noqa: E402
from _results import preformatted, publish  # noqa: E402
from bench_distill_data import load_tokenizer, make_corpus, make_tokenizer_dir  # noqa: E402

WORK = Path(__file__).resolve().parent / "_work" / "teacher_cache"


def _models(args, vocab_size: int):
    import torch
    from transformers import BertConfig, BertForMaskedLM

    def config(layers: int):
        return BertConfig(vocab_size=vocab_size, hidden_size=args.hidden, num_hidden_layers=layers,
                          num_attention_heads=max(1, args.hidden // 64), intermediate_size=4 * args.hidden,
                          max_position_embeddings=max(512, args.max_seq_length))
    torch.manual_seed(0)
    return BertForMaskedLM(config(args.teacher_layers)).eval(), BertForMaskedLM(config(args.student_layers))


def _epoch(student, batches, *, teacher=None, cache=None, device="cpu") -> float:
    """One epoch of student steps; the teacher's targets from a forward pass or from the cache."""
    import torch

    from ckptkit.distill.losses import mlm_loss, soft_target_kl
    from ckptkit.distill.topk_kl import bucketed_kl

    optimizer = torch.optim.AdamW(student.parameters(), lr=1e-4)
    start = time.perf_counter()
    for batch in batches:
        batch = {k: v.to(device) for k, v in batch.items()}
        mask = batch["attention_mask"]
        if cache is not None:
            t = cache.lookup(batch["example_id"].cpu(), seq_len=batch["input_ids"].shape[1], device=device)
        else:
            with torch.inference_mode():
                t_logits = teacher(input_ids=batch["input_ids"], attention_mask=mask).logits.clone()
        logits = student(input_ids=batch["input_ids"], attention_mask=mask).logits
        kd = (bucketed_kl(logits, t.logits, t.indices, t.rest, temperature=2.0, mask=mask) if cache is not None
              else soft_target_kl(logits, t_logits, temperature=2.0, mask=mask))
        loss = 5.0 * kd + 2.0 * mlm_loss(logits, batch["labels"])
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - start


def run(args) -> dict:
    import torch

    from ckptkit.distill.streaming import StreamingCorpus
    from ckptkit.distill.teacher_cache import TeacherCache
    from ckptkit.distill.teacher_cache_build import build_teacher_cache, cache_key
    from ckptkit.distill.teacher_cache_run import masking_collator

    torch.set_num_threads(args.threads)
    WORK.mkdir(parents=True, exist_ok=True)
    tok_dir = make_tokenizer_dir(WORK / "tokenizer")
    tok = load_tokenizer(tok_dir)
    corpus_file = make_corpus(WORK / f"corpus-{args.corpus_mb}mb.txt", args.corpus_mb)
    corpus = StreamingCorpus([corpus_file], tok, max_seq_length=args.max_seq_length, shuffle=False,
                             piece_bytes=1 << 20)
    teacher, student = _models(args, len(tok))
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    teacher_dir = WORK / "teacher"
    teacher.save_pretrained(teacher_dir)
    tok.save_pretrained(teacher_dir)
    collator = masking_collator(tok, mlm_probability=0.15, mask_weights=None, seed=42)
    examples = list(corpus.iter_shard(0, 1))
    batches = [collator(examples[i:i + args.batch_size]) for i in range(0, len(examples), args.batch_size)]
    cache_dir = WORK / "cache"
    shutil.rmtree(cache_dir, ignore_errors=True)
    key = cache_key(teacher_dir=teacher_dir, corpus=corpus, collator=collator, top_k=args.top_k, temperature=2.0)
    stats = build_teacher_cache(cache_dir, corpus=corpus, teacher=teacher, collator=collator, key=key,
                                top_k=args.top_k, temperature=2.0, hidden_indices=[], batch_size=args.batch_size * 2,
                                device=device)
    teacher, student = teacher.to(device), student.to(device)
    cache = TeacherCache.open(cache_dir, key=key)
    without, with_cache = [], []
    for _ in range(args.epochs):   # interleaved, so that a change of machine load hits both alike
        without.append(_epoch(student, batches, teacher=teacher, device=device))
        with_cache.append(_epoch(student, batches, cache=cache, device=device))
    per_epoch_without, per_epoch_with = statistics.median(without), statistics.median(with_cache)
    saved = per_epoch_without - per_epoch_with
    return {"machine": machine_line(), "device": str(device), "examples": len(examples), "tokens": stats.tokens,
            "teacher": f"{args.teacher_layers}x{args.hidden}", "student_layers": args.student_layers,
            "top_k": args.top_k, "bytes_per_token": round(stats.bytes_per_token, 1),
            "cache_mb": round(stats.bytes / 1e6, 1),
            "build_s": round(stats.build_s, 2), "build_teacher_forward_s": round(stats.teacher_s, 2),
            "epoch_without_cache_s": [round(x, 2) for x in without],
            "epoch_with_cache_s": [round(x, 2) for x in with_cache],
            "saved_per_epoch_s": round(saved, 2),
            "break_even_epochs": round(stats.build_s / saved, 2) if saved > 0 else None,
            "total_s": {n: {"without": round(n * per_epoch_without, 1),
                            "with": round(stats.build_s + n * per_epoch_with, 1)} for n in (1, 2, 3, 5)}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--corpus-mb", type=float, default=20)
    parser.add_argument("--teacher-layers", type=int, default=12)
    parser.add_argument("--student-layers", type=int, default=3)
    parser.add_argument("--hidden", type=int, default=768)
    parser.add_argument("--max-seq-length", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--top-k", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=3, help="timed epochs of each kind (the median is used)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", help="cpu, cuda [cuda when available]")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--publish", action="store_true", help="also write benchmarks/results/bench_teacher_cache.md")
    args = parser.parse_args()
    started = machine_line()
    result = run(args)
    if args.json:
        print(json.dumps(result, indent=2))
        return
    lines: list[str] = []
    lines.append(f"device: {result['device']}")
    lines.append(f"corpus: {result['examples']:,} blocks, {result['tokens']:,} tokens; teacher {result['teacher']}, "
          f"student {result['student_layers']} layers; cache top-{result['top_k']}: {result['bytes_per_token']} "
          f"bytes/token, {result['cache_mb']} MB")
    lines.append(f"cache build: {result['build_s']} s (teacher forward {result['build_teacher_forward_s']} s)")
    lines.append(f"epoch without cache: {result['epoch_without_cache_s']} s; with cache: {result['epoch_with_cache_s']} s; "
          f"saved per epoch: {result['saved_per_epoch_s']} s")
    lines.append(f"{'epochs':>6}{'without s':>11}{'with s':>9}")
    for n, t in result["total_s"].items():
        lines.append(f"{n:>6}{t['without']:>11}{t['with']:>9}")
    lines.append(f"break-even: {result['break_even_epochs']} epochs")

    print(result["machine"])
    print("\n".join(lines))
    if args.publish:
        method = (f"a distillation loop (AdamW, soft-target KL at T=2 plus MLM) on {args.corpus_mb} MB of text, "
                  f"timed epochs without and with the teacher cache built by `distill cache`'s code.")
        print("wrote", publish("bench_teacher_cache", machine_start=started, machine_end=result["machine"],
                               method=method, body=preformatted("\n".join(lines))))

if __name__ == "__main__":
    main()
