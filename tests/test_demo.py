"""The README's first command: `make demo` runs examples/demo.sh on the bundled tiny checkpoint."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


# What `make demo` does not install (it installs `.[verify]`): the demo must run as if they were absent.
NOT_IN_DEMO_INSTALL = ("tensorflow", "keras", "datasets", "accelerate", "matplotlib", "sentence_transformers",
                       "pytest", "fsspec", "gcsfs", "s3fs", "moto")

HIDE_PACKAGES = """
import sys
HIDDEN = set({names!r})
class _Hide:
    def __init__(self, finder):
        self.finder = finder
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in HIDDEN:
            return None
        return self.finder.find_spec(name, path, target)
    def __getattr__(self, attribute):
        return getattr(self.finder, attribute)
sys.meta_path[:] = [_Hide(finder) for finder in sys.meta_path]
"""


def test_demo_script_runs_end_to_end(tmp_path):
    hide = tmp_path / "hide"
    hide.mkdir()
    (hide / "sitecustomize.py").write_text(HIDE_PACKAGES.format(names=NOT_IN_DEMO_INSTALL))
    env = {**os.environ, "CKPTKIT_DEMO_OUT": str(tmp_path / "demo-out"), "HF_HUB_OFFLINE": "1",
           "PYTHONPATH": str(hide)}
    result = subprocess.run(["bash", str(ROOT / "examples" / "demo.sh"), str(Path(sys.executable).parent)],
                            capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    printed = result.stdout + result.stderr  # reports go to stderr, results to stdout
    for line in ("global_step: 20000", "(PASS)", "loaded BertForPreTraining", "round trip verified"):
        assert line in printed, line
    assert (tmp_path / "demo-out" / "tiny-bert" / "model.safetensors").is_file()
