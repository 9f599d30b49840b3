"""hibachi.callers: who a request acts for, from the authorizer's claims and the host's header."""

from __future__ import annotations

import pytest
from hibachi.callers import SYSTEM, Caller, ConversationRequired, caller_of
from hibachi.errors import Unprocessable

from testkit.events import http_event


def event(claims: dict, scopes: list[str], header: str | None = None) -> dict:
    headers = {"hibachi-conversation": header} if header is not None else {}
    return http_event("GET", "/bookings/search", headers=headers, claims=claims, scopes=scopes)


def test_a_staff_token_reaches_everything_with_or_without_a_header():
    caller = caller_of(event({"sub": "u-1", "client_id": "back-office"}, ["bookings:read", "staff"]), "GET /x")
    assert caller == Caller("back-office", "u-1", "back-office", True, None, "GET /x")
    assert caller.actor() == {"kind": "staff", "sub": "u-1", "client_id": "back-office", "via": "GET /x"}
    assert caller_of(event({"sub": "u-1"}, ["staff"], "web:1"), "mcp:find_bookings").conversation_id == "web:1"


def test_the_assistant_acts_for_the_headers_conversation():
    caller = caller_of(event({"sub": "bot"}, ["bookings:read"], "web:chat-9"), "mcp:get_booking")
    assert (caller.owner, caller.staff, caller.conversation_id) == ("bot", False, "web:chat-9")
    assert caller.actor() == {
        "kind": "assistant",
        "sub": "bot",
        "conversation_id": "web:chat-9",
        "via": "mcp:get_booking",
    }
    # the staff scope only counts from the token: a scope claim as API Gateway renders a list
    assert caller_of(event({"sub": "bot", "scope": "[bookings:read staff]"}, []), "GET /x").staff


@pytest.mark.parametrize("header", [None, ""])
def test_without_a_header_a_token_without_staff_acts_for_no_one(header):
    with pytest.raises(ConversationRequired) as refused:
        caller_of(event({"sub": "bot"}, ["bookings:read"], header), "GET /x")
    assert (refused.value.status, refused.value.code) == (403, "conversation_required")


@pytest.mark.parametrize("header", ["web chat", "x" * 129, "web/1", "ü"])
def test_a_header_that_is_no_conversation_id_is_422(header):
    with pytest.raises(Unprocessable) as refused:
        caller_of(event({"sub": "bot"}, ["staff"], header), "GET /x")
    assert refused.value.details[0]["loc"] == ["header", "hibachi-conversation"]


def test_the_worker_is_the_system():
    assert SYSTEM.staff and SYSTEM.owner == "" and SYSTEM.actor() == {"kind": "system", "via": "system"}
