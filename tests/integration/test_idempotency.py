"""The Idempotency-Key contract in process (the gateway tests are tests/http/test_idempotency.py):
keys stored before they were per caller still answer their retries; contention that outlives its
retries is 409 conflict_retry, not 503; the caller comes from the token."""

from __future__ import annotations

import json

import pytest
from hibachi import idempotency
from hibachi.bookings.models import BookingIn
from hibachi.bookings.service import legacy_request_hash

from testkit.callers import staff
from testkit.events import http_event
from tests.conftest import load_function, new_id
from tests.integration.test_bookings import CREATE, booking_body, local_start
from tests.integration.test_bookings import call as booking_call

POST = "POST /conversations/{conversation_id}/messages"


def post(context, cid: str, body: dict, key: str | None, claims: dict | None = None):
    event = http_event(
        "POST",
        f"/conversations/{cid}/messages",
        route_key=POST,
        path_parameters={"conversation_id": cid},
        headers={"content-type": "application/json", **({"idempotency-key": key} if key else {})},
        body=json.dumps(body),
        claims=claims if claims is not None else {"sub": "tester"},
        scopes=["messages:write", "staff"],
    )
    response = load_function("store_message").lambda_handler(event, context)
    return response["statusCode"], json.loads(response["body"]), response.get("headers") or {}


def test_the_caller_is_client_id_else_sub():
    def event(claims):
        return {"requestContext": {"authorizer": {"jwt": {"claims": claims}}}}

    assert idempotency.caller_of(event({"sub": "u-1", "client_id": "app-7"})) == "app-7"
    assert idempotency.caller_of(event({"sub": "u-1"})) == "u-1"
    assert idempotency.caller_of(event({})) == ""
    assert idempotency.caller_of({"requestContext": {}}) == ""


def test_one_key_two_callers_in_process(settings, context, db):
    cid = new_id()
    body = {"role": "user", "content": "hi", "emotion_score": 0.1}
    assert post(context, cid, body, "k", {"sub": "u-1", "client_id": "app-a"})[0] == 201
    assert post(context, cid, body, "k", {"sub": "u-1", "client_id": "app-b"})[0] == 201
    assert post(context, cid, body, "k", {"sub": "u-1", "client_id": "app-a"})[0] == 200
    assert post(context, cid, body, "k", {"sub": "app-a"})[0] == 200  # the same caller, named by sub
    rows = db.fetchall("SELECT idempotency_caller FROM messages WHERE conversation_id = %(c)s ORDER BY seq", {"c": cid})
    assert [r["idempotency_caller"] for r in rows] == ["app-a", "app-b"]


def test_a_key_without_a_caller_is_refused(settings, db):
    """The handlers refuse a request without identity before this (401); a caller that is not HTTP
    (the MCP tools) must name one to use a key."""
    from hibachi.conversations import service
    from hibachi.conversations.models import MessageIn

    cid = new_id()
    message = MessageIn.model_validate({"role": "user", "content": "hi"})
    with pytest.raises(idempotency.CallerUnknown):
        service.post_message(cid, message, caller=staff(""), idempotency_key="k", correlation_id=None)
    assert db.fetchone("SELECT count(*) AS n FROM messages WHERE conversation_id = %(c)s", {"c": cid})["n"] == 0
    assert service.post_message(cid, message, caller=staff(""), idempotency_key=None, correlation_id=None)[1]  # no key


def test_a_message_key_stored_before_keys_were_per_caller_still_answers_its_retry(settings, context, db):
    cid = new_id()
    body = {"role": "user", "content": "stored before the migration", "emotion_score": 0.5, "metadata": {"a": 1}}
    status, first, _ = post(context, cid, body, "old-key")
    assert status == 201
    # as 0006.idempotency-per-caller leaves such a row: no caller, no request hash
    db.execute(
        "UPDATE messages SET idempotency_caller = NULL, request_hash = NULL WHERE id = %(id)s", {"id": first["id"]}
    )
    again = post(context, cid, body, "old-key", {"sub": "whoever-retries"})
    assert again[0] == 200 and again[1] == first
    other = post(context, cid, {**body, "content": "something else"}, "old-key")
    assert other[0] == 422 and other[1]["error"]["code"] == "idempotency_key_reused"
    assert post(context, f"{cid}-2", body, "old-key")[0] == 201  # its old scope was its conversation
    assert db.fetchone("SELECT count(*) AS n FROM messages WHERE conversation_id = %(c)s", {"c": cid})["n"] == 1


def test_a_booking_key_stored_before_keys_were_per_caller_still_answers_its_retry(settings, context, db):
    body = booking_body(local_start(days=50))
    key = new_id("old")
    status, first = booking_call(context, CREATE, body=body, headers={"idempotency-key": key})
    assert status == 201
    db.execute(
        "UPDATE bookings SET idempotency_caller = NULL, request_hash = %(h)s WHERE id = %(id)s",
        {"id": first["id"], "h": legacy_request_hash(BookingIn.model_validate(body))},
    )
    status, again = booking_call(context, CREATE, body=body, headers={"idempotency-key": key})
    assert status == 200 and again == first
    status, other = booking_call(context, CREATE, body={**body, "guest_count": 3}, headers={"idempotency-key": key})
    assert status == 422 and other["error"]["code"] == "idempotency_key_reused"


@pytest.fixture
def contention(db):
    """Every insert of a message whose content is 'contended' fails with serialization_failure, as
    PostgreSQL fails the loser of a race: a real server error, on every retry."""
    db.execute("""
        CREATE OR REPLACE FUNCTION test_contention() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN RAISE EXCEPTION 'could not serialize access' USING ERRCODE = '40001'; END $$""")
    db.execute("""
        CREATE TRIGGER test_contention BEFORE INSERT ON messages FOR EACH ROW
        WHEN (NEW.content = 'contended') EXECUTE FUNCTION test_contention()""")
    yield
    db.execute("DROP TRIGGER IF EXISTS test_contention ON messages")
    db.execute("DROP FUNCTION IF EXISTS test_contention()")


def test_contention_that_outlives_its_retries_is_409_conflict_retry(settings, context, db, contention, caplog):
    cid = new_id()
    with db.measure() as stats:
        status, body, headers = post(context, cid, {"role": "user", "content": "contended"}, "k-busy")
    assert status == 409 and body["error"]["code"] == "conflict_retry", body
    assert {k.lower(): v for k, v in headers.items()}["retry-after"] == "1"
    assert stats.statements == 3  # the statement and its two retries
    logged = [record.getMessage() for record in caplog.records]
    assert "database contention: retries exhausted" in logged
    assert not [line for line in logged if "unavailable" in line or "statement failed" in line], logged
    assert db.fetchone("SELECT count(*) AS n FROM conversations WHERE id = %(c)s", {"c": cid})["n"] == 0
    # nothing stored: the same key is free for the retry
    db.execute("DROP TRIGGER test_contention ON messages")
    assert post(context, cid, {"role": "user", "content": "contended"}, "k-busy")[0] == 201


def test_the_migration_keeps_every_key_and_recomputes_the_statistics(settings, context, database_url):
    """A database at 0004 with keyed rows of the old scoping (one key in two conversations, a booking
    key), migrated: every key still answers its retry, and the statistics equal a recomputation."""
    import uuid
    from urllib.parse import urlsplit, urlunsplit

    import psycopg
    from hibachi import settings as settings_module
    from hibachi.migrate import MIGRATIONS_DIR, _yoyo_url
    from hibachi.migrate import apply as apply_all
    from yoyo import get_backend, read_migrations

    name = f"hibachi_mig_{uuid.uuid4().hex[:8]}"
    parts = urlsplit(database_url)
    with psycopg.connect(urlunsplit((*parts[:2], "/postgres", *parts[3:])), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = urlunsplit((*parts[:2], f"/{name}", *parts[3:]))
    try:
        backend = get_backend(_yoyo_url(url))
        old = read_migrations(str(MIGRATIONS_DIR)).filter(lambda m: m.id < "0005")
        with backend.lock():
            backend.apply_migrations(backend.to_apply(old))
        body = booking_body(local_start(days=45))
        model = BookingIn.model_validate(body)
        with psycopg.connect(url, autocommit=True) as conn:
            for cid in ("c-1", "c-2"):  # one key in two conversations: allowed by the old scoping
                conn.execute("INSERT INTO conversations (id, message_count, scored_seq) VALUES (%s, 2, 0)", (cid,))
                for content, score in (("hello", 0.5), ("and more", -0.25)):
                    conn.execute(
                        "INSERT INTO messages (conversation_id, role, content, emotion_score, idempotency_key) "
                        "VALUES (%s, 'user', %s, %s, %s)",
                        (cid, content, score, "turn-1" if content == "hello" else None),
                    )
            conn.execute(
                """INSERT INTO bookings (chef_id, event_start, event_end, held_until, timezone, duration_minutes,
                       guest_count, customer_name, customer_phone, customer_email, address, idempotency_key,
                       request_hash, followup_due_at)
                   VALUES (1, now() + interval '45 days', now() + interval '45 days 2 hours',
                       now() + interval '45 days 3 hours', 'America/Los_Angeles', 120, 12, 'Ada', '+14155550123',
                       'ada@example.com', '{"line1": "1 Market St", "city": "SF", "state": "CA",
                       "postal_code": "94105"}', 'book-1', %s, now() + interval '46 days')""",
                (legacy_request_hash(model),),
            )
        apply_all(url)

        with settings_module.override(database_url=url):
            for cid in ("c-1", "c-2"):
                status, again, _ = post(
                    context, cid, {"role": "user", "content": "hello", "emotion_score": 0.5}, "turn-1"
                )
                assert status == 200 and again["content"] == "hello"
                status, other, _ = post(context, cid, {"role": "user", "content": "bye"}, "turn-1")
                assert status == 422 and other["error"]["code"] == "idempotency_key_reused"
            status, again = booking_call(context, CREATE, body=body, headers={"idempotency-key": "book-1"})
            assert status == 200, again
            from hibachi.conversations import repository
            from hibachi.db import get_db

            db = get_db()
            for cid in ("c-1", "c-2"):
                stats = db.fetchone(
                    "SELECT emotion_count, avg_emotion, last_emotion, emotion_trend, scored_count, stats_count "
                    "FROM conversations WHERE id = %(cid)s",
                    {"cid": cid},
                )
                assert stats.pop("scored_count") == stats.pop("stats_count") == 2
                assert repository.EmotionStats(**stats) == repository.recompute_emotion_stats(db, cid)
                assert stats["avg_emotion"] == 0.125 and stats["last_emotion"] == -0.25
            db.close()
    finally:
        with psycopg.connect(urlunsplit((*parts[:2], "/postgres", *parts[3:])), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
