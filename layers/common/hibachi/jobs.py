"""The job envelope and its SQS sender.

Every job is idempotent by design (its handler recomputes or claims from the database), so the
envelope's ``id`` is informational (logs, tracing), not a deduplication key. A send that fails is
logged and counted (``EnqueueFailed``) but never fails the request: the database is the source of
truth and the reconciler re-enqueues whatever a failed send left behind.

Jobs go out through ``hibachi.sqs`` (one signed HTTPS POST, no boto3 on the request path). A send
never holds a request for long:

- the whole send (connect, 2 attempts, the answer) has ``JOBS_SEND_BUDGET_SECONDS`` (0.15 s);
- after a failed send, the queue (one per execution environment) sends nothing for
  ``JOBS_SEND_PAUSE_SECONDS`` (5 s) and leaves the jobs of that pause to the reconciler, so a
  hanging SQS costs one request per pause the budget, not every request its timeouts (a circuit
  breaker; the first send after the pause tries SQS again).

A job left behind reaches the queue when the reconciler runs after it is ``RECONCILE_GRACE_SECONDS``
old (30 s; the template runs it every minute): at most about 90 s late (docs/ARCHITECTURE.md, Jobs).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, Field

from hibachi import sqs
from hibachi.observability import error_text, logger
from hibachi.settings import Settings, get_settings

EMOTION_STATS = "emotion_stats"
SCHEDULE_FOLLOWUP = "schedule_followup"
SEND_FOLLOWUP = "send_followup"
SEND_VERIFICATION = "send_verification"
SEND_REMINDER = "send_reminder"
PUBLISH_EVENTS = "publish_events"


class Job(BaseModel):
    type: str = Field(min_length=1, max_length=64)
    id: str = Field(min_length=1, max_length=256)
    payload: dict[str, Any] = Field(default_factory=dict)
    enqueued_at: datetime
    correlation_id: str | None = None

    @classmethod
    def new(cls, type: str, id: str, payload: dict[str, Any], correlation_id: str | None = None) -> Job:  # noqa: A002
        return cls(type=type, id=id, payload=payload, enqueued_at=datetime.now(UTC), correlation_id=correlation_id)

    def to_message(self) -> dict[str, Any]:
        """Keyword arguments for SQS ``send_message`` / a ``send_message_batch`` entry."""
        attributes = {"job_type": {"DataType": "String", "StringValue": self.type}}
        if self.correlation_id:
            attributes["correlation_id"] = {"DataType": "String", "StringValue": self.correlation_id}
        return {"MessageBody": self.model_dump_json(), "MessageAttributes": attributes}


class JobQueue:
    """Sends jobs to the jobs queue; never raises. One per settings object, so one per execution
    environment: its pause (see above) is that environment's."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self.paused_until = 0.0  # time.monotonic(): no send before it
        self.deadline: float | None = None  # time.monotonic(): no send after it (a reconciler run's budget)

    @contextmanager
    def sending_until(self, deadline: float) -> Iterator[None]:
        """No send after ``deadline`` (``time.monotonic()``) inside the block: what is left goes back
        to the caller as not sent, for the next run."""
        self.deadline = deadline
        try:
            yield
        finally:
            self.deadline = None

    @property
    def client(self) -> sqs.Sqs:
        s = self.settings
        return sqs.client(
            s.aws_region,
            sqs.settings_endpoint(s, s.jobs_queue_url),
            connect_timeout=1,
            read_timeout=2,
            attempts=2,
            budget=s.jobs_send_budget_seconds,
        )

    def send(self, job: Job) -> bool:
        return not self.send_many([job])

    def send_many(self, jobs: list[Job]) -> list[Job]:
        """Send ``jobs`` (in batches of 10); return the ones that could not be sent."""
        if not jobs:
            return []
        url = self.settings.jobs_queue_url
        if not url:
            logger.warning("JOBS_QUEUE_URL is not set; jobs left to the reconciler", extra={"jobs": len(jobs)})
            return list(jobs)
        failed: list[Job] = []
        for start in range(0, len(jobs), 10):
            chunk = jobs[start : start + 10]
            if self.deadline is not None and time.monotonic() >= self.deadline:
                logger.warning("job enqueue stopped: the run's budget is spent", extra={"jobs": len(jobs) - start})
                return failed + jobs[start:]
            paused = self.paused_until - time.monotonic()
            if paused > 0:
                logger.warning(
                    "job enqueue skipped after a failed send; the reconciler will recover it",
                    extra={"paused_s": round(paused, 2), "job_ids": [j.id for j in chunk]},
                )
                failed.extend(chunk)
                continue
            try:
                failed.extend(self._send(url, chunk))
            except Exception as exc:  # noqa: BLE001 - any failure of the send is survivable
                self.paused_until = time.monotonic() + self.settings.jobs_send_pause_seconds
                logger.warning(
                    "job enqueue failed; the reconciler will recover it",
                    extra={"error": error_text(exc), "job_ids": [j.id for j in chunk]},
                )
                failed.extend(chunk)
        return failed

    def _send(self, url: str, chunk: list[Job]) -> list[Job]:
        """Send up to 10 jobs in one call; the ones SQS did not take."""
        if len(chunk) == 1:
            self.client.send_message(url, chunk[0].to_message())
            return []
        entries = [{"Id": str(i), **job.to_message()} for i, job in enumerate(chunk)]
        response = self.client.send_message_batch(url, entries)
        return [chunk[int(item["Id"])] for item in response.get("Failed", [])]


_queue: JobQueue | None = None


def get_queue() -> JobQueue:
    global _queue
    settings = get_settings()
    if _queue is None or _queue.settings is not settings:
        _queue = JobQueue(settings)
    return _queue


def parse_job(body: str) -> Job:
    """Parse an SQS message body (a JSON ``Job``); raises ``ValueError`` when it is not one."""
    try:
        return Job.model_validate_json(body)
    except Exception as exc:
        raise ValueError(f"not a job envelope: {str(exc)[:200]}") from exc
