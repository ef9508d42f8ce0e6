"""`torchrun --nproc_per_node 2 -m ckptkit distill train` on CPU (gloo): DDP replicas agree, match one process,
and `accelerate launch` of the same command gives the same result.

Same global batch (2 x 4 vs 1 x 8), same seed and data order, deterministic masking and no dropout:
the two runs differ only by how gradients are averaged (mean of per-rank means vs one mean).
The per-term losses logged under DDP are averaged over both ranks.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import pytest
import torch
from safetensors.torch import load_file

from distill_helpers import make_student, train_tiny_teacher, write_corpus

pytestmark = pytest.mark.xdist_group("distill-ddp")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_process_ddp_matches_single_process(tmp_path):
    corpus = write_corpus(tmp_path / "train.txt", lines=300, seed=5)
    teacher = train_tiny_teacher(tmp_path / "teacher", corpus, steps=20, layers=2)
    student = make_student(teacher, tmp_path / "student", [1])
    common = ["distill", "train", "--teacher", str(teacher), "--student", str(student), "--train-file", str(corpus),
              "--max-seq-length", "32", "--max-steps", "6", "--learning-rate", "1e-3", "--use-cpu", "--seed", "0",
              "--logging-steps", "1", "-q", "--json"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    ddp = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                          "--master_addr", "127.0.0.1", "--master_port", str(free_port()), "-m", "ckptkit", *common,
                          "--output-dir", str(tmp_path / "ddp"), "--per-device-train-batch-size", "4"],
                         capture_output=True, text=True, env=env, timeout=300)
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    report = json.loads(ddp.stdout)  # only the main process prints
    assert report["world_size"] == 2 and report["global_batch_size"] == 8 and report["steps"] == 6
    digests = {json.loads((tmp_path / "ddp" / "ranks" / f"rank-{r}.json").read_text())["weights_sha256"]
               for r in range(2)}
    assert len(digests) == 1, "DDP replicas ended with different weights"

    single = subprocess.run([sys.executable, "-m", "ckptkit", *common, "--output-dir", str(tmp_path / "single"),
                             "--per-device-train-batch-size", "8"], capture_output=True, text=True, env=env,
                            timeout=300)
    assert single.returncode == 0, single.stderr[-3000:]
    a, b = load_file(tmp_path / "ddp" / "model.safetensors"), load_file(tmp_path / "single" / "model.safetensors")
    start = load_file(student / "model.safetensors")
    moved = max(float((b[name] - start[name]).abs().max()) for name in b)   # how far training went
    differ = max(float((a[name] - b[name]).abs().max()) for name in a)      # how far the two runs are apart
    print(f"max update {moved:.3g}, max DDP-vs-single difference {differ:.3g}")
    assert moved > 1e-3 and differ < 0.02 * moved

    # `accelerate launch` (its multi-process launcher, on CPU) runs the same command unchanged: same DDP result.
    accelerate = os.path.join(os.path.dirname(sys.executable), "accelerate")
    launched = subprocess.run([accelerate, "launch", "--multi_gpu", "--num_processes", "2", "--num_machines", "1",
                               "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port",
                               str(free_port()), "-m", "ckptkit", *common, "--output-dir", str(tmp_path / "accelerate"),
                               "--per-device-train-batch-size", "4"], capture_output=True, text=True, env=env,
                              timeout=300)
    assert launched.returncode == 0, launched.stderr[-3000:]
    assert json.loads(launched.stdout)["world_size"] == 2
    c = load_file(tmp_path / "accelerate" / "model.safetensors")
    assert max(float((a[name] - c[name]).abs().max()) for name in a) < 1e-6

    # Step 1 runs before any update, on the same 8 blocks: the per-term losses logged under DDP are the
    # mean over both ranks (rank 0 alone saw only half the blocks), so they equal the single run's.
    first = {name: json.loads((tmp_path / name / "train_log.jsonl").read_text().splitlines()[0])
             for name in ("ddp", "single")}
    for key in ("loss_ce", "loss_cos"):  # means over every position: equal counts on both ranks
        assert first["ddp"][key] == pytest.approx(first["single"][key], rel=2e-5, abs=1e-6), key
    for key in ("loss", "loss_mlm", "top1_agreement"):  # means over masked positions: per-rank counts differ
        assert first["ddp"][key] == pytest.approx(first["single"][key], rel=0.05), key
