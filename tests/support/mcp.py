"""The assistant's tools: their names, the arguments of a booking on a free slot, a tool call in
process (``call_tool``) and an MCP session through the gateway with the official client (``run``)."""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, date, datetime, timedelta
from typing import Any, cast
from zoneinfo import ZoneInfo

import httpx2
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

from local.events import LambdaContext, http_event
from testkit.functions import load_function

TZ = "America/Los_Angeles"
ALL = ("bookings:write", "bookings:read", "messages:write", "conversations:read", "staff")
TOOLS = {
    "check_availability",
    "find_bookings",
    "create_booking",
    "get_booking",
    "reschedule_booking",
    "cancel_booking",
    "store_message",
    "get_conversation_history",
    "start_verification",
    "confirm_verification",
}


def free_slot() -> str:
    """A local start nobody else books: a random day 400-1000 days ahead (three-year horizon), at a
    random half hour of the service hours (11:00-19:30)."""
    day = datetime.now(ZoneInfo(TZ)).date() + timedelta(days=random.randint(400, 1000))
    return f"{day.isoformat()}T{random.randint(11, 19):02d}:{random.choice((0, 30)):02d}"


def booking_args(**over: Any) -> dict[str, Any]:
    return {
        "customer": {"name": "Dana Whitfield", "phone": "+14155550123", "email": "dana@example.com"},
        "event_start": free_slot(),
        "timezone": TZ,
        "guest_count": 12,
        "address": {"line1": "1200 Seacliff Ave", "city": "San Francisco", "state": "CA", "postal_code": "94121"},
        "idempotency_key": str(uuid.uuid4()),
        **over,
    }


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


def error_of(result: Any) -> dict[str, Any]:
    """A tool error's REST error object: the text content (no structured content: the tool's output
    schema declares its success result only)."""
    assert result.is_error and result.structured_content is None, result
    error: dict[str, Any] = json.loads(result.content[0].text)["error"]
    return error


# Days 1001-1090 ahead (inside the three-year horizon) belong to one caller each: ``free_slot`` never
# books there, and this process (one worker, one database) hands each of them out once.
_OWN_DAYS = random.sample(range(1001, 1091), k=90)


def far_days() -> int:
    """How many days ahead a day of the caller's own lies: no other test books on it, so a scenario
    that fills its chefs is never refused for another test's booking."""
    if not _OWN_DAYS:
        raise RuntimeError("all 90 days of their own are handed out: widen the range or reuse a day")
    return _OWN_DAYS.pop()


def far_day() -> date:
    return datetime.now(UTC).date() + timedelta(days=far_days())


def post(
    context: LambdaContext, body: Any, *, scopes: Iterable[str] = ALL, headers: dict[str, str] | None = None
) -> tuple[int, Any, dict[str, Any]]:
    scopes = tuple(scopes)
    raw = body if isinstance(body, str | bytes) else json.dumps(body)
    event = http_event(
        "POST",
        "/mcp",
        route_key="POST /mcp",
        headers={
            "content-type": "application/json",
            "accept": "application/json, text/event-stream",
            **(headers or {}),
        },
        body=raw,
        claims={"sub": "agent-1", "scope": " ".join(scopes)},
        scopes=list(scopes),
    )
    response = load_function("assistant_tools").lambda_handler(event, context)
    assert response["statusCode"] < 500, response
    body_out = json.loads(response["body"]) if response.get("body") else None
    return response["statusCode"], body_out, response.get("headers") or {}


def rpc(context: LambdaContext, method: str, params: dict[str, Any] | None = None, **kw: Any) -> dict[str, Any]:
    status, body, _ = post(context, {"jsonrpc": "2.0", "id": 7, "method": method, "params": params or {}}, **kw)
    assert status == 200 and body["id"] == 7, body
    return cast(dict[str, Any], body)


def call_tool(context: LambdaContext, name: str, arguments: dict[str, Any], **kw: Any) -> dict[str, Any]:
    """The tool's result; for a tool error, also its parsed ``error`` (from the text content: an
    error has no ``structuredContent``, which the output schema declares for successes only)."""
    result: dict[str, Any] = rpc(context, "tools/call", {"name": name, "arguments": arguments}, **kw)["result"]
    payload = json.loads(result["content"][0]["text"])
    if result["isError"]:
        assert "structuredContent" not in result, result
        assert set(payload) == {"error"}, payload
        return {**result, "error": payload["error"]}
    assert payload == result["structuredContent"]
    return result


def phone() -> str:
    return f"+1415{random.randint(2_000_000, 9_999_999)}"


def booking(start: str, customer_phone: str, **over: Any) -> dict[str, Any]:
    return {
        "customer": {"name": "Dana Whitfield", "phone": customer_phone, "email": f"{uuid.uuid4().hex[:8]}@example.com"},
        "event_start": start,
        "timezone": TZ,
        "guest_count": 8,
        "address": {"line1": "1200 Seacliff Ave", "city": "San Francisco", "state": "CA", "postal_code": "94121"},
        **over,
    }
