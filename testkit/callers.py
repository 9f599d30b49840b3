"""Callers for tests that call the services in process (hibachi.callers)."""

from __future__ import annotations

from hibachi.callers import Caller


def staff(owner: str = "tester") -> Caller:
    """A staff token's caller (business-wide reach), as a REST route builds it."""
    return Caller(owner=owner, sub=owner or None, client_id=None, staff=True, conversation_id=None, via="test")


def assistant(conversation_id: str, owner: str = "assistant") -> Caller:
    """The assistant acting in ``conversation_id``."""
    return Caller(owner=owner, sub=owner, client_id=None, staff=False, conversation_id=conversation_id, via="test")
