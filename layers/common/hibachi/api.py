"""The HTTP side shared by the API functions: the resolver factory, the one error-to-HTTP map, and
the invocation wrapper that measures and emits the per-operation metrics.

Error bodies are always ``{"error": {"code", "message", "details"?}, "request_id"}``; no stack
trace or input echo ever leaves the function.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Collection, Mapping, Sequence
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote

from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)
from pydantic import BaseModel, Field

from hibachi.db import get_db
from hibachi.errors import AppError, PayloadTooLarge
from hibachi.observability import add_ms, logger, metrics, timed_ms
from hibachi.settings import get_settings

_VALIDATION_MESSAGE = "The request is not valid; see details."


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
    code: str = Field(description="Stable machine-readable code, such as not_found or validation_error")
    message: str
    details: Any = None


class ErrorOut(BaseModel):
    """Every error answer of the API's functions (``hibachi.api``)."""

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


def document_errors(doc: dict[str, Any]) -> dict[str, Any]:
    """Add the error answers every operation can give to an OpenAPI document (as a dict), with the
    ``ErrorOut`` body they really have: 404 where the path names a resource, 413 and 415 where
    there is a body, 422 and 503 everywhere. A 4xx that a route documents without a body of its own (Powertools
    then shows the success model) or with Powertools' ``HTTPValidationError`` gets ``ErrorOut``; a
    documented 503 with a body of its own (``/health``) is kept."""
    schemas = doc.setdefault("components", {}).setdefault("schemas", {})
    for model in (ErrorDetail, ErrorOut):
        schemas[model.__name__] = model.model_json_schema(ref_template="#/components/schemas/{model}")
    for item in (doc.get("paths") or {}).values():
        for method, operation in item.items():
            if method not in ("get", "put", "post", "delete", "patch") or not isinstance(operation, dict):
                continue
            responses = operation.setdefault("responses", {})
            success: dict[str, Any] = next((r for code, r in responses.items() if code.startswith("2")), {})
            wanted = {"422", "503"}
            if any(p.get("in") == "path" for p in operation.get("parameters") or []):
                wanted.add("404")
            if "requestBody" in operation:
                wanted |= {"413", "415"}
            for code in sorted(wanted | {c for c in responses if c.startswith("4")}):
                current = responses.get(code)
                body = ((current or {}).get("content") or {}).get("application/json", {}).get("schema")
                default_body = (
                    body is None
                    or body == (success.get("content") or {}).get("application/json", {}).get("schema")
                    or "HTTPValidationError" in json.dumps(body)
                )
                if current is None or (code.startswith("4") and default_body):
                    responses[code] = {
                        "description": (current or {}).get("description") or _ERROR_DESCRIPTIONS[code],
                        "content": {"application/json": {"schema": _ERROR_REF}},
                    }
    if not any(
        "HTTPValidationError" in json.dumps(op) for item in (doc.get("paths") or {}).values() for op in item.values()
    ):
        for unused in ("HTTPValidationError", "ValidationError"):
            schemas.pop(unused, None)
    return doc


class GatewayErrorOut(BaseModel):
    """The HTTP API JWT authorizer's answer (401 no or bad token, 403 no scope of the route)."""

    message: str


def document_auth(doc: dict[str, Any], public: Collection[str]) -> dict[str, Any]:
    """Add the authorizer's 401 and 403 to every operation whose path is not in ``public``."""
    doc.setdefault("components", {}).setdefault("schemas", {})[GatewayErrorOut.__name__] = (
        GatewayErrorOut.model_json_schema()
    )
    body = {"application/json": {"schema": {"$ref": "#/components/schemas/GatewayErrorOut"}}}
    for path, item in (doc.get("paths") or {}).items():
        if path in public:
            continue
        for method, operation in item.items():
            if method in ("get", "put", "post", "delete", "patch") and isinstance(operation, dict):
                responses = operation.setdefault("responses", {})
                responses.setdefault("401", {"description": "No token, or an expired or invalid one", "content": body})
                responses.setdefault(
                    "403", {"description": "The token has none of the route's scopes", "content": body}
                )
    return doc


class _Resolver(APIGatewayHttpResolver):
    """Powertools' resolver, with two changes:

    - path parameters are percent-decoded (Powertools matches them on the raw path, so a client
      that encodes ``:`` in ``web%3Ademo-1``, as ``encodeURIComponent`` does, got a 422);
    - its OpenAPI document also shows the error answers (``document_errors``, ``document_auth``).
    """

    def __init__(self, *, public: Collection[str] = (), **kwargs: Any):
        super().__init__(**kwargs)
        self._public_paths = tuple(public)

    def _convert_matches_into_route_keys(self, match: Any) -> dict[str, str]:
        return {key: unquote(value) for key, value in super()._convert_matches_into_route_keys(match).items()}

    def get_openapi_json_schema(self, **kwargs: Any) -> str:
        doc = document_errors(json.loads(super().get_openapi_json_schema(**kwargs)))
        return json.dumps(document_auth(doc, self._public_paths), indent=2)


def create_app(public: Collection[str] = ()) -> APIGatewayHttpResolver:
    """A resolver with request validation and the app's error mapping. ``public``: the paths the
    template serves without the JWT authorizer (for the document; the template decides)."""
    app = _Resolver(enable_validation=True, public=public)

    def request_id() -> str | None:
        return _request_id(app.current_event.raw_event) if app.current_event else None

    def _app_error(exc: AppError) -> Response[dict[str, Any]]:
        if exc.status >= 500:
            logger.warning("dependency unavailable", extra={"code": exc.code, "details": exc.details})
        return error_response(exc.status, exc.code, exc.message, exc.details, exc.headers, request_id())

    def _invalid(exc: RequestValidationError) -> Response[dict[str, Any]]:
        return error_response(
            422, "validation_error", _VALIDATION_MESSAGE, validation_details(exc.errors()), request_id=request_id()
        )

    def _unsupported_type(_exc: RequestUnsupportedContentType) -> Response[dict[str, Any]]:  # was a 500
        return error_response(
            415, "unsupported_media_type", "Send the body as application/json.", request_id=request_id()
        )

    def _too_deep(_exc: RecursionError) -> Response[dict[str, Any]]:
        details = [{"loc": ["body"], "msg": "JSON is nested too deeply", "type": "json_too_deep"}]
        return error_response(422, "validation_error", _VALIDATION_MESSAGE, details, request_id=request_id())

    def _not_found(_exc: NotFoundError) -> Response[dict[str, Any]]:
        return error_response(404, "route_not_found", "No such route.", request_id=request_id())

    def _unexpected(exc: Exception) -> Response[dict[str, Any]]:
        logger.exception("unhandled error")
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


def _body_size(event: Mapping[str, Any]) -> int:
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        return len(body) * 3 // 4
    return len(body.encode("utf-8", "surrogatepass"))


def _too_large(event: Mapping[str, Any], limit: int) -> dict[str, Any]:
    body = error_body(PayloadTooLarge.code, f"The request body exceeds {limit} bytes.", request_id=_request_id(event))
    return {
        "statusCode": HTTPStatus.REQUEST_ENTITY_TOO_LARGE.value,
        "headers": {"Content-Type": content_types.APPLICATION_JSON},
        "body": json.dumps(body),
        "isBase64Encoded": False,
    }


def metric_prefix(operation: str) -> str:
    """``store_message`` -> ``StoreMessage``."""
    return "".join(part.capitalize() for part in operation.split("_"))


def handle(
    app: APIGatewayHttpResolver, event: dict[str, Any], context: Any, operations: Mapping[str, str]
) -> dict[str, Any]:
    """Resolve one API event: size guard, routing, and the latency and database-time metrics.

    ``operations`` maps an HTTP API route key (``"POST /bookings"``) to its operation name.
    """
    operation = operations.get(event.get("routeKey", ""), "unknown")
    metrics.add_dimension(name="operation", value=operation)
    if request_id := _request_id(event):  # metadata, not a dimension: ties the metric line to the logs
        metrics.add_metadata(key="correlation_id", value=request_id)
    db = get_db()
    with timed_ms() as total, db.measure() as stats:
        limit = get_settings().max_body_bytes
        if _body_size(event) > limit:
            result = _too_large(event, limit)
        else:
            if event.get("isBase64Encoded") and event.get("body"):
                # the resolver expects text bodies; the gateway base64-encodes non-text types
                try:
                    event = {**event, "body": base64.b64decode(event["body"]).decode("utf-8"), "isBase64Encoded": False}
                except (ValueError, UnicodeDecodeError):
                    event = {**event, "body": "\x00invalid", "isBase64Encoded": False}
            result = app.resolve(event, context)
    add_ms(f"{metric_prefix(operation)}Latency", total[0])
    if stats.statements:
        add_ms("DatabaseTime", stats.elapsed_ms)
    return result
