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
chat's bookings, move it, read the chat back. Then the customer comes back in a new chat to cancel:
``find_bookings`` by their phone answers ``verification_required`` (that booking was made in
another chat), so the agent sends a one-time code (``start_verification``), the customer types it
(``confirm_verification``), and the search finds the booking, which is cancelled. Every tool result
is printed. Locally the code is read where a developer reads it (``python -m ops --local codes``);
when that fails, the script asks for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
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


def local_code(chat: str) -> str:
    """The code the customer received, as a developer reads it on the local stack (``python -m ops
    --local codes``: moto's SNS delivered it to an SQS inbox); asked for when that fails."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the repository's root: ops, local
    try:
        from ops.targets import LocalTarget

        target = LocalTarget()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            codes = target.codes(chat)
            if codes:
                return str(codes[-1]["code"])
            time.sleep(0.5)
    except Exception as exc:  # noqa: BLE001 - not the local stack: the customer types it
        print(f"(no local stack to read the code from: {type(exc).__name__})", file=sys.stderr)
    return input("the 6-digit code the customer received: ").strip()


async def walk(
    url: str,
    token: str,
    *,
    chat: str | None = None,
    day: date | None = None,
    out: dict[str, Any] | None = None,
    read_code: Callable[[str], str] = local_code,
) -> dict[str, Any]:
    """The walk in the chat ``chat`` (a new one by default), then the customer's return in another
    chat; returns what happened (for tests: ``out`` collects it even when a step fails).
    ``read_code(chat)``: the one-time code sent in that chat."""
    out = {} if out is None else out
    day = day or datetime.now(UTC).date() + timedelta(days=30)
    chat = chat or f"example-{uuid.uuid4().hex[:8]}"
    phone = f"+1415555{uuid.uuid4().int % 10_000:04d}"  # the customer's (one per run: codes are rate-limited)
    async with connect(url, token, chat) as session:
        await _start(session, out)
        out["chat"] = chat
        booking = await _book(session, out, chat=chat, day=day, phone=phone)

    # A week later, a new web chat: "I booked with +1 415 555 ..., we have to cancel."
    again = f"{chat}-later"
    out["chat_later"] = again
    async with connect(url, token, again) as session:
        await session.initialize()
        await _cancel_after_verification(
            session, out, phone=phone, booking_id=booking["id"], code=read_code, chat=again
        )
    return out


async def _start(session: ClientSession, out: dict[str, Any]) -> None:
    """``initialize`` and list the tools, as an agent's client starts."""
    init = await session.initialize()
    out["server"] = init.server_info.name
    out["protocol_version"] = init.protocol_version
    print(f"connected to {init.server_info.name} (protocol {init.protocol_version})")
    tools = (await session.list_tools()).tools
    out["tools"] = sorted(t.name for t in tools)
    print("tools:", ", ".join(out["tools"]))


async def _book(session: ClientSession, out: dict[str, Any], *, chat: str, day: date, phone: str) -> Any:
    """In the first chat: store the customer's message, find free starts, book one (and retry the same
    call), find the chat's bookings, move the booking, read the chat back. The booking."""
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
        "customer": {"name": "Dana Whitfield", "phone": phone, "email": "dana@example.com"},
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
    history = await call(session, "get_conversation_history", {"limit": 10})
    out["history"] = [m["content"] for m in history["items"]]
    return booking


async def _cancel_after_verification(
    session: ClientSession,
    out: dict[str, Any],
    *,
    phone: str,
    booking_id: str,
    code: Callable[[str], str],
    chat: str,
) -> None:
    """In the later chat: the booking is reached only after the customer verifies their phone here."""
    try:  # a booking of another chat: reached only through a phone verified in this one
        await call(session, "find_bookings", {"phone": phone})
    except ToolError as exc:
        out["before_verification"] = exc.error.get("code")  # verification_required
    out["verification"] = await call(session, "start_verification", {"phone": phone})
    out["verified"] = await call(session, "confirm_verification", {"code": code(chat)})
    found = await call(session, "find_bookings", {"phone": phone})
    out["found_later"] = [b["id"] for b in found["items"]]
    out["cancelled"] = await call(session, "cancel_booking", {"booking_id": booking_id})


@contextlib.asynccontextmanager
async def connect(url: str, token: str, chat: str) -> AsyncIterator[ClientSession]:
    """An MCP session as the host opens it: who calls (the token) and for which chat (the header),
    on the connection; the model never names the chat."""
    headers = {"Authorization": f"Bearer {token}", "Hibachi-Conversation": chat}
    async with (
        httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30.0)) as http,
        streamable_http_client(url, http_client=http) as (read, write),
        ClientSession(read, write) as session,
    ):
        yield session


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
