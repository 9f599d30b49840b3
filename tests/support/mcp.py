"""The assistant's tools: their names and the arguments of a booking on a free slot."""

from __future__ import annotations

import random
import uuid
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

TZ = "America/Los_Angeles"
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
