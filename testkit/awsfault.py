"""An HTTP proxy in front of moto that fails EventBridge's PutEvents on demand, and records what
EventBridge took: the fault injection of the event publishing tests and the chaos run.

Everything else (SQS, SNS, Scheduler) passes through untouched. While ``fail_put_events`` is set,
a PutEvents call gets what EventBridge answers in an outage: mode ``"error"`` an HTTP 500
``InternalException`` (the whole call fails), mode ``"partial"`` a 200 whose every other entry
failed (``FailedEntryCount``, per-entry ``ErrorCode`` ``InternalFailure``; the others are forwarded
to moto and really published). ``published`` lists, in the order moto took them, the entries that
were published: (detail-type, detail as parsed JSON).

    with AwsFaultProxy(moto.endpoint_url) as proxy:   # point AWS_ENDPOINT_URL at proxy.url
        proxy.fail_put_events = True
        ...
"""

from __future__ import annotations

import http.client
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

PUT_EVENTS = "AWSEvents.PutEvents"


class AwsFaultProxy:
    def __init__(self, upstream: str | None = None, host: str = "127.0.0.1", port: int = 0):
        self.upstream = ("127.0.0.1", 0)
        if upstream:
            self.set_upstream(upstream)
        self.fail_put_events = False
        self.mode = "error"
        self.published: list[tuple[str, dict[str, Any]]] = []
        self.refused_calls = 0
        self.refused_entries = 0
        self.calls = 0
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer((host, port), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="aws-fault-proxy", daemon=True)

    def set_upstream(self, upstream: str) -> None:
        """moto's endpoint (may be set after ``start``: a stack that needs this proxy's URL first)."""
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> AwsFaultProxy:
        self._thread.start()
        return self

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> AwsFaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _forward(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        conn = http.client.HTTPConnection(*self.upstream, timeout=30)
        try:
            headers = {k: v for k, v in headers.items() if k.lower() not in ("host", "content-length", "connection")}
            headers["content-length"] = str(len(body))
            conn.request(method, path, body=body, headers=headers)
            response = conn.getresponse()
            return response.status, response.getheaders(), response.read()
        finally:
            conn.close()

    def _put_events(self, path: str, headers: dict[str, str], body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        request = json.loads(body or b"{}")
        entries = request.get("Entries") or []
        with self._lock:
            self.calls += 1
            failing, mode = self.fail_put_events, self.mode
        if failing and mode == "error":
            return self._refuse_call()
        keep = [i for i in range(len(entries)) if not failing or i % 2 == 1]
        answers: list[dict[str, Any]] = [
            {"ErrorCode": "InternalFailure", "ErrorMessage": "injected"} for _ in range(len(entries))
        ]
        if keep:
            upstream_error = self._publish(path, headers, request, keep, answers)
            if upstream_error is not None:
                return upstream_error
        failed = sum(1 for a in answers if not a.get("EventId"))
        with self._lock:
            self.refused_entries += failed if failing else 0
        raw = json.dumps({"FailedEntryCount": failed, "Entries": answers}).encode()
        return 200, [("content-type", "application/x-amz-json-1.1")], raw

    def _refuse_call(self) -> tuple[int, list[tuple[str, str]], bytes]:
        """EventBridge down: the whole PutEvents call fails with HTTP 500."""
        with self._lock:
            self.refused_calls += 1
        answer = {"__type": "InternalException", "message": "injected: EventBridge is down"}
        return 500, [("content-type", "application/x-amz-json-1.1")], json.dumps(answer).encode()

    def _publish(
        self,
        path: str,
        headers: dict[str, str],
        request: dict[str, Any],
        keep: list[int],
        answers: list[dict[str, Any]],
    ) -> tuple[int, list[tuple[str, str]], bytes] | None:
        """Forward the entries numbered ``keep`` to moto; put its answer of each in ``answers`` and record
        the published ones. moto's answer when it is not a 200, else None."""
        entries = request.get("Entries") or []
        forwarded = {**request, "Entries": [entries[i] for i in keep]}
        status, response_headers, raw = self._forward("POST", path, headers, json.dumps(forwarded).encode())
        if status != 200:
            return status, response_headers, raw
        taken = json.loads(raw).get("Entries") or []
        with self._lock:
            for i, answer in zip(keep, taken, strict=False):
                answers[i] = answer
                if answer.get("EventId"):
                    entry = entries[i]
                    self.published.append((entry.get("DetailType", ""), json.loads(entry.get("Detail") or "{}")))
        return None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                headers = dict(self.headers.items())
                if self.headers.get("x-amz-target") == PUT_EVENTS:
                    status, response_headers, raw = proxy._put_events(self.path, headers, body)
                else:
                    status, response_headers, raw = proxy._forward(self.command, self.path, headers, body)
                self.send_response(status)
                for name, value in response_headers:
                    if name.lower() not in ("content-length", "connection", "transfer-encoding", "server", "date"):
                        self.send_header(name, value)
                self.send_header("content-length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _serve  # noqa: N815 - http.server's names

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
                return

        return Handler
