"""Health of the service and its dependencies.

``check()`` backs the public ``GET /health``: one ``SELECT 1``, nothing sensitive in the answer.
``details()`` backs ``GET /health/details`` (scope ``ops:read``): queue and DLQ depths, follow-up
counts and the reconciler's last run (the database part in one statement).

Both answer within ``BUDGET_S`` whatever the dependencies do. The database statements run on one
long-lived probe thread (so its connection is reused across invocations, as the API functions
reuse theirs) and the caller waits for them at most the remaining budget: a refused connection
fails at once, an unanswered connect after ``DB_CONNECT_TIMEOUT`` (2 s), and a connection that
hangs mid-statement (a network partition) would otherwise block until the TCP timeout or the Lambda
timeout. While a statement still hangs, later checks do not queue behind it: they report
``timeout`` right away.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from hibachi import ops
from hibachi.db import get_db
from hibachi.errors import DependencyUnavailable
from hibachi.observability import add_ms, error_text, exception_facts, logger
from hibachi.settings import get_settings

T = TypeVar("T")

BUDGET_S = 2.5  # the API promises an answer within 3 s when a dependency is down

Status = Literal["ok", "unavailable", "timeout"]


class DependencyHealth(BaseModel):
    status: Status
    latency_ms: float | None = None


class Health(BaseModel):
    """The public answer: nothing an attacker could use (no version, host or error text; the
    deployed version is in /health/details)."""

    status: Literal["ok", "degraded"]
    database: DependencyHealth
    failing: list[str] = Field(default_factory=list, description="the dependencies that are down")


class HealthDetails(BaseModel):
    """The answer of ``/health/details`` as the document states it (one component for both its
    answers; the other members are the parts ``details`` reports)."""

    model_config = ConfigDict(extra="allow", defer_build=True)

    status: Literal["ok", "degraded"]
    version: str = Field(description="The deployed version (APP_VERSION)")
    failing: list[str] = Field(description="The parts that are down")


class ProbeTimeout(Exception):
    pass


class _Probe:
    """One thread for the database statements of the health checks, waited for with a deadline."""

    def __init__(self) -> None:
        self._executor: ThreadPoolExecutor | None = None
        self._last: Future[Any] | None = None
        self._lock = threading.Lock()

    def run(self, fn: Callable[[], T], timeout: float) -> T:
        deadline = time.monotonic() + timeout
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="health-probe")
            last = self._last
            if last is not None and not last.done():
                raise ProbeTimeout("the previous probe is still waiting for the database")
            future = self._executor.submit(fn)
            self._last = future
        try:
            return future.result(timeout=max(0.0, deadline - time.monotonic()))
        except FutureTimeout:
            raise ProbeTimeout(f"no answer within {timeout:.1f} s") from None


_probe = _Probe()
_pool = ThreadPoolExecutor(max_workers=3, thread_name_prefix="health-sqs")


def _ping() -> float:
    return get_db().ping()


def _database(deadline: float) -> DependencyHealth:
    try:
        latency = _probe.run(_ping, max(0.0, deadline - time.monotonic()))
    except ProbeTimeout:
        logger.warning("health: database probe timed out")
        return DependencyHealth(status="timeout")
    except DependencyUnavailable:
        return DependencyHealth(status="unavailable")
    except Exception as exc:  # noqa: BLE001 - e.g. the IAM token could not be made: down, whatever the cause
        logger.error("health: database probe failed", extra=exception_facts(exc))
        return DependencyHealth(status="unavailable")
    add_ms("DatabaseTime", latency)
    return DependencyHealth(status="ok", latency_ms=round(latency, 2))


_last_check: tuple[float, object, Health] | None = None  # (when, settings it was made with, result)


def check(budget_s: float | None = None) -> Health:
    """One ``SELECT 1``; a failing database makes the service ``degraded`` (the API answers 503).

    The public route's result is reused for ``HEALTH_CACHE_SECONDS`` (per execution environment):
    a flood of /health calls costs the database one probe per environment per period, not one each.
    """
    global _last_check
    settings = get_settings()
    cached = _last_check
    if (
        settings.health_cache_seconds > 0
        and cached is not None
        and cached[1] is settings
        and time.monotonic() - cached[0] < settings.health_cache_seconds
    ):
        return cached[2]
    deadline = time.monotonic() + (BUDGET_S if budget_s is None else budget_s)
    database = _database(deadline)
    failing = [] if database.status == "ok" else ["database"]
    if failing:
        logger.warning("health degraded", extra={"failing": failing, "database": database.status})
    result = Health(status="degraded" if failing else "ok", database=database, failing=failing)
    _last_check = (time.monotonic(), settings, result)
    return result


def details(budget_s: float | None = None) -> dict[str, Any]:
    """Queue and DLQ depths, follow-ups, the emotion backlog, the reconciler's last run.

    Parts are fetched in parallel; a part that fails or does not answer in time is reported with
    its status (``unavailable``/``timeout``) and named in ``failing``; the others still answer.
    """
    settings = get_settings()
    # the client (and its TLS context) is ours to build, not the dependency's time: before the budget
    client = ops.sqs_client(settings).prepare()
    deadline = time.monotonic() + (BUDGET_S if budget_s is None else budget_s)
    queue_futures: dict[str, Future[Any]] = {}
    queues: dict[str, dict[str, Any]] = {}
    for name, url in ops.configured_queues(settings).items():
        if not url:
            queues[name] = {"status": "not_configured"}
            continue
        queue_futures[name] = _pool.submit(ops.queue_depth, client, url)

    failing: list[str] = []
    figures: Mapping[str, Any] = {}  # ops.DatabaseFigures when the database answered
    db_start = time.perf_counter()
    try:
        figures = _probe.run(lambda: ops.database_figures(get_db()), max(0.0, deadline - time.monotonic()))
        db_ms = (time.perf_counter() - db_start) * 1000
        add_ms("DatabaseTime", db_ms)
        database = {"status": "ok", "latency_ms": round(db_ms, 2)}
    except ProbeTimeout:
        database = {"status": "timeout"}
    except Exception as exc:  # noqa: BLE001 - reported as a failing part, logged without leaking it
        if not isinstance(exc, DependencyUnavailable):
            logger.error("health details: database figures failed", extra=exception_facts(exc))
        database = {"status": "unavailable"}
    if database["status"] != "ok":
        failing.append("database")

    for name, future in queue_futures.items():
        try:
            queues[name] = {"status": "ok", **future.result(timeout=max(0.0, deadline - time.monotonic()))}
        except FutureTimeout:
            queues[name] = {"status": "timeout"}
            failing.append(name)
        except Exception as exc:  # noqa: BLE001
            logger.warning("health details: queue depth failed", extra={"queue": name, "error": error_text(exc)})
            queues[name] = {"status": "unavailable"}
            failing.append(name)

    result = {
        "status": "degraded" if failing else "ok",
        "version": settings.app_version,
        "failing": failing,
        "database": database,
        "queues": queues,
        **figures,
    }
    if failing:
        logger.warning("health details degraded", extra={"failing": failing})
    return result
