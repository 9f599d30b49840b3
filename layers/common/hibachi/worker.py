"""The job worker: SQS batches with partial failures, set-based per job type, and the reconciler.

A batch handler takes every job of one type in the batch at once and returns, per job id, ``None``
(done) or the exception that failed it; set-based handlers thus do one or two statements per batch.
When a handler raises for a whole group (not because a dependency is down), each job of the group
is run alone, so one bad job fails alone. Only the failed records are reported back to SQS
(``ReportBatchItemFailures``) and retried; after ``maxReceiveCount`` receives a record goes to the
DLQ. Handlers are idempotent: any job may arrive
twice, late, or out of order.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from aws_lambda_powertools.metrics import EphemeralMetrics, MetricResolution, MetricUnit
from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord

from hibachi import ops
from hibachi.db import get_db
from hibachi.errors import DependencyUnavailable
from hibachi.jobs import Job, get_queue, parse_job
from hibachi.observability import error_text, exception_facts, logger, metrics
from hibachi.settings import Settings, get_settings

BatchHandler = Callable[[list[Job]], Mapping[str, Exception | None]]
Reconciler = Callable[[int, int], int]


class UnknownJobType(Exception):
    pass


def _type_metrics(job_type: str) -> EphemeralMetrics:
    m = EphemeralMetrics(service=get_settings().service_name)  # adds the service dimension itself
    m.add_dimension(name="job_type", value=job_type)
    return m


def _parse(records: list[dict[str, Any]]) -> tuple[dict[str, Job], dict[str, Exception], dict[str, list[Job]]]:
    """The records' jobs (message id -> job), the records that are no job (message id -> why), and
    the jobs by type, in the records' order."""
    jobs_by_message: dict[str, Job] = {}
    errors: dict[str, Exception] = {}
    by_type: dict[str, list[Job]] = defaultdict(list)
    for record in records:
        message_id = record.get("messageId", "")
        try:
            job = parse_job(record.get("body") or "")
        except ValueError as exc:
            errors[message_id] = exc
            continue
        jobs_by_message[message_id] = job
        by_type[job.type].append(job)
    return jobs_by_message, errors, by_type


def _run_group(job_type: str, batch: list[Job], handler: BatchHandler | None) -> Mapping[str, Exception | None]:
    """The outcome of each job of one type (job id -> None, or the exception that failed it)."""
    if handler is None:
        return {job.id: UnknownJobType(job_type) for job in batch}
    try:
        return handler(batch)
    except Exception as exc:  # noqa: BLE001 - the whole group failed
        logger.error("job batch failed", extra={"job_type": job_type, "jobs": len(batch), **exception_facts(exc)})
        if len(batch) == 1 or isinstance(exc, DependencyUnavailable):
            return {job.id: exc for job in batch}  # retry each of its records
    # one bad job (a payload the statement rejects) must not fail its neighbours: run each job
    # alone, so only the bad ones are retried and, in the end, dead-lettered
    outcomes: dict[str, Exception | None] = {}
    for job in batch:
        try:
            outcomes.update(handler([job]))
        except Exception as alone:  # noqa: BLE001 - this job's own failure
            outcomes[job.id] = alone
    return outcomes


def _flush_metrics(by_type: Mapping[str, list[Job]], failed: Counter[str], ages: Mapping[str, list[float]]) -> None:
    """Per job type: JobsProcessed, JobsFailed and each processed job's JobAge, in one EMF line."""
    for job_type in set(by_type) | set(failed):
        m = _type_metrics(job_type)
        m.add_metric(name="JobsProcessed", unit=MetricUnit.Count, value=len(ages.get(job_type, [])))
        m.add_metric(name="JobsFailed", unit=MetricUnit.Count, value=failed.get(job_type, 0))
        for age in ages.get(job_type, []):
            m.add_metric(
                name="JobAge", unit=MetricUnit.Milliseconds, value=round(age, 1), resolution=MetricResolution.Standard
            )
        # not a dimension: lets Logs Insights tie this metric line to the API requests of its jobs
        correlation_ids = sorted({j.correlation_id for j in by_type.get(job_type, []) if j.correlation_id})
        if correlation_ids:
            m.add_metadata(key="correlation_ids", value=correlation_ids[:50])
        m.flush_metrics()


def process_batch(event: dict[str, Any], context: Any, handlers: Mapping[str, BatchHandler]) -> dict[str, Any]:
    """Process an SQS event; return the partial-batch response."""
    records = event.get("Records") or []
    jobs_by_message, errors, by_type = _parse(records)
    outcomes: dict[str, Exception | None] = {}
    for job_type, batch in by_type.items():
        outcomes.update(_run_group(job_type, batch, handlers.get(job_type)))

    now = datetime.now(UTC)
    ages: dict[str, list[float]] = defaultdict(list)

    def record_handler(record: SQSRecord) -> None:
        if record.message_id in errors:
            logger.error(
                "poison message: not a job",
                extra={"message_id": record.message_id, "error": error_text(errors[record.message_id])},
            )
            raise errors[record.message_id]
        job = jobs_by_message[record.message_id]
        logger.set_correlation_id(job.correlation_id)
        outcome = outcomes.get(job.id)
        fields = {
            "job_id": job.id,
            "job_type": job.type,
            "message_id": record.message_id,
            "receive_count": record.attributes.approximate_receive_count,
        }
        if outcome is not None:
            logger.warning("job failed", extra={**fields, "error": error_text(outcome)})
            raise outcome
        ages[job.type].append(max(0.0, (now - job.enqueued_at).total_seconds() * 1000))
        logger.info("job processed", extra=fields)

    processor = BatchProcessor(event_type=EventType.SQS)
    everything_failed: BatchProcessingError | None = None
    try:
        response: dict[str, Any] = dict(
            process_partial_response(event=event, record_handler=record_handler, processor=processor, context=context)
        )
    except BatchProcessingError as exc:
        # every record failed: Powertools fails the invocation (SQS retries them all), but this
        # batch's metrics are the ones an outage must show, so they go out first
        everything_failed = exc
        response = {"batchItemFailures": [{"itemIdentifier": r.get("messageId", "")} for r in records]}
    finally:
        logger.set_correlation_id(None)

    failed_ids = {item["itemIdentifier"] for item in response.get("batchItemFailures", [])}
    failed = Counter(jobs_by_message[m].type if m in jobs_by_message else "invalid" for m in failed_ids)
    _flush_metrics(by_type, failed, ages)
    if everything_failed is not None:
        raise everything_failed
    return response


def reconcile(reconcilers: Mapping[str, Reconciler], settings: Settings | None = None) -> dict[str, Any]:
    """Run every reconciler once, in order; each re-enqueues the jobs whose effect the database lacks.
    Within ``RECONCILE_BUDGET_SECONDS``: past it, the queue sends nothing more and the reconcilers not
    yet started wait for the next run (``skipped``), so a run always ends before the function's
    timeout and records itself."""
    settings = settings or get_settings()
    start = time.perf_counter()
    deadline = time.monotonic() + settings.reconcile_budget_seconds
    counts: dict[str, int] = {}
    errors: dict[str, str] = {}
    skipped: list[str] = []
    with get_queue().sending_until(deadline):
        for job_type, fn in reconcilers.items():
            if time.monotonic() >= deadline:
                skipped.append(job_type)
                continue
            try:
                counts[job_type] = fn(settings.reconcile_grace_seconds, settings.reconcile_batch_limit)
            except Exception as exc:  # noqa: BLE001 - one failing kind must not stop the others
                logger.error("reconciler failed", extra={"job_type": job_type, **exception_facts(exc)})
                errors[job_type] = type(exc).__name__
    if skipped:
        logger.warning("reconciler budget spent; the next run does the rest", extra={"skipped": skipped})
    total = sum(counts.values())
    metrics.add_metric(name="ReconcilerReEnqueued", unit=MetricUnit.Count, value=total)
    for job_type, count in counts.items():
        if count:
            m = _type_metrics(job_type)
            m.add_metric(name="ReconcilerReEnqueued", unit=MetricUnit.Count, value=count)
            m.flush_metrics()
    result = {
        "task": "reconcile",
        "re_enqueued": counts,
        "errors": errors,
        "skipped": skipped,
        "elapsed_ms": round((time.perf_counter() - start) * 1000, 1),
    }
    logger.info("reconciler run", extra=result)
    # the run log behind /health/details and `python -m ops reconcile` (one cheap insert, best effort)
    ops.record_reconciler_run(get_db(), result, logger.get_current_keys().get("function_request_id"))
    if errors:
        raise RuntimeError(f"reconciler failed for {sorted(errors)}")
    return result
