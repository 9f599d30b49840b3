"""The old system's store_message flows, as plain SQL with psycopg, on tables shaped like its own
(``oldsys.ai_conversations`` / ``oldsys.ai_messages`` in the bench database).

*before*: one transaction: SELECT the conversation, INSERT it if missing, INSERT the message, SELECT
all its emotion scores, UPDATE the average, SELECT the message back.
*after*: UPSERT the conversation + INSERT the message in one transaction, the message object built
in the client (no SELECT back); the statistics went to a background task, not timed here.

psycopg (like the old SQLAlchemy/asyncpg stack) sends BEGIN and COMMIT as round trips of their own,
so *after* makes 4 round trips and *before* 7 (8 when the conversation is new); the proxy counts them.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any

from bench.operations import CHAT_TEXT

SCHEMA = """
CREATE SCHEMA IF NOT EXISTS oldsys;
CREATE TABLE IF NOT EXISTS oldsys.ai_conversations (
    id            text PRIMARY KEY,
    customer_id   text,
    channel       text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    message_count integer NOT NULL DEFAULT 0,
    avg_emotion   double precision
);
CREATE TABLE IF NOT EXISTS oldsys.ai_messages (
    id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    conversation_id text NOT NULL REFERENCES oldsys.ai_conversations (id),
    role            text NOT NULL,
    content         text NOT NULL,
    emotion_score   double precision,
    metadata        jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS ai_messages_conversation ON oldsys.ai_messages (conversation_id, created_at);
-- for the typical create_booking handler (bench/typical/create_booking)
CREATE TABLE IF NOT EXISTS oldsys.customers (
    id         bigserial PRIMARY KEY,
    email      text NOT NULL UNIQUE,
    name       text NOT NULL,
    phone      text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS oldsys.bookings (
    id              uuid PRIMARY KEY,
    customer_id     bigint NOT NULL REFERENCES oldsys.customers (id),
    event_start     timestamptz NOT NULL,
    event_end       timestamptz NOT NULL,
    timezone        text NOT NULL,
    guest_count     integer NOT NULL,
    address         jsonb NOT NULL,
    conversation_id text,
    notes           text,
    status          text NOT NULL DEFAULT 'confirmed',
    created_at      timestamptz NOT NULL DEFAULT now()
);
"""


def create_schema(dsn: str) -> None:
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(SCHEMA)


def _message(client: int, n: int) -> dict[str, Any]:
    from psycopg.types.json import Jsonb

    return {
        "role": "user",
        "content": f"{CHAT_TEXT} (turn {n})",
        "emotion_score": round((n % 21 - 10) / 10, 1),
        "metadata": Jsonb({"locale": "en-US", "turn": n}),
        "customer_id": f"customer-{client}",
        "channel": "web",
    }


def before(conn: Any, cid: str, client: int, n: int) -> dict[str, Any]:
    m = _message(client, n)
    cur = conn.cursor()
    conversation = cur.execute("SELECT * FROM oldsys.ai_conversations WHERE id = %s", (cid,)).fetchone()
    if conversation is None:
        cur.execute(
            "INSERT INTO oldsys.ai_conversations (id, customer_id, channel) VALUES (%s, %s, %s)",
            (cid, m["customer_id"], m["channel"]),
        )
    message_id = cur.execute(
        "INSERT INTO oldsys.ai_messages (conversation_id, role, content, emotion_score, metadata) "
        "VALUES (%s, %s, %s, %s, %s) RETURNING id",
        (cid, m["role"], m["content"], m["emotion_score"], m["metadata"]),
    ).fetchone()[0]
    scores = [
        row[0]
        for row in cur.execute(
            "SELECT emotion_score FROM oldsys.ai_messages WHERE conversation_id = %s AND emotion_score IS NOT NULL",
            (cid,),
        ).fetchall()
    ]
    cur.execute(
        "UPDATE oldsys.ai_conversations SET avg_emotion = %s, message_count = message_count + 1, "
        "updated_at = now() WHERE id = %s",
        (sum(scores) / len(scores) if scores else None, cid),
    )
    row = cur.execute("SELECT * FROM oldsys.ai_messages WHERE id = %s", (message_id,)).fetchone()
    conn.commit()
    return {"id": row[0], "conversation_id": cid}


def after(conn: Any, cid: str, client: int, n: int) -> dict[str, Any]:
    m = _message(client, n)
    message_id = uuid.uuid4()
    cur = conn.cursor()
    cur.execute(
        "INSERT INTO oldsys.ai_conversations AS c (id, customer_id, channel, message_count) VALUES (%s, %s, %s, 1) "
        "ON CONFLICT (id) DO UPDATE SET message_count = c.message_count + 1, updated_at = now()",
        (cid, m["customer_id"], m["channel"]),
    )
    cur.execute(
        "INSERT INTO oldsys.ai_messages (id, conversation_id, role, content, emotion_score, metadata) "
        "VALUES (%s, %s, %s, %s, %s, %s)",
        (message_id, cid, m["role"], m["content"], m["emotion_score"], m["metadata"]),
    )
    conn.commit()
    return {"id": message_id, "conversation_id": cid, "role": m["role"], "content": m["content"]}


FLOWS: dict[str, Callable[[Any, str, int, int], dict[str, Any]]] = {"old before": before, "old after": after}


class FlowWorkload:
    """One old flow per request on the client's own connection (not autocommit: a transaction),
    into the client's own conversation, which exists already (as for our store_message)."""

    def __init__(self, name: str, dsn: str, run: str):
        self.name = name
        self.flow = FLOWS[name]
        self.dsn = dsn
        self.run = run

    def open(self, client: int) -> tuple[Any, str]:
        import psycopg

        # prepare_threshold=None: every statement is one round trip from the first call on, as in the
        # old stack's steady state with its statement cache (psycopg would otherwise spend one extra
        # round trip preparing each statement on its 5th use)
        conn = psycopg.connect(self.dsn, prepare_threshold=None)
        cid = f"old-{self.run}-{self.name.split()[-1]}-{client}"
        self.flow(conn, cid, client, 0)  # creates the conversation, warms the connection
        return conn, cid

    def call(self, state: tuple[Any, str], client: int, n: int) -> float:
        conn, cid = state
        start = time.perf_counter()
        self.flow(conn, cid, client, n)
        return (time.perf_counter() - start) * 1000

    def close(self, state: tuple[Any, str]) -> None:
        state[0].close()
