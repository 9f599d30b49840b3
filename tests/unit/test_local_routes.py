"""local.routes: the SAM template read into functions and an API Gateway-like route table."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from local.routes import Route, RouteTable, load_app, load_template

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "http" / "fixtures" / "template.yaml"


@pytest.fixture(scope="module")
def app():
    return load_app(FIXTURE)


def test_short_tags_are_read_as_plain_long_form(tmp_path):
    tpl = tmp_path / "t.yaml"
    tpl.write_text(
        textwrap.dedent("""
        Resources:
          X:
            Type: Test
            Properties:
              A: !Ref Param
              B: !GetAtt Queue.Arn
              C: !Sub "${AWS::StackName}-x"
              D: !If [Cond, !Ref A, !Ref AWS::NoValue]
              E: !Select [0, !Split [",", "a,b"]]
              F: !Join ["", [a, !Ref B]]
              G: !Equals [!Ref P, "true"]
              H: !Condition Cond
              I: !GetAZs ""
    """)
    )
    props = load_template(tpl)["Resources"]["X"]["Properties"]
    assert props["A"] == {"Ref": "Param"}
    assert props["B"] == {"Fn::GetAtt": ["Queue", "Arn"]}
    assert props["C"] == {"Fn::Sub": "${AWS::StackName}-x"}
    assert props["D"] == {"Fn::If": ["Cond", {"Ref": "A"}, {"Ref": "AWS::NoValue"}]}
    assert props["E"] == {"Fn::Select": [0, {"Fn::Split": [",", "a,b"]}]}
    assert props["F"] == {"Fn::Join": ["", ["a", {"Ref": "B"}]]}
    assert props["G"] == {"Fn::Equals": [{"Ref": "P"}, "true"]}
    assert props["H"] == {"Condition": "Cond"}
    assert props["I"] == {"Fn::GetAZs": ""}


def test_functions_merge_globals_and_resolve_paths(app):
    echo = app.functions["EchoFunction"]
    assert echo.code_uri == (FIXTURE.parent / "functions" / "echo").resolve()
    assert echo.handler == "app.lambda_handler" and echo.handler_name == "lambda_handler"
    assert echo.handler_file == echo.code_uri / "app.py"
    assert echo.timeout == 2 and echo.memory_size == 256  # own Timeout, Globals' MemorySize
    assert echo.layers == ((FIXTURE.parent / "layer").resolve(),)
    worker = app.functions["WorkerFunction"]
    assert worker.function_name == "fixture-worker" and worker.timeout == 5
    assert app.function_for("fixture-worker") is worker and app.function_for("WorkerFunction") is worker


def test_environment_keeps_literals_and_parameter_defaults_only(app):
    env = app.functions["EchoFunction"].environment
    assert env["GREETING"] == "hello"  # !Ref to a parameter: its Default
    assert env["STAGE_NAME"] == "local" and env["REGION_NAME"] == "us-east-1"
    assert "QUEUE_ARN" not in env and "TOPIC" not in env  # need a deployed stack
    assert load_app(FIXTURE, parameters={"Greeting": "hi"}).functions["EchoFunction"].environment["GREETING"] == "hi"


def test_route_table_from_http_api_events(app):
    by_key = {r.route_key: r for r in app.routes}
    assert set(by_key) == {
        "GET /health",
        "GET /items/{item_id}",
        "POST /items/{item_id}",
        "ANY /echo/{proxy+}",
        "GET /echo/literal",
        "GET /special/{kind}",
        "GET /whoami",
    }
    assert by_key["GET /health"].public and by_key["GET /health"].scopes == ()
    assert by_key["GET /items/{item_id}"].scopes == ("items:read",)  # lower-case method normalised
    assert not by_key["GET /items/{item_id}"].public and by_key["GET /items/{item_id}"].authorizer == "Jwt"
    assert by_key["POST /items/{item_id}"].scopes == ("items:write", "items:admin")
    assert by_key["POST /items/{item_id}"].authorizer == "Jwt"  # the API's DefaultAuthorizer
    whoami = by_key["GET /whoami"]
    assert not whoami.public and whoami.scopes == ()  # any valid token
    assert all(r.function == "EchoFunction" for r in app.routes)
    assert whoami.identity_header == "authorization"


def test_events_other_than_http(app):
    [(fn, name, props)] = app.sqs_consumers()
    assert fn.logical_id == "WorkerFunction" and name == "Jobs" and props["BatchSize"] == 10
    assert props["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    [(fn, name, props)] = app.schedules()
    assert name == "Reconcile" and props["Input"] == '{"task": "reconcile"}'


@pytest.mark.parametrize(
    ("method", "path", "key", "params"),
    [
        ("GET", "/health", "GET /health", {}),
        ("GET", "/items/42", "GET /items/{item_id}", {"item_id": "42"}),
        ("POST", "/items/42", "POST /items/{item_id}", {"item_id": "42"}),
        ("GET", "/items/a%20b", "GET /items/{item_id}", {"item_id": "a b"}),
        ("GET", "/echo/literal", "GET /echo/literal", {}),  # a literal beats a greedy variable
        ("POST", "/echo/literal", "ANY /echo/{proxy+}", {"proxy": "literal"}),  # ...for its method only
        ("DELETE", "/echo/a/b/c", "ANY /echo/{proxy+}", {"proxy": "a/b/c"}),
        ("GET", "/special/string", "GET /special/{kind}", {"kind": "string"}),
    ],
)
def test_match(app, method, path, key, params):
    route, got = app.routes.match(method, path)
    assert route.route_key == key and got == params


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("DELETE", "/health"),  # no 405 in HTTP APIs: a miss
        ("GET", "/nope"),
        ("GET", "/items"),
        ("GET", "/items/"),
        ("GET", "/items/1/extra"),
        ("GET", "/echo"),
        ("GET", "/echo/"),
        ("GET", "/health/"),
    ],
)
def test_no_match(app, method, path):
    assert app.routes.match(method, path) is None


def test_specificity_order_and_default_route():
    table = RouteTable(
        [
            Route("ANY", "$default", "Default"),
            Route("ANY", "/{proxy+}", "Greedy"),
            Route("GET", "/pets/{id}", "ById"),
            Route("ANY", "/pets/{id}", "AnyById"),
            Route("GET", "/pets/dog", "Dog"),
        ]
    )
    assert table.match("GET", "/pets/dog")[0].function == "Dog"
    assert table.match("GET", "/pets/cat") == (table.routes[1], {"id": "cat"})
    assert table.match("PUT", "/pets/cat")[0].function == "AnyById"
    assert table.match("GET", "/a/b")[0].function == "Greedy"
    assert table.match("GET", "/")[0].function == "Default"
    assert Route("ANY", "$default", "D").route_key == "$default"


def test_conditions_drop_resources_with_parameter_defaults(tmp_path):
    (tmp_path / "fn").mkdir()
    tpl = tmp_path / "template.yaml"
    tpl.write_text(
        textwrap.dedent("""
        Parameters:
          Expose: {Type: String, Default: "false"}
          Ids: {Type: CommaDelimitedList, Default: ""}
        Conditions:
          DoExpose: !Equals [!Ref Expose, "true"]
          HasIds: !Not [!Equals [!Join ["", !Ref Ids], ""]]
          Both: !And [!Condition DoExpose, !Condition HasIds]
          Unknown: !Equals [!GetAtt X.Y, "z"]
        Resources:
          Always:
            Type: AWS::Serverless::Function
            Properties:
              {CodeUri: fn/, Handler: app.handler, Events: {A: {Type: HttpApi, Properties: {Path: /a, Method: GET}}}}
          Exposed:
            Type: AWS::Serverless::Function
            Condition: DoExpose
            Properties:
              {CodeUri: fn/, Handler: app.handler, Events: {B: {Type: HttpApi, Properties: {Path: /b, Method: GET}}}}
          WithIds:
            Type: AWS::Serverless::Function
            Condition: Both
            Properties: {CodeUri: fn/, Handler: app.handler}
          Maybe:
            Type: AWS::Serverless::Function
            Condition: Unknown
            Properties: {CodeUri: fn/, Handler: app.handler, Events: {C: {Type: HttpApi}}}
    """)
    )
    app = load_app(tpl)
    assert set(app.functions) == {"Always", "Maybe"}  # an unknown condition counts as true
    assert {r.route_key for r in app.routes} == {"GET /a", "$default"}
    assert app.routes.match("GET", "/a")[0].public  # no authorizer at all: public
    assert app.routes.match("POST", "/anything")[0].function == "Maybe"
    exposed = load_app(tpl, parameters={"Expose": "true", "Ids": "rtb-1"})
    assert set(exposed.functions) == {"Always", "Exposed", "WithIds", "Maybe"}


def test_the_real_template_has_the_documented_routes():
    app = load_app(ROOT / "template.yaml")
    routes = {r.route_key: r for r in app.routes}
    expected = {
        "POST /conversations/{conversation_id}/messages": ("StoreMessageFunction", ("messages:write",)),
        "GET /conversations/{conversation_id}": ("StoreMessageFunction", ("conversations:read",)),
        "GET /conversations/{conversation_id}/messages": ("StoreMessageFunction", ("conversations:read",)),
        "POST /bookings": ("CreateBookingFunction", ("bookings:write",)),
        "POST /bookings/{booking_id}/cancel": ("CreateBookingFunction", ("bookings:write",)),
        "PATCH /bookings/{booking_id}": ("CreateBookingFunction", ("bookings:write",)),
        "GET /bookings/{booking_id}": ("CreateBookingFunction", ("bookings:read",)),
        "GET /health/details": ("HealthFunction", ("ops:read",)),
    }
    for key, (function, scopes) in expected.items():
        assert routes[key].function == function and routes[key].scopes == scopes, key
    assert routes["GET /health"].public
    assert app.sqs_consumers()[0][0].logical_id == "FollowupWorkerFunction"
    for fn in app.functions.values():
        assert fn.handler_file.name == "app.py" and fn.handler_file.parent.parent == ROOT / "functions"
        assert (ROOT / "layers" / "common") in fn.layers
