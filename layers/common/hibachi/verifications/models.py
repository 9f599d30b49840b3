"""API models of verified identities and one-time codes.

- ``IdentityIn`` -> ``IdentityOut``: ``PUT /conversations/{id}/identity`` (staff: what the channel proved).
- ``VerificationIn`` -> ``VerificationOut``: ``POST /conversations/{id}/verifications`` (send a code).
- ``ConfirmIn`` -> ``IdentityOut``: ``POST /conversations/{id}/verifications/confirm``.

A phone is E.164 and an email is normalized exactly as on bookings (``hibachi.bookings.models``), so
an identity matches the bookings stored with it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from hibachi.contacts import Email, Phone

Kind = Literal["phone", "email"]
CODE_DIGITS = 6
CODE_PATTERN = rf"^[0-9]{{{CODE_DIGITS}}}$"  # ASCII digits only
CHANNEL_PATTERN = r"^[a-z][a-z0-9_-]{0,31}$"  # conversation_identities.verified_by's CHECK
CODE_PROOF = "code"  # verified_by of an identity proven with a one-time code (no channel may claim it)


class _OneIdentity(BaseModel):
    """Exactly one of ``phone`` and ``email``."""

    model_config = ConfigDict(extra="forbid", defer_build=True)

    phone: Phone | None = Field(default=None, description="A phone number, E.164 (such as +14155550123)")
    email: Email | None = Field(default=None, description="An email address")

    @model_validator(mode="after")
    def _exactly_one(self) -> _OneIdentity:
        if (self.phone is None) == (self.email is None):
            raise ValueError("give exactly one of phone and email")
        return self

    def identity(self) -> tuple[Kind, str]:
        """(kind, value) as stored: the E.164 phone, or the normalized email in lower case (as bookings
        store it: migration 0011)."""
        if self.phone is not None:
            return "phone", self.phone
        return "email", (self.email or "").lower()  # _exactly_one: set


class IdentityIn(_OneIdentity):
    """What a conversation's channel proved about its customer, such as an SMS conversation's sender."""

    verified_by: Annotated[str, StringConstraints(min_length=1, max_length=32, pattern=CHANNEL_PATTERN)] = Field(
        description="The channel that proved it, such as sms or whatsapp (`code` is reserved for one-time codes)",
        examples=["sms"],
    )

    @model_validator(mode="after")
    def _not_a_code(self) -> IdentityIn:
        if self.verified_by == CODE_PROOF:
            raise ValueError("verified_by 'code' is reserved for identities confirmed with a one-time code")
        return self


class VerificationIn(_OneIdentity):
    """Where to send a one-time code: the customer's phone (by SMS) or email address."""


class ConfirmIn(BaseModel):
    model_config = ConfigDict(extra="forbid", defer_build=True)

    code: Annotated[str, StringConstraints(min_length=CODE_DIGITS, max_length=CODE_DIGITS, pattern=CODE_PATTERN)] = (
        Field(description="The 6-digit code the customer received", examples=["042917"])
    )


class IdentityOut(BaseModel):
    """An identity proven in a conversation."""

    model_config = ConfigDict(defer_build=True)

    conversation_id: str
    kind: Kind
    value: str = Field(description="The phone (E.164) or the normalized email")
    verified_by: str = Field(description="The channel that proved it (sms, ...) or `code`")
    verified_at: datetime


class VerificationOut(BaseModel):
    """A code on its way (``code_sent``), or nothing to do (``already_verified``)."""

    model_config = ConfigDict(defer_build=True)

    conversation_id: str
    status: Literal["code_sent", "already_verified"]
    kind: Kind
    destination: str = Field(description="Where the code goes, masked (such as +1******0123 or a***@example.com)")
    expires_at: datetime | None = Field(description="When the code expires (null when already verified)")
    attempts_allowed: int | None = Field(
        description="How many confirmations the code takes (null when already verified)"
    )


def masked(kind: Kind, value: str) -> str:
    """``+1******0123``, ``a***@example.com``: enough for the customer to recognize it."""
    if kind == "phone":
        return value[:2] + "*" * max(len(value) - 6, 0) + value[-4:]
    local, _, domain = value.rpartition("@")
    return f"{local[:1]}***@{domain}"
