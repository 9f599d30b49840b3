"""Fault-injection helpers for the reliability tests: a TCP proxy that can be switched to refuse or
to hang (SQS "down" or "hanging" for the functions that talk to moto through it), an HTTP client
that retries like a real client, and small database helpers. Every loop here is bounded in count
and time."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any


class FlakyProxy:
    """A loopback TCP forwarder. ``down()`` closes every open connection and refuses (accepts and
    immediately resets) new ones until ``up()``; ``hang()`` closes every open connection and accepts
    new ones that never get an answer (held open, nothing forwarded) until ``up()``. The upstream
    port may be set after ``start``."""

    def __init__(self, upstream_port: int | None = None, host: str = "127.0.0.1", settle: float = 0.0):
        self.host = host
        self.settle = settle  # seconds ``up()`` waits after a fault: the functions' pause after a failed send
        self.upstream_port = upstream_port
        self._down = threading.Event()
        self._hang = threading.Event()
        self._held: list[socket.socket] = []  # the connections accepted while hanging
        self.hung = 0
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._conns: set[socket.socket] = set()
        self.refused = 0
        self.forwarded = 0
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((host, 0))
        self._listener.listen(128)
        self._listener.settimeout(0.2)
        self.port = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._accept_loop, name="flaky-proxy", daemon=True)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def is_down(self) -> bool:
        return self._down.is_set() or self._hang.is_set()

    def start(self) -> FlakyProxy:
        self._thread.start()
        return self

    def down(self) -> None:
        self._down.set()
        with self._lock:
            conns = list(self._conns)
        for s in conns:
            _close(s)

    def hang(self) -> None:
        self._hang.set()
        with self._lock:
            conns = list(self._conns)
        for s in conns:
            _close(s)

    def up(self) -> None:
        was_down = self.is_down
        self._down.clear()
        self._hang.clear()
        with self._lock:
            held, self._held = self._held, []
        for s in held:
            _close(s)
        if was_down:
            time.sleep(self.settle)  # a known duration (JOBS_SEND_PAUSE_SECONDS), not a wait for a condition

    def close(self) -> None:
        self._stop.set()
        self.down()
        self._thread.join(5)
        _close(self._listener)

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if self._hang.is_set():
                self.hung += 1
                with self._lock:
                    self._held.append(client)  # read nothing, answer nothing
                continue
            if self._down.is_set() or self.upstream_port is None:
                self.refused += 1
                client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                _close(client)  # a reset: the SDK sees a connection error at once
                continue
            try:
                upstream = socket.create_connection((self.host, self.upstream_port), timeout=2)
            except OSError:
                _close(client)
                continue
            self.forwarded += 1
            with self._lock:
                self._conns.update((client, upstream))
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            src.settimeout(None)  # the other direction may have closed it already
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with self._lock:
                    self._conns.discard(s)
                _close(s)


def _close(s: socket.socket) -> None:
    with contextlib.suppress(OSError):
        s.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        s.close()


def http(
    url: str,
    method: str = "GET",
    *,
    body: Any = None,
    raw: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 30,
) -> tuple[int, Any, dict[str, str]]:
    """One request; (status, parsed JSON or raw text, headers). Connection errors give status 0."""
    hdrs = {"content-type": "application/json", **(headers or {})}
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    request = urllib.request.Request(url, method=method, headers=hdrs, data=data)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            payload = response.read()
            status, rheaders = response.status, dict(response.headers)
    except urllib.error.HTTPError as exc:
        payload, status, rheaders = exc.read(), exc.code, dict(exc.headers)
    except (urllib.error.URLError, ConnectionError, TimeoutError, OSError) as exc:
        return 0, repr(exc), {}
    try:
        return status, json.loads(payload or b"null"), rheaders
    except ValueError:
        return status, payload.decode("utf-8", "replace"), rheaders


Answer = tuple[int, Any, dict[str, str]]


def retrying(
    call: Callable[[], Answer], *, attempts: int = 40, deadline: float = 60.0, pause: float = 0.1
) -> tuple[Answer, int]:
    """Call ``call()`` -> (status, body, headers) until a non-5xx, non-connection-error answer, as a
    client with an Idempotency-Key would; bounded by ``attempts`` and ``deadline`` seconds. Returns
    (last response, number of attempts)."""
    end = time.monotonic() + deadline
    result = call()
    n = 1
    while (result[0] == 0 or result[0] >= 500) and n < attempts and time.monotonic() < end:
        time.sleep(pause)  # client back-off between retries (not a wait for a condition)
        result = call()
        n += 1
    return result, n
