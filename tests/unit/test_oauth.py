"""Authorization discovery (hibachi.oauth): the protected-resource metadata (RFC 9728) and the
WWW-Authenticate challenges of the 401 and 403 the functions answer themselves. Through the local
gateway, with the real clients: tests/http/test_mcp_clients.py."""

from __future__ import annotations

import json

from hibachi import oauth
from hibachi.api import Route, refusal

from local.events import http_event
from local.routes import load_app


def test_the_scopes_are_the_template_routes_scopes():
    routes = [r for r in load_app().routes if not r.is_default]
    assert set(oauth.SCOPES) == {s for r in routes for s in r.scopes}
    assert set(oauth.MCP_SCOPES) == {s for r in routes if r.path == "/mcp" for s in r.scopes}


def _forged(path: str, route_key: str, **kw) -> dict:
    event = http_event("GET" if route_key.startswith("GET") else "POST", path, route_key=route_key, **kw)
    event["requestContext"]["domainName"] = "api.hibachi.example"
    return event


def test_a_functions_own_401_and_403_point_to_the_metadata():
    routes = {"POST /bookings": Route("create_booking", "bookings:write"), "POST /mcp": Route("mcp", ("a:b", "c:d"))}
    no_claims = _forged("/bookings", "POST /bookings")
    no_claims["requestContext"].pop("authorizer", None)
    answer = refusal(no_claims, routes)
    assert answer is not None and answer["statusCode"] == 401
    assert answer["headers"]["WWW-Authenticate"] == (
        'Bearer error="invalid_token", '
        'resource_metadata="https://api.hibachi.example/.well-known/oauth-protected-resource"'
    )
    assert json.loads(answer["body"])["error"]["code"] == "unauthorized"
    wrong = _forged("/mcp", "POST /mcp", claims={"sub": "agent"}, scopes=["ops:read"])
    answer = refusal(wrong, routes)
    assert answer is not None and answer["statusCode"] == 403
    assert answer["headers"]["WWW-Authenticate"] == (
        'Bearer error="insufficient_scope", scope="a:b c:d", '
        'resource_metadata="https://api.hibachi.example/.well-known/oauth-protected-resource/mcp"'
    )


def test_the_metadata_names_the_resource_the_issuer_and_the_scopes():
    event = _forged(oauth.WELL_KNOWN + "/mcp", "GET " + oauth.WELL_KNOWN + "/mcp")
    mcp = oauth.metadata(event, "/mcp", "https://issuer.example/pool").model_dump()
    assert mcp["resource"] == "https://api.hibachi.example/mcp"
    assert mcp["authorization_servers"] == ["https://issuer.example/pool"]
    assert mcp["scopes_supported"] == list(oauth.MCP_SCOPES) and mcp["bearer_methods_supported"] == ["header"]
    api = oauth.metadata(event, "", "https://issuer.example/pool").model_dump()
    assert api["resource"] == "https://api.hibachi.example" and api["scopes_supported"] == list(oauth.SCOPES)
    local = {**event, "headers": {"x-forwarded-proto": "http"}}
    assert oauth.metadata(local, "", None).model_dump()["resource"].startswith("http://")
