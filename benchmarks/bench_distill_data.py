"""Peak RSS of streaming a training corpus: flat in corpus size (issue 17).

Writes synthetic corpora (random sentences over a 5,000-word vocabulary; one text per line) of the
given sizes, then streams each one in a fresh child process through ``StreamingCorpus`` (tokenised
with a fast WordPiece tokenizer, packed into 128-token blocks) and, in the same pass, the token
counts of ``--mlm-smoothing``. Peak RSS comes from ``os.wait4`` of that child alone. For the smallest
size it also shows datasets' own streaming (``hf-stream``: ``load_dataset(streaming=True)`` + ``map``,
packed alike) and the old path (``datasets``: ``datasets.map`` into Arrow, then a Python loop for the
counts), unless ``--no-datasets``.

Example (a check; the issue's figure is ``--sizes-mb 100,1000``):
    python benchmarks/bench_distill_data.py --sizes-mb 10,100
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _measure import machine_line, measure  # noqa: E402
from _results import markdown_table, publish  # noqa: E402

WORK = Path(__file__).resolve().parent / "_work" / "distill_data"
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def _words(n: int = 5000) -> list[str]:
    rng = random.Random(0)
    letters = "abcdefghijklmnopqrstuvwxyz"
    words = set()
    while len(words) < n:
        words.add("".join(rng.choice(letters) for _ in range(rng.randint(2, 9))))
    return sorted(words)


def make_tokenizer_dir(folder: Path) -> Path:
    """A BERT tokenizer folder (vocab.txt) over the synthetic words, loaded as the fast tokenizer."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join(SPECIALS + _words()) + "\n")
    return folder


def load_tokenizer(folder: str | Path):
    """The fast WordPiece tokenizer over ``folder/vocab.txt``."""
    from transformers import BertTokenizer

    words = (Path(folder) / "vocab.txt").read_text().split()
    return BertTokenizer(vocab={w: i for i, w in enumerate(words)}, do_lower_case=True)


def make_corpus(path: Path, megabytes: float) -> Path:
    """``megabytes`` MB of lines of 5-40 random words (reused when already there)."""
    target = int(megabytes * 1_000_000)
    if path.is_file() and path.stat().st_size >= target:
        return path
    rng, words = random.Random(megabytes), _words()
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w") as f:
        written = 0
        while written < target:
            lines = [" ".join(rng.choices(words, k=rng.randint(5, 40))) for _ in range(100)]
            chunk = "\n".join(lines) + "\n"
            f.write(chunk)
            written += len(chunk)
    tmp.replace(path)
    return path


def stream_child(corpus: str, tokenizer_dir: str) -> None:
    """Child process: stream the corpus once (examples and smoothing counts); print what it saw."""
    from ckptkit.distill.streaming import StreamingCorpus, token_counts

    tok = load_tokenizer(tokenizer_dir)
    start = time.perf_counter()
    stream = StreamingCorpus([corpus], tok, max_seq_length=128, shuffle=False)
    examples = []

    def counted():
        for example in stream:
            examples.append(1)
            yield example["input_ids"]
    counts = token_counts(counted(), vocab_size=len(tok))
    print(json.dumps({"examples": len(examples), "tokens": int(counts.sum()), "seconds": time.perf_counter() - start}))


def hf_streaming_child(corpus: str, tokenizer_dir: str) -> None:
    """Child process: datasets' own streaming (``load_dataset(..., streaming=True)`` + batched ``map``), packed
    the same way, for comparison with ours (no sharding by pieces, no resume position)."""
    import datasets
    import numpy as np

    from ckptkit.distill.streaming import token_counts

    datasets.disable_progress_bars()
    tok = load_tokenizer(tokenizer_dir)
    start = time.perf_counter()
    texts = datasets.load_dataset("text", data_files={"train": [corpus]}, split="train", streaming=True)
    ids = texts.map(lambda b: {"ids": tok([t for t in b["text"] if t.strip()], add_special_tokens=False)["input_ids"]},
                    batched=True, batch_size=256, remove_columns=["text"])
    block, examples = 126, []

    def blocks():
        buffer = np.zeros(0, np.int64)
        for row in ids:
            buffer = np.concatenate([buffer, row["ids"]])
            while buffer.size >= block:
                examples.append(1)
                yield np.concatenate([[tok.cls_token_id], buffer[:block], [tok.sep_token_id]])
                buffer = buffer[block:]
    counts = token_counts(blocks(), vocab_size=len(tok))
    print(json.dumps({"examples": len(examples), "tokens": int(counts.sum()), "seconds": time.perf_counter() - start}))


def datasets_child(corpus: str, tokenizer_dir: str) -> None:
    """Child process: the old path (datasets.map into Arrow, counts by a Python loop), for comparison."""
    import tempfile

    import datasets
    import numpy as np

    from ckptkit.distill.data import tokenize_and_pack

    datasets.disable_progress_bars()
    os.environ["HF_DATASETS_CACHE"] = tempfile.mkdtemp()
    tok = load_tokenizer(tokenizer_dir)
    start = time.perf_counter()
    texts = datasets.load_dataset("text", data_files={"train": [corpus]}, split="train",
                                  cache_dir=os.environ["HF_DATASETS_CACHE"])
    packed = tokenize_and_pack(texts, tok, max_seq_length=128)
    counts = np.zeros(len(tok))
    for row in packed:
        counts += np.bincount(np.asarray(row["input_ids"]), minlength=len(tok))
    print(json.dumps({"examples": len(packed), "tokens": int(counts.sum()), "seconds": time.perf_counter() - start}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes-mb", default="100,1000", help="corpus sizes in MB (comma-separated)")
    parser.add_argument("--no-datasets", action="store_true", help="skip the old datasets.map path")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--publish", action="store_true", help="also write benchmarks/results/bench_distill_data.md")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        children = {"stream": stream_child, "hf-stream": hf_streaming_child, "datasets": datasets_child}
        children[args.child[0]](args.child[1], args.child[2])
        return
    WORK.mkdir(parents=True, exist_ok=True)
    started = machine_line()
    tokenizer_dir = make_tokenizer_dir(WORK / "tokenizer")
    sizes = [int(s) for s in args.sizes_mb.split(",")]
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
    rows = []
    for size in sizes:
        corpus = make_corpus(WORK / f"corpus-{size}mb.txt", size)
        paths = ["stream"] + (["hf-stream", "datasets"] if size == min(sizes) and not args.no_datasets else [])
        for path in paths:
            result = measure([sys.executable, __file__, "--child", path, str(corpus), str(tokenizer_dir)], env=env)
            seen = json.loads(result["stdout"].strip().splitlines()[-1])
            rows.append({"path": path, "size_mb": size, **seen, "wall_s": round(result["wall_s"], 1),
                         "peak_rss_mb": round(result["peak_rss_mb"], 1),
                         "tokens_per_s": round(seen["tokens"] / max(seen["seconds"], 1e-9))})
    streamed = [r["peak_rss_mb"] for r in rows if r["path"] == "stream"]
    summary = {"machine": machine_line(), "rows": rows,
               "stream_rss_ratio_largest_to_smallest": round(streamed[-1] / streamed[0], 3)}
    if args.json:
        print(json.dumps(summary, indent=2))
        return
    header = ["path", "size MB", "examples", "tokens", "wall s", "tokens/s", "peak RSS MB"]
    table = markdown_table(header, [[r["path"], r["size_mb"], f"{r['examples']:,}", f"{r['tokens']:,}", r["wall_s"],
                                     f"{r['tokens_per_s']:,}", r["peak_rss_mb"]] for r in rows])
    body = (table + f"\n\nStreaming peak RSS, largest / smallest corpus: "
                    f"{summary['stream_rss_ratio_largest_to_smallest']:.3f}.")
    print(f"start: {started}\nend:   {summary['machine']}\n{body}")
    if args.publish:
        method = ("synthetic corpora (random sentences over a 5,000-word vocabulary) streamed through "
                  "`StreamingCorpus` (fast WordPiece tokenizer, 128-token blocks, smoothing counts in the same pass), "
                  "a fresh process per corpus, peak RSS of that process alone.")
        print("wrote", publish("bench_distill_data", machine_start=started, machine_end=summary["machine"],
                               method=method, body=body))

if __name__ == "__main__":
    main()
