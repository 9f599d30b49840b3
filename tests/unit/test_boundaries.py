"""Production code (the layer and the functions) imports none of the project's tooling: the dev
stack (local), the test and bench tooling (testkit, tests, bench), the tools, the ops CLI."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TOOLING = {"local", "testkit", "tools", "tests", "bench", "ops"}
PRODUCTION = [ROOT / "layers" / "common" / "hibachi", ROOT / "functions"]


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_production_code_never_imports_the_tooling() -> None:
    files = [p for folder in PRODUCTION for p in folder.rglob("*.py")]
    assert len(files) > 20
    found = {str(p.relative_to(ROOT)): sorted(_imports(p) & TOOLING) for p in files}
    assert {path: names for path, names in found.items() if names} == {}


def test_the_check_sees_such_an_import(tmp_path: Path) -> None:
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from testkit.functions import load_function\n    import local.pg\n")
    assert _imports(module) & TOOLING == {"testkit", "local"}


def _tests_imports(path: Path) -> set[str]:
    """The modules of tests/ that ``path`` imports (full dotted names)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names if alias.name.startswith("tests."))
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and node.module.startswith("tests"):
            names.add(node.module)
    return names


def test_tests_import_only_tests_support() -> None:
    """A test module or conftest imports helpers from tests/support, never another test module or a
    conftest (builders there, fixtures in conftest.py)."""
    files = sorted((ROOT / "tests").rglob("*.py"))
    assert len(files) > 50
    found = {
        str(p.relative_to(ROOT)): sorted(n for n in _tests_imports(p) if not n.startswith("tests.support"))
        for p in files
    }
    assert {path: names for path, names in found.items() if names} == {}


def test_the_import_contracts_cover_every_package() -> None:
    """``make lint``'s import contracts (lint-imports) see every package of the tree, so a new
    folder of Python code cannot sit outside the layers or hide a cycle."""
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["importlinter"]
    packages = {p.parent.name for p in ROOT.glob("*/__init__.py")} | {"hibachi"}
    assert set(config["root_packages"]) == packages
    (layers,) = [c["layers"] for c in config["contracts"] if c["type"] == "layers"]
    assert {name.strip() for layer in layers for name in layer.split("|")} == packages
