"""health: ``GET /health`` (public, cheap) for load balancers, uptime checks and the on-call engineer.

200 ``{status: "ok", version, database: {status, latency_ms}}``; 503 with ``status: "degraded"`` and
the failing dependency named when PostgreSQL does not answer. Nothing sensitive is returned.
"""

from __future__ import annotations

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.logging import correlation_paths

from hibachi import health
from hibachi.api import create_app, handle
from hibachi.observability import logger, metrics

app = create_app()

OPERATIONS = {"GET /health": "health"}


@app.get("/health", summary="Service health", tags=["ops"],
         responses={200: {"description": "Healthy", "content": {"application/json": {"model": health.Health}}},
                    503: {"description": "Degraded: a dependency is down",
                          "content": {"application/json": {"model": health.Health}}}})
def get_health() -> Response[health.Health]:
    result = health.check()
    return Response(status_code=200 if result.status == "ok" else 503, content_type=content_types.APPLICATION_JSON,
                    body=result.model_dump(mode="json"), headers={"Cache-Control": "no-store"})


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict, context: object) -> dict:
    return handle(app, event, context, OPERATIONS)
