"""The local gateway over real HTTP: routing, the JWT authorizer, the payload 2.0 event, the response
mapping, the worker processes, the OpenAPI document and Swagger UI."""

from __future__ import annotations

import base64
import json
from concurrent.futures import ThreadPoolExecutor

import jwt
import pytest
import requests

from local.auth import JwtAuthority


def echo(stack, path="/echo/x", *, method="GET", scopes=("items:read",), **kwargs):
    headers = {**stack.auth_headers(list(scopes)), **kwargs.pop("headers", {})}
    r = requests.request(method, stack.url + path, headers=headers, timeout=30, **kwargs)
    assert r.status_code == 200, r.text
    return r, r.json()


# -- routing and the authorizer ---------------------------------------------------------------------
def test_public_route_needs_no_token(stack):
    r = requests.get(f"{stack.url}/health", timeout=30)
    assert r.status_code == 200 and r.json() == {"status": "ok"}
    assert r.headers["apigw-requestid"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/nope"),
        ("DELETE", "/health"),
        ("GET", "/items"),
        ("POST", "/special/string"),
        ("TRACE", "/health"),
        ("QUERY", "/items/1"),
    ],
)
def test_unknown_route_is_404_like_api_gateway(stack, method, path):
    r = requests.request(method, stack.url + path, headers=stack.auth_headers(), timeout=30)
    assert r.status_code == 404 and r.json() == {"message": "Not Found"}


def test_no_token_is_401(stack):
    r = requests.get(f"{stack.url}/items/1", timeout=30)
    assert r.status_code == 401 and r.json() == {"message": "Unauthorized"}
    assert r.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize("case", ["expired", "issuer", "audience", "signature", "garbage"])
def test_bad_tokens_are_401(stack, tmp_path, case):
    if case == "expired":
        token = stack.token(["items:read"], ttl=-30)
    elif case == "issuer":
        token = stack.token(["items:read"], issuer="http://127.0.0.1:1/local-issuer")
    elif case == "audience":
        token = stack.token(["items:read"], audience="another-api")
    elif case == "signature":
        token = JwtAuthority(issuer=stack.authority.issuer, key_dir=tmp_path).issue_token(["items:read"])
    else:
        token = "garbage"
    r = requests.get(f"{stack.url}/items/1", headers={"authorization": f"Bearer {token}"}, timeout=30)
    assert r.status_code == 401 and r.json() == {"message": "Unauthorized"}
    assert 'error="invalid_token"' in r.headers["www-authenticate"]


def test_missing_scope_is_403(stack):
    r = requests.get(f"{stack.url}/items/1", headers=stack.auth_headers(["items:write"]), timeout=30)
    assert r.status_code == 403 and r.json() == {"message": "Forbidden"}
    assert 'error="insufficient_scope"' in r.headers["www-authenticate"]


def test_scope_and_scp_tokens_pass(stack):
    for token in (stack.token(["items:read"]), stack.token(["items:read"], scope_claim="scp")):
        r = requests.get(f"{stack.url}/items/7", headers={"authorization": f"Bearer {token}"}, timeout=30)
        assert r.status_code == 200 and r.json() == {"id": "7"}


def test_route_without_scopes_takes_any_valid_token(stack):
    _, body = echo(stack, "/whoami", scopes=())
    assert body["event"]["requestContext"]["authorizer"]["jwt"]["scopes"] is None


# -- the event ------------------------------------------------------------------------------------------
def test_event_is_http_api_payload_2(stack):
    r, body = echo(
        stack,
        "/echo/a/b%20c?x=1&x=2&empty=&sp=%20",
        headers={"X-Custom": "Value", "Cookie": "c1=v1; c2=v2", "User-Agent": "tests/1.0"},
    )
    event = body["event"]
    assert event["version"] == "2.0"
    assert event["routeKey"] == "ANY /echo/{proxy+}"
    assert event["rawPath"] == "/echo/a/b%20c"
    assert event["rawQueryString"] == "x=1&x=2&empty=&sp=%20"
    assert event["queryStringParameters"] == {"x": "1,2", "empty": "", "sp": " "}
    assert event["pathParameters"] == {"proxy": "a/b c"}
    assert event["cookies"] == ["c1=v1", "c2=v2"]
    headers = event["headers"]
    assert headers["x-custom"] == "Value" and "cookie" not in headers
    assert all(k == k.lower() for k in headers)
    assert headers["x-forwarded-proto"] == "http" and headers["x-amzn-trace-id"].startswith("Root=1-")
    assert "body" not in event and event["isBase64Encoded"] is False
    ctx = event["requestContext"]
    assert ctx["accountId"] == "123456789012" and ctx["apiId"] and ctx["stage"] == "$default"
    assert ctx["routeKey"] == event["routeKey"]
    assert ctx["http"] == {
        "method": "GET",
        "path": "/echo/a/b%20c",
        "protocol": "HTTP/1.1",
        "sourceIp": "127.0.0.1",
        "userAgent": "tests/1.0",
    }
    assert ctx["domainName"] == stack.url.removeprefix("http://")
    assert isinstance(ctx["timeEpoch"], int) and ctx["time"].endswith("+0000")
    assert ctx["requestId"] == r.headers["apigw-requestid"]
    claims = ctx["authorizer"]["jwt"]["claims"]
    assert claims["iss"] == stack.authority.issuer and claims["aud"] == "hibachi-api"
    assert all(isinstance(v, str) for v in claims.values())
    assert ctx["authorizer"]["jwt"]["scopes"] == ["items:read"]


def test_request_ids_are_unique(stack):
    ids = {echo(stack)[1]["event"]["requestContext"]["requestId"] for _ in range(5)}
    assert len(ids) == 5


def test_literal_route_beats_greedy_route(stack):
    _, body = echo(stack, "/echo/literal")
    assert body["event"]["routeKey"] == "GET /echo/literal" and "pathParameters" not in body["event"]
    _, body = echo(stack, "/echo/literal", method="DELETE")
    assert body["event"]["routeKey"] == "ANY /echo/{proxy+}"


def test_text_body_is_passed_as_is(stack):
    payload = {"name": "Grill", "emoji": "\U0001f525"}
    _, body = echo(stack, method="POST", json=payload)
    event = body["event"]
    assert event["isBase64Encoded"] is False and json.loads(event["body"]) == payload
    assert event["requestContext"]["http"]["method"] == "POST"


def test_binary_body_is_base64(stack):
    raw = bytes(range(256))
    _, body = echo(stack, method="PUT", data=raw, headers={"content-type": "application/octet-stream"})
    event = body["event"]
    assert event["isBase64Encoded"] is True and base64.b64decode(event["body"]) == raw


def test_payload_over_10_mb_is_413(stack):
    r = requests.post(
        f"{stack.url}/echo/x", data=b"x" * (10 * 1024 * 1024 + 1), headers=stack.auth_headers(), timeout=60
    )
    assert r.status_code == 413 and r.json() == {"message": "Request Entity Too Large"}
    assert echo(stack)[0].status_code == 200  # the gateway is fine afterwards


# -- the functions' execution environment ----------------------------------------------------------
def test_function_environment_and_context(stack):
    _, body = echo(stack)
    env = body["env"]
    assert env["GREETING"] == "hello" and env["STAGE_NAME"] == "local"  # from the template
    assert env["QUEUE_ARN"] is None  # not resolvable without a deployed stack
    assert env["FIXTURE_OUT"]  # the stack's env
    assert env["AWS_ENDPOINT_URL"] == stack.endpoint_url and env["JOBS_QUEUE_URL"] == stack.queue_urls["jobs"]
    assert env["AWS_ACCESS_KEY_ID"] == "testing" and env["AWS_PROFILE"] is None
    assert env["AWS_LAMBDA_FUNCTION_NAME"] == "EchoFunction" and env["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] == "256"
    assert env["TZ"] == ":UTC" and env["POWERTOOLS_SERVICE_NAME"] == "hibachi"
    assert body["layer"] == "fixturelib"
    ctx = body["context"]
    assert ctx["function_name"] == "EchoFunction" and ctx["memory_limit_in_mb"] == "256"
    assert ctx["invoked_function_arn"] == "arn:aws:lambda:us-east-1:123456789012:function:EchoFunction"
    assert ctx["function_version"] == "$LATEST" and ctx["log_group_name"] == "/aws/lambda/EchoFunction"
    assert 0 < ctx["remaining_ms"] <= 2000
    assert ctx["aws_request_id"] != body["event"]["requestContext"]["requestId"]


def test_module_is_loaded_once_per_worker_process(stack):
    import os

    bodies = [echo(stack)[1] for _ in range(4)]
    assert all(b["pid"] != os.getpid() for b in bodies)  # never in the gateway's process
    assert all(b["module"].startswith("_lambda_EchoFunction_") for b in bodies)
    by_pid: dict[int, list[int]] = {}
    for b in bodies:
        by_pid.setdefault(b["pid"], []).append(b["invocations"])
    for counts in by_pid.values():  # a warm worker keeps its module state
        assert counts == sorted(counts) and len(set(counts)) == len(counts)


def test_concurrent_requests_use_several_workers_up_to_the_limit(stack):
    with ThreadPoolExecutor(max_workers=8) as ex:
        bodies = list(ex.map(lambda _: echo(stack, "/echo/x?sleep=0.5")[1], range(8)))
    pids = {b["pid"] for b in bodies}
    assert 2 <= len(pids) <= stack.max_workers
    assert stack.registry.pool("EchoFunction").size <= stack.max_workers


# -- results as API Gateway maps them ----------------------------------------------------------------
def test_string_result_is_200_json(stack):
    r = requests.get(f"{stack.url}/special/string", timeout=30)
    assert r.status_code == 200 and r.text == "plain text result"
    assert r.headers["content-type"] == "application/json"


@pytest.mark.parametrize(("kind", "expected"), [("dict", {"hello": "world"}), ("list", [1, 2, 3])])
def test_result_without_status_code_is_200_json(stack, kind, expected):
    r = requests.get(f"{stack.url}/special/{kind}", timeout=30)
    assert r.status_code == 200 and r.json() == expected


def test_binary_response(stack):
    r = requests.get(f"{stack.url}/special/binary", timeout=30)
    assert r.status_code == 200 and r.content == bytes(range(256))


def test_cookies_and_multi_value_headers(stack):
    r = requests.get(f"{stack.url}/special/cookies", timeout=30)
    assert r.status_code == 201
    assert r.raw.headers.getlist("set-cookie") == ["a=1; Path=/", "b=2"]
    assert r.raw.headers.getlist("x-multi") == ["1", "2"] and r.headers["x-custom"] == "a,b"


@pytest.mark.parametrize("kind", ["raise", "malformed", "unserializable", "exit", "sleep"])
def test_failures_are_500_and_the_next_request_works(stack, kind):
    r = requests.get(f"{stack.url}/special/{kind}", timeout=60)
    assert r.status_code == 500 and r.json() == {"message": "Internal Server Error"}
    assert "Traceback" not in r.text
    assert requests.get(f"{stack.url}/special/dict", timeout=30).json() == {"hello": "world"}


def test_powertools_validation_errors_pass_through(stack):
    headers = stack.auth_headers(["items:write"])
    ok = requests.post(f"{stack.url}/items/9", json={"name": "Knife", "price": 3}, headers=headers, timeout=30)
    assert ok.status_code == 200 and ok.json() == {"id": "9", "name": "Knife", "price": 3.0}
    bad = requests.post(f"{stack.url}/items/9", json={"name": "", "price": -1}, headers=headers, timeout=30)
    assert bad.status_code == 422


# -- local extras --------------------------------------------------------------------------------------
def test_openapi_document_is_merged_with_security(stack):
    r = requests.get(f"{stack.url}/openapi.json", timeout=60)
    assert r.status_code == 200
    doc = r.json()
    assert doc["openapi"].startswith("3.")
    assert doc["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "The HTTP API JWT authorizer; scopes per operation.",
    }
    assert "Item" in doc["components"]["schemas"]
    items = doc["paths"]["/items/{item_id}"]
    assert items["get"]["security"] == [{"bearerAuth": ["items:read"]}]
    assert items["post"]["security"] == [{"bearerAuth": ["items:write", "items:admin"]}]
    assert items["post"]["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/Item"
    }
    assert doc["paths"]["/health"]["get"]["security"] == []
    assert doc["paths"]["/whoami"]["get"]["x-local-stub"] is True  # a route the resolver does not declare
    assert doc["servers"] == [{"url": stack.url}]


def test_swagger_ui_works_offline(stack):
    page = requests.get(f"{stack.url}/docs", timeout=60)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "SwaggerUIBundle" in page.text and "/docs/swagger-ui-bundle.min.js" in page.text
    js = requests.get(f"{stack.url}/docs/swagger-ui-bundle.min.js", timeout=30)
    css = requests.get(f"{stack.url}/docs/swagger-ui.min.css", timeout=30)
    assert js.status_code == 200 and len(js.content) > 100_000
    assert css.status_code == 200 and css.headers["content-type"] == "text/css"
    spec = requests.get(f"{stack.url}/docs?format=json", timeout=30)
    assert spec.json()["paths"].keys() == requests.get(f"{stack.url}/openapi.json", timeout=30).json()["paths"].keys()


def test_jwks_and_discovery(stack):
    token = stack.token()
    jwks = requests.get(f"{stack.url}/.well-known/jwks.json", timeout=30).json()
    assert [k["kid"] for k in jwks["keys"]] == [jwt.get_unverified_header(token)["kid"]]
    conf = requests.get(f"{stack.authority.issuer}/.well-known/openid-configuration", timeout=30).json()
    assert conf["issuer"] == stack.authority.issuer
    assert requests.get(conf["jwks_uri"], timeout=30).json() == jwks
    key = jwt.PyJWK(jwks["keys"][0])
    assert jwt.decode(token, key.key, algorithms=["RS256"], audience="hibachi-api")["iss"] == stack.authority.issuer
