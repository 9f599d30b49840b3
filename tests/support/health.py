"""The health function in process."""

from __future__ import annotations

import json

from local.events import http_event
from testkit.functions import load_function


def get(context, path: str = "/health", *, scopes: list[str] | None = None, authorized: bool = True):
    route = "GET /health/details" if path == "/health/details" else "GET /health"
    claims = {"sub": "oncall", "scope": " ".join(scopes or [])} if authorized and path != "/health" else None
    event = http_event("GET", path, route_key=route, claims=claims, scopes=scopes if claims else None)
    response = load_function("health").lambda_handler(event, context)
    return response["statusCode"], json.loads(response["body"]), response.get("headers") or {}
