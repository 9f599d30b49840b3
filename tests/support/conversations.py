"""store_message and the conversation reads in process: route keys and callers of the handler."""

from __future__ import annotations

import json

from local.events import http_event
from testkit.functions import load_function

POST = "POST /conversations/{conversation_id}/messages"
GET_CONV = "GET /conversations/{conversation_id}"
LIST = "GET /conversations/{conversation_id}/messages"


def call(context, route_key: str, cid: str, *, body=None, headers=None, query=None, raw_body=None):
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
        scopes=["messages:write", "conversations:read"],
    )
    response = load_function("store_message").lambda_handler(event, context)
    return response["statusCode"], json.loads(response["body"]) if response.get("body") else None


def post(context, cid, **body):
    headers = {"idempotency-key": body.pop("key")} if "key" in body else None
    return call(context, POST, cid, body=body, headers=headers)
