"""SQL of conversations and messages. Each function is one statement (one round trip).

The rows are frozen dataclasses: the services read them into their response models, nothing
serializes a row as it is. Each row class's fields are the columns its statements read, so the
column lists have one owner each (``MESSAGE_COLUMNS``, ``CONVERSATION_COLUMNS``). The conversation
bump that every message insert makes is one fragment (``_BUMP_CONVERSATION``).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any
from uuid import UUID

from psycopg import sql
from psycopg.types.json import Jsonb

from hibachi.db import Database
from hibachi.errors import ConstraintViolation


@dataclass(frozen=True, slots=True)
class MessageRow:
    """A stored message; its fields are ``MESSAGE_COLUMNS``, in that order."""

    seq: int
    id: UUID
    conversation_id: str
    role: str
    content: str
    emotion_score: float | None
    metadata: dict[str, Any] | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class InsertedMessageRow(MessageRow):
    """What ``insert_message`` stored, or found stored under the Idempotency-Key."""

    request_hash: str | None  # of the keyed request that stored it (None: no key, or stored before 0006)
    created: bool  # False: the Idempotency-Key's original message


@dataclass(frozen=True, slots=True)
class ConversationRow:
    """A conversation with its emotion statistics; its fields are ``CONVERSATION_COLUMNS``."""

    id: str
    customer_id: str | None
    channel: str | None
    created_at: datetime
    last_message_at: datetime
    message_count: int
    avg_emotion: float | None
    emotion_count: int
    last_emotion: float | None
    emotion_trend: float | None  # the least-squares slope of the last 10 scores
    stats_updated_at: datetime | None


@dataclass(frozen=True, slots=True)
class EmotionStats:
    """A conversation's emotion statistics (``RECOMPUTE_EMOTION_STATS``)."""

    emotion_count: int
    avg_emotion: float | None
    last_emotion: float | None
    emotion_trend: float | None


MESSAGE_COLUMNS = tuple(f.name for f in fields(MessageRow))
CONVERSATION_COLUMNS = tuple(f.name for f in fields(ConversationRow))


def message_columns(alias: str | None = None) -> sql.Composed:
    """The message columns, qualified with the table ``alias`` when given."""
    return sql.SQL(", ").join(sql.Identifier(alias, c) if alias else sql.Identifier(c) for c in MESSAGE_COLUMNS)


# The conversation bump every message insert makes, for an ``INSERT INTO conversations AS c`` of
# new rows (``message_count``: the messages inserted; ``scored_count``: those with a score; the
# column defaults, 0 and NULL, for what a statement does not insert): create the conversation, or
# advance its counts and last_message_at and fill customer_id / channel when still unknown.
_BUMP_CONVERSATION = sql.SQL("""ON CONFLICT (id) DO UPDATE SET
        message_count   = c.message_count + EXCLUDED.message_count,
        scored_count    = c.scored_count + EXCLUDED.scored_count,
        last_message_at = GREATEST(c.last_message_at, EXCLUDED.last_message_at),
        customer_id     = COALESCE(c.customer_id, EXCLUDED.customer_id),
        channel         = COALESCE(c.channel, EXCLUDED.channel)""")


# Store a message and create-or-update its conversation in ONE statement.
# - ``prior``: the message already stored under this key: the caller's (caller, key), or a
#   conversation-scoped key of a row that has no caller (stored before keys were per caller, or by
#   the worker). When there is one, nothing is written and it is returned (``created`` false).
# - ``conv`` first: the conversation row is created or locked and bumped (message_count, and
#   scored_count for a scored message); a scored message takes the new scored_count as its score_no.
#   The lock is held to the commit, so score_no is dense and in commit order (the statistics rely
#   on it; see _REFRESH_EMOTION_STATS). The foreign key is checked at the end of the statement.
# - ``ins``: a plain INSERT: a concurrent request with the same (caller, key) that committed first
#   makes it fail with unique_violation, which rolls the whole statement back (the bump too);
#   ``insert_message`` then runs it again and finds the winner as ``prior``.
INSERT_MESSAGE = (
    sql.SQL("""
WITH prior AS (
    SELECT {m_columns}, m.request_hash
    FROM messages m
    WHERE %(key)s::text IS NOT NULL AND m.idempotency_key = %(key)s::text
      AND (m.idempotency_caller = %(caller)s::text
           OR (m.idempotency_caller IS NULL AND m.conversation_id = %(cid)s::text))
    ORDER BY m.idempotency_caller NULLS LAST
    LIMIT 1
), conv AS (
    INSERT INTO conversations AS c (id, customer_id, channel, message_count, scored_count)
    SELECT %(cid)s, %(customer_id)s, %(channel)s, 1, CASE WHEN %(emotion_score)s::float8 IS NULL THEN 0 ELSE 1 END
    WHERE NOT EXISTS (SELECT 1 FROM prior)
    {bump}
    RETURNING c.id, c.scored_count
), ins AS (
    INSERT INTO messages (conversation_id, role, content, emotion_score, metadata, idempotency_key,
                          idempotency_caller, request_hash, score_no)
    SELECT conv.id, %(role)s, %(content)s, %(emotion_score)s, %(metadata)s, %(key)s, %(caller)s, %(hash)s,
           CASE WHEN %(emotion_score)s::float8 IS NULL THEN NULL ELSE conv.scored_count END
    FROM conv
    RETURNING {columns}, request_hash
)
SELECT ins.*, true AS created FROM ins
UNION ALL
SELECT prior.*, false AS created FROM prior
""")
    .format(m_columns=message_columns("m"), columns=message_columns(), bump=_BUMP_CONVERSATION)
    .as_string()
)

GET_CONVERSATION = (
    sql.SQL("SELECT {columns} FROM conversations WHERE id = %(cid)s")
    .format(columns=sql.SQL(", ").join(map(sql.Identifier, CONVERSATION_COLUMNS)))
    .as_string()
)

# The conversation row and one page of its messages (newest first, one extra to know whether an
# older page exists) in one statement; no row at all means the conversation does not exist, one
# row of NULLs (``m.seq`` NULL) that it has no messages (before the cursor).
LIST_MESSAGES = (
    sql.SQL("""
SELECT {m_columns}
FROM conversations c
LEFT JOIN LATERAL (
    SELECT {columns}
    FROM messages
    WHERE conversation_id = c.id AND (%(before)s::bigint IS NULL OR seq < %(before)s::bigint)
    ORDER BY seq DESC
    LIMIT %(limit)s
) m ON true
WHERE c.id = %(cid)s
ORDER BY m.seq DESC NULLS LAST
""")
    .format(m_columns=message_columns("m"), columns=message_columns())
    .as_string()
)

# Bring the emotion statistics of many conversations up to date, set-based, in ONE statement,
# reading only what is new. Per conversation that is behind (scored_count > stats_count), under its
# row lock (so two workers take turns and each sees the other's sums): add the scored messages
# numbered above stats_count to the running sums and move stats_count to the last one added. score_no
# is dense and in commit order (INSERT_MESSAGE), so those messages are exactly the ones not counted
# yet, whatever order they committed in; a duplicate or late job finds nothing new and writes
# nothing. The sum is numeric, so adding in any grouping gives the full recomputation's value.
# last_emotion and the trend (least-squares slope of the last 10 scores against their number) read
# the last 10 entries of messages_conversation_score.
# Escalation, in the same statement: the conversation starts needing attention when its trend falls
# below %(enter)s (with at least %(min_scores)s scores) and stops when it rises above %(leave)s
# (hysteresis: one bad patch, one event); the flag is read under the row lock (``behind``), and
# when it turns on, ``event`` writes the conversation's "Conversation Needs Attention" event (its
# version: the scores counted). Composed on first use (``refresh_emotion_stats_sql``): the event's
# fragment is the worker's, and the API functions that import this module never build it.
_REFRESH_EMOTION_STATS = sql.SQL("""
WITH target AS (
    SELECT DISTINCT unnest(%(ids)s::text[]) AS id
), behind AS (
    SELECT c.id, c.stats_count, c.needs_attention
    FROM conversations c JOIN target t ON t.id = c.id
    WHERE c.scored_count > c.stats_count
    ORDER BY c.id
    FOR UPDATE OF c
), fresh AS (
    SELECT b.id, b.stats_count, b.needs_attention, count(*)::int AS n, max(m.score_no) AS upto,
           sum(m.emotion_score::numeric) AS total
    FROM behind b CROSS JOIN LATERAL (
        SELECT score_no, emotion_score FROM messages
        WHERE conversation_id = b.id AND score_no > b.stats_count
        ORDER BY score_no  -- the range of messages_conversation_score after stats_count, in its order
    ) m
    GROUP BY b.id, b.stats_count, b.needs_attention
), recent AS (
    SELECT f.id, (array_agg(r.emotion_score ORDER BY r.score_no DESC))[1] AS last_emotion,
           regr_slope(r.emotion_score, r.score_no) AS slope
    FROM fresh f CROSS JOIN LATERAL (
        SELECT m.score_no, m.emotion_score FROM messages m
        WHERE m.conversation_id = f.id AND m.score_no IS NOT NULL
        ORDER BY m.score_no DESC
        LIMIT 10
    ) r
    GROUP BY f.id
), stats AS (
    UPDATE conversations c SET
        stats_count = f.upto,
        emotion_count = f.upto,
        emotion_sum = c.emotion_sum + f.total,
        avg_emotion = ((c.emotion_sum + f.total) / f.upto)::double precision,
        last_emotion = r.last_emotion,
        emotion_trend = r.slope,
        stats_updated_at = now(),
        needs_attention = a.needed,
        attention_changed_at = CASE WHEN a.needed <> f.needs_attention THEN now() ELSE c.attention_changed_at END
    FROM fresh f JOIN recent r ON r.id = f.id
    CROSS JOIN LATERAL (SELECT CASE
        WHEN f.needs_attention THEN NOT COALESCE(r.slope > %(leave)s::float8, false)
        ELSE f.upto >= %(min_scores)s::int AND COALESCE(r.slope < %(enter)s::float8, false)
    END AS needed) a
    WHERE c.id = f.id AND f.upto = f.stats_count + f.n
    RETURNING c.id, c.stats_count AS version, c.avg_emotion, c.last_emotion, c.emotion_trend,
              c.needs_attention AND NOT f.needs_attention AS entered
), {event}
SELECT id, entered FROM stats
""")

_ATTENTION_DATA = sql.SQL("""jsonb_build_object(
        'conversation_id', s.id,
        'emotion', jsonb_build_object('count', s.version, 'avg', s.avg_emotion, 'last', s.last_emotion,
                                      'trend', s.emotion_trend),
        'thresholds', jsonb_build_object('enter_trend', %(enter)s::float8, 'leave_trend', %(leave)s::float8,
                                         'min_scores', %(min_scores)s::int))""")


@functools.cache
def refresh_emotion_stats_sql() -> str:
    """The emotion statistics' statement (``_REFRESH_EMOTION_STATS``) with its event."""
    from hibachi.events.models import EventType
    from hibachi.events.repository import conversation_event

    event = conversation_event("stats", EventType.CONVERSATION_NEEDS_ATTENTION, _ATTENTION_DATA, where="s.entered")
    return _REFRESH_EMOTION_STATS.format(event=event).as_string()


# Conversations whose statistics lack a stored scored message for longer than the grace period
# (their job was lost or is stuck): the reconciler re-enqueues them. Exact: scored_count is bumped
# in the statement that stores the message.
STALE_STATS = """
SELECT id FROM conversations
WHERE scored_count > stats_count AND last_message_at < now() - make_interval(secs => %(grace)s)
ORDER BY last_message_at
LIMIT %(limit)s
"""

# The statistics as a full recomputation from the messages gives them (tests and `ops`): the mean
# of every score (numeric), the last score, and the trend over the last 10 read as the worker reads it.
RECOMPUTE_EMOTION_STATS = """
SELECT a.emotion_count, a.avg_emotion, r.last_emotion, r.emotion_trend
FROM (SELECT count(*)::int AS emotion_count, (avg(emotion_score::numeric))::double precision AS avg_emotion
      FROM messages WHERE conversation_id = %(cid)s AND score_no IS NOT NULL) a,
     (SELECT (array_agg(emotion_score ORDER BY score_no DESC))[1] AS last_emotion,
             regr_slope(emotion_score, score_no) AS emotion_trend
      FROM (SELECT score_no, emotion_score FROM messages
            WHERE conversation_id = %(cid)s AND score_no IS NOT NULL
            ORDER BY score_no DESC LIMIT 10) last10) r
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
    ON CONFLICT (conversation_id, idempotency_key) WHERE idempotency_caller IS NULL DO NOTHING
    RETURNING conversation_id, created_at
), conv AS (
    INSERT INTO conversations AS c (id, created_at, last_message_at, message_count)
    SELECT conversation_id, min(created_at), max(created_at), count(*) FROM msg GROUP BY conversation_id
    {bump}
    RETURNING c.id
)""").format(bump=_BUMP_CONVERSATION)


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
    caller: str | None = None,
    request_hash: str | None = None,
) -> InsertedMessageRow | None:
    """Store a message; the row has ``created`` False when the key's message was stored before
    (its ``request_hash`` tells a retry from another request; ``None`` for rows stored before keys
    were per caller).

    ``None`` when a concurrent request with the same key won twice in a row without its row
    becoming visible (it is still in flight).
    """
    params = {
        "cid": conversation_id,
        "role": role,
        "content": content,
        "emotion_score": emotion_score,
        "metadata": Jsonb(metadata),
        "caller": caller,
        "key": idempotency_key,
        "hash": request_hash,
        "customer_id": customer_id,
        "channel": channel,
    }
    for _ in range(2):
        try:
            row = db.fetchone(INSERT_MESSAGE, params)
        except ConstraintViolation as exc:
            if idempotency_key is None or exc.constraint != "messages_caller_key":
                raise
            # the same (caller, key) committed first: the next snapshot sees it as ``prior``
            continue
        return InsertedMessageRow(**row) if row is not None else None
    return None


def get_conversation(db: Database, conversation_id: str) -> ConversationRow | None:
    row = db.fetchone(GET_CONVERSATION, {"cid": conversation_id})
    return ConversationRow(**row) if row is not None else None


def list_messages(db: Database, conversation_id: str, *, limit: int, before: int | None) -> list[MessageRow] | None:
    """The newest ``limit`` messages before the ``before`` seq (all when None), newest first;
    ``None`` when the conversation does not exist."""
    rows = db.fetchall(LIST_MESSAGES, {"cid": conversation_id, "limit": limit, "before": before})
    if not rows:
        return None
    return [MessageRow(**row) for row in rows if row["seq"] is not None]


@dataclass(frozen=True, slots=True)
class Attention:
    """The escalation's thresholds (settings ``ATTENTION_*``)."""

    enter_trend: float
    leave_trend: float
    min_scores: int


@dataclass(frozen=True, slots=True)
class RefreshedStats:
    """A conversation ``refresh_emotion_stats`` brought up to date."""

    id: str
    entered: bool  # it started needing attention (its event was written)


def refresh_emotion_stats(db: Database, conversation_ids: list[str], attention: Attention) -> list[RefreshedStats]:
    """Bring the statistics of ``conversation_ids`` up to date (and their attention flags, with
    their events); those it changed."""
    from hibachi.events.models import SYSTEM_ACTOR

    params = {
        "ids": conversation_ids,
        "enter": attention.enter_trend,
        "leave": attention.leave_trend,
        "min_scores": attention.min_scores,
        "actor": Jsonb(SYSTEM_ACTOR),
    }
    return [RefreshedStats(**row) for row in db.fetchall(refresh_emotion_stats_sql(), params)]


def stale_stats(db: Database, *, grace_seconds: int, limit: int) -> list[str]:
    return [row["id"] for row in db.fetchall(STALE_STATS, {"grace": grace_seconds, "limit": limit})]


def recompute_emotion_stats(db: Database, conversation_id: str) -> EmotionStats:
    """The statistics recomputed from every message (an aggregate: always one row)."""
    row = db.fetchone(RECOMPUTE_EMOTION_STATS, {"cid": conversation_id})
    if row is None:  # pragma: no cover - an aggregate without GROUP BY returns one row
        raise RuntimeError("RECOMPUTE_EMOTION_STATS returned no row")
    return EmotionStats(**row)
