"""The follow-ups' vocabulary, without the SQL: ``hibachi.ops`` (the health function) lists
follow-ups by these names and does not import the follow-up statements."""

from __future__ import annotations

from enum import StrEnum


class FollowupStatus(StrEnum):
    """``followups.status`` and ``reminders.status`` (the columns' check constraints)."""

    PENDING = "pending"  # waiting for its schedule (or the reconciler) to send it
    SENDING = "sending"  # claimed by a worker, not yet recorded as sent
    SENT = "sent"
    CANCELLED = "cancelled"  # its booking is cancelled
    SKIPPED = "skipped"  # reminders only: the booking was made or moved later than the reminder's time


class FollowupView(StrEnum):
    """The follow-up listings of ``/health/details``' ops requests and ``python -m ops followups``."""

    PENDING = "pending"  # waiting for their time
    FAILED = "failed"  # should have gone out and has not (``hibachi.ops.FAILED_AFTER``)
