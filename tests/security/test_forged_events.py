"""Events that did not come through the JWT authorizer, sent straight to the functions as anyone
with ``lambda:InvokeFunction`` could (the local stack's invoke is Lambda's Invoke API): no
authorizer context (401), claims without the route's scope or with no scope information (403, the
check fails closed), a route key whose method and path are another route's (403), an unknown route
key (404). For every protected route of the template's route table, so a new route is covered;
and nothing is read or changed."""

from __future__ import annotations

import json
import uuid

import pytest

from local.routes import load_app
from testkit.events import http_event
from tests.conftest import ROOT, new_id
from tests.reliability.harness import booking_body, local_start
from tests.reliability.tools import http

APP = load_app(ROOT / "template.yaml")
PROTECTED = [r for r in APP.routes if not r.public]
BODIES = {"POST": json.dumps({"role": "user", "content": "forged"}), "PATCH": json.dumps({"guest_count": 2})}


@pytest.fixture(scope="module")
def target(rel):
    """A real booking and conversation the forged events aim at."""
    status, booking, _ = http(
        rel.stack.url + "/bookings", "POST", body=booking_body(local_start(rel.fresh_day(), 18)), headers=rel.headers()
    )
    assert status == 201
    return {"booking_id": booking["id"], "conversation_id": new_id("forged")}


def forged(route, target, authorizer, *, method=None, path=None):
    concrete = route.path
    for name, value in target.items():
        concrete = concrete.replace("{" + name + "}", value)
    event = http_event(
        method or route.method,
        path or concrete,
        route_key=route.route_key,
        path_parameters={k: v for k, v in target.items() if "{" + k + "}" in route.path} or None,
        headers={"content-type": "application/json"},
        body=BODIES.get(method or route.method)
        if route.path != "/bookings"
        else json.dumps(booking_body("2030-01-01T18:00")),
    )
    if authorizer is not None:
        event["requestContext"]["authorizer"] = authorizer
    return event


def invoke(rel, route, event) -> tuple[int, dict]:
    invocation = rel.stack.invoke(route.function, event)
    assert invocation.ok, invocation.error
    return invocation.result["statusCode"], json.loads(invocation.result["body"])


def unchanged(rel, target) -> None:
    row = rel.one("SELECT status, version, guest_count FROM bookings WHERE id = %s", (target["booking_id"],))
    assert row == {"status": "confirmed", "version": 1, "guest_count": 12}
    assert rel.query("SELECT 1 FROM conversations WHERE id = %s", (target["conversation_id"],)) == []
    assert rel.query("SELECT 1 FROM bookings WHERE event_start >= '2029-12-31'") == []


CASES = {
    "no authorizer": (None, 401),
    "empty authorizer": ({}, 401),
    "jwt without claims": ({"jwt": {"claims": {}, "scopes": ["x"]}}, 401),
    "claims without scope information": ({"jwt": {"claims": {"sub": "mallory"}, "scopes": None}}, 403),
    "claims with other scopes": ({"jwt": {"claims": {"sub": "m", "scope": "profile email"}, "scopes": None}}, 403),
    "authorizer not an object": ("admin", 401),
}


@pytest.mark.parametrize("route", PROTECTED, ids=lambda r: r.route_key)
@pytest.mark.parametrize("case", list(CASES))
def test_a_forged_or_incomplete_event_is_refused(rel, target, route, case):
    authorizer, expected = CASES[case]
    status, body = invoke(rel, route, forged(route, target, authorizer))
    assert status == expected, (case, body)
    assert body["error"]["code"] == ("unauthorized" if expected == 401 else "forbidden")
    unchanged(rel, target)


def test_a_route_key_with_another_routes_method_and_path_is_refused(rel, target):
    read = next(r for r in PROTECTED if r.route_key == "GET /bookings/{booking_id}")
    scopes = {
        "jwt": {"claims": {"sub": "reader", "scope": "bookings:read staff"}, "scopes": ["bookings:read", "staff"]}
    }
    bid = target["booking_id"]
    for method, path in (("POST", f"/bookings/{bid}/cancel"), ("PATCH", f"/bookings/{bid}"), ("GET", "/bookings")):
        status, body = invoke(rel, read, forged(read, target, scopes, method=method, path=path))
        assert status == 403, (method, path, body)
    unchanged(rel, target)
    # the same token through its own route works: the refusals above are the forgery's
    assert invoke(rel, read, forged(read, target, scopes))[0] == 200


def test_an_unknown_route_key_is_404(rel, target):
    route = PROTECTED[0]
    event = forged(route, target, {"jwt": {"claims": {"sub": "x", "scope": "ops:read"}, "scopes": None}})
    event["routeKey"] = event["requestContext"]["routeKey"] = "GET /admin"
    assert invoke(rel, route, event)[0] == 404
    unchanged(rel, target)


def test_a_booking_id_of_a_forged_event_reads_nothing(rel, target):
    read = next(r for r in PROTECTED if r.route_key == "GET /bookings/{booking_id}")
    status, body = invoke(rel, read, forged(read, target, None))
    assert status == 401 and "customer" not in json.dumps(body)
    missing = {**target, "booking_id": str(uuid.uuid4())}
    assert invoke(rel, read, forged(read, missing, None))[0] == 401
