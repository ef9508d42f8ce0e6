"""Copy every benchmarks/results/<script>.md into README.md between its markers.

    python benchmarks/update_readme.py          # rewrite README.md
    python benchmarks/update_readme.py --check  # exit 1 when README.md is out of date

The README holds ``<!-- bench:<script> -->`` ... ``<!-- /bench:<script> -->`` for each script whose
figures it shows; the text between them is replaced by the script's last ``--publish`` output.
"""

from __future__ import annotations

import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "benchmarks", "results")
BLOCK = re.compile(r"(<!-- bench:(?P<name>[\w.-]+) -->\n)(?P<body>.*?)(<!-- /bench:(?P=name) -->)", re.S)


def result_text(name: str) -> str:
    path = os.path.join(RESULTS, f"{name}.md")
    if not os.path.exists(path):
        sys.exit(f"update_readme: README.md shows {name} but {path} does not exist: "
                 f"run python benchmarks/{name}.py --publish")
    with open(path, encoding="utf-8") as handle:
        return handle.read()


def updated(readme: str) -> str:
    return BLOCK.sub(lambda m: m.group(1) + result_text(m.group("name")) + m.group(4), readme)


def main() -> None:
    path = os.path.join(ROOT, "README.md")
    with open(path, encoding="utf-8") as handle:
        readme = handle.read()
    new = updated(readme)
    if "--check" in sys.argv[1:]:
        sys.exit(0 if new == readme else "README.md's benchmark blocks differ from benchmarks/results/: "
                                          "run python benchmarks/update_readme.py")
    with open(path, "w", encoding="utf-8") as handle:
        handle.write(new)


if __name__ == "__main__":
    main()
