"""The plans of the hot statements: on tables big enough for the planner to choose (bench.scale's
loader at a small size: 100 chefs' holds over 20 days, 40,000 messages, their follow-ups; ANALYZE),
EXPLAIN of each statement the API and the worker run shows it using its index, and no statement reads a
whole table (no Seq Scan of bookings, messages, conversations or followups). A new statement, or a
changed one that loses its index, fails here long before a table is large enough for anyone to notice.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import uuid4
from zoneinfo import ZoneInfo

import psycopg
import pytest
from hibachi.bookings import repository as bookings
from hibachi.conversations import repository as conversations
from hibachi.followups import repository as followups
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from bench import scale
from tests.support.common import own_database

WHOLE_TABLES = {"bookings", "messages", "conversations", "followups", "chef_cells"}
# what every booking statement takes besides its own: who acts (a staff caller reaches every booking;
# the assistant's reach is checked by its own tests) and the actor its event records
COMMON: dict[str, Any] = {
    "reach_all": True,
    "reach_cid": None,
    "actor": Jsonb({"kind": "staff", "sub": "plans", "via": "test"}),
}
SHAPE = scale.Shape(scale=0, days=20, past_days=5, open_days=5, bookings=10_000, conversations=400)


@pytest.fixture(scope="module")
def conn(database_url: str) -> Iterator[psycopg.Connection]:
    """A database of this module's own on the test server, loaded and analyzed (a few seconds)."""
    with own_database(database_url, "hibachi_plans") as url:
        yield from _loaded(url)


def _loaded(url: str) -> Iterator[psycopg.Connection]:
    scale.load(url, SHAPE, datetime.now(ZoneInfo(scale.ZONE)).date(), lambda message: None)
    with psycopg.connect(url, autocommit=True, row_factory=dict_row) as c:
        c.execute("""INSERT INTO followups (booking_id, version, status, due_at, sent_at)
                     SELECT id, version, CASE WHEN status = 'cancelled' THEN 'cancelled'
                                              WHEN followup_due_at < now() THEN 'sent' ELSE 'pending' END,
                            followup_due_at, CASE WHEN status = 'confirmed' AND followup_due_at < now() THEN now() END
                     FROM bookings""")
        c.execute("ANALYZE")
        yield c


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


def plan_of(conn: psycopg.Connection, statement: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    """The nodes of the plan the app's statement gets (parameters bound as the app binds them)."""
    row = conn.execute("EXPLAIN (FORMAT JSON) " + statement, {**COMMON, **params}).fetchone()
    document = row["QUERY PLAN"]
    document = json.loads(document) if isinstance(document, str) else document
    return list(_nodes(document[0]["Plan"]))


def check(conn: psycopg.Connection, statement: str, params: dict[str, Any], *indexes: str | tuple[str, ...]) -> None:
    """No Seq Scan of a large table, and each of ``indexes`` used (a tuple: one of those, either serves)."""
    nodes = plan_of(conn, statement, params)
    seq = sorted({n["Relation Name"] for n in nodes if n["Node Type"] == "Seq Scan"} & WHOLE_TABLES)
    used = {n["Index Name"] for n in nodes if "Index Name" in n}
    shape = [(n["Node Type"], n.get("Relation Name"), n.get("Index Name")) for n in nodes if "Scan" in n["Node Type"]]
    assert not seq, f"reads all of {seq}: {shape}"
    missing = [i for i in indexes if not ({i} if isinstance(i, str) else set(i)) & used]
    assert not missing, f"expected {missing} among the indexes; the scans: {shape}"


@pytest.fixture(scope="module")
def sample(conn: psycopg.Connection) -> dict[str, Any]:
    """A booking (confirmed, ahead) and its customer, as loaded."""
    return conn.execute(
        "SELECT * FROM bookings WHERE status = 'confirmed' AND event_start > now() ORDER BY event_start LIMIT 1"
    ).fetchone()


def _message_params(key: str | None = "k-1") -> dict[str, Any]:
    return {
        "cid": "scale-c5",
        "role": "user",
        "content": "Hello",
        "emotion_score": 0.5,
        "metadata": Jsonb({}),
        "caller": "chat-web",
        "key": key,
        "hash": "0" * 64,
        "customer_id": None,
        "channel": "web",
    }


# -- the API -----------------------------------------------------------------------------------------------
def test_store_message(conn):
    check(conn, conversations.INSERT_MESSAGE, _message_params(), "messages_caller_key")


def test_conversation_and_its_messages_page(conn):
    check(conn, conversations.GET_CONVERSATION, {"cid": "scale-c5"}, "conversations_pkey")
    for before in (None, 10**9):
        params = {"cid": "scale-c5", "limit": 51, "before": before}
        check(conn, conversations.LIST_MESSAGES, params, "conversations_pkey", "messages_conversation_seq")


def _slot(start: datetime, hold_minutes: int = 180) -> dict[str, Any]:
    return {
        "start": start,
        "end": start + timedelta(minutes=hold_minutes - 60),
        "held_until": start + timedelta(minutes=hold_minutes),
        "due": start + timedelta(days=1),
        "duration": hold_minutes - 60,
        "guests": 10,
        "chef_count": 100,
    }


def test_create_booking(conn):
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=30)
    params = {
        **_slot(start),
        "timezone": scale.ZONE,
        "name": "Ada",
        "phone": "+14155550123",
        "email": "ada@example.com",
        "address": Jsonb({"line1": "1 Market St"}),
        "conversation_id": "scale-c5",
        "notes": None,
        "caller": "chat-web",
        "key": "booking-1",
        "hash": "0" * 64,
    }
    check(conn, bookings.CREATE_BOOKING, params, "bookings_caller_key", "bookings_confirmed_holds")


def test_get_cancel_and_reschedule_a_booking(conn, sample):
    check(conn, bookings.GET_BOOKING, {"id": sample["id"]}, "bookings_pkey")
    check(conn, bookings.CANCEL_BOOKING, {"id": sample["id"]}, "bookings_pkey")
    params = {"id": sample["id"], "caller": "chat-web", "key": "change-1"}
    check(conn, bookings.GET_FOR_CHANGE, params, "bookings_pkey")  # booking_changes is empty here
    params = {
        **_slot(sample["event_start"] + timedelta(days=1)),
        "id": sample["id"],
        "version": 1,
        "current_chef": sample["chef_id"],
        "caller": "chat-web",
        "key": "change-1",
        "hash": "0" * 64,
        "old_start": sample["event_start"],
        "old_duration": sample["duration_minutes"],
        "old_guests": sample["guest_count"],
    }
    check(conn, bookings.RESCHEDULE_BOOKING, params, "bookings_pkey", "bookings_confirmed_holds")


@pytest.mark.parametrize("days", [1, 3])
@pytest.mark.parametrize("exclude", [False, True], ids=["availability", "409 of a PATCH"])
def test_availability(conn, sample, days, exclude):
    first = sample["event_start"].replace(hour=18, minute=0, second=0) + timedelta(days=2)
    starts = [first + timedelta(days=d, minutes=30 * k) for d in range(days) for k in range(19)]
    params = {
        "starts": [int(s.timestamp()) for s in starts],
        "first": starts[0],
        "last": starts[-1],
        "hold": timedelta(minutes=180),
        "chef_count": 100,
        "exclude": sample["id"] if exclude else None,
    }
    # the summary first (chef_cells); the holds for what it leaves undecided, and for every start of a 409
    # of a PATCH (the moved booking's own hold is in the summary, so it is not read)
    summary = () if exclude else ("chef_cells_pkey",)
    check(conn, bookings.FREE_STARTS, params, *summary, "bookings_confirmed_holds")


SEARCHES = {
    "phone": ({"phone": "+12000000007"}, "bookings_phone"),
    "email": ({"email": "customer7@example.com"}, "bookings_email"),
    "conversation_id": ({"conversation_id": "scale-c5"}, "bookings_conversation"),
    "status": ({"status": "cancelled"}, ("bookings_status", "bookings_event_start")),
    "from/to": ({"from": "2027-01-10", "to": "2027-01-12"}, "bookings_event_start"),
    "the default view": (
        {"status": "confirmed", "today": True},
        ("bookings_status", "bookings_event_start", "bookings_confirmed_holds"),
    ),
    "phone, a later page": ({"phone": "+12000000007", "after": True}, "bookings_phone"),
}


@pytest.mark.parametrize("search", list(SEARCHES), ids=list(SEARCHES))
def test_search(conn, sample, search):
    filters, index = SEARCHES[search]
    names = [name for name in bookings._SEARCH_FILTERS if name in filters]
    params: dict[str, Any] = {**filters, "limit": 21}
    if filters.get("from"):
        day = (datetime.now(UTC) + timedelta(days=10)).date()
        params.update({"from": day.isoformat(), "to": (day + timedelta(days=2)).isoformat()})
    if "after" in filters:
        params.update({"after_start": sample["event_start"], "after_id": sample["id"]})
    check(conn, bookings.search_sql(names), params, index)


# -- the worker --------------------------------------------------------------------------------------------
def test_emotion_statistics(conn):
    ids = [f"scale-c{n}" for n in range(10)]
    attention = {"ids": ids, "enter": -0.05, "leave": 0.03, "min_scores": 4}
    check(conn, conversations.refresh_emotion_stats_sql(), attention, "conversations_pkey")
    check(conn, conversations.STALE_STATS, {"grace": 60, "limit": 100}, "conversations_stats_behind")


def test_followup_statements(conn, sample):
    ids = [r["id"] for r in conn.execute("SELECT id FROM bookings ORDER BY id LIMIT 10").fetchall()]
    versions = [1] * len(ids)
    check(conn, followups.SYNC_FOLLOWUPS, {"ids": ids, "lead": 24}, "bookings_pkey", "followups_pkey")
    claim = {"ids": ids, "versions": versions, "slack": 60}
    check(conn, followups.CLAIM_SENDS, claim, ("followups_pkey", "followups_pending_due"), "bookings_pkey")
    messages = conversations.Messages()
    for n in range(3):
        messages.add(f"scale-c{n}", "system", "Booking confirmed", {"kind": "booking_confirmed"}, f"key-{uuid4()}")
    finish = {
        **messages.params(),
        "s_ids": ids,
        "s_versions": versions,
        "s_names": [f"s-{i}" for i in range(len(ids))],
        "d_ids": ids,
        "d_versions": versions,
        "r_ids": ids,
        "r_versions": versions,
        "r_names": [f"r-{i}" for i in range(len(ids))],
    }
    check(conn, followups.FINISH_SCHEDULES, finish, "followups_pkey", "bookings_pkey")
    sends = {**messages.params(), "d_ids": ids, "d_versions": versions, "d_ok": [True] * len(ids)}
    check(conn, followups.FINISH_SENDS, sends, ("followups_pkey", "followups_sending"))
    check(conn, followups.BEHIND_BOOKINGS, {"grace": 60, "limit": 100}, "bookings_followup_behind")
    check(
        conn,
        followups.DUE_FOLLOWUPS,
        {"grace": 60, "stuck": 300, "limit": 100},
        "followups_sending",
        "followups_pending_due",
    )
