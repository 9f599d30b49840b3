"""The HTTP side shared by the API functions: the resolver factory, the one error-to-HTTP map, the
route table type, and the invocation wrapper that authorizes, measures and emits the per-operation
metrics.

Error bodies are always ``{"error": {"code", "message", "details"?}, "request_id"}``; no stack
trace or input echo ever leaves the function, and no log line carries an exception's message
(it may quote what the customer sent): an unexpected error is logged by type and frames.

Authorization fails closed in the function too, not only at the gateway: each function's route
table (``OPERATIONS``: route key -> ``Route``) names the scope the template's JWT authorizer
requires, and ``handle`` refuses an event without the authorizer's claims (401), without that
scope (403), or whose method and path are not its route key's (403, a forged event). Anyone who
may ``lambda:InvokeFunction`` can send an event; only the gateway can make a valid one.
tests/unit/test_route_tables.py keeps the tables equal to the template's routes.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)
from pydantic import BaseModel, ConfigDict, Field

from hibachi import snapstart
from hibachi.callers import Caller, caller_of, token_scopes
from hibachi.db import get_db
from hibachi.errors import VALIDATION_MESSAGE, AppError, PayloadTooLarge, Unprocessable
from hibachi.observability import add_ms, exception_facts, logger, metrics, timed_ms
from hibachi.settings import get_settings


def _request_id(event: Mapping[str, Any] | None) -> str | None:
    if event is None:
        return None
    try:
        request_id = event["requestContext"]["requestId"]
    except (KeyError, TypeError):
        return None
    return request_id if isinstance(request_id, str) else None


def error_body(code: str, message: str, details: Any = None, request_id: str | None = None) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        error["details"] = details
    return {"error": error, "request_id": request_id}


def created_or_found[T](body: T, created: bool) -> Response[T]:
    """A keyed or idempotent write's answer: 201 when this request made ``body``, 200 when it is what an
    earlier one made (a retry with the same key, or a repeat that changes nothing)."""
    return Response(status_code=201 if created else 200, content_type=content_types.APPLICATION_JSON, body=body)


def error_response(
    status: int,
    code: str,
    message: str,
    details: Any = None,
    headers: Mapping[str, str] | None = None,
    request_id: str | None = None,
) -> Response[dict[str, Any]]:
    return Response(
        status_code=status,
        content_type=content_types.APPLICATION_JSON,
        body=error_body(code, message, details, request_id),
        headers=dict(headers or {}),
    )


def validation_details(errors: Sequence[Any]) -> list[dict[str, Any]]:
    """Field-level details without echoing the input back."""
    details: list[dict[str, Any]] = []
    for err in errors:
        loc = [part for part in err.get("loc", ()) if part != "__root__"]
        details.append({"loc": loc, "msg": str(err.get("msg", "invalid value"))[:300], "type": err.get("type")})
    return details


class ErrorDetail(BaseModel):
    model_config = ConfigDict(defer_build=True)  # for the OpenAPI document only: not built at cold start

    code: str = Field(description="Stable machine-readable code, such as not_found or validation_error")
    message: str
    details: Any = None


class ErrorOut(BaseModel):
    """Every error answer of the API's functions (``hibachi.api``)."""

    model_config = ConfigDict(defer_build=True)

    error: ErrorDetail
    request_id: str | None


_ERROR_DESCRIPTIONS = {
    "404": "No such resource",
    "409": "Conflict with the resource's state",
    "413": "The request body is too large",
    "415": "The body is not application/json",
    "422": "The request is not valid; `error.details` names the fields",
    "503": "The database is unavailable; nothing was changed. Retry after `Retry-After` seconds",
}
_ERROR_REF = {"$ref": "#/components/schemas/ErrorOut"}


def _json_schema(response: Mapping[str, Any] | None) -> Any:
    """The ``application/json`` schema of an OpenAPI response, None when it has none."""
    return ((response or {}).get("content") or {}).get("application/json", {}).get("schema")


def _error_codes(operation: Mapping[str, Any]) -> list[str]:
    """The error statuses an operation documents with ``ErrorOut``: 422 and 503 everywhere, 404 where
    the path names a resource, 413 and 415 where there is a body, and every 4xx it lists itself."""
    wanted = {"422", "503"}
    if any(p.get("in") == "path" for p in operation.get("parameters") or []):
        wanted.add("404")
    if "requestBody" in operation:
        wanted |= {"413", "415"}
    return sorted(wanted | {c for c in operation.get("responses", {}) if c.startswith("4")})


def _document_operation_errors(operation: dict[str, Any]) -> None:
    responses = operation.setdefault("responses", {})
    success: dict[str, Any] = next((r for code, r in responses.items() if code.startswith("2")), {})
    for code in _error_codes(operation):
        current = responses.get(code)
        body = _json_schema(current)
        default_body = body is None or body == _json_schema(success) or "HTTPValidationError" in json.dumps(body)
        if current is None or (code.startswith("4") and default_body):
            responses[code] = {
                "description": (current or {}).get("description") or _ERROR_DESCRIPTIONS[code],
                "content": {"application/json": {"schema": _ERROR_REF}},
            }


def document_errors(doc: dict[str, Any]) -> dict[str, Any]:
    """Add the error answers every operation can give to an OpenAPI document (as a dict), with the
    ``ErrorOut`` body they really have: 404 where the path names a resource, 413 and 415 where
    there is a body, 422 and 503 everywhere. A 4xx that a route documents without a body of its own (Powertools
    then shows the success model) or with Powertools' ``HTTPValidationError`` gets ``ErrorOut``; a
    documented 503 with a body of its own (``/health``) is kept."""
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    for model in (ErrorDetail, ErrorOut):
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schema.pop("$defs", None)  # ErrorDetail is a component of its own
        schemas[model.__name__] = schema
    for item in (doc.get("paths") or {}).values():
        for method, operation in item.items():
            if method in ("get", "put", "post", "delete", "patch") and isinstance(operation, dict):
                _document_operation_errors(operation)
    if not any(
        "HTTPValidationError" in json.dumps(op) for item in (doc.get("paths") or {}).values() for op in item.values()
    ):
        # Powertools' validation answers (ResponseValidationError refers to ValidationError): the API
        # answers ErrorOut instead, so they would be unused, and a dangling $ref once ValidationError goes
        for unused in ("HTTPValidationError", "ValidationError", "ResponseValidationError"):
            schemas.pop(unused, None)
    return doc


class GatewayErrorOut(BaseModel):
    """The HTTP API JWT authorizer's answer (401 no or bad token, 403 no scope of the route)."""

    model_config = ConfigDict(defer_build=True)

    message: str


def document_auth(doc: dict[str, Any], public: Collection[str]) -> dict[str, Any]:
    """Add the authorizer's 401 and 403 to every operation whose path is not in ``public``."""
    doc.setdefault("components", {}).setdefault("schemas", {})[GatewayErrorOut.__name__] = (
        GatewayErrorOut.model_json_schema()
    )
    body = {"application/json": {"schema": {"$ref": "#/components/schemas/GatewayErrorOut"}}}
    challenge = {
        "WWW-Authenticate": {
            "description": (
                'The Bearer challenge (RFC 6750): `error`, and on a 403 `error="insufficient_scope"` with the '
                "`scope`. The protected-resource metadata (RFC 9728) is at /.well-known/oauth-protected-resource"
                " (/.well-known/oauth-protected-resource/mcp for /mcp)."
            ),
            "schema": {"type": "string"},
        }
    }
    for path, item in (doc.get("paths") or {}).items():
        if path in public:
            continue
        for method, operation in item.items():
            if method in ("get", "put", "post", "delete", "patch") and isinstance(operation, dict):
                responses = operation.setdefault("responses", {})
                responses.setdefault(
                    "401",
                    {"description": "No token, or an expired or invalid one", "headers": challenge, "content": body},
                )
                responses.setdefault(
                    "403",
                    {"description": "The token has none of the route's scopes", "headers": challenge, "content": body},
                )
    return doc


# An OpenAPI link: (method, path) of the operation that answers, its status codes, the link's name,
# (method, path) of the operation it leads to, and that operation's parameters from the answer.
Link = tuple[tuple[str, str], Sequence[str], str, tuple[str, str], Mapping[str, str]]


def document_links(doc: dict[str, Any], links: Sequence[Link]) -> dict[str, Any]:
    """Add OpenAPI links (``responses.<code>.links``): a client, or schemathesis' stateful phase,
    follows a created resource to the operations on it."""
    paths = doc.get("paths") or {}
    for (method, path), codes, name, (to_method, to_path), parameters in links:
        source, target = paths.get(path, {}).get(method), paths.get(to_path, {}).get(to_method)
        if not isinstance(source, dict) or not isinstance(target, dict) or "operationId" not in target:
            continue
        for code in codes:
            response = source.get("responses", {}).get(code)
            if isinstance(response, dict):
                response.setdefault("links", {})[name] = {
                    "operationId": target["operationId"],
                    "parameters": dict(parameters),
                }
    return doc


class _Resolver(APIGatewayHttpResolver):
    """Powertools' resolver, with two changes:

    - path parameters are percent-decoded (Powertools matches them on the raw path, so a client
      that encodes ``:`` in ``web%3Ademo-1``, as ``encodeURIComponent`` does, got a 422);
    - its OpenAPI document also shows the error answers (``document_errors``, ``document_auth``)
      and the links between operations (``document_links``).
    """

    def __init__(self, *, public: Collection[str] = (), links: Sequence[Link] = (), **kwargs: Any):
        super().__init__(**kwargs)
        self._public_paths = tuple(public)
        self._links = tuple(links)

    def _convert_matches_into_route_keys(self, match: Any) -> dict[str, str]:
        return {key: unquote(value) for key, value in super()._convert_matches_into_route_keys(match).items()}

    def get_openapi_json_schema(self, **kwargs: Any) -> str:
        doc = document_errors(json.loads(super().get_openapi_json_schema(**kwargs)))
        doc = document_links(document_auth(doc, self._public_paths), self._links)
        return json.dumps(doc, indent=2)


def json_body(text: str | bytes) -> Any:
    """``json.loads`` for request bodies: an integer longer than Python's limit on integer digits
    (``sys.get_int_max_str_digits()``, 4,300) is valid JSON that ``int()`` refuses with a plain
    ValueError (a 500 before this); it is a 422 like any other unusable body."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        raise  # Powertools' 422 json_invalid
    except ValueError:
        raise Unprocessable(VALIDATION_MESSAGE, details=[INTEGER_TOO_LONG]) from None


INTEGER_TOO_LONG = {"loc": ["body"], "msg": "has an integer with more than 4300 digits", "type": "integer_too_long"}


def create_app(public: Collection[str] = (), links: Sequence[Link] = ()) -> APIGatewayHttpResolver:
    """A resolver with request validation and the app's error mapping. ``public``: the paths the
    template serves without the JWT authorizer (for the document; the template decides);
    ``links``: the OpenAPI links between its operations. With SnapStart on, the runtime hooks are
    registered here (``hibachi.snapstart``)."""
    snapstart.register()
    app = _Resolver(enable_validation=True, public=public, links=links, json_body_deserializer=json_body)

    def request_id() -> str | None:
        return _request_id(app.current_event.raw_event) if app.current_event else None

    def _app_error(exc: AppError) -> Response[dict[str, Any]]:
        if exc.status >= 500:
            logger.warning("dependency unavailable", extra={"code": exc.code, "details": exc.details})
        return error_response(exc.status, exc.code, exc.message, exc.details, exc.headers, request_id())

    def _invalid(exc: RequestValidationError) -> Response[dict[str, Any]]:
        return error_response(
            422, "validation_error", VALIDATION_MESSAGE, validation_details(exc.errors()), request_id=request_id()
        )

    def _unsupported_type(_exc: RequestUnsupportedContentType) -> Response[dict[str, Any]]:  # was a 500
        return error_response(
            415, "unsupported_media_type", "Send the body as application/json.", request_id=request_id()
        )

    def _too_deep(_exc: RecursionError) -> Response[dict[str, Any]]:
        details = [{"loc": ["body"], "msg": "JSON is nested too deeply", "type": "json_too_deep"}]
        return error_response(422, "validation_error", VALIDATION_MESSAGE, details, request_id=request_id())

    def _not_found(_exc: NotFoundError) -> Response[dict[str, Any]]:
        return error_response(404, "route_not_found", "No such route.", request_id=request_id())

    def _unexpected(exc: Exception) -> Response[dict[str, Any]]:
        logger.error("unhandled error", extra=exception_facts(exc))
        return error_response(
            500, "internal_error", "Something went wrong on our side; it has been logged.", request_id=request_id()
        )

    # registered by call, not as decorators: Powertools' decorators are untyped and would hide these signatures
    app.exception_handler(AppError)(_app_error)
    app.exception_handler(RequestValidationError)(_invalid)
    app.exception_handler(RequestUnsupportedContentType)(_unsupported_type)
    app.exception_handler(RecursionError)(_too_deep)
    app.not_found(_not_found)
    app.exception_handler(Exception)(_unexpected)
    return app


@dataclass(frozen=True)
class Route:
    """One row of a function's route table: the operation's name (its metrics) and the scope the
    template's JWT authorizer requires on the route (``None``: a public route, no authorizer); a
    tuple when the route admits any of several scopes (``POST /mcp``: each tool checks its own)."""

    operation: str
    scope: str | tuple[str, ...] | None
    # the route acts for someone (a conversation's customer, or staff): ``handle`` builds its
    # ``Caller`` (403 conversation_required for a caller without staff that names no conversation);
    # False for the routes that read no customer data (health)
    acts: bool = True

    @property
    def scopes(self) -> tuple[str, ...]:
        """The scopes of which the token needs one (empty for a public route)."""
        return (self.scope,) if isinstance(self.scope, str) else tuple(self.scope or ())


def has_scope(event: Mapping[str, Any], scope: str) -> bool:
    """The request came through the JWT authorizer and its token has ``scope``. Fails closed: no
    claims, or no scope information at all, is no."""
    scopes = token_scopes(event)
    return scopes is not None and scope in scopes


def _route_pattern(route_key: str) -> tuple[str, re.Pattern[str]] | None:
    method, _, path = route_key.partition(" ")
    if not path.startswith("/"):
        return None
    parts = [
        "[^/]+" if seg.startswith("{") and seg.endswith("}") else re.escape(seg) for seg in path.strip("/").split("/")
    ]
    return method.upper(), re.compile("^/" + "/".join(parts) + "/?$")


Refusal = tuple[int, str, str, dict[str, str]]


def _refusal(event: Mapping[str, Any], routes: Mapping[str, Any]) -> Refusal | None:
    """(status, code, message, headers) when the event must not reach the route's code. A 401, and a
    403 for a missing scope, carry the ``WWW-Authenticate`` challenge with the resource metadata's
    URL (``hibachi.oauth``; the gateway's own 401 and 403 cannot: docs/ARCHITECTURE.md)."""
    route_key = event.get("routeKey")
    if not isinstance(route_key, str) or route_key not in routes:
        return 404, "route_not_found", "No such route.", {}
    route = routes[route_key]
    if route is None:
        return 404, "route_not_found", "No such route.", {}
    if not isinstance(route, Route):  # a route table row without its scope: fail closed
        logger.error("route without authorization data", extra={"route": route_key})
        return 403, "forbidden", "This route is not available.", {}
    if not _matches_route(event, route_key):
        return 403, "forbidden", "The request does not match its route.", {}
    return _scope_refusal(event, route)


def _matches_route(event: Mapping[str, Any], route_key: str) -> bool:
    """Whether the event's method and path are those of ``route_key`` (else a forged event)."""
    pattern = _route_pattern(route_key)
    context = event.get("requestContext") or {}
    method = str((context.get("http") or {}).get("method", "")).upper()
    path, stage = str(event.get("rawPath") or ""), context.get("stage")
    if stage and stage != "$default":  # the path the resolver routes on (Powertools' rule)
        path = path[len(f"/{stage}") :]
    return pattern is not None and pattern[0] == method and bool(pattern[1].match(path))


def _scope_refusal(event: Mapping[str, Any], route: Route) -> Refusal | None:
    """The 401 of an event without the authorizer's claims, the 403 of a token without the route's
    scope, each with its challenge; None for a public route or a token with the scope."""
    if route.scope is None:
        return None
    scopes = token_scopes(event)
    if scopes is None:
        from hibachi import oauth  # refusals only: not on a function's cold start nor its requests

        challenge = oauth.challenge(event, error="invalid_token")
        return 401, "unauthorized", "The request did not come through the authorizer.", {"WWW-Authenticate": challenge}
    if not scopes & set(route.scopes):
        from hibachi import oauth

        challenge = oauth.challenge(event, error="insufficient_scope", scope=" ".join(route.scopes))
        message = f"This route needs the {' or '.join(route.scopes)} scope."
        return 403, "forbidden", message, {"WWW-Authenticate": challenge}
    return None


_JSON = "application/json"
_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def _unsupported_media_type(event: Mapping[str, Any]) -> bool:
    """A body that is not declared ``application/json`` (UTF-8): refused with 415 before anything
    parses it (the resolver would read forms and multipart bodies, and fail on some of them).
    A request without a Content-Type is read as JSON; a write request that declares another type
    is refused even when its body is empty."""
    headers = {str(k).lower(): v for k, v in (event.get("headers") or {}).items()}
    declared = str(headers.get("content-type") or "").strip()
    method = str(((event.get("requestContext") or {}).get("http") or {}).get("method", "")).upper()
    if not declared:
        return False
    if not event.get("body") and method not in _BODY_METHODS:
        return False
    media, *params = (part.strip() for part in declared.split(";"))
    if media.lower() != _JSON:
        return True
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() not in ("utf-8", "utf8"):
            return True
    return False


def refusal(event: Mapping[str, Any], routes: Mapping[str, Any]) -> dict[str, Any] | None:
    """The answer to an event that must not reach its route's code (see ``handle``), else None: for
    handlers that do not go through ``handle`` (the MCP endpoint)."""
    refused = _refusal(event, routes)
    return _early(event, *refused) if refused is not None else None


def _early(
    event: Mapping[str, Any],
    status: int,
    code: str,
    message: str,
    headers: Mapping[str, str] | None = None,
    details: Any = None,
) -> dict[str, Any]:
    """An error answer given before the resolver runs."""
    return {
        "statusCode": status,
        "headers": {"Content-Type": content_types.APPLICATION_JSON, **(headers or {})},
        "body": json.dumps(error_body(code, message, details, request_id=_request_id(event))),
        "isBase64Encoded": False,
    }


def current_caller(app: APIGatewayHttpResolver) -> Caller:
    """The ``Caller`` that ``handle`` built for the request being resolved."""
    caller = app.context.get("caller")
    if not isinstance(caller, Caller):  # a route with acts=False, or not resolved through handle
        raise RuntimeError("this request has no caller: resolve it through hibachi.api.handle")
    return caller


def _body_size(event: Mapping[str, Any]) -> int:
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        return len(body) * 3 // 4
    return len(body.encode("utf-8", "surrogatepass"))


def _too_large(event: Mapping[str, Any], limit: int) -> dict[str, Any]:
    return _early(
        event,
        HTTPStatus.REQUEST_ENTITY_TOO_LARGE.value,
        PayloadTooLarge.code,
        f"The request body exceeds {limit} bytes.",
    )


def _guard(event: Mapping[str, Any], operations: Mapping[str, Route]) -> tuple[dict[str, Any] | None, Caller | None]:
    """(the answer to a request refused before the resolver runs, None to go on; who it acts for):
    the route table's check, the body's size and media type, then the ``Caller``
    (``hibachi.callers.caller_of``: 403 conversation_required, 422 for a bad header), built once."""
    refused = _refusal(event, operations)
    if refused is not None:
        return _early(event, *refused), None
    limit = get_settings().max_body_bytes
    if _body_size(event) > limit:
        return _too_large(event, limit), None
    if _unsupported_media_type(event):
        return _early(event, 415, "unsupported_media_type", "Send the body as application/json."), None
    route_key = str(event.get("routeKey"))
    route = operations[route_key]  # _refusal passed: a Route
    if not route.acts or route.scope is None:
        return None, None
    try:
        return None, caller_of(event, route_key)
    except AppError as exc:
        return _early(event, exc.status, exc.code, exc.message, details=exc.details), None


def metric_prefix(operation: str) -> str:
    """``store_message`` -> ``StoreMessage``."""
    return "".join(part.capitalize() for part in operation.split("_"))


def handle(
    app: APIGatewayHttpResolver, event: dict[str, Any], context: Any, operations: Mapping[str, Route]
) -> dict[str, Any]:
    """Resolve one API event: authorization, size and media-type guards, who it acts for (the
    ``Caller``, built once; a route reads it with ``current_caller``), routing, and the latency
    and database-time metrics.

    ``operations`` is the function's route table: HTTP API route key (``"POST /bookings"``) ->
    ``Route`` (operation name, required scope).
    """
    route = operations.get(event.get("routeKey", ""))
    operation = route.operation if isinstance(route, Route) else "unknown"
    metrics.add_dimension(name="operation", value=operation)
    if request_id := _request_id(event):  # metadata, not a dimension: ties the metric line to the logs
        metrics.add_metadata(key="correlation_id", value=request_id)
    db = get_db()
    with timed_ms() as total, db.measure() as stats:
        result, caller = _guard(event, operations)
        if result is None:
            if event.get("isBase64Encoded") and event.get("body"):
                # the resolver expects text bodies; the gateway base64-encodes non-text types
                try:
                    event = {**event, "body": base64.b64decode(event["body"]).decode("utf-8"), "isBase64Encoded": False}
                except (ValueError, UnicodeDecodeError):
                    event = {**event, "body": "\x00invalid", "isBase64Encoded": False}
            if caller is not None:
                app.context["caller"] = caller  # cleared by resolve() when it ends
            result = app.resolve(event, context)
    add_ms(f"{metric_prefix(operation)}Latency", total[0])
    if stats.statements:
        add_ms("DatabaseTime", stats.elapsed_ms)
    return result
