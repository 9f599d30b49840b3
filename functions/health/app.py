"""health: the service's health for load balancers, uptime checks and the on-call engineer.

    GET /health            public and cheap: 200 {status: "ok", database: {status, latency_ms},
                           failing: []}; 503 with status "degraded" and the failing dependency named
                           ("failing": ["database"]) when PostgreSQL does not answer. Always within 3 s;
                           nothing sensitive (no version, host or error text). The probe's result
                           is reused for HEALTH_CACHE_SECONDS, and the route has its own throttle.
    GET /health/details    scope ops:read: the deployed version, queue and DLQ depths, follow-ups
                           (pending, overdue, failed, sent today), conversations whose emotion
                           statistics are behind, the reconciler's last run. 503 (with every part
                           that did answer) when a part is down.

Direct invocations (``aws lambda invoke``, used by ``python -m ops --stack``; never reachable
through the HTTP API, whose events always carry ``routeKey``) answer operations queries without
giving a laptop database access:

    {"ops": "details"}                                   the body of /health/details
    {"ops": "followups", "status": "pending", "limit": 50}
    {"ops": "reconciler_runs", "limit": 10}
    {"ops": "events_backlog"}                            unpublished events (issue 20)
"""

from __future__ import annotations

import gc

gc.disable()  # until the init is done (hibachi.coldstart): its objects are long-lived, not garbage

import json
import warnings
from typing import Any

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.logging import correlation_paths
from hibachi import health, ops
from hibachi.api import Route, create_app, handle
from hibachi.coldstart import init_done
from hibachi.db import get_db
from hibachi.errors import AppError
from hibachi.observability import logger, metrics
from hibachi.settings import require_on_aws

require_on_aws("db_host")  # a mis-wired deploy fails its cold start, with one log line

# Direct ops invocations add no application metric; Powertools' warning about that is noise.
warnings.filterwarnings("ignore", message="No application metrics to publish")

app = create_app(public=("/health",))  # the template's only route without the authorizer

# The route table: each route's operation and the scope template.yaml's authorizer requires on it;
# neither acts for a customer (no conversation header needed)
OPERATIONS = {
    "GET /health": Route("health", None, acts=False),
    "GET /health/details": Route("health_details", "ops:read", acts=False),
}
_NO_STORE = {"Cache-Control": "no-store"}


@app.get(
    "/health",
    summary="Service health",
    tags=["ops"],
    responses={
        200: {"description": "Healthy", "content": {"application/json": {"model": health.Health}}},
        503: {
            "description": "Degraded: a dependency is down (named in `failing`)",
            "content": {"application/json": {"model": health.Health}},
        },
    },
)
def get_health() -> Response[health.Health]:
    result = health.check()
    return Response(
        status_code=200 if result.status == "ok" else 503,
        content_type=content_types.APPLICATION_JSON,
        body=result,
        headers=_NO_STORE,
    )


@app.get(
    "/health/details",
    summary="Operations details: queues, DLQs, follow-ups, reconciler",
    tags=["ops"],
    responses={
        200: {"description": "Every part answered"},
        503: {"description": "A part is down (named in `failing`); the others are reported"},
    },
)
def get_health_details() -> Response[dict[str, Any]]:
    result = health.details()
    return Response(
        status_code=200 if result["status"] == "ok" else 503,
        content_type=content_types.APPLICATION_JSON,
        body=json.loads(json.dumps(result, default=str)),
        headers=_NO_STORE,
    )


def _ops(event: dict[str, Any]) -> dict[str, Any]:
    """A direct invocation from the ops CLI."""
    kind = event.get("ops")
    limit = event.get("limit", 50)
    try:
        if kind == "details":
            result: Any = health.details()
        elif kind == "followups":
            result = ops.list_followups(get_db(), str(event.get("status")), limit)
        elif kind == "reconciler_runs":
            result = ops.reconciler_runs(get_db(), limit)
        elif kind == "events_backlog":
            result = ops.event_backlog(get_db())
        else:
            return {"error": f"unknown ops request {kind!r}"}
    except (AppError, ValueError, TypeError) as exc:  # a bad request, or the database is down
        return {"error": getattr(exc, "message", None) or str(exc)}
    logger.info("ops request", extra={"ops": kind})
    answer: dict[str, Any] = json.loads(json.dumps({"ops": kind, "result": result}, default=str))
    return answer


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: object) -> dict[str, Any]:
    if "ops" in event and "routeKey" not in event:
        return _ops(event)
    return handle(app, event, context, OPERATIONS)


init_done()  # the last statement of the init (hibachi.coldstart)
