"""A real outage: a dedicated embedded PostgreSQL (its own data folder and port) is stopped and
started again under a running handler. /health answers 503 naming the database while it is down and
200 once it is back, with no restart of the handler (the same loaded module, the same process).
Waiting is polling with a deadline, never a fixed sleep."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import pytest
from hibachi import settings as settings_module

from local.stack import wait_until
from testkit.events import http_event
from tests.conftest import dedicated_postgres, load_function, new_id

OUTAGE_PG_PORT = int(os.environ.get("TEST_OUTAGE_PG_PORT", "54341"))


@pytest.fixture(scope="module")
def outage_pg() -> Iterator[tuple[object, str]]:
    with dedicated_postgres("outage", OUTAGE_PG_PORT) as server:
        yield server


def health(context) -> tuple[int, dict]:
    response = load_function("health").lambda_handler(http_event("GET", "/health", route_key="GET /health"), context)
    return response["statusCode"], json.loads(response["body"])


def store(context, cid: str) -> int:
    route = "POST /conversations/{conversation_id}/messages"
    event = http_event(
        "POST",
        f"/conversations/{cid}/messages",
        route_key=route,
        path_parameters={"conversation_id": cid},
        headers={"content-type": "application/json"},
        body=json.dumps({"role": "user", "content": "are you there?"}),
        claims={"sub": "t"},
        scopes=["messages:write", "staff"],
    )
    return load_function("store_message").lambda_handler(event, context)["statusCode"]


def test_health_503_while_postgres_is_stopped_and_200_when_it_is_back(settings, context, outage_pg):
    pg, url = outage_pg
    with settings_module.override(database_url=url):
        assert health(context)[0] == 200  # the connections are open and warm
        cid = new_id("outage")
        assert store(context, cid) == 201
        pg.stop()
        try:
            _status, body = wait_until(
                lambda: (lambda r: r if r[0] == 503 else None)(health(context)),
                timeout=15,
                message="/health answers 503",
            )
            assert body["status"] == "degraded" and body["failing"] == ["database"]
            assert body["database"]["status"] in ("unavailable", "timeout")
            assert store(context, cid) == 503  # the API says so too, and changes nothing
        finally:
            pg.start()
        _status, body = wait_until(
            lambda: (lambda r: r if r[0] == 200 else None)(health(context)), timeout=30, message="/health back to 200"
        )
        assert body == {
            "status": "ok",
            "failing": [],
            "database": {"status": "ok", "latency_ms": body["database"]["latency_ms"]},
        }
        assert wait_until(lambda: store(context, cid) == 201, timeout=30, message="the API stores again")
