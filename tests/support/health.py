"""The health function in process."""

from __future__ import annotations

import json
from typing import Any

from local.events import LambdaContext, http_event
from testkit.functions import load_function


def get(
    context: LambdaContext, path: str = "/health", *, scopes: list[str] | None = None, authorized: bool = True
) -> tuple[int, Any, dict[str, str]]:
    """``GET path`` on the health handler: (status, JSON body, headers)."""
    route = "GET /health/details" if path == "/health/details" else "GET /health"
    claims = {"sub": "oncall", "scope": " ".join(scopes or [])} if authorized and path != "/health" else None
    event = http_event("GET", path, route_key=route, claims=claims, scopes=scopes if claims else None)
    response = load_function("health").lambda_handler(event, context)
    headers: dict[str, str] = response.get("headers") or {}
    return int(response["statusCode"]), json.loads(response["body"]), headers
