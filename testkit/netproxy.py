"""A TCP proxy in front of PostgreSQL that counts round trips and can simulate a slow network.

- Round trips: every PostgreSQL round trip ends with the server's ``ReadyForQuery`` ('Z') message
  (a simple query, or an extended-protocol Parse/Bind/Execute/Sync flight), so the proxy parses the
  server-to-client stream and counts them per connection, minus the one that ends the start-up.
- Delay: each chunk read in either direction is forwarded ``delay`` seconds after it arrived, in
  order, so the round-trip time becomes 2 * delay while pipelining and ordering are kept.

    with PgProxy(("127.0.0.1", 5432), delay=0.135) as proxy:
        dsn = proxy.dsn("postgresql://postgres@127.0.0.1:5432/hibachi")
        ...
        proxy.round_trips   # total since start (or since proxy.reset())

One thread runs one event loop (``selectors``) for every connection: a chunk is stamped when it
arrived (the kernel's receive time on Linux) and sent when it is due, so the delay neither drifts
with the number of connections nor grows by the time the loop takes to wake up.
With ``isolate=True`` (the default when ``delay > 0``) that loop runs in a child process instead of
a thread, so a busy client process (30 threads holding the GIL) cannot make the simulated network
slower than asked; the API is the same. The child exits with ``close()`` or with its parent.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import socket
import struct
import subprocess
import sys
import threading
import time
from collections import deque
from urllib.parse import urlsplit, urlunsplit

_CHUNK = 65536
_EARLY_WAKE = 0.0015  # seconds: see _Loop._run
# Linux stamps each received packet (SO_TIMESTAMPNS): the delay then runs from the packet's arrival,
# not from the moment the loop got round to reading it (a sleeping process wakes up late).
_SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35 if sys.platform.startswith("linux") else 0)


def _arrival_lag(ancillary: list[tuple[int, int, bytes]]) -> float:
    """Seconds between the kernel's receive stamp and now (0 when there is none)."""
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS and len(data) >= 16:
            sec, nsec = struct.unpack("qq", data[:16])
            lag = time.time() - (sec + nsec / 1e9)
            return lag if 0.0 < lag < 0.05 else 0.0  # ignore a stamp from a clock step
    return 0.0


class _ServerStreamCounter:
    """Incremental parser of the server-to-client stream; counts ReadyForQuery messages.

    Clients must not negotiate encryption (``PgProxy.dsn`` sets ``sslmode=disable`` and
    ``gssencmode=disable``), so every server message is ``type, int32 length, payload``.
    """

    def __init__(self) -> None:
        self.buffer = b""
        self.ready = 0

    def feed(self, data: bytes) -> None:
        buf = self.buffer + data if self.buffer else data
        pos, end = 0, len(buf)
        while end - pos >= 5:
            (length,) = struct.unpack_from("!I", buf, pos + 1)
            if pos + 1 + length > end:
                break
            if buf[pos] == 0x5A:  # 'Z'
                self.ready += 1
            pos += 1 + length
        self.buffer = buf[pos:]


class _Direction:
    """One direction of one connection: chunks waiting for their due time, then bytes to send."""

    __slots__ = ("counter", "dst", "eof", "out", "queue", "src")

    def __init__(self, src: socket.socket, dst: socket.socket, counter: _ServerStreamCounter | None):
        self.src = src
        self.dst = dst
        self.counter = counter
        self.queue: deque[tuple[float, bytes]] = deque()  # (due, data); b"" is the end of the stream
        self.out = bytearray()
        self.eof = False  # the end of the stream is due: close once ``out`` is sent


class _Link:
    """A proxied connection: client <-> server, one ``_Direction`` each way."""

    __slots__ = ("client", "closed", "down", "server", "up")

    def __init__(self, client: socket.socket, server: socket.socket, counter: _ServerStreamCounter):
        self.client = client
        self.server = server
        self.up = _Direction(client, server, None)
        self.down = _Direction(server, client, counter)
        self.closed = False


class _Loop:
    """The event loop shared by the thread and the process modes."""

    def __init__(
        self,
        listener: socket.socket,
        upstream: tuple[str, int],
        delay: float,
        lock: threading.Lock,
        counters: list[_ServerStreamCounter],
    ):
        self.listener = listener
        self.upstream = upstream
        self.delay = delay
        self.lock = lock
        self.counters = counters
        self.links: set[_Link] = set()
        # select() takes microsecond timeouts (epoll: milliseconds, rounded up); a proxy has few sockets
        self.sel = selectors.SelectSelector() if delay > 0 else selectors.DefaultSelector()
        self.accepting = True
        self.listener.setblocking(False)
        self.sel.register(listener, selectors.EVENT_READ, ("accept", None))
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self.sel.register(self._wake_r, selectors.EVENT_READ, ("wake", None))
        self.extra: dict[int, object] = {}  # fd -> callback (the child's control channel)
        self.stopped = False
        self.close_requested = False

    # -- control ---------------------------------------------------------------------------------
    def wake(self) -> None:
        with contextlib.suppress(OSError):
            self._wake_w.send(b"x")

    def stop_accepting(self) -> None:
        if self.accepting:
            self.accepting = False
            with contextlib.suppress(KeyError, ValueError):
                self.sel.unregister(self.listener)
            with contextlib.suppress(OSError):
                self.listener.close()

    # -- plumbing --------------------------------------------------------------------------------
    def _events(self, sock: socket.socket, link: _Link) -> int:
        reading = link.up if sock is link.client else link.down  # the direction this socket feeds
        writing = link.down if sock is link.client else link.up  # the direction that writes to it
        events = 0 if reading.eof else selectors.EVENT_READ
        if writing.out:
            events |= selectors.EVENT_WRITE
        return events

    def _update(self, link: _Link) -> None:
        for sock in (link.client, link.server):
            events = self._events(sock, link)
            try:
                if events:
                    self.sel.modify(sock, events, ("link", link))
                else:
                    self.sel.unregister(sock)
            except (KeyError, ValueError):
                if events:
                    self.sel.register(sock, events, ("link", link))

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            try:
                server = socket.create_connection(self.upstream, timeout=5)
            except OSError:
                client.close()
                continue
            for s in (client, server):
                s.setblocking(False)
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                if self.delay > 0 and _SO_TIMESTAMPNS:
                    s.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
            counter = _ServerStreamCounter()
            with self.lock:
                self.counters.append(counter)
            link = _Link(client, server, counter)
            self.links.add(link)
            self.sel.register(client, selectors.EVENT_READ, ("link", link))
            self.sel.register(server, selectors.EVENT_READ, ("link", link))

    def _close(self, link: _Link) -> None:
        if link.closed:
            return
        link.closed = True
        self.links.discard(link)
        for s in (link.client, link.server):
            with contextlib.suppress(KeyError, ValueError):
                self.sel.unregister(s)
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            s.close()

    def _read(self, link: _Link, direction: _Direction, now: float) -> None:
        try:
            if self.delay > 0 and _SO_TIMESTAMPNS:
                data, ancillary, _, _ = direction.src.recvmsg(_CHUNK, 64)
                now -= _arrival_lag(ancillary)
            else:
                data = direction.src.recv(_CHUNK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if data and direction.counter is not None:
            with self.lock:
                direction.counter.feed(data)
        if self.delay > 0:
            direction.queue.append((now + self.delay, data))
            if not data:
                direction.eof = True  # stop reading; the end is delivered when due
        else:
            self._deliver(link, direction, data)

    def _deliver(self, link: _Link, direction: _Direction, data: bytes) -> None:
        if not data:
            if direction.out:
                self._flush(link, direction)
            self._close(link)
            return
        direction.out += data
        self._flush(link, direction)

    def _flush(self, link: _Link, direction: _Direction) -> None:
        while direction.out and not link.closed:
            try:
                sent = direction.dst.send(direction.out)
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                self._close(link)
                return
            del direction.out[:sent]

    def _release(self, now: float) -> float | None:
        """Deliver every due chunk; return the time of the next one (None: nothing waiting)."""
        nxt: float | None = None
        for link in list(self.links):
            delivered = False
            for direction in (link.up, link.down):
                q = direction.queue
                while q and q[0][0] <= now and not link.closed:
                    _, data = q.popleft()
                    self._deliver(link, direction, data)
                    delivered = True
                if q and not link.closed:
                    nxt = q[0][0] if nxt is None else min(nxt, q[0][0])
            if delivered and not link.closed:
                self._update(link)
        return nxt

    def run(self) -> None:
        try:
            self._run()
        finally:
            for link in list(self.links):
                self._close(link)
            self.stop_accepting()
            self.sel.close()
            self._wake_r.close()
            self._wake_w.close()

    def _run(self) -> None:
        nxt: float | None = None
        while not self.stopped:
            if self.close_requested:
                self.stop_accepting()
            if not self.accepting and not self.links and not self.extra:
                return
            # a long sleep can end a millisecond late (idle virtual CPUs): wake _EARLY_WAKE before the
            # next chunk is due, then sleep the rest precisely
            timeout = None
            if nxt is not None:
                remaining = nxt - time.monotonic()
                timeout = max(0.0, remaining - _EARLY_WAKE if remaining > _EARLY_WAKE else remaining)
            for key, mask in self.sel.select(timeout):
                kind, link = key.data
                if kind == "accept":
                    self._accept()
                elif kind == "wake":
                    with contextlib.suppress(OSError):
                        self._wake_r.recv(4096)
                elif kind == "extra":
                    link()  # the callback
                elif not link.closed:
                    self._ready(link, key.fileobj, mask)
            nxt = self._release(time.monotonic())

    def _ready(self, link: _Link, sock: object, mask: int) -> None:
        """``sock`` of ``link`` can be read or written (``mask``): move what it can."""
        if mask & selectors.EVENT_READ:
            self._read(link, link.up if sock is link.client else link.down, time.monotonic())
        if mask & selectors.EVENT_WRITE and not link.closed:
            self._flush(link, link.down if sock is link.client else link.up)
        if not link.closed:
            self._update(link)

    def total(self) -> int:
        with self.lock:
            return sum(max(0, c.ready - 1) for c in self.counters)  # minus each start-up's


class PgProxy:
    def __init__(
        self,
        upstream: tuple[str, int],
        *,
        delay: float = 0.0,
        host: str = "127.0.0.1",
        port: int = 0,
        isolate: bool | None = None,
    ):
        self.upstream = upstream
        self.delay = delay
        self.isolate = delay > 0 if isolate is None else isolate
        self._listener = socket.create_server((host, port), reuse_port=False)
        self._listener.listen(512)
        self.address: tuple[str, int] = self._listener.getsockname()
        self._counters: list[_ServerStreamCounter] = []
        self._lock = threading.Lock()
        self._base = 0
        self._closed = False
        self._child: subprocess.Popen[bytes] | None = None
        self._loop: _Loop | None = None
        if self.isolate:
            self._child = subprocess.Popen(
                [
                    sys.executable,
                    "-I",
                    os.path.abspath(__file__),
                    "--serve",
                    str(self._listener.fileno()),
                    upstream[0],
                    str(upstream[1]),
                    repr(float(delay)),
                ],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                pass_fds=[self._listener.fileno()],
                close_fds=True,
            )
            self._listener.close()  # the child owns it now
            if self._ask("ping") != "pong":
                raise RuntimeError("the network simulator process did not start")
        else:
            self._loop = _Loop(self._listener, upstream, delay, self._lock, self._counters)
            self._thread = threading.Thread(target=self._loop.run, name="pgproxy", daemon=True)
            self._thread.start()

    # -- public ------------------------------------------------------------------------------------
    @property
    def port(self) -> int:
        return self.address[1]

    @property
    def pid(self) -> int | None:
        """The child process of an isolated proxy (None when the proxy runs in a thread)."""
        return self._child.pid if self._child is not None else None

    def dsn(self, upstream_dsn: str) -> str:
        """``upstream_dsn`` with host and port replaced by the proxy's (encryption disabled)."""
        parts = urlsplit(upstream_dsn)
        userinfo = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
        query = parts.query + ("&" if parts.query else "") + "sslmode=disable&gssencmode=disable"
        return urlunsplit((parts.scheme, f"{userinfo}{self.address[0]}:{self.port}", parts.path, query, ""))

    def _total(self) -> int:
        if self._child is not None:
            return int(self._ask("count"))
        assert self._loop is not None
        return self._loop.total()

    @property
    def round_trips(self) -> int:
        return self._total() - self._base

    def reset(self) -> None:
        self._base = self._total()

    def close(self) -> None:
        """Stop accepting. In a thread, open connections keep flowing until their ends close them;
        an isolated proxy ends with its child process, and its connections with it."""
        if self._closed:
            return
        self._closed = True
        if self._child is not None:
            try:
                if self._child.stdin:
                    self._child.stdin.close()  # the child exits at end of input
                self._child.wait(timeout=5)
            except (OSError, subprocess.TimeoutExpired):
                self._child.kill()
                self._child.wait(timeout=5)
            finally:
                if self._child.stdout:
                    self._child.stdout.close()
        else:
            assert self._loop is not None
            self._loop.close_requested = True
            self._loop.wake()

    def __enter__(self) -> PgProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- child process -------------------------------------------------------------------------------
    def _ask(self, command: str) -> str:
        assert self._child is not None and self._child.stdin and self._child.stdout
        with self._lock:
            self._child.stdin.write(command.encode() + b"\n")
            self._child.stdin.flush()
            line = self._child.stdout.readline()
        if not line:
            raise RuntimeError("the network simulator process has exited")
        return line.decode().strip()


def _serve(fd: int, host: str, port: int, delay: float) -> None:
    """The child process: the event loop, plus commands on stdin (``ping``, ``count``); EOF ends it."""
    listener = socket.socket(fileno=fd)
    loop = _Loop(listener, (host, port), delay, threading.Lock(), [])
    control = sys.stdin.fileno()  # read unbuffered: every line is answered when it arrives
    pending = bytearray()

    def on_control() -> None:
        data = os.read(control, 4096)
        if not data:
            loop.stopped = True
            return
        pending.extend(data)
        while b"\n" in pending:
            line, _, rest = bytes(pending).partition(b"\n")
            pending[:] = rest
            command = line.decode().strip()
            answer = "pong" if command == "ping" else str(loop.total()) if command == "count" else "?"
            sys.stdout.write(answer + "\n")
            sys.stdout.flush()

    loop.extra[control] = on_control
    loop.sel.register(control, selectors.EVENT_READ, ("extra", on_control))
    loop.run()


if __name__ == "__main__" and len(sys.argv) == 6 and sys.argv[1] == "--serve":
    _serve(int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), float(sys.argv[5]))
