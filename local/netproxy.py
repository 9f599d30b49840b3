"""A TCP proxy in front of PostgreSQL that counts round trips and can simulate a slow network.

- Round trips: every PostgreSQL round trip ends with the server's ``ReadyForQuery`` ('Z') message
  (a simple query, or an extended-protocol Parse/Bind/Execute/Sync flight), so the proxy parses the
  server-to-client stream and counts them per connection, minus the one that ends the start-up.
- Delay: each chunk read in either direction is forwarded ``delay`` seconds after it arrived, in
  order, so the round-trip time becomes 2 × delay while pipelining and ordering are kept.

    with PgProxy(("127.0.0.1", 5432), delay=0.135) as proxy:
        dsn = proxy.dsn("postgresql://postgres@127.0.0.1:5432/hibachi")
        ...
        proxy.round_trips   # total since start (or since proxy.reset())
"""

from __future__ import annotations

import queue
import socket
import struct
import threading
import time
from urllib.parse import urlsplit, urlunsplit


class _ServerStreamCounter:
    """Incremental parser of the server-to-client stream; counts ReadyForQuery messages.

    Clients must not negotiate encryption (``PgProxy.dsn`` sets ``sslmode=disable`` and
    ``gssencmode=disable``), so every server message is ``type, int32 length, payload``.
    """

    def __init__(self) -> None:
        self.buffer = b""
        self.ready = 0

    def feed(self, data: bytes) -> None:
        self.buffer += data
        while len(self.buffer) >= 5:
            (length,) = struct.unpack("!I", self.buffer[1:5])
            if len(self.buffer) < 1 + length:
                return
            if self.buffer[:1] == b"Z":
                self.ready += 1
            self.buffer = self.buffer[1 + length:]


class PgProxy:
    def __init__(self, upstream: tuple[str, int], *, delay: float = 0.0, host: str = "127.0.0.1", port: int = 0):
        self.upstream = upstream
        self.delay = delay
        self._listener = socket.create_server((host, port), reuse_port=False)
        self._listener.listen(512)
        self.address = self._listener.getsockname()
        self._counters: list[_ServerStreamCounter] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._base = 0
        self._thread = threading.Thread(target=self._accept_loop, name="pgproxy-accept", daemon=True)
        self._thread.start()

    # -- public ------------------------------------------------------------------------------------
    @property
    def port(self) -> int:
        return self.address[1]

    def dsn(self, upstream_dsn: str) -> str:
        """``upstream_dsn`` with host and port replaced by the proxy's (encryption disabled)."""
        parts = urlsplit(upstream_dsn)
        userinfo = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
        query = parts.query + ("&" if parts.query else "") + "sslmode=disable&gssencmode=disable"
        return urlunsplit((parts.scheme, f"{userinfo}{self.address[0]}:{self.port}", parts.path, query, ""))

    @property
    def round_trips(self) -> int:
        with self._lock:
            total = sum(max(0, c.ready - 1) for c in self._counters)  # minus each start-up's
        return total - self._base

    def reset(self) -> None:
        with self._lock:
            self._base = sum(max(0, c.ready - 1) for c in self._counters)

    def close(self) -> None:
        self._stop.set()
        try:
            self._listener.close()
        except OSError:
            pass

    def __enter__(self) -> PgProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing ----------------------------------------------------------------------------------
    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            for s in (client, server):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            counter = _ServerStreamCounter()
            with self._lock:
                self._counters.append(counter)
            self._pipe(client, server, None)
            self._pipe(server, client, counter)

    def _pipe(self, src: socket.socket, dst: socket.socket, counter: _ServerStreamCounter | None) -> None:
        chunks: queue.SimpleQueue[tuple[float, bytes]] = queue.SimpleQueue()

        def reader() -> None:
            while True:
                try:
                    data = src.recv(65536)
                except OSError:
                    data = b""
                if counter is not None and data:
                    with self._lock:
                        counter.feed(data)
                chunks.put((time.monotonic() + self.delay, data))
                if not data:
                    return

        def writer() -> None:
            while True:
                due, data = chunks.get()
                wait = due - time.monotonic()
                if wait > 0:
                    time.sleep(wait)
                if not data:
                    for s in (dst, src):
                        try:
                            s.shutdown(socket.SHUT_RDWR)
                        except OSError:
                            pass
                    return
                try:
                    dst.sendall(data)
                except OSError:
                    return

        if self.delay > 0:
            threading.Thread(target=reader, daemon=True).start()
            threading.Thread(target=writer, daemon=True).start()
        else:
            def direct() -> None:
                while True:
                    try:
                        data = src.recv(65536)
                    except OSError:
                        data = b""
                    if not data:
                        for s in (dst, src):
                            try:
                                s.shutdown(socket.SHUT_RDWR)
                            except OSError:
                                pass
                        return
                    if counter is not None:
                        with self._lock:
                            counter.feed(data)
                    try:
                        dst.sendall(data)
                    except OSError:
                        return

            threading.Thread(target=direct, daemon=True).start()
