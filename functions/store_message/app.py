"""store_message: the chat history API, on every chat turn.

    POST /conversations/{conversation_id}/messages   store one message (scope messages:write)
    GET  /conversations/{conversation_id}            the conversation and its emotion statistics
    GET  /conversations/{conversation_id}/messages   history, oldest to newest within a page
    PUT  /conversations/{conversation_id}/identity   attach what the channel proved (scope staff)
    POST /conversations/{conversation_id}/verifications           send a one-time code (messages:write)
    POST /conversations/{conversation_id}/verifications/confirm   confirm it (messages:write)

Thin: parse and validate (Powertools + pydantic), call ``hibachi.conversations.service`` (and
``hibachi.verifications.service``), respond.
"""

from __future__ import annotations

import gc

gc.disable()  # until the init is done (hibachi.coldstart): its objects are long-lived, not garbage

from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.openapi.params import Header, Path, Query
from aws_lambda_powertools.logging import correlation_paths
from hibachi import idempotency
from hibachi.api import Route, create_app, created_or_found, current_caller, handle
from hibachi.coldstart import init_done
from hibachi.conversations import service
from hibachi.conversations.models import CURSOR_PATTERN, ConversationOut, MessageIn, MessageOut, MessagePage
from hibachi.observability import logger, metrics
from hibachi.settings import require_on_aws
from hibachi.validation import ID_PATTERN
from hibachi.verifications import service as verifications
from hibachi.verifications.models import ConfirmIn, IdentityIn, IdentityOut, VerificationIn, VerificationOut

require_on_aws("db_host", "jobs_queue_url")  # a mis-wired deploy fails its cold start, with one log line

app = create_app()

# The route table: each route's operation and the scope template.yaml's authorizer requires on it
OPERATIONS = {
    "POST /conversations/{conversation_id}/messages": Route("store_message", "messages:write"),
    "GET /conversations/{conversation_id}": Route("get_conversation", "conversations:read"),
    "GET /conversations/{conversation_id}/messages": Route("list_messages", "conversations:read"),
    "PUT /conversations/{conversation_id}/identity": Route("attach_identity", "staff"),
    "POST /conversations/{conversation_id}/verifications": Route("start_verification", "messages:write"),
    "POST /conversations/{conversation_id}/verifications/confirm": Route("confirm_verification", "messages:write"),
}

ConversationId = Annotated[
    str, Path(min_length=1, max_length=128, pattern=ID_PATTERN, description="1-128 characters of A-Z a-z 0-9 . _ : -")
]
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


@app.post(
    "/conversations/<conversation_id>/messages",
    summary="Store a chat message",
    description=(
        "Stores one chat message (the conversation is created with its first one). Send an `Idempotency-Key` "
        "(the chat platform's message id) so a retry stores it once."
    ),
    operation_id="storeMessage",
    tags=["conversations"],
    responses={
        201: {"description": "Stored", "content": {"application/json": {"model": MessageOut}}},
        200: {
            "description": "Retry of an earlier request with the same Idempotency-Key",
            "content": {"application/json": {"model": MessageOut}},
        },
        409: {"description": "idempotency_key_in_flight: the key's first request is still in progress"},
        422: {"description": "validation_error, or idempotency_key_reused: the key was used with another request"},
    },
)
def store_message(
    conversation_id: ConversationId, message: MessageIn, idempotency_key: IdempotencyKey = None
) -> Response[MessageOut]:
    stored, created = service.post_message(
        conversation_id,
        message,
        caller=current_caller(app),
        idempotency_key=idempotency_key,
        correlation_id=logger.get_correlation_id(),
    )
    return created_or_found(stored, created)


@app.get(
    "/conversations/<conversation_id>",
    summary="Read a conversation",
    description="The conversation and its emotion statistics (computed by the worker within seconds).",
    operation_id="getConversation",
    tags=["conversations"],
)
def get_conversation(conversation_id: ConversationId) -> ConversationOut:
    return service.get_conversation(conversation_id, caller=current_caller(app))


@app.get(
    "/conversations/<conversation_id>/messages",
    summary="Read the message history",
    description="The newest `limit` messages, oldest first; `next_cursor` as `before` reads further back.",
    operation_id="listMessages",
    tags=["conversations"],
)
def list_messages(
    conversation_id: ConversationId,
    limit: Annotated[int, Query(ge=1, le=200, description="Page size")] = 50,
    before: Annotated[
        str | None,
        Query(
            max_length=20,
            pattern=CURSOR_PATTERN,
            description="`next_cursor` of the newer page: `m` and a message sequence number, such as m42",
        ),
    ] = None,
) -> MessagePage:
    return service.list_messages(conversation_id, caller=current_caller(app), limit=limit, before=before)


@app.put(
    "/conversations/<conversation_id>/identity",
    summary="Attach an identity the channel proved (staff)",
    operation_id="attachIdentity",
    description=(
        "What the conversation's channel proved about its customer, such as an SMS conversation's sender "
        "(`verified_by: sms`): the assistant acting in this conversation then reaches that customer's bookings. "
        "Exactly one of `phone` and `email`. Idempotent: a repeat changes nothing and answers the identity as "
        "first proven (200)."
    ),
    tags=["identities"],
    responses={
        201: {"description": "Attached", "content": {"application/json": {"model": IdentityOut}}},
        200: {"description": "Already attached (unchanged)", "content": {"application/json": {"model": IdentityOut}}},
        403: {"description": "forbidden: only a staff token attaches identities"},
    },
)
def attach_identity(conversation_id: ConversationId, body: IdentityIn) -> Response[IdentityOut]:
    identity, created = verifications.attach_identity(conversation_id, body, caller=current_caller(app))
    return created_or_found(identity, created)


@app.post(
    "/conversations/<conversation_id>/verifications",
    summary="Send a one-time code to a phone or email",
    operation_id="startVerification",
    description=(
        "Sends a 6-digit code to `phone` (by SMS) or `email` (exactly one), for the customer to type back into "
        "this conversation (`.../verifications/confirm`). It expires after VERIFICATION_CODE_TTL_SECONDS (600) "
        "and takes VERIFICATION_MAX_ATTEMPTS (5) confirmations; a new code supersedes the earlier ones. "
        "Rate limited per destination and per conversation: 429 with Retry-After. Already proven here: 200 "
        "`already_verified`, nothing sent."
    ),
    tags=["identities"],
    responses={
        202: {"description": "The code is on its way", "content": {"application/json": {"model": VerificationOut}}},
        200: {
            "description": "Already verified here: nothing sent",
            "content": {"application/json": {"model": VerificationOut}},
        },
        409: {"description": "conflict_retry: concurrent verifications; retry"},
        429: {"description": "rate_limited: too many codes to this destination or conversation lately"},
    },
)
def start_verification(conversation_id: ConversationId, body: VerificationIn) -> Response[VerificationOut]:
    started, sent = verifications.start_verification(
        conversation_id,
        body,
        caller=current_caller(app),
        correlation_id=logger.get_correlation_id(),
    )
    return Response(status_code=202 if sent else 200, content_type=content_types.APPLICATION_JSON, body=started)


@app.post(
    "/conversations/<conversation_id>/verifications/confirm",
    summary="Confirm a one-time code",
    operation_id="confirmVerification",
    description=(
        "Checks `code` against this conversation's newest code. Right: the phone or email is verified in this "
        "conversation (a repeat answers the same). Wrong: 422 verification_code_invalid with "
        "`details.attempts_left`; expired: 422 verification_expired; no attempts left: 422 "
        "verification_attempts_exhausted; no code waiting: 404 verification_not_found."
    ),
    tags=["identities"],
    responses={
        200: {"description": "Verified", "content": {"application/json": {"model": IdentityOut}}},
        404: {"description": "verification_not_found: no code is waiting in this conversation"},
        422: {
            "description": (
                "validation_error, verification_code_invalid, verification_expired or verification_attempts_exhausted"
            )
        },
    },
)
def confirm_verification(conversation_id: ConversationId, body: ConfirmIn) -> IdentityOut:
    return verifications.confirm_verification(conversation_id, body, caller=current_caller(app))


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: object) -> dict[str, Any]:
    return handle(app, event, context, OPERATIONS)


init_done()  # the last statement of the init (hibachi.coldstart)
