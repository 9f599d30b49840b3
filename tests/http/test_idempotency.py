"""The one Idempotency-Key contract, through the local gateway (template.yaml's routes and JWT
authorizer, the real handlers), for every route that takes a key: POST messages, POST /bookings,
PATCH /bookings/{id}.

For each route: two clients with one key never collide; the same key with the same body (in another
key order and spacing) is the original, 200, and with another body (or another resource in the
path) 422 ``idempotency_key_reused``; 20 concurrent requests with one key store exactly one change,
and every answer is 200, 201 or 409 (``idempotency_key_in_flight``, with Retry-After), never a 5xx.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest
import requests

from local.stack import LocalStack
from tests.support.bookings import booking_body, local_start

ROOT = Path(__file__).resolve().parents[2]
CONCURRENT = 20
ZONE = "America/Los_Angeles"


@pytest.fixture(scope="module")
def sql(database_url: str) -> Iterator[Callable[..., list[dict[str, Any]]]]:
    with psycopg.connect(database_url, autocommit=True, row_factory=psycopg.rows.dict_row) as conn:
        yield lambda query, *params: conn.execute(query, params).fetchall()


def headers(stack: LocalStack, key: str | None, *, client: str = "assistant-a") -> dict[str, str]:
    """A token whose caller is ``client`` (its client_id claim), and the key."""
    h = {
        **stack.auth_headers(sub=f"user-{uuid.uuid4().hex[:6]}", extra_claims={"client_id": client}),
        "content-type": "application/json",
    }
    if key is not None:
        h["idempotency-key"] = key
    return h


def send(stack: LocalStack, method: str, path: str, body: Any, key: str | None, **kw: Any) -> requests.Response:
    raw = body if isinstance(body, str) else json.dumps(body)
    return requests.request(method, stack.url + path, data=raw, headers=headers(stack, key, **kw), timeout=60)


def respaced(body: dict[str, Any]) -> str:
    """The same JSON in reverse key order with other whitespace: the same request."""
    return json.dumps(dict(reversed(list(body.items()))), indent=3)


def concurrently(fn: Callable[[int], requests.Response]) -> list[requests.Response]:
    with ThreadPoolExecutor(CONCURRENT) as pool:
        return list(pool.map(fn, range(CONCURRENT)))


def check_concurrent(answers: list[requests.Response], created: int) -> Counter:
    statuses = Counter(r.status_code for r in answers)
    assert set(statuses) <= {200, 201, 409}, {r.status_code: r.text[:200] for r in answers}
    assert statuses[201] == created
    for r in answers:
        if r.status_code == 409:
            assert r.json()["error"]["code"] == "idempotency_key_in_flight" and r.headers["retry-after"]
    bodies = {json.dumps(r.json(), sort_keys=True) for r in answers if r.status_code < 300}
    assert len(bodies) == 1, "every success answers the same original"
    print(f"\n{CONCURRENT} concurrent requests with one key: {dict(sorted(statuses.items()))}")
    return statuses


# -- POST /conversations/{id}/messages ----------------------------------------------------------------
def test_messages_two_clients_one_key(app_stack, sql):
    cid = f"idem-{uuid.uuid4().hex[:10]}"
    body = {"role": "user", "content": "hello", "emotion_score": 0.5}
    a = send(app_stack, "POST", f"/conversations/{cid}/messages", body, "turn-1", client="assistant-a")
    b = send(app_stack, "POST", f"/conversations/{cid}/messages", {**body, "content": "hi"}, "turn-1", client="b")
    assert (a.status_code, b.status_code) == (201, 201)
    assert a.json()["id"] != b.json()["id"]
    assert len(sql("SELECT 1 FROM messages WHERE conversation_id = %s", cid)) == 2


def test_messages_same_key_same_body_then_another_body(app_stack, sql):
    cid = f"idem-{uuid.uuid4().hex[:10]}"
    path = f"/conversations/{cid}/messages"
    body = {"role": "user", "content": "a table for 12", "emotion_score": 0.25, "metadata": {"a": 1, "b": [1, 2]}}
    first = send(app_stack, "POST", path, body, "k-1")
    again = send(app_stack, "POST", path, respaced(body), "k-1")
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json()
    other = send(app_stack, "POST", path, {**body, "content": "a table for 13"}, "k-1")
    assert other.status_code == 422 and other.json()["error"]["code"] == "idempotency_key_reused"
    elsewhere = send(app_stack, "POST", f"/conversations/{cid}-x/messages", body, "k-1")
    assert elsewhere.status_code == 422 and elsewhere.json()["error"]["code"] == "idempotency_key_reused"
    assert len(sql("SELECT 1 FROM messages WHERE conversation_id = %s", cid)) == 1
    assert sql("SELECT id FROM conversations WHERE id = %s", f"{cid}-x") == []
    conv = sql("SELECT message_count, scored_count FROM conversations WHERE id = %s", cid)[0]
    assert conv == {"message_count": 1, "scored_count": 1}


def test_messages_twenty_concurrent_with_one_key(app_stack, sql):
    cid = f"idem-{uuid.uuid4().hex[:10]}"
    body = {"role": "user", "content": "only once", "emotion_score": -0.5}
    answers = concurrently(lambda _: send(app_stack, "POST", f"/conversations/{cid}/messages", body, "burst"))
    check_concurrent(answers, created=1)
    assert len(sql("SELECT 1 FROM messages WHERE conversation_id = %s", cid)) == 1
    assert sql("SELECT message_count, scored_count FROM conversations WHERE id = %s", cid) == [
        {"message_count": 1, "scored_count": 1}
    ]


@pytest.mark.parametrize("key", ["k" * 129, "tab\tinside", "has space"])
def test_bad_keys_are_422_on_every_route(app_stack, sql, key):
    cid = f"idem-{uuid.uuid4().hex[:10]}"
    r = send(app_stack, "POST", f"/conversations/{cid}/messages", {"role": "user", "content": "x"}, key)
    assert r.status_code == 422 and r.json()["error"]["details"][0]["loc"] == ["header", "idempotency-key"]
    r = send(app_stack, "POST", "/bookings", booking_body(local_start(300)), key)
    assert r.status_code == 422 and r.json()["error"]["details"][0]["loc"] == ["header", "idempotency-key"]
    r = send(app_stack, "PATCH", f"/bookings/{uuid.uuid4()}", {"event_start": local_start(301)}, key)
    assert r.status_code == 422 and r.json()["error"]["details"][0]["loc"] == ["header", "idempotency-key"]
    assert sql("SELECT 1 FROM conversations WHERE id = %s", cid) == []


# -- POST /bookings -------------------------------------------------------------------------------------
def test_bookings_two_clients_one_key(app_stack, sql):
    key = f"book-{uuid.uuid4().hex[:8]}"
    a = send(app_stack, "POST", "/bookings", booking_body(local_start(200, 12)), key, client="assistant-a")
    b = send(app_stack, "POST", "/bookings", booking_body(local_start(200, 17)), key, client="assistant-b")
    assert (a.status_code, b.status_code) == (201, 201), (a.text, b.text)
    assert a.json()["id"] != b.json()["id"]
    assert len(sql("SELECT 1 FROM bookings WHERE idempotency_key = %s", key)) == 2


def test_bookings_same_key_same_body_then_another_body(app_stack, sql):
    key = f"book-{uuid.uuid4().hex[:8]}"
    body = booking_body(local_start(201, 12))
    first = send(app_stack, "POST", "/bookings", body, key)
    again = send(app_stack, "POST", "/bookings", respaced(body), key)
    assert (first.status_code, again.status_code) == (201, 200), (first.text, again.text)
    assert again.json() == first.json()
    other = send(app_stack, "POST", "/bookings", {**body, "guest_count": 11}, key)
    assert other.status_code == 422 and other.json()["error"]["code"] == "idempotency_key_reused"
    assert len(sql("SELECT 1 FROM bookings WHERE idempotency_key = %s", key)) == 1


def test_bookings_twenty_concurrent_with_one_key(app_stack, sql):
    key = f"book-{uuid.uuid4().hex[:8]}"
    body = booking_body(local_start(202, 12))
    check_concurrent(concurrently(lambda _: send(app_stack, "POST", "/bookings", body, key)), created=1)
    assert len(sql("SELECT 1 FROM bookings WHERE idempotency_key = %s", key)) == 1


# -- PATCH /bookings/{id} -------------------------------------------------------------------------------
def book(stack: LocalStack, days: int, hour: int = 12, **extra: Any) -> dict[str, Any]:
    r = send(stack, "POST", "/bookings", {**booking_body(local_start(days, hour)), **extra}, None)
    assert r.status_code == 201, r.text
    return r.json()


def changes(sql, booking_id: str) -> list[dict[str, Any]]:
    return sql(
        "SELECT idempotency_caller, idempotency_key, version FROM booking_changes WHERE booking_id = %s", booking_id
    )


def test_patch_two_clients_one_key(app_stack, sql):
    key = f"move-{uuid.uuid4().hex[:8]}"
    one, two = book(app_stack, 210), book(app_stack, 211)
    a = send(app_stack, "PATCH", f"/bookings/{one['id']}", {"event_start": local_start(210, 15)}, key, client="a")
    b = send(app_stack, "PATCH", f"/bookings/{two['id']}", {"event_start": local_start(211, 15)}, key, client="b")
    assert (a.status_code, b.status_code) == (200, 200), (a.text, b.text)
    assert a.json()["version"] == b.json()["version"] == 2
    assert len(changes(sql, one["id"])) == len(changes(sql, two["id"])) == 1


def test_patch_same_key_same_body_then_another_body_or_booking(app_stack, sql):
    key = f"move-{uuid.uuid4().hex[:8]}"
    booking, other_booking = book(app_stack, 212), book(app_stack, 213)
    path = f"/bookings/{booking['id']}"
    body = {"event_start": local_start(212, 16), "guest_count": 12}
    first = send(app_stack, "PATCH", path, body, key)
    assert first.status_code == 200 and first.json()["version"] == 2, first.text
    # a change by someone else in between: the retry still answers what the first request answered
    assert send(app_stack, "PATCH", path, {"event_start": local_start(212, 17)}, None).json()["version"] == 3
    again = send(app_stack, "PATCH", path, respaced(body), key)
    assert again.status_code == 200 and again.json() == first.json()
    other = send(app_stack, "PATCH", path, {**body, "guest_count": 13}, key)
    assert other.status_code == 422 and other.json()["error"]["code"] == "idempotency_key_reused"
    elsewhere = send(app_stack, "PATCH", f"/bookings/{other_booking['id']}", body, key)
    assert elsewhere.status_code == 422 and elsewhere.json()["error"]["code"] == "idempotency_key_reused"
    assert sql("SELECT version FROM bookings WHERE id = %s", booking["id"]) == [{"version": 3}]
    assert sql("SELECT version FROM bookings WHERE id = %s", other_booking["id"]) == [{"version": 1}]


def test_patch_twenty_concurrent_with_one_key(app_stack, sql):
    key = f"move-{uuid.uuid4().hex[:8]}"
    booking = book(app_stack, 214)
    body = {"event_start": local_start(214, 16)}
    answers = concurrently(lambda _: send(app_stack, "PATCH", f"/bookings/{booking['id']}", body, key))
    statuses = check_concurrent(answers, created=0)
    assert statuses[200] + statuses[409] == CONCURRENT
    assert {r.json()["version"] for r in answers if r.status_code == 200} == {2}
    assert sql("SELECT version FROM bookings WHERE id = %s", booking["id"]) == [{"version": 2}]
    assert len(changes(sql, booking["id"])) == 1


def test_patch_that_changes_nothing_is_a_no_op(app_stack, sql):
    cid = f"idem-{uuid.uuid4().hex[:10]}"
    booking = book(app_stack, 215, conversation_id=cid)
    bid = booking["id"]
    app_stack.drain(timeout=30)
    chat = sql("SELECT id, content FROM messages WHERE conversation_id = %s ORDER BY seq", cid)
    assert len(chat) == 1  # "Booking confirmed"
    before = sql("SELECT version, updated_at, followup_version FROM bookings WHERE id = %s", bid)
    schedules = sql("SELECT schedule_name, scheduled_at FROM followups WHERE booking_id = %s", bid)
    start = datetime.fromisoformat(booking["event_start"]).replace(tzinfo=None).isoformat(timespec="minutes")
    for body in ({"event_start": start}, {"event_start": start, "guest_count": booking["guest_count"]}):
        r = send(app_stack, "PATCH", f"/bookings/{bid}", body, None)
        assert r.status_code == 200 and r.json() == booking
    keyed = send(app_stack, "PATCH", f"/bookings/{bid}", {"event_start": start}, "noop-1")
    assert keyed.status_code == 200 and keyed.json() == booking
    other = send(app_stack, "PATCH", f"/bookings/{bid}", {"event_start": local_start(215, 15)}, "noop-1")
    assert other.status_code == 422 and other.json()["error"]["code"] == "idempotency_key_reused"
    app_stack.drain(timeout=30)
    assert sql("SELECT version, updated_at, followup_version FROM bookings WHERE id = %s", bid) == before
    assert sql("SELECT schedule_name, scheduled_at FROM followups WHERE booking_id = %s", bid) == schedules
    # no "Booking confirmed (updated)" for a change that changed nothing
    assert sql("SELECT id, content FROM messages WHERE conversation_id = %s ORDER BY seq", cid) == chat
