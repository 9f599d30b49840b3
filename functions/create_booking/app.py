"""create_booking: the bookings API.

    POST  /bookings                        book a chef (scope bookings:write; Idempotency-Key)
    GET   /bookings/{booking_id}           read a booking (scope bookings:read)
    POST  /bookings/{booking_id}/cancel    cancel; idempotent (scope bookings:write)
    PATCH /bookings/{booking_id}           move to a new start, length, head count (bookings:write; Idempotency-Key)
    GET   /availability                    free start times, day by day (scope bookings:read)
    POST  /bookings/search                 find bookings by phone, email, chat, dates (bookings:read)
    GET   /bookings/{booking_id}/events    the booking's event log, oldest first (scope staff)

Thin: parse and validate (Powertools + pydantic), call ``hibachi.bookings.service``, respond.
"""

from __future__ import annotations

import gc

gc.disable()  # until the init is done (hibachi.coldstart): its objects are long-lived, not garbage

from typing import TYPE_CHECKING, Annotated, Any
from uuid import UUID

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.event_handler.openapi.params import Header, Path, Query
from aws_lambda_powertools.logging import correlation_paths
from hibachi import idempotency
from hibachi.api import Route, create_app, created_or_found, current_caller, handle
from hibachi.bookings import service
from hibachi.bookings.models import (
    AvailabilityOut,
    AvailabilityQuery,
    BookingIn,
    BookingOut,
    BookingPage,
    BookingSearchIn,
    DayCount,
    EventZone,
    FirstDay,
    QueryDuration,
    RescheduleIn,
)
from hibachi.coldstart import init_done
from hibachi.events.models import EventPage
from hibachi.observability import logger, metrics
from hibachi.settings import require_on_aws

require_on_aws("db_host", "jobs_queue_url")  # a mis-wired deploy fails its cold start, with one log line

if TYPE_CHECKING:
    from aws_lambda_powertools.event_handler.openapi.types import (
        OpenAPIResponseContentModel,
        OpenAPIResponseContentSchema,
    )

_BOOKING_ID = {"booking_id": "$response.body#/id"}
# A created (or replayed) booking leads to the operations on it (OpenAPI links)
app = create_app(
    links=[
        (("post", "/bookings"), ("201", "200"), "GetBooking", ("get", "/bookings/{booking_id}"), _BOOKING_ID),
        (("post", "/bookings"), ("201", "200"), "RescheduleBooking", ("patch", "/bookings/{booking_id}"), _BOOKING_ID),
        (
            ("post", "/bookings"),
            ("201", "200"),
            "CancelBooking",
            ("post", "/bookings/{booking_id}/cancel"),
            _BOOKING_ID,
        ),
    ]
)

# The route table: each route's operation and the scope template.yaml's authorizer requires on it
OPERATIONS = {
    "POST /bookings": Route("create_booking", "bookings:write"),
    "GET /bookings/{booking_id}": Route("get_booking", "bookings:read"),
    "POST /bookings/{booking_id}/cancel": Route("cancel_booking", "bookings:write"),
    "PATCH /bookings/{booking_id}": Route("reschedule_booking", "bookings:write"),
    "GET /availability": Route("availability", "bookings:read"),
    "POST /bookings/search": Route("search_bookings", "bookings:read"),
    "GET /bookings/{booking_id}/events": Route("booking_events", "staff"),
}

BookingId = Annotated[UUID, Path(description="The booking's id (a UUID)")]
IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="idempotency-key",
        min_length=1,
        max_length=idempotency.KEY_MAX_LENGTH,
        pattern=idempotency.KEY_PATTERN,
        description=idempotency.KEY_DESCRIPTION,
    ),
]
_BOOKING: dict[str, OpenAPIResponseContentSchema | OpenAPIResponseContentModel] = {
    "application/json": {"model": BookingOut}
}


@app.post(
    "/bookings",
    summary="Book a hibachi chef",
    description=(
        "Books a chef for the event: the lowest-numbered chef free for its length plus the travel buffer. "
        "`event_start` is the local time in `timezone`, with the zone's offset (as `GET /availability` lists it) "
        "or without one. Send an `Idempotency-Key` to retry safely: the same key and body answer the original "
        "booking (200)."
    ),
    operation_id="createBooking",
    tags=["bookings"],
    responses={
        201: {"description": "Booked", "content": _BOOKING},
        200: {"description": "Retry of an earlier request with the same Idempotency-Key", "content": _BOOKING},
        409: {
            "description": "slot_full: no chef is free then (the details list free start times that day); "
            "idempotency_key_in_flight: the key's first request is still in progress"
        },
        422: {
            "description": "validation_error; idempotency_key_reused: the key was used with another request; "
            "conversation_mismatch: conversation_id names another conversation than the Hibachi-Conversation header's"
        },
    },
)
def create_booking(booking: BookingIn, idempotency_key: IdempotencyKey = None) -> Response[BookingOut]:
    stored, created = service.create_booking(
        booking,
        caller=current_caller(app),
        idempotency_key=idempotency_key,
        correlation_id=logger.get_correlation_id(),
    )
    return created_or_found(stored, created)


@app.get(
    "/bookings/<booking_id>",
    summary="Read a booking",
    description="The booking with its status, local start and end (with the offset), customer and address.",
    operation_id="getBooking",
    tags=["bookings"],
)
def get_booking(booking_id: BookingId) -> BookingOut:
    return service.get_booking(booking_id, caller=current_caller(app))


@app.get(
    "/bookings/<booking_id>/events",
    summary="A booking's events, oldest first (staff)",
    operation_id="listBookingEvents",
    description=(
        "Every change of the booking as the event log recorded it, in the statement that made it: created, "
        "rescheduled (old and new start), details changed, cancelled, follow-up sent; each with the booking's "
        "version, the time, and the actor (staff or the assistant with its conversation, the REST route or MCP "
        "tool, or the system). The same events go to the EventBridge bus (docs/EVENTS.md)."
    ),
    tags=["bookings"],
    responses={
        200: {"description": "The events", "content": {"application/json": {"model": EventPage}}},
        404: {"description": "No such booking"},
    },
)
def booking_events(booking_id: BookingId) -> EventPage:
    return service.booking_events(booking_id)


@app.post(
    "/bookings/<booking_id>/cancel",
    summary="Cancel a booking (idempotent)",
    description="Cancels the booking and frees its chef; cancelling a cancelled booking answers it unchanged.",
    operation_id="cancelBooking",
    tags=["bookings"],
    responses={
        200: {"description": "Cancelled (now or before)", "content": _BOOKING},
        409: {"description": "The event has already started"},
    },
)
def cancel_booking(booking_id: BookingId) -> BookingOut:
    return service.cancel_booking(booking_id, caller=current_caller(app), correlation_id=logger.get_correlation_id())


@app.patch(
    "/bookings/<booking_id>",
    summary="Reschedule a booking",
    description=(
        "Moves a confirmed, upcoming booking to a new local start in its own time zone (with the zone's offset or "
        "without), optionally with a new length or head count. Asking for what the booking already is changes "
        "nothing."
    ),
    operation_id="rescheduleBooking",
    tags=["bookings"],
    responses={
        200: {
            "description": "Moved; or unchanged, when the request asks for what the booking already is; or, "
            "for a retry with the same Idempotency-Key, the first answer",
            "content": _BOOKING,
        },
        409: {
            "description": "slot_full, booking_cancelled, booking_started; idempotency_key_in_flight; "
            "conflict_retry (busy with a concurrent change: retry after Retry-After)"
        },
        422: {"description": "validation_error, or idempotency_key_reused: the key was used with another request"},
    },
)
def reschedule_booking(
    booking_id: BookingId, change: RescheduleIn, idempotency_key: IdempotencyKey = None
) -> BookingOut:
    return service.reschedule_booking(
        booking_id,
        change,
        caller=current_caller(app),
        idempotency_key=idempotency_key,
        correlation_id=logger.get_correlation_id(),
    )


@app.get(
    "/availability",
    summary="Free start times, day by day",
    description=(
        "The start times at which a booking of `duration_minutes` would get a chef: every `SLOT_STEP_MINUTES` "
        "from `SERVICE_FIRST_START` to `SERVICE_LAST_START` local time, at least `MIN_LEAD_HOURS` ahead, "
        "without local times that DST skips or repeats, and only where a chef is free for the event plus the "
        "travel buffer before and after it. A listed start can be booked with `POST /bookings` at once (201 "
        "unless someone took it in between); a grid start not listed gets 409 or 422. `POST /bookings` also "
        "takes a start off the grid (18:15) within service hours, checked the same way (a free chef). A `date` "
        "before today in the zone is 422 `validation_error` naming the date."
    ),
    operation_id="getAvailability",
    tags=["bookings"],
)
def availability(
    date: Annotated[FirstDay, Query()],
    timezone: Annotated[EventZone, Query()],
    days: Annotated[DayCount, Query()] = 1,
    duration_minutes: Annotated[QueryDuration, Query()] = 120,
) -> AvailabilityOut:
    query = AvailabilityQuery(date=date, timezone=timezone, days=days, duration_minutes=duration_minutes)
    return service.availability(query)


@app.post(
    "/bookings/search",
    summary="Find bookings",
    description=(
        "All filters are optional and must all match; `from`/`to` are local dates in each booking's own time "
        "zone (both included). Without any filter: the confirmed bookings from today on. Ordered by "
        "`event_start`, then `id`; pass `next_cursor` back as `cursor` (with the same filters) for the next page. "
        "A POST, so that phone numbers and email addresses stay out of URLs and logs. Emails match in any case. "
        "The assistant (a token without `staff`) finds only the bookings of its conversation's customer: those "
        "made in it, or whose phone or email was verified in it."
    ),
    operation_id="searchBookings",
    tags=["bookings"],
    responses={
        200: {"description": "One page of bookings", "content": {"application/json": {"model": BookingPage}}},
        403: {
            "description": "verification_required: a phone or email filter is not an identity verified in the "
            "conversation this request acts for (nothing was searched)"
        },
    },
)
def search_bookings(search: BookingSearchIn) -> BookingPage:
    return service.search_bookings(search, caller=current_caller(app))


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: object) -> dict[str, Any]:
    return handle(app, event, context, OPERATIONS)


init_done()  # the last statement of the init (hibachi.coldstart)
