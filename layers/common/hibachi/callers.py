"""Who a request acts for (docs/SECURITY.md, "Threat model"; docs/ARCHITECTURE.md, "Callers").

Two kinds of caller, told apart by the token:

- **staff** (the scope ``staff``): staff tools and the chat platform's back office, trusted with the
  whole business: every booking and conversation, as before callers existed.
- **the assistant in one conversation** (any token without ``staff``): each request names the
  conversation it acts for in the header ``Hibachi-Conversation``, which the host (the chat platform)
  sets from its own session, never from anything the model writes. Without it: 403
  ``conversation_required``. It reaches that conversation's messages, and the bookings made in it or
  whose phone or email was verified in it (``conversation_identities``).

The token decides the kind and the host's header the conversation; no argument of a request (a
body, a path, a tool argument the model wrote) widens what the request may reach.

The API functions build the ``Caller`` once per request (``hibachi.api.handle``), the MCP server once
per tool call (``via`` ``"mcp:<tool>"``); the worker acts as ``SYSTEM``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hibachi.errors import AppError, invalid
from hibachi.validation import ID_PATTERN

STAFF_SCOPE = "staff"
CONVERSATION_HEADER = "Hibachi-Conversation"
CONVERSATION_ID_MAX = 128
_CONVERSATION_ID = re.compile(ID_PATTERN)
_HEADER_KEY = CONVERSATION_HEADER.lower()  # HTTP API payload 2.0 lower-cases header names


class ConversationRequired(AppError):
    """A caller without ``staff`` that names no conversation: it may act for no one."""

    status, code = 403, "conversation_required"


@dataclass(frozen=True, slots=True)
class Caller:
    """Who a request acts for."""

    owner: str  # the JWT's client_id, else sub: what an Idempotency-Key is scoped to ("" for none)
    sub: str | None
    client_id: str | None
    staff: bool  # the token carries the scope ``staff`` (business-wide reach)
    conversation_id: str | None  # the Hibachi-Conversation header (set by the host, never by the model)
    via: str  # the REST route key ("PATCH /bookings/{booking_id}"), "mcp:<tool>", or "system"

    def actor(self) -> dict[str, Any]:
        """The caller as an event's actor: ``kind`` (staff, assistant or system), ``via``, and the
        ids it has (None fields left out)."""
        kind = "system" if self.via == "system" else "staff" if self.staff else "assistant"
        fields = {
            "kind": kind,
            "sub": self.sub,
            "client_id": self.client_id,
            "conversation_id": self.conversation_id,
            "via": self.via,
        }
        return {k: v for k, v in fields.items() if v is not None}


SYSTEM = Caller(owner="", sub=None, client_id=None, staff=True, conversation_id=None, via="system")


def token_scopes(event: Mapping[str, Any]) -> set[str] | None:
    """The scopes of the JWT the authorizer accepted; ``None`` when the event did not come through
    the authorizer (no ``requestContext.authorizer.jwt`` with claims)."""
    claims, jwt = _jwt(event)
    if jwt is None or not claims:
        return None
    found: set[str] = set()
    scopes = jwt.get("scopes")
    if isinstance(scopes, list):
        found.update(s for s in scopes if isinstance(s, str))
    for key in ("scope", "scp"):
        value = claims.get(key)
        if isinstance(value, list):
            found.update(str(v) for v in value)
        elif isinstance(value, str):  # API Gateway renders a list claim as "[a b]"
            found.update(value.strip("[]").replace(",", " ").split())
    return found


def _jwt(event: Mapping[str, Any]) -> tuple[Mapping[str, Any], Mapping[str, Any] | None]:
    context = event.get("requestContext")
    authorizer = context.get("authorizer") if isinstance(context, Mapping) else None
    jwt = authorizer.get("jwt") if isinstance(authorizer, Mapping) else None
    if not isinstance(jwt, Mapping):
        return {}, None
    claims = jwt.get("claims")
    return (claims if isinstance(claims, Mapping) else {}), jwt


def _claim(claims: Mapping[str, Any], name: str) -> str | None:
    value = claims.get(name)
    return value if isinstance(value, str) and value else None


def conversation_header(event: Mapping[str, Any]) -> str | None:
    """The ``Hibachi-Conversation`` header, checked against the conversation id pattern (422 when it
    is there but not an id); ``None`` when absent or empty."""
    headers = event.get("headers")
    if not isinstance(headers, Mapping):
        return None
    value = next((v for k, v in headers.items() if str(k).lower() == _HEADER_KEY), None)
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value) > CONVERSATION_ID_MAX or not _CONVERSATION_ID.match(value):
        raise invalid(
            "header",
            _HEADER_KEY,
            f"must be a conversation id: 1-{CONVERSATION_ID_MAX} characters of A-Z a-z 0-9 . _ : -",
            "conversation_header_invalid",
        )
    return value


def caller_of(event: Mapping[str, Any], via: str) -> Caller:
    """The caller of an API Gateway (HTTP API, JWT authorizer) event: its claims and scopes, and the
    ``Hibachi-Conversation`` header. 403 ``conversation_required`` for a caller without ``staff``
    that names no conversation; 422 for a header that is not a conversation id."""
    claims, _jwt_part = _jwt(event)
    sub, client_id = _claim(claims, "sub"), _claim(claims, "client_id")
    staff = STAFF_SCOPE in (token_scopes(event) or ())
    conversation_id = conversation_header(event)
    if not staff and conversation_id is None:
        raise ConversationRequired(
            f"This token acts for one conversation: send its id in the {CONVERSATION_HEADER} header "
            "(set by the host from its own session), or use a token with the staff scope."
        )
    return Caller(
        owner=client_id or sub or "",
        sub=sub,
        client_id=client_id,
        staff=staff,
        conversation_id=conversation_id,
        via=via,
    )
