"""Fast (exported tokenizer.json) vs slow (KoBertTokenizer) throughput on the generated test corpus.

Both run in the same process on the same lines; the ratio is printed.

Example:
    python benchmarks/bench_tokenizers.py --kobert-dir ../shared/kobert --lines 10000 --repeat 3 [--publish]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # support: the test corpus
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _measure import machine_line  # noqa: E402
from _results import markdown_table, publish, spread  # noqa: E402


def timed(repeat: int, work: Callable[[], object]) -> list[float]:
    """Seconds of each of ``repeat`` runs of ``work``."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kobert-dir", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "kobert")
    parser.add_argument("--lines", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--batch", type=int, default=1000, help="lines per tokenizer call")
    parser.add_argument("--publish", action="store_true", help="also write benchmarks/results/bench_tokenizers.md")
    args = parser.parse_args()
    started = machine_line()

    from transformers import AutoTokenizer
    from transformers.utils import logging as hf_logging

    from support.corpus import korean_corpus

    from ckptkit.tokenizers import KoBertTokenizer, write_tokenizer_files

    hf_logging.set_verbosity_error()
    spm_file, vocab_file = args.kobert_dir / "tokenizer_78b3253a26.model", args.kobert_dir / "vocab.txt"
    lines = korean_corpus(args.lines)
    pairs = list(zip(lines[0::2], lines[1::2]))
    chars = sum(map(len, lines))
    with tempfile.TemporaryDirectory() as out:
        write_tokenizer_files(out, kind="kobert", spm_file=spm_file, vocab_file=vocab_file)
        fast = AutoTokenizer.from_pretrained(out)
    slow = KoBertTokenizer(vocab_file=vocab_file, sp_model_file=spm_file)

    def batches(tok, items, **kwargs):
        return lambda: [tok(items[i:i + args.batch], **kwargs) for i in range(0, len(items), args.batch)]

    def pair_batches(tok, **kwargs):
        return lambda: [tok([a for a, _ in pairs[i:i + args.batch]], [b for _, b in pairs[i:i + args.batch]],
                            **kwargs) for i in range(0, len(pairs), args.batch)]

    cases = {
        "encode lines": lambda tok: batches(tok, lines),
        "encode pairs, truncate 128 + pad": lambda tok: pair_batches(tok, truncation=True, max_length=128,
                                                                     padding="max_length"),
        "decode": lambda tok: (lambda ids: lambda: tok.batch_decode(ids))(slow(lines)["input_ids"]),
    }
    method = (f"KoBERT slow (`KoBertTokenizer`) vs fast (exported `tokenizer.json`) on the {len(lines):,}-line test "
              f"corpus ({chars / 1e6:.2f} M characters), batches of {args.batch}, {args.repeat} rounds each, "
              f"same process; TOKENIZERS_PARALLELISM={os.environ.get('TOKENIZERS_PARALLELISM', 'unset')}.")
    print(method)
    print(f"{'case':36} {'slow s':>8} {'fast s':>8} {'slow lines/s':>13} {'fast lines/s':>13} {'fast/slow':>9}")
    rows = []
    for name, make in cases.items():
        slow_times, fast_times = timed(args.repeat, make(slow)), timed(args.repeat, make(fast))
        slow_s, fast_s = sorted(slow_times)[len(slow_times) // 2], sorted(fast_times)[len(fast_times) // 2]
        n = len(pairs) if "pairs" in name else len(lines)
        print(f"{name:36} {slow_s:8.2f} {fast_s:8.2f} {n / slow_s:13,.0f} {n / fast_s:13,.0f} {slow_s / fast_s:8.1f}x")
        rows.append([name, spread(slow_times), spread(fast_times), f"{slow_s / fast_s:.1f}×"])
    if args.publish:
        body = markdown_table(["case", "slow s, median (range)", "fast s, median (range)", "fast vs slow"], rows)
        print("wrote", publish("bench_tokenizers", machine_start=started, machine_end=machine_line(),
                               method=method, body=body))

if __name__ == "__main__":
    main()
