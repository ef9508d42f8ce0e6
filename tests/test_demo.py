"""The README's first command: `make demo` runs examples/demo.sh on the bundled tiny checkpoint."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_demo_script_runs_end_to_end(tmp_path):
    env = {**os.environ, "CKPTKIT_DEMO_OUT": str(tmp_path / "demo-out"), "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(["bash", str(ROOT / "examples" / "demo.sh"), str(Path(sys.executable).parent)],
                            capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    printed = result.stdout + result.stderr  # reports go to stderr, results to stdout
    for line in ("global_step: 20000", "(PASS)", "loaded BertForPreTraining", "round trip verified"):
        assert line in printed, line
    assert (tmp_path / "demo-out" / "tiny-bert" / "model.safetensors").is_file()
