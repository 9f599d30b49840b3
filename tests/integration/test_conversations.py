"""store_message and the conversation reads, in process against the real PostgreSQL."""

from __future__ import annotations

import json

import pytest
from hibachi import settings as settings_module

from testkit.events import http_event
from testkit.netproxy import PgProxy
from tests.conftest import load_function, new_id, receive_all

POST = "POST /conversations/{conversation_id}/messages"
GET_CONV = "GET /conversations/{conversation_id}"
LIST = "GET /conversations/{conversation_id}/messages"


def call(context, route_key: str, cid: str, *, body=None, headers=None, query=None, raw_body=None):
    method, template = route_key.split(" ", 1)
    path = template.replace("{conversation_id}", cid)
    event = http_event(
        method,
        path,
        route_key=route_key,
        path_parameters={"conversation_id": cid},
        query=query,
        headers={"content-type": "application/json", **(headers or {})},
        body=raw_body if raw_body is not None else (json.dumps(body) if body is not None else None),
        claims={"sub": "tester"},
        scopes=["messages:write", "conversations:read", "staff"],
    )
    response = load_function("store_message").lambda_handler(event, context)
    return response["statusCode"], json.loads(response["body"]) if response.get("body") else None


def post(context, cid, **body):
    headers = {"idempotency-key": body.pop("key")} if "key" in body else None
    return call(context, POST, cid, body=body, headers=headers)


def test_store_creates_conversation_and_returns_message(settings, context):
    cid = new_id("web:c")
    status, msg = post(
        context,
        cid,
        role="user",
        content="Hi, I need a chef for 12",
        emotion_score=0.5,
        customer_id="cust-1",
        channel="web",
        metadata={"locale": "en-US"},
    )
    assert status == 201
    assert msg["conversation_id"] == cid and msg["role"] == "user" and msg["emotion_score"] == 0.5
    assert set(msg) >= {"id", "conversation_id", "role", "content", "emotion_score", "created_at"}
    status, conv = call(context, GET_CONV, cid)
    assert status == 200
    assert conv["message_count"] == 1 and conv["customer_id"] == "cust-1" and conv["channel"] == "web"


def test_idempotency_key_returns_original_and_stores_nothing(settings, context):
    cid = new_id()
    status1, first = post(context, cid, role="user", content="hello", key="turn-1")
    status2, second = post(context, cid, role="user", content="hello", key="turn-1")
    assert (status1, status2) == (201, 200)
    assert first == second
    assert call(context, GET_CONV, cid)[1]["message_count"] == 1
    status3, third = post(context, cid, role="user", content="hello", key="turn-2")
    assert status3 == 201 and third["id"] != first["id"]


def test_store_message_is_one_round_trip(settings, context, database_url):
    from urllib.parse import urlsplit

    from local.pg import LocalPostgres  # noqa: F401 - the database may be any PostgreSQL

    parts = urlsplit(database_url)
    with (
        PgProxy((parts.hostname, parts.port or 5432)) as proxy,
        settings_module.override(database_url=proxy.dsn(database_url)),
    ):
        cid = new_id()
        post(context, cid, role="user", content="warm up the connection")
        proxy.reset()
        status, _ = post(context, cid, role="user", content="count me", emotion_score=-0.2)
        assert status == 201
        assert proxy.round_trips == 1
        proxy.reset()
        status, _ = post(context, new_id(), role="assistant", content="first message of a new conversation", key="k1")
        assert status == 201 and proxy.round_trips == 1
        proxy.reset()
        assert call(context, LIST, cid)[0] == 200 and proxy.round_trips == 1
        proxy.reset()
        assert call(context, GET_CONV, cid)[0] == 200 and proxy.round_trips == 1


def test_history_pages_oldest_to_newest(settings, context):
    cid = new_id()
    for i in range(5):
        post(context, cid, role="user" if i % 2 == 0 else "assistant", content=f"m{i}")
    status, page = call(context, LIST, cid, query={"limit": "2"})
    assert status == 200
    assert [m["content"] for m in page["items"]] == ["m3", "m4"]
    status, page2 = call(context, LIST, cid, query={"limit": "2", "before": page["next_cursor"]})
    assert [m["content"] for m in page2["items"]] == ["m1", "m2"]
    status, page3 = call(context, LIST, cid, query={"limit": "2", "before": page2["next_cursor"]})
    assert [m["content"] for m in page3["items"]] == ["m0"] and page3["next_cursor"] is None
    status, everything = call(context, LIST, cid)
    assert [m["content"] for m in everything["items"]] == [f"m{i}" for i in range(5)]


def test_unknown_conversation_is_404(settings, context):
    assert call(context, GET_CONV, new_id())[0] == 404
    status, body = call(context, LIST, new_id())
    assert status == 404 and body["error"]["code"] == "not_found"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"role": "robot", "content": "x"}, "role"),
        ({"role": "user", "content": ""}, "content"),
        ({"role": "user", "content": "x" * 8001}, "content"),
        ({"role": "user", "content": "x", "emotion_score": 1.5}, "emotion_score"),
        ({"role": "user", "content": "x", "customer_id": "c" * 129}, "customer_id"),
        ({"role": "user", "content": "x", "channel": "c" * 33}, "channel"),
        ({"role": "user", "content": "x", "metadata": {"blob": "b" * 5000}}, "metadata"),
        ({"role": "user", "content": "x", "metadata": [1, 2]}, "metadata"),
        ({"role": "user", "content": "nul \u0000 byte"}, "content"),
        ({"role": "user", "content": "x", "unexpected": 1}, "unexpected"),
        ({"content": "x"}, "role"),
    ],
)
def test_bad_bodies_get_field_level_422_and_change_nothing(settings, context, body, field):
    cid = new_id()
    status, response = call(context, POST, cid, body=body)
    assert status == 422
    assert any(field in detail["loc"] for detail in response["error"]["details"]), response
    assert call(context, GET_CONV, cid)[0] == 404


@pytest.mark.parametrize("cid", ["has space", "x" * 129, "semi;colon", "slash%2F"])
def test_bad_conversation_id_is_422(settings, context, cid):
    status, response = call(context, POST, cid, body={"role": "user", "content": "x"})
    assert status == 422 and response["error"]["details"][0]["loc"][0] == "path"


def test_malformed_json_and_oversized_body(settings, context):
    assert call(context, POST, new_id(), raw_body="{not json")[0] in (400, 422)
    status, response = call(context, POST, new_id(), raw_body=json.dumps({"role": "user", "content": "x" * 70_000}))
    assert status == 413 and response["error"]["code"] == "payload_too_large"
    deep = "[" * 5000 + "]" * 5000
    assert (
        call(
            context,
            POST,
            new_id(),
            raw_body=json.dumps({"role": "user", "content": "x"})[:-1] + ', "metadata": {"a": ' + deep + "}}",
        )[0]
        == 422
    )


def test_bad_cursor_and_limit_are_422(settings, context):
    cid = new_id()
    post(context, cid, role="user", content="x")
    assert call(context, LIST, cid, query={"before": "not-a-cursor"})[0] == 422
    assert call(context, LIST, cid, query={"limit": "0"})[0] == 422
    assert call(context, LIST, cid, query={"limit": "201"})[0] == 422


def test_database_down_is_503_and_writes_nothing(settings, context):
    with settings_module.override(database_url="postgresql://postgres@127.0.0.1:1/none", db_connect_timeout=2):
        status, body = post(context, new_id(), role="user", content="x")
    assert status == 503 and body["error"]["details"]["dependency"] == "database"


def test_scored_message_enqueues_emotion_job(settings, context, sqs):
    cid = new_id()
    status, _ = post(context, cid, role="user", content="great!", emotion_score=0.9)
    post(context, cid, role="assistant", content="unscored reply")
    assert status == 201
    messages = receive_all(sqs["client"], sqs["queue_url"])
    assert len(messages) == 1
    job = json.loads(messages[0]["Body"])
    assert job["type"] == "emotion_stats" and job["payload"] == {"conversation_id": cid}
    assert job["correlation_id"] and job["enqueued_at"]


def test_failed_send_does_not_fail_the_request(settings, context, sqs):
    with settings_module.override(jobs_queue_url=sqs["queue_url"] + "-missing"):
        status, _ = post(context, new_id(), role="user", content="still stored", emotion_score=0.1)
    assert status == 201
