"""Use cases of verified identities: what a channel proved (staff), and one-time codes.

Who may act where (``hibachi.callers.Caller``): a staff token on any conversation; the assistant
only on the conversation of its ``Hibachi-Conversation`` header (another id is 404, as if it did
not exist). Attaching what a channel proved is staff's alone.

A code is 6 random digits (``secrets``), stored as SHA-256 over a random 16-byte salt and the code,
and delivered by the worker (the ``send_verification`` job carries it to the worker, which checks it
against the stored hash before it publishes; ``hibachi.verifications.delivery``): the request
path makes one statement and one SQS send, no boto3. A send whose job cannot be queued voids its
code (a second statement, on that failure only) and answers 503: nothing was sent, the limits are
as before. No log line carries a code, a phone or an email.
"""

from __future__ import annotations

import hashlib
import math
import secrets
from datetime import datetime

from hibachi import jobs
from hibachi.callers import Caller
from hibachi.conversations.service import reach
from hibachi.db import get_db
from hibachi.errors import AppError, ConflictRetry, DependencyUnavailable, NotFound, TooManyRequests, Unprocessable
from hibachi.observability import MetricUnit, add_ms, metrics, timed_ms
from hibachi.settings import get_settings
from hibachi.verifications import repository
from hibachi.verifications.models import (
    CODE_DIGITS,
    ConfirmIn,
    IdentityIn,
    IdentityOut,
    VerificationIn,
    VerificationOut,
    masked,
)


class Forbidden(AppError):
    status, code = 403, "forbidden"


class VerificationNotFound(NotFound):
    code = "verification_not_found"


class VerificationExpired(Unprocessable):
    code = "verification_expired"


class VerificationAttemptsExhausted(Unprocessable):
    code = "verification_attempts_exhausted"


class VerificationCodeInvalid(Unprocessable):
    code = "verification_code_invalid"


def _identity(row: repository.IdentityRow | repository.ConfirmRow, conversation_id: str) -> IdentityOut:
    value = row.value if isinstance(row, repository.IdentityRow) else row.destination
    return IdentityOut.model_validate(
        {
            "conversation_id": conversation_id,
            "kind": row.kind,
            "value": value,
            "verified_by": row.verified_by,
            "verified_at": row.verified_at,
        }
    )


# -- from the channel ---------------------------------------------------------------------------------------
def attach_identity(conversation_id: str, body: IdentityIn, *, caller: Caller) -> tuple[IdentityOut, bool]:
    """Attach what the conversation's channel proved (staff only). A repeat is a no-op: the first
    proof stays. Returns (identity, created)."""
    if not caller.staff:
        raise Forbidden("Only a staff token may attach what a channel proved.")
    kind, value = body.identity()
    row = repository.attach_identity(
        get_db(), conversation_id=conversation_id, kind=kind, value=value, verified_by=body.verified_by
    )
    return _identity(row, conversation_id), row.created


# -- one-time codes -----------------------------------------------------------------------------------------
def new_code() -> str:
    return f"{secrets.randbelow(10**CODE_DIGITS):0{CODE_DIGITS}d}"


def code_hash(salt: bytes, code: str) -> bytes:
    """SHA-256 over the salt and the code's ASCII digits: what ``repository.CONFIRM_CODE`` computes."""
    return hashlib.sha256(salt + code.encode("ascii")).digest()


def delivery_job(code_id: str, code: str, correlation_id: str | None) -> jobs.Job:
    """The job that delivers a code; its id (logged) names the code's row, never the code."""
    return jobs.Job.new(
        jobs.SEND_VERIFICATION,
        f"{jobs.SEND_VERIFICATION}:{code_id}",
        {"verification_id": code_id, "code": code},
        correlation_id,
    )


def _limits() -> repository.Limits:
    s = get_settings()
    return repository.Limits(
        ttl_seconds=s.verification_code_ttl_seconds,
        max_attempts=s.verification_max_attempts,
        destination_max=s.verification_destination_max_sends,
        destination_window_seconds=s.verification_destination_window_seconds,
        conversation_max=s.verification_conversation_max_sends,
        conversation_window_seconds=s.verification_conversation_window_seconds,
    )


def _seconds_until(when: datetime | None, now: datetime) -> int:
    return max(1, math.ceil((when - now).total_seconds())) if when is not None else 1


def _rate_limited(row: repository.SendRow) -> TooManyRequests:
    limits = _limits()
    full: list[tuple[str, int, int, int]] = []
    if row.destination_full:
        wait = _seconds_until(row.destination_free_at, row.now)
        full.append(("destination", limits.destination_max, limits.destination_window_seconds, wait))
    if row.conversation_full:
        wait = _seconds_until(row.conversation_free_at, row.now)
        full.append(("conversation", limits.conversation_max, limits.conversation_window_seconds, wait))
    retry_after = max(wait for *_, wait in full)
    details = [
        {"limit": name, "max_sends": most, "window_seconds": window, "retry_after_seconds": wait}
        for name, most, window, wait in full
    ]
    which = " and ".join(f"this {name}" for name, *_ in full)
    return TooManyRequests(
        f"Too many codes were sent to {which} lately; nothing was sent. Try again in {retry_after} seconds.",
        retry_after=retry_after,
        details=details,
    )


def start_verification(
    conversation_id: str, body: VerificationIn, *, caller: Caller, correlation_id: str | None
) -> tuple[VerificationOut, bool]:
    """Send a new one-time code to the phone or email (it supersedes the conversation's earlier
    codes). Returns (answer, sent): not sent when the identity is proven here already. 429 over a
    rate limit; 503 when the delivery cannot be queued (nothing sent)."""
    reach(caller, conversation_id)
    kind, destination = body.identity()
    code, salt = new_code(), secrets.token_bytes(16)
    db = get_db()
    row = repository.insert_code(
        db,
        conversation_id=conversation_id,
        kind=kind,
        destination=destination,
        salt=salt,
        code_hash=code_hash(salt, code),
        limits=_limits(),
    )
    if row is None:
        raise ConflictRetry("Concurrent verifications took the free slots; retry.")
    shown = masked(kind, destination)
    if row.already_verified:
        out = VerificationOut(
            conversation_id=conversation_id,
            status="already_verified",
            kind=kind,
            destination=shown,
            expires_at=None,
            attempts_allowed=None,
        )
        return out, False
    if row.id is None:
        raise _rate_limited(row)
    with timed_ms() as elapsed:
        queued = jobs.get_queue().send(delivery_job(str(row.id), code, correlation_id))
    add_ms("EnqueueTime", elapsed[0])
    if not queued:
        metrics.add_metric(name="EnqueueFailed", unit=MetricUnit.Count, value=1)
        repository.void_code(db, row.id)
        raise DependencyUnavailable(
            "The code could not be queued for delivery; nothing was sent. Retry shortly.", dependency="queue"
        )
    metrics.add_metric(name="VerificationsStarted", unit=MetricUnit.Count, value=1)
    out = VerificationOut(
        conversation_id=conversation_id,
        status="code_sent",
        kind=kind,
        destination=shown,
        expires_at=row.expires_at,
        attempts_allowed=row.max_attempts,
    )
    return out, True


def confirm_verification(conversation_id: str, body: ConfirmIn, *, caller: Caller) -> IdentityOut:
    """Check the code against the conversation's newest one; right: the identity is proven here
    (a repeat of a confirmed code answers the same). Codes of other conversations never match."""
    reach(caller, conversation_id)
    row = repository.confirm_code(get_db(), conversation_id=conversation_id, code=body.code)
    if row is None or (row.used_before and not row.matches):
        raise VerificationNotFound(
            "No code is waiting to be confirmed in this conversation: start a verification to send one."
        )
    if row.confirmed_now or (row.used_before and row.matches):
        if row.confirmed_now:
            metrics.add_metric(name="VerificationsConfirmed", unit=MetricUnit.Count, value=1)
        return _identity(row, conversation_id)
    if row.expired:
        raise VerificationExpired("The code has expired: start a new verification to send another one.")
    metrics.add_metric(name="VerificationsFailed", unit=MetricUnit.Count, value=1)
    if not row.counted:
        raise VerificationAttemptsExhausted(
            "The code has no attempts left: start a new verification to send another one."
        )
    left = row.max_attempts - row.attempts
    more = f"{left} attempt{'s' if left != 1 else ''} left." if left else "No attempts left: start a new verification."
    raise VerificationCodeInvalid(f"That is not the code that was sent. {more}", details={"attempts_left": left})
