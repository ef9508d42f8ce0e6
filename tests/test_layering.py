"""The layering of the package, read from the sources with ``ast`` (nothing is imported or run).

- the library never imports the CLI: no module outside ``ckptkit/cli/`` (and ``__main__``, which *is* the
  command) imports ``ckptkit.cli``, not even inside a function or through a lazy "module:attribute" string;
- a family module (one that builds a ``Family(...)`` under ``ckptkit/converters/families/``) imports nothing
  from another family module: what BERT-like families share lives in a module that is not a family;
- no test factory ships in the package (no module named ``testing*``, nothing imports ``support``/``tests``);
- no module over 400 lines and no function over 80 lines.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "ckptkit"
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 80
# a string that names a module (and maybe an attribute): lazy-import tables and importlib calls use these
MODULE_STRING = re.compile(r"^ckptkit(\.\w+)+(:\w+)?$")


@dataclass(frozen=True)
class Import:
    """One module a source file refers to, and the line that does it."""

    module: str
    line: int


def module_files(package: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every ``.py`` file under ``package``."""
    files = {}
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(package.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        files[name] = path
    return files


def _base_package(module: str, path: Path, level: int) -> str:
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    parts = package.split(".")
    return ".".join(parts[: len(parts) - (level - 1)])


def imports_of(module: str, path: Path, modules: set[str]) -> list[Import]:
    """Every module ``path`` imports, anywhere in the file (function-local and relative imports resolved;
    ``from X import y`` counts as ``X.y`` where that is one of ``modules``, else as ``X``), plus strings such as
    ``"ckptkit.cli.common"`` or ``"ckptkit.converters.families.bert:BERT"`` (lazy imports)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [Import(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(filter(None, [_base_package(module, path, node.level), node.module]))
            found += [Import(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base, node.lineno)
                      for alias in node.names]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and MODULE_STRING.match(node.value):
            found.append(Import(node.value.partition(":")[0], node.lineno))
    return found


def _within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def cli_imports_outside_cli(package: Path = PACKAGE) -> list[str]:
    """``module:line -> imported`` for every import of ``ckptkit.cli`` by a library module."""
    cli, entry_point = f"{package.name}.cli", f"{package.name}.__main__"
    files = module_files(package)
    return sorted({f"{module}:{imp.line} -> {imp.module}"
                   for module, path in files.items() if not _within(module, cli) and module != entry_point
                   for imp in imports_of(module, path, set(files)) if _within(imp.module, cli)})


def family_modules(package: Path = PACKAGE) -> dict[str, Path]:
    """The modules under ``converters/families/`` that build a ``Family(...)``: one per family."""
    families = f"{package.name}.converters.families"
    found = {}
    for module, path in module_files(package).items():
        if not _within(module, families):
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        calls = [node for node in ast.walk(tree) if isinstance(node, ast.Call)]
        if any(getattr(call.func, "id", getattr(call.func, "attr", None)) == "Family" for call in calls):
            found[module] = path
    return found


def cross_family_imports(package: Path = PACKAGE) -> list[str]:
    """``module:line -> imported`` for every family module that imports another family module."""
    families, modules = family_modules(package), set(module_files(package))
    return sorted({f"{module}:{imp.line} -> {imp.module}"
                   for module, path in families.items()
                   for imp in imports_of(module, path, modules)
                   if any(_within(imp.module, other) for other in families if other != module)})


def factories_inside(package: Path = PACKAGE) -> list[str]:
    """Modules named ``testing*`` in the package, and package modules that import the test support."""
    files = module_files(package)
    named = [module for module in files if module.rpartition(".")[2].startswith("testing")]
    importing = {f"{module}:{imp.line} -> {imp.module}"
                 for module, path in files.items() for imp in imports_of(module, path, set(files))
                 if imp.module.partition(".")[0] in ("support", "tests", "conftest")}
    return sorted(named) + sorted(importing)


def oversized(package: Path = PACKAGE) -> list[str]:
    """Modules over MAX_MODULE_LINES lines and functions over MAX_FUNCTION_LINES lines (decorators excluded,
    docstring included), with their sizes."""
    found = []
    for module, path in module_files(package).items():
        text = path.read_text(encoding="utf-8")
        lines = len(text.splitlines())
        if lines > MAX_MODULE_LINES:
            found.append(f"{path.relative_to(package.parent)}: {lines} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    found.append(f"{path.relative_to(package.parent)}:{node.lineno} {node.name}(): {length} lines")
    return found


def test_the_library_never_imports_the_cli():
    found = cli_imports_outside_cli()
    assert not found, "library modules that import the CLI:\n" + "\n".join(found)


def test_a_family_module_imports_no_other_family():
    assert len(family_modules()) >= 3  # bert, bigbird, electra at least: the check below is not vacuous
    found = cross_family_imports()
    assert not found, "family modules that import another family:\n" + "\n".join(found)


def test_no_test_factory_in_the_package():
    found = factories_inside()
    assert not found, "test factories in the package:\n" + "\n".join(found)


def test_no_module_over_400_lines_and_no_function_over_80():
    found = oversized()
    assert not found, "too long:\n" + "\n".join(found)


def test_the_checks_find_what_they_look_for(tmp_path):
    """Each check on a tiny made-up package: it finds every violation planted, and nothing else."""
    pkg = tmp_path / "ckptkit"
    files = {
        "__init__.py": "",
        "__main__.py": "from ckptkit.cli import main\n",
        "cli/__init__.py": "from ckptkit.converters import plan\n",
        "converters/__init__.py": "",
        "converters/plan.py": "def run():\n    from ..cli.common import info\n",
        "converters/lazy.py": "_LAZY = {'x': 'ckptkit.cli.common:info'}\nfrom ckptkit import cli\n",
        "converters/families/__init__.py": "FAMILIES = {'a': 'ckptkit.converters.families.a:A'}\n",
        "converters/families/shared.py": "RULES = []\n",
        "converters/families/a.py": "from .shared import RULES\nA = Family('a')\n",
        "converters/families/b.py": "from . import a\nB = base.Family('b')\n",
        "testing_models.py": "import support.bert\n",
        "big.py": "\n" * 401 + "def f():\n" + "    x = 1\n" * 80,
    }
    for name, text in files.items():
        (pkg / name).parent.mkdir(parents=True, exist_ok=True)
        (pkg / name).write_text(text)
    assert cli_imports_outside_cli(pkg) == ["ckptkit.converters.lazy:1 -> ckptkit.cli.common",
                                            "ckptkit.converters.lazy:2 -> ckptkit.cli",
                                            "ckptkit.converters.plan:2 -> ckptkit.cli.common"]
    assert sorted(family_modules(pkg)) == ["ckptkit.converters.families.a", "ckptkit.converters.families.b"]
    assert cross_family_imports(pkg) == ["ckptkit.converters.families.b:1 -> ckptkit.converters.families.a"]
    assert factories_inside(pkg) == ["ckptkit.testing_models", "ckptkit.testing_models:1 -> support.bert"]
    assert oversized(pkg) == ["ckptkit/big.py: 482 lines", "ckptkit/big.py:402 f(): 81 lines"]
