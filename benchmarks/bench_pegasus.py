"""BigBird-Pegasus conversion speed and memory: a bigbp_large-shaped TF checkpoint -> hub folder, ckptkit vs
the I/O floor, each in a fresh process, in interleaved rounds of one run.

    python benchmarks/bench_pegasus.py                          # bigbp-large: 16+16 layers, hidden 1024, vocab 96103
    python benchmarks/bench_pegasus.py --cases small --repeat 1  # a quick check of the script (seconds)

Cases (the official summarization flags, pegasus_large.sh-like, in CASES):
- bigbp-large: google-research/bigbird's bigbp_large shapes: 16 encoder + 16 decoder layers, hidden 1024,
  16 heads, intermediate 4096, vocab 96103, 4096 positions, use_bias=False, relu, scope ``pegasus``, with
  the Adam state run_summarization.py saves (``/Adam``, ``/Adam_1`` for every trained variable, the position
  table frozen; ``beta1_power``, ``beta2_power``, ``global_step``): ~2.3 GB of weights, ~6.9 GB on disk.
  It is written tensor group by tensor group in the Saver's key order (never the whole model in memory).
- small: the same layout at 2+2 layers, hidden 128, vocab 1000 (~15 MB), to check the script.
Paths:
- ckptkit:   `ckptkit convert CKPT OUT --quiet` (TF -> hub folder: model.safetensors, config.json, card)
- io-floor:  pread exactly the weights' bytes and write the same number of bytes, plain copies
Page cache is warm for both paths and dirty pages are flushed before each (outside its timing), as in
bench_convert.py, whose measurement helpers this script shares. The report gives the date, the machine line
(CPU, cores, memory, load average) at start and end, per path the median wall time with its range and the
largest peak RSS, the ratio to the floor, and ckptkit's peak RSS against the largest tensor (the word
embeddings) it has to hold.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import zlib

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))  # support: the test factories
from _measure import machine_line  # noqa: E402
from _results import markdown_table, publish, show  # noqa: E402
from bench_convert import floor_vs_ckptkit, parse_bench_args, summarize  # noqa: E402

WORK = os.path.join(HERE, "_work")
STEP = 300000  # the fine-tuned summarization checkpoints are model.ckpt-300000
# case -> overrides of support.pegasus.pegasus_config (the official flags file's keys)
CASES: dict[str, dict] = {
    "bigbp-large": dict(vocab_size=96103, hidden_size=1024, num_hidden_layers=16, num_attention_heads=16,
                        intermediate_size=4096, max_position_embeddings=4096, max_encoder_length=3072,
                        max_decoder_length=256, block_size=64, num_rand_blocks=3),
    "small": dict(vocab_size=1000, hidden_size=128, num_hidden_layers=2, num_attention_heads=4,
                  intermediate_size=512, max_position_embeddings=512, max_encoder_length=512,
                  max_decoder_length=64, block_size=16, num_rand_blocks=3),
}
FROZEN = "/embeddings/position_embeddings"  # run_summarization.py trains no position table under use_bias=False
_LAYER = re.compile(r"^(?P<scope>[^/]+)/(?P<stack>encoder|decoder)/layer_(?P<layer>\d+)/")


def largest_tensor_mb(name: str) -> float:
    """The largest tensor ckptkit holds at once: the word embeddings (or the position table, or a FFN kernel)."""
    c = CASES[name]
    return max(c["vocab_size"], c["max_position_embeddings"], c["intermediate_size"]) * c["hidden_size"] * 4 / 2**20


def make_case(name: str) -> str:
    """Build the case's checkpoint in a child process (a child inherits its parent's peak RSS)."""
    prefix = os.path.join(WORK, f"pegasus-{name}", f"model.ckpt-{STEP}")
    if not os.path.exists(prefix + ".index"):
        subprocess.run([sys.executable, os.path.abspath(__file__), "--make", name], check=True)
    return prefix


def _group(name: str) -> str:
    """The variables generated together: one layer (``pegasus/encoder/layer_3``), or everything else."""
    m = _LAYER.match(name)
    return f"{m['stack']}/{m['layer']}" if m else "outer"


def _group_variables(config: dict, group: str, seed: int) -> dict:
    """The official variables of one group with their Adam slots, random (a 1-layer model's layer, renamed)."""
    import numpy as np

    from support.pegasus import pegasus_tf_variables

    if group == "outer":
        variables = pegasus_tf_variables({**config, "num_hidden_layers": 0, "num_decoder_layers": 0}, seed=seed)
    else:
        stack, layer = group.split("/")
        one = pegasus_tf_variables({**config, "num_hidden_layers": 1, "vocab_size": 2, "max_position_embeddings": 2},
                                   seed=seed)
        variables = {k.replace(f"/{stack}/layer_0/", f"/{stack}/layer_{layer}/"): v for k, v in one.items()
                     if f"/{stack}/layer_0/" in k}
    rng = np.random.default_rng(seed)
    for name, value in list(variables.items()):
        if not name.endswith(FROZEN):
            for slot in ("Adam", "Adam_1"):
                variables[f"{name}/{slot}"] = (rng.standard_normal(value.shape, dtype=np.float32) * 1e-3)
    return variables


def _make_case(name: str) -> None:
    """Write the checkpoint in the Saver's order (sorted keys), one group of tensors in memory at a time."""
    import numpy as np

    from ckptkit.converters.formats.tf1 import TFCheckpointWriter
    from support.pegasus import pegasus_config, pegasus_tf_variables, write_flags

    folder = os.path.join(WORK, f"pegasus-{name}")
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    config = pegasus_config(**CASES[name])
    tiny = {**config, "hidden_size": 4, "num_attention_heads": 1, "intermediate_size": 4, "vocab_size": 2,
            "max_position_embeddings": 2}
    names = [n for n in pegasus_tf_variables(tiny)]
    names += [f"{n}/{slot}" for n in names if not n.endswith(FROZEN) for slot in ("Adam", "Adam_1")]
    counters = {"beta1_power": np.float32(0.9 ** STEP), "beta2_power": np.float32(0.999 ** STEP),
                "global_step": np.int64(STEP)}
    groups: dict[str, dict] = {}
    with TFCheckpointWriter(os.path.join(folder, f"model.ckpt-{STEP}")) as writer:
        for key in sorted([*names, *counters]):
            if key in counters:
                writer.add(key, counters[key])
                continue
            group = _group(key)
            if group not in groups:  # keep the outer group (split across the key order), one layer at a time
                groups = {g: v for g, v in groups.items() if g == "outer"}
                groups[group] = _group_variables(config, group, seed=zlib.crc32(group.encode()))
            writer.add(key, groups[group].pop(key))
    write_flags(os.path.join(folder, "summarization.config"), config)


def run_case(name: str, *, repeat: int) -> dict:
    """Both paths ``repeat`` times in interleaved rounds; the median, range and largest peak RSS of each."""
    prefix = make_case(name)
    folder = os.path.dirname(prefix)
    runs, ranges, out = floor_vs_ckptkit(prefix, f"pegasus-{name}", repeat=repeat)
    written = os.path.getsize(os.path.join(out, "model.safetensors")) / 2**20
    shutil.rmtree(out, ignore_errors=True)
    with open(ranges) as f:
        weights_mb = sum(size for _, _, size in json.load(f)) / 2**20
    sizes = {"checkpoint_mb": sum(os.path.getsize(os.path.join(folder, n)) for n in os.listdir(folder)) / 2**20,
             "weights_mb": weights_mb, "safetensors_mb": written, "largest_tensor_mb": largest_tensor_mb(name)}
    return {"sizes": sizes, **{path: summarize(each) for path, each in runs.items()}}


def report(results: dict) -> str:
    """Per case and path the median and range, then the ratios and ckptkit's peak RSS against the largest tensor."""
    lines = [f"{'case':<12} {'path':<9} {'median s':>8} {'range s':>12} {'CPU s':>6} {'peak RSS MB':>12}"]
    for case, r in results.items():
        for path in ("io-floor", "ckptkit"):
            spread = f"{r[path]['wall_min_s']:.2f}-{r[path]['wall_max_s']:.2f}"
            lines.append(f"{case:<12} {path:<9} {r[path]['wall_s']:8.2f} {spread:>12} {r[path]['cpu_s']:6.2f} "
                         f"{r[path]['peak_rss_mb']:12.0f}")
        s, ours, floor = r["sizes"], r["ckptkit"], r["io-floor"]
        lines.append(f"{case:<12} checkpoint {s['checkpoint_mb']:.0f} MB (weights {s['weights_mb']:.0f} MB, the rest "
                     f"Adam state); wrote model.safetensors {s['safetensors_mb']:.0f} MB")
        lines.append(f"{case:<12} ckptkit / io-floor: time {ours['wall_s'] / floor['wall_s']:.2f}x, "
                     f"CPU {ours['cpu_s'] / max(floor['cpu_s'], 1e-9):.2f}x, "
                     f"peak RSS {ours['peak_rss_mb'] / floor['peak_rss_mb']:.2f}x")
        lines.append(f"{case:<12} ckptkit peak RSS {ours['peak_rss_mb']:.0f} MB = largest tensor "
                     f"{s['largest_tensor_mb']:.1f} MB (word embeddings) + {ours['peak_rss_mb'] - s['largest_tensor_mb']:.0f}"
                     f" MB ({ours['peak_rss_mb'] / s['largest_tensor_mb']:.2f}x the largest tensor)")
    return "\n".join(lines)


def publish_table(results: dict, started: str, ended: str, *, repeat: int) -> str:
    """benchmarks/results/bench_pegasus.md: the README's table of this run."""
    rows = []
    for case, r in results.items():
        floor, ours, s = r["io-floor"], r["ckptkit"], r["sizes"]
        rows.append([case, f"{s['checkpoint_mb']:.0f}", f"{s['weights_mb']:.0f}", _spread(ours),
                     f"{ours['peak_rss_mb']:.0f}", f"{s['largest_tensor_mb']:.0f}", _spread(floor),
                     f"{ours['wall_s'] / floor['wall_s']:.1f}×"])
    header = ["case", "checkpoint MB", "weights MB", "ckptkit s, median (range)", "ckptkit peak RSS MB",
              "largest tensor MB", "I/O floor s", "ckptkit vs floor"]
    method = (f"BigBird-Pegasus TF checkpoint (official names, Adam state) → hub folder vs the I/O floor (pread the "
              f"weights' bytes, write them), a fresh process each, {repeat} interleaved rounds, warm page cache.")
    return publish("bench_pegasus", machine_start=started, machine_end=ended, method=method,
                   body=markdown_table(header, rows))


def _spread(summary: dict) -> str:
    return f"{summary['wall_s']:.2f} ({summary['wall_min_s']:.2f}–{summary['wall_max_s']:.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", default="bigbp-large")
    args = parse_bench_args(parser, make_case=_make_case)
    if args is None:
        return
    started = machine_line()  # date, machine and load before the run: a busy machine moves every ratio
    results = {case: run_case(case, repeat=args.repeat) for case in args.cases.split(",")}
    ended = machine_line()
    show(results, report(results), started=started, ended=ended, as_json=args.json)
    if args.publish:
        print("wrote", publish_table(results, started, ended, repeat=args.repeat), file=sys.stderr)


if __name__ == "__main__":
    main()
