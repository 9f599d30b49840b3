"""Book a hibachi chef through the assistant's MCP tools, with the official MCP client (``mcp``).

    make run                                  # the app on :3000, in another terminal
    export TOKEN=$(make -s token SCOPES="bookings:read bookings:write messages:write conversations:read")
    .venv/bin/python examples/mcp_client.py [http://127.0.0.1:3000/mcp]

The assistant in one chat, as the chat platform (the host) runs it: a token without ``staff`` and
the chat's id in the ``Hibachi-Conversation`` header of the connection, set by the host from its own
session, never by the model. The tools then act for that chat only: ``conversation_id`` arguments
default to it, a booking is linked to it, and ``find_bookings`` finds the bookings made in it (or
whose phone or email was verified in it).

What an LLM agent's MCP client does, step by step: ``initialize``, list the tools, store the
customer's message, check the day's free start times, book one (then retry the same call with the
same idempotency key, as an agent does after a timeout: the same booking comes back), find the
chat's bookings, move it, cancel it, read the chat back. Every tool result is printed.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx2
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

DEFAULT_URL = "http://127.0.0.1:3000/mcp"
TIMEZONE = "America/Los_Angeles"


class ToolError(Exception):
    """A tool answered ``isError``; ``error`` is the REST API's error object (code, message, details)."""

    def __init__(self, tool: str, error: dict[str, Any]):
        super().__init__(f"{tool}: {error.get('code')}: {error.get('message')}")
        self.error = error


async def call(session: ClientSession, name: str, arguments: dict[str, Any], *, quiet: bool = False) -> Any:
    result = await session.call_tool(name, arguments)
    data = result.structured_content
    if data is None:  # a server without structured content: the text is the JSON
        data = json.loads(result.content[0].text)  # type: ignore[union-attr]
    if not quiet:
        print(f"-> {name}: {json.dumps(data)[:300]}")
    if result.is_error:
        raise ToolError(name, data.get("error", {}))
    return data


async def walk(
    url: str, token: str, *, chat: str | None = None, day: date | None = None, out: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The walk in the chat ``chat`` (a new one by default); returns what happened (for tests:
    ``out`` collects it even when a step fails)."""
    out = {} if out is None else out
    day = day or datetime.now(UTC).date() + timedelta(days=30)
    chat = chat or f"example-{uuid.uuid4().hex[:8]}"
    # the host's part: who calls (the token) and for which chat (the header), on the connection
    headers = {"Authorization": f"Bearer {token}", "Hibachi-Conversation": chat}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30.0)) as http,
        streamable_http_client(url, http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        init = await session.initialize()
        out["server"] = init.server_info.name
        out["protocol_version"] = init.protocol_version
        print(f"connected to {init.server_info.name} (protocol {init.protocol_version})")
        tools = (await session.list_tools()).tools
        out["tools"] = sorted(t.name for t in tools)
        print("tools:", ", ".join(out["tools"]))

        out["chat"] = chat
        await call(
            session,
            "store_message",
            {
                "role": "user",
                "content": "Can we get a chef for 12 people next month?",
                "idempotency_key": f"{chat}-1",
            },
        )
        availability = await call(
            session,
            "check_availability",
            {"date": day.isoformat(), "days": 3, "timezone": TIMEZONE, "duration_minutes": 120},
        )
        starts = [s for d in availability["days"] for s in d["starts"]]
        out["free_starts"] = len(starts)
        start = starts[0][:16]  # local date-time without offset, as create_booking takes it

        booking_args = {
            "customer": {"name": "Dana Whitfield", "phone": "+14155550123", "email": "dana@example.com"},
            "event_start": start,
            "timezone": TIMEZONE,
            "duration_minutes": 120,
            "guest_count": 12,
            "address": {"line1": "1200 Seacliff Ave", "city": "San Francisco", "state": "CA", "postal_code": "94121"},
            "idempotency_key": str(uuid.uuid4()),
        }
        booking = await call(session, "create_booking", booking_args)
        out["booking"] = booking
        retry = await call(session, "create_booking", booking_args)  # the same key: the same booking
        out["retry"] = retry

        found = await call(session, "find_bookings", {})  # the bookings this chat reaches
        out["found"] = [b["id"] for b in found["items"]]

        later = starts[-1][:16]
        moved = await call(session, "reschedule_booking", {"booking_id": booking["id"], "event_start": later})
        out["moved"] = moved
        cancelled = await call(session, "cancel_booking", {"booking_id": booking["id"]})
        out["cancelled"] = cancelled
        history = await call(session, "get_conversation_history", {"limit": 10})
        out["history"] = [m["content"] for m in history["items"]]
    return out


def main() -> int:
    url = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("MCP_URL", DEFAULT_URL)
    token = os.environ.get("TOKEN")
    if not token:
        scopes = "bookings:read bookings:write messages:write conversations:read"  # the assistant's: no staff
        print(f'set TOKEN (TOKEN=$(make -s token SCOPES="{scopes}"))', file=sys.stderr)
        return 2
    try:
        asyncio.run(walk(url, token))
    except ToolError as exc:
        print(f"tool error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
