"""Conversion speed and memory: ckptkit vs the transformers 4.57.6 loader vs a TensorFlow-reader
path, against the I/O floor, each in a fresh process, in one run.

    python benchmarks/bench_convert.py                 # both cases, all paths
    python benchmarks/bench_convert.py --cases base-adam --no-transformers457

Cases: a BERT-base checkpoint with Adam slots (~1.3 GB, as google-research/bert writes it) and a
BERT-large-shaped one (~1.35 GB); for peak RSS at every size also `tiny` and `xl-2048` (24 layers,
hidden 2048: 3.5 GB, written layer by layer), e.g.

    python benchmarks/bench_convert.py --cases tiny,base-adam,large,xl-2048 --paths io-floor

The report gives CPU time beside wall time, ckptkit / io-floor for both, and ckptkit's peak RSS as
the largest tensor + the rest (#18: at most largest tensor + 100 MB). Paths:
- ckptkit:          `ckptkit convert CKPT OUT --quiet` (TF -> hub folder with model.safetensors)
- transformers457:  BertForPreTraining + load_tf_weights_in_bert + save_pretrained, in its own venv
                    (transformers 4.57.6 is the last release with the TF loader; it needs TensorFlow)
- tf-reader:        tf.train.load_checkpoint + get_tensor + NumPy transposes + safetensors save_file
- io-floor:         pread exactly the needed bytes and write the same number of bytes, plain copies
Page cache is warm for every path (the case's files are read again right before each path: this
VM's host evicts cached pages while other paths use memory), and dirty pages are flushed
(os.sync) before each path, outside its timing. This VM's disk makes
single runs vary by 2-3x, so each path runs --repeat times (3), in interleaved rounds; the
report gives the median, the range and the largest peak RSS.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import textwrap
from typing import Callable

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))  # support: the test factories
from _results import markdown_table, publish, show  # noqa: E402
from _measure import machine_line, measure  # noqa: E402

WORK = os.path.join(HERE, "_work")
OLD_VENV = os.path.join(HERE, "_venv457")
CASES = {
    "base-adam": dict(shape=dict(vocab_size=30522, hidden=768, layers=12, heads=12, intermediate=3072,
                                 max_positions=512), adam=True),
    "large": dict(shape=dict(vocab_size=30522, hidden=1024, layers=24, heads=16, intermediate=4096,
                             max_positions=512), adam=False),
    # for peak RSS at every size (#18): a tiny model, and a 3.5 GB one written layer by layer
    "tiny": dict(shape=dict(vocab_size=1000, hidden=64, layers=2, heads=2, intermediate=256, max_positions=128),
                 adam=False),
    "xl-2048": dict(shape=dict(vocab_size=30522, hidden=2048, layers=24, heads=16, intermediate=4096,
                               max_positions=512), adam=False, streamed=True),
}
LARGEST_MB = {name: max(c["shape"]["vocab_size"], c["shape"]["intermediate"]) * c["shape"]["hidden"] * 4 / 2**20
              for name, c in CASES.items()}  # the word embeddings (or an FFN kernel): the largest tensor


def make_case(name: str) -> str:
    """Build the case's checkpoint in a child process: on Linux a child inherits its parent's peak
    RSS, so the measuring parent must never hold a model."""
    prefix = os.path.join(WORK, f"convert-{name}", "model.ckpt-1000")
    if not os.path.exists(prefix + ".index"):
        subprocess.run([sys.executable, os.path.abspath(__file__), "--make", name], check=True)
    return prefix


def _make_case(name: str) -> str:
    import numpy as np

    from ckptkit.converters.formats.tf1 import TFCheckpointWriter
    from support.bert import bert_tf_config, bert_tf_variables, with_adam_slots

    folder = os.path.join(WORK, f"convert-{name}")
    prefix = os.path.join(folder, "model.ckpt-1000")
    if os.path.exists(prefix + ".index"):
        return prefix
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    spec = CASES[name]
    if spec.get("streamed"):
        _write_streamed(prefix, spec["shape"])
        with open(os.path.join(folder, "bert_config.json"), "w") as f:
            json.dump(bert_tf_config(**spec["shape"]), f)
        return prefix
    variables = bert_tf_variables(**spec["shape"], seed=0)
    if spec["adam"]:
        variables = with_adam_slots(variables)
    with TFCheckpointWriter(prefix) as writer:
        for key in sorted(variables):
            writer.add(key, variables.pop(key))
    with open(os.path.join(folder, "bert_config.json"), "w") as f:
        json.dump(bert_tf_config(**spec["shape"]), f)
    del np
    return prefix


def _write_streamed(prefix: str, shape: dict) -> None:
    """A checkpoint too big to build in memory at once: embeddings and heads, then one layer at a time
    (each layer's variables from a 1-layer model with its own seed, renamed), in key order."""
    from ckptkit.converters.formats.tf1 import TFCheckpointWriter
    from support.bert import bert_tf_variables

    outer = bert_tf_variables(**{**shape, "layers": 0}, seed=0)
    layer_shape = {**shape, "layers": 1, "vocab_size": 2, "max_positions": 2}
    with TFCheckpointWriter(prefix) as writer:
        for key in sorted(k for k in outer if k < "bert/encoder/"):
            writer.add(key, outer.pop(key))
        for i in sorted(range(shape["layers"]), key=lambda i: f"layer_{i}/"):
            layer = bert_tf_variables(**layer_shape, seed=i + 1)
            for key in sorted(k for k in layer if k.startswith("bert/encoder/layer_0/")):
                writer.add(key.replace("/layer_0/", f"/layer_{i}/"), layer[key])
        for key in sorted(outer):
            writer.add(key, outer.pop(key))


OLD_SCRIPT = textwrap.dedent("""
    import sys, logging
    logging.disable(logging.WARNING)
    from transformers import BertConfig, BertForPreTraining, load_tf_weights_in_bert
    config = BertConfig.from_json_file(sys.argv[2])
    model = BertForPreTraining(config)
    load_tf_weights_in_bert(model, config, sys.argv[1])
    model.save_pretrained(sys.argv[3])
""")

TF_SCRIPT = textwrap.dedent("""
    import os, re, sys
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    import numpy as np, tensorflow as tf
    from safetensors.numpy import save_file
    SLOTS = re.compile(r"/(adam_m|adam_v)$|^global_step$")
    RULES = [(r"^bert/", "bert."), (r"/layer_(\\d+)/", r".layer.\\1."), (r"/gamma$", ".weight"),
             (r"/beta$", ".bias"), (r"/kernel$", ".weight"), (r"/output_weights$", ".weight"),
             (r"/output_bias$", ".bias"), (r"embeddings$", "embeddings.weight"), ("/", ".")]
    reader = tf.train.load_checkpoint(sys.argv[1])
    out = {}
    for name in sorted(reader.get_variable_to_shape_map()):
        if SLOTS.search(name):
            continue
        value = reader.get_tensor(name)
        if name.endswith("/kernel"):
            value = np.ascontiguousarray(value.T)
        hf = name
        for pattern, repl in RULES:
            hf = re.sub(pattern, repl, hf)
        out[hf] = value
    os.makedirs(sys.argv[2], exist_ok=True)
    save_file(out, os.path.join(sys.argv[2], "model.safetensors"), metadata={"format": "pt"})
""")

FLOOR_SCRIPT = textwrap.dedent("""
    import json, os, sys
    ranges = json.load(open(sys.argv[1]))
    out = open(sys.argv[2], "wb")
    fds = {}
    for path, offset, size in ranges:
        fd = fds.setdefault(path, os.open(path, os.O_RDONLY))
        out.write(os.pread(fd, size, offset))
    out.close()
""")


def floor_ranges(prefix: str, path: str) -> None:
    from ckptkit.converters.formats import open_checkpoint
    from ckptkit.converters.formats.tf1.paths import data_file

    with open_checkpoint(prefix) as ckpt:
        num_shards = ckpt.extras.get("num_shards", 1)
        base = ckpt.extras.get("prefix", prefix)
        ranges = [[data_file(base, t.entry.shard_id, num_shards), t.entry.offset, t.entry.size]
                  for t in ckpt.values() if t.role == "weight"]
    with open(path, "w") as f:
        json.dump(ranges, f)


def ensure_old_venv() -> str | None:
    python = os.path.join(OLD_VENV, "bin", "python")
    if os.path.exists(os.path.join(OLD_VENV, ".ready")):
        return python
    print("creating the transformers 4.57.6 environment (once) ...", file=sys.stderr)
    subprocess.run([sys.executable, "-m", "venv", OLD_VENV], check=True)
    pip = [python, "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    result = subprocess.run([*pip, "torch==2.13.0", "transformers==4.57.6", "tensorflow-cpu", "safetensors"],
                            capture_output=True, text=True)
    if result.returncode != 0:
        print(f"could not install transformers 4.57.6: {result.stderr[-500:]}", file=sys.stderr)
        return None
    open(os.path.join(OLD_VENV, ".ready"), "w").close()
    return python


def warm(folder: str) -> None:
    for name in os.listdir(folder):
        with open(os.path.join(folder, name), "rb") as f:
            while f.read(1 << 24):
                pass


def run_case(name: str, *, old_python: str | None, repeat: int = 3, only: set[str] | None = None) -> dict:
    prefix = make_case(name)
    folder = os.path.dirname(prefix)
    config = os.path.join(folder, "bert_config.json")
    warm(folder)
    outputs = os.path.join(WORK, f"out-{name}")
    scripts = os.path.join(WORK, "scripts")
    os.makedirs(scripts, exist_ok=True)
    for filename, text in (("old.py", OLD_SCRIPT), ("tfpath.py", TF_SCRIPT), ("floor.py", FLOOR_SCRIPT)):
        with open(os.path.join(scripts, filename), "w") as f:
            f.write(text)
    ranges = os.path.join(scripts, f"ranges-{name}.json")
    floor_ranges(prefix, ranges)
    ckptkit = os.path.join(os.path.dirname(sys.executable), "ckptkit")
    paths = {
        "io-floor": [sys.executable, os.path.join(scripts, "floor.py"), ranges, os.path.join(WORK, "floor.bin")],
        "ckptkit": [ckptkit, "convert", prefix, os.path.join(outputs, "ckptkit"), "--quiet", "--overwrite"],
        "tf-reader": [sys.executable, os.path.join(scripts, "tfpath.py"), prefix, os.path.join(outputs, "tf")],
    }
    if old_python:
        paths["transformers457"] = [old_python, os.path.join(scripts, "old.py"), prefix, config,
                                    os.path.join(outputs, "t457")]
    paths = {path: cmd for path, cmd in paths.items() if only is None or path in only}
    runs: dict[str, list[dict]] = {path: [] for path in paths}
    for round_ in range(repeat):  # rounds interleave the paths, so slow disk moments hit all of them alike
        for path, cmd in paths.items():
            shutil.rmtree(os.path.join(outputs, path), ignore_errors=True)
            env = measured_env()
            os.sync()  # flush the previous path's dirty pages first, so no path pays for another's writeback
            warm(folder)  # this VM's host evicts page cache under other paths' memory use: re-read the inputs
            run = measure(cmd, env=env)
            runs[path].append(run)
            print(f"  {name:<10} {path:<16} round {round_ + 1}: {run['wall_s']:7.2f} s  {run['cpu_s']:6.2f} s CPU  "
                  f"{run['peak_rss_mb']:7.0f} MB",
                  file=sys.stderr)
    shutil.rmtree(outputs, ignore_errors=True)
    return {path: summarize(each) for path, each in runs.items()}


def floor_vs_ckptkit(prefix: str, tag: str, *, repeat: int) -> tuple[dict[str, list[dict]], str, str]:
    """The I/O floor and ``ckptkit convert PREFIX`` in ``repeat`` interleaved rounds (cache warmed, dirty pages
    synced before each): each path's runs, the floor's ranges file and ckptkit's output folder (the caller
    removes it)."""
    folder = os.path.dirname(prefix)
    scripts = os.path.join(WORK, "scripts")
    os.makedirs(scripts, exist_ok=True)
    with open(os.path.join(scripts, "floor.py"), "w") as f:
        f.write(FLOOR_SCRIPT)
    ranges = os.path.join(scripts, f"ranges-{tag}.json")
    floor_ranges(prefix, ranges)
    out = os.path.join(WORK, f"out-{tag}")
    ckptkit = os.path.join(os.path.dirname(sys.executable), "ckptkit")
    paths = {"io-floor": [sys.executable, os.path.join(scripts, "floor.py"), ranges, os.path.join(WORK, "floor.bin")],
             "ckptkit": [ckptkit, "convert", prefix, out, "--quiet", "--overwrite"]}
    runs: dict[str, list[dict]] = {path: [] for path in paths}
    for round_ in range(repeat):  # rounds interleave the paths, so slow disk moments hit both alike
        for path, cmd in paths.items():
            os.sync()
            warm(folder)
            run = measure(cmd, env=measured_env())
            runs[path].append(run)
            print(f"  {tag:<20} {path:<9} round {round_ + 1}: {run['wall_s']:7.2f} s  {run['cpu_s']:6.2f} s CPU  "
                  f"{run['peak_rss_mb']:7.0f} MB", file=sys.stderr)
    return runs, ranges, out


def measured_env() -> dict:
    """The environment of a measured process: bytecode caching on, as in any installed package (a session
    with PYTHONDONTWRITEBYTECODE=1 would recompile ckptkit on every run, ~0.2 s of CPU)."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "CUDA_VISIBLE_DEVICES": ""}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def summarize(runs: list[dict]) -> dict:
    """Median wall time (and its range) and the largest peak RSS over the rounds."""
    walls = sorted(r["wall_s"] for r in runs)
    return {"wall_s": statistics.median(walls), "wall_min_s": walls[0], "wall_max_s": walls[-1],
            "cpu_s": statistics.median(r["cpu_s"] for r in runs),
            "peak_rss_mb": max(r["peak_rss_mb"] for r in runs), "rounds": len(runs)}


def report(all_results: dict) -> str:
    lines = [f"{'case':<10} {'path':<16} {'median s':>8} {'range s':>12} {'CPU s':>6} {'peak RSS MB':>12} "
             f"{'x ckptkit time':>15} {'x ckptkit RSS':>14}"]
    for case, results in all_results.items():
        ours = results["ckptkit"]
        for path, r in results.items():
            spread = f"{r['wall_min_s']:.2f}-{r['wall_max_s']:.2f}"
            lines.append(f"{case:<10} {path:<16} {r['wall_s']:8.2f} {spread:>12} {r['cpu_s']:6.2f} "
                         f"{r['peak_rss_mb']:12.0f} {r['wall_s'] / ours['wall_s']:15.2f} "
                         f"{r['peak_rss_mb'] / ours['peak_rss_mb']:14.2f}")
        if "io-floor" in results:
            floor = results["io-floor"]
            lines.append(f"{case:<10} ckptkit / io-floor: time {ours['wall_s'] / floor['wall_s']:.2f}x, "
                         f"CPU {ours['cpu_s'] / floor['cpu_s']:.2f}x")
        largest = LARGEST_MB[case]
        lines.append(f"{case:<10} ckptkit peak RSS {ours['peak_rss_mb']:.0f} MB = largest tensor {largest:.0f} MB "
                     f"+ {ours['peak_rss_mb'] - largest:.0f} MB")
    return "\n".join(lines)


def parse_bench_args(parser: argparse.ArgumentParser, *, make_case: Callable[[str], object]
                     ) -> argparse.Namespace | None:
    """Add --json, --repeat and the hidden --make to PARSER and parse the command line.

    With --make NAME, MAKE_CASE(NAME) runs (the child process that writes one case) and None comes back;
    otherwise the work folder exists afterwards and the parsed arguments come back.
    """
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--repeat", type=int, default=3, help="rounds per path; the median is reported")
    parser.add_argument("--publish", action="store_true",
                        help="also write benchmarks/results/<script>.md, the table README.md shows")
    parser.add_argument("--make", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.make:
        make_case(args.make)
        return None
    os.makedirs(WORK, exist_ok=True)
    return args


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", default=",".join(CASES))
    parser.add_argument("--no-transformers457", action="store_true")
    parser.add_argument("--paths", help="measure only these paths (comma-separated; ckptkit is always one), "
                                        "e.g. ckptkit,io-floor")
    parser.add_argument("--background-load", type=int, default=0, metavar="N",
                        help="run N busy-looping processes during the measurement, to show how a loaded "
                             "machine moves the figures")
    parser.add_argument("--publish-suffix", default="", metavar="NAME",
                        help="with --publish, write results/bench_convert-NAME.md (e.g. loaded, rss)")
    args = parse_bench_args(parser, make_case=_make_case)
    if args is None:
        return
    only = {"ckptkit", *args.paths.split(",")} if args.paths else None
    old_python = None if args.no_transformers457 or (only and "transformers457" not in only) else ensure_old_venv()
    started = machine_line()  # the load average before the run: a busy machine moves every ratio
    load = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(args.background_load)]
    try:
        results = {case: run_case(case, old_python=old_python, repeat=args.repeat, only=only)
                   for case in args.cases.split(",")}
    finally:
        for process in load:
            process.kill()
    if args.background_load:
        started += f" | {args.background_load} busy-looping processes during the run"
    ended = machine_line()
    show(results, report(results), started=started, ended=ended, as_json=args.json)
    if args.publish:
        name = "bench_convert" + (f"-{args.publish_suffix}" if args.publish_suffix else "")
        method = (f"TF → hub folder (safetensors), every path in a fresh process (imports included), "
                  f"{args.repeat} interleaved rounds, warm page cache, `os.sync()` between paths"
                  + (f", {args.background_load} busy-looping processes during the run" if args.background_load else "")
                  + ".")
        print("wrote", publish("bench_convert", name=name, machine_start=started, machine_end=ended,
                               method=method, body=markdown_report(results)), file=sys.stderr)


PATH_LABELS = {"ckptkit": "ckptkit", "io-floor": "I/O floor (pread the needed bytes, write them)",
               "tf-reader": "TF reader + safetensors",
               "transformers457": "transformers 4.57.6 (`load_tf_weights_in_bert` + `save_pretrained`)"}


def markdown_report(all_results: dict) -> str:
    """The published table: every case and path, then ckptkit against the floor and its RSS."""
    rows, notes = [], []
    for case, results in all_results.items():
        ours = results["ckptkit"]
        for path, r in results.items():
            rows.append([case, PATH_LABELS.get(path, path), f"{r['wall_s']:.2f} ({r['wall_min_s']:.2f}–{r['wall_max_s']:.2f})",
                         f"{r['cpu_s']:.2f}", f"{r['peak_rss_mb']:.0f}", f"{r['wall_s'] / ours['wall_s']:.2f}×"])
        note = f"{case}: ckptkit peak RSS {ours['peak_rss_mb']:.0f} MB = largest tensor {LARGEST_MB[case]:.0f} MB + " \
               f"{ours['peak_rss_mb'] - LARGEST_MB[case]:.0f} MB"
        if "io-floor" in results:
            floor = results["io-floor"]
            note += (f"; ckptkit / I/O floor: time {ours['wall_s'] / floor['wall_s']:.2f}×, "
                     f"CPU {ours['cpu_s'] / floor['cpu_s']:.2f}×")
        notes.append(f"- {note}")
    header = ["case", "path", "wall s, median (range)", "CPU s", "peak RSS MB", "time vs ckptkit"]
    return markdown_table(header, rows) + "\n\n" + "\n".join(notes)


if __name__ == "__main__":
    main()
