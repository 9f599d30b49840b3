"""The follow-up jobs as they go on the queue: who enqueues them (a booking's create, reschedule or
cancel; the reconciler; a schedule that fires) builds them here, and only ``hibachi.jobs`` comes with
them. ``hibachi.followups.service`` (the Scheduler and SNS calls, the SQL) is the worker's: an API
function that enqueues a job need not import it, nor the repositories it brings."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from hibachi import jobs


def schedule_job(booking_id: UUID | str, version: int, correlation_id: str | None) -> jobs.Job:
    return jobs.Job.new(
        jobs.SCHEDULE_FOLLOWUP,
        f"{jobs.SCHEDULE_FOLLOWUP}:{booking_id}:v{version}",
        {"booking_id": str(booking_id)},
        correlation_id,
    )


def send_job(
    booking_id: UUID | str,
    version: int,
    correlation_id: str | None,
    due: datetime | None = None,
    job_type: str = jobs.SEND_FOLLOWUP,
) -> jobs.Job:
    """The ``send_followup`` (or, with ``job_type``, ``send_reminder``) job; a scheduled one counts its
    age (``JobAge``) from when it was due."""
    job = jobs.Job.new(
        job_type,
        f"{job_type}:{booking_id}:v{version}",
        {"booking_id": str(booking_id), "version": version},
        correlation_id,
    )
    return job.model_copy(update={"enqueued_at": due}) if due is not None else job
