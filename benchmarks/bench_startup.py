"""Start-up cost of the CLI: CPU time of `ckptkit --help`, `ckptkit inspect` and a tiny convert against
`python -c pass`, each in a fresh process, in interleaved rounds (#18 item 4).

    python benchmarks/bench_startup.py            # 10 rounds
    python benchmarks/bench_startup.py --repeat 20

Target: a command's CPU time <= 3 x that of `python -c pass` + the work itself. "The work itself" is
the same library call timed in a process that has already made it once (imports and caches warm),
so what is left over is import and start-up cost. The report also lists which of torch,
transformers, TensorFlow, tokenizers, huggingface_hub, NumPy and ml_dtypes each command imported
(`inspect` needs neither of the last two: it reads metadata only).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import textwrap

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from _results import preformatted, publish, show  # noqa: E402
from _measure import machine_line, measure  # noqa: E402
from bench_convert import WORK, make_case, measured_env  # noqa: E402

REPO = os.path.dirname(HERE)
TINY = os.path.join(REPO, "examples", "tiny-bert")
HEAVY = ("torch", "transformers", "tensorflow", "tokenizers", "huggingface_hub", "numpy", "ml_dtypes")

# runs the CLI in-process, then prints the heavy top-level packages it imported (stderr, last line)
IMPORTS = textwrap.dedent("""
    import json, sys
    from ckptkit.cli import main
    try:
        main(sys.argv[1:])
    except SystemExit:
        pass
    heavy = %r
    print("IMPORTED " + json.dumps(sorted({m.split(".")[0] for m in sys.modules} & set(heavy))), file=sys.stderr)
""" % (HEAVY,))

# the work of a command without its start-up: the library call, timed on its second run in one process
WORK_ONLY = textwrap.dedent("""
    import os, sys, time
    from ckptkit.cli import main
    def once():
        try:
            main(sys.argv[1:])
        except SystemExit:
            pass
    once()
    start = time.process_time()
    once()
    print("WORK", time.process_time() - start, file=sys.stderr)
""")


def commands(base_prefix: str, out: str) -> dict[str, list[str]]:
    return {"--help": ["--help"], "inspect base": ["inspect", base_prefix],
            "convert tiny": ["convert", TINY, out, "--quiet", "--overwrite"]}


def run_python(code: list[str]) -> dict:
    return measure([sys.executable, *code], env=measured_env())


def last_line(text: str, tag: str) -> str:
    return next(line for line in reversed(text.splitlines()) if line.startswith(tag))[len(tag) + 1:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--publish", action="store_true", help="also write benchmarks/results/bench_startup.md")
    args = parser.parse_args()
    os.makedirs(WORK, exist_ok=True)
    base = make_case("base-adam")
    out = os.path.join(WORK, "startup-out")
    cmds = commands(base, out)
    started = machine_line()
    run_python(["-c", "pass"])  # bytecode caches written before the timed rounds
    for argv in cmds.values():
        run_python(["-m", "ckptkit", *argv])
    cpu: dict[str, list[float]] = {"python -c pass": [], **{name: [] for name in cmds}}
    for _ in range(args.repeat):  # interleaved rounds: a busy moment hits every command alike
        cpu["python -c pass"].append(run_python(["-c", "pass"])["cpu_s"])
        for name, argv in cmds.items():
            cpu[name].append(run_python(["-m", "ckptkit", *argv])["cpu_s"])
    work, imported = {}, {}
    for name, argv in cmds.items():
        done = subprocess.run([sys.executable, "-c", WORK_ONLY, *argv], capture_output=True, text=True,
                              env=measured_env())
        work[name] = float(last_line(done.stderr, "WORK"))
        done = subprocess.run([sys.executable, "-c", IMPORTS, *argv], capture_output=True, text=True,
                              env=measured_env())
        imported[name] = json.loads(last_line(done.stderr, "IMPORTED"))
    results = summarize(cpu, work, imported)
    ended = machine_line()
    show(results, report(results, args.repeat), started=started, ended=ended, as_json=args.json)
    if args.publish:
        print("wrote", publish("bench_startup", machine_start=started, machine_end=ended,
                               method=f"CPU time of each command against `python -c pass` plus the work itself, "
                                      f"a fresh process each, {args.repeat} interleaved rounds.",
                               body=preformatted(report(results, args.repeat))), file=sys.stderr)


def summarize(cpu: dict[str, list[float]], work: dict[str, float], imported: dict[str, list[str]]) -> dict:
    floor = statistics.median(cpu["python -c pass"])
    results = {"python -c pass": {"cpu_s": floor, "min_s": min(cpu["python -c pass"]),
                                  "max_s": max(cpu["python -c pass"])}}
    for name, values in cpu.items():
        if name == "python -c pass":
            continue
        median = statistics.median(values)
        budget = 3 * floor + work[name]
        results[name] = {"cpu_s": median, "min_s": min(values), "max_s": max(values), "work_s": work[name],
                         "x_python": median / floor, "budget_s": budget, "met": median <= budget,
                         "imports": imported[name]}
    return results


def report(results: dict, repeat: int) -> str:
    lines = [f"CPU seconds, median of {repeat} interleaved rounds (range); target: <= 3 x python -c pass + the work",
             f"{'command':<16} {'CPU s':>7} {'range':>13} {'x python':>9} {'work s':>7} {'target s':>9} {'met':>4}  "
             f"heavy imports"]
    for name, r in results.items():
        spread = f"{r['min_s']:.3f}-{r['max_s']:.3f}"
        if name == "python -c pass":
            lines.append(f"{name:<16} {r['cpu_s']:7.3f} {spread:>13} {1:9.2f}")
            continue
        lines.append(f"{name:<16} {r['cpu_s']:7.3f} {spread:>13} {r['x_python']:9.2f} {r['work_s']:7.3f} "
                     f"{r['budget_s']:9.3f} {'yes' if r['met'] else 'NO':>4}  {', '.join(r['imports']) or 'none'}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
