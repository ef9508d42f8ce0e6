"""README figures come from the benchmark scripts (issue #18 item 6).

Each ``<!-- bench:NAME -->`` block of README.md is exactly ``benchmarks/results/NAME.md``, which only
``python benchmarks/NAME.py --publish`` writes; every published result is shown; and outside those
blocks the README states no measured time, ratio or peak memory of its own.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")
RESULTS = ROOT / "benchmarks" / "results"
BLOCK = re.compile(r"<!-- bench:(?P<name>[\w.-]+) -->\n(?P<body>.*?)<!-- /bench:(?P=name) -->", re.S)

# What a measured figure looks like in prose: seconds, a speed-up or slow-down, peak memory.
MEASURED = re.compile(r"\b\d+(\.\d+)? ?s\b(?! of)|\b\d+(\.\d+)?× (faster|slower|less|more|the)|"
                      r"\b\d+(\.\d+)? ?(MB|MiB|GB) (peak|RSS)|peak RSS (of )?~?\d")


def _update_readme():
    spec = importlib.util.spec_from_file_location("update_readme", ROOT / "benchmarks" / "update_readme.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_every_benchmark_block_is_the_scripts_published_output():
    blocks = {m.group("name"): m.group("body") for m in BLOCK.finditer(README)}
    assert blocks, "README.md shows no benchmark results"
    for name, body in blocks.items():
        assert (ROOT / "benchmarks" / f"{name.split('-')[0]}.py").is_file(), name
        published = RESULTS / f"{name}.md"
        assert published.is_file(), f"{name}: run python benchmarks/{name.split('-')[0]}.py --publish"
        assert body == published.read_text(encoding="utf-8"), f"{name}: run python benchmarks/update_readme.py"
    assert _update_readme().updated(README) == README


def test_every_published_result_is_in_the_readme():
    shown = {m.group("name") for m in BLOCK.finditer(README)}
    published = {path.stem for path in RESULTS.glob("*.md")}
    assert published <= shown, f"published but not shown: {sorted(published - shown)}"


def test_published_results_say_when_where_and_how():
    for path in RESULTS.glob("*.md"):
        text = path.read_text(encoding="utf-8")
        assert text.startswith("*`python benchmarks/"), path.name
        for field in ("start: ", "end: ", "load average", "cores"):
            assert field in text, (path.name, field)


def test_no_measured_figure_outside_the_published_blocks():
    prose = BLOCK.sub("", README)
    found = [m.group(0) for m in MEASURED.finditer(prose)]
    assert not found, f"figures in README.md that no benchmark script printed: {found}"


def test_the_figure_pattern_finds_figures():
    for text in ("took 1.84 s", "13.5× faster", "220 MB peak", "peak RSS 276", "4.7× the floor"):
        assert MEASURED.search(text), text
    for text in ("24 layers", "hidden 1024", "2 cores", "1e-5", "128×128 tiles"):
        assert not MEASURED.search(text), text
