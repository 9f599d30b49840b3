"""The worker's side of one-time codes: the ``send_verification`` job {verification_id, code}.

Delivery goes out the way follow-ups do: a message on the follow-up topic (``FOLLOWUP_TOPIC_ARN``),
which the chat platform's SMS (and email) channel subscribes to, with ``type`` ``verification_code``
(a message attribute too, for subscription filter policies). docs/ARCHITECTURE.md ("Verified
identities") says why the topic and not SNS SMS.

Per batch: one statement reads the codes still worth delivering (not sent, voided, used nor
expired); each job's code must hash to its row's (a job not made by ``start_verification`` delivers
nothing); publish; one statement marks them sent. At least once: a worker that dies between the
publish and the mark publishes again on the retry, the same code with the same ``dedup_id``
(harmless: the customer gets the same code twice). A failed publish fails its job, which SQS
retries; the code's expiry ends the retries' use. No log line carries the code, the phone or the email.
"""

from __future__ import annotations

import hmac
import json
import re
from typing import Any
from uuid import UUID

from hibachi import aws, jobs
from hibachi.db import get_db
from hibachi.observability import MetricUnit, error_text, logger, metrics
from hibachi.settings import Settings, get_settings
from hibachi.verifications import repository
from hibachi.verifications.models import CODE_PATTERN
from hibachi.verifications.service import code_hash

MESSAGE_TYPE = "verification_code"
_CODE = re.compile(CODE_PATTERN)


def _request(job: jobs.Job) -> tuple[UUID, str] | None:
    code = job.payload.get("code")
    try:
        code_id = UUID(str(job.payload.get("verification_id")))
    except ValueError:
        return None
    if not isinstance(code, str) or not _CODE.fullmatch(code):
        return None
    return code_id, code


def text(code: str, row: repository.DeliverableRow, settings: Settings) -> str:
    minutes = max(1, round(settings.verification_code_ttl_seconds / 60))
    return (
        f"Your hibachi booking verification code is {code}. It expires in {minutes} minutes. "
        "Type it into the chat only; we never ask for it any other way."
    )


def _publish(row: repository.DeliverableRow, code: str, settings: Settings) -> None:
    channel = "sms" if row.kind == "phone" else "email"
    dedup = f"verification:{row.id}"
    message: dict[str, Any] = {
        "type": MESSAGE_TYPE,
        "dedup_id": dedup,
        "verification_id": str(row.id),
        "conversation_id": row.conversation_id,
        "channel": channel,
        "customer": {row.kind: row.destination},
        "code": code,
        "text": text(code, row, settings),
        "expires_at": row.expires_at.isoformat(),
    }
    request: dict[str, Any] = {
        "TopicArn": settings.followup_topic_arn,
        "Message": json.dumps(message),
        "Subject": "Your verification code",
        "MessageAttributes": {
            "type": {"DataType": "String", "StringValue": MESSAGE_TYPE},
            "channel": {"DataType": "String", "StringValue": channel},
            "dedup_id": {"DataType": "String", "StringValue": dedup},
        },
    }
    if (settings.followup_topic_arn or "").endswith(".fifo"):
        request.update(MessageGroupId=row.conversation_id, MessageDeduplicationId=dedup)
        request.pop("Subject")
    aws.client("sns").publish(**request)


def handle_delivery_jobs(batch: list[jobs.Job]) -> dict[str, Exception | None]:
    """Deliver the batch's codes, each once: two statements per batch."""
    outcome: dict[str, Exception | None] = {}
    wanted: dict[UUID, list[tuple[jobs.Job, str]]] = {}
    for job in batch:
        request = _request(job)
        if request is None:
            outcome[job.id] = ValueError("send_verification job needs verification_id and a 6-digit code")
            continue
        outcome[job.id] = None
        wanted.setdefault(request[0], []).append((job, request[1]))
    if not wanted:
        return outcome
    settings = get_settings()
    db = get_db()
    rows = repository.deliverable(db, list(wanted))
    if len(rows) < len(wanted):
        logger.info("codes not delivered: sent, used, voided or expired", extra={"count": len(wanted) - len(rows)})
    sent: list[UUID] = []
    for row in rows:
        for job, code in wanted[row.id]:
            if hmac.compare_digest(code_hash(row.code_salt, code), row.code_hash):
                break
            logger.warning("send_verification job whose code is not its row's: dropped", extra={"job_id": job.id})
        else:
            continue
        if not settings.followup_topic_arn:
            logger.warning("FOLLOWUP_TOPIC_ARN is not set; the code is not delivered", extra={"job_id": job.id})
            continue
        try:
            _publish(row, code, settings)
        except Exception as exc:  # noqa: BLE001 - this code's jobs are retried; the others go on
            logger.warning("verification code publish failed", extra={"job_id": job.id, "error": error_text(exc)})
            for failed, _code in wanted[row.id]:
                outcome[failed.id] = exc
            continue
        sent.append(row.id)
    repository.mark_sent(db, sent)
    if sent:
        metrics.add_metric(name="VerificationCodesSent", unit=MetricUnit.Count, value=len(sent))
    return outcome
