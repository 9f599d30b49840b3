"""The local HTTP API: an HTTP/1.1 server on 127.0.0.1 that behaves like an API Gateway HTTP API
with a JWT authorizer and Lambda proxy integrations (payload format 2.0).

* Routes come from ``template.yaml`` (``local.routes``), the most specific first; no match, or a
  method no route has (HTTP APIs have no 405): ``404 {"message":"Not Found"}``. A body over 10 MB:
  ``413``. Protected routes check the bearer token as the JWT authorizer does (``local.auth``),
  before any function runs; like AWS's, the ``www-authenticate`` header has no
  ``resource_metadata`` (docs/ARCHITECTURE.md, "Authorization discovery").
* The event is built by ``local.events.http_event``, with the headers API Gateway adds
  (``x-forwarded-*``, ``x-amzn-trace-id``) and a unique ``requestId`` (also ``apigw-requestid``).
* The function runs in its worker processes (``local.runtime``); its result becomes the response
  as API Gateway makes it (``lambda_result_to_response``); a handler error, a timeout or a
  malformed result is ``500``, an integration slower than 30 s ``503``.

Local extras (a template route with the same path wins): ``GET /openapi.json``, the document merged
from each function's Powertools resolver (``local.openapi``; ``?refresh=1`` rebuilds it);
``GET /docs``, Swagger UI from Powertools' own assets; the issuer's JWKS and OpenID configuration.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import secrets
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlsplit

from local import openapi
from local.events import http_event

if TYPE_CHECKING:
    from local.auth import JwtAuthority
    from local.routes import App, Route
    from local.runtime import FunctionRegistry

log = logging.getLogger("local.gateway")

MAX_PAYLOAD = 10 * 1024 * 1024
INTEGRATION_TIMEOUT = 30.0


def _json_body(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


@dataclass
class Response:
    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    @classmethod
    def message(cls, status: int, message: str, headers: dict[str, str] | None = None) -> Response:
        h = [("content-type", "application/json")]
        h += [(k, v) for k, v in (headers or {}).items() if k.lower() != "content-type"]
        return cls(status, h, _json_body({"message": message}))

    def header(self, name: str) -> str | None:
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None


def _header_value(value: object) -> str:
    """A header value of a function's result as API Gateway writes it."""
    if isinstance(value, str):
        return value
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value).lower() if isinstance(value, bool) else str(value)


def _result_headers(result: dict[str, Any]) -> list[tuple[str, str]]:
    headers = [(str(k), _header_value(v)) for k, v in (result.get("headers") or {}).items() if v is not None]
    for k, values in (result.get("multiValueHeaders") or {}).items():
        headers.extend((str(k), str(v)) for v in values or [])
    headers.extend(("set-cookie", str(cookie)) for cookie in result.get("cookies") or [])
    return headers


def _result_body(result: dict[str, Any]) -> bytes:
    body = result.get("body")
    if body is None:
        return b""
    if not isinstance(body, str):
        raise TypeError("body must be a string")
    return base64.b64decode(body) if result.get("isBase64Encoded") else body.encode("utf-8")


def lambda_result_to_response(result: Any) -> Response:
    """Turn a payload-2.0 function result into the HTTP response, as API Gateway does."""
    if isinstance(result, dict) and "statusCode" in result:
        try:
            status = int(result["statusCode"])
            if not 100 <= status <= 599:
                raise ValueError(status)
            return Response(status, _result_headers(result), _result_body(result))
        except (TypeError, ValueError, AttributeError) as exc:
            log.error("malformed Lambda response (%s): %r", exc, result)
            return Response.message(500, "Internal Server Error")
    body = result if isinstance(result, str) else json.dumps(result)
    return Response(200, [("content-type", "application/json")], body.encode("utf-8"))


def _request_id() -> str:
    return base64.b64encode(secrets.token_bytes(10)).decode()  # API Gateway's 16-character style


def _trace_id() -> str:
    return f"Root=1-{int(time.time()):08x}-{secrets.token_hex(12)}"


@dataclass
class _Request:
    """One request as the gateway handles it; ``note`` is what its access log line adds."""

    method: str
    path: str
    query: str
    headers: list[tuple[str, str]]
    body: bytes
    client: tuple[str, int]
    request_id: str
    note: str = ""

    def forwarded_headers(self, port: int) -> list[tuple[str, str]]:
        """The request's headers and those API Gateway adds (unless the client sent them)."""
        added = {
            "x-forwarded-for": self.client[0],
            "x-forwarded-port": str(port),
            "x-forwarded-proto": "http",
            "x-amzn-trace-id": _trace_id(),
            **({"content-length": str(len(self.body))} if self.body else {}),
        }
        present = {name.lower() for name, _ in self.headers}
        return [*self.headers, *((k, v) for k, v in added.items() if k not in present)]


class Gateway:
    """The local HTTP API for an app (``local.routes.App``) and its functions
    (``local.runtime.FunctionRegistry``)."""

    def __init__(
        self,
        app: App,
        registry: FunctionRegistry,
        authority: JwtAuthority | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 3000,
        api_id: str = "local",
        stage: str = "$default",
        max_payload: int = MAX_PAYLOAD,
        integration_timeout: float = INTEGRATION_TIMEOUT,
        title: str = "Hibachi API",
        version: str | None = None,
    ):
        self.app = app
        self.registry = registry
        self._authority = authority
        self.host = host
        self.port = port
        self.api_id = api_id
        self.stage = stage
        self.max_payload = max_payload
        self.integration_timeout = integration_timeout
        self.title = title
        self.version = version or os.environ.get("APP_VERSION", "dev")
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._openapi: dict[str, Any] | None = None
        self._openapi_lock = threading.Lock()

    # lifecycle ------------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def authority(self) -> JwtAuthority:
        if self._authority is None:
            from local.auth import JwtAuthority, default_issuer

            self._authority = JwtAuthority(issuer=default_issuer(self.port))
        return self._authority

    def bind(self) -> int:
        """Bind the socket (port 0: a free one) and return the port; ``start`` serves it."""
        if self._server is None:
            handler = type("Handler", (_Handler,), {"gateway": self})
            server = _Server((self.host, self.port), handler)
            server.daemon_threads = True
            self._server = server
            self.port = server.server_address[1]
        return self.port

    def start(self) -> str:
        self.bind()
        if self._thread is None and self._server is not None:
            self._thread = threading.Thread(
                target=self._server.serve_forever, kwargs={"poll_interval": 0.2}, name="gateway", daemon=True
            )
            self._thread.start()
        return self.url

    def stop(self) -> None:
        if self._server is not None:
            if self._thread is not None:
                self._server.shutdown()
                self._thread.join(10)
            self._server.server_close()
            self._server = None
            self._thread = None

    # request handling -----------------------------------------------------------------------------
    def handle(
        self,
        method: str,
        target: str,
        headers: list[tuple[str, str]],
        body: bytes,
        client: tuple[str, int] = ("127.0.0.1", 0),
    ) -> Response:
        """One request (``target`` is the request line's path and query) -> the response."""
        started = time.monotonic()
        split = urlsplit(target)
        request = _Request(method, split.path or "/", split.query, headers, body, client, _request_id())
        response = Response.message(500, "Internal Server Error")
        try:
            response = self._route(request)
        except Exception:
            log.exception("%s %s: gateway error", method, request.path)
        finally:  # the access log: one line per request
            (log.warning if response.status >= 500 else log.info)(
                "%s %s -> %d %s(%.1f ms)",
                method,
                target,
                response.status,
                f"{request.note} " if request.note else "",
                (time.monotonic() - started) * 1000,
            )
        response.headers.append(("apigw-requestid", request.request_id))
        return response

    def _route(self, request: _Request) -> Response:
        """The local extras, 404 and 413, the authorizer, then the function."""
        match = self.app.routes.match(request.method, request.path)
        if request.method in ("GET", "HEAD") and (match is None or match[0].is_default or "+}" in match[0].path):
            extra = self._extras(request.path, request.query)
            if extra is not None:
                return extra
        if match is None:
            return Response.message(404, "Not Found")
        if len(request.body) > self.max_payload:
            return Response.message(413, "Request Entity Too Large")
        route, params = match
        authorizer = None
        if not route.public:
            from local.auth import AuthError

            header = next((v for k, v in request.headers if k.lower() == route.identity_header), None)
            try:
                authorizer = self.authority.authorize(header, route.scopes)
            except AuthError as exc:
                request.note = f"authorizer: {exc.description}"
                return Response(exc.status, list(exc.headers.items()), _json_body(exc.body))
        event = http_event(
            request.method,
            request.path,
            route_key=route.route_key,
            path_parameters=params,
            query=request.query,
            headers=request.forwarded_headers(self.port),
            body=request.body,
            authorizer=authorizer,
            source_ip=request.client[0],
            request_id=request.request_id,
            api_id=self.api_id,
            stage=self.stage,
            domain=f"{self.host}:{self.port}",
        )
        return self._invoke(route, event, request)

    def _invoke(self, route: Route, event: dict[str, Any], request: _Request) -> Response:
        """The function's answer as API Gateway gives it: 500 for an error, 503 past 30 s."""
        pool = self.registry.pool(route.function)
        timeout = min(float(pool.function.timeout), self.integration_timeout)
        invocation = pool.invoke(event, request_id=str(uuid.uuid4()), timeout=timeout)
        cold = " (cold start)" if invocation.cold_start else ""
        request.note = f"{route.function} {invocation.duration_ms:.1f} ms{cold}"
        if invocation.ok:
            return lambda_result_to_response(invocation.result)
        err = invocation.error or {}
        request.note += f" {err.get('errorType')}: {err.get('errorMessage')}"
        if invocation.timed_out and pool.function.timeout > self.integration_timeout:
            return Response.message(503, "Service Unavailable")
        return Response.message(500, "Internal Server Error")

    # local extras ---------------------------------------------------------------------------------
    def _extras(self, path: str, query: str) -> Response | None:
        params = dict(parse_qsl(query))
        issuer_path = urlsplit(self.authority.issuer).path.rstrip("/")
        if path in ("/.well-known/jwks.json", f"{issuer_path}/.well-known/jwks.json"):
            return Response(200, [("content-type", "application/json")], _json_body(self.authority.jwks()))
        if path == f"{issuer_path}/.well-known/openid-configuration":
            doc = self.authority.openid_configuration(f"{self.authority.issuer}/.well-known/jwks.json")
            return Response(200, [("content-type", "application/json")], _json_body(doc))
        if path == "/openapi.json":
            return Response(
                200,
                [("content-type", "application/json")],
                json.dumps(self.openapi(refresh=params.get("refresh") == "1"), indent=2).encode(),
            )
        if path in ("/docs", "/docs/"):
            return self._docs(params)
        asset = openapi.swagger_asset(path.removeprefix("/docs/")) if path.startswith("/docs/") else None
        if asset is not None:
            ctype = openapi.SWAGGER_ASSETS[path.removeprefix("/docs/")]
            return Response(200, [("content-type", ctype), ("cache-control", "max-age=86400")], asset)
        return None

    def _docs(self, params: dict[str, str]) -> Response:
        if params.get("format") == "json":
            return Response(200, [("content-type", "application/json")], _json_body(self.openapi()))
        if params.get("format") == "oauth2-redirect":
            return Response(200, [("content-type", "text/html")], openapi.swagger_oauth2_redirect().encode())
        html = openapi.swagger_page(self.openapi())
        return Response(200, [("content-type", "text/html; charset=utf-8")], html.encode())

    def openapi(self, refresh: bool = False) -> dict[str, Any]:
        """The merged document; kept once every function answered (a function that failed, e.g.
        not written yet, is asked again on the next request)."""
        with self._openapi_lock:
            if self._openapi is not None and not refresh:
                return self._openapi
            doc, complete = self._build_openapi()
            if complete:
                self._openapi = doc
            return doc

    def _build_openapi(self) -> tuple[dict[str, Any], bool]:
        functions = list(dict.fromkeys(r.function for r in self.app.routes))
        failed: list[str] = []

        def fetch(fid: str) -> dict[str, Any] | None:
            try:
                text = self.registry.pool(fid).openapi()
                return json.loads(text) if text else None
            except Exception as exc:  # noqa: BLE001 - one broken function must not hide the others
                log.warning("openapi of %s failed: %s", fid, exc)
                failed.append(fid)
                return None

        with ThreadPoolExecutor(max_workers=max(1, len(functions))) as ex:
            parts = list(ex.map(fetch, functions))
        doc = openapi.merge(
            parts,
            self.app.routes,
            title=self.title,
            version=self.version,
            servers=[{"url": self.url}],
            description=openapi.DESCRIPTION + " Locally, get a token with `python -m local.token`.",
        )
        if failed:
            doc["x-local-failed-functions"] = sorted(failed)
        return doc, not failed


class _Server(ThreadingHTTPServer):
    # socketserver's listen backlog is 5: a burst of concurrent clients (a load or race test)
    # overflowed it and connections were reset before the gateway saw them; API Gateway takes them
    request_queue_size = 256


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "local-apigw"
    # the headers and the body go out in two writes: with Nagle's algorithm on, a kept-alive
    # connection waits for the client's delayed ACK (~40 ms) before the body leaves
    disable_nagle_algorithm = True
    gateway: Gateway  # set by Gateway.bind

    def version_string(self) -> str:
        return self.server_version

    def log_message(self, fmt: str, *args: Any) -> None:  # access log through logging, not stderr
        log.debug("%s - %s", self.address_string(), fmt % args)

    def _read_body(self) -> bytes | None:
        """The request body; None when it is over the limit (the connection is then closed)."""
        limit = self.gateway.max_payload
        if "chunked" in (self.headers.get("transfer-encoding") or "").lower():
            chunks: list[bytes] = []
            total = 0
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                total += size
                if total > limit:
                    self.close_connection = True
                    return None
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
        length = int(self.headers.get("content-length") or 0)
        if length > limit:
            self.close_connection = True
            if length <= 4 * limit:  # read it away, so the client sees the 413 and not a reset
                remaining = length
                while remaining > 0:
                    chunk = self.rfile.read(min(remaining, 1 << 20))
                    if not chunk:
                        break
                    remaining -= len(chunk)
            return None
        return self.rfile.read(length) if length else b""

    def _dispatch(self) -> None:
        method = self.command
        body = self._read_body()
        if body is None:
            response = Response.message(413, "Request Entity Too Large")
            log.info("%s %s -> 413 (body over %d bytes)", method, self.path, self.gateway.max_payload)
        else:
            headers = [(k, v) for k, v in self.headers.items() if k.lower() != "transfer-encoding"]
            response = self.gateway.handle(method, self.path, headers, body, self.client_address[:2])
        if not response.header("apigw-requestid"):  # 413 before routing
            response.headers.append(("apigw-requestid", _request_id()))
        self.send_response(
            response.status,
            HTTPStatus(response.status).phrase if response.status in HTTPStatus._value2member_map_ else "",
        )
        for k, v in response.headers:
            if k.lower() in ("content-length", "transfer-encoding", "connection"):
                continue
            self.send_header(k, v)
        self.send_header("content-length", str(len(response.body)))
        if self.close_connection:
            self.send_header("connection", "close")
        self.end_headers()
        if method != "HEAD" and response.body:
            self.wfile.write(response.body)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = do_HEAD = _dispatch  # noqa: N815 - http.server's handler method names

    def __getattr__(self, name: str) -> Any:
        # any other method (TRACE, QUERY, ...) is routed too, so it gets the HTTP API's answer to a
        # method no route has, 404 {"message":"Not Found"}, not http.server's 501 HTML page
        if name.startswith("do_"):
            return self._dispatch
        raise AttributeError(name)
