"""Verified identities in process against the real PostgreSQL and moto: staff attach what a channel
proved; the assistant sends a one-time code (the worker delivers it on the follow-up topic) and
confirms it. Time is injected by moving the stored times, never by sleeping."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
from hibachi import settings as settings_module

from local.events import http_event, sqs_event
from testkit.functions import load_function
from testkit.netproxy import PgProxy
from tests.support.common import new_id, receive_all

IDENTITY = "PUT /conversations/{conversation_id}/identity"
START = "POST /conversations/{conversation_id}/verifications"
CONFIRM = "POST /conversations/{conversation_id}/verifications/confirm"
ASSISTANT = ["messages:write", "conversations:read", "bookings:read", "bookings:write"]
STAFF = [*ASSISTANT, "staff"]


def call(context, route_key: str, cid: str, body: dict[str, Any], *, header: str | None = None, scopes=None):
    """The route as the assistant acting in ``header``'s conversation (default: ``cid``), or with
    ``scopes`` (staff: no header needed)."""
    method, template = route_key.split(" ", 1)
    headers = {"content-type": "application/json"}
    if scopes is None:
        scopes = ASSISTANT
        headers["hibachi-conversation"] = header or cid
    elif header:
        headers["hibachi-conversation"] = header
    event = http_event(
        method,
        template.replace("{conversation_id}", cid),
        route_key=route_key,
        path_parameters={"conversation_id": cid},
        headers=headers,
        body=json.dumps(body),
        claims={"sub": "assistant-1", "client_id": "assistant-app"},
        scopes=scopes,
    )
    response = load_function("store_message").lambda_handler(event, context)
    return response["statusCode"], json.loads(response["body"]), response.get("headers") or {}


def jobs_on_queue(aws) -> list[str]:
    return [m["Body"] for m in receive_all(aws["client"], aws["queue_url"])]


def deliver(context, bodies: list[str]) -> dict[str, Any]:
    return load_function("followup_worker").lambda_handler(sqs_event(bodies), context)


def delivered(aws) -> list[dict[str, Any]]:
    """The verification messages published on the follow-up topic (its SQS inbox)."""
    out = []
    for m in receive_all(aws["client"], aws["inbox"]):
        message = json.loads(json.loads(m["Body"])["Message"])
        if message.get("type") == "verification_code":
            out.append(message)
    return out


def send_code(context, aws, cid: str, phone: str) -> str:
    """Start a verification and run its job; the code the customer receives."""
    status, body, _ = call(context, START, cid, {"phone": phone})
    assert status == 202, body
    bodies = jobs_on_queue(aws)
    assert len(bodies) == 1
    assert deliver(context, bodies) == {"batchItemFailures": []}
    (message,) = delivered(aws)
    assert message["conversation_id"] == cid and message["customer"] == {"phone": phone}
    return str(message["code"])


def phone() -> str:
    return "+1415555" + new_id("")[-4:].translate(str.maketrans("abcdef", "123456"))


def test_a_code_sent_and_confirmed_proves_the_phone_in_its_conversation(settings, context, db, aws, caplog):
    caplog.set_level(logging.DEBUG)
    cid, number = new_id("web:v"), phone()
    status, started, _ = call(context, START, cid, {"phone": number})
    assert status == 202
    assert started["status"] == "code_sent" and started["kind"] == "phone" and started["attempts_allowed"] == 5
    assert started["destination"] == number[:2] + "*" * (len(number) - 6) + number[-4:]
    (job,) = jobs_on_queue(aws)
    envelope = json.loads(job)
    assert envelope["type"] == "send_verification" and envelope["payload"]["code"] not in envelope["id"]
    assert number not in job  # the job names the row; the worker reads the phone from the database
    assert deliver(context, [job]) == {"batchItemFailures": []}
    (message,) = delivered(aws)
    code = message["code"]
    assert len(code) == 6 and code.isdigit() and code in message["text"] and message["channel"] == "sms"
    row = db.fetchone("SELECT code_hash, sent_at, attempts FROM verification_codes WHERE conversation_id = %s", [cid])
    assert row["sent_at"] is not None and code.encode() not in bytes(row["code_hash"])
    assert deliver(context, [job]) == {"batchItemFailures": []} and delivered(aws) == []  # a redelivery: once

    wrong = f"{(int(code) + 1) % 10**6:06d}"
    status, error, _ = call(context, CONFIRM, cid, {"code": wrong})
    assert (status, error["error"]["code"], error["error"]["details"]) == (
        422,
        "verification_code_invalid",
        {"attempts_left": 4},
    )
    status, identity, _ = call(context, CONFIRM, cid, {"code": code})
    assert status == 200
    assert identity == {**identity, "conversation_id": cid, "kind": "phone", "value": number, "verified_by": "code"}
    assert call(context, CONFIRM, cid, {"code": code})[:2] == (200, identity)  # a repeat: the same answer
    stored = db.fetchall(
        "SELECT kind, value, verified_by FROM conversation_identities WHERE conversation_id = %s", [cid]
    )
    assert stored == [{"kind": "phone", "value": number, "verified_by": "code"}]
    # proven here: a new start sends nothing
    status, again, _ = call(context, START, cid, {"phone": number})
    assert (status, again["status"], again["expires_at"]) == (200, "already_verified", None)
    assert jobs_on_queue(aws) == []
    logged = "\n".join(r.getMessage() + json.dumps(getattr(r, "__dict__", {}), default=str) for r in caplog.records)
    assert code not in logged and number not in logged and number[1:] not in logged


def test_a_wrong_format_is_a_422_that_takes_no_attempt(settings, context, db, aws):
    cid = new_id("web:v")
    send_code(context, aws, cid, phone())
    for bad in ("12345", "1234567", "12a456", "١٢٣٤٥٦"):
        status, error, _ = call(context, CONFIRM, cid, {"code": bad})
        assert (status, error["error"]["code"]) == (422, "validation_error"), bad
    assert db.fetchone("SELECT attempts FROM verification_codes WHERE conversation_id = %s", [cid])["attempts"] == 0


def test_an_expired_code_verifies_nothing(settings, context, db, aws):
    cid = new_id("web:v")
    code = send_code(context, aws, cid, phone())
    db.execute(
        "UPDATE verification_codes SET expires_at = created_at + interval '1 microsecond' WHERE conversation_id = %s",
        [cid],
    )
    status, error, _ = call(context, CONFIRM, cid, {"code": code})
    assert (status, error["error"]["code"]) == (422, "verification_expired")
    assert db.fetchall("SELECT 1 FROM conversation_identities WHERE conversation_id = %s", [cid]) == []


def test_five_attempts_then_even_the_right_code_is_refused(settings, context, db, aws):
    cid = new_id("web:v")
    code = send_code(context, aws, cid, phone())
    wrong = f"{(int(code) + 7) % 10**6:06d}"
    left = [call(context, CONFIRM, cid, {"code": wrong})[1]["error"]["details"]["attempts_left"] for _ in range(5)]
    assert left == [4, 3, 2, 1, 0]
    status, error, _ = call(context, CONFIRM, cid, {"code": code})
    assert (status, error["error"]["code"]) == (422, "verification_attempts_exhausted")
    assert db.fetchone("SELECT attempts FROM verification_codes WHERE conversation_id = %s", [cid])["attempts"] == 5
    # a new code starts over
    fresh = send_code(context, aws, cid, phone())
    assert call(context, CONFIRM, cid, {"code": fresh})[0] == 200


def test_a_code_of_another_conversation_verifies_nothing_there(settings, context, db, aws):
    first, second, number = new_id("web:v"), new_id("web:v"), phone()
    code = send_code(context, aws, first, number)
    status, error, _ = call(context, CONFIRM, second, {"code": code})
    assert (status, error["error"]["code"]) == (404, "verification_not_found")
    theirs = send_code(context, aws, second, phone())
    if theirs != code:
        status, error, _ = call(context, CONFIRM, second, {"code": code})
        assert (status, error["error"]["code"]) == (422, "verification_code_invalid")
    # the assistant of the first conversation cannot reach the second one's codes at all
    status, error, _ = call(context, CONFIRM, second, {"code": theirs}, header=first)
    assert (status, error["error"]["code"]) == (404, "not_found")
    status, error, _ = call(context, START, second, {"phone": number}, header=first)
    assert (status, error["error"]["code"]) == (404, "not_found")
    assert db.fetchall("SELECT 1 FROM conversation_identities WHERE conversation_id IN (%s, %s)", [first, second]) == []
    assert call(context, CONFIRM, first, {"code": code})[0] == 200


def test_without_the_conversation_header_the_assistant_gets_403(settings, context, aws):
    cid = new_id("web:v")
    method, template = START.split(" ", 1)
    event = http_event(
        method,
        template.replace("{conversation_id}", cid),
        route_key=START,
        path_parameters={"conversation_id": cid},
        headers={"content-type": "application/json"},
        body=json.dumps({"phone": phone()}),
        claims={"sub": "assistant-1"},
        scopes=ASSISTANT,
    )
    response = load_function("store_message").lambda_handler(event, context)
    assert response["statusCode"] == 403
    assert json.loads(response["body"])["error"]["code"] == "conversation_required"
    assert jobs_on_queue(aws) == []


def test_at_most_three_codes_per_destination_then_429_with_retry_after(settings, context, db, aws):
    number = phone()
    chats = [new_id("web:v") for _ in range(4)]
    for cid in chats[:3]:
        assert call(context, START, cid, {"phone": number})[0] == 202
    status, error, headers = call(context, START, chats[3], {"phone": number})
    assert (status, error["error"]["code"]) == (429, "rate_limited")
    assert 890 <= int(headers["Retry-After"]) <= 900
    assert error["error"]["details"] == [
        {
            "limit": "destination",
            "max_sends": 3,
            "window_seconds": 900,
            "retry_after_seconds": int(headers["Retry-After"]),
        }
    ]
    assert len(jobs_on_queue(aws)) == 3
    # another number is not limited by this one
    assert call(context, START, chats[3], {"phone": phone()})[0] == 202
    # the window of the first send has passed (times moved back 14 minutes 50 s): one slot frees
    db.execute(
        "UPDATE verification_codes SET destination_window = tstzrange(lower(destination_window) - interval '890 s', "
        "upper(destination_window) - interval '890 s') WHERE conversation_id = %s",
        [chats[0]],
    )
    status, error, headers = call(context, START, chats[3], {"phone": number})
    assert status == 429 and 1 <= int(headers["Retry-After"]) <= 10
    db.execute(
        "UPDATE verification_codes SET destination_window = tstzrange(lower(destination_window) - interval '1 hour', "
        "upper(destination_window) - interval '1 hour') WHERE conversation_id = %s",
        [chats[0]],
    )
    assert call(context, START, chats[3], {"phone": number})[0] == 202


def test_the_conversation_limit_is_a_setting(settings, context, aws):
    cid = new_id("web:v")
    with settings_module.override(verification_conversation_max_sends=2, verification_conversation_window_seconds=60):
        assert [call(context, START, cid, {"phone": phone()})[0] for _ in range(2)] == [202, 202]
        status, error, headers = call(context, START, cid, {"email": "ada@example.com"})
    assert (status, error["error"]["code"], error["error"]["details"][0]["limit"]) == (
        429,
        "rate_limited",
        "conversation",
    )
    assert 1 <= int(headers["Retry-After"]) <= 60


def test_a_send_that_cannot_be_queued_is_503_and_leaves_no_code(settings, context, db, aws):
    cid, number = new_id("web:v"), phone()
    with settings_module.override(jobs_queue_url=None):
        status, error, headers = call(context, START, cid, {"phone": number})
    assert (status, error["error"]["code"], headers.get("Retry-After")) == (503, "service_unavailable", "2")
    assert db.fetchone("SELECT voided_at FROM verification_codes WHERE conversation_id = %s", [cid])["voided_at"]
    status, error, _ = call(context, CONFIRM, cid, {"code": "000000"})
    assert (status, error["error"]["code"]) == (404, "verification_not_found")
    with settings_module.override(verification_destination_max_sends=1):  # the voided code took no slot
        assert call(context, START, cid, {"phone": number})[0] == 202


def test_a_job_whose_code_is_not_its_rows_delivers_nothing(settings, context, db, aws):
    cid = new_id("web:v")
    assert call(context, START, cid, {"email": "Grace@Example.COM"})[0] == 202
    (job,) = jobs_on_queue(aws)
    forged = json.loads(job)
    forged["payload"]["code"] = f"{(int(forged['payload']['code']) + 1) % 10**6:06d}"
    assert deliver(context, [json.dumps(forged)]) == {"batchItemFailures": []}
    assert delivered(aws) == []
    assert deliver(context, [job]) == {"batchItemFailures": []}
    (message,) = delivered(aws)
    assert message["channel"] == "email" and message["customer"] == {"email": "grace@example.com"}


def test_staff_attach_an_identity_once(settings, context, db):
    cid, number = new_id("sms:v"), phone()
    status, first, _ = call(context, IDENTITY, cid, {"phone": number, "verified_by": "sms"}, scopes=STAFF)
    assert status == 201 and first["verified_by"] == "sms" and first["value"] == number
    status, again, _ = call(context, IDENTITY, cid, {"phone": number, "verified_by": "whatsapp"}, scopes=STAFF)
    assert (status, again) == (200, first)  # a repeat changes nothing
    for body in ({"phone": number, "verified_by": "code"}, {"verified_by": "sms"}, {"phone": number}):
        status, error, _ = call(context, IDENTITY, cid, body, scopes=STAFF)
        assert (status, error["error"]["code"]) == (422, "validation_error"), body
    # the assistant may not attach identities, even in its own conversation
    status, error, _ = call(context, IDENTITY, cid, {"phone": phone(), "verified_by": "sms"})
    assert (status, error["error"]["code"]) == (403, "forbidden")
    assert len(db.fetchall("SELECT 1 FROM conversation_identities WHERE conversation_id = %s", [cid])) == 1


@pytest.mark.parametrize("route", [START, CONFIRM])
def test_staff_reach_any_conversation(settings, context, aws, route):
    cid = new_id("web:v")
    body = {"phone": phone()} if route == START else {"code": "123456"}
    status, answer, _ = call(context, route, cid, body, scopes=STAFF)
    assert status == (202 if route == START else 404), answer


def test_each_route_is_one_round_trip(settings, context, database_url, aws):
    """One statement per request on every route (the send then one SQS message), a wrong code and
    a 429 included; the worker delivers a batch in two."""
    from urllib.parse import urlsplit

    parts = urlsplit(database_url)
    with (
        PgProxy((parts.hostname, parts.port or 5432)) as proxy,
        settings_module.override(database_url=proxy.dsn(database_url), verification_destination_max_sends=1),
    ):
        cid, number = new_id("web:v"), phone()
        call(context, CONFIRM, cid, {"code": "000000"})  # warm up the connection
        trips = []
        for route, body, scopes in (
            (IDENTITY, {"email": "ada@example.com", "verified_by": "sms"}, STAFF),
            (IDENTITY, {"email": "ada@example.com", "verified_by": "sms"}, STAFF),  # a repeat
            (START, {"phone": number}, None),
            (START, {"phone": number}, None),  # 429
            (CONFIRM, {"code": "000000"}, None),  # most likely wrong
        ):
            proxy.reset()
            call(context, route, cid, body, scopes=scopes)
            trips.append(proxy.round_trips)
        assert trips == [1, 1, 1, 1, 1]
        bodies = jobs_on_queue(aws)
        assert len(bodies) == 1
        proxy.reset()
        assert deliver(context, bodies * 3) == {"batchItemFailures": []}  # a batch with repeats
        assert proxy.round_trips == 2
