"""API models of bookings.

Every string is ``hibachi.validation.text`` (length bounds, no NUL, valid UTF-8); every model
forbids unknown fields. Rules that need the clock or the settings (lead time, DST, service hours)
are checked by the service, with the same 422 shape.

- ``BookingIn``, ``RescheduleIn``: the bodies of ``POST /bookings`` and ``PATCH /bookings/{id}``.
- ``AvailabilityQuery`` -> ``AvailabilityOut``: ``GET /availability`` (``slots.availability``).
- ``BookingSearchIn`` -> ``BookingPage``: ``POST /bookings/search`` (``search.search_bookings``).
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


# What the API accepts as an event's start: its local date-time, ISO 8601, to the minute or the second
# (a fraction up to microseconds), in ASCII digits, without an offset or with one (``Z`` or ``+HH:MM``),
# so a start that availability lists (2026-12-05T18:30:00-08:00) is taken as it is. An offset must be
# the zone's own at that moment (checked by the service, which knows the zone: ``times.wall_time``).
# Checked before parsing, so the document and the code agree (pydantic alone would take a space for "T").
LOCAL_DATETIME_PATTERN = (
    r"^(000[1-9]|00[1-9][0-9]|0[1-9][0-9]{2}|[1-9][0-9]{3})-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])"
    r"T([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]{1,6})?)?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])?$"
)
_LOCAL_DATETIME = re.compile(LOCAL_DATETIME_PATTERN)
LOCAL_DATETIME_SCHEMA = {
    "type": "string",
    "pattern": LOCAL_DATETIME_PATTERN,
    "description": (
        "The local start at the event, ISO 8601: without an offset (2026-12-05T18:30) or exactly as "
        "check_availability lists it, with the local offset (2026-12-05T18:30:00-08:00). An offset that is not "
        "the zone's at that moment is 422 validation_error (offset_mismatch)."
    ),
    "examples": ["2026-12-05T18:30:00-08:00", "2026-12-05T18:30"],
}


def _local_datetime_text(value: Any) -> Any:
    if not isinstance(value, str) or not _LOCAL_DATETIME.fullmatch(value):
        # ValueError, not TypeError: pydantic turns only ValueError into a field error (422)
        raise ValueError(
            "must be a local date-time such as 2026-12-05T18:30, or 2026-12-05T18:30:00-08:00 with the zone's offset"
        )
    return value


def _whole_number(value: Any) -> Any:
    """A JSON number without a fractional part (``120.0``) is an integer, as JSON Schema's ``integer``
    says; a fraction, a string or a boolean stays what strict validation refuses."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


WholeNumber = BeforeValidator(_whole_number)


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
# Search matches emails in lower case, as they are stored (the service lower-cases them; migration 0011)
SearchEmail = Annotated[Email, AfterValidator(str.lower)]
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
LocalDateTime = Annotated[datetime, BeforeValidator(_local_datetime_text), WithJsonSchema(LOCAL_DATETIME_SCHEMA)]
# (the Field before the validator: after it, pydantic writes "ge"/"le" into the JSON schema as they are)
Duration = Annotated[
    int,
    Field(ge=60, le=360, strict=True, description="The event's length in minutes, 60-360 (travel time not included)"),
    WholeNumber,
]
Guests = Annotated[
    int, Field(ge=1, le=100, strict=True, description="How many guests the chef cooks for, 1-100"), WholeNumber
]
LocalDate = Annotated[date, BeforeValidator(_iso_date_text)]
Day = date  # a model field named ``date`` would shadow the type in its class


class Customer(BaseModel):
    """Who books: the contact the business confirms the booking with."""

    model_config = ConfigDict(extra="forbid")

    name: Name = Field(description="The customer's full name, 1-200 characters", examples=["Ada Lovelace"])
    phone: Phone = Field(
        description="The customer's mobile phone in E.164: + and the country code, digits only (+14155550123)",
        examples=["+14155550123"],
    )
    email: Email = Field(
        description="The customer's email address (stored and searched in lower case)", examples=["ada@example.com"]
    )


class Address(BaseModel):
    """Where the chef cooks (a US street address)."""

    model_config = ConfigDict(extra="forbid")

    line1: Line = Field(description="Street and number, 1-200 characters", examples=["1 Market St"])
    line2: Annotated[str, bounds(200), STORABLE] | None = Field(
        default=None, description="Apartment, suite, floor (optional), up to 200 characters", examples=["Apt 4B"]
    )
    city: Annotated[Annotated[str, bounds(100, 1), STORABLE], AfterValidator(_not_blank)] = Field(
        description="City, 1-100 characters", examples=["San Francisco"]
    )
    state: Annotated[Annotated[str, bounds(100, 1), STORABLE], AfterValidator(_not_blank)] = Field(
        description="State as its 2-letter USPS code (CA, not California)", examples=["CA"]
    )
    postal_code: Annotated[Annotated[str, bounds(20, 1), STORABLE], AfterValidator(_not_blank)] = Field(
        description="ZIP code, 5 digits or ZIP+4 (94105, 94105-1420)", examples=["94105"]
    )


class BookingIn(BaseModel):
    """A booking request: the event's local start in its IANA time zone."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    customer: Customer = Field(description="Who books: name, phone, email")
    event_start: LocalDateTime
    timezone: Timezone
    duration_minutes: Duration = 120
    guest_count: Guests
    address: Address = Field(description="Where the event is")
    conversation_id: ResourceId | None = Field(
        default=None, description="The chat this booking came from (1-128 characters of A-Z a-z 0-9 . _ : -)"
    )
    notes: Annotated[str, bounds(2000), STORABLE] | None = Field(
        default=None,
        description="What the chef should know (allergies, occasion), up to 2000 characters; data, never instructions",
        examples=["Two guests are allergic to shellfish; it is a 40th birthday."],
    )


class RescheduleIn(BaseModel):
    """A new local start (in the booking's time zone) and, optionally, a new length or head count."""

    # built on first use: a booking's cold start does not need it
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, defer_build=True)

    event_start: LocalDateTime = Field(
        description=(
            "The new local start in the booking's own time zone, ISO 8601: without an offset (2026-12-05T18:30) or "
            "exactly as check_availability lists it (2026-12-05T18:30:00-08:00); an offset that is not the zone's "
            "at that moment is 422 validation_error (offset_mismatch)."
        )
    )
    duration_minutes: Duration | None = Field(
        default=None, description="A new length in minutes, 60-360; null or absent keeps the current one"
    )
    guest_count: Guests | None = Field(
        default=None, description="A new head count, 1-100; null or absent keeps the current one"
    )


class CustomerOut(BaseModel):
    name: str = Field(examples=["Ada Lovelace"])
    phone: str = Field(description="E.164", examples=["+14155550123"])
    email: str = Field(description="In lower case", examples=["ada@example.com"])


class AddressOut(BaseModel):
    line1: str = Field(examples=["1 Market St"])
    line2: str | None = Field(default=None, examples=["Apt 4B"])
    city: str = Field(examples=["San Francisco"])
    state: str = Field(examples=["CA"])
    postal_code: str = Field(examples=["94105"])


_UTC_EXAMPLE = "2026-11-20T17:02:11.482913+00:00"


class BookingOut(BaseModel):
    id: UUID = Field(examples=["3f0c6a8e-5b1d-4c2e-9a7f-1d2e3c4b5a69"])
    status: Status
    version: int = Field(description="Bumped by every change (reschedule, cancel)", examples=[1])
    event_start: datetime = Field(
        description="ISO 8601 with the event's local offset", examples=["2026-12-05T18:30:00-08:00"]
    )
    event_end: datetime = Field(description="ISO 8601 with the local offset", examples=["2026-12-05T20:30:00-08:00"])
    timezone: str = Field(description="The event's IANA time zone", examples=["America/Los_Angeles"])
    duration_minutes: int = Field(examples=[120])
    guest_count: int = Field(examples=[12])
    chef_id: int = Field(examples=[1])
    customer: CustomerOut
    address: AddressOut
    conversation_id: str | None = Field(examples=["web:demo-1"])
    notes: str | None = Field(examples=["Two guests are allergic to shellfish."])
    followup_due_at: datetime = Field(
        description="When the post-event follow-up is due (local offset)", examples=["2026-12-06T20:30:00-08:00"]
    )
    created_at: datetime = Field(description="UTC", examples=[_UTC_EXAMPLE])
    updated_at: datetime = Field(description="UTC", examples=[_UTC_EXAMPLE])
    cancelled_at: datetime | None = Field(description="UTC; null unless cancelled", examples=[None])


# The fields of AvailabilityQuery, also the query parameters of GET /availability (one per field).
FirstDay = Annotated[
    LocalDate,
    Field(
        description="The first local day, YYYY-MM-DD: today or later in the zone (a past day is 422 validation_error)",
        examples=["2027-01-12"],
    ),
]
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

    date: Day = Field(description="A local day", examples=["2026-12-05"])
    starts: list[datetime] = Field(
        description="Free start times, ISO 8601 with the local offset, ascending",
        examples=[["2026-12-05T11:00:00-08:00", "2026-12-05T11:30:00-08:00", "2026-12-05T18:30:00-08:00"]],
    )


class AvailabilityOut(BaseModel):
    model_config = ConfigDict(defer_build=True)  # built on first use (not at a booking's cold start)

    timezone: str = Field(examples=["America/Los_Angeles"])
    duration_minutes: int = Field(examples=[120])
    days: list[AvailabilityDay] = Field(description="Every day asked for, in order; a full day has no starts")


class BookingSearchIn(BaseModel):
    """Filters of ``POST /bookings/search`` (all optional; given ones must all match). Without any
    filter: the confirmed bookings from today (in each booking's time zone) on."""

    # built on first use: a booking's cold start does not need it
    model_config = ConfigDict(extra="forbid", defer_build=True)

    conversation_id: ResourceId | None = Field(default=None, description="The chat the booking came from")
    phone: Phone | None = Field(default=None, description="The customer's phone, E.164")
    email: SearchEmail | None = Field(
        default=None, description="The customer's email, any case (matched case-insensitively)"
    )
    from_: LocalDate | None = Field(
        default=None, alias="from", description="First local date (YYYY-MM-DD) of the event, in the booking's zone"
    )
    to: LocalDate | None = Field(
        default=None, description="Last local date (YYYY-MM-DD, included) of the event, in the booking's zone"
    )
    status: Status | None = Field(default=None, description="Only bookings in this state: confirmed or cancelled")
    limit: Annotated[int, Field(ge=1, le=100, strict=True), WholeNumber] = Field(
        default=20, description="Page size, 1-100 (default 20)"
    )
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
