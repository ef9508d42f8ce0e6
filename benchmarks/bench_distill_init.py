"""Making a 3-layer student (teacher layers 0, 4, 8) from a 12-layer BERT-base hub folder (~440 MB of
safetensors): ckptkit vs the obvious transformers path, each in a fresh process, in one run.

    python benchmarks/bench_distill_init.py            # 3 rounds, median
    python benchmarks/bench_distill_init.py --rounds 5 --arch distilbert

Paths:
- ckptkit:       `ckptkit distill init TEACHER OUT --layers 0,4,8 --quiet` (reads only the kept tensors,
                 streams them into model.safetensors; no torch, no transformers)
- transformers:  AutoModelForMaskedLM.from_pretrained(teacher); a new model from the config with
                 num_hidden_layers=3; copy embeddings, layers 0/4/8 and the MLM head by state_dict;
                 save_pretrained; copy the tokenizer files
The teacher is made once in benchmarks/_work (gitignored) with random weights and real BERT-base shapes.
Page cache is warm for both paths (the teacher is read once before measuring). Targets: < 2 s wall,
< 400 MB peak RSS for ckptkit.
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

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))  # support: the test factories
from _measure import machine_line, measure  # noqa: E402
from _results import markdown_table, publish, spread  # noqa: E402

WORK = os.path.join(HERE, "_work")
TEACHER = os.path.join(WORK, "bert-base-hub")
SHAPE = dict(vocab_size=30522, hidden=768, layers=12, heads=12, intermediate=3072, max_positions=512)
LAYERS = [0, 4, 8]


def make_teacher(path: str = TEACHER) -> str:
    """A BertForMaskedLM hub folder with BERT-base shapes (HF names and layouts), written once."""
    if os.path.isfile(os.path.join(path, "model.safetensors")):
        return path
    from ckptkit.converters.families.base import NameTable
    from ckptkit.converters.families.bert import BERT, bert_config_to_hf
    from ckptkit.converters.formats.safetensors_io import save_safetensors
    from support.bert import bert_tf_config, bert_tf_variables, tiny_wordpiece_vocab

    table = NameTable(BERT.rules, prefix="bert.")
    tensors = {}
    for name, array in bert_tf_variables(**SHAPE, heads_=("mlm",)).items():
        hf_name, rule, _ = table.tf_to_hf(name)
        tensors[hf_name] = array.T.copy() if rule.transform == "transpose" else array
    tmp = path + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    save_safetensors(os.path.join(tmp, "model.safetensors"), tensors, metadata={"format": "pt"})
    config = bert_config_to_hf(bert_tf_config(**SHAPE), model_class="BertForMaskedLM")
    with open(os.path.join(tmp, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    with open(os.path.join(tmp, "vocab.txt"), "w") as f:
        f.write("\n".join(tiny_wordpiece_vocab(SHAPE["vocab_size"])) + "\n")
    os.replace(tmp, path)
    return path


TRANSFORMERS_PATH = textwrap.dedent("""
    import shutil, sys, torch
    from transformers import AutoConfig, AutoModelForMaskedLM
    teacher_dir, out, layers = sys.argv[1], sys.argv[2], [int(i) for i in sys.argv[3].split(",")]
    teacher = AutoModelForMaskedLM.from_pretrained(teacher_dir)
    config = AutoConfig.from_pretrained(teacher_dir, num_hidden_layers=len(layers))
    student = AutoModelForMaskedLM.from_config(config)
    t, s = teacher.state_dict(), {}
    for name, value in t.items():
        if ".encoder.layer." not in name:
            s[name] = value
    for j, i in enumerate(layers):
        for name, value in t.items():
            if f".encoder.layer.{i}." in name:
                s[name.replace(f".encoder.layer.{i}.", f".encoder.layer.{j}.")] = value
    student.load_state_dict(s, strict=True)
    student.save_pretrained(out)
    shutil.copyfile(teacher_dir + "/vocab.txt", out + "/vocab.txt")
""")


def _paths(out_root: str, arch: str) -> dict[str, list[str]]:
    layers = ",".join(str(i) for i in LAYERS)
    return {
        "ckptkit": [sys.executable, "-m", "ckptkit", "distill", "init", TEACHER, os.path.join(out_root, "ckptkit"),
                    "--layers", layers, "--arch", arch, "--quiet", "--overwrite"],
        "transformers": [sys.executable, "-c", TRANSFORMERS_PATH, TEACHER, os.path.join(out_root, "transformers"),
                         layers],
    }


def _warm(path: str) -> None:
    with open(os.path.join(path, "model.safetensors"), "rb") as f:
        while f.read(1 << 24):
            pass


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--arch", choices=["same", "distilbert"], default="same",
                        help="the ckptkit student's architecture (the transformers path always keeps BERT)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--publish", action="store_true", help="also write benchmarks/results/bench_distill_init.md")
    parser.add_argument("--make-teacher", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.make_teacher:
        make_teacher()
        return 0
    if not os.path.isfile(os.path.join(TEACHER, "model.safetensors")):
        # in a child: Linux carries a parent's peak RSS into children it execs, which would inflate every figure
        subprocess.run([sys.executable, os.path.abspath(__file__), "--make-teacher"], check=True)
    _warm(TEACHER)
    started = machine_line()
    out_root = os.path.join(WORK, "distill-init-out")
    paths = _paths(out_root, args.arch)
    results: dict[str, list[dict]] = {name: [] for name in paths}
    for _ in range(args.rounds):  # interleaved, so both see the same machine state
        for name, cmd in paths.items():
            shutil.rmtree(os.path.join(out_root, name), ignore_errors=True)
            results[name].append(measure(cmd, env={**os.environ, "TOKENIZERS_PARALLELISM": "false",
                                                   "HF_HUB_OFFLINE": "1"}))
    summary = {name: {"wall_s": statistics.median(r["wall_s"] for r in runs),
                      "peak_rss_mb": statistics.median(r["peak_rss_mb"] for r in runs)}
               for name, runs in results.items()}
    size_mb = os.path.getsize(os.path.join(TEACHER, "model.safetensors")) / 2**20
    out_mb = os.path.getsize(os.path.join(out_root, "ckptkit", "model.safetensors")) / 2**20
    base = summary["ckptkit"]
    if args.json:
        print(json.dumps({"teacher_mb": size_mb, "student_mb": out_mb, "rounds": args.rounds, **summary}, indent=2))
        return 0
    print(f"3-layer student (teacher layers {LAYERS}, --arch {args.arch}) of a 12-layer BERT-base hub folder "
          f"({size_mb:.0f} MiB -> {out_mb:.0f} MiB), median of {args.rounds}, fresh process each, warm cache")
    print(f"{'path':<14}{'wall s':>9}{'peak RSS MB':>14}{'wall x':>9}{'RSS x':>8}")
    for name, row in summary.items():
        print(f"{name:<14}{row['wall_s']:>9.2f}{row['peak_rss_mb']:>14.0f}"
              f"{row['wall_s'] / base['wall_s']:>9.1f}{row['peak_rss_mb'] / base['peak_rss_mb']:>8.1f}")
    ok = base["wall_s"] < 2.0 and base["peak_rss_mb"] < 400
    if args.publish:
        rows = [[name, spread([r["wall_s"] for r in results[name]]), f"{row['peak_rss_mb']:.0f}",
                 f"{row['wall_s'] / base['wall_s']:.1f}×", f"{row['peak_rss_mb'] / base['peak_rss_mb']:.1f}×"]
                for name, row in summary.items()]
        method = (f"a 3-layer student (teacher layers {LAYERS}, `--arch {args.arch}`) of a 12-layer BERT-base hub "
                  f"folder ({size_mb:.0f} MiB → {out_mb:.0f} MiB): `ckptkit distill init` vs transformers "
                  f"(load, copy layers by state_dict, save_pretrained), a fresh process each, {args.rounds} "
                  f"interleaved rounds, warm page cache.")
        header = ["path", "wall s, median (range)", "peak RSS MB (median)", "time vs ckptkit", "RSS vs ckptkit"]
        print("wrote", publish("bench_distill_init", machine_start=started, machine_end=machine_line(),
                               method=method, body=markdown_table(header, rows)))
    print(f"ckptkit targets (< 2 s, < 400 MB): {'met' if ok else 'MISSED'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
