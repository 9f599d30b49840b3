"""The JWT authorizer on every protected route, generated from the template's route table
(``local.routes.load_app``), so a route added to template.yaml is covered (or fails the public
allow-list) without anyone writing a test for it. Through the real local gateway: no token,
malformed, expired, not yet valid, wrong issuer, wrong audience, bad signature, an unknown key,
``alg: none`` and HS256 signed with the public key get 401; a valid token without the route's
scopes gets 403; none of them reaches the function. And the API docs routes exist, public, only
when ``ExposeApiDocs`` says so."""

from __future__ import annotations

import base64
import json
import time
import uuid

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from local.auth import ALL_SCOPES
from local.routes import load_app
from tests.conftest import ROOT
from tests.reliability.tools import http

TEMPLATE = ROOT / "template.yaml"
APP = load_app(TEMPLATE)
PROTECTED = [r for r in APP.routes if not r.public]
PUBLIC = {r.route_key for r in APP.routes if r.public}
SAMPLE = {"booking_id": str(uuid.UUID(int=7)), "conversation_id": "sec-probe", "proxy": "x"}


def concrete(path: str) -> str:
    for name, value in SAMPLE.items():
        path = path.replace("{" + name + "}", value).replace("{" + name + "+}", value)
    assert "{" not in path, f"no sample value for a parameter of {path}: add it to SAMPLE"
    return path


def b64u(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def bad_tokens(rel) -> dict[str, str]:
    authority = rel.stack.authority
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    now = int(time.time())
    claims = {
        "iss": authority.issuer,
        "aud": authority.audiences[0],
        "sub": "mallory",
        "iat": now,
        "exp": now + 600,
        "scope": " ".join(ALL_SCOPES),
    }
    good = authority.issue_token()
    head, body, sig = good.split(".")
    tampered = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    tampered["sub"] = "admin"
    from cryptography.hazmat.primitives import serialization

    public_pem = authority.public_key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return {
        "malformed": "Bearer not-a-jwt",
        "expired": "Bearer " + authority.issue_token(ttl=-60),
        "not yet valid": "Bearer " + authority.issue_token(not_before=now + 3600),
        "wrong issuer": "Bearer " + authority.issue_token(issuer="https://evil.example/issuer"),
        "wrong audience": "Bearer " + authority.issue_token(audience="someone-else"),
        "bad signature": "Bearer " + jwt.encode(claims, other_key, algorithm="RS256", headers={"kid": authority.kid}),
        "unknown key": "Bearer " + jwt.encode(claims, other_key, algorithm="RS256", headers={"kid": "other"}),
        "tampered payload": f"Bearer {head}.{b64u(json.dumps(tampered).encode())}.{sig}",
        "alg none": "Bearer "
        + b64u(json.dumps({"alg": "none", "kid": authority.kid}).encode())
        + "."
        + b64u(json.dumps(claims).encode())
        + ".",
        "hs256 with the public key": "Bearer " + _hs256(claims, public_pem, authority.kid),
    }


def _hs256(claims: dict, secret: bytes, kid: str) -> str:
    import hashlib
    import hmac

    signing = (
        b64u(json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}).encode()) + "." + b64u(json.dumps(claims).encode())
    )
    return signing + "." + b64u(hmac.new(secret, signing.encode(), hashlib.sha256).digest())


def test_the_route_table_has_every_api_function_route_and_only_health_is_public():
    assert len(PROTECTED) >= 8
    assert {"GET /health"} == PUBLIC, "a new public route must be a decision: update this allow-list"
    assert all(r.scopes for r in PROTECTED), [r.route_key for r in PROTECTED if not r.scopes]


def test_api_docs_are_public_only_when_expose_api_docs_says_so():
    default = {r.route_key for r in load_app(TEMPLATE).routes}
    assert not {"GET /openapi.json", "GET /docs"} & default
    exposed = {r.route_key: r for r in load_app(TEMPLATE, parameters={"ExposeApiDocs": "true"}).routes}
    assert exposed["GET /openapi.json"].public and exposed["GET /docs"].public
    hidden = {r.route_key for r in load_app(TEMPLATE, parameters={"ExposeApiDocs": "false"}).routes}
    assert hidden == default


@pytest.mark.parametrize("route", PROTECTED, ids=lambda r: r.route_key)
def test_every_protected_route_refuses_bad_tokens_and_missing_scopes(rel, route):
    url = rel.stack.url + concrete(route.path)
    method = "GET" if route.method == "ANY" else route.method
    body = {} if method in ("POST", "PATCH", "PUT") else None
    pool = rel.stack.registry.pool(route.function)
    invocations = pool.invocations

    status, answer, headers = http(url, method, body=body)
    assert (status, answer) == (401, {"message": "Unauthorized"}), ("no token", status, answer)
    assert headers.get("www-authenticate", "").startswith("Bearer")
    for name, token in bad_tokens(rel).items():
        status, answer, _ = http(url, method, body=body, headers={"authorization": token})
        assert (status, answer) == (401, {"message": "Unauthorized"}), (name, status, answer)

    others = [s for s in ALL_SCOPES if s not in route.scopes]
    for scopes in ([], others):
        token = rel.stack.token(scopes)
        status, answer, _ = http(url, method, body=body, headers={"authorization": f"Bearer {token}"})
        assert (status, answer) == (403, {"message": "Forbidden"}), (scopes, status, answer)
    assert pool.invocations == invocations, "a refused request reached the function"

    # and the right scope alone gets through the authorizer (whatever the function answers), for the
    # assistant acting in a conversation (the host's header; without it, 403 conversation_required)
    token = rel.stack.token([route.scopes[0]])
    headers = {"authorization": f"Bearer {token}", "hibachi-conversation": "web:auth-test"}
    status, _, _ = http(url, method, body=body, headers=headers)
    assert status not in (401, 403) and status < 500, status


# -- POST /mcp: the route admits any of the tools' scopes; each tool call checks its own ---------------------
def test_mcp_route_is_protected_by_every_tool_scope():
    (route,) = [r for r in PROTECTED if r.route_key == "POST /mcp"]
    from testkit.functions import load_function

    tools = load_function("assistant_tools").server.tools
    assert set(route.scopes) == {tool.scope for tool in tools.values()}


def test_each_mcp_tool_call_needs_the_scope_of_its_rest_route(rel):
    from testkit.functions import load_function

    tools = load_function("assistant_tools").server.tools
    url = rel.stack.url + "/mcp"
    pool = rel.stack.registry.pool("AssistantToolsFunction")
    for name, tool in tools.items():
        call = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": name, "arguments": {}}}
        others = [s for s in ALL_SCOPES if s != tool.scope]
        token = rel.stack.token(others)
        before = pool.invocations
        status, answer, _ = http(url, "POST", body=call, headers={"authorization": f"Bearer {token}"})
        assert status == 200 and pool.invocations == before + 1, (name, status, answer)
        result = answer["result"]
        assert result["isError"] and result["structuredContent"]["error"]["code"] == "insufficient_scope", name
        assert result["structuredContent"]["error"]["details"] == {"required_scope": tool.scope}
        # with its scope alone the call gets past the check (and runs, or fails on the empty arguments)
        token = rel.stack.token([tool.scope])
        status, answer, _ = http(url, "POST", body=call, headers={"authorization": f"Bearer {token}"})
        assert status == 200, (name, status, answer)
        assert answer["result"]["structuredContent"].get("error", {}).get("code") != "insufficient_scope", name
