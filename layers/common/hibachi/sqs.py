"""SQS over its JSON protocol: one signed HTTPS POST per call, no boto3.

The API functions send one job per write request. With boto3 that send cost ~190 ms on the first
request (importing boto3 and building the client) and ~1.8 ms of CPU on every request (botocore
building, signing and parsing it). SQS speaks JSON (``application/x-amz-json-1.0``, the action in
``X-Amz-Target``), so a ``SendMessage`` is a small JSON document signed with SigV4
(``hibachi.sigv4``, byte for byte botocore's signature) on a kept-alive connection.

- Endpoint: ``settings.aws_endpoint_url`` (``AWS_ENDPOINT_URL``: the local stack's moto), else
  ``https://sqs.<region>.amazonaws.com``.
- Credentials: the environment's (Lambda sets them; read per call), else botocore's chain.
- One connection per thread (a plain socket, TLS for https; HTTP/1.1 written and read here, not
  with ``http.client``, whose header parsing cost as much CPU as the rest of the send), reopened
  when the server closed it while we were idle (checked without a round trip) or when a call fails.
- Retries (``attempts`` in all): a connection error, a 5xx, or throttling, with a short jittered
  pause for the last two. A read timeout after the request was written may mean the message was
  sent: the retry then sends it again, which is fine for at-least-once jobs (every job is idempotent).
"""

from __future__ import annotations

import json
import random
import select
import socket
import ssl
import threading
import time
from typing import Any
from urllib.parse import urlsplit

from hibachi import sigv4

CONTENT_TYPE = "application/x-amz-json-1.0"
THROTTLING = frozenset({"ThrottlingException", "RequestThrottled", "AWS.SimpleQueueService.RequestThrottled"})
_MAX_HEAD = 64 * 1024  # an answer's status line and headers; SQS sends well under 1 KiB


class SqsError(Exception):
    """An SQS error answer (``code`` as botocore would report it) or a transport failure (``code`` '')."""

    def __init__(self, code: str, message: str, status: int | None = None):
        super().__init__(f"{code or 'transport error'}: {message}" if message else code)
        self.code = code
        self.message = message
        self.status = status


class _Local(threading.local):
    sock: socket.socket | None = None


_ssl_context: ssl.SSLContext | None = None


def _tls() -> ssl.SSLContext:
    global _ssl_context
    if _ssl_context is None:
        _ssl_context = ssl.create_default_context()
    return _ssl_context


class _Answer:
    """One HTTP answer: its status, its headers (names lower-cased) and body, and whether the server
    closes the connection after it."""

    __slots__ = ("body", "close", "headers", "status")

    def __init__(self, status: int, headers: dict[str, str], body: bytes, close: bool):
        self.status, self.headers, self.body, self.close = status, headers, body, close


def _recv_into(sock: socket.socket, buf: bytearray, where: str, wanted: int = 0) -> None:
    """Append what ``sock`` has next (at least 64 KiB asked, or ``wanted``) to ``buf``;
    ``ConnectionError`` when the server closed the connection ``where``."""
    data = sock.recv(max(65536, wanted))
    if not data:
        raise ConnectionError(f"connection closed {where}")
    buf += data


def _read_answer(sock: socket.socket) -> _Answer:
    """Read one HTTP/1.1 answer from ``sock``: a Content-Length or chunked body, or (neither) up to
    the server's close. Raises ``OSError`` when the connection ends early, ``ValueError`` when the
    answer is not HTTP."""
    buf = bytearray()
    while (end := buf.find(b"\r\n\r\n")) < 0:
        if len(buf) > _MAX_HEAD:
            raise ValueError("answer headers too long")
        _recv_into(sock, buf, "before the answer")
    lines = bytes(buf[:end]).decode("latin-1").split("\r\n")
    version, _, rest = lines[0].partition(" ")
    if not version.startswith("HTTP/"):
        raise ValueError("not an HTTP answer")
    status = int(rest[:3])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    body = buf[end + 4 :]
    close = version == "HTTP/1.0" or headers.get("connection", "").lower() == "close"
    if "chunked" in headers.get("transfer-encoding", "").lower():
        return _Answer(status, headers, _read_chunked(sock, body), close)
    length = headers.get("content-length")
    if length is None:  # the body runs to the end of the connection
        while data := sock.recv(65536):
            body += data
        return _Answer(status, headers, bytes(body), True)
    size = int(length)
    while len(body) < size:
        _recv_into(sock, body, "inside the answer", size - len(body))
    return _Answer(status, headers, bytes(body[:size]), close or len(body) > size)


def _read_chunked(sock: socket.socket, buf: bytearray) -> bytes:
    out = bytearray()
    while True:
        while (eol := buf.find(b"\r\n")) < 0:
            _recv_into(sock, buf, "inside the answer")
        size = int(bytes(buf[:eol]).split(b";", 1)[0], 16)
        del buf[: eol + 2]
        while len(buf) < size + 2:  # the chunk and its CRLF (after the last, empty one: the trailer's end)
            _recv_into(sock, buf, "inside the answer")
        if size == 0:
            return bytes(out)
        out += buf[:size]
        del buf[: size + 2]


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
        self._port = parts.port or (443 if self._https else 80)
        self._host_header = sigv4.host_header(parts)  # the Host the request is signed with
        self._url = f"{self.endpoint_url}/"
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.attempts = max(1, attempts)
        self._local = _Local()
        self._all: set[socket.socket] = set()  # every thread's, for close_all()
        self._all_lock = threading.Lock()

    def prepare(self) -> Sqs:
        """Do now what the first call would (the TLS context: loading the CA bundle), so that a
        caller with a time budget (a health probe) spends it on SQS, not on us. Returns ``self``."""
        if self._https:
            _tls()
        return self

    # -- the connection ---------------------------------------------------------------------------
    def _connection(self) -> socket.socket:
        sock = self._local.sock
        if sock is not None and sock.fileno() != -1:
            try:
                readable, _, _ = select.select([sock], [], [], 0)
            except (OSError, ValueError):
                readable = [sock]
            if not readable:  # idle and still open: reuse (a readable idle socket was closed by the server)
                return sock
        self.close()
        sock = socket.create_connection((self._host, self._port), timeout=self.connect_timeout)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # one request, one segment: no delay
            if self._https:
                sock = _tls().wrap_socket(sock, server_hostname=self._host)
            sock.settimeout(self.read_timeout)
        except BaseException:
            sock.close()
            raise
        self._local.sock = sock
        with self._all_lock:
            self._all.add(sock)
        return sock

    def close(self) -> None:
        """Close this thread's connection (the next call opens a new one)."""
        sock = self._local.sock
        self._local.sock = None
        if sock is not None:
            sock.close()
            with self._all_lock:
                self._all.discard(sock)

    def close_all(self) -> None:
        """Close every thread's connection (each thread reconnects on its next call)."""
        with self._all_lock:
            found, self._all = list(self._all), set()
        for sock in found:
            sock.close()  # its thread sees ``fileno() == -1`` and connects again

    def _exchange(self, request: bytes) -> _Answer:
        sock = self._connection()
        sock.sendall(request)
        answer = _read_answer(sock)
        if answer.close:
            self.close()
        return answer

    # -- calls --------------------------------------------------------------------------------------
    def call(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Call ``action`` (``SendMessage``, ...) with ``payload``; the JSON answer, or ``SqsError``.

        One ``POST /`` on the thread's kept-alive connection: the signed headers and the body in
        one write, the answer read by its length (``http.client`` cost twice the CPU per call)."""
        body = json.dumps(payload, separators=(",", ":")).encode()
        headers = {"Host": self._host_header, "Content-Type": CONTENT_TYPE, "X-Amz-Target": f"AmazonSQS.{action}"}
        last = SqsError("", "no attempt made")
        for attempt in range(self.attempts):
            if attempt and last.status is not None:  # throttled or 5xx: back off a little
                time.sleep(random.uniform(0, 0.05 * 2**attempt))  # noqa: S311 - jitter, not security
            signed = sigv4.sign("POST", self._url, headers, body, sigv4.resolve_credentials(), "sqs", self.region)
            head = "".join(f"{name}: {value}\r\n" for name, value in signed.items())
            request = (
                f"POST / HTTP/1.1\r\n{head}Content-Length: {len(body)}\r\nUser-Agent: hibachi-sqs\r\n\r\n".encode()
                + body
            )
            try:
                answer = self._exchange(request)
            except (OSError, ValueError) as exc:  # timeouts, resets, TLS errors; a garbled answer
                self.close()
                last = SqsError("", f"{type(exc).__name__}: {exc}")
                continue
            if 200 <= answer.status < 300:
                doc = json.loads(answer.body) if answer.body else {}
                return doc if isinstance(doc, dict) else {}
            last = _error(answer.status, answer.body, answer.headers.get("x-amzn-query-error"))
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
