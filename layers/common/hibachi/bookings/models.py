"""API models of bookings.

Every string is ``hibachi.validation.text`` (length bounds, no NUL, valid UTF-8); every model
forbids unknown fields. Rules that need the clock or the settings (lead time, DST, service hours)
are checked by the service, with the same 422 shape.

- ``BookingIn``, ``RescheduleIn``: the bodies of ``POST /bookings`` and ``PATCH /bookings/{id}``.
- ``AvailabilityQuery`` -> ``AvailabilityOut``: ``GET /availability`` (``service.availability``).
- ``BookingSearchIn`` -> ``BookingPage``: ``POST /bookings/search`` (``service.search_bookings``).
"""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    NaiveDatetime,
    StringConstraints,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
)

from hibachi.bookings.times import ZONE_NAME_PATTERN, load_zone
from hibachi.contacts import Email, Phone
from hibachi.validation import STORABLE, ResourceId, bounds

Status = Literal["confirmed", "cancelled"]


def _not_blank(value: str) -> str:
    value = value.strip()
    if not value:
        raise ValueError("must not be blank")
    return value


def _zone(value: str) -> str:
    load_zone(value)  # ValueError -> 422 with the field named
    return value


# What the API accepts as a local date-time, stated in the document: ISO 8601 without an offset, to
# the minute or the second (a fraction up to microseconds), in ASCII digits. Checked before parsing,
# so the document and the code agree (pydantic alone would take a space for "T", or an offset).
LOCAL_DATETIME_PATTERN = (
    r"^(000[1-9]|00[1-9][0-9]|0[1-9][0-9]{2}|[1-9][0-9]{3})-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
    r"T([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]{1,6})?)?$"
)
_LOCAL_DATETIME = re.compile(LOCAL_DATETIME_PATTERN)
LOCAL_DATETIME_SCHEMA = {
    "type": "string",
    "pattern": LOCAL_DATETIME_PATTERN,
    "description": "Local date-time without offset (ISO 8601), such as 2026-12-05T18:30",
    "examples": ["2026-12-05T18:30"],
}


def _local_datetime_text(value: Any) -> Any:
    if not isinstance(value, str) or not _LOCAL_DATETIME.fullmatch(value):
        # ValueError, not TypeError: pydantic turns only ValueError into a field error (422)
        raise ValueError("must be a local date-time string without offset, such as 2026-12-05T18:30")
    return value


_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def _iso_date_text(value: Any) -> Any:
    # pydantic alone would also take a Unix timestamp or a midnight date-time for a date
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not _ISO_DATE.match(value):
        raise ValueError("must be a date such as 2027-01-12 (YYYY-MM-DD)")
    return value


Name = Annotated[Annotated[str, bounds(200, 1), STORABLE], AfterValidator(_not_blank)]
Line = Annotated[Annotated[str, bounds(200, 1), STORABLE], AfterValidator(_not_blank)]
Timezone = Annotated[
    str,
    StringConstraints(min_length=1, max_length=64, pattern=ZONE_NAME_PATTERN),
    STORABLE,
    AfterValidator(_zone),
    Field(
        description=(
            "IANA time zone of the event, such as America/Los_Angeles (a name of the tz database; another name of "
            "this form is 422 validation_error)"
        ),
        examples=["America/Los_Angeles", "America/New_York", "Pacific/Honolulu"],
    ),
]
LocalDateTime = Annotated[NaiveDatetime, BeforeValidator(_local_datetime_text), WithJsonSchema(LOCAL_DATETIME_SCHEMA)]
Duration = Annotated[int, Field(ge=60, le=360, strict=True, description="Minutes, 60-360")]
Guests = Annotated[int, Field(ge=1, le=100, strict=True)]
LocalDate = Annotated[date, BeforeValidator(_iso_date_text)]
Day = date  # a model field named ``date`` would shadow the type in its class


class Customer(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    phone: Phone = Field(description="E.164, such as +14155550123")
    email: Email


class Address(BaseModel):
    model_config = ConfigDict(extra="forbid")

    line1: Line
    line2: Annotated[str, bounds(200), STORABLE] | None = None
    city: Annotated[Annotated[str, bounds(100, 1), STORABLE], AfterValidator(_not_blank)]
    state: Annotated[Annotated[str, bounds(100, 1), STORABLE], AfterValidator(_not_blank)]
    postal_code: Annotated[Annotated[str, bounds(20, 1), STORABLE], AfterValidator(_not_blank)]


class BookingIn(BaseModel):
    """A booking request: the event's local start in its IANA time zone."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    customer: Customer
    event_start: LocalDateTime = Field(
        description="Local date-time without offset, such as 2026-12-05T18:30", examples=["2026-12-05T18:30"]
    )
    timezone: Timezone
    duration_minutes: Duration = 120
    guest_count: Guests
    address: Address
    conversation_id: ResourceId | None = Field(default=None, description="The chat this booking came from")
    notes: Annotated[str, bounds(2000), STORABLE] | None = None


class RescheduleIn(BaseModel):
    """A new local start (in the booking's time zone) and, optionally, a new length or head count."""

    # built on first use: a booking's cold start does not need it
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, defer_build=True)

    event_start: LocalDateTime = Field(description="Local date-time without offset, in the booking's time zone")
    duration_minutes: Duration | None = None
    guest_count: Guests | None = None


class CustomerOut(BaseModel):
    name: str
    phone: str
    email: str


class AddressOut(BaseModel):
    line1: str
    line2: str | None = None
    city: str
    state: str
    postal_code: str


class BookingOut(BaseModel):
    id: UUID
    status: Status
    version: int = Field(description="Bumped by every change (reschedule, cancel)")
    event_start: datetime = Field(description="ISO 8601 with the event's local offset")
    event_end: datetime
    timezone: str
    duration_minutes: int
    guest_count: int
    chef_id: int
    customer: CustomerOut
    address: AddressOut
    conversation_id: str | None
    notes: str | None
    followup_due_at: datetime = Field(description="When the post-event follow-up is due (local offset)")
    created_at: datetime
    updated_at: datetime
    cancelled_at: datetime | None


# The fields of AvailabilityQuery, also the query parameters of GET /availability (one per field).
FirstDay = Annotated[LocalDate, Field(description="The first local day, YYYY-MM-DD", examples=["2027-01-12"])]
DayCount = Annotated[int, Field(ge=1, le=14, description="How many days from `date` (1-14)")]
EventZone = Timezone
QueryDuration = Annotated[int, Field(ge=60, le=360, description="Minutes, 60-360, as the booking will ask")]


class AvailabilityQuery(BaseModel):
    """The query of ``GET /availability``: which start times have a free chef, day by day."""

    # built on first use: a booking's cold start does not need it
    model_config = ConfigDict(extra="forbid", defer_build=True)

    date: FirstDay
    days: DayCount = 1
    timezone: EventZone
    duration_minutes: QueryDuration = 120


class AvailabilityDay(BaseModel):
    model_config = ConfigDict(defer_build=True)  # built on first use (not at a booking's cold start)

    date: Day = Field(description="A local day")
    starts: list[datetime] = Field(description="Free start times, ISO 8601 with the local offset, ascending")


class AvailabilityOut(BaseModel):
    model_config = ConfigDict(defer_build=True)  # built on first use (not at a booking's cold start)

    timezone: str
    duration_minutes: int
    days: list[AvailabilityDay] = Field(description="Every day asked for, in order; a full day has no starts")


class BookingSearchIn(BaseModel):
    """Filters of ``POST /bookings/search`` (all optional; given ones must all match). Without any
    filter: the confirmed bookings from today (in each booking's time zone) on."""

    # built on first use: a booking's cold start does not need it
    model_config = ConfigDict(extra="forbid", defer_build=True)

    conversation_id: ResourceId | None = Field(default=None, description="The chat the booking came from")
    phone: Phone | None = Field(default=None, description="The customer's phone, E.164")
    email: Email | None = Field(
        default=None, description="The customer's email; matched as normalized at booking time (domain lower-cased)"
    )
    from_: LocalDate | None = Field(
        default=None, alias="from", description="First local date (YYYY-MM-DD) of the event, in the booking's zone"
    )
    to: LocalDate | None = Field(
        default=None, description="Last local date (YYYY-MM-DD, included) of the event, in the booking's zone"
    )
    status: Status | None = None
    limit: int = Field(default=20, ge=1, le=100, strict=True, description="Page size, 1-100")
    cursor: Annotated[str, StringConstraints(min_length=1, max_length=512, pattern=r"^[A-Za-z0-9_-]+$")] | None = Field(
        default=None, description="`next_cursor` of the previous page (with the same filters)"
    )

    @field_validator("to")
    @classmethod
    def _not_before_from(cls, value: Day | None, info: ValidationInfo) -> Day | None:
        start = info.data.get("from_")
        if value is not None and start is not None and value < start:
            raise ValueError("must not be before `from`")
        return value

    def filters(self) -> dict[str, Any]:
        """The filters given (what a cursor belongs to), JSON-ready."""
        return self.model_dump(mode="json", by_alias=True, exclude={"limit", "cursor"}, exclude_none=True)


class BookingPage(BaseModel):
    model_config = ConfigDict(defer_build=True)  # built on first use (not at a booking's cold start)

    items: list[BookingOut] = Field(description="Ordered by event_start, then id")
    next_cursor: str | None = Field(description="Pass it as `cursor` for the next page; null on the last page")
