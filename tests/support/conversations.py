"""store_message and the conversation reads in process: route keys and callers of the handler."""

from __future__ import annotations

import json
from typing import Any

from hibachi import jobs

from local.events import LambdaContext, http_event
from testkit.functions import load_function

POST = "POST /conversations/{conversation_id}/messages"
GET_CONV = "GET /conversations/{conversation_id}"
LIST = "GET /conversations/{conversation_id}/messages"


def call(
    context: LambdaContext,
    route_key: str,
    cid: str,
    *,
    body: object = None,
    headers: dict[str, str] | None = None,
    query: str | dict[str, str] | None = None,
    raw_body: str | bytes | None = None,
) -> tuple[int, Any]:
    """``route_key`` on the store_message handler: (status, the JSON body or None)."""
    method, template = route_key.split(" ", 1)
    path = template.replace("{conversation_id}", cid)
    event = http_event(
        method,
        path,
        route_key=route_key,
        path_parameters={"conversation_id": cid},
        query=query,
        headers={"content-type": "application/json", **(headers or {})},
        body=raw_body if raw_body is not None else (json.dumps(body) if body is not None else None),
        claims={"sub": "tester"},
        scopes=["messages:write", "conversations:read", "staff"],
    )
    response = load_function("store_message").lambda_handler(event, context)
    return int(response["statusCode"]), json.loads(response["body"]) if response.get("body") else None


def post(context: LambdaContext, cid: str, **body: Any) -> tuple[int, Any]:
    """Store a message (``key``: its Idempotency-Key)."""
    headers = {"idempotency-key": body.pop("key")} if "key" in body else None
    return call(context, POST, cid, body=body, headers=headers)


def worker(event: dict[str, Any], context: LambdaContext) -> Any:
    return load_function("followup_worker").lambda_handler(event, context)


def emotion_body(cid: str, seq: int = 1) -> str:
    return jobs.Job.new(
        jobs.EMOTION_STATS, f"emotion_stats:{cid}:{seq}", {"conversation_id": cid}, "corr-1"
    ).model_dump_json()
