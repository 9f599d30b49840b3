"""The API's OpenAPI document, merged from each function's Powertools resolver (``app``) and the
template's routes (which give each operation its JWT scopes), and its Swagger UI page.

- ``merge()`` is used by the local gateway (parts fetched from its worker processes) and by
  ``generate()``, which loads every routed function in this process.
- ``swagger_page()`` and ``swagger_asset()``: the gateway's ``/docs``, with the Swagger UI that
  Powertools ships (no network needed).
- ``python -m local.openapi [--check]`` (``make openapi``) writes ``functions/docs/openapi.json``,
  the document the deployed ``DocsFunction`` serves when the ``ExposeApiDocs`` parameter is true
  (``--check`` fails when the committed file is stale; a test runs it).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from local.routes import Route, load_app
from local.runtime import load_module

ROOT = Path(__file__).resolve().parent.parent
DOCS_FILE = ROOT / "functions" / "docs" / "openapi.json"
TITLE = "Hibachi booking assistant API"
DESCRIPTION = (
    "Chat history, bookings and follow-ups of the hibachi-chef booking assistant. Every route but "
    "`GET /health` needs a bearer JWT with the scopes listed per operation. Strings are Unicode text: a NUL "
    "character, or a lone surrogate (a JSON `\\ud800`-`\\udfff` escape without its pair, which is not a "
    "character), is refused with 422 `validation_error`, as PostgreSQL's UTF-8 text cannot store either."
)
_METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
CONTACT = {"name": "Hibachi booking assistant team", "email": "api@hibachi.example"}
LICENSE = {"name": "Proprietary", "identifier": "LicenseRef-Proprietary"}
# Every tag an operation uses, defined once (linters and generators read them: a generated client's modules)
TAGS = [
    {"name": "bookings", "description": "Free start times, bookings, and finding, moving and cancelling them"},
    {"name": "conversations", "description": "The chat history and its emotion statistics"},
    {
        "name": "identities",
        "description": "Phones and emails proven in a chat: by its channel or a one-time code",
    },
    {"name": "mcp", "description": "The assistant's tools for LLM agents (Model Context Protocol)"},
    {"name": "auth", "description": "Authorization discovery (RFC 9728 protected-resource metadata)"},
    {"name": "ops", "description": "Health and operations details"},
]


def merge(
    parts: Iterable[dict[str, Any] | None],
    routes: Iterable[Route],
    *,
    title: str = TITLE,
    version: str = "dev",
    servers: list[dict[str, str]] | None = None,
    description: str = DESCRIPTION,
) -> dict[str, Any]:
    """One document from the resolvers' documents ``parts``; ``routes`` (``local.routes.Route``)
    add the security of each operation and stubs for routes no resolver documents."""
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": title,
            "version": version,
            "description": description,
            "contact": CONTACT,
            "license": LICENSE,
        },
        "servers": servers or [{"url": "/"}],
        "tags": TAGS,
        "paths": {},
        "components": {
            "schemas": {},
            "securitySchemes": {
                "bearerAuth": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "The HTTP API JWT authorizer; scopes per operation.",
                }
            },
        },
    }
    for part in parts:
        if part:
            _add_part(doc, part)
    for route in routes:
        if not route.is_default:
            _secure(doc["paths"].setdefault(route.path, {}), route)
    if not doc["components"]["schemas"]:
        del doc["components"]["schemas"]
    doc["paths"] = dict(sorted(doc["paths"].items()))
    return doc


def _resolver_document(handler_file: Path, layers: Iterable[Path]) -> dict[str, Any] | None:
    for folder in [handler_file.parent, *layers]:
        if str(folder) not in sys.path:
            sys.path.insert(0, str(folder))
    module = load_module(handler_file, f"openapi_{handler_file.parent.name}_{handler_file.stem}")
    resolver = getattr(module, "app", None)
    return json.loads(resolver.get_openapi_json_schema()) if resolver is not None else None


def _add_part(doc: dict[str, Any], part: dict[str, Any]) -> None:
    """A resolver's paths and components into ``doc``."""
    doc["openapi"] = part.get("openapi", doc["openapi"])
    for path, item in (part.get("paths") or {}).items():
        doc["paths"].setdefault(path, {}).update(item)
    components = part.get("components") or {}
    doc["components"]["schemas"].update(components.get("schemas") or {})
    for kind, values in components.items():
        if kind not in ("schemas", "securitySchemes") and isinstance(values, dict):
            doc["components"].setdefault(kind, {}).update(values)


def _secure(item: dict[str, Any], route: Route) -> None:
    """The route's security on its operations of the path ``item`` (a stub when none documents it)."""
    wanted = _METHODS if route.method == "ANY" else (route.method.lower(),)
    present = [m for m in wanted if m in item]
    if not present and route.method != "ANY":
        item[route.method.lower()] = {
            "summary": route.route_key,
            "operationId": f"{route.function}_{route.event_name}",
            "responses": {"default": {"description": "see the function"}},
            "x-local-stub": True,
        }
        present = [route.method.lower()]
    for m in present:
        item[m]["security"] = [] if route.public else [{"bearerAuth": list(route.scopes)}]


def swagger_page(doc: dict[str, Any], base: str = "/docs") -> str:
    """The Swagger UI page of ``doc``, its assets served under ``base``."""
    from aws_lambda_powertools.event_handler.openapi.swagger_ui import generate_swagger_html

    spec = json.dumps(doc).replace("</", "<\\/")
    return generate_swagger_html(
        spec, f"{base}/swagger-ui-bundle.min.js", f"{base}/swagger-ui.min.css", base, None, True
    )


def swagger_oauth2_redirect() -> str:
    from aws_lambda_powertools.event_handler.openapi.swagger_ui import generate_oauth2_redirect_html

    return generate_oauth2_redirect_html()


SWAGGER_ASSETS = {"swagger-ui-bundle.min.js": "application/javascript", "swagger-ui.min.css": "text/css"}


def swagger_asset(name: str) -> bytes | None:
    """One of ``SWAGGER_ASSETS``, as Powertools ships it (None for any other name)."""
    if name not in SWAGGER_ASSETS:
        return None
    spec = importlib.util.find_spec("aws_lambda_powertools")
    if spec is None or not spec.submodule_search_locations:
        return None
    asset = Path(next(iter(spec.submodule_search_locations))) / "event_handler" / "openapi" / "swagger_ui" / name
    return asset.read_bytes() if asset.is_file() else None


def generate(template: Path | str = ROOT / "template.yaml", version: str = "1.0") -> dict[str, Any]:
    """The document of the API the template deploys, docs routes excluded."""
    app = load_app(template, parameters={"ExposeApiDocs": "false"})
    routes = [r for r in app.routes if not r.is_default]
    functions = dict.fromkeys(r.function for r in routes)
    parts = [_resolver_document(app.functions[f].handler_file, app.functions[f].layers) for f in functions]
    return merge(parts, routes, version=version)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="fail if the committed document is stale")
    parser.add_argument("--out", type=Path, default=DOCS_FILE)
    args = parser.parse_args(argv)
    text = json.dumps(generate(), indent=2, sort_keys=False) + "\n"
    if args.check:
        current = args.out.read_text(encoding="utf-8") if args.out.exists() else ""
        if current != text:
            print(f"{args.out} is stale: run `make openapi`", file=sys.stderr)
            return 1
        return 0
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
