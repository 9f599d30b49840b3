"""The assistant's MCP endpoint end to end: the official MCP client (``mcp``: ``streamable_http_client``
+ ``ClientSession``) through the local gateway (template.yaml's route and JWT authorizer) to the real
handler in its worker process, on the tests' PostgreSQL.

The walk an agent makes: initialize, list the tools, book (and retry with the same key: the same
booking), read it, move it, cancel it, store and read chat messages; then what a token without the
write scope sees (a tool error, not an HTTP error)."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx2
import pytest
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

from tests.conftest import ROOT
from tests.integration.test_assistant_tools import TOOLS, TZ, booking_args

pytestmark = pytest.mark.skipif(
    not (ROOT / "functions" / "assistant_tools" / "app.py").exists(), reason="no assistant_tools function"
)
Steps = Callable[[ClientSession], Awaitable[Any]]


async def _session_run(url: str, token: str, steps: Steps, conversation: str | None = None) -> Any:
    headers = {"Authorization": f"Bearer {token}"}
    if conversation is not None:  # the host's: the chat the assistant acts in
        headers["Hibachi-Conversation"] = conversation
    async with (
        httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(60.0)) as http,
        streamable_http_client(url, http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        return await steps(session)


def run(url: str, token: str, steps: Steps, conversation: str | None = None) -> Any:
    return asyncio.run(_session_run(url, token, steps, conversation))


def far_day() -> date:
    return datetime.now(UTC).date() + timedelta(days=random.randint(400, 1000))


def test_an_agent_books_a_chef_through_the_mcp_client(app_stack):
    url = f"{app_stack.url}/mcp"
    chat = f"mcp-e2e-{uuid.uuid4().hex[:8]}"
    day = far_day()
    args = booking_args(event_start=None, conversation_id=chat)  # a start check_availability lists

    async def steps(session: ClientSession) -> dict[str, Any]:
        out: dict[str, Any] = {}
        init = await session.initialize()
        out["init"] = init
        out["tools"] = {t.name: t for t in (await session.list_tools()).tools}
        free = await session.call_tool("check_availability", {"date": day.isoformat(), "timezone": TZ})
        out["check_availability"] = free
        starts = [s[:16] for s in free.structured_content["days"][0]["starts"]]
        args["event_start"] = starts[len(starts) // 2]
        for name, arguments in (
            ("store_message", {"conversation_id": chat, "role": "user", "content": "A chef for 12, please."}),
            ("create_booking", args),
            ("create_booking", args),  # the agent's retry after a timeout: same key, same arguments
        ):
            out.setdefault(name, []).append(await session.call_tool(name, arguments))
        booking_id = out["create_booking"][0].structured_content["id"]
        out["find_bookings"] = await session.call_tool("find_bookings", {"conversation_id": chat})
        out["get_booking"] = await session.call_tool("get_booking", {"booking_id": booking_id})
        out["reschedule_booking"] = await session.call_tool(
            "reschedule_booking", {"booking_id": booking_id, "event_start": starts[0]}
        )
        out["starts"] = starts
        out["cancel_booking"] = await session.call_tool("cancel_booking", {"booking_id": booking_id})
        out["history"] = await session.call_tool("get_conversation_history", {"conversation_id": chat})
        out["bad"] = await session.call_tool("create_booking", {**args, "guest_count": 0})
        return out

    out = run(url, app_stack.token(), steps)
    assert out["init"].server_info.name == "hibachi-assistant-tools"
    assert out["init"].protocol_version == "2025-11-25"
    assert set(out["tools"]) == TOOLS
    assert not out["check_availability"].is_error and len(out["starts"]) > 2
    assert "idempotency_key" in out["tools"]["create_booking"].input_schema["required"]

    first, retry = out["create_booking"]
    assert not first.is_error and not retry.is_error
    booking = first.structured_content
    assert booking["status"] == "confirmed" and booking["event_start"].startswith(args["event_start"])
    assert retry.structured_content == booking, "the retry with the same key is the same booking"
    assert [b["id"] for b in out["find_bookings"].structured_content["items"]] == [booking["id"]]
    assert out["get_booking"].structured_content == booking
    moved = out["reschedule_booking"].structured_content
    assert moved["event_start"].startswith(out["starts"][0]) and moved["version"] == booking["version"] + 1
    assert out["cancel_booking"].structured_content["status"] == "cancelled"
    history = out["history"].structured_content["items"]  # and the worker's "Booking confirmed" notes, if in yet
    assert history[0]["content"] == "A chef for 12, please." and {m["role"] for m in history[1:]} <= {"system"}
    assert out["bad"].is_error
    assert out["bad"].structured_content["error"]["code"] == "validation_error"
    assert out["bad"].structured_content["error"]["details"][0]["loc"] == ["arguments", "guest_count"]


def test_reschedule_takes_an_idempotency_key(app_stack):
    """Through the gateway, as an agent retries: same key and arguments, the first answer (the booking
    moved once, though it has moved on since); the key with other arguments, idempotency_key_reused.
    The REST route's side of the contract (the same 422, one key on both channels) is
    tests/integration/test_assistant_tools.py; racing retries, tests/http/test_idempotency.py."""
    day, key = far_day(), str(uuid.uuid4())

    async def steps(session: ClientSession) -> dict[str, Any]:
        await session.initialize()
        free = await session.call_tool("check_availability", {"date": day.isoformat(), "timezone": TZ})
        starts = [s[:16] for s in free.structured_content["days"][0]["starts"]]
        booking = await session.call_tool("create_booking", booking_args(event_start=starts[0]))
        move = {"booking_id": booking.structured_content["id"], "event_start": starts[-1]}
        out: dict[str, Any] = {"starts": starts, "booking": booking.structured_content}
        out["moved"] = await session.call_tool("reschedule_booking", {**move, "idempotency_key": key})
        out["moved_on"] = await session.call_tool("reschedule_booking", {**move, "event_start": starts[1]})
        out["retry"] = await session.call_tool("reschedule_booking", {**move, "idempotency_key": key})
        out["reused"] = await session.call_tool(
            "reschedule_booking", {**move, "event_start": starts[2], "idempotency_key": key}
        )
        return out

    out = run(f"{app_stack.url}/mcp", app_stack.token(), steps)
    moved = out["moved"]
    assert not moved.is_error and moved.structured_content["event_start"].startswith(out["starts"][-1])
    assert moved.structured_content["version"] == out["booking"]["version"] + 1
    assert out["moved_on"].structured_content["version"] == out["booking"]["version"] + 2
    assert not out["retry"].is_error and out["retry"].structured_content == moved.structured_content
    reused = out["reused"]
    assert reused.is_error and reused.structured_content["error"]["code"] == "idempotency_key_reused"


def test_scopes_per_tool_through_the_gateway(app_stack):
    url = f"{app_stack.url}/mcp"

    async def steps(session: ClientSession) -> Any:
        await session.initialize()
        tools = [t.name for t in (await session.list_tools()).tools]
        denied = await session.call_tool("cancel_booking", {"booking_id": str(uuid.uuid4())})
        allowed = await session.call_tool("get_booking", {"booking_id": str(uuid.uuid4())})
        return tools, denied, allowed

    tools, denied, allowed = run(url, app_stack.token(["bookings:read"]), steps, conversation="web:scopes")
    assert "cancel_booking" in tools  # listed for every token: the call says what is missing
    assert denied.is_error and denied.structured_content["error"]["code"] == "insufficient_scope"
    assert denied.structured_content["error"]["details"] == {"required_scope": "bookings:write"}
    assert allowed.is_error and allowed.structured_content["error"]["code"] == "not_found"

    # the route's authorizer: no token 401, a token with none of the tools' scopes 403
    body = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    with httpx2.Client(timeout=30) as http:
        assert http.post(url, json=body).status_code == 401
        other = {"authorization": f"Bearer {app_stack.token(['ops:read'])}"}
        assert http.post(url, json=body, headers=other).status_code == 403
        ok_headers = {"authorization": f"Bearer {app_stack.token(['messages:write'])}"}
        ok = http.post(url, json=body, headers=ok_headers)
        assert ok.status_code == 200 and ok.json() == {"jsonrpc": "2.0", "id": 1, "result": {}}
        # the transport's GET (a server-to-client SSE stream) is not offered: 405 with Allow, as MCP
        # asks of such a server; behind the authorizer as the POST
        assert http.get(url).status_code == 401
        stream = http.get(url, headers={**ok_headers, "accept": "text/event-stream"})
        assert stream.status_code == 405 and stream.headers["allow"] == "POST"
        assert stream.json()["error"]["code"] == -32600 and stream.json()["id"] is None
        # any other method has no route: the HTTP API's own 404
        assert http.delete(url, headers=ok_headers).json() == {"message": "Not Found"}


def test_openapi_mentions_the_mcp_endpoint(app_stack):
    with httpx2.Client(timeout=60) as http:
        doc = http.get(f"{app_stack.url}/openapi.json").json()
    post = doc["paths"]["/mcp"]["post"]
    assert "x-local-stub" not in post and "create_booking" in post["description"]
    assert post["security"] == [
        {"bearerAuth": ["bookings:read", "bookings:write", "messages:write", "conversations:read"]}
    ]


def test_the_readme_example_client_books_a_chef(app_stack):
    """examples/mcp_client.py, as the README runs it against `make run`."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("mcp_client_example", ROOT / "examples" / "mcp_client.py")
    assert spec and spec.loader
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    assistant = app_stack.token(["bookings:read", "bookings:write", "messages:write", "conversations:read"])
    out = asyncio.run(example.walk(f"{app_stack.url}/mcp", assistant, day=far_day()))
    assert out["booking"]["conversation_id"] == out["chat"]  # linked to the connection's chat
    assert out["free_starts"] > 0 and out["retry"] == out["booking"]
    assert out["found"] == [out["booking"]["id"]]
    assert out["cancelled"]["status"] == "cancelled" and out["moved"]["version"] == 2
    assert out["history"][0] == "Can we get a chef for 12 people next month?"
