"""Use cases of conversations: store a message, read history, keep emotion statistics."""

from __future__ import annotations

import re
from typing import cast

from hibachi import idempotency, jobs
from hibachi.callers import Caller
from hibachi.conversations import repository
from hibachi.conversations.models import (
    CURSOR_PATTERN,
    ConversationOut,
    MessageIn,
    MessageOut,
    MessagePage,
    Role,
    Trend,
)
from hibachi.db import get_db
from hibachi.errors import NotFound, invalid
from hibachi.observability import MetricUnit, add_ms, exception_facts, logger, metrics, timed_ms
from hibachi.settings import get_settings

TREND_THRESHOLD = 0.02  # slope per message below which the mood counts as stable


def emotion_job(conversation_id: str, seq: int, correlation_id: str | None) -> jobs.Job:
    return jobs.Job.new(
        jobs.EMOTION_STATS,
        f"{jobs.EMOTION_STATS}:{conversation_id}:{seq}",
        {"conversation_id": conversation_id},
        correlation_id,
    )


def _message(row: repository.MessageRow, conversation_id: str) -> MessageOut:
    return MessageOut(
        id=row.id,
        conversation_id=conversation_id,
        role=cast(Role, row.role),  # messages.role's check constraint admits these roles only
        content=row.content,
        emotion_score=row.emotion_score,
        metadata=row.metadata or {},
        created_at=row.created_at,
    )


POST_ROUTE = "POST /conversations/{conversation_id}/messages"


def _same_request(row: repository.InsertedMessageRow, message: MessageIn, digest: str | None) -> bool:
    if row.request_hash is not None:
        return row.request_hash == digest
    # stored before keys were per caller (no hash): the same conversation (the old key scope) and
    # the same stored fields
    return (row.role, row.content, row.emotion_score, row.metadata or {}) == (
        message.role,
        message.content,
        message.emotion_score,
        message.metadata,
    )


def _not_found(conversation_id: str) -> NotFound:
    return NotFound(f"Conversation {conversation_id!r} does not exist.")


def reach(caller: Caller, conversation_id: str) -> None:
    """404 unless ``caller`` may reach the conversation: staff reach every one, the assistant its
    own (the ``Hibachi-Conversation`` header). Decided before any statement: the answer is the same
    as for a conversation that does not exist, so it says nothing about the other one."""
    if not caller.staff and caller.conversation_id != conversation_id:
        raise _not_found(conversation_id)


def post_message(
    conversation_id: str,
    message: MessageIn,
    *,
    caller: Caller,
    idempotency_key: str | None,
    correlation_id: str | None,
) -> tuple[MessageOut, bool]:
    """Store ``message`` (one round trip), then enqueue its emotion job. Returns (message, created).

    ``caller.owner`` scopes ``idempotency_key`` (hibachi.idempotency): a retry of the same request
    gets the original (created False); the key with another request, or another conversation, is 422.
    """
    reach(caller, conversation_id)
    idempotency.check(caller.owner, idempotency_key)
    digest = None
    if idempotency_key is not None:
        digest = idempotency.request_hash(
            POST_ROUTE, {"conversation_id": conversation_id}, message.model_dump(mode="json")
        )
    row = repository.insert_message(
        get_db(),
        conversation_id=conversation_id,
        role=message.role,
        content=message.content,
        emotion_score=message.emotion_score,
        metadata=message.metadata,
        caller=caller.owner or None,
        idempotency_key=idempotency_key,
        request_hash=digest,
        customer_id=message.customer_id,
        channel=message.channel,
    )
    if row is None:
        raise idempotency.in_flight()
    if not row.created:
        if row.conversation_id != conversation_id or not _same_request(row, message, digest):
            raise idempotency.reused()
        return _message(row, conversation_id), False
    if message.emotion_score is not None:
        with timed_ms() as elapsed:
            sent = jobs.get_queue().send(emotion_job(conversation_id, row.seq, correlation_id))
        add_ms("EnqueueTime", elapsed[0])
        if not sent:
            metrics.add_metric(name="EnqueueFailed", unit=MetricUnit.Count, value=1)
    return _message(row, conversation_id), True


def get_conversation(conversation_id: str, *, caller: Caller) -> ConversationOut:
    reach(caller, conversation_id)
    row = repository.get_conversation(get_db(), conversation_id)
    if row is None:
        raise _not_found(conversation_id)
    slope = row.emotion_trend
    trend: Trend | None = None
    if slope is not None and row.emotion_count >= 2:
        trend = "improving" if slope > TREND_THRESHOLD else "declining" if slope < -TREND_THRESHOLD else "stable"
    return ConversationOut(
        id=row.id,
        customer_id=row.customer_id,
        channel=row.channel,
        created_at=row.created_at,
        last_message_at=row.last_message_at,
        message_count=row.message_count,
        avg_emotion=row.avg_emotion,
        emotion_count=row.emotion_count,
        last_emotion=row.last_emotion,
        emotion_trend=trend,
        stats_updated_at=row.stats_updated_at,
    )


_CURSOR = re.compile(CURSOR_PATTERN)  # hibachi.conversations.models says what a cursor is


def encode_cursor(seq: int) -> str:
    return f"m{seq}"


BIGINT_MAX = 2**63 - 1  # messages.seq is a bigint: a larger cursor is none this API handed out


def decode_cursor(cursor: str) -> int:
    if not _CURSOR.fullmatch(cursor) or int(cursor[1:]) > BIGINT_MAX:
        raise invalid("query", "before", "not a cursor returned by this API", "cursor_invalid")
    return int(cursor[1:])


def list_messages(conversation_id: str, *, caller: Caller, limit: int, before: str | None) -> MessagePage:
    reach(caller, conversation_id)
    rows = repository.list_messages(
        get_db(), conversation_id, limit=limit + 1, before=decode_cursor(before) if before else None
    )
    if rows is None:
        raise _not_found(conversation_id)
    has_more = len(rows) > limit
    page = rows[:limit]
    next_cursor = encode_cursor(page[-1].seq) if has_more else None
    return MessagePage(items=[_message(row, conversation_id) for row in reversed(page)], next_cursor=next_cursor)


# -- worker side ------------------------------------------------------------------------------------
def handle_emotion_jobs(batch: list[jobs.Job]) -> dict[str, Exception | None]:
    """Refresh the statistics of every conversation named in ``batch`` with one statement."""
    outcome: dict[str, Exception | None] = {}
    ids: list[str] = []
    for job in batch:
        cid = job.payload.get("conversation_id")
        if isinstance(cid, str) and cid:
            ids.append(cid)
            outcome[job.id] = None
        else:
            outcome[job.id] = ValueError("emotion_stats job without a conversation_id")
    if ids:
        s = get_settings()
        attention = repository.Attention(s.attention_enter_trend, s.attention_leave_trend, s.attention_min_scores)
        updated = repository.refresh_emotion_stats(get_db(), ids, attention)
        logger.debug("emotion statistics refreshed", extra={"conversations": len(set(ids)), "updated": len(updated)})
        entered = [u.id for u in updated if u.entered]
        if entered:
            _publish_attention(entered)
    return outcome


def _publish_attention(conversation_ids: list[str]) -> None:
    """Publish the "Conversation Needs Attention" events just written (to the staff notice); a failure
    leaves them to the reconciler and never fails the jobs, whose statistics are stored."""
    from hibachi.events import publisher
    from hibachi.events.models import AggregateType

    logger.info("conversations need attention", extra={"conversations": conversation_ids[:20]})
    try:
        publisher.publish([(AggregateType.CONVERSATION.value, cid) for cid in conversation_ids])
    except Exception as exc:  # noqa: BLE001 - the database went away: the reconciler publishes them
        logger.warning(
            "event publishing failed", extra={"conversations": len(conversation_ids), **exception_facts(exc)}
        )


def reconcile_emotion_jobs(grace_seconds: int, limit: int) -> int:
    """Re-enqueue the emotion jobs of conversations whose statistics are behind. Returns how many."""
    stale = repository.stale_stats(get_db(), grace_seconds=grace_seconds, limit=limit)
    if not stale:
        return 0
    failed = jobs.get_queue().send_many([emotion_job(cid, 0, "reconciler") for cid in stale])
    logger.warning(
        "reconciler re-enqueued emotion jobs",
        extra={"conversations": stale[:20], "count": len(stale), "send_failed": len(failed)},
    )
    return len(stale) - len(failed)
