"""The worker: jobs/s per job type in 10-record SQS batches through followup_worker's handler, in
one thread (one Lambda environment), against the local PostgreSQL; round trips per batch.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from bench.measure import Capture, Summary, load_function, replay
from bench.operations import JobType

BATCH = 10


@dataclass
class WorkerResult:
    job_type: str
    batches: int
    jobs: int
    seconds: float
    batch_ms: Summary
    round_trips_per_batch: float
    failures: int
    set_based: bool
    raw_ms: Summary | None = None  # the batch's statements replayed raw
    aws_calls: str = ""

    @property
    def jobs_per_second(self) -> float:
        return self.jobs / self.seconds if self.seconds else float("nan")


def _events(job_type: JobType, fixtures: dict[str, Any], first: int, count: int) -> list[dict[str, Any]]:
    from testkit.events import sqs_event

    return [
        sqs_event([job.model_dump_json() for job in job_type.jobs(fixtures, first + b, BATCH)]) for b in range(count)
    ]


def _invoke(module: Any, event: dict[str, Any]) -> tuple[float, int]:
    from testkit.events import LambdaContext

    context = LambdaContext(function_name="followup_worker")
    start = time.perf_counter()
    response = module.lambda_handler(event, context)
    return (time.perf_counter() - start) * 1000, len(response.get("batchItemFailures", []))


WARM_BATCHES = 3
COUNTED_BATCHES = 20


def jobs_needed(job_type: JobType, max_batches: int) -> int:
    batches = min(max_batches, job_type.max_batches or max_batches)
    return (WARM_BATCHES + batches + COUNTED_BATCHES + 1) * BATCH


def run(
    job_type: JobType,
    fixtures: dict[str, Any],
    *,
    direct_dsn: str,
    use_direct,
    use_counted,
    proxy,
    max_batches: int = 300,
    max_seconds: float = 10.0,
    counted_batches: int = COUNTED_BATCHES,
) -> WorkerResult:
    """``use_direct()`` / ``use_counted()`` switch the settings to the direct database / the counting
    proxy (no delay). The timed batches' statements are captured and replayed raw on the same
    database afterwards (set-based job handlers recompute, so a replay takes the same path)."""
    module = load_function(job_type.function)
    use_direct()
    max_batches = min(max_batches, job_type.max_batches or max_batches)
    # every batch has its own jobs (a booking's follow-up is scheduled or sent once)
    warm = _events(job_type, fixtures, 0, WARM_BATCHES)
    events = _events(job_type, fixtures, WARM_BATCHES, max_batches)
    counted = _events(job_type, fixtures, WARM_BATCHES + max_batches, counted_batches + 1)
    for event in warm:
        _invoke(module, event)  # warm: connection, lazy imports, AWS clients
    samples, failures, jobs = [], 0, 0
    with Capture() as capture:
        start = time.perf_counter()
        for b, event in enumerate(events):
            if time.perf_counter() - start > max_seconds:
                break
            capture.tag = ("batch", b)
            ms, failed = _invoke(module, event)
            samples.append(ms)
            failures += failed
            jobs += len(event["Records"])
        seconds = time.perf_counter() - start
    raw = replay(capture.statements, direct_dsn).get("batch", [])

    use_counted()
    _invoke(module, counted[0])  # opens the connection through the proxy
    proxy.reset()
    for event in counted[1:]:
        _, failed = _invoke(module, event)
        failures += failed
    round_trips = proxy.round_trips / counted_batches
    from hibachi.db import get_db

    get_db().close()
    return WorkerResult(
        job_type.name,
        len(samples),
        jobs,
        seconds,
        Summary.of(samples),
        round_trips,
        failures,
        job_type.set_based,
        Summary.of(raw) if raw else None,
        job_type.aws_calls,
    )
