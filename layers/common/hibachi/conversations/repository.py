"""SQL of conversations and messages. Each function is one statement (one round trip)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypedDict, cast
from uuid import UUID

from psycopg import sql
from psycopg.types.json import Jsonb

from hibachi.db import Database


class MessageRow(TypedDict):
    """A stored message, as the statements here return it."""

    seq: int
    id: UUID
    conversation_id: str
    role: str
    content: str
    emotion_score: float | None
    metadata: dict[str, Any] | None
    created_at: datetime


class InsertedMessageRow(MessageRow):
    created: bool  # False: the Idempotency-Key's original message


# Insert the message and create-or-update its conversation in ONE statement. The message goes
# first (ON CONFLICT on the idempotency key does nothing for a retry); the conversation row is
# upserted only when a message was inserted, so a retry counts nothing twice. The foreign key is
# checked at the end of the statement, when the conversation exists. A retry's original message is
# read by the last branch; within one statement it sees rows committed before the statement began.
INSERT_MESSAGE = """
WITH ins AS (
    INSERT INTO messages (conversation_id, role, content, emotion_score, metadata, idempotency_key)
    VALUES (%(cid)s, %(role)s, %(content)s, %(emotion_score)s, %(metadata)s, %(key)s)
    ON CONFLICT ON CONSTRAINT messages_idempotency_key DO NOTHING
    RETURNING seq, id, conversation_id, role, content, emotion_score, metadata, created_at
), conv AS (
    INSERT INTO conversations AS c
        (id, customer_id, channel, created_at, last_message_at, message_count, scored_seq)
    SELECT ins.conversation_id, %(customer_id)s, %(channel)s, ins.created_at, ins.created_at, 1,
           CASE WHEN ins.emotion_score IS NULL THEN 0 ELSE ins.seq END
    FROM ins
    ON CONFLICT (id) DO UPDATE SET
        message_count   = c.message_count + 1,
        last_message_at = GREATEST(c.last_message_at, EXCLUDED.last_message_at),
        scored_seq      = GREATEST(c.scored_seq, EXCLUDED.scored_seq),
        customer_id     = COALESCE(c.customer_id, EXCLUDED.customer_id),
        channel         = COALESCE(c.channel, EXCLUDED.channel)
    RETURNING c.id
)
SELECT ins.*, true AS created FROM ins
UNION ALL
SELECT m.seq, m.id, m.conversation_id, m.role, m.content, m.emotion_score, m.metadata, m.created_at,
       false AS created
FROM messages m
WHERE %(key)s::text IS NOT NULL AND m.conversation_id = %(cid)s AND m.idempotency_key = %(key)s
  AND NOT EXISTS (SELECT 1 FROM ins)
"""

GET_CONVERSATION = """
SELECT id, customer_id, channel, created_at, last_message_at, message_count, avg_emotion,
       emotion_count, last_emotion, emotion_trend, stats_updated_at
FROM conversations WHERE id = %(cid)s
"""

# The conversation row and one page of its messages (newest first, one extra to know whether an
# older page exists) in one statement; no row at all means the conversation does not exist.
LIST_MESSAGES = """
SELECT c.id AS cid, m.seq, m.id, m.role, m.content, m.emotion_score, m.metadata, m.created_at
FROM conversations c
LEFT JOIN LATERAL (
    SELECT seq, id, role, content, emotion_score, metadata, created_at
    FROM messages
    WHERE conversation_id = c.id AND (%(before)s::bigint IS NULL OR seq < %(before)s::bigint)
    ORDER BY seq DESC
    LIMIT %(limit)s
) m ON true
WHERE c.id = %(cid)s
ORDER BY m.seq DESC NULLS LAST
"""

# Recompute the emotion statistics of many conversations from their messages, set-based. The
# result depends only on the stored messages, so duplicates and reordering of jobs change nothing;
# the stats_seq guard keeps a slower worker holding an older snapshot from overwriting newer stats.
# Trend: least-squares slope of the last 10 scores against their position (oldest = 1).
REFRESH_EMOTION_STATS = """
WITH target AS (
    SELECT DISTINCT unnest(%(ids)s::text[]) AS id
), scored AS (
    SELECT m.conversation_id, m.seq, m.emotion_score,
           row_number() OVER (PARTITION BY m.conversation_id ORDER BY m.seq DESC) AS recent
    FROM messages m JOIN target t ON t.id = m.conversation_id
    WHERE m.emotion_score IS NOT NULL
), agg AS (
    SELECT conversation_id,
           avg(emotion_score) AS avg_emotion,
           count(*) AS n,
           max(seq) AS max_seq,
           (array_agg(emotion_score ORDER BY seq DESC))[1] AS last_emotion,
           regr_slope(emotion_score, -recent) FILTER (WHERE recent <= 10) AS slope
    FROM scored GROUP BY conversation_id
)
UPDATE conversations c SET
    avg_emotion = a.avg_emotion,
    emotion_count = a.n,
    last_emotion = a.last_emotion,
    emotion_trend = a.slope,
    stats_seq = a.max_seq,
    stats_updated_at = now()
FROM agg a
WHERE c.id = a.conversation_id AND c.stats_seq <= a.max_seq
RETURNING c.id
"""

# Conversations whose statistics are behind their scored messages for longer than the grace period
# (their job was lost or is stuck): the reconciler re-enqueues them.
STALE_STATS = """
SELECT id FROM conversations
WHERE scored_seq > stats_seq AND last_message_at < now() - make_interval(secs => %(grace)s)
ORDER BY last_message_at
LIMIT %(limit)s
"""


# Many messages added by the worker (booking confirmations, follow-ups): the CTEs ``msg_in``, ``msg``
# and ``conv`` for a statement's WITH clause (``{insert_messages}``, parameters from
# ``Messages.params()``). ``ON CONFLICT`` on the messages' idempotency key does nothing for a repeat,
# and each conversation is created or has ``message_count`` / ``last_message_at`` advanced by
# exactly the messages inserted (grouped: one batch may hold two messages of one conversation). The
# foreign key from messages to conversations is checked at the end of the statement.
INSERT_MESSAGES_CTE = sql.SQL("""
msg_in AS (
    SELECT * FROM unnest(%(m_cids)s::text[], %(m_roles)s::text[], %(m_contents)s::text[], %(m_meta)s::jsonb[],
                         %(m_keys)s::text[]) AS m(conversation_id, role, content, metadata, idempotency_key)
), msg AS (
    INSERT INTO messages (conversation_id, role, content, metadata, idempotency_key)
    SELECT conversation_id, role, content, metadata, idempotency_key FROM msg_in
    ON CONFLICT ON CONSTRAINT messages_idempotency_key DO NOTHING
    RETURNING conversation_id, created_at
), conv AS (
    INSERT INTO conversations AS c (id, created_at, last_message_at, message_count)
    SELECT conversation_id, min(created_at), max(created_at), count(*) FROM msg GROUP BY conversation_id
    ON CONFLICT (id) DO UPDATE SET
        message_count   = c.message_count + EXCLUDED.message_count,
        last_message_at = GREATEST(c.last_message_at, EXCLUDED.last_message_at)
    RETURNING c.id
)""")


@dataclass
class Messages:
    """Messages to add to conversations with ``INSERT_MESSAGES_CTE``, column-wise (for ``unnest``)."""

    cids: list[str] = field(default_factory=list)
    roles: list[str] = field(default_factory=list)
    contents: list[str] = field(default_factory=list)
    meta: list[Jsonb] = field(default_factory=list)
    keys: list[str] = field(default_factory=list)

    def add(self, conversation_id: str, role: str, content: str, metadata: dict[str, Any], key: str) -> None:
        self.cids.append(conversation_id)
        self.roles.append(role)
        self.contents.append(content)
        self.meta.append(Jsonb(metadata))
        self.keys.append(key)

    def params(self) -> dict[str, Any]:
        return {
            "m_cids": self.cids,
            "m_roles": self.roles,
            "m_contents": self.contents,
            "m_meta": self.meta,
            "m_keys": self.keys,
        }


def insert_message(
    db: Database,
    *,
    conversation_id: str,
    role: str,
    content: str,
    emotion_score: float | None,
    metadata: dict[str, Any],
    idempotency_key: str | None,
    customer_id: str | None,
    channel: str | None,
) -> InsertedMessageRow | None:
    """Store a message; the row has ``created`` False when the idempotency key was seen before.

    ``None`` only in the rare race where the original request with the same key is committing
    concurrently; calling again returns it.
    """
    row = db.fetchone(
        INSERT_MESSAGE,
        {
            "cid": conversation_id,
            "role": role,
            "content": content,
            "emotion_score": emotion_score,
            "metadata": Jsonb(metadata),
            "key": idempotency_key,
            "customer_id": customer_id,
            "channel": channel,
        },
    )
    return cast(InsertedMessageRow | None, row)


def get_conversation(db: Database, conversation_id: str) -> dict[str, Any] | None:
    return db.fetchone(GET_CONVERSATION, {"cid": conversation_id})


def list_messages(db: Database, conversation_id: str, *, limit: int, before: int | None) -> list[dict[str, Any]]:
    return db.fetchall(LIST_MESSAGES, {"cid": conversation_id, "limit": limit, "before": before})


def refresh_emotion_stats(db: Database, conversation_ids: list[str]) -> list[str]:
    rows = db.fetchall(REFRESH_EMOTION_STATS, {"ids": conversation_ids})
    return [row["id"] for row in rows]


def stale_stats(db: Database, *, grace_seconds: int, limit: int) -> list[str]:
    return [row["id"] for row in db.fetchall(STALE_STATS, {"grace": grace_seconds, "limit": limit})]
