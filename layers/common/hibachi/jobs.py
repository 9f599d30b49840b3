"""The job envelope and its SQS sender.

Every job is idempotent by design (its handler recomputes or claims from the database), so the
envelope's ``id`` is informational (logs, tracing), not a deduplication key. A send that fails is
logged and counted (``EnqueueFailed``) but never fails the request: the database is the source of
truth and the reconciler re-enqueues whatever a failed send left behind.

Jobs go out through ``hibachi.sqs`` (one signed HTTPS POST, no boto3 on the request path) with the
request path's timeouts: connect 1 s, read 2 s, 2 attempts.
"""

from __future__ import annotations

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
    """Sends jobs to the jobs queue; never raises."""

    def __init__(self, settings: Settings):
        self.settings = settings

    @property
    def client(self) -> sqs.Sqs:
        s = self.settings
        return sqs.client(s.aws_region, s.aws_endpoint_url, connect_timeout=1, read_timeout=2, attempts=2)

    def send(self, job: Job) -> bool:
        return not self.send_many([job])

    def send_many(self, jobs: list[Job]) -> list[Job]:
        """Send ``jobs`` (in batches of 10); return the ones that could not be sent."""
        if not jobs:
            return []
        if not self.settings.jobs_queue_url:
            logger.warning("JOBS_QUEUE_URL is not set; jobs left to the reconciler", extra={"jobs": len(jobs)})
            return list(jobs)
        failed: list[Job] = []
        for start in range(0, len(jobs), 10):
            chunk = jobs[start : start + 10]
            try:
                if len(chunk) == 1:
                    self.client.send_message(self.settings.jobs_queue_url, chunk[0].to_message())
                    continue
                entries = [{"Id": str(i), **job.to_message()} for i, job in enumerate(chunk)]
                response = self.client.send_message_batch(self.settings.jobs_queue_url, entries)
                failed.extend(chunk[int(item["Id"])] for item in response.get("Failed", []))
            except Exception as exc:  # noqa: BLE001 - any failure of the send is survivable
                logger.warning(
                    "job enqueue failed; the reconciler will recover it",
                    extra={"error": error_text(exc), "job_ids": [j.id for j in chunk]},
                )
                failed.extend(chunk)
        return failed


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
