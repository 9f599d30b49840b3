"""Who a request acts for (issue 19; the shared interface of /work/wt/CALLER.md).

A stand-in written against that spec on branch i19b until branch i19a's module is merged: the
merge takes i19a's file."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hibachi.errors import AppError

STAFF_SCOPE = "staff"
CONVERSATION_HEADER = "hibachi-conversation"


class ConversationRequired(AppError):
    status, code = 403, "conversation_required"


@dataclass(frozen=True, slots=True)
class Caller:
    owner: str
    sub: str | None
    client_id: str | None
    staff: bool
    conversation_id: str | None
    via: str

    def actor(self) -> dict[str, Any]:
        kind = "system" if self.via == "system" else "staff" if self.staff else "assistant"
        out: dict[str, Any] = {
            "kind": kind,
            "sub": self.sub,
            "client_id": self.client_id,
            "conversation_id": self.conversation_id,
            "via": self.via,
        }
        return {k: v for k, v in out.items() if v is not None}


SYSTEM = Caller(owner="", sub=None, client_id=None, staff=True, conversation_id=None, via="system")


def caller_of(event: Mapping[str, Any], via: str) -> Caller:
    from hibachi.api import token_scopes

    context = event.get("requestContext") or {}
    claims = (((context.get("authorizer") or {}).get("jwt")) or {}).get("claims") or {}
    sub, client_id = (claims.get(name) if isinstance(claims.get(name), str) else None for name in ("sub", "client_id"))
    staff = STAFF_SCOPE in (token_scopes(event) or set())
    headers = {str(k).lower(): v for k, v in (event.get("headers") or {}).items()}
    conversation = headers.get(CONVERSATION_HEADER) or None
    if not staff and not conversation:
        raise ConversationRequired("This token acts in one conversation: send the Hibachi-Conversation header.")
    return Caller(
        owner=client_id or sub or "",
        sub=sub or None,
        client_id=client_id or None,
        staff=staff,
        conversation_id=conversation,
        via=via,
    )
