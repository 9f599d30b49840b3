"""The size gate of ``make lint``: no function over cyclomatic complexity 15 or 60 lines, in every
Python file of the tree, unless ``[tool.function-gate.exempt]`` in pyproject.toml names it with a
reason.

    python -m tools.function_gate [PATH ...]      # default: the whole tree

radon measures both (``cc_visit``: McCabe's complexity and each block's first and last line), as
the cookbook's ``make complex`` does with radon/xenon; ruff's C901 gives the same complexity but no
length, and PLR0915 counts statements, not lines. A line is any line of the function, its docstring
and comments included: what a reader has to scroll through. An exemption that no longer matches a
function over a limit is reported, to be deleted.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

from radon.complexity import cc_visit
from radon.visitors import Class, Function

ROOT = Path(__file__).resolve().parent.parent
MAX_COMPLEXITY = 15
MAX_LINES = 60


def config() -> dict[str, dict[str, str]]:
    """``exempt``: ``path::qualified.name`` -> the reason it may exceed a limit; ``exempt-paths``:
    folder -> the reason the gate skips it."""
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    gate: dict[str, dict[str, str]] = pyproject.get("tool", {}).get("function-gate", {})
    return gate


def python_files(paths: list[str], skip: tuple[str, ...]) -> list[Path]:
    """The tracked Python files (under ``paths``, default all), less the folders in ``skip``."""
    out = subprocess.run(["git", "ls-files", "-z", "--", *paths], cwd=ROOT, capture_output=True, check=True).stdout
    names = [name for name in out.decode().split("\0") if name.endswith(".py") and not name.startswith(skip)]
    return [ROOT / name for name in names]


def _functions(blocks: list[Function | Class], prefix: str = "") -> Iterator[tuple[str, Function]]:
    for block in blocks:
        if not prefix and isinstance(block, Function) and block.is_method:
            continue  # cc_visit lists methods twice: at the top and in their class
        name = f"{prefix}{block.name}"
        if isinstance(block, Class):
            yield from _functions(block.methods, f"{name}.")
            yield from _functions(block.inner_classes, f"{name}.")
        else:
            yield name, block
            yield from _functions(block.closures, f"{name}.")


def _asserts(tree: ast.Module) -> dict[int, int]:
    """First line of each function -> the assert statements in its body."""
    return {
        node.lineno: sum(isinstance(n, ast.Assert) for n in ast.walk(node))
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    }


def findings(path: Path) -> dict[str, str]:
    """``path::name`` -> what exceeds a limit, for each function of ``path`` over one. In tests/
    an assert is a check, not a branch: radon counts each one, the gate does not."""
    rel = path.relative_to(ROOT).as_posix()
    source = path.read_text(encoding="utf-8")
    asserts = _asserts(ast.parse(source)) if rel.startswith("tests/") else {}
    out: dict[str, str] = {}
    for name, fn in _functions(cc_visit(source)):
        lines = fn.endline - fn.lineno + 1
        complexity = fn.complexity - asserts.get(fn.lineno, 0)
        over = [f"complexity {complexity}"] if complexity > MAX_COMPLEXITY else []
        over += [f"{lines} lines"] if lines > MAX_LINES else []
        if over:
            out[f"{rel}::{name}"] = f"{rel}:{fn.lineno} {name}: {', '.join(over)}"
    return out


def main(argv: list[str] | None = None) -> int:
    paths = sys.argv[1:] if argv is None else argv
    gate = config()
    exempt = gate.get("exempt", {})
    found: dict[str, str] = {}
    for path in python_files(paths, tuple(gate.get("exempt-paths", {}))):
        found.update(findings(path))
    failures = [text for key, text in sorted(found.items()) if key not in exempt]
    stale = [key for key in sorted(exempt) if key not in found and (not paths or key.startswith(tuple(paths)))]
    for text in failures:
        print(f"{text} (limits: complexity {MAX_COMPLEXITY}, {MAX_LINES} lines): split it", file=sys.stderr)
    for key in stale:
        print(f"{key}: exempt in pyproject.toml but within the limits now (or gone): delete its line")
    print(f"function gate: {len(found)} over the limits, {len(found) - len(failures)} exempt with a reason")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
