"""`torchrun --nproc_per_node 2 ... distill train --cache-teacher` on CPU with 2 dataloader workers per rank:
the ranks build disjoint pieces of one cache, stream disjoint shards across epochs, and agree on the weights."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from distill_helpers import make_student, train_tiny_teacher, write_corpus
from test_distill_torchrun import free_port

pytestmark = pytest.mark.xdist_group("distill-ddp")


def test_two_ranks_two_workers_stream_a_cached_corpus(tmp_path):
    corpus = write_corpus(tmp_path / "train.txt", lines=200, seed=3)
    teacher = train_tiny_teacher(tmp_path / "teacher", corpus, steps=5, layers=2)
    student = make_student(teacher, tmp_path / "student", [1])
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    out = tmp_path / "ddp"
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr",
                          "127.0.0.1", "--master_port", str(free_port()), "-m", "ckptkit", "distill", "train",
                          "--teacher", str(teacher), "--student", str(student), "--train-file", str(corpus),
                          "--cache-teacher", "--max-seq-length", "32", "--max-steps", "24", "--save-steps", "12",
                          "--per-device-train-batch-size", "4", "--dataloader-num-workers", "2", "--use-cpu",
                          "--seed", "0", "--output-dir", str(out), "-q", "--json"],
                         capture_output=True, text=True, env=env, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads(run.stdout)
    assert report["world_size"] == 2 and report["steps"] == 24 and report["teacher_cache"]["built_now"]
    meta = json.loads((out / "teacher-cache" / "cache.json").read_text())
    assert meta["complete"] and meta["pieces"] >= 4 and meta["examples"] > 0
    digests = {json.loads((out / "ranks" / f"rank-{r}.json").read_text())["weights_sha256"] for r in range(2)}
    assert len(digests) == 1
    # 24 steps x 2 ranks x 4 blocks is more than one epoch: every rank wrapped around, and each rank's
    # position names pieces of its own shards only (pieces are dealt to 2 ranks x 2 workers)
    positions = [json.loads((out / "checkpoint-24" / f"stream_position-rank{r}.json").read_text()) for r in range(2)]
    assert 2 * 24 * 4 > meta["examples"] and all(p["epoch"] >= 1 for p in positions)
    assert not set(positions[0]["last"]) & set(positions[1]["last"])
