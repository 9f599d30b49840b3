"""SQS over its JSON protocol: one signed HTTPS POST per call, no boto3.

The API functions send one job per write request. With boto3 that send cost ~190 ms on the first
request (importing boto3 and building the client) and ~1.8 ms of CPU on every request (botocore
building, signing and parsing it). SQS speaks JSON (``application/x-amz-json-1.0``, the action in
``X-Amz-Target``), so a ``SendMessage`` is a small JSON document signed with SigV4
(``hibachi.sigv4``, byte for byte botocore's signature) on a kept-alive connection.

- Endpoint: ``settings.aws_endpoint_url`` (``AWS_ENDPOINT_URL``: the local stack's moto), else
  ``https://sqs.<region>.amazonaws.com``.
- Credentials: the environment's (Lambda sets them; read per call), else botocore's chain.
- One connection per thread, reopened when the server closed it while we were idle (checked
  without a round trip) or when a call fails.
- Retries (``attempts`` in all): a connection error, a 5xx, or throttling, with a short jittered
  pause for the last two. A read timeout after the request was written may mean the message was
  sent: the retry then sends it again, which is fine for at-least-once jobs (every job is idempotent).
"""

from __future__ import annotations

import http.client
import json
import random
import select
import ssl
import threading
import time
from typing import Any
from urllib.parse import urlsplit

from hibachi import sigv4

CONTENT_TYPE = "application/x-amz-json-1.0"
THROTTLING = frozenset({"ThrottlingException", "RequestThrottled", "AWS.SimpleQueueService.RequestThrottled"})


class SqsError(Exception):
    """An SQS error answer (``code`` as botocore would report it) or a transport failure (``code`` '')."""

    def __init__(self, code: str, message: str, status: int | None = None):
        super().__init__(f"{code or 'transport error'}: {message}" if message else code)
        self.code = code
        self.message = message
        self.status = status


class _Local(threading.local):
    conn: http.client.HTTPConnection | None = None


_ssl_context: ssl.SSLContext | None = None


def _tls() -> ssl.SSLContext:
    global _ssl_context
    if _ssl_context is None:
        _ssl_context = ssl.create_default_context()
    return _ssl_context


class Sqs:
    def __init__(
        self,
        region: str,
        endpoint_url: str | None = None,
        *,
        connect_timeout: float = 1.0,
        read_timeout: float = 2.0,
        attempts: int = 2,
    ):
        self.region = region
        self.endpoint_url = (endpoint_url or f"https://sqs.{region}.amazonaws.com").rstrip("/")
        parts = urlsplit(self.endpoint_url)
        self._https = parts.scheme == "https"
        self._host = parts.hostname or ""
        self._port = parts.port
        self._url = f"{self.endpoint_url}/"
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.attempts = max(1, attempts)
        self._local = _Local()
        self._all: set[http.client.HTTPConnection] = set()  # every thread's, for close_all()
        self._all_lock = threading.Lock()

    def prepare(self) -> Sqs:
        """Do now what the first call would (the TLS context: loading the CA bundle), so that a
        caller with a time budget (a health probe) spends it on SQS, not on us. Returns ``self``."""
        if self._https:
            _tls()
        return self

    # -- the connection ---------------------------------------------------------------------------
    def _connection(self) -> http.client.HTTPConnection:
        conn = self._local.conn
        if conn is not None and conn.sock is not None:
            try:
                readable, _, _ = select.select([conn.sock], [], [], 0)
            except (OSError, ValueError):
                readable = [conn.sock]
            if not readable:  # idle and still open: reuse (a readable idle socket was closed by the server)
                return conn
            conn.close()
        if conn is None:
            if self._https:
                conn = http.client.HTTPSConnection(self._host, self._port, timeout=self.connect_timeout, context=_tls())
            else:
                conn = http.client.HTTPConnection(self._host, self._port, timeout=self.connect_timeout)
            self._local.conn = conn
            with self._all_lock:
                self._all.add(conn)
        conn.timeout = self.connect_timeout
        conn.connect()
        if conn.sock is not None:
            conn.sock.settimeout(self.read_timeout)
        return conn

    def close(self) -> None:
        """Close this thread's connection (the next call opens a new one)."""
        conn = self._local.conn
        self._local.conn = None
        if conn is not None:
            conn.close()
            with self._all_lock:
                self._all.discard(conn)

    def close_all(self) -> None:
        """Close every thread's connection (each thread reconnects on its next call)."""
        with self._all_lock:
            found = list(self._all)
        for conn in found:
            conn.close()  # its thread sees ``sock is None`` and connects again

    # -- calls --------------------------------------------------------------------------------------
    def call(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Call ``action`` (``SendMessage``, ...) with ``payload``; the JSON answer, or ``SqsError``."""
        body = json.dumps(payload, separators=(",", ":")).encode()
        headers = {"Content-Type": CONTENT_TYPE, "X-Amz-Target": f"AmazonSQS.{action}"}
        last = SqsError("", "no attempt made")
        for attempt in range(self.attempts):
            if attempt and last.status is not None:  # throttled or 5xx: back off a little
                time.sleep(random.uniform(0, 0.05 * 2**attempt))  # noqa: S311 - jitter, not security
            signed = sigv4.sign("POST", self._url, headers, body, sigv4.resolve_credentials(), "sqs", self.region)
            try:
                conn = self._connection()
                conn.request("POST", "/", body=body, headers={**signed, "User-Agent": "hibachi-sqs"})
                response = conn.getresponse()
                status, data = response.status, response.read()
                if response.will_close:
                    conn.close()
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                last = SqsError("", f"{type(exc).__name__}: {exc}")
                continue
            if 200 <= status < 300:
                answer = json.loads(data) if data else {}
                return answer if isinstance(answer, dict) else {}
            last = _error(status, data, response.getheader("x-amzn-query-error"))
            if status < 500 and last.code not in THROTTLING:
                raise last
        raise last

    def send_message(self, queue_url: str, message: dict[str, Any]) -> dict[str, Any]:
        """``message``: ``MessageBody`` and optionally ``MessageAttributes`` (``jobs.Job.to_message``)."""
        return self.call("SendMessage", {"QueueUrl": queue_url, **message})

    def send_message_batch(self, queue_url: str, entries: list[dict[str, Any]]) -> dict[str, Any]:
        return self.call("SendMessageBatch", {"QueueUrl": queue_url, "Entries": entries})

    def get_queue_attributes(self, queue_url: str, names: list[str]) -> dict[str, str]:
        answer = self.call("GetQueueAttributes", {"QueueUrl": queue_url, "AttributeNames": names})
        return {str(k): str(v) for k, v in (answer.get("Attributes") or {}).items()}


def _error(status: int, data: bytes, query_error: str | None) -> SqsError:
    try:
        doc = json.loads(data) if data else {}
    except ValueError:
        doc = {}
    if not isinstance(doc, dict):
        doc = {}
    code = str(doc.get("__type") or doc.get("code") or "").rpartition("#")[2]
    if query_error:  # the awsQuery-compatible code botocore reports (AWS.SimpleQueueService.NonExistentQueue)
        code = query_error.split(";", 1)[0] or code
    message = str(doc.get("message") or doc.get("Message") or "")[:300]
    return SqsError(code or f"HTTP{status}", message, status)


_clients: dict[tuple[str, str | None, float, float, int], Sqs] = {}
_lock = threading.Lock()


def client(region: str, endpoint_url: str | None, *, connect_timeout: float, read_timeout: float, attempts: int) -> Sqs:
    """The process's ``Sqs`` for these parameters (its connections are reused across invocations)."""
    key = (region, endpoint_url, connect_timeout, read_timeout, attempts)
    found = _clients.get(key)
    if found is None:
        with _lock:
            found = _clients.setdefault(
                key,
                Sqs(
                    region,
                    endpoint_url,
                    connect_timeout=connect_timeout,
                    read_timeout=read_timeout,
                    attempts=attempts,
                ),
            )
    return found


def close_all() -> None:
    """Close every client's connections, in every thread (``hibachi.snapstart``)."""
    for found in list(_clients.values()):
        found.close_all()
