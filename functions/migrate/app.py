"""migrate: a CloudFormation custom resource that applies the SQL migrations on every deploy.

Create and Update apply the pending migrations (none when up to date); Delete does nothing (data
outlives stacks). It connects like the API functions: RDS Proxy, IAM token, TLS.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

from aws_lambda_powertools.utilities.typing import LambdaContext
from hibachi.db import error_facts
from hibachi.migrate import apply, iam_url
from hibachi.observability import exception_facts, logger
from hibachi.settings import get_settings, require_on_aws

require_on_aws("db_host")  # a mis-wired deploy fails its cold start, with one log line


def _dsn() -> str:
    s = get_settings()
    if s.database_url:
        return s.database_url
    from hibachi.db import get_db

    password = get_db().iam_token() if s.db_iam_auth else (s.db_password or "")
    return iam_url(s.db_host or "", s.db_port, s.db_name, s.db_user, password, s.db_sslmode, s.db_sslrootcert)


# CloudFormation's pre-signed S3 URL: https, an S3 host of AWS, a signature in the query.
_S3_HOST = re.compile(r"^[a-z0-9][a-z0-9.-]*\.s3([.-][a-z0-9-]+)*\.amazonaws\.com(\.cn)?$")


def response_url_ok(url: object) -> bool:
    """Only a pre-signed S3 URL over HTTPS: the function must not PUT its result (and its log
    stream name) to an address a forged event names."""
    if not isinstance(url, str):
        return False
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return False
    query = parse_qs(parts.query)
    return (
        parts.scheme == "https"
        and port in (None, 443)
        and not parts.username
        and bool(_S3_HOST.match(parts.hostname or ""))
        and ("X-Amz-Signature" in query or "Signature" in query)
    )


def _respond(
    event: dict[str, Any], context: LambdaContext, status: str, data: dict[str, Any], reason: str = ""
) -> None:
    import json
    import urllib.request

    body = json.dumps(
        {
            "Status": status,
            "Reason": (reason or f"See log stream {context.log_stream_name}")[:1000],
            "PhysicalResourceId": event.get("PhysicalResourceId") or "hibachi-migrations",
            "StackId": event["StackId"],
            "RequestId": event["RequestId"],
            "LogicalResourceId": event["LogicalResourceId"],
            "Data": data,
        }
    ).encode()
    request = urllib.request.Request(  # noqa: S310 - the https pre-signed URL CloudFormation gave
        event["ResponseURL"], data=body, method="PUT", headers={"Content-Type": "", "Content-Length": str(len(body))}
    )
    with urllib.request.urlopen(request, timeout=10):  # noqa: S310 - the pre-signed URL CloudFormation gave
        pass


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    data: dict[str, Any] = {}
    try:
        if event.get("RequestType") in ("Create", "Update"):
            applied = apply(_dsn())
            data = {"Applied": ",".join(applied) or "none"}
            logger.info("migrations applied", extra={"applied": applied})
        status, reason = "SUCCESS", ""
    except Exception as exc:  # noqa: BLE001 - CloudFormation must hear of every failure
        # the sqlstate and names only: a failing migration's message may quote rows (DETAIL: Key ...)
        facts = {**exception_facts(exc), **error_facts(exc)}
        logger.error("migrations failed", extra=facts)
        status, reason = (
            "FAILED",
            "migrations failed: " + " ".join(f"{k}={v}" for k, v in facts.items() if v and k != "frames"),
        )
    if "ResponseURL" in event:
        if response_url_ok(event["ResponseURL"]):
            _respond(event, context, status, data, reason)
        else:
            logger.error("refused a ResponseURL that is not a pre-signed HTTPS S3 URL")
    return {"Status": status, "Data": data}
