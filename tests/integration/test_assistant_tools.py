"""The MCP server (functions/assistant_tools, hibachi.mcp) in process against the real PostgreSQL:
the transport's refusals, the JSON-RPC errors, every tool's scope, arguments and REST error codes, and
the rule that keeps the tools and the REST API from drifting apart (the same pydantic models).

The end-to-end walk with the SDK's own MCP client through the local gateway is tests/http/test_mcp_e2e.py.
"""

from __future__ import annotations

import base64
import json
import uuid
from datetime import datetime, timedelta
from typing import Any

import pytest
from hibachi import settings as settings_module

from local.events import http_event
from testkit.functions import load_function
from tests.support.common import ROOT, new_id
from tests.support.mcp import ALL, TOOLS, TZ, booking_args, call_tool, far_day, free_slot, post, rpc

READ_ONLY = {"check_availability", "find_bookings", "get_booking", "get_conversation_history"}


def test_initialize_negotiates_the_version_and_opens_no_session(context, settings):
    status, body, headers = post(
        context,
        {"jsonrpc": "2.0", "id": "a", "method": "initialize", "params": {"protocolVersion": "2025-06-18"}},
    )
    assert status == 200 and body["id"] == "a"
    assert body["result"]["protocolVersion"] == "2025-06-18"
    assert body["result"]["capabilities"] == {"tools": {"listChanged": False}}
    assert body["result"]["serverInfo"]["name"] == "hibachi-assistant-tools"
    assert "create_booking" in body["result"]["instructions"]
    assert not any(k.lower() == "mcp-session-id" for k in headers)
    newest = rpc(context, "initialize", {"protocolVersion": "1999-01-01"})["result"]["protocolVersion"]
    assert newest == "2025-11-25"
    assert rpc(context, "ping") == {"jsonrpc": "2.0", "id": 7, "result": {}}


def test_tools_list_has_every_tool_with_schemas_and_descriptions(context, settings):
    tools = {t["name"]: t for t in rpc(context, "tools/list")["result"]["tools"]}
    assert set(tools) == TOOLS
    for tool in tools.values():
        assert tool["inputSchema"]["type"] == "object" and tool["outputSchema"]["type"] == "object"
        assert len(tool["description"]) > 150, tool["name"]
        assert tool["annotations"]["readOnlyHint"] == (tool["name"] in READ_ONLY)
    assert "SAME key" in tools["create_booking"]["description"]
    assert "idempotency_key" in tools["create_booking"]["inputSchema"]["required"]
    assert "SAME key" in tools["create_booking"]["inputSchema"]["properties"]["idempotency_key"]["description"]


@pytest.mark.parametrize(
    ("body", "headers", "status", "code"),
    [
        ("{not json", {}, 400, -32700),
        ("", {}, 400, -32700),
        ("[" * 5000 + "]" * 5000, {}, 400, -32700),  # too deep for the parser
        ('[{"jsonrpc": "2.0", "id": 1, "method": "ping"}]', {}, 400, -32600),
        ('{"jsonrpc": "1.0", "id": 1, "method": "ping"}', {}, 400, -32600),
        ('"ping"', {}, 400, -32600),
        ('{"jsonrpc": "2.0", "id": 1.5, "method": "ping"}', {}, 400, -32600),
        ('{"jsonrpc": "2.0", "id": null, "method": "ping"}', {}, 400, -32600),
        ('{"jsonrpc": "2.0"}', {}, 400, -32600),
        ('{"jsonrpc": "2.0", "id": 1, "method": "ping"}', {"mcp-protocol-version": "2024-01-01"}, 400, -32600),
        ('{"jsonrpc": "2.0", "id": 1, "method": "ping"}', {"content-type": "text/plain"}, 415, -32600),
        ('{"jsonrpc": "2.0", "id": 1, "method": "ping"}', {"accept": "text/event-stream"}, 406, -32600),
    ],
    ids=[
        "not json",
        "empty",
        "deeply nested",
        "batch",
        "jsonrpc 1.0",
        "a string",
        "float id",
        "null id",
        "nothing",
        "unknown protocol version",
        "text/plain",
        "accepts sse only",
    ],
)
def test_transport_refusals_are_json_rpc_errors_never_500(context, settings, body, headers, status, code):
    got, answer, response_headers = post(context, body, headers=headers)
    assert (got, answer["error"]["code"], answer["id"]) == (status, code, None), answer
    assert answer["jsonrpc"] == "2.0" and answer["error"]["message"]
    assert response_headers["Content-Type"] == "application/json"


def test_notifications_and_responses_are_accepted_without_a_body(context, settings):
    for message in (
        {"jsonrpc": "2.0", "method": "notifications/initialized"},
        {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 3}},
        {"jsonrpc": "2.0", "id": 4, "result": {}},
    ):
        assert post(context, message)[:2] == (202, None), message


def test_get_opens_no_stream_405_with_allow_post(context, settings):
    """Streamable HTTP: a GET asks for the server's SSE stream; a server that offers none answers 405.
    An event of another route (forged) is still refused by the route table first."""
    event = http_event(
        "GET",
        "/mcp",
        route_key="GET /mcp",
        headers={"accept": "text/event-stream"},
        claims={"sub": "agent-1", "scope": "bookings:read staff"},
        scopes=["bookings:read", "staff"],
    )
    response = load_function("assistant_tools").lambda_handler(event, context)
    assert response["statusCode"] == 405 and response["headers"]["Allow"] == "POST"
    answer = json.loads(response["body"])
    assert answer["id"] is None and answer["error"]["code"] == -32600 and "SSE" in answer["error"]["message"]
    forged = {**event, "routeKey": "POST /mcp"}
    assert load_function("assistant_tools").lambda_handler(forged, context)["statusCode"] == 403


def test_oversized_and_base64_bodies(context, settings):
    big = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "ping", "params": {"pad": "x" * 70_000}})
    status, answer, _ = post(context, big)
    assert status == 413 and answer["error"]["code"] == -32600
    event = http_event(
        "POST",
        "/mcp",
        route_key="POST /mcp",
        headers={"content-type": "application/json"},
        body=json.dumps({"jsonrpc": "2.0", "id": 1, "method": "ping"}),
        claims={"sub": "agent-1"},
        scopes=list(ALL),
    )
    event["body"], event["isBase64Encoded"] = base64.b64encode(event["body"].encode()).decode(), True
    response = load_function("assistant_tools").lambda_handler(event, context)
    assert json.loads(response["body"]) == {"jsonrpc": "2.0", "id": 1, "result": {}}


def test_unknown_method_tool_and_malformed_params(context, settings):
    assert rpc(context, "resources/list")["error"]["code"] == -32601
    unknown = rpc(context, "tools/call", {"name": "drop_tables", "arguments": {}})["error"]
    assert unknown["code"] == -32602 and "create_booking" in unknown["message"]
    assert rpc(context, "tools/call", {"name": "get_booking", "arguments": [1]})["error"]["code"] == -32602
    assert rpc(context, "tools/call", {"name": ["get_booking"], "arguments": {}})["error"]["code"] == -32602
    for message, code in (
        ({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": "x"}, -32602),
        ({"jsonrpc": "2.0", "id": 1, "method": 5}, -32600),
        ({"jsonrpc": "2.0", "id": 1, "method": "ping", "extra": True}, -32600),
    ):
        status, answer, _ = post(context, message)
        assert (status, answer["id"], answer["error"]["code"]) == (400, 1, code), message


# -- tools ---------------------------------------------------------------------------------------------------
def test_booking_tools_round_trip_with_rest_error_codes(context, settings, sqs):
    args = booking_args()
    first = call_tool(context, "create_booking", args)
    assert first["isError"] is False
    booking = first["structuredContent"]
    assert booking["status"] == "confirmed" and booking["event_start"].startswith(args["event_start"])
    again = call_tool(context, "create_booking", args)["structuredContent"]
    assert again["id"] == booking["id"], "a retry with the same key is the original booking"

    reused = call_tool(context, "create_booking", {**args, "guest_count": 13})
    assert reused["isError"] and reused["error"]["code"] == "idempotency_key_reused"

    got = call_tool(context, "get_booking", {"booking_id": booking["id"]})["structuredContent"]
    assert got == booking

    later = (datetime.fromisoformat(args["event_start"]) + timedelta(days=1)).isoformat(timespec="minutes")
    moved = call_tool(context, "reschedule_booking", {"booking_id": booking["id"], "event_start": later})
    assert moved["structuredContent"]["event_start"].startswith(later) and moved["structuredContent"]["version"] == 2

    cancelled = call_tool(context, "cancel_booking", {"booking_id": booking["id"]})["structuredContent"]
    assert cancelled["status"] == "cancelled"
    assert call_tool(context, "cancel_booking", {"booking_id": booking["id"]})["structuredContent"] == cancelled
    refused = call_tool(context, "reschedule_booking", {"booking_id": booking["id"], "event_start": later})
    assert refused["error"]["code"] == "booking_cancelled"

    missing = call_tool(context, "get_booking", {"booking_id": str(uuid.uuid4())})
    assert missing["isError"] and missing["error"]["code"] == "not_found"


def test_reschedule_key_is_the_rest_routes_key(context, settings, sqs):
    """One key, one caller, one request hash on both channels: the PATCH with the tool's key and the
    same request answers the tool's result; with another request, the REST 422 whose error is the
    tool error's, word for word."""
    args = booking_args()
    booking = call_tool(context, "create_booking", args)["structuredContent"]
    later = (datetime.fromisoformat(args["event_start"]) + timedelta(days=1)).isoformat(timespec="minutes")
    key = str(uuid.uuid4())
    moved = call_tool(
        context, "reschedule_booking", {"booking_id": booking["id"], "event_start": later, "idempotency_key": key}
    )
    assert moved["isError"] is False and moved["structuredContent"]["version"] == booking["version"] + 1

    def patch(event_start: str) -> tuple[int, dict]:
        event = http_event(
            "PATCH",
            f"/bookings/{booking['id']}",
            route_key="PATCH /bookings/{booking_id}",
            path_parameters={"booking_id": booking["id"]},
            headers={"content-type": "application/json", "idempotency-key": key},
            body=json.dumps({"event_start": event_start}),
            claims={"sub": "agent-1", "scope": "bookings:write staff"},
            scopes=["bookings:write", "staff"],
        )
        response = load_function("create_booking").lambda_handler(event, context)
        return response["statusCode"], json.loads(response["body"])

    assert patch(later) == (200, moved["structuredContent"])
    other = (datetime.fromisoformat(later) + timedelta(days=1)).isoformat(timespec="minutes")
    status, body = patch(other)
    reused = call_tool(
        context, "reschedule_booking", {"booking_id": booking["id"], "event_start": other, "idempotency_key": key}
    )
    assert status == 422 and reused["isError"] and reused["error"] == body["error"]
    assert body["error"]["code"] == "idempotency_key_reused"


def test_slot_full_carries_the_free_starts(context, settings, sqs):
    # a day of its own: with one chef, any booking free_slot() put near a random start would fill it
    start = f"{far_day().isoformat()}T18:00"
    with settings_module.override(chef_count=1):
        assert not call_tool(context, "create_booking", booking_args(event_start=start))["isError"]
        full = call_tool(context, "create_booking", booking_args(event_start=start))
    assert full["isError"]
    error = full["error"]
    assert error["code"] == "slot_full"
    assert error["details"]["next_free_starts"], error
    assert error["details"]["timezone"] == TZ


def test_invalid_arguments_are_tool_errors_with_the_fields(context, settings):
    bad = call_tool(
        context,
        "create_booking",
        booking_args(guest_count="twelve", customer={"name": "", "phone": "555", "email": "x"}, extra=1),
    )
    assert bad["isError"]
    error = bad["error"]
    assert error["code"] == "validation_error"
    locs = {tuple(d["loc"]) for d in error["details"]}
    assert {
        ("arguments", "guest_count"),
        ("arguments", "customer", "phone"),
        ("arguments", "customer", "email"),
        ("arguments", "extra"),
    } <= locs
    assert "twelve" not in json.dumps(error), "the input is not echoed"
    past = call_tool(context, "create_booking", booking_args(event_start="2020-01-01T18:00"))
    assert past["error"]["code"] == "validation_error"
    assert past["error"]["details"][0]["type"] == "event_start_past"
    assert call_tool(context, "get_booking", {"booking_id": "nope"})["error"]["code"] == ("validation_error")
    missing_key = call_tool(
        context, "create_booking", {k: v for k, v in booking_args().items() if k != "idempotency_key"}
    )
    assert [d["loc"] for d in missing_key["error"]["details"]] == [["arguments", "idempotency_key"]]


@pytest.mark.parametrize(
    ("tool", "scope"),
    [
        ("create_booking", "bookings:write"),
        ("reschedule_booking", "bookings:write"),
        ("cancel_booking", "bookings:write"),
        ("get_booking", "bookings:read"),
        ("check_availability", "bookings:read"),
        ("find_bookings", "bookings:read"),
        ("store_message", "messages:write"),
        ("get_conversation_history", "conversations:read"),
    ],
)
def test_each_tool_checks_the_scope_of_its_rest_route(context, settings, tool, scope):
    others = [s for s in ALL if s != scope]
    result = call_tool(context, tool, {}, scopes=others)
    assert result["isError"]
    assert result["error"] == {
        "code": "insufficient_scope",
        "message": result["error"]["message"],
        "details": {"required_scope": scope},
    }


def test_messages_and_history_newest_n_oldest_first(context, settings):
    cid = new_id("mcp")
    key = str(uuid.uuid4())
    ids = []
    for i in range(5):
        args = {"conversation_id": cid, "role": "user" if i % 2 == 0 else "assistant", "content": f"turn {i}"}
        if i == 0:
            args["idempotency_key"] = key
        stored = call_tool(context, "store_message", args)
        assert not stored["isError"], stored
        ids.append(stored["structuredContent"]["id"])
    retry = call_tool(
        context, "store_message", {"conversation_id": cid, "role": "user", "content": "turn 0", "idempotency_key": key}
    )
    assert retry["structuredContent"]["id"] == ids[0]

    page = call_tool(context, "get_conversation_history", {"conversation_id": cid, "limit": 3})["structuredContent"]
    assert [m["id"] for m in page["items"]] == ids[2:], "the newest 3, oldest first"
    older = call_tool(context, "get_conversation_history", {"conversation_id": cid, "before": page["next_cursor"]})
    assert [m["id"] for m in older["structuredContent"]["items"]] == ids[:2]
    assert older["structuredContent"]["next_cursor"] is None
    unknown = call_tool(context, "get_conversation_history", {"conversation_id": new_id("none")})
    assert unknown["error"]["code"] == "not_found"
    bad_role = call_tool(context, "store_message", {"conversation_id": cid, "role": "robot", "content": "x"})
    assert bad_role["error"]["details"][0]["loc"] == ["arguments", "role"]


# -- the tools and the REST API share their models ---------------------------------------------------------
def _constraints(schema: dict) -> dict:
    """A JSON Schema without its prose (title, description) and a null default."""
    drop = ("title", "description", "default", "examples")
    branches = schema.get("anyOf")
    if isinstance(branches, list):  # a strict tool schema's optional property: anyOf [it, null]
        schema = next(b for b in branches if b.get("type") != "null")
    return {k: v for k, v in schema.items() if k not in drop}


def test_every_tool_input_schema_is_the_rest_models_schema(settings):
    """Each tool's input schema is its REST model's schema as a tool schema (hibachi.mcp.tool_schema:
    inlined, strict) plus only the REST route's path parameters and Idempotency-Key; store_message's
    metadata alone differs in form (a list of key/value pairs for the REST body's JSON object)."""
    from hibachi.bookings.models import AvailabilityQuery, BookingIn, BookingSearchIn, RescheduleIn
    from hibachi.conversations.models import MessageIn, MessagesQuery
    from hibachi.mcp import tool_schema
    from hibachi.validation import ID_PATTERN
    from hibachi.verifications.models import ConfirmIn, VerificationIn

    app = load_function("assistant_tools")
    rest = {
        "check_availability": (AvailabilityQuery, set()),
        "find_bookings": (BookingSearchIn, set()),
        "create_booking": (BookingIn, {"idempotency_key"}),
        "get_booking": (None, {"booking_id"}),
        "cancel_booking": (None, {"booking_id"}),
        "reschedule_booking": (RescheduleIn, {"booking_id", "idempotency_key"}),
        "store_message": (MessageIn, {"conversation_id", "idempotency_key"}),
        "get_conversation_history": (MessagesQuery, {"conversation_id"}),
        "start_verification": (VerificationIn, {"conversation_id"}),
        "confirm_verification": (ConfirmIn, {"conversation_id"}),
    }
    assert set(rest) == set(app.server.tools) == TOOLS
    for name, (model, route_params) in rest.items():
        schema = app.server.tools[name].input_schema()
        assert schema["type"] == "object" and schema["additionalProperties"] is False, name
        own = {k: v for k, v in schema["properties"].items() if k not in route_params}
        assert set(schema["properties"]) - set(own) == route_params, name
        if model is None:
            assert own == {}, name
            continue
        expected = tool_schema(model)["properties"]
        assert list(own) == list(expected), name
        differ = {"metadata"} if name == "store_message" else set()
        assert {k: v for k, v in own.items() if k not in differ} == {
            k: v for k, v in expected.items() if k not in differ
        }, name
    # a REST route without a model declares the same query parameters (the committed OpenAPI document is
    # generated from the code: tests/unit/test_openapi_docs.py)
    doc = json.loads((ROOT / "functions" / "docs" / "openapi.json").read_text(encoding="utf-8"))
    history = app.server.tools["get_conversation_history"].input_schema()["properties"]
    for param in doc["paths"]["/conversations/{conversation_id}/messages"]["get"]["parameters"]:
        if param["in"] == "query":
            assert _constraints(param["schema"]) == _constraints(history[param["name"]]), param["name"]
    assert {p["name"] for p in doc["paths"]["/conversations/{conversation_id}/messages"]["get"]["parameters"]} == {
        "conversation_id",
        *MessagesQuery.model_fields,
    }
    # the path parameters have the REST routes' types
    for name in ("get_booking", "cancel_booking", "reschedule_booking"):
        prop = app.server.tools[name].input_schema()["properties"]["booking_id"]
        assert (prop["type"], prop["format"]) == ("string", "uuid")
    for name in ("store_message", "get_conversation_history"):
        # optional: the connection's conversation (the host's Hibachi-Conversation header) by default
        schema = app.server.tools[name].input_schema()
        prop, none = schema["properties"]["conversation_id"]["anyOf"]
        # strict mode lists every property as required: an optional one is nullable (null: the header's)
        assert (prop["pattern"], prop["minLength"], prop["maxLength"], none) == (ID_PATTERN, 1, 128, {"type": "null"})


def strict_problems(schema: Any, path: str = "") -> list[str]:
    """What keeps ``schema`` from OpenAI's strict mode (Structured Outputs) as it is, or from telling a
    model what to send: a ``$ref``/``$defs`` to follow, an open object, a property not required (strict
    mode wants every one, the optional ones nullable), a property without a description."""
    problems: list[str] = []
    if isinstance(schema, list):
        for i, item in enumerate(schema):
            problems += strict_problems(item, f"{path}[{i}]")
        return problems
    if not isinstance(schema, dict):
        return problems
    problems += [f"{path}: {key}" for key in ("$ref", "$defs", "definitions") if key in schema]
    if _is_object(schema):
        problems += _object_problems(schema, path)
    for key, value in schema.items():
        if key == "properties":
            for name, prop in value.items():
                problems += strict_problems(prop, f"{path}.{name}")
        elif isinstance(value, dict | list) and key not in ("enum", "const", "required"):
            problems += strict_problems(value, f"{path}/{key}")
    return problems


def _is_object(schema: dict[str, Any]) -> bool:
    kind = schema.get("type")
    return kind == "object" or (isinstance(kind, list) and "object" in kind) or "properties" in schema


def _object_problems(schema: dict[str, Any], path: str) -> list[str]:
    """An object schema's own problems (not its properties' schemas): open, empty, a property not
    required or without a description."""
    problems: list[str] = []
    if schema.get("additionalProperties") is not False:
        problems.append(f"{path}: an open object (additionalProperties is not false)")
    props = schema.get("properties") or {}
    if not props:
        problems.append(f"{path}: an object without properties")
    if list(schema.get("required") or []) != list(props):
        problems.append(f"{path}: not every property required")
    for name, prop in props.items():
        if not str((prop or {}).get("description") or "").strip():
            problems.append(f"{path}.{name}: no description")
    return problems


def test_every_tool_schema_is_strict_and_described(context, settings):
    """Generic, so a tool added later inherits it: every input schema of tools/list passes the strict
    check (no $ref, closed objects, all required, optional ones nullable) and describes every property;
    no schema carries the REST notes (routes, headers) a model has no use for."""
    tools = rpc(context, "tools/list")["result"]["tools"]
    assert {t["name"] for t in tools} >= TOOLS
    for tool in tools:
        assert strict_problems(tool["inputSchema"]) == [], tool["name"]
        assert "$ref" not in json.dumps(tool["outputSchema"]), tool["name"]
        text = json.dumps(tool["inputSchema"])
        assert "Idempotency-Key" not in text and "POST /" not in text and "GET /" not in text, tool["name"]
    assert strict_problems({"type": "object", "properties": {"m": {"type": "object"}}})  # the check can fail


def test_null_optional_arguments_are_unset_and_metadata_is_pairs(context, settings, sqs):
    """What a strict-mode host sends: every property, null where unset."""
    free = call_tool(
        context,
        "check_availability",
        {"date": free_slot()[:10], "days": None, "timezone": TZ, "duration_minutes": None},
    )
    assert not free["isError"] and free["structuredContent"]["duration_minutes"] == 120, free
    args = booking_args(duration_minutes=None, conversation_id=None, notes=None)
    args["address"] = {**args["address"], "line2": None}
    booked = call_tool(context, "create_booking", args)
    assert not booked["isError"] and booked["structuredContent"]["duration_minutes"] == 120, booked
    cid = new_id("mcp-meta")
    pairs = [{"key": "client_message_id", "value": "m-1"}, {"key": "lang", "value": "en"}]
    stored = call_tool(
        context,
        "store_message",
        {
            "conversation_id": cid,
            "role": "user",
            "content": "hi",
            "metadata": pairs,
            "emotion_score": None,
            "customer_id": None,
            "channel": None,
            "idempotency_key": None,
        },
    )
    assert not stored["isError"] and stored["structuredContent"]["metadata"] == {
        "client_message_id": "m-1",
        "lang": "en",
    }
    twice = call_tool(
        context, "store_message", {"conversation_id": cid, "role": "user", "content": "hi", "metadata": pairs * 2}
    )
    assert twice["isError"] and twice["error"]["details"][0]["loc"][:2] == ["arguments", "metadata"], twice


def test_availability_and_search_tools(context, settings, sqs):
    day = far_day()
    free = call_tool(context, "check_availability", {"date": day.isoformat(), "days": 2, "timezone": TZ})
    assert not free["isError"], free
    days = free["structuredContent"]["days"]
    assert [d["date"] for d in days] == [day.isoformat(), (day + timedelta(days=1)).isoformat()]
    start = days[0]["starts"][0][:16]
    chat = new_id("mcp-find")
    booked = call_tool(context, "create_booking", booking_args(event_start=start, conversation_id=chat))
    assert not booked["isError"], booked
    again = call_tool(context, "check_availability", {"date": day.isoformat(), "timezone": TZ})
    assert again["structuredContent"]["days"][0]["starts"] != [], "three chefs: one booking leaves the time free"

    found = call_tool(context, "find_bookings", {"conversation_id": chat})["structuredContent"]
    assert [b["id"] for b in found["items"]] == [booked["structuredContent"]["id"]]
    by_phone = call_tool(
        context, "find_bookings", {"phone": "+14155550123", "from": day.isoformat(), "to": day.isoformat()}
    )
    assert booked["structuredContent"]["id"] in [b["id"] for b in by_phone["structuredContent"]["items"]]

    outside = call_tool(context, "create_booking", booking_args(event_start=f"{day.isoformat()}T06:00"))
    assert outside["error"]["code"] == "outside_service_hours"
    bad_zone = call_tool(context, "check_availability", {"date": day.isoformat(), "timezone": "Mars/Olympus"})
    assert bad_zone["error"]["code"] == "validation_error"
    assert bad_zone["error"]["details"][0]["loc"] == ["arguments", "timezone"]
    bad_range = call_tool(context, "find_bookings", {"from": "2030-01-02", "to": "2030-01-01"})
    assert bad_range["error"]["code"] == "validation_error"


def test_forged_events_are_refused_before_any_message_is_read(context, settings):
    """The route table's check (hibachi.api.refusal), as on every API route: no authorizer claims, or
    a method and path that are not the route's."""
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "ping"})
    handler = load_function("assistant_tools").lambda_handler
    headers = {"content-type": "application/json"}
    unsigned = http_event("POST", "/mcp", route_key="POST /mcp", headers=headers, body=body)
    assert handler(unsigned, context)["statusCode"] == 401
    elsewhere = http_event(
        "POST", "/bookings", route_key="POST /mcp", headers=headers, body=body, claims={"sub": "x"}, scopes=list(ALL)
    )
    assert handler(elsewhere, context)["statusCode"] == 403
    no_scope = http_event(
        "POST", "/mcp", route_key="POST /mcp", headers=headers, body=body, claims={"sub": "x"}, scopes=["ops:read"]
    )
    assert handler(no_scope, context)["statusCode"] == 403
