"""The command starts fast and imports nothing heavy for --help."""

import subprocess
import sys
import time


def test_help_imports_no_heavy_framework():
    code = ("import sys; from ckptkit.cli import cli, COMMANDS, load_command\n"
            "import click\n"
            "for spec in COMMANDS.values():\n"
            "    try: load_command(spec)\n"
            "    except ImportError: pass\n"
            "heavy = [m for m in ('torch', 'tensorflow', 'transformers', 'datasets') if m in sys.modules]\n"
            "print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_help_is_fast():
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "ckptkit", "--help"], capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    assert out.returncode == 0, out.stderr
    assert "Usage" in out.stdout
    assert elapsed < 3.0  # generous for a loaded 2-core CI box; typically ~0.15 s
