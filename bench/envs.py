"""Execution environments for concurrent handler runs: one process per client.

Why processes: Powertools' resolver keeps the event being handled in a class attribute
(``BaseRouter.current_event``), so two threads calling handlers in one process handle each other's
events (found by this bench: a thread answered another thread's booking request). In Lambda one
environment serves one request at a time; here each client is one process with its own handler
module, Powertools state, database connection and GIL, like the local stack's ``local/runtime.py``.

The processes are forked from a ``forkserver`` that has imported the handlers once
(``bench._preload``), so starting 30 of them costs no import time. Each serves commands over a
pipe: ``prepare`` (settings, the workload, one untimed warm-up request: opens its connection) and
``go`` (the timed loop between two monotonic times, which every process of the machine shares).
"""

from __future__ import annotations

import contextlib
import math
import multiprocessing
import os
import time
from typing import Any

from bench.measure import Accounting, RunResult, _numbers
from bench.operations import Counter

_TIMEOUT = 180.0


def _worker(conn: Any, client: int) -> None:  # runs in the environment process
    import signal

    from bench import measure
    from bench.env import use_settings
    from bench.measure import HandlerWorkload, client_loop
    from bench.operations import OPERATIONS

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)  # the function's logs and metrics: written, not shown
    workload: HandlerWorkload | None = None
    state: Any = None
    while True:
        try:
            kind, spec = conn.recv()
        except (EOFError, OSError):
            return
        if kind == "exit":
            return
        if kind == "prepare":
            try:
                use_settings(spec["dsn"], spec["aws"])
                first, cap = spec["numbers"]
                measure._numbers = Counter(first, first + cap, f"the request numbers of client {client}")
                fixtures = dict(spec["fixtures"])
                if "slots" in spec:
                    first, cap = spec["slots"]
                    fixtures["slots"] = Counter(first, first + cap, f"the booking slots of client {client}")
                op = next(o for o in OPERATIONS if o.name == spec["op"])
                workload = HandlerWorkload(op, fixtures)
                state = workload.open(client)
                conn.send(("ready", None))
            except Exception as exc:  # noqa: BLE001 - reported by the parent
                state = None
                conn.send(("ready", repr(exc)[:300]))
        elif kind == "go":
            start, stop, requests = spec
            assert workload is not None, "go before prepare"
            time.sleep(max(0.0, start - time.perf_counter()))
            cpu0 = time.process_time()
            part: dict[str, Any] = client_loop(workload, state, client, measure._numbers, stop=stop, requests=requests)
            part["cpu"] = time.process_time() - cpu0
            if state is not None:
                with contextlib.suppress(Exception):  # closing a connection may fail in any way
                    workload.close(state)
            conn.send(("done", part))


class EnvPool:
    """``size`` environment processes, started once, reused by every concurrent run."""

    def __init__(self, size: int):
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["bench._preload"])
        self.conns, self.procs = [], []
        for client in range(size):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_worker, args=(child, client), name=f"bench-env-{client}", daemon=True)
            proc.start()
            child.close()
            self.conns.append(parent)
            self.procs.append(proc)

    def _recv(self, client: int, timeout: float) -> tuple[str, Any]:
        if not self.conns[client].poll(timeout):
            raise RuntimeError(f"environment {client} did not answer within {timeout:.0f} s")
        answer: tuple[str, Any] = self.conns[client].recv()
        return answer

    def run(
        self,
        op: Any,
        fixtures: dict[str, Any],
        *,
        dsn: str,
        aws: dict[str, str] | None,
        clients: int,
        requests: int | None = None,
        duration: float | None = None,
        max_seconds: float = 60.0,
        proxy: Any = None,
        queue: Any = None,
        processes: dict[str, int | None] | None = None,
    ) -> RunResult:
        """Like ``bench.measure.run`` for a handler operation, one process per client."""
        assert clients <= len(self.conns) and (requests or duration)
        # per client: at most this many requests, plus the warm-up (a client starts no request after the
        # window, and each takes a round trip, >= 0.25 s at RTT 270 ms); the block of request numbers
        # and, for an operation that books, of booking slots it gets (one more is an error of the run)
        seconds = min(duration, max_seconds) if duration else max_seconds
        cap = (requests or math.ceil(seconds / 0.25) + 5) + 1
        open_errors = self._prepare(op, fixtures, dsn=dsn, aws=aws, queue=queue, clients=clients, cap=cap)
        accounting = Accounting(proxy, queue, processes)
        accounting.begin()  # the warm-up's messages and round trips do not count
        start = time.perf_counter() + 0.05
        for c in range(clients):
            self.conns[c].send(("go", (start, start + seconds, requests)))
        parts: list[dict[str, Any]] = [{"samples": [], "ends": [], "errors": [f"open: {e}" for e in open_errors]}]
        parts += [self._recv(c, max_seconds + _TIMEOUT)[1] for c in range(clients)]
        result = accounting.end(parts, (start, start + duration) if duration else None)
        result.cpu_ms["bench"] = sum(p.get("cpu", 0.0) for p in parts) * 1000
        return result

    def _prepare(
        self,
        op: Any,
        fixtures: dict[str, Any],
        *,
        dsn: str,
        aws: dict[str, str] | None,
        queue: Any,
        clients: int,
        cap: int,
    ) -> list[str]:
        """Sends each of the first ``clients`` environments its workload and blocks of ``cap`` request
        numbers (and booking slots); waits for their warm-ups. Returns the errors of those that failed."""
        shared = {k: v for k, v in fixtures.items() if k != "slots"}
        if queue is not None:
            queue.clean()
        for c in range(clients):
            own = {**aws, "jobs_queue_url": queue.env_queue(c)} if aws and queue is not None else aws
            numbers = (_numbers.take(cap), cap)
            spec = {"op": op.name, "dsn": dsn, "aws": own, "fixtures": shared, "numbers": numbers}
            if op.books:
                spec["slots"] = (fixtures["slots"].take(cap), cap)
            self.conns[c].send(("prepare", spec))
        return [err for c in range(clients) for _, err in [self._recv(c, _TIMEOUT)] if err]

    def close(self) -> None:
        for conn in self.conns:
            try:
                conn.send(("exit", None))
                conn.close()
            except OSError:
                pass
        for proc in self.procs:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.kill()
                proc.join(timeout=5)
