"""Finding bookings: ``POST /bookings/search``, one page at a time behind an opaque cursor."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from hibachi.bookings import repository
from hibachi.bookings.answers import to_out
from hibachi.bookings.models import BookingPage, BookingSearchIn
from hibachi.callers import Caller
from hibachi.db import get_db
from hibachi.errors import AppError, invalid


class VerificationRequired(AppError):
    """A search by a phone or email that was not verified in the caller's conversation."""

    status, code = 403, "verification_required"


def _fingerprint(filters: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(filters, sort_keys=True).encode()).hexdigest()[:16]


def _cursor(row: repository.BookingRow, fingerprint: str) -> str:
    key = {"s": row["event_start"].astimezone(UTC).isoformat(), "i": str(row["id"]), "f": fingerprint}
    return base64.urlsafe_b64encode(json.dumps(key, separators=(",", ":")).encode()).decode().rstrip("=")


def _after(cursor: str, fingerprint: str) -> tuple[datetime, UUID]:
    """The (event_start, id) a cursor continues after; 422 for one this search did not hand out."""
    try:
        key = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        after = (datetime.fromisoformat(key["s"]), UUID(key["i"]))
        if key["f"] != fingerprint:
            raise ValueError("another search")
        if after[0].tzinfo is None:
            raise ValueError("naive")
    except (ValueError, TypeError, KeyError, AttributeError, binascii.Error, OverflowError):
        raise invalid(
            "body", "cursor", "is not a next_cursor of this search (same filters)", "cursor_invalid"
        ) from None
    return after


def search_bookings(query: BookingSearchIn, *, caller: Caller) -> BookingPage:
    """``POST /bookings/search``: one page of the bookings ``caller`` reaches matching every filter
    given, ordered by (event_start, id), and the cursor of the next page (one round trip). The
    cursor is the last key read, so each booking appears once across the pages, also while bookings
    are being made. Without any filter: the confirmed bookings from today (in each booking's zone)
    on. A phone or email filter that is not verified in the assistant's conversation: 403
    ``verification_required`` (decided in the statement; nothing read)."""
    filters = query.filters()
    fingerprint = _fingerprint(filters)
    after = _after(query.cursor, fingerprint) if query.cursor is not None else None
    params: dict[str, Any] = dict(filters) if filters else {"status": "confirmed", "today": True}
    rows = repository.search_bookings(get_db(), params, caller=caller, after=after, limit=query.limit + 1)
    if rows is None:
        unverified = [name for name in ("phone", "email") if name in filters]
        raise VerificationRequired(
            f"Searching by {' or '.join(unverified)} needs that identity verified in this conversation first "
            "(a one-time code to the customer); without it, search by this conversation or ask for the booking id.",
            details=[
                {"loc": ["body", name], "msg": "not verified in this conversation", "type": "verification_required"}
                for name in unverified
            ],
        )
    page = rows[: query.limit]
    next_cursor = _cursor(page[-1], fingerprint) if len(rows) > query.limit else None
    return BookingPage(items=[to_out(row) for row in page], next_cursor=next_cursor)
