"""Deployment size per function, unzipped: its code folder, its own requirements (if any), the
layer's installed dependencies and the hibachi package.

Dependencies are installed with ``pip install --no-compile -r <requirements> --target <dir>`` for
the host platform (x86_64 Linux wheels here, close to but not exactly Lambda's manylinux build), once
per requirements file (cached under ``.local/bench``). When pip cannot install (offline), the sizes
come from the files the same pinned distributions installed in this virtualenv (their RECORD).
``__pycache__`` folders are not counted. boto3/botocore are not counted: the Lambda runtime has them.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

from bench import FUNCTIONS, LAYER
from bench.env import STATE

MB = 1024 * 1024
LAMBDA_UNZIPPED_LIMIT_MB = 250


def tree_size(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(
        p.stat().st_size for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    )


@dataclass
class Installed:
    requirements: Path
    path: Path | None
    method: str
    bytes: int = 0
    packages: list[tuple[str, int]] = field(default_factory=list)  # biggest top-level entries


PIP_FLAGS = ("--quiet", "--disable-pip-version-check", "--no-compile", "--no-input")


def _pip_target(requirements: Path) -> Installed:
    digest = hashlib.sha256(requirements.read_bytes() + sys.version.encode()).hexdigest()[:12]
    target = STATE / f"site-{requirements.parent.name}-{digest}"
    if not (target / ".complete").exists():
        shutil.rmtree(target, ignore_errors=True)
        command = [sys.executable, "-m", "pip", "install", *PIP_FLAGS, "-r", str(requirements), "--target", str(target)]
        proc = subprocess.run(command, capture_output=True, text=True, timeout=600)
        if proc.returncode != 0:
            shutil.rmtree(target, ignore_errors=True)
            raise RuntimeError(proc.stderr[-300:])
        (target / ".complete").touch()
    entries = sorted(((p.name, tree_size(p)) for p in target.iterdir() if p.name != ".complete"), key=lambda kv: -kv[1])
    return Installed(
        requirements, target, "pip install --target (host platform)", sum(size for _, size in entries), entries
    )


RUNTIME_PROVIDED = ("boto3", "botocore", "s3transfer", "jmespath", "python-dateutil", "urllib3", "six")


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_closure(*requirements: Path) -> set[str]:
    """Normalized names of the distributions the requirements files install, dependencies included
    (resolved from this virtualenv's metadata, extras and markers honoured)."""
    from packaging.requirements import Requirement

    seen: set[str] = set()
    todo: list[tuple[str, set[str]]] = []
    for path in requirements:
        for line in path.read_text().splitlines():
            line = line.split("#", 1)[0].strip().removesuffix("\\").strip()  # a lock: "pkg==1.0 \\" then --hash lines
            if line and not line.startswith("-"):
                req = Requirement(line)
                todo.append((req.name, set(req.extras)))
    while todo:
        name, extras = todo.pop()
        if _normalize(name) in seen:
            continue
        try:
            dist = metadata.distribution(name)
        except metadata.PackageNotFoundError:
            continue
        seen.add(_normalize(name))
        for spec in dist.requires or []:
            req = Requirement(spec)
            if req.marker is None or any(req.marker.evaluate({"extra": e}) for e in extras or {""}):
                todo.append((req.name, set(req.extras)))
    return seen


def _from_venv(requirements: Path) -> Installed:
    """The dependency closure of the requirements, from this virtualenv's installed files."""
    sizes: dict[str, int] = {}
    for name in requirement_closure(requirements) - {_normalize(n) for n in RUNTIME_PROVIDED}:
        dist = metadata.distribution(name)
        files = [Path(str(dist.locate_file(f))) for f in dist.files or [] if "__pycache__" not in str(f)]
        sizes[name] = sum(f.stat().st_size for f in files if f.exists())
    entries = sorted(sizes.items(), key=lambda kv: -kv[1])
    return Installed(
        requirements,
        None,
        "files of the same pinned distributions in .venv (pip unavailable)",
        sum(sizes.values()),
        entries,
    )


def install(requirements: Path) -> Installed:
    try:
        return _pip_target(requirements)
    except (RuntimeError, subprocess.TimeoutExpired, OSError):
        return _from_venv(requirements)


@dataclass
class FunctionSize:
    function: str
    code: int
    own_requirements: int
    layer_deps: int
    hibachi: int

    @property
    def total(self) -> int:
        return self.code + self.own_requirements + self.layer_deps + self.hibachi


def measure(functions: list[str]) -> tuple[list[FunctionSize], Installed]:
    layer = install(LAYER / "requirements.txt")
    hibachi = tree_size(LAYER / "hibachi")
    sizes = []
    for fn in functions:
        folder = FUNCTIONS / fn
        own = folder / "requirements.txt"
        own_bytes = install(own).bytes if own.exists() else 0
        code = tree_size(folder) - (own.stat().st_size if own.exists() else 0)
        sizes.append(FunctionSize(fn, code, own_bytes, layer.bytes, hibachi))
    return sizes, layer
