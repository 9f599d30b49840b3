"""SQL of verified identities and one-time codes. Each function is one statement (one round trip).

The rate limits and the attempts are the database's: a send takes a free slot of its destination
and of its conversation under the exclusion constraints of migration 0010 (a lost race inserts
nothing and runs again, as a booking's create does), and a confirmation locks the conversation's
newest code before it counts the attempt, so concurrent guesses take turns and never exceed
``max_attempts``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from psycopg import sql

from hibachi.db import Database

# -- identities -----------------------------------------------------------------------------------------------
IDENTITY_COLUMNS = sql.SQL("conversation_id, kind, value, verified_by, verified_at")


@dataclass(frozen=True, slots=True)
class IdentityRow:
    conversation_id: str
    kind: str
    value: str
    verified_by: str
    verified_at: datetime
    created: bool  # False: the identity was proven before (the request changed nothing)


# Attach an identity, or find it attached: a repeat changes nothing (the first proof stays).
ATTACH_IDENTITY = (
    sql.SQL("""
WITH ins AS (
    INSERT INTO conversation_identities (conversation_id, kind, value, verified_by)
    VALUES (%(cid)s, %(kind)s, %(value)s, %(verified_by)s)
    ON CONFLICT (conversation_id, kind, value) DO NOTHING
    RETURNING {IDENTITY_COLUMNS}
)
SELECT {IDENTITY_COLUMNS}, true AS created FROM ins
UNION ALL
SELECT {IDENTITY_COLUMNS}, false AS created FROM conversation_identities
WHERE conversation_id = %(cid)s AND kind = %(kind)s AND value = %(value)s AND NOT EXISTS (SELECT 1 FROM ins)
""")
    .format(IDENTITY_COLUMNS=IDENTITY_COLUMNS)
    .as_string()
)


def attach_identity(db: Database, *, conversation_id: str, kind: str, value: str, verified_by: str) -> IdentityRow:
    params = {"cid": conversation_id, "kind": kind, "value": value, "verified_by": verified_by}
    for _ in range(3):
        row = db.fetchone(ATTACH_IDENTITY, params)
        if row is not None:
            return IdentityRow(**row)
        # a concurrent request attached it after this statement's snapshot: the next one sees it
    raise RuntimeError("conversation identity neither inserted nor found")  # pragma: no cover


# -- sending a code -------------------------------------------------------------------------------------------
# The lowest slot (1..max) of the destination, and of the conversation, whose codes' windows leave
# [now, now + window) free; the code is inserted only when both have one (and the identity is not
# proven here already). ``ON CONFLICT DO NOTHING`` without a target: a concurrent send that took the
# same slot makes the insert do nothing (the exclusion constraints are arbiters), and the caller runs
# the statement again. When a limit is full, ``*_free_at`` is when its first slot frees: the latest
# window end of each slot, the earliest of those.
_SLOT = """
    SELECT min(s) AS slot FROM generate_series(1, %({limit})s::int) AS s
    WHERE NOT EXISTS (
        SELECT 1 FROM verification_codes v
        WHERE {match} AND v.{column}_slot = s AND v.voided_at IS NULL
          AND v.{column}_window && tstzrange(now(), now() + make_interval(secs => %({window})s::int))
    )"""
_FREE_AT = """(
    SELECT min(upto) FROM (
        SELECT max(upper(v.{column}_window)) AS upto FROM verification_codes v
        WHERE {match} AND v.voided_at IS NULL AND v.{column}_slot <= %({limit})s::int
          AND upper(v.{column}_window) > now()
        GROUP BY v.{column}_slot
    ) AS slots
)"""
_DESTINATION = {
    "match": "v.kind = %(kind)s AND v.destination = %(dest)s",
    "column": "destination",
    "limit": "dest_max",
    "window": "dest_window",
}
_CONVERSATION = {
    "match": "v.conversation_id = %(cid)s",
    "column": "conversation",
    "limit": "conv_max",
    "window": "conv_window",
}


def _fragment(template: str, names: dict[str, str]) -> sql.SQL:
    """A fragment of constant SQL for the destination's or the conversation's limit."""
    return sql.SQL(template.format(**names))


INSERT_CODE = (
    sql.SQL("""
WITH known AS (
    SELECT verified_at FROM conversation_identities
    WHERE conversation_id = %(cid)s AND kind = %(kind)s AND value = %(dest)s
), d AS ({d_slot}
), c AS ({c_slot}
), ins AS (
    INSERT INTO verification_codes (
        conversation_id, kind, destination, code_salt, code_hash, expires_at, max_attempts,
        destination_slot, destination_window, conversation_slot, conversation_window
    )
    SELECT %(cid)s, %(kind)s, %(dest)s, %(salt)s, %(hash)s, now() + make_interval(secs => %(ttl)s::int),
           %(max_attempts)s, d.slot, tstzrange(now(), now() + make_interval(secs => %(dest_window)s::int)),
           c.slot, tstzrange(now(), now() + make_interval(secs => %(conv_window)s::int))
    FROM d, c
    WHERE d.slot IS NOT NULL AND c.slot IS NOT NULL AND NOT EXISTS (SELECT 1 FROM known)
    ON CONFLICT DO NOTHING
    RETURNING id, expires_at, max_attempts
)
SELECT ins.id, ins.expires_at, ins.max_attempts,
       EXISTS (SELECT 1 FROM known) AS already_verified,
       d.slot IS NULL AS destination_full,
       c.slot IS NULL AS conversation_full,
       CASE WHEN d.slot IS NULL THEN {d_free_at} END AS destination_free_at,
       CASE WHEN c.slot IS NULL THEN {c_free_at} END AS conversation_free_at,
       now() AS now
FROM d CROSS JOIN c LEFT JOIN ins ON true
""")
    .format(
        d_slot=_fragment(_SLOT, _DESTINATION),
        c_slot=_fragment(_SLOT, _CONVERSATION),
        d_free_at=_fragment(_FREE_AT, _DESTINATION),
        c_free_at=_fragment(_FREE_AT, _CONVERSATION),
    )
    .as_string()
)


@dataclass(frozen=True, slots=True)
class SendRow:
    """What ``insert_code`` did: a code (``id``), or why not."""

    id: UUID | None
    expires_at: datetime | None
    max_attempts: int | None
    already_verified: bool
    destination_full: bool
    conversation_full: bool
    destination_free_at: datetime | None
    conversation_free_at: datetime | None
    now: datetime


@dataclass(frozen=True, slots=True)
class Limits:
    ttl_seconds: int
    max_attempts: int
    destination_max: int
    destination_window_seconds: int
    conversation_max: int
    conversation_window_seconds: int


def insert_code(
    db: Database, *, conversation_id: str, kind: str, destination: str, salt: bytes, code_hash: bytes, limits: Limits
) -> SendRow | None:
    """Insert a code within the limits. ``None`` when concurrent sends took the free slots three
    times in a row (the caller answers 409 conflict_retry)."""
    params: dict[str, Any] = {
        "cid": conversation_id,
        "kind": kind,
        "dest": destination,
        "salt": salt,
        "hash": code_hash,
        "ttl": limits.ttl_seconds,
        "max_attempts": limits.max_attempts,
        "dest_max": limits.destination_max,
        "dest_window": limits.destination_window_seconds,
        "conv_max": limits.conversation_max,
        "conv_window": limits.conversation_window_seconds,
    }
    for _ in range(3):
        row = db.fetchone(INSERT_CODE, params)
        if row is None:  # pragma: no cover - d CROSS JOIN c is always one row
            raise RuntimeError("INSERT_CODE returned no row")
        sent = SendRow(**row)
        if sent.id is not None or sent.already_verified or sent.destination_full or sent.conversation_full:
            return sent
        # both had a free slot, yet nothing was inserted: a concurrent send took one; look again
    return None


VOID_CODE = "UPDATE verification_codes SET voided_at = now() WHERE id = %(id)s AND voided_at IS NULL"


def void_code(db: Database, code_id: UUID) -> None:
    """A code whose delivery could not be queued: it can never be confirmed, and its slots are free."""
    db.execute(VOID_CODE, {"id": code_id})


# -- confirming a code ----------------------------------------------------------------------------------------
# The conversation's newest code, locked (concurrent confirmations take turns, each seeing the
# attempts of the one before). A live one (not used, not expired, attempts left) counts the attempt
# and, when the typed code's salted hash equals the stored one, is used and its identity attached.
# The comparison is of SHA-256 digests under a secret per-code salt: how long it takes tells nothing
# of the code. The identity as it was before (``ci``: attached by the channel, or a repeat) or as
# inserted now (``ident``) is the answer.
CONFIRM_CODE = """
WITH newest AS (
    SELECT v.id, v.kind, v.destination, v.expires_at, v.max_attempts, v.attempts, v.confirmed_at,
           v.code_hash = sha256(v.code_salt || convert_to(%(code)s::text, 'UTF8')) AS matches
    FROM verification_codes v
    WHERE v.conversation_id = %(cid)s AND v.voided_at IS NULL
    ORDER BY v.created_at DESC, v.id DESC
    LIMIT 1
    FOR UPDATE
), tried AS (
    UPDATE verification_codes v
    SET attempts = v.attempts + 1, confirmed_at = CASE WHEN n.matches THEN now() END
    FROM newest n
    WHERE v.id = n.id AND n.confirmed_at IS NULL AND n.expires_at > now() AND n.attempts < n.max_attempts
    RETURNING v.attempts, v.confirmed_at
), ident AS (
    INSERT INTO conversation_identities (conversation_id, kind, value, verified_by)
    SELECT %(cid)s, n.kind, n.destination, 'code' FROM newest n, tried t WHERE t.confirmed_at IS NOT NULL
    ON CONFLICT (conversation_id, kind, value) DO NOTHING
    RETURNING verified_by, verified_at
)
SELECT n.kind, n.destination, n.matches, n.confirmed_at IS NOT NULL AS used_before,
       n.expires_at <= now() AS expired, n.max_attempts, COALESCE(t.attempts, n.attempts) AS attempts,
       t.attempts IS NOT NULL AS counted, t.confirmed_at IS NOT NULL AS confirmed_now,
       COALESCE(ci.verified_by, i.verified_by) AS verified_by, COALESCE(ci.verified_at, i.verified_at) AS verified_at
FROM newest n
LEFT JOIN tried t ON true
LEFT JOIN ident i ON true
LEFT JOIN conversation_identities ci
       ON ci.conversation_id = %(cid)s AND ci.kind = n.kind AND ci.value = n.destination
"""


@dataclass(frozen=True, slots=True)
class ConfirmRow:
    kind: str
    destination: str
    matches: bool
    used_before: bool
    expired: bool
    max_attempts: int
    attempts: int
    counted: bool  # this attempt was counted (the code was live)
    confirmed_now: bool
    verified_by: str | None
    verified_at: datetime | None


def confirm_code(db: Database, *, conversation_id: str, code: str) -> ConfirmRow | None:
    """Try ``code`` against the conversation's newest code; ``None`` when it has none."""
    row = db.fetchone(CONFIRM_CODE, {"cid": conversation_id, "code": code})
    return ConfirmRow(**row) if row is not None else None


# -- delivery (worker) -----------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class DeliverableRow:
    id: UUID
    conversation_id: str
    kind: str
    destination: str
    code_salt: bytes
    code_hash: bytes
    expires_at: datetime


# The codes of the batch still worth delivering: not delivered yet, not voided, not used, not expired.
DELIVERABLE = """
SELECT id, conversation_id, kind, destination, code_salt, code_hash, expires_at
FROM verification_codes
WHERE id = ANY(%(ids)s::uuid[]) AND sent_at IS NULL AND voided_at IS NULL AND confirmed_at IS NULL
  AND expires_at > now()
"""

MARK_SENT = "UPDATE verification_codes SET sent_at = now() WHERE id = ANY(%(ids)s::uuid[]) AND sent_at IS NULL"


def deliverable(db: Database, ids: list[UUID]) -> list[DeliverableRow]:
    return [
        DeliverableRow(**{**row, "code_salt": bytes(row["code_salt"]), "code_hash": bytes(row["code_hash"])})
        for row in db.fetchall(DELIVERABLE, {"ids": ids})
    ]


def mark_sent(db: Database, ids: list[UUID]) -> int:
    return db.execute(MARK_SENT, {"ids": ids}) if ids else 0
