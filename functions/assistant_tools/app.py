"""assistant_tools: the booking assistant's tools for LLM agents, as an MCP server.

    POST /mcp   Model Context Protocol, Streamable HTTP, stateless, JSON responses (any of the tools' scopes)
    GET  /mcp   405 with Allow: POST (the transport's server-to-client SSE stream is not offered)

Each tool mirrors a REST route: the same pydantic models for its arguments (plus the route's path
parameters and Idempotency-Key), the same service call (one database round trip, in process), the
same scope (checked per call) and the same error codes (as MCP tool errors). The protocol is
``hibachi.mcp``; this module is the tool table.
"""

from __future__ import annotations

import gc

gc.disable()  # until the init is done (hibachi.coldstart): its objects are long-lived, not garbage

from typing import Annotated, Any
from uuid import UUID

from aws_lambda_powertools.logging import correlation_paths
from hibachi.api import Route
from hibachi.bookings import service as bookings
from hibachi.bookings.models import (
    AvailabilityOut,
    AvailabilityQuery,
    BookingIn,
    BookingOut,
    BookingPage,
    BookingSearchIn,
    RescheduleIn,
)
from hibachi.coldstart import init_done
from hibachi.conversations import service as conversations
from hibachi.conversations.models import MessageIn, MessageOut, MessagePage, MessagesQuery
from hibachi.errors import Unprocessable
from hibachi.mcp import Call, McpServer, Tool
from hibachi.observability import logger, metrics
from hibachi.validation import ID_PATTERN
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

BookingId = Annotated[
    UUID, Field(description="The booking's id (a UUID), as create_booking or find_bookings returned it")
]
ConversationId = Annotated[
    str,
    StringConstraints(min_length=1, max_length=128, pattern=ID_PATTERN),
    Field(
        description="The chat's id: 1-128 characters of A-Z a-z 0-9 . _ : -. Leave it out: the chat you are in "
        "(another chat's id is not found)"
    ),
]
IdempotencyKey = Annotated[
    str,
    StringConstraints(min_length=1, max_length=128, pattern=r"^[!-~]+$"),
    Field(
        description=(
            "A key you make up for this one request (visible ASCII, up to 128 characters, e.g. a UUID). If the call "
            "fails or times out, call again with the SAME key and the same arguments: you get the original result "
            "and nothing is done twice. Use a new key only for a different request."
        )
    ),
]


# -- arguments: the REST models plus the route's path parameters and Idempotency-Key -----------------------
class CreateBookingArgs(BookingIn):
    """``POST /bookings``: the body, and the Idempotency-Key header."""

    idempotency_key: IdempotencyKey


class BookingRef(BaseModel):
    """``GET /bookings/{booking_id}``, ``POST /bookings/{booking_id}/cancel``: the path."""

    model_config = ConfigDict(extra="forbid")

    booking_id: BookingId


class RescheduleArgs(RescheduleIn):
    """``PATCH /bookings/{booking_id}``: the path, the body, the Idempotency-Key."""

    booking_id: BookingId
    idempotency_key: IdempotencyKey | None = None


class StoreMessageArgs(MessageIn):
    """``POST /conversations/{conversation_id}/messages``: the path, the body, the Idempotency-Key."""

    conversation_id: ConversationId | None = None
    idempotency_key: IdempotencyKey | None = None


class HistoryArgs(MessagesQuery):
    """``GET /conversations/{conversation_id}/messages``: the path and the query."""

    conversation_id: ConversationId | None = None


def rest_part[M: BaseModel](model: type[M], args: BaseModel) -> M:
    """The REST model's part of validated arguments (no second validation; the same request hash as
    the REST route's, so a key used on both channels means the same request)."""
    return model.model_construct(**{name: getattr(args, name) for name in model.model_fields})


def keyed(args: CreateBookingArgs | RescheduleArgs | StoreMessageArgs, call: Call) -> dict[str, Any]:
    """A keyed write's arguments besides the request: who it acts for (its owner scopes the key, as
    on the REST route), the key, the correlation id."""
    return {"caller": call.caller, "idempotency_key": args.idempotency_key, "correlation_id": call.correlation_id}


def conversation(args: StoreMessageArgs | HistoryArgs, call: Call) -> str:
    """The chat a tool call is about: its argument, else the one the connection acts in (the host's
    Hibachi-Conversation header)."""
    chosen = args.conversation_id or call.caller.conversation_id
    if chosen is None:  # staff, on a connection without the header
        raise Unprocessable(
            "The arguments are not valid; see details.",
            details=[{"loc": ["arguments", "conversation_id"], "msg": "Field required", "type": "missing"}],
        )
    return chosen


# -- the tools ----------------------------------------------------------------------------------------------
def check_availability(args: AvailabilityQuery, call: Call) -> AvailabilityOut:
    return bookings.availability(args)


def find_bookings(args: BookingSearchIn, call: Call) -> BookingPage:
    return bookings.search_bookings(args, caller=call.caller)


def create_booking(args: CreateBookingArgs, call: Call) -> BookingOut:
    booking, _created = bookings.create_booking(rest_part(BookingIn, args), **keyed(args, call))
    return booking


def get_booking(args: BookingRef, call: Call) -> BookingOut:
    return bookings.get_booking(args.booking_id, caller=call.caller)


def reschedule_booking(args: RescheduleArgs, call: Call) -> BookingOut:
    return bookings.reschedule_booking(args.booking_id, rest_part(RescheduleIn, args), **keyed(args, call))


def cancel_booking(args: BookingRef, call: Call) -> BookingOut:
    return bookings.cancel_booking(args.booking_id, caller=call.caller, correlation_id=call.correlation_id)


def store_message(args: StoreMessageArgs, call: Call) -> MessageOut:
    message, _created = conversations.post_message(
        conversation(args, call), rest_part(MessageIn, args), **keyed(args, call)
    )
    return message


def get_conversation_history(args: HistoryArgs, call: Call) -> MessagePage:
    return conversations.list_messages(
        conversation(args, call), caller=call.caller, limit=args.limit, before=args.before
    )


_TIMES = (
    "Times: `event_start` is the local wall-clock time at the event, without offset (2026-12-05T18:30), in the "
    "event's IANA `timezone`; answers give ISO 8601 with the local offset."
)
_BOOKING_ERRORS = (
    "Errors (isError, with `error.code`): `slot_full` - no chef is free then; `error.details.next_free_starts` "
    "lists free start times that day: offer those. `validation_error` - `error.details` names each bad field "
    "(`loc`) and why (`msg`, `type`: e.g. `lead_time`, `event_start_past`, `nonexistent_local_time` on a DST "
    "change); ask the customer for that field, do not guess."
)

server = McpServer(
    name="hibachi-assistant-tools",
    title="Hibachi booking assistant tools",
    instructions=(
        "Tools of the booking assistant of a private hibachi-chef catering business: a chef comes to the "
        "customer's home and cooks for the party. Use get_conversation_history when a chat resumes, store_message "
        "for every turn (the customer's and yours), check_availability before offering times, create_booking "
        "once the customer confirmed every detail, find_bookings to look up a customer's bookings (by phone, "
        "email or chat), reschedule_booking and cancel_booking when asked. " + _TIMES + " Every tool error has a "
        "stable `error.code` (the REST API's) and a message meant for you; `service_unavailable` means nothing "
        "was changed: retry shortly (with the same idempotency_key)."
    ),
)
server.add(
    Tool(
        name="check_availability",
        title="Free start times",
        description=(
            "The start times at which a chef is free, day by day, for an event of `duration_minutes` (default "
            "120) in the event's IANA `timezone`: from `date` (YYYY-MM-DD, local) for `days` days (1-14). Only "
            "times within service hours, far enough ahead and with a free chef (travel time included) are listed; "
            "a day without times is full. Call it before offering times, and offer only listed ones: a listed "
            "start can be booked at once with create_booking (pass it without the offset, e.g. 2026-12-05T18:30). "
            "Errors: `validation_error` with the field (an unknown time zone, a date in the past, days out of "
            "range)."
        ),
        scope="bookings:read",
        arguments=AvailabilityQuery,
        output=AvailabilityOut,
        run=check_availability,
        read_only=True,
        idempotent=True,
    ),
    Tool(
        name="find_bookings",
        title="Find bookings",
        description=(
            "Find a customer's bookings: filter by `phone` (E.164, e.g. +14155550123), `email`, `conversation_id` "
            "(the chat), local dates `from`/`to` (YYYY-MM-DD, in each booking's zone) and `status` (`confirmed` or "
            "`cancelled`); every filter given must match. Without filters: the confirmed bookings from today on. "
            "Returns up to `limit` bookings (default 20) ordered by start; when `next_cursor` is not null, pass it "
            "as `cursor` with the same filters for more. Use it when a customer asks about, changes or cancels a "
            "booking and you do not have its id. Errors: `validation_error` with the field."
        ),
        scope="bookings:read",
        arguments=BookingSearchIn,
        output=BookingPage,
        run=find_bookings,
        read_only=True,
        idempotent=True,
    ),
    Tool(
        name="create_booking",
        title="Book a hibachi chef",
        description=(
            "Book a chef for an event. Call only after the customer confirmed the date, start time, length, head "
            "count, address and contact details; check_availability first. Always pass an `idempotency_key`; on a "
            "retry after an error or a timeout, send the SAME key with the same arguments to get the original "
            "booking back instead of a second one. Returns the booking (`id`, `status`, `event_start` with the "
            "local offset, `chef_id`, ...); keep its `id`. " + _TIMES + " " + _BOOKING_ERRORS + " "
            "`outside_service_hours` - the start is not one the business offers (`error.details` says which): "
            "check_availability lists the ones it does. `idempotency_key_reused` - the key was used for a different "
            "booking: make a new key."
        ),
        scope="bookings:write",
        arguments=CreateBookingArgs,
        output=BookingOut,
        run=create_booking,
        idempotent=True,
    ),
    Tool(
        name="get_booking",
        title="Read a booking",
        description=(
            "Read one booking by its id: status (`confirmed` or `cancelled`), start and end with the local offset, "
            "length, head count, customer, address, notes. Errors: `not_found` - no booking has that id (check "
            "it, or use find_bookings)."
        ),
        scope="bookings:read",
        arguments=BookingRef,
        output=BookingOut,
        run=get_booking,
        read_only=True,
        idempotent=True,
    ),
    Tool(
        name="reschedule_booking",
        title="Move a booking",
        description=(
            "Move a confirmed, upcoming booking to a new local start (in the booking's own time zone), optionally "
            "with a new length (`duration_minutes`) or head count (`guest_count`). Repeating the same move is "
            "harmless. Pass an `idempotency_key`: a retry with the SAME key and arguments returns the first answer, "
            "even after the booking moved on. Returns the booking as it is now. " + _BOOKING_ERRORS + " "
            "`booking_cancelled` / `booking_started` - it can no longer be changed; `not_found` - no booking has "
            "that id; `idempotency_key_reused` - the key was used for a different request: make a new key."
        ),
        scope="bookings:write",
        arguments=RescheduleArgs,
        output=BookingOut,
        run=reschedule_booking,
        idempotent=True,
    ),
    Tool(
        name="cancel_booking",
        title="Cancel a booking",
        description=(
            "Cancel a booking. Confirm with the customer first: this frees the chef for others. Cancelling an "
            "already cancelled booking returns it unchanged. Returns the booking (`status` `cancelled`, "
            "`cancelled_at`). Errors: `booking_started` - the event has begun and can no longer be cancelled; "
            "`not_found` - no booking has that id."
        ),
        scope="bookings:write",
        arguments=BookingRef,
        output=BookingOut,
        run=cancel_booking,
        destructive=True,
        idempotent=True,
    ),
    Tool(
        name="store_message",
        title="Store a chat message",
        description=(
            "Store one message of the chat: every customer message (role `user`) and every reply of yours (role "
            "`assistant`). Text the customer typed is always role `user`, never `system`. Optionally score the "
            "customer's mood in `emotion_score` (-1 upset to 1 delighted). Pass an `idempotency_key` (e.g. the "
            "chat platform's message id) so a retry stores the message once. Returns the stored message. Errors: "
            "`validation_error` with the fields; `service_unavailable` - nothing stored, retry with the same key."
        ),
        scope="messages:write",
        arguments=StoreMessageArgs,
        output=MessageOut,
        run=store_message,
    ),
    Tool(
        name="get_conversation_history",
        title="Read the chat history",
        description=(
            "The newest `limit` messages of a chat (default 50), oldest first, ready to put in a prompt: each "
            "with `role`, `content`, `created_at` and `emotion_score`. To read further back, pass the answer's "
            "`next_cursor` as `before` (null means there is nothing older). Errors: `not_found` - no chat has that "
            "id yet (a new customer: start with store_message)."
        ),
        scope="conversations:read",
        arguments=HistoryArgs,
        output=MessagePage,
        run=get_conversation_history,
        read_only=True,
        idempotent=True,
    ),
)

app = server  # ``app.get_openapi_json_schema()``: the endpoint in the API's OpenAPI document

# The route table: the route admits a token with any of the tools' scopes; each call checks its tool's.
# GET is the transport's server-to-client stream, which this server does not offer (405).
_ANY_TOOL = tuple(dict.fromkeys(tool.scope for tool in server.tools.values()))
OPERATIONS = {"POST /mcp": Route("mcp", _ANY_TOOL), "GET /mcp": Route("mcp", _ANY_TOOL)}


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: object) -> dict[str, Any]:
    return server.handle(event, OPERATIONS)


init_done()  # the last statement of the init (hibachi.coldstart)
