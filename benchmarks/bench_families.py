"""Conversion speed and memory for the non-BERT families' official checkpoints: ckptkit vs the I/O floor,
each in a fresh process, in one run.

    python benchmarks/bench_families.py                    # every case
    python benchmarks/bench_families.py --cases mobilebert-uncased --repeat 3

Cases (one row in CASES each: how to build the checkpoint, in a child process):
- mobilebert-uncased: google-research mobilebert's uncased_L-24_H-128_B-512_A-4_F-4_OPT shapes (24 layers,
  hidden 512, bottleneck 128, 4 FFNs, trigram input, no_norm, vocab 30522) with LAMB slots
  (adam_m, adam_v) and global_step, as run_pretraining.py saves it (~300 MB, a third of it weights).
- albert-base: google-research/albert's albert_base (vocab 30000, embedding 128, hidden 768, 12 layers
  sharing one group, 12 heads, intermediate 3072) with the MLM and SOP heads, LAMB slots (adam_m, adam_v)
  and global_step (~135 MB, a third of it weights).
Paths:
- ckptkit:   `ckptkit convert CKPT OUT --quiet` (TF -> hub folder with model.safetensors)
- io-floor:  pread exactly the weights' bytes and write the same number of bytes, plain copies
Page cache is warm for both paths and dirty pages are flushed before each (outside its timing), as in
bench_convert.py, whose measurement helpers this script shares.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from typing import Callable

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))  # support: the test factories
from _measure import machine_line  # noqa: E402
from _results import markdown_table, publish, show  # noqa: E402
from bench_convert import floor_vs_ckptkit, parse_bench_args, summarize  # noqa: E402

WORK = os.path.join(HERE, "_work")


def _mobilebert_uncased() -> tuple[dict, dict, str]:
    """(variables with LAMB slots, the official bert_config.json, its file name)."""
    from support.bert import with_adam_slots
    from support.mobilebert import mobilebert_config, mobilebert_tf_variables

    config = mobilebert_config(vocab_size=30522, hidden_size=512, num_hidden_layers=24, num_attention_heads=4,
                               intermediate_size=512, max_position_embeddings=512, embedding_size=128,
                               intra_bottleneck_size=128, num_feedforward_networks=4, hidden_dropout_prob=0.0)
    return with_adam_slots(mobilebert_tf_variables(config), global_step=500000), config, "bert_config.json"


def _albert_base() -> tuple[dict, dict, str]:
    """(variables with LAMB slots, the official albert_config.json, its file name)."""
    from support.albert import albert_tf_config, albert_tf_variables
    from support.bert import with_adam_slots

    dims = dict(vocab_size=30000, embedding=128, hidden=768, groups=1, inner=1, heads=12, intermediate=3072,
                max_positions=512)
    return (with_adam_slots(albert_tf_variables(**dims), global_step=500000),
            albert_tf_config(**dims, layers=12), "albert_config.json")


# case -> builder of (TF variables, TF config, config file name)
CASES: dict[str, Callable[[], tuple[dict, dict, str]]] = {
    "mobilebert-uncased": _mobilebert_uncased,
    "albert-base": _albert_base,
}


def make_case(name: str) -> str:
    """Build the case's checkpoint in a child process (a child inherits its parent's peak RSS)."""
    prefix = os.path.join(WORK, f"family-{name}", "model.ckpt-500000")
    if not os.path.exists(prefix + ".index"):
        subprocess.run([sys.executable, __file__, "--make", name], check=True)
    return prefix


def _make_case(name: str) -> None:
    from ckptkit.converters.formats.tf1 import TFCheckpointWriter

    folder = os.path.join(WORK, f"family-{name}")
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    variables, config, config_name = CASES[name]()
    with TFCheckpointWriter(os.path.join(folder, "model.ckpt-500000")) as writer:
        for key in sorted(variables):
            writer.add(key, variables.pop(key))
    with open(os.path.join(folder, config_name), "w") as f:
        json.dump(config, f)


def run_case(name: str, *, repeat: int) -> dict:
    """Both paths ``repeat`` times in interleaved rounds; the median, range and largest peak RSS of each."""
    prefix = make_case(name)
    folder = os.path.dirname(prefix)
    runs, _, out = floor_vs_ckptkit(prefix, name, repeat=repeat)
    shutil.rmtree(out, ignore_errors=True)
    sizes = {"checkpoint_mb": sum(os.path.getsize(os.path.join(folder, n)) for n in os.listdir(folder)) / 2**20}
    return {"sizes": sizes, **{path: summarize(each) for path, each in runs.items()}}


def report(results: dict) -> str:
    """One line per case and path, and ckptkit's time over the floor's."""
    lines = [f"{'case':<20} {'path':<9} {'median s':>8} {'range s':>12} {'peak RSS MB':>12}"]
    for case, r in results.items():
        for path in ("io-floor", "ckptkit"):
            spread = f"{r[path]['wall_min_s']:.2f}-{r[path]['wall_max_s']:.2f}"
            lines.append(f"{case:<20} {path:<9} {r[path]['wall_s']:8.2f} {spread:>12} {r[path]['peak_rss_mb']:12.0f}")
        lines.append(f"{case:<20} checkpoint {r['sizes']['checkpoint_mb']:.0f} MB; ckptkit / io-floor time: "
                     f"{r['ckptkit']['wall_s'] / r['io-floor']['wall_s']:.2f}x")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", default=",".join(CASES))
    args = parse_bench_args(parser, make_case=_make_case)
    if args is None:
        return
    started = machine_line()
    results = {case: run_case(case, repeat=args.repeat) for case in args.cases.split(",")}
    ended = machine_line()
    show(results, report(results), started=started, ended=ended, as_json=args.json)
    if args.publish:
        print("wrote", publish_table(results, started, ended, repeat=args.repeat), file=sys.stderr)


def publish_table(results: dict, started: str, ended: str, *, repeat: int) -> str:
    """benchmarks/results/bench_families.md: the README's table of this run."""
    rows = []
    for case, r in results.items():
        floor, ours = r["io-floor"], r["ckptkit"]
        rows.append([case, f"{r['sizes']['checkpoint_mb']:.0f}",
                     spread_of(ours), f"{ours['peak_rss_mb']:.0f}", spread_of(floor), f"{floor['peak_rss_mb']:.0f}",
                     f"{ours['wall_s'] / floor['wall_s']:.1f}×"])
    header = ["case", "checkpoint MB", "ckptkit s, median (range)", "ckptkit peak RSS MB", "I/O floor s",
              "floor peak RSS MB", "ckptkit vs floor"]
    method = (f"TF → hub folder of official-shaped pretraining checkpoints (weights, LAMB slots, global_step) vs "
              f"the I/O floor (pread the needed bytes, write them), a fresh process each, {repeat} interleaved "
              f"rounds, warm page cache.")
    return publish("bench_families", machine_start=started, machine_end=ended, method=method,
                   body=markdown_table(header, rows))


def spread_of(summary: dict) -> str:
    return f"{summary['wall_s']:.2f} ({summary['wall_min_s']:.2f}–{summary['wall_max_s']:.2f})"


if __name__ == "__main__":
    main()
