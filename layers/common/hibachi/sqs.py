"""SQS over its JSON protocol: one signed HTTPS POST per call with ``http.client``, no boto3.

The API functions send one job per write request. boto3 would cost ~190 ms on the first request
(importing boto3 and building the client) and ~1.8 ms of CPU on every request (``python -m
bench.sendcpu`` measures the CPU of both). SQS speaks JSON (``application/x-amz-json-1.0``, the
action in ``X-Amz-Target``), so a ``SendMessage`` is a small JSON document signed with SigV4
(``hibachi.sigv4``, byte for byte botocore's signature) on a kept-alive connection.

- Endpoint (``endpoint_url``), as botocore picks it: ``AWS_ENDPOINT_URL_SQS``, else
  ``AWS_ENDPOINT_URL`` (both with their path), else the queue URL's own scheme and host, so every
  partition works (``cn-north-1``'s queues are on ``amazonaws.com.cn``); ``AWS_USE_FIPS_ENDPOINT``
  and ``AWS_USE_DUALSTACK_ENDPOINT`` rewrite that host as SQS's endpoint rules do.
- Credentials: the environment's (Lambda sets them; read per call), else botocore's chain.
- One ``http.client`` connection per thread, reopened when the server closed it while we were
  idle (checked without a round trip) or when a call fails.
- Time: ``budget`` bounds a whole call, retries included (the request path passes the
  ``JOBS_SEND_BUDGET_SECONDS`` setting: a hanging SQS must not hold a write); within it the
  connect and each read wait at most ``connect_timeout`` / ``read_timeout``.
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
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from hibachi import sigv4

if TYPE_CHECKING:
    from hibachi.settings import Settings

CONTENT_TYPE = "application/x-amz-json-1.0"
THROTTLING = frozenset({"ThrottlingException", "RequestThrottled", "AWS.SimpleQueueService.RequestThrottled"})
# a partition's DNS suffix -> its dual-stack suffix (botocore's partitions.json)
_DUALSTACK = {"amazonaws.com": "api.aws", "amazonaws.com.cn": "api.amazonwebservices.com.cn"}


class SqsError(Exception):
    """An SQS error answer (``code`` as botocore would report it) or a transport failure (``code`` '')."""

    def __init__(self, code: str, message: str, status: int | None = None):
        super().__init__(f"{code or 'transport error'}: {message}" if message else code)
        self.code = code
        self.message = message
        self.status = status


def endpoint_url(
    queue_url: str | None,
    region: str,
    *,
    sqs_endpoint: str | None = None,
    any_endpoint: str | None = None,
    fips: bool = False,
    dualstack: bool = False,
) -> str:
    """The endpoint to POST to: ``sqs_endpoint`` (``AWS_ENDPOINT_URL_SQS``), else ``any_endpoint``
    (``AWS_ENDPOINT_URL``), each as given with its path; else the queue URL's scheme and host, or
    the region's standard host when there is no queue URL. FIPS and dual-stack apply to a
    ``sqs.<region>.<suffix>`` host only (a custom endpoint is taken as it is)."""
    given = sqs_endpoint or any_endpoint
    if given:
        return given.rstrip("/") if urlsplit(given).path in ("", "/") else given
    parts = urlsplit(queue_url or "")
    scheme, host = (parts.scheme, parts.netloc) if parts.netloc else ("https", f"sqs.{region}.amazonaws.com")
    prefix = f"sqs.{region}."
    if host.startswith(prefix) and (fips or dualstack):
        suffix = host.removeprefix(prefix)
        if dualstack:
            suffix = _DUALSTACK.get(suffix, suffix)
        # in aws-us-gov the standard endpoint is the FIPS one (unless dual-stack)
        name = "sqs-fips" if fips and (dualstack or not region.startswith("us-gov-")) else "sqs"
        host = f"{name}.{region}.{suffix}"
    return f"{scheme}://{host}"


def settings_endpoint(settings: Settings, queue_url: str | None) -> str:
    """``endpoint_url`` with the settings' endpoint variables."""
    return endpoint_url(
        queue_url,
        settings.aws_region,
        sqs_endpoint=settings.aws_endpoint_url_sqs,
        any_endpoint=settings.aws_endpoint_url,
        fips=settings.aws_use_fips_endpoint,
        dualstack=settings.aws_use_dualstack_endpoint,
    )


class _Local(threading.local):
    conn: http.client.HTTPConnection | None = None


_ssl_context: ssl.SSLContext | None = None


def _tls() -> ssl.SSLContext:
    global _ssl_context
    if _ssl_context is None:
        _ssl_context = ssl.create_default_context()
    return _ssl_context


class _Answer:
    __slots__ = ("body", "query_error", "status")

    def __init__(self, status: int, body: bytes, query_error: str | None):
        self.status, self.body, self.query_error = status, body, query_error


class Sqs:
    def __init__(
        self,
        region: str,
        endpoint_url: str | None = None,
        *,
        connect_timeout: float = 1.0,
        read_timeout: float = 2.0,
        attempts: int = 2,
        budget: float | None = None,
    ):
        self.region = region
        self.endpoint_url = endpoint_url or f"https://sqs.{region}.amazonaws.com"
        parts = urlsplit(self.endpoint_url)
        self._https = parts.scheme == "https"
        self._host = parts.hostname or ""
        self._port = parts.port or (443 if self._https else 80)
        self._host_header = sigv4.host_header(parts)  # the Host the request is signed with
        self._path = parts.path or "/"  # botocore posts to the endpoint's path as it is
        self._url = f"{parts.scheme}://{parts.netloc}{self._path}"
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.attempts = max(1, attempts)
        self.budget = budget
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
    def _connection(self, timeout: float) -> http.client.HTTPConnection:
        """This thread's connection, open; a new one when there is none, or when the server closed
        the idle one (its socket is readable: the close, or data nobody asked for)."""
        conn = self._local.conn
        sock = conn.sock if conn is not None else None
        if conn is not None and sock is not None:
            try:
                readable, _, _ = select.select([sock], [], [], 0)
            except (OSError, ValueError):
                readable = [sock]
            if not readable:
                return conn
        self.close()
        if self._https:
            conn = http.client.HTTPSConnection(self._host, self._port, timeout=timeout, context=_tls())
        else:
            conn = http.client.HTTPConnection(self._host, self._port, timeout=timeout)
        conn.connect()
        self._local.conn = conn
        with self._all_lock:
            self._all.add(conn)
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
            found, self._all = list(self._all), set()
        for conn in found:
            conn.close()  # its thread finds no socket and connects again

    def _exchange(self, headers: dict[str, str], body: bytes, deadline: float) -> _Answer:
        conn = self._connection(_timeout(self.connect_timeout, deadline))
        conn.sock.settimeout(_timeout(self.read_timeout, deadline))
        conn.putrequest("POST", self._path, skip_host=True, skip_accept_encoding=True)
        for name, value in headers.items():
            conn.putheader(name, value)
        conn.endheaders(body)  # the headers and the body in one write
        conn.sock.settimeout(_timeout(self.read_timeout, deadline))  # what is left for the answer
        response = conn.getresponse()
        data = response.read()
        if response.will_close:
            self.close()
        return _Answer(response.status, data, response.getheader("x-amzn-query-error"))

    # -- calls --------------------------------------------------------------------------------------
    def call(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Call ``action`` (``SendMessage``, ...) with ``payload``; the JSON answer, or ``SqsError``.

        One ``POST`` on the thread's kept-alive connection, within ``budget`` seconds in all."""
        deadline = time.monotonic() + (self.budget if self.budget is not None else 3600.0)
        body = json.dumps(payload, separators=(",", ":")).encode()
        headers = {"Host": self._host_header, "Content-Type": CONTENT_TYPE, "X-Amz-Target": f"AmazonSQS.{action}"}
        last = SqsError("", "no attempt made")
        for attempt in range(self.attempts):
            if attempt and last.status is not None:  # throttled or 5xx: back off a little
                pause = random.uniform(0, 0.05 * 2**attempt)  # noqa: S311 - jitter, not security
                time.sleep(max(0.0, min(pause, deadline - time.monotonic())))
            if deadline - time.monotonic() <= 0:
                last = SqsError("", f"the call's budget of {self.budget} s is spent", last.status)
                break
            signed = sigv4.sign("POST", self._url, headers, body, sigv4.resolve_credentials(), "sqs", self.region)
            signed["Content-Length"] = str(len(body))
            signed["User-Agent"] = "hibachi-sqs"
            try:
                answer = self._exchange(signed, body, deadline)
            except (OSError, http.client.HTTPException) as exc:  # timeouts, resets, TLS errors; a garbled answer
                self.close()
                last = SqsError("", f"{type(exc).__name__}: {exc}")
                continue
            if 200 <= answer.status < 300:
                doc = json.loads(answer.body) if answer.body else {}
                return doc if isinstance(doc, dict) else {}
            last = _error(answer.status, answer.body, answer.query_error)
            if answer.status < 500 and last.code not in THROTTLING:
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


def _timeout(limit: float, deadline: float) -> float:
    """``limit``, or less when ``deadline`` is nearer (at least 1 ms: 0 would mean non-blocking)."""
    return max(0.001, min(limit, deadline - time.monotonic()))


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


_ClientKey = tuple[str, str, float, float, int, float | None]
_clients: dict[_ClientKey, Sqs] = {}
_lock = threading.Lock()


def client(
    region: str,
    endpoint: str,
    *,
    connect_timeout: float,
    read_timeout: float,
    attempts: int,
    budget: float | None = None,
) -> Sqs:
    """The process's ``Sqs`` for these parameters (its connections are reused across invocations)."""
    key = (region, endpoint, connect_timeout, read_timeout, attempts, budget)
    found = _clients.get(key)
    if found is None:
        with _lock:
            found = _clients.setdefault(
                key,
                Sqs(
                    region,
                    endpoint,
                    connect_timeout=connect_timeout,
                    read_timeout=read_timeout,
                    attempts=attempts,
                    budget=budget,
                ),
            )
    return found


def close_all() -> None:
    """Close every client's connections, in every thread (``hibachi.snapstart``)."""
    for found in list(_clients.values()):
        found.close_all()
