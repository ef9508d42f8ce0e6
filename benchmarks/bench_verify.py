"""What `ckptkit verify` costs next to the conversion it checks (#18 item 3), each in a fresh process, in
interleaved rounds, for BERT-base + Adam and BERT-large (the checkpoints of bench_convert.py).

    python benchmarks/bench_verify.py                      # both cases, 3 rounds
    python benchmarks/bench_verify.py --cases base-adam --repeat 5

Per case: `ckptkit convert CKPT OUT --quiet`, `ckptkit verify CKPT OUT` with the default engine (every tensor
through the plan, ckptkit's NumPy engine over the hub folder against the NumPy reference over the TF
variables, the tokenizer) and `ckptkit verify CKPT OUT --engine transformers` (the transformers model instead
of the NumPy engine): median wall time, CPU time and the largest peak RSS, and the ratios verify / convert
for both engines. Targets (judged on the default engine): verify <= 3x the convert's wall time and <= 2x its
peak RSS. The floor under any verify that runs transformers is printed too: importing torch and
transformers and building the model class, nothing else.

    python benchmarks/bench_verify.py --cases tiny --repeat 1   # a quick check of the script itself
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from _results import preformatted, publish, show  # noqa: E402
from _measure import machine_line, measure  # noqa: E402
from bench_convert import WORK, make_case, measured_env, warm  # noqa: E402

CASES = ("base-adam", "large")
# path -> the verify engine it runs (the first is the default: the targets are judged on it)
VERIFY_PATHS = {"verify": "numpy", "verify transf.": "transformers"}
IMPORT_FLOOR = "import torch, transformers; transformers.BertForPreTraining"


def run_case(name: str, *, repeat: int) -> dict:
    prefix = make_case(name)
    ckptkit = os.path.join(os.path.dirname(sys.executable), "ckptkit")
    checked = os.path.join(WORK, f"verify-{name}", "checked")
    scratch = os.path.join(WORK, f"verify-{name}", "convert")
    if not os.path.exists(os.path.join(checked, "config.json")):
        subprocess.run([ckptkit, "convert", prefix, checked, "--quiet", "--overwrite"], check=True, env=measured_env())
    paths = {"convert": [ckptkit, "convert", prefix, scratch, "--quiet", "--overwrite"],
             **{path: [ckptkit, "verify", prefix, checked, "--engine", engine] for path, engine in VERIFY_PATHS.items()},
             "import floor": [sys.executable, "-c", IMPORT_FLOOR]}
    runs: dict[str, list[dict]] = {path: [] for path in paths}
    for round_ in range(repeat):  # interleaved: a busy moment hits every path alike
        for path, cmd in paths.items():
            shutil.rmtree(scratch, ignore_errors=True)
            os.sync()
            warm(os.path.dirname(prefix))
            run = measure(cmd, env=measured_env())
            runs[path].append(run)
            print(f"  {name:<10} {path:<13} round {round_ + 1}: {run['wall_s']:7.2f} s  {run['cpu_s']:6.2f} s CPU  "
                  f"{run['peak_rss_mb']:7.0f} MB", file=sys.stderr)
    shutil.rmtree(scratch, ignore_errors=True)
    return {path: summarize(each) for path, each in runs.items()}


def summarize(runs: list[dict]) -> dict:
    walls, cpus = sorted(r["wall_s"] for r in runs), sorted(r["cpu_s"] for r in runs)
    return {"wall_s": statistics.median(walls), "wall_min_s": walls[0], "wall_max_s": walls[-1],
            "cpu_s": statistics.median(cpus), "cpu_min_s": cpus[0], "cpu_max_s": cpus[-1],
            "peak_rss_mb": max(r["peak_rss_mb"] for r in runs), "rounds": len(runs)}


def report(results: dict) -> str:
    lines = [f"{'case':<10} {'path':<14} {'wall s':>22} {'CPU s':>22} {'peak RSS MB':>12}"]
    for case, r in results.items():
        for path, s in r.items():
            wall = f"{s['wall_s']:.2f} ({s['wall_min_s']:.2f}-{s['wall_max_s']:.2f})"
            cpu = f"{s['cpu_s']:.2f} ({s['cpu_min_s']:.2f}-{s['cpu_max_s']:.2f})"
            lines.append(f"{case:<10} {path:<14} {wall:>22} {cpu:>22} {s['peak_rss_mb']:12.0f}")
        conv = r["convert"]
        for number, (path, engine) in enumerate(VERIFY_PATHS.items()):
            ver = r[path]
            wall_x, rss_x = ver["wall_s"] / conv["wall_s"], ver["peak_rss_mb"] / conv["peak_rss_mb"]
            judged = " (the targets are judged on this default engine)" if number == 0 else ""
            lines.append(f"{case:<10} verify --engine {engine} / convert: wall {wall_x:.2f}x "
                         f"(target <= 3: {'met' if wall_x <= 3 else 'NOT met'}), CPU {ver['cpu_s'] / conv['cpu_s']:.2f}x, "
                         f"peak RSS {rss_x:.2f}x (target <= 2: {'met' if rss_x <= 2 else 'NOT met'}){judged}")
        floor, ver = r["import floor"], r["verify transf."]
        lines.append(f"{case:<10} verify --engine transformers without the torch + transformers import floor: wall "
                     f"{(ver['wall_s'] - floor['wall_s']) / conv['wall_s']:.2f}x, CPU "
                     f"{(ver['cpu_s'] - floor['cpu_s']) / conv['cpu_s']:.2f}x the convert's")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", default=",".join(CASES), help="comma-separated cases of bench_convert.py "
                        "(base-adam, large; tiny for a quick check)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--publish", action="store_true", help="also write benchmarks/results/bench_verify.md")
    args = parser.parse_args()
    os.makedirs(WORK, exist_ok=True)
    started = machine_line()
    results = {case: run_case(case, repeat=args.repeat) for case in args.cases.split(",")}
    ended = machine_line()
    show(results, report(results), started=started, ended=ended, as_json=args.json)
    if args.publish:
        print("wrote", publish("bench_verify", machine_start=started, machine_end=ended,
                               method=f"`ckptkit verify` (default NumPy engine, and --engine transformers) vs "
                                      f"the `ckptkit convert` it checks, and the torch + "
                                      f"transformers import floor, a fresh process each, {args.repeat} interleaved "
                                      f"rounds, warm page cache.",
                               body=preformatted(report(results))), file=sys.stderr)


if __name__ == "__main__":
    main()
