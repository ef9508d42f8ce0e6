"""Fast (exported tokenizer.json) vs slow (KoBertTokenizer) throughput on the generated test corpus.

Both run in the same process on the same lines; the ratio is printed.

Example:
    python benchmarks/bench_tokenizers.py --kobert-dir ../shared/kobert --lines 10000 --repeat 3
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


def best_of(repeat: int, work: Callable[[], object]) -> float:
    """Seconds of the fastest of ``repeat`` runs of ``work``."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kobert-dir", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "kobert")
    parser.add_argument("--lines", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--batch", type=int, default=1000, help="lines per tokenizer call")
    args = parser.parse_args()

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
    print(f"corpus: {len(lines)} lines, {chars / 1e6:.2f} M characters; best of {args.repeat}; "
          f"batch {args.batch}; TOKENIZERS_PARALLELISM={os.environ.get('TOKENIZERS_PARALLELISM', 'unset')}")
    print(f"{'case':36} {'slow s':>8} {'fast s':>8} {'slow lines/s':>13} {'fast lines/s':>13} {'fast/slow':>9}")
    for name, make in cases.items():
        slow_s, fast_s = best_of(args.repeat, make(slow)), best_of(args.repeat, make(fast))
        n = len(pairs) if "pairs" in name else len(lines)
        print(f"{name:36} {slow_s:8.2f} {fast_s:8.2f} {n / slow_s:13,.0f} {n / fast_s:13,.0f} {slow_s / fast_s:8.1f}x")


if __name__ == "__main__":
    main()
