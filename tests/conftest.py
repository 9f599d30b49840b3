"""Shared fixtures: a real PostgreSQL (the embedded one, or DATABASE_URL), moto's server for AWS, handlers
loaded by file path like Lambda loads them, and settings injected without reloading modules."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "layers" / "common"), str(ROOT)]

from testkit.env import Moto, isolate_process_env, migrated_database, project_postgres  # noqa: E402

# Keep the tests away from real AWS and from the developer's environment.
isolate_process_env()

from hibachi import settings as settings_module  # noqa: E402
from hibachi.settings import Settings  # noqa: E402

from local.events import LambdaContext  # noqa: E402
from testkit.functions import load_function  # noqa: E402,F401 - re-exported for the tests
from tests.support.plan import rank  # noqa: E402
from tests.support.tiers import TESTS, TIER_ORDER, TIERS  # noqa: E402

TEST_PG_PORT = int(os.environ.get("TEST_PG_PORT", "54339"))


# The test tiers, by folder (markers declared in pyproject.toml; `make test-fast`, `make
# test-integration`, `make test-system` run one each). A new folder gets its tier here.
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark each test with its folder's tier; the unit tier runs with sockets disabled, and first:
    no thread of a later tier's stack (the one tests/http shares) is alive while sockets
    are blocked. Then the tests in the order of the run's plan (tests/support/plan.py: the longest
    work units first), then by tier; otherwise as collected."""
    tiers: dict[int, str] = {}
    for item in items:
        parts = item.path.relative_to(TESTS).parts
        tier = TIERS.get(parts[0]) if len(parts) > 1 else None
        if tier is None:
            raise pytest.UsageError(
                f"tests/{'/'.join(parts)}: its folder has no test tier (TIERS in tests/support/tiers.py)"
            )
        item.add_marker(tier)
        tiers[id(item)] = tier
        if tier == "unit":
            item.add_marker(pytest.mark.disable_socket)
    items.sort(key=lambda item: (tiers[id(item)] != "unit", rank(item.nodeid), TIER_ORDER[tiers[id(item)]]))


@pytest.hookimpl(optionalhook=True)  # a hook of pytest-xdist, absent with -p no:xdist
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """``--dist loadfile`` (make test) with the work units and order of tests/support/plan.py."""
    if config.getvalue("dist") != "loadfile":
        return None
    from tests.support.plan import PlannedScheduling

    return PlannedScheduling(config, log)


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """A migrated, empty database: DATABASE_URL when set, else a fresh one on the embedded server."""
    if os.environ.get("DATABASE_URL"):
        from hibachi.migrate import apply

        url = os.environ["DATABASE_URL"]
        apply(url)
        yield url
        return
    # one database per parallel worker (pytest -n: PYTEST_XDIST_WORKER is gw0, gw1, ...)
    name = "hibachi_test" + (f"_{worker}" if (worker := os.environ.get("PYTEST_XDIST_WORKER")) else "")
    yield migrated_database(project_postgres("test-pg", TEST_PG_PORT), name)


@pytest.fixture(autouse=True)
def _no_metrics_from_earlier_tests() -> None:
    """The process's shared Powertools Metrics (``hibachi.observability.metrics``) starts each test
    empty: a service called below its handler adds metrics that no flush writes out, and a later
    test's handler would flush them with its own (which test came first depends on the order, and on
    the parallel workers' share of the files)."""
    observability = sys.modules.get("hibachi.observability")
    if observability is not None:
        observability.metrics.clear_metrics()


@pytest.fixture
def settings(database_url: str) -> Iterator[Settings]:
    """Settings for in-process handler tests; change them with ``hibachi.settings.override``."""
    current = Settings(
        database_url=database_url, jobs_queue_url=None, service_name="hibachi", reconcile_grace_seconds=0
    )
    settings_module.set_settings(current)
    yield current
    settings_module.set_settings(None)


@pytest.fixture
def db(settings: Settings):
    from hibachi.db import get_db

    return get_db()


@pytest.fixture(scope="session")
def moto() -> Iterator[Moto]:
    """moto's server for the session, in a child process (its state is its own: no local stack of
    this process shares it), with the template's resources named ``test-*``; the jobs queue's
    visibility timeout is 0 (a received, undeleted job is back at once). Tests empty it first
    (``sqs``)."""
    server = Moto("test", process=True, visibility_timeout=0).start()
    yield server
    server.stop()


@pytest.fixture
def sqs(settings: Settings, moto: Moto) -> Iterator[dict]:
    """The session's moto, emptied (queues and schedules), with the jobs queue and its DLQ; the
    settings point JOBS_QUEUE_URL at it, and the app's AWS clients at moto (``hibachi.sqs`` by the
    settings, boto3 by ``AWS_ENDPOINT_URL``: a monkeypatch of its own, which a test's
    ``monkeypatch.undo()`` leaves alone)."""
    moto.clean()
    res = moto.resources
    with (
        pytest.MonkeyPatch.context() as patch,
        settings_module.override(aws_endpoint_url=moto.endpoint_url, jobs_queue_url=res.jobs_queue_url),
    ):
        patch.setenv("AWS_ENDPOINT_URL", moto.endpoint_url)
        yield {"client": moto.client("sqs"), "queue_url": res.jobs_queue_url, "dlq_url": res.jobs_dlq_url}


@pytest.fixture
def aws(sqs: dict, moto: Moto) -> Iterator[dict]:
    """``sqs``, and every resource of the template in the settings (as on AWS): the DLQs, the
    follow-up topic (its SQS subscription is ``inbox``), the schedule group and role (the jobs queue
    is the schedules' target)."""
    res = moto.resources
    with settings_module.override(**moto.resources.settings()):
        yield {
            **sqs,
            "sns": moto.client("sns"),
            "scheduler": moto.client("scheduler"),
            "resources": res,
            "topic": res.followup_topic_arn,
            "inbox": res.followups_queue_url,
            "jobs_arn": res.jobs_queue_arn,
            "dlq_arn": res.scheduler_dlq_arn,
            "group": res.schedule_group,
            "role_arn": res.scheduler_role_arn,
        }


@pytest.fixture
def context() -> LambdaContext:
    return LambdaContext(function_name="test")
