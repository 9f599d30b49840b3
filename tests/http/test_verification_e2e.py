"""Verified identities end to end: through the local gateway (template.yaml's routes, JWT authorizer
and scopes) and the MCP endpoint (the official client), as the assistant acting in one conversation
(a token without ``staff``, the ``Hibachi-Conversation`` header set by the host), with the worker
delivering each code through the follow-up topic; the code is read where a developer reads it
(``local.aws.sent_codes``, ``python -m ops --local codes``). Expiry is injected by moving the stored
time, never by waiting."""

from __future__ import annotations

import random
import uuid
from typing import Any

import psycopg
import pytest
import requests
from mcp import ClientSession

from local.aws import sent_codes
from local.stack import wait_until
from tests.support.mcp import Steps, booking, error_of, far_day, run

ASSISTANT = ["messages:write", "conversations:read", "bookings:read", "bookings:write"]


def chat() -> str:
    return f"web:verify-{uuid.uuid4().hex[:10]}"


def phone() -> str:
    return "+1628555" + f"{uuid.uuid4().int % 10_000:04d}"


def headers(stack, cid: str | None, scopes=ASSISTANT) -> dict[str, str]:
    out = stack.auth_headers(scopes)
    if cid is not None:
        out["Hibachi-Conversation"] = cid
    return out


def rest(stack, route: str, cid: str, body: dict[str, Any], *, header: str | None = None, scopes=ASSISTANT):
    method, path = route.split(" ", 1)
    return requests.request(
        method,
        f"{stack.url}{path.replace('{id}', cid)}",
        json=body,
        headers=headers(stack, header or cid if scopes == ASSISTANT else header, scopes),
        timeout=30,
    )


START = "POST /conversations/{id}/verifications"
CONFIRM = "POST /conversations/{id}/verifications/confirm"
IDENTITY = "PUT /conversations/{id}/identity"


def code_for(stack, cid: str, after: int = 0) -> str:
    """The newest code delivered to ``cid`` (waiting for the worker), once ``after`` were delivered."""
    url = stack.resources.verification_codes_queue_url
    found = wait_until(lambda: (c := sent_codes(stack.sqs, url, conversation_id=cid)) and len(c) > after and c, 60)
    return str(found[-1]["code"])


def other(code: str) -> str:
    return f"{(int(code) + 1) % 10**6:06d}"


def test_a_customer_proves_a_phone_through_the_gateway(app_stack):
    cid, number = chat(), phone()
    r = rest(app_stack, START, cid, {"phone": number})
    assert r.status_code == 202, r.text
    assert r.json()["status"] == "code_sent" and r.json()["destination"].endswith(number[-4:])
    code = code_for(app_stack, cid)
    r = rest(app_stack, CONFIRM, cid, {"code": other(code)})
    assert (r.status_code, r.json()["error"]["code"]) == (422, "verification_code_invalid")
    assert r.json()["error"]["details"] == {"attempts_left": 4}
    r = rest(app_stack, CONFIRM, cid, {"code": code})
    assert r.status_code == 200 and r.json()["value"] == number and r.json()["verified_by"] == "code"
    # no header: 403; another conversation's id in the path: 404, as if it did not exist
    r = requests.post(
        f"{app_stack.url}/conversations/{cid}/verifications",
        json={"phone": number},
        headers=headers(app_stack, None),
        timeout=30,
    )
    assert (r.status_code, r.json()["error"]["code"]) == (403, "conversation_required")
    r = rest(app_stack, START, chat(), {"phone": number}, header=cid)
    assert (r.status_code, r.json()["error"]["code"]) == (404, "not_found")


def test_over_the_destination_limit_429_with_retry_after(app_stack):
    number = phone()
    assert [rest(app_stack, START, chat(), {"phone": number}).status_code for _ in range(3)] == [202] * 3
    r = rest(app_stack, START, chat(), {"phone": number})
    assert (r.status_code, r.json()["error"]["code"]) == (429, "rate_limited")
    assert 0 < int(r.headers["Retry-After"]) <= 900
    assert r.json()["error"]["details"][0]["limit"] == "destination"


def test_staff_attach_an_identity_and_the_assistant_may_not(app_stack):
    cid, number = chat(), phone()
    staff = [*ASSISTANT, "staff"]
    r = rest(app_stack, IDENTITY, cid, {"phone": number, "verified_by": "sms"}, scopes=staff)
    assert r.status_code == 201 and r.json()["verified_by"] == "sms"
    again = rest(app_stack, IDENTITY, cid, {"phone": number, "verified_by": "sms"}, scopes=staff)
    assert (again.status_code, again.json()) == (200, r.json())
    r = rest(app_stack, IDENTITY, cid, {"phone": number, "verified_by": "sms"})  # the gateway's scope check
    assert r.status_code == 403


# -- through MCP --------------------------------------------------------------------------------------------
def mcp(stack, cid: str | None, steps: Steps, scopes=ASSISTANT) -> Any:
    """``steps`` after ``initialize``, in an MCP session whose host names ``cid`` on the connection."""

    async def initialized(session: ClientSession) -> Any:
        await session.initialize()
        return await steps(session)

    return run(f"{stack.url}/mcp", stack.token(scopes), initialized, conversation=cid)


def code_of(result: Any) -> tuple[str, Any]:
    """A tool error's code and details (from its text content: errors carry no structured content)."""
    error = error_of(result)
    return error["code"], error.get("details")


def test_an_agent_verifies_a_phone_over_mcp(app_stack):
    cid, number = chat(), phone()

    async def start(session: ClientSession) -> Any:
        tools = {t.name: t for t in (await session.list_tools()).tools}
        assert "verification_required" in tools["start_verification"].description
        assert tools["confirm_verification"].input_schema["properties"]["code"]["description"]
        return await session.call_tool("start_verification", {"phone": number})

    started = mcp(app_stack, cid, start)
    assert not started.is_error and started.structured_content["status"] == "code_sent"
    code = code_for(app_stack, cid)

    async def confirm(session: ClientSession) -> list[Any]:
        return [
            await session.call_tool("confirm_verification", {"code": other(code)}),
            await session.call_tool("confirm_verification", {"code": code}),
            await session.call_tool("confirm_verification", {"code": code}),  # a repeat
            await session.call_tool("start_verification", {"phone": number}),
        ]

    wrong, right, repeat, again = mcp(app_stack, cid, confirm)
    assert code_of(wrong) == ("verification_code_invalid", {"attempts_left": 4})
    assert not right.is_error and right.structured_content["value"] == number
    assert repeat.structured_content == right.structured_content
    assert again.structured_content["status"] == "already_verified"


def test_over_mcp_a_code_for_another_conversation_expiry_and_attempts(app_stack, database_url):
    first, second = chat(), chat()

    async def start(session: ClientSession) -> Any:
        return await session.call_tool("start_verification", {"email": f"{uuid.uuid4().hex[:8]}@example.com"})

    assert not mcp(app_stack, first, start).is_error
    code = code_for(app_stack, first)

    async def confirm_here(session: ClientSession) -> list[Any]:
        return [
            await session.call_tool("confirm_verification", {"code": code}),
            # the model names the first chat: out of reach for an assistant acting in the second
            await session.call_tool("confirm_verification", {"code": code, "conversation_id": first}),
        ]

    here, named = mcp(app_stack, second, confirm_here)
    assert code_of(here)[0] == "verification_not_found" and code_of(named)[0] == "not_found"

    # expiry: the stored time moves, nobody waits
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "UPDATE verification_codes SET expires_at = created_at + interval '1 microsecond' "
            "WHERE conversation_id = %s",
            [first],
        )

    async def confirm(session: ClientSession) -> Any:
        return await session.call_tool("confirm_verification", {"code": code})

    assert code_of(mcp(app_stack, first, confirm))[0] == "verification_expired"

    # attempts: a new code, five wrong tries, then even the right one is refused
    assert not mcp(app_stack, first, start).is_error
    fresh = code_for(app_stack, first, after=1)

    async def guesses(session: ClientSession) -> list[Any]:
        out = [await session.call_tool("confirm_verification", {"code": other(fresh)}) for _ in range(5)]
        return [*out, await session.call_tool("confirm_verification", {"code": fresh})]

    *wrong, last = mcp(app_stack, first, guesses)
    assert [code_of(w)[1]["attempts_left"] for w in wrong] == [4, 3, 2, 1, 0]
    assert code_of(last)[0] == "verification_attempts_exhausted"


@pytest.mark.parametrize("tool", ["start_verification", "confirm_verification"])
def test_over_mcp_without_the_header_is_conversation_required(app_stack, tool):
    arguments = {"phone": phone()} if tool == "start_verification" else {"code": "123456"}

    async def call(session: ClientSession) -> Any:
        return await session.call_tool(tool, arguments)

    assert code_of(mcp(app_stack, None, call))[0] == "conversation_required"


# -- what a verified identity reaches ------------------------------------------------------------------------
def older_booking(stack, number: str) -> dict[str, Any]:
    """A booking of the customer with ``number``, made by staff in no chat."""
    start = f"{far_day().isoformat()}T{random.choice(['12:00', '14:30', '17:00', '19:30'])}"
    r = requests.post(f"{stack.url}/bookings", json=booking(start, number), headers=stack.auth_headers(), timeout=30)
    assert r.status_code == 201, r.text
    return dict(r.json())


def test_staff_attach_the_sms_sender_then_find_bookings_by_phone_works(app_stack):
    cid, number = chat(), phone()
    older = older_booking(app_stack, number)
    search = f"{app_stack.url}/bookings/search"
    r = requests.post(search, json={"phone": number}, headers=headers(app_stack, cid), timeout=30)
    assert (r.status_code, r.json()["error"]["code"]) == (403, "verification_required")
    r = rest(app_stack, IDENTITY, cid, {"phone": number, "verified_by": "sms"}, scopes=[*ASSISTANT, "staff"])
    assert r.status_code == 201
    r = requests.post(search, json={"phone": number}, headers=headers(app_stack, cid), timeout=30)
    assert r.status_code == 200 and [b["id"] for b in r.json()["items"]] == [older["id"]]
    # only in that chat
    r = requests.post(search, json={"phone": number}, headers=headers(app_stack, chat()), timeout=30)
    assert r.status_code == 403


def test_an_agent_verifies_before_finding_an_older_booking_by_phone(app_stack):
    """The walk the tool descriptions ask for: find_bookings says verification_required, the agent
    sends a code, the customer types it, and the search finds the older booking."""
    cid, number = chat(), phone()
    older = older_booking(app_stack, number)

    async def before(session: ClientSession) -> list[Any]:
        return [
            await session.call_tool("find_bookings", {"phone": number}),
            await session.call_tool("start_verification", {"phone": number}),
        ]

    refused, started = mcp(app_stack, cid, before)
    assert code_of(refused)[0] == "verification_required" and not started.is_error
    code = code_for(app_stack, cid)

    async def after(session: ClientSession) -> list[Any]:
        return [
            await session.call_tool("confirm_verification", {"code": code}),
            await session.call_tool("find_bookings", {"phone": number}),
            await session.call_tool("get_booking", {"booking_id": older["id"]}),
        ]

    confirmed, found, read = mcp(app_stack, cid, after)
    assert not confirmed.is_error and confirmed.structured_content["value"] == number
    assert [b["id"] for b in found.structured_content["items"]] == [older["id"]]
    assert not read.is_error and read.structured_content["id"] == older["id"]
