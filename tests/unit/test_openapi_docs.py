"""The OpenAPI document the deployed docs function serves: generated from the code, kept fresh."""

from __future__ import annotations

import json

from local import openapi
from local.events import LambdaContext, http_event
from testkit.functions import load_function


def test_committed_document_matches_the_code():
    assert openapi.main(["--check"]) == 0, "functions/docs/openapi.json is stale: run `make openapi`"


def test_document_covers_every_route_with_its_scopes():
    doc = json.loads(openapi.DOCS_FILE.read_text())
    from local.routes import load_app

    for route in load_app(parameters={"ExposeApiDocs": "false"}).routes:
        operation = doc["paths"][route.path][route.method.lower()]
        assert "x-local-stub" not in operation, route.route_key  # documented by its resolver
        expected = [] if route.public else [{"bearerAuth": list(route.scopes)}]
        assert operation["security"] == expected, route.route_key


def test_docs_function_serves_document_and_swagger_ui():
    docs = load_function("docs")
    response = docs.lambda_handler(http_event("GET", "/openapi.json"), LambdaContext())
    assert response["statusCode"] == 200 and json.loads(response["body"])["paths"]
    page = docs.lambda_handler(http_event("GET", "/docs"), LambdaContext())
    assert page["statusCode"] == 200 and "SwaggerUIBundle" in page["body"]
    assert docs.lambda_handler(http_event("GET", "/nope"), LambdaContext())["statusCode"] == 404
