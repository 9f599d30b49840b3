"""Lambda events and context, built the way AWS builds them: API Gateway HTTP API payload 2.0, SQS
records, and the ``context`` the Python runtime passes.

The one builder for the local gateway and poller, the worker processes (``local.runtime``), the
tests, the bench and the ops CLI. It imports only the standard library: every Lambda worker process
imports it before the handler.
"""

from __future__ import annotations

import base64
import hashlib
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlencode

REGION = "us-east-1"
ACCOUNT = "123456789012"
API_ID = "local"

# Besides text/*, the types API Gateway passes as text (anything else is base64)
_TEXT_TYPES = frozenset(
    {
        "application/json",
        "application/xml",
        "application/javascript",
        "application/ecmascript",
        "application/x-javascript",
        "application/graphql",
        "application/yaml",
        "application/x-yaml",
        "application/ld+json",
        "application/problem+json",
        "application/hal+json",
    }
)


@dataclass
class LambdaContext:
    """What the Python runtime passes as ``context`` (``memory_limit_in_mb`` is a string there)."""

    function_name: str = "local-function"
    memory_limit_in_mb: str = "512"
    timeout_ms: int = 10_000
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_version: str = "$LATEST"
    log_stream_name: str = "local"
    region: str = REGION
    log_group_name: str = ""
    identity: Any = None
    client_context: Any = None
    _deadline: float = field(default=0.0, repr=False)

    def __post_init__(self) -> None:
        self.log_group_name = self.log_group_name or f"/aws/lambda/{self.function_name}"
        self._deadline = time.monotonic() + self.timeout_ms / 1000

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:{self.region}:{ACCOUNT}:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def is_text(content_type: str | None) -> bool:
    """Whether API Gateway passes a body of this type as text (else base64)."""
    if not content_type:
        return True
    mime = content_type.split(";", 1)[0].strip().lower()
    return mime.startswith("text/") or mime in _TEXT_TYPES or mime.endswith(("+json", "+xml"))


def _headers(headers: dict[str, str] | Iterable[tuple[str, str]] | None) -> tuple[dict[str, str], list[str]]:
    """Lower-cased headers, repeated ones joined with commas, and the cookies taken out of them."""
    pairs = headers.items() if isinstance(headers, dict) else headers or ()
    out: dict[str, str] = {}
    cookies: list[str] = []
    for name, value in pairs:
        key = name.lower()
        if key == "cookie":
            cookies += [c.strip() for c in value.split(";") if c.strip()]
        else:
            out[key] = f"{out[key]},{value}" if key in out else value
    return out, cookies


def _body(body: str | bytes | None, content_type: str | None) -> tuple[str | None, bool]:
    """The event's ``body`` and ``isBase64Encoded``: bytes of a text type are passed as text."""
    if not isinstance(body, bytes):
        return body, False
    if not body:
        return None, False
    if is_text(content_type):
        try:
            return body.decode("utf-8"), False
        except UnicodeDecodeError:
            pass
    return base64.b64encode(body).decode("ascii"), True


def _request_context(
    request: tuple[str, str, str, str], route_key: str, domain: str, api_id: str, stage: str, request_id: str | None
) -> dict[str, Any]:
    """``requestContext`` without its authorizer; ``request``: method, path, source IP, user agent."""
    method, path, source_ip, user_agent = request
    now = time.time()
    return {
        "accountId": ACCOUNT,
        "apiId": api_id,
        "domainName": domain,
        "domainPrefix": domain.split(".", 1)[0].split(":", 1)[0],
        "http": {
            "method": method,
            "path": path,
            "protocol": "HTTP/1.1",
            "sourceIp": source_ip,
            "userAgent": user_agent,
        },
        "requestId": request_id or base64.b64encode(uuid.uuid4().bytes[:10]).decode(),
        "routeKey": route_key,
        "stage": stage,
        "time": time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(now)),
        "timeEpoch": int(now * 1000),
    }


def http_event(
    method: str,
    path: str,
    *,
    route_key: str | None = None,
    path_parameters: dict[str, str] | None = None,
    query: str | dict[str, str] | None = None,
    headers: dict[str, str] | Iterable[tuple[str, str]] | None = None,
    body: str | bytes | None = None,
    claims: dict[str, Any] | None = None,
    scopes: list[str] | None = None,
    authorizer: dict[str, Any] | None = None,
    source_ip: str = "127.0.0.1",
    request_id: str | None = None,
    api_id: str = API_ID,
    stage: str = "$default",
    domain: str = "127.0.0.1",
) -> dict[str, Any]:
    """An API Gateway HTTP API (payload 2.0) event. ``claims`` and ``scopes`` make the JWT
    authorizer's context (or ``authorizer`` gives it whole); fields API Gateway omits when empty
    are omitted."""
    hdrs, cookies = _headers(headers)
    raw_query = query if isinstance(query, str) else urlencode(query or {})
    query_params: dict[str, str] = {}
    for key, value in parse_qsl(raw_query, keep_blank_values=True):
        # API Gateway joins repeated parameters with commas
        query_params[key] = f"{query_params[key]},{value}" if key in query_params else value
    route_key = route_key or f"{method.upper()} {path}"
    domain = hdrs.get("host", domain)
    request = (method.upper(), path, source_ip, hdrs.get("user-agent", ""))
    context = _request_context(request, route_key, domain, api_id, stage, request_id)
    if claims is not None:
        authorizer = {"jwt": {"claims": claims, "scopes": scopes}}
    if authorizer is not None:
        context["authorizer"] = authorizer
    event: dict[str, Any] = {"version": "2.0", "routeKey": route_key, "rawPath": path, "rawQueryString": raw_query}
    if cookies:
        event["cookies"] = cookies
    event["headers"] = hdrs
    if query_params:
        event["queryStringParameters"] = query_params
    event["requestContext"] = context
    if path_parameters:
        event["pathParameters"] = path_parameters
    text, is_b64 = _body(body, hdrs.get("content-type"))
    if text is not None:
        event["body"] = text
    event["isBase64Encoded"] = is_b64
    return event


def sqs_record(
    body: str,
    *,
    queue_arn: str = f"arn:aws:sqs:{REGION}:{ACCOUNT}:jobs",
    region: str = REGION,
    message_id: str | None = None,
    receipt_handle: str | None = None,
    receive_count: int = 1,
    sent_at_ms: int | None = None,
    attributes: dict[str, str] | None = None,
    message_attributes: dict[str, Any] | None = None,
    md5_of_body: str | None = None,
    md5_of_message_attributes: str | None = None,
) -> dict[str, Any]:
    """One ``Records`` entry of a Lambda SQS event (``attributes``, as SQS gave them, replace the
    ones made from ``receive_count`` and ``sent_at_ms``)."""
    sent = str(sent_at_ms or int(time.time() * 1000))
    record: dict[str, Any] = {
        "messageId": message_id or str(uuid.uuid4()),
        "receiptHandle": receipt_handle or base64.b64encode(uuid.uuid4().bytes).decode(),
        "body": body,
        "attributes": attributes
        if attributes is not None
        else {
            "ApproximateReceiveCount": str(receive_count),
            "SentTimestamp": sent,
            "SenderId": "AIDAIENQZJOLO23YVJ4VO",
            "ApproximateFirstReceiveTimestamp": sent,
        },
        "messageAttributes": message_attributes or {},
        "md5OfBody": md5_of_body or hashlib.md5(body.encode()).hexdigest(),  # noqa: S324 - SQS's own checksum
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }
    if md5_of_message_attributes:
        record["md5OfMessageAttributes"] = md5_of_message_attributes
    return record


def sqs_event(bodies: list[str], **kwargs: Any) -> dict[str, Any]:
    return {"Records": [sqs_record(body, **kwargs) for body in bodies]}
