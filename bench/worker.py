"""The worker: jobs/s per job type in 10-record SQS batches through followup_worker's handler, in
one thread (one Lambda environment), against the local PostgreSQL; round trips per batch.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from bench.measure import Capture, Summary, replay
from bench.operations import JOB_TYPES, JobType
from testkit.functions import load_function

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


def _events(
    job_type: JobType, fixtures: dict[str, Any], first: int, count: int, size: int = BATCH
) -> list[dict[str, Any]]:
    """The SQS events of batches ``first`` .. ``first + count - 1`` of ``size`` jobs each."""
    from local.events import sqs_event

    return [
        sqs_event([job.model_dump_json() for job in job_type.jobs(fixtures, first + b, size)]) for b in range(count)
    ]


def _invoke(module: Any, event: dict[str, Any]) -> tuple[float, int]:
    from local.events import LambdaContext

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
    counted_dsn: str,
    aws: dict[str, str],
    proxy: Any,
    max_batches: int = 300,
    max_seconds: float = 10.0,
    counted_batches: int = COUNTED_BATCHES,
) -> WorkerResult:
    """Batches timed on ``direct_dsn``, their statements replayed raw there (set-based handlers recompute:
    a replay takes the same path); then round trips per batch through the ``proxy`` at ``counted_dsn``."""
    from bench.env import use_settings

    module = load_function(job_type.function)
    use_settings(direct_dsn, aws)
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

    use_settings(counted_dsn, aws)
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


# -- one emotion job against the size of its conversation ----------------------------------------------
SCALING_SIZES = (10, 10_000)
SCALING_SAMPLES = 300

_BULK_CONVERSATION = """
WITH conv AS (
    INSERT INTO conversations (id, message_count, scored_count) VALUES (%(cid)s, %(n)s, %(n)s) RETURNING id
)
INSERT INTO messages (conversation_id, role, content, emotion_score, score_no)
SELECT conv.id, 'user', 'message ' || g, ((g %% 21) - 10) / 10.0, g FROM conv, generate_series(1, %(n)s) AS g
"""


@dataclass
class EmotionScaling:
    """One ``emotion_stats`` job (one new scored message each time) in conversations of different
    sizes: the whole worker invocation, and its statement alone."""

    sizes: tuple[int, ...]
    job_ms: dict[int, Summary]
    statement_ms: dict[int, Summary]

    def ratio(self, which: str = "job") -> float:
        by_size = self.job_ms if which == "job" else self.statement_ms
        small, large = by_size[min(self.sizes)], by_size[max(self.sizes)]
        return large.p50 / small.p50 if small.p50 else float("nan")


def _emotion_job(cid: str, k: int) -> dict[str, Any]:
    """The SQS event of one emotion job for conversation ``cid``."""
    return _events(JOB_TYPES[0], {"ids": [cid]}, k, 1, size=1)[0]


def _bulk_conversations(direct_dsn: str, run_id: str, sizes: tuple[int, ...]) -> dict[int, str]:
    """A conversation of each size, its scored messages bulk-loaded; their ids by size."""
    import psycopg

    cids = {n: f"bench-{run_id}-scale-{n}" for n in sizes}
    with psycopg.connect(direct_dsn, autocommit=True) as conn:
        for n, cid in cids.items():
            conn.execute(_BULK_CONVERSATION, {"cid": cid, "n": n})
        conn.execute("VACUUM ANALYZE messages")
        conn.execute("ANALYZE conversations")
    return cids


def emotion_scaling(
    direct_dsn: str,
    run_id: str,
    *,
    samples: int = SCALING_SAMPLES,
    sizes: tuple[int, ...] = SCALING_SIZES,
) -> EmotionScaling:
    """Conversations of ``sizes`` scored messages (bulk-loaded, then counted once); then, ``samples``
    times and alternating the order, one new scored message stored by the API's statement and one
    job for it through followup_worker's handler, timed. The statement alone is timed the same way."""
    from hibachi.conversations import repository
    from hibachi.db import get_db

    from bench.env import use_settings

    use_settings(direct_dsn)
    module = load_function("followup_worker")
    cids = _bulk_conversations(direct_dsn, run_id, sizes)
    db = get_db()

    def store(cid: str, k: int) -> None:
        repository.insert_message(
            db,
            conversation_id=cid,
            role="user",
            content=f"new {k}",
            emotion_score=round((k % 21 - 10) / 10, 1),
            metadata={},
            idempotency_key=None,
            customer_id=None,
            channel="web",
        )

    for cid in cids.values():  # the first job counts everything bulk-loaded; then warm up
        _invoke(module, _emotion_job(cid, 0))
        for k in range(5):
            store(cid, k)
            _invoke(module, _emotion_job(cid, k))
    job_ms: dict[int, list[float]] = {n: [] for n in sizes}
    statement_ms: dict[int, list[float]] = {n: [] for n in sizes}
    for k in range(samples):
        order = list(cids.items()) if k % 2 == 0 else list(reversed(cids.items()))
        for n, cid in order:
            store(cid, k)
            ms, failed = _invoke(module, _emotion_job(cid, k))
            assert failed == 0, "an emotion job failed"
            job_ms[n].append(ms)
            store(cid, k)
            start = time.perf_counter()
            repository.refresh_emotion_stats(db, [cid], repository.Attention(-0.05, 0.03, 4))
            statement_ms[n].append((time.perf_counter() - start) * 1000)
    get_db().close()
    return EmotionScaling(
        tuple(sizes),
        {n: Summary.of(v) for n, v in job_ms.items()},
        {n: Summary.of(v) for n, v in statement_ms.items()},
    )
