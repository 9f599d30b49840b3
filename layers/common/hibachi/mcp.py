"""An MCP server (Model Context Protocol) on one API Gateway route: the Streamable HTTP transport,
stateless, every answer plain JSON (no SSE: HTTP APIs do not stream).

Why not a library: the official ``mcp`` SDK (2.3.0) serves through Starlette/ASGI and imports its whole
protocol model set (``mcp_types``, hundreds of pydantic models), starlette, httpx2, anyio, jsonschema
and OpenTelemetry: several hundred milliseconds more on every cold start of a function that needs five
methods. ``awslabs-mcp-lambda-handler`` (0.1.15) is small but turns every tool exception into a JSON-RPC
-32603 answered with HTTP 500 (no ``isError`` tool results, so an agent cannot recover), builds input
schemas from type hints only (not from our pydantic models), returns results as ``str(result)`` and
accepts only the exact content type ``application/json``. ``python -m bench.mcp_libraries`` measures
what each library adds to the import; the tests drive this module with the SDK's own client.

What is served (MCP 2025-11-25 and 2025-06-18; an unknown version in ``initialize`` gets the newest):

- The route table's check first (``hibachi.api.refusal``), as on every API route.
- ``GET`` (a client opening the server's SSE stream): ``405`` with ``Allow: POST``, as the transport
  says a server that offers no stream answers; a JSON-RPC error body with ``id: null``.
- ``initialize`` (no ``Mcp-Session-Id``: stateless), ``ping``, ``tools/list``, ``tools/call``;
  any other method: JSON-RPC -32601. ``notifications/*`` and client responses: ``202`` with no body.
- Transport errors, each a JSON-RPC error with ``id: null``: not JSON -> 400 / -32700; a batch (the
  2025-06-18 transport dropped JSON-RPC batching), or not a JSON-RPC 2.0 message -> 400 / -32600; an
  ``MCP-Protocol-Version`` header this server does not speak -> 400 / -32600; a body that is not
  ``application/json`` -> 415; an ``Accept`` header that rules out JSON -> 406; a body over
  ``MAX_BODY_BYTES`` -> 413; an integer beyond Python's 4,300 digits -> 422 / -32602.
- A tool call: its scope is checked against the token's (the scope of the REST route the tool
  mirrors), its arguments are validated by the tool's pydantic model (the same models as the REST
  API), then the tool runs. Failures are *tool errors* (``isError: true``), never HTTP errors, so the
  agent sees them and can recover; their text content is the REST API's error body
  ``{"error": {"code", "message", "details"?}}`` (no ``structuredContent``: the output schema declares
  the success result only) with the same codes (``slot_full`` with the free
  starts, ``validation_error`` with the fields, ``idempotency_key_reused``, ``not_found``, ...).
  An unexpected exception is logged and answered as the tool error ``internal_error``; never a 500.
"""

from __future__ import annotations

import base64
import functools
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ValidationError

from hibachi.api import document_auth, metric_prefix, refusal, validation_details
from hibachi.callers import Caller, caller_of, token_scopes
from hibachi.db import get_db
from hibachi.errors import AppError
from hibachi.observability import add_ms, exception_facts, logger, metrics, timed_ms
from hibachi.settings import get_settings

PROTOCOL_VERSIONS = ("2025-11-25", "2025-06-18")  # newest first
PARSE_ERROR, INVALID_REQUEST, METHOD_NOT_FOUND, INVALID_PARAMS = -32700, -32600, -32601, -32602
_JSON = "application/json"
_REQUEST_MEMBERS = frozenset({"jsonrpc", "id", "method", "params"})
_RESPONSE_MEMBERS = frozenset({"jsonrpc", "id", "result", "error"})


# -- tool schemas: what every host accepts ------------------------------------------------------------------
# Keywords a tool schema leaves out: titles (the property's name says it), defaults and examples (each
# description states them; OpenAI's strict mode accepts neither), and pydantic's "minLength": 0.
_DROPPED = frozenset({"title", "default", "examples"})


def _inline(node: Any, defs: Mapping[str, Any]) -> Any:
    """``node`` with every ``$ref`` into ``$defs`` replaced by the definition (a sibling description
    wins over the definition's), and the keywords in ``_DROPPED`` left out."""
    if isinstance(node, list):
        return [_inline(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = _inline(defs[str(node["$ref"]).rpartition("/")[2]], defs)
        siblings = {k: _inline(v, defs) for k, v in node.items() if k != "$ref" and k not in _DROPPED}
        return {**target, **siblings}
    out: dict[str, Any] = {}
    for key, value in node.items():
        if key in _DROPPED or key == "$defs" or (key == "minLength" and value == 0):
            continue
        if key in ("properties", "patternProperties", "$defs"):
            out[key] = {name: _inline(sub, defs) for name, sub in value.items()}
        else:
            out[key] = _inline(value, defs)
    return out


def _nullable(prop: dict[str, Any]) -> dict[str, Any]:
    """``prop`` that also takes ``null`` (an optional property in strict mode: present, null if unset),
    as ``anyOf`` branches of one ``type`` each (a ``type`` list is less portable: Inspector's --strict)."""
    branches = prop.get("anyOf")
    if isinstance(branches, list):
        if any(b.get("type") == "null" for b in branches if isinstance(b, dict)):
            return prop
        return {**prop, "anyOf": [*branches, {"type": "null"}]}
    meta = {k: v for k, v in prop.items() if k == "description"}
    inner = {k: v for k, v in prop.items() if k != "description"}
    return {**meta, "anyOf": [inner, {"type": "null"}]}


def _hoist_description(prop: dict[str, Any]) -> dict[str, Any]:
    """A description pydantic put inside an ``anyOf`` branch (an ``Optional[Annotated[..., Field(description)]]``)
    moved up to the property, where hosts and models read it."""
    branches = prop.get("anyOf")
    if "description" in prop or not isinstance(branches, list):
        return prop
    for branch in branches:
        if isinstance(branch, dict) and "description" in branch:
            rest = [{k: v for k, v in b.items() if k != "description"} if b is branch else b for b in branches]
            return {"description": branch["description"], **prop, "anyOf": rest}
    return prop


def _strict(node: Any) -> Any:
    """Every object closed (``additionalProperties: false``), every property required, the optional
    ones nullable: the form OpenAI's strict mode (Structured Outputs) takes as it is."""
    if isinstance(node, list):
        return [_strict(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _strict(value) for key, value in node.items() if key != "properties"}
    if isinstance(node.get("properties"), dict):
        required = set(node.get("required") or ())
        props = {}
        for name, sub in node["properties"].items():
            prop = _hoist_description(_strict(sub))
            props[name] = prop if name in required else _nullable(prop)
        out["properties"] = props
        out["required"] = list(props)
        out["additionalProperties"] = False
    return out


def tool_schema(
    model: type[BaseModel], *, mode: Literal["validation", "serialization"] = "validation"
) -> dict[str, Any]:
    """A model's JSON Schema as a tool schema every host takes as it is: no ``$ref`` to follow (the
    definitions inlined), no titles, defaults or examples, no description of the whole (the tool's
    own description says what it does). Input schemas (``mode="validation"``) are also strict
    (``_strict``); :meth:`McpServer.call` reads a ``null`` as an absent optional argument."""
    schema = model.model_json_schema(mode=mode)
    out: dict[str, Any] = _inline(schema, schema.get("$defs") or {})
    out.pop("description", None)
    if mode == "validation":
        out = _strict(out)
    return out


@functools.cache
def _validation_schema(model: type[BaseModel]) -> dict[str, Any]:
    schema: dict[str, Any] = model.model_json_schema()
    return schema


def _drop_nulls(value: Any, schema: Mapping[str, Any], defs: Mapping[str, Any]) -> Any:
    """The arguments without the ``null`` of optional properties (what strict-mode hosts send for an
    unset one), as deep as the model's objects go: pydantic then applies the defaults."""
    if "$ref" in schema:
        schema = {**defs.get(str(schema["$ref"]).rpartition("/")[2], {}), **schema}
    if not isinstance(value, dict) or not isinstance(schema.get("properties"), dict):
        return value
    required = set(schema.get("required") or ())
    out = {}
    for key, item in value.items():
        sub = schema["properties"].get(key)
        if item is None and sub is not None and key not in required:
            continue
        out[key] = _drop_nulls(item, sub, defs) if isinstance(sub, dict) else item
    return out


@dataclass(frozen=True)
class Request:
    """One POST of the endpoint: the token's scopes, the request id, and the event, from which each
    tool call builds its ``Caller`` (``hibachi.callers``: who it acts for)."""

    scopes: frozenset[str]
    correlation_id: str | None
    event: Mapping[str, Any]


@dataclass(frozen=True)
class Call:
    """What a tool runs with besides its arguments: who it acts for (built per call, ``via``
    ``"mcp:<tool>"``; the conversation comes from the host's header on the connection, never from
    an argument the model wrote) and the request's id (jobs carry it)."""

    caller: Caller
    correlation_id: str | None = None


@dataclass(frozen=True)
class Tool:
    """One tool: ``arguments`` validates the call's arguments (its JSON Schema is the tool's input
    schema), ``run`` does the work and returns the result model (``output`` is its type)."""

    name: str
    title: str
    description: str
    scope: str
    arguments: type[BaseModel]
    output: type[BaseModel]
    run: Callable[[Any, Call], BaseModel]
    read_only: bool = False
    destructive: bool = False
    idempotent: bool = False

    def input_schema(self) -> dict[str, Any]:
        return tool_schema(self.arguments)

    def arguments_of(self, arguments: dict[str, Any]) -> dict[str, Any]:
        """The call's arguments as the model reads them (an optional argument's ``null``: unset)."""
        schema = _validation_schema(self.arguments)
        return dict(_drop_nulls(arguments, schema, schema.get("$defs") or {}))

    def listing(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "description": self.description,
            "inputSchema": self.input_schema(),
            "outputSchema": tool_schema(self.output, mode="serialization"),
            "annotations": {
                "title": self.title,
                "readOnlyHint": self.read_only,
                "destructiveHint": self.destructive,
                "idempotentHint": self.idempotent,
                "openWorldHint": False,
            },
        }


def request_of(event: Mapping[str, Any]) -> Request:
    """The request's scopes (``hibachi.callers.token_scopes``: ``jwt.scopes`` and the token's
    ``scope`` / ``scp`` claims) and id."""
    context = event.get("requestContext") or {}
    return Request(scopes=frozenset(token_scopes(event) or ()), correlation_id=context.get("requestId"), event=event)


class _Reject(Exception):
    """A message refused before any method runs: HTTP ``status`` and a JSON-RPC error (``id: null``)."""

    def __init__(
        self,
        status: int,
        code: int,
        message: str,
        headers: Mapping[str, str] | None = None,
        request_id: str | int | None = None,
    ):
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, dict(headers or {})
        self.request_id = request_id


def _http(status: int, body: Any = None, headers: Mapping[str, str] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"statusCode": status, "headers": {**(headers or {})}, "isBase64Encoded": False}
    if body is not None:
        out["headers"]["Content-Type"] = _JSON
        out["body"] = json.dumps(body, ensure_ascii=False, separators=(",", ":"))
    else:
        out["body"] = ""
    return out


def _error(request_id: Any, code: int, message: str, data: Any = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    return {"jsonrpc": "2.0", "id": request_id, "error": error}


def _result(request_id: Any, result: dict[str, Any]) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "result": result}


def tool_error(code: str, message: str, details: Any = None) -> dict[str, Any]:
    """A ``tools/call`` result that reports a failure the agent can act on (``isError``): the REST
    error body ``{"error": {...}}`` as the text content, and no ``structuredContent``. A tool's
    ``outputSchema`` declares its success result; MCP asks structured content to conform to it, and
    the TypeScript SDK's client (so MCP Inspector and the hosts built on it) validates it even on an
    error, so an error object there reached those hosts as -32602 instead of the tool error."""
    body: dict[str, Any] = {"error": {"code": code, "message": message}}
    if details is not None:
        body["error"]["details"] = details
    return {"content": [{"type": "text", "text": json.dumps(body, ensure_ascii=False)}], "isError": True}


def _media_types(header: str) -> list[str]:
    return [part.split(";")[0].strip().lower() for part in header.split(",") if part.strip()]


def _unicode_text(value: Any) -> bool:
    """No string (key or value) holds NUL or a lone surrogate (JSON's escapes can carry both; the REST
    API refuses them too, PostgreSQL cannot store them)."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return False
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return False
        elif isinstance(item, dict):
            stack.extend(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return True


def _method(event: Mapping[str, Any]) -> str:
    return str(((event.get("requestContext") or {}).get("http") or {}).get("method") or "").upper()


# Streamable HTTP: a GET opens the server's SSE stream; a server that offers none answers 405
_NO_STREAM = "Method Not Allowed: this server offers no SSE stream; POST one JSON-RPC message per request."


def _parse_int(digits: str) -> int:
    """An integer of the message: one longer than Python's limit on integer digits (4,300) is valid
    JSON that ``int()`` refuses; 422, not a parse error (nor the REST API's 500 before this)."""
    try:
        return int(digits)
    except ValueError:
        raise _Reject(422, INVALID_PARAMS, "Invalid params: an integer has more than 4300 digits.") from None


def _valid_id(value: Any) -> bool:
    return isinstance(value, str | int) and not isinstance(value, bool)


def _check_headers(headers: Mapping[str, str]) -> None:
    """The request's Accept, Content-Type and MCP-Protocol-Version (lower-case names), or :class:`_Reject`."""
    accept = _media_types(headers.get("accept", ""))
    if accept and not {_JSON, "application/*", "*/*"} & set(accept):
        raise _Reject(406, INVALID_REQUEST, "Not Acceptable: the client must accept application/json.")
    if _media_types(headers.get("content-type", ""))[:1] != [_JSON]:
        raise _Reject(415, INVALID_REQUEST, "Unsupported Media Type: send the message as application/json.")
    version = headers.get("mcp-protocol-version")
    if version is not None and version not in PROTOCOL_VERSIONS:
        raise _Reject(
            400,
            INVALID_REQUEST,
            f"Bad Request: unsupported MCP-Protocol-Version {version[:40]!r}; "
            f"supported: {', '.join(PROTOCOL_VERSIONS)}.",
        )


def _parsed_body(event: Mapping[str, Any]) -> Any:
    """The body as JSON of Unicode text, within the size limit (before and after base64), or :class:`_Reject`."""
    raw = event.get("body") or ""
    limit = get_settings().max_body_bytes
    if len(raw) > (limit * 4 // 3 + 4 if event.get("isBase64Encoded") else limit):
        raise _Reject(413, INVALID_REQUEST, f"Payload Too Large: the message exceeds {limit} bytes.")
    try:
        text = base64.b64decode(raw).decode("utf-8") if event.get("isBase64Encoded") else raw
        if len(text.encode("utf-8", "surrogatepass")) > limit:
            raise _Reject(413, INVALID_REQUEST, f"Payload Too Large: the message exceeds {limit} bytes.")
        message = json.loads(text, parse_int=_parse_int)
    except (ValueError, RecursionError):
        raise _Reject(400, PARSE_ERROR, "Parse error: the body is not valid JSON.") from None
    if not _unicode_text(message):
        raise _Reject(400, PARSE_ERROR, "Parse error: the message has text with NUL or a lone surrogate (not Unicode).")
    return message


def _checked_message(message: Any) -> dict[str, Any]:
    """``message`` if it is one JSON-RPC 2.0 message (not a batch) with members of the right types and
    no others, else :class:`_Reject`."""
    if isinstance(message, list):
        raise _Reject(
            400, INVALID_REQUEST, "Invalid Request: JSON-RPC batches are not supported; send one message per POST."
        )
    if not isinstance(message, dict) or message.get("jsonrpc") != "2.0":
        raise _Reject(400, INVALID_REQUEST, 'Invalid Request: not a JSON-RPC 2.0 message ("jsonrpc": "2.0").')
    request_id = message.get("id")
    if "id" in message and not _valid_id(request_id):
        raise _Reject(400, INVALID_REQUEST, "Invalid Request: the id must be a string or an integer.")
    if "method" in message and not isinstance(message["method"], str):
        raise _Reject(400, INVALID_REQUEST, "Invalid Request: the method must be a string.", request_id=request_id)
    if "params" in message and not isinstance(message["params"], dict):
        raise _Reject(400, INVALID_PARAMS, "Invalid params: params must be an object.", request_id=request_id)
    if "method" not in message and "result" not in message and "error" not in message:
        raise _Reject(400, INVALID_REQUEST, "Invalid Request: a message needs a method, a result or an error.")
    members = _REQUEST_MEMBERS if "method" in message else _RESPONSE_MEMBERS
    if unknown := sorted(set(message) - members):
        raise _Reject(
            400,
            INVALID_REQUEST,
            f"Invalid Request: unknown member {unknown[0][:40]!r} (JSON-RPC 2.0 has {', '.join(sorted(members))}).",
            request_id=request_id,
        )
    return message


def _jsonrpc_schemas() -> dict[str, Any]:
    """The OpenAPI components of the MCP endpoint's JSON-RPC messages."""
    ref = "#/components/schemas/"
    request_id = {"anyOf": [{"type": "string"}, {"type": "integer"}]}
    method = {"type": "string", "examples": ["initialize", "tools/list", "tools/call"]}
    return {
        "JsonRpcRequest": {
            "type": "object",
            "required": ["jsonrpc", "id", "method"],
            "properties": {
                "jsonrpc": {"const": "2.0"},
                "id": request_id,
                "method": method,
                "params": {"type": "object"},
            },
            "additionalProperties": False,
        },
        "JsonRpcNotification": {
            "type": "object",
            "required": ["jsonrpc", "method"],
            "properties": {"jsonrpc": {"const": "2.0"}, "method": method, "params": {"type": "object"}},
            "additionalProperties": False,
        },
        "JsonRpcErrorObject": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {"code": {"type": "integer"}, "message": {"type": "string"}, "data": {}},
        },
        "JsonRpcResponse": {
            "type": "object",
            "required": ["jsonrpc", "id"],
            "properties": {
                "jsonrpc": {"const": "2.0"},
                "id": request_id,
                "result": {"type": "object"},
                "error": {"$ref": ref + "JsonRpcErrorObject"},
            },
        },
        "JsonRpcRefusal": {
            "type": "object",
            "required": ["jsonrpc", "id", "error"],
            "properties": {
                "jsonrpc": {"const": "2.0"},
                "id": {"anyOf": [*request_id["anyOf"], {"type": "null"}]},
                "error": {"$ref": ref + "JsonRpcErrorObject"},
            },
        },
    }


def _post_operation(tools: str, refusal: dict[str, Any]) -> dict[str, Any]:
    """The OpenAPI operation of ``POST /mcp``; ``tools``: the tools' list in Markdown."""
    ref = "#/components/schemas/"
    return {
        "tags": ["mcp"],
        "summary": "MCP server: the assistant's tools (Streamable HTTP, stateless, JSON responses)",
        "description": (
            "Model Context Protocol endpoint for LLM agents (protocol "
            + " / ".join(PROTOCOL_VERSIONS)
            + "): one JSON-RPC message per POST (`initialize`, `ping`, `tools/list`, `tools/call`); no"
            " sessions, no SSE. Every tool call also needs the scope of the REST route it mirrors; a missing"
            " scope, invalid arguments or a refused booking come back as tool errors (`isError: true`) with"
            " the REST API's error codes. Tools:" + tools
        ),
        "operationId": "callMcp",
        "requestBody": {
            "required": True,
            "content": {
                _JSON: {"schema": {"anyOf": [{"$ref": ref + "JsonRpcRequest"}, {"$ref": ref + "JsonRpcNotification"}]}}
            },
        },
        "responses": {
            "200": {
                "description": "The response to a request (a failed tool call is a result with `isError: true`)",
                "content": {_JSON: {"schema": {"$ref": ref + "JsonRpcResponse"}}},
            },
            "202": {"description": "A notification (or a response) was accepted; no body"},
            "400": {
                "description": (
                    "Not JSON (-32700); a batch, not a JSON-RPC 2.0 message or an unsupported "
                    "MCP-Protocol-Version (-32600); params not an object (-32602)"
                ),
                "content": refusal,
            },
            "406": {"description": "The Accept header rules out application/json", "content": refusal},
            "413": {"description": "The message is too large", "content": refusal},
            "415": {"description": "The body is not application/json", "content": refusal},
        },
    }


def _stream_operation(refusal: dict[str, Any]) -> dict[str, Any]:
    """The OpenAPI operation of ``GET /mcp``: the SSE stream this server does not offer (405)."""
    return {
        "tags": ["mcp"],
        "summary": "MCP server-to-client stream: not offered (405)",
        "description": (
            "In the Streamable HTTP transport a GET opens the server's SSE stream; this server offers none"
            " (stateless, one JSON answer per POST), so it answers 405 with `Allow: POST`."
        ),
        "operationId": "openMcpStream",
        "responses": {
            "405": {
                "description": "No SSE stream at this endpoint: POST the messages",
                "headers": {"Allow": {"schema": {"type": "string", "const": "POST"}, "required": True}},
                "content": refusal,
            }
        },
    }


@dataclass
class McpServer:
    """The tools of one function, served by :meth:`handle` (a Lambda handler's body)."""

    name: str
    title: str
    instructions: str
    tools: dict[str, Tool] = field(default_factory=dict)

    def add(self, *tools: Tool) -> None:
        for tool in tools:
            if tool.name in self.tools:
                raise ValueError(f"tool {tool.name} is defined twice")
            self.tools[tool.name] = tool

    # -- HTTP ---------------------------------------------------------------------------------------------
    def handle(self, event: dict[str, Any], routes: Mapping[str, Any]) -> dict[str, Any]:
        """One request: the route table's check (``hibachi.api.refusal``: an event that did not come
        through the authorizer, or does not match its route, is refused as on every API route), then
        a GET's 405 (no SSE stream, ``Allow: POST``) or a POST's message, the metrics (latency per
        tool, database time)."""
        operation = "mcp"
        db = get_db()
        with timed_ms() as total, db.measure() as stats:
            refused = refusal(event, routes)
            if refused is not None:
                response = refused
            elif _method(event) != "POST":
                response = _http(405, _error(None, INVALID_REQUEST, _NO_STREAM), {"Allow": "POST"})
            else:
                try:
                    message = self._message(event)
                    name = (message.get("params") or {}).get("name")
                    if message.get("method") == "tools/call" and isinstance(name, str) and name in self.tools:
                        operation = f"mcp_{name}"
                    response = self._dispatch(message, request_of(event))
                except _Reject as reject:
                    answer = _error(reject.request_id, reject.code, reject.message)
                    response = _http(reject.status, answer, reject.headers)
        metrics.add_dimension(name="operation", value=operation)
        add_ms(f"{metric_prefix(operation)}Latency", total[0])
        if stats.statements:
            add_ms("DatabaseTime", stats.elapsed_ms)
        return response

    def _message(self, event: Mapping[str, Any]) -> dict[str, Any]:
        """The one JSON-RPC message of the request, or :class:`_Reject`."""
        _check_headers({str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()})
        return _checked_message(_parsed_body(event))

    # -- JSON-RPC -----------------------------------------------------------------------------------------
    def _dispatch(self, message: dict[str, Any], request: Request) -> dict[str, Any]:
        """A valid message (``_message``): a request gets its response; a notification, or the
        client's answer to a request (this server sends none), is accepted with nothing to say."""
        method = message.get("method")
        if "id" not in message or method is None:
            return _http(202)
        request_id = message["id"]
        params: dict[str, Any] = message.get("params") or {}
        if method == "initialize":
            return _http(200, _result(request_id, self._initialize(params)))
        if method == "ping":
            return _http(200, _result(request_id, {}))
        if method == "tools/list":
            return _http(200, _result(request_id, {"tools": [tool.listing() for tool in self.tools.values()]}))
        if method == "tools/call":
            name, arguments = params.get("name"), params.get("arguments", {})
            if not isinstance(name, str) or name not in self.tools:
                known = ", ".join(self.tools)
                shown = name[:64] if isinstance(name, str) else name
                return _http(
                    200, _error(request_id, INVALID_PARAMS, f"Unknown tool {shown!r}; the tools are: {known}.")
                )
            if arguments is None:
                arguments = {}
            if not isinstance(arguments, dict):
                return _http(200, _error(request_id, INVALID_PARAMS, "Invalid params: arguments must be an object."))
            return _http(200, _result(request_id, self.call(self.tools[name], arguments, request)))
        return _http(200, _error(request_id, METHOD_NOT_FOUND, f"Method not found: {method[:64]}"))

    def _initialize(self, params: Mapping[str, Any]) -> dict[str, Any]:
        asked = params.get("protocolVersion")
        version = asked if asked in PROTOCOL_VERSIONS else PROTOCOL_VERSIONS[0]
        return {
            "protocolVersion": version,
            "capabilities": {"tools": {"listChanged": False}},
            "serverInfo": {"name": self.name, "title": self.title, "version": get_settings().app_version},
            "instructions": self.instructions,
        }

    # -- tools --------------------------------------------------------------------------------------------
    def call(self, tool: Tool, arguments: dict[str, Any], request: Request) -> dict[str, Any]:
        """Run ``tool``: scope, who it acts for, arguments, the work; every failure is a tool error
        (``isError``): ``insufficient_scope``, ``conversation_required`` (a token without staff on a
        connection without the Hibachi-Conversation header), ``validation_error``, the service's."""
        if tool.scope not in request.scopes:
            return tool_error(
                "insufficient_scope",
                f"This token lacks the scope {tool.scope}, which {tool.name} needs. Ask the operator for a token "
                "with it; retrying will not help.",
                {"required_scope": tool.scope},
            )
        try:
            caller = caller_of(request.event, f"mcp:{tool.name}")
        except AppError as exc:
            return tool_error(exc.code, exc.message, exc.details)
        try:
            args = tool.arguments.model_validate(tool.arguments_of(arguments))
        except ValidationError as exc:
            fields = validation_details([dict(e) for e in exc.errors(include_input=False, include_url=False)])
            for detail in fields:
                detail["loc"] = ["arguments", *detail["loc"]]
            return tool_error("validation_error", "The arguments are not valid; see details.", fields)
        except RecursionError:
            fields = [{"loc": ["arguments"], "msg": "JSON is nested too deeply", "type": "json_too_deep"}]
            return tool_error("validation_error", "The arguments are not valid; see details.", fields)
        try:
            out = tool.run(args, Call(caller, request.correlation_id))
        except AppError as exc:
            if exc.status >= 500:
                logger.warning("dependency unavailable", extra={"tool": tool.name, "code": exc.code})
            details: Any = exc.details
            if "Retry-After" in exc.headers:
                details = {
                    **(details if isinstance(details, dict) else {}),
                    "retry_after_seconds": int(exc.headers["Retry-After"]),
                }
            return tool_error(exc.code, exc.message, details)
        except Exception as exc:  # noqa: BLE001 - a tool error, never a 500 with a stack trace
            # by type and frames, never the message: it may quote the customer's data
            logger.error("unhandled error in a tool", extra={"tool": tool.name, **exception_facts(exc)})
            return tool_error("internal_error", "Something went wrong on our side; it has been logged.")
        structured = out.model_dump(mode="json")
        return {
            "content": [{"type": "text", "text": json.dumps(structured, ensure_ascii=False)}],
            "structuredContent": structured,
            "isError": False,
        }

    # -- OpenAPI ------------------------------------------------------------------------------------------
    def get_openapi_json_schema(self, path: str = "/mcp") -> str:
        """A small OpenAPI document of the endpoint (``tools.openapi`` merges it into the API's)."""
        tools = "".join(f"\n- `{t.name}` ({t.scope}): {t.title}" for t in self.tools.values())
        refusal = {_JSON: {"schema": {"$ref": "#/components/schemas/JsonRpcRefusal"}}}
        doc = {
            "openapi": "3.1.0",
            "info": {"title": self.title, "version": get_settings().app_version},
            "paths": {path: {"post": _post_operation(tools, refusal), "get": _stream_operation(refusal)}},
            "components": {"schemas": _jsonrpc_schemas()},
        }
        return json.dumps(document_auth(doc, public=()), indent=2)
