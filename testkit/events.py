"""Real Lambda event payloads, built the way AWS builds them: HTTP API payload format 2.0, SQS
batches, EventBridge Scheduler inputs, and a LambdaContext stand-in.

One builder for the local gateway, the local poller, the tests and the benchmark.
"""

from __future__ import annotations

import base64
import hashlib
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode

REGION = "us-east-1"
ACCOUNT = "123456789012"
API_ID = "local"

_TEXT_TYPES = (
    "text/",
    "application/json",
    "application/xml",
    "application/x-www-form-urlencoded",
    "application/javascript",
    "application/problem+json",
)


@dataclass
class LambdaContext:
    """What the Lambda runtime passes as ``context`` (the attributes Powertools reads)."""

    function_name: str = "local-function"
    memory_limit_in_mb: int = 512
    timeout_ms: int = 10_000
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_version: str = "$LATEST"
    log_group_name: str = "/aws/lambda/local"
    log_stream_name: str = "local"
    _deadline: float = field(default=0.0, repr=False)

    def __post_init__(self) -> None:
        self._deadline = time.monotonic() + self.timeout_ms / 1000

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:{REGION}:{ACCOUNT}:function:{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def http_event(
    method: str,
    path: str,
    *,
    route_key: str | None = None,
    path_parameters: dict[str, str] | None = None,
    query: str | dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
    body: str | bytes | None = None,
    claims: dict[str, Any] | None = None,
    scopes: list[str] | None = None,
    source_ip: str = "127.0.0.1",
    request_id: str | None = None,
) -> dict[str, Any]:
    """An API Gateway HTTP API (payload 2.0) event, as the JWT-authorized route would receive it."""
    headers = {k.lower(): v for k, v in (headers or {}).items()}
    raw_query = query if isinstance(query, str) else urlencode(query or {})
    query_params: dict[str, str] = {}
    for key, value in parse_qsl(raw_query, keep_blank_values=True):
        # API Gateway joins repeated parameters with commas
        query_params[key] = f"{query_params[key]},{value}" if key in query_params else value
    is_b64 = False
    if isinstance(body, bytes):
        content_type = headers.get("content-type", "")
        if content_type.startswith(_TEXT_TYPES):
            try:
                body = body.decode("utf-8")
            except UnicodeDecodeError:
                body, is_b64 = base64.b64encode(body).decode(), True
        else:
            body, is_b64 = base64.b64encode(body).decode(), True
    now = datetime.now(UTC)
    rid = request_id or base64.b64encode(uuid.uuid4().bytes[:10]).decode().rstrip("=")
    route_key = route_key or f"{method.upper()} {path}"
    event: dict[str, Any] = {
        "version": "2.0",
        "routeKey": route_key,
        "rawPath": path,
        "rawQueryString": raw_query,
        "headers": headers,
        "requestContext": {
            "accountId": ACCOUNT,
            "apiId": API_ID,
            "domainName": headers.get("host", "127.0.0.1"),
            "domainPrefix": API_ID,
            "http": {
                "method": method.upper(),
                "path": path,
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": headers.get("user-agent", ""),
            },
            "requestId": rid,
            "routeKey": route_key,
            "stage": "$default",
            "time": now.strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "timeEpoch": int(now.timestamp() * 1000),
        },
        "isBase64Encoded": is_b64,
    }
    if "cookie" in headers:
        event["cookies"] = [c.strip() for c in headers["cookie"].split(";") if c.strip()]
    if query_params:
        event["queryStringParameters"] = query_params
    if path_parameters:
        event["pathParameters"] = path_parameters
    if body is not None:
        event["body"] = body
    if claims is not None:
        event["requestContext"]["authorizer"] = {"jwt": {"claims": claims, "scopes": scopes}}
    return event


def sqs_record(
    body: str,
    *,
    queue_arn: str = f"arn:aws:sqs:{REGION}:{ACCOUNT}:jobs",
    message_id: str | None = None,
    receipt_handle: str | None = None,
    receive_count: int = 1,
    sent_at_ms: int | None = None,
    message_attributes: dict[str, Any] | None = None,
) -> dict[str, Any]:
    sent = str(sent_at_ms or int(time.time() * 1000))
    return {
        "messageId": message_id or str(uuid.uuid4()),
        "receiptHandle": receipt_handle or base64.b64encode(uuid.uuid4().bytes).decode(),
        "body": body,
        "attributes": {
            "ApproximateReceiveCount": str(receive_count),
            "SentTimestamp": sent,
            "SenderId": "AIDAIENQZJOLO23YVJ4VO",
            "ApproximateFirstReceiveTimestamp": sent,
        },
        "messageAttributes": message_attributes or {},
        "md5OfBody": hashlib.md5(body.encode()).hexdigest(),  # noqa: S324 - SQS's own checksum
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": REGION,
    }


def sqs_event(bodies: list[str], **kwargs: Any) -> dict[str, Any]:
    return {"Records": [sqs_record(body, **kwargs) for body in bodies]}
