"""Cold starts: a fresh ``python`` per run imports the handler and serves its first request, next to
the import floor of the third-party modules that handler pulls in; and ``python -X importtime``.

Per function (median of ``runs``):
- *cold start*: perf_counter inside the child, from before ``import app`` to after the first
  response (the database connection, and whatever the first request imports lazily, included),
  and the wall time of the whole process (interpreter start-up and exit included);
- *floor*: a fresh ``python -c "import a, b, …"`` of exactly the third-party top-level packages
  found in ``sys.modules`` after the handler's import (stdlib and hibachi excluded), timed the same
  two ways; also the floor of every third-party *module* it imported (submodules included), which
  shows how much of the gap is third-party submodules rather than our code;
- *no .pyc*: hibachi and app.py from a copy without ``__pycache__`` (a read-only layer that ships
  no bytecode compiles them on every cold start).
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import FUNCTIONS, LAYER
from bench.env import STATE

CHILD = (Path(__file__).with_name("_coldchild.py")).read_text(encoding="utf-8")
TIMEOUT = 60


def _median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def tops(modules: list[str]) -> list[str]:
    """Top-level package names, in first-import order."""
    return list(dict.fromkeys(name.split(".")[0] for name in modules))


@dataclass
class Floor:
    modules: list[str]
    inside_ms: float = float("nan")
    wall_ms: float = float("nan")
    error: str = ""


@dataclass
class ColdResult:
    function: str
    first_request: str
    import_ms: float = float("nan")
    first_ms: float = float("nan")
    total_ms: float = float("nan")
    wall_ms: float = float("nan")
    outcome: Any = None
    third_import: list[str] = field(default_factory=list)
    third_first: list[str] = field(default_factory=list)
    floor: Floor | None = None  # top-level packages after import (the target's floor)
    floor_first: Floor | None = None  # top-level packages after the first response, when more
    floor_modules: Floor | None = None  # every third-party module after import
    nopyc_total_ms: float = float("nan")
    nopyc_wall_ms: float = float("nan")
    error: str = ""

    @property
    def ratio(self) -> float:
        return self.total_ms / self.floor.inside_ms if self.floor and self.floor.inside_ms else float("nan")

    @property
    def wall_ratio(self) -> float:
        return self.wall_ms / self.floor.wall_ms if self.floor and self.floor.wall_ms else float("nan")

    @property
    def lazy(self) -> list[str]:
        """Third-party packages the first request imported (not there after the import)."""
        return [t for t in tops(self.third_first) if t not in tops(self.third_import)]


def _run_child(cwd: Path, env: dict[str, str], event_file: Path) -> dict[str, Any]:
    """One cold start in a fresh process: ``_coldchild.py``'s figures, and ``wall_ms`` (the whole process),
    ``cpu_ms`` (user + system) and ``to_response_ms`` (from the spawn to the first response)."""
    with tempfile.NamedTemporaryFile("r", suffix=".json", dir=STATE, delete=False) as out:
        out_path = out.name
    try:
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        proc = subprocess.run(
            [sys.executable, "-c", CHILD, str(event_file), out_path],
            cwd=cwd,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            timeout=TIMEOUT,
        )
        wall = (time.perf_counter() - start) * 1000
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if proc.returncode != 0:
            raise RuntimeError(proc.stderr.decode(errors="replace")[-600:])
        child: dict[str, Any] = json.loads(Path(out_path).read_text(encoding="utf-8"))
        child["wall_ms"] = wall
        # the child's CPU time (user + system): steadier than wall time on a loaded machine
        child["cpu_ms"] = (after.ru_utime - usage.ru_utime + after.ru_stime - usage.ru_stime) * 1000
        # from the spawn to the first response: the whole process without its exit (Lambda never exits a
        # cold environment; a process that frees less at exit would look faster in ``wall`` alone)
        child["to_response_ms"] = (child["responded_at"] - start) * 1000
        return child
    finally:
        Path(out_path).unlink(missing_ok=True)


TIMED = "import importlib, time\nt0 = time.perf_counter()\n{}\nprint((time.perf_counter() - t0) * 1000)\n"


def timed(body: str, runs: int, cwd: Path, env: dict[str, str]) -> tuple[list[float], list[float]]:
    """``body`` in ``runs`` fresh processes after one more (it only warms the page cache): the ms each
    took in process, and each process's wall ms. RuntimeError when one fails."""
    inside, walls = [], []
    for i in range(runs + 1):
        start = time.perf_counter()
        code = TIMED.format(body)
        proc = subprocess.run([sys.executable, "-c", code], cwd=cwd, env=env, capture_output=True, timeout=TIMEOUT)
        if proc.returncode != 0:
            raise RuntimeError(proc.stderr.decode(errors="replace")[-300:])
        if i:
            walls.append((time.perf_counter() - start) * 1000)
            inside.append(float(proc.stdout.decode().strip().splitlines()[-1]))
    return inside, walls


def _floor(modules: list[str], cwd: Path, env: dict[str, str], runs: int, loop: bool = False) -> Floor:
    floor = Floor(modules)
    body = "".join(f"import {m}\n" for m in modules)
    if loop:  # every module, submodules included, in the order the handler imported them
        body = f"for name in {modules!r}:\n    try:\n        importlib.import_module(name)\n"
        body += "    except Exception:\n        pass"
    try:
        inside, walls = timed(body, runs, cwd, env)
    except RuntimeError as exc:
        floor.error = str(exc)
        return floor
    floor.inside_ms, floor.wall_ms = _median(inside), _median(walls)
    return floor


def _nopyc_copy(function: str) -> tuple[Path, Path]:
    base = STATE / "nopyc"
    shutil.rmtree(base, ignore_errors=True)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    shutil.copytree(LAYER / "hibachi", base / "layer" / "hibachi", ignore=ignore)
    shutil.copytree(FUNCTIONS / function, base / "fn", ignore=ignore)
    return base / "layer", base / "fn"


def measure(
    function: str,
    first_request: str,
    env: dict[str, str],
    event_for_run: Callable[[int], dict[str, Any]],
    *,
    runs: int = 10,
    nopyc_runs: int = 5,
) -> ColdResult:
    """Cold-start ``function`` ``runs`` times (after one unmeasured run) and measure its floors.
    ``event_for_run(i)``: a fresh event per run (a repeated one would take another path)."""
    STATE.mkdir(parents=True, exist_ok=True)
    result = ColdResult(function, first_request)
    cwd = FUNCTIONS / function
    event_file = STATE / f"cold-{function}.json"
    samples: list[dict[str, Any]] = []
    try:
        for i in range(runs + 1):
            event_file.write_text(json.dumps(event_for_run(i)), encoding="utf-8")
            samples.append(_run_child(cwd, env, event_file))
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        result.error = str(exc)[-600:]
        return result
    samples = samples[1:]
    for key in ("import_ms", "first_ms", "total_ms", "wall_ms"):
        setattr(result, key, _median([c[key] for c in samples]))
    result.outcome = samples[-1]["outcome"]
    result.third_import = samples[-1]["third_party_import"]
    result.third_first = samples[-1]["third_party_first"]

    result.floor = _floor(tops(result.third_import), cwd, env, runs)
    if tops(result.third_first) != tops(result.third_import):
        result.floor_first = _floor(tops(result.third_first), cwd, env, runs)
    result.floor_modules = _floor(result.third_import, cwd, env, max(3, runs // 2), loop=True)

    if nopyc_runs:
        layer, fn = _nopyc_copy(function)
        nenv = {**env, "PYTHONPATH": str(layer), "PYTHONDONTWRITEBYTECODE": "1"}
        totals, walls = [], []
        try:
            for i in range(nopyc_runs):
                event_file.write_text(json.dumps(event_for_run(100 + i)), encoding="utf-8")
                child = _run_child(fn, nenv, event_file)
                totals.append(child["total_ms"])
                walls.append(child["wall_ms"])
        except (RuntimeError, subprocess.TimeoutExpired) as exc:
            result.error = f"no-pyc: {str(exc)[-300:]}"
        result.nopyc_total_ms, result.nopyc_wall_ms = _median(totals), _median(walls)
    event_file.unlink(missing_ok=True)
    return result


# -- python -X importtime --------------------------------------------------------------------------------
@dataclass
class ImportEntry:
    name: str
    self_us: float
    cumulative_us: float
    parent: str | None


def _parse_importtime(stderr: str) -> list[ImportEntry]:
    """``import time: self | cumulative | <indent>name`` lines (post-order) with their parents."""
    entries: list[ImportEntry] = []
    pending: list[tuple[int, ImportEntry]] = []  # (depth, entry) not yet given a parent
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_text, cumulative_text, name = line.split(":", 1)[1].split("|", 2)
        depth = (len(name) - len(name.lstrip(" ")) - 1) // 2  # " " + two spaces per level
        entry = ImportEntry(name.strip(), float(self_text), float(cumulative_text), None)
        while pending and pending[-1][0] > depth:
            child_depth, child = pending.pop()
            if child_depth == depth + 1:
                child.parent = entry.name
        pending.append((depth, entry))
        entries.append(entry)
    return entries


@dataclass
class ImportProfile:
    function: str
    total_ms: float
    by_package: list[tuple[str, float]]  # self time summed per top-level package (stdlib grouped)
    entry_points: list[tuple[str, str, float]]  # (module, imported by, cumulative ms): package entry points


def importtime(
    function: str, env: dict[str, str], runs: int = 5, *, event: dict[str, Any] | None = None
) -> ImportProfile:
    """The ``-X importtime`` profile of ``import app`` or, with ``event``, of the whole cold start
    (import and the first request: what its first request imports lazily included)."""
    stdlib = set(sys.stdlib_module_names)
    per_run: list[list[ImportEntry]] = []
    event_file = STATE / f"importtime-{function}.json"
    if event is not None:
        STATE.mkdir(parents=True, exist_ok=True)
        event_file.write_text(json.dumps(event), encoding="utf-8")
    for _ in range(runs + 1):
        args = ["-c", "import app"] if event is None else ["-c", CHILD, str(event_file), os.devnull]
        proc = subprocess.run(
            [sys.executable, "-X", "importtime", *args],
            cwd=FUNCTIONS / function,
            env=env,
            capture_output=True,
            timeout=TIMEOUT,
            text=True,
        )
        per_run.append(_parse_importtime(proc.stderr))
    event_file.unlink(missing_ok=True)
    per_run = per_run[1:]

    def group(name: str) -> str:
        top = name.split(".")[0]
        return "(stdlib)" if top in stdlib or (top.startswith("_") and top.lstrip("_") in stdlib) else top

    totals: list[float] = []
    packages: dict[str, list[float]] = {}
    points: dict[tuple[str, str], list[float]] = {}
    for entries in per_run:
        totals.append(sum(e.self_us for e in entries) / 1000)
        run_packages: dict[str, float] = {}
        for e in entries:
            run_packages[group(e.name)] = run_packages.get(group(e.name), 0.0) + e.self_us / 1000
            if e.parent is None or group(e.parent) != group(e.name):
                key = (e.name, e.parent or "-")
                points.setdefault(key, []).append(e.cumulative_us / 1000)
        for k, v in run_packages.items():
            packages.setdefault(k, []).append(v)
    by_package = sorted(((k, _median(v)) for k, v in packages.items()), key=lambda kv: -kv[1])
    entry_points = sorted(
        ((m, p, _median(v)) for (m, p), v in points.items() if len(v) == len(per_run)), key=lambda t: -t[2]
    )
    return ImportProfile(function, _median(totals), by_package, entry_points[:12])


_IAM_TOKEN_CODE = {
    # what hibachi.db does on the first connection on AWS (no network call)
    "hibachi": (
        "from hibachi import sigv4\n"
        "sigv4.rds_auth_token('proxy.example.internal', 5432, 'hibachi_app', 'us-east-1', sigv4.resolve_credentials())"
    ),
    # what it did before (and what a typical handler does)
    "boto3": (
        "import boto3\nboto3.client('rds', region_name='us-east-1').generate_db_auth_token("
        "DBHostname='proxy.example.internal', Port=5432, DBUsername='hibachi_app', Region='us-east-1')"
    ),
}


def iam_token_cost(env: dict[str, str], runs: int = 5, how: str = "hibachi") -> float:
    """ms, in a fresh process, to presign an RDS IAM token: ``how`` = ``hibachi`` (``hibachi.sigv4``,
    what ``hibachi.db`` does on the first connection on AWS) or ``boto3`` (importing it, a client)."""
    clean_env = {k: v for k, v in env.items() if k != "AWS_ENDPOINT_URL"}
    try:
        return _median(timed(_IAM_TOKEN_CODE[how], runs, Path.cwd(), clean_env)[0])
    except RuntimeError:
        return float("nan")


# -- against the typical handler ---------------------------------------------------------------------------
TYPICAL = Path(__file__).with_name("typical")


@dataclass
class Comparison:
    """Our handler (A) and the typical one (B, ``bench/typical/<function>``) cold-started in turns,
    A B A B ..., each a fresh process doing import + the first request: per pair, each side's figures
    (``_run_child``'s: ``wall_ms``, ``to_response_ms``, ``total_ms`` in process, ``cpu_ms``, ``outcome``)."""

    function: str
    first_request: str
    ours: list[dict[str, Any]] = field(default_factory=list)
    typical: list[dict[str, Any]] = field(default_factory=list)
    profile: ImportProfile | None = None  # ours, import + first request
    load: tuple[str, str] = ("", "")  # the load average before and after
    error: str = ""

    @property
    def pairs(self) -> int:
        return len(self.ours)

    def median(self, side: str, key: str = "wall_ms") -> float:
        return _median([run[key] for run in getattr(self, side)])

    def ratios(self, key: str = "wall_ms") -> list[float]:
        return [a[key] / b[key] for a, b in zip(self.ours, self.typical, strict=True) if b[key]]

    def ratio(self, key: str = "wall_ms") -> float:
        """The median of the per-pair ratios, of whole-process wall time unless ``key`` says otherwise."""
        return _median(self.ratios(key))


def has_typical(function: str) -> bool:
    return (TYPICAL / function / "app.py").exists()


def compare(
    cs: Any,
    env: dict[str, str],
    fixtures: dict[str, Any],
    tag: str,
    *,
    pairs: int = 10,
    importtime_runs: int = 3,
) -> Comparison:
    """Cold-start ours and the typical handler of ``cs`` (a ``bench.operations.ColdStart``) in
    turns, ``pairs`` measured pairs after one unmeasured pair; both get the same event (a fresh one
    per pair: ``cs.event(fixtures, f"{tag}-{i}")``)."""
    from bench.env import load

    function = cs.function
    STATE.mkdir(parents=True, exist_ok=True)
    result = Comparison(function, cs.first_request, load=(load(), ""))
    event_file = STATE / f"compare-{function}.json"
    try:
        for i in range(pairs + 1):
            event = cs.event(fixtures, f"{tag}-{i}")
            event_file.write_text(json.dumps(event), encoding="utf-8")
            ours = _run_child(FUNCTIONS / function, env, event_file)
            typical = _run_child(TYPICAL / function, env, event_file)
            if ours["outcome"] != typical["outcome"]:  # not the same work: no ratio to report
                raise RuntimeError(
                    f"{function}: pair {i}: ours answered {ours['outcome']}, the typical handler {typical['outcome']}"
                )
            if i:
                result.ours.append(ours)
                result.typical.append(typical)
        if importtime_runs:
            result.profile = importtime(function, env, importtime_runs, event=cs.event(fixtures, f"{tag}-{pairs + 1}"))
    except (RuntimeError, subprocess.TimeoutExpired) as exc:
        result.error = str(exc)[-600:]
    finally:
        event_file.unlink(missing_ok=True)
    result.load = (result.load[0], load())
    return result


def main(argv: list[str] | None = None) -> int:
    """``python -m bench.coldstart [--pairs 30] [function ...]``: only the comparison with the
    typical handlers (its own PostgreSQL database and moto, as ``make bench`` makes them)."""
    import argparse

    from bench.env import function_env, started, use_settings
    from bench.operations import COLD_STARTS, fixtures_of
    from bench.plan import Plan
    from bench.reference import create_schema
    from testkit.env import migrated_database

    parser = argparse.ArgumentParser(prog="python -m bench.coldstart", description=main.__doc__)
    parser.add_argument("--pairs", type=int, default=Plan.typical_pairs)
    parser.add_argument("--importtime-runs", type=int, default=3)
    parser.add_argument("functions", nargs="*", default=[c.function for c in COLD_STARTS if has_typical(c.function)])
    args = parser.parse_args(argv)
    run_id = time.strftime("%H%M%S")
    with started() as (pg, moto):
        dsn = migrated_database(pg, "hibachi_bench_cold")
        create_schema(dsn)
        use_settings(dsn)
        env = function_env(dsn, moto)
        fixtures: dict[str, Any] = {}
        out = []
        for cs in COLD_STARTS:
            if cs.function not in args.functions:
                continue
            for key in cs.setups:
                fixtures.setdefault(key, fixtures_of(key, 1, run_id))
            moto.clean()
            print(f"comparing {cs.function}: {args.pairs} pairs", file=sys.stderr, flush=True)
            out.append(compare(cs, env, fixtures, run_id, pairs=args.pairs, importtime_runs=args.importtime_runs))
    from bench.report import comparison_section

    print(comparison_section(out))
    return 0 if all(not c.error for c in out) else 1


if __name__ == "__main__":
    sys.exit(main())
