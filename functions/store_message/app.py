"""store_message: the chat history API, on every chat turn.

    POST /conversations/{conversation_id}/messages   store one message (scope messages:write)
    GET  /conversations/{conversation_id}            the conversation and its emotion statistics
    GET  /conversations/{conversation_id}/messages   history, oldest to newest within a page

Thin: parse and validate (Powertools + pydantic), call ``hibachi.conversations.service``, respond.
"""

from __future__ import annotations

import gc

gc.disable()  # until the init is done (hibachi.coldstart): its objects are long-lived, not garbage

from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.openapi.params import Header, Path, Query
from aws_lambda_powertools.logging import correlation_paths
from hibachi import idempotency
from hibachi.api import Route, create_app, current_caller, handle
from hibachi.coldstart import init_done
from hibachi.conversations import service
from hibachi.conversations.models import CURSOR_PATTERN, ConversationOut, MessageIn, MessageOut, MessagePage
from hibachi.observability import logger, metrics
from hibachi.settings import require_on_aws
from hibachi.validation import ID_PATTERN

require_on_aws("db_host", "jobs_queue_url")  # a mis-wired deploy fails its cold start, with one log line

app = create_app()

# The route table: each route's operation and the scope template.yaml's authorizer requires on it
OPERATIONS = {
    "POST /conversations/{conversation_id}/messages": Route("store_message", "messages:write"),
    "GET /conversations/{conversation_id}": Route("get_conversation", "conversations:read"),
    "GET /conversations/{conversation_id}/messages": Route("list_messages", "conversations:read"),
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
    return Response(
        status_code=201 if created else 200,
        content_type=content_types.APPLICATION_JSON,
        body=stored,
    )


@app.get("/conversations/<conversation_id>", summary="Read a conversation", tags=["conversations"])
def get_conversation(conversation_id: ConversationId) -> ConversationOut:
    return service.get_conversation(conversation_id, caller=current_caller(app))


@app.get("/conversations/<conversation_id>/messages", summary="Read the message history", tags=["conversations"])
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


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: object) -> dict[str, Any]:
    return handle(app, event, context, OPERATIONS)


init_done()  # the last statement of the init (hibachi.coldstart)
