"""Closed-loop runners, percentiles, in-process handler calls and statement capture/replay.

A *workload* opens per-client state (a thread, hence its own database connection), warms it up
untimed, then each call returns the milliseconds of one request. The runner starts every client
together after the warm-up, and is bounded both in requests and in seconds.
"""

from __future__ import annotations

import importlib
import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any, Protocol
from unittest.mock import patch

import psutil

from bench.operations import Counter, Operation, error_code
from testkit.functions import load_function


# -- statistics ---------------------------------------------------------------------------------------------
def percentile(samples: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..1) of unsorted ``samples``."""
    if not samples:
        return math.nan
    ordered = sorted(samples)
    return ordered[max(0, min(len(ordered) - 1, math.ceil(q * len(ordered)) - 1))]


@dataclass
class Summary:
    n: int
    p50: float
    p95: float
    p99: float

    @classmethod
    def of(cls, samples: list[float]) -> Summary:
        return cls(len(samples), *(percentile(samples, q) for q in (0.50, 0.95, 0.99)))


@dataclass
class RunResult:
    samples: list[float]  # ms per timed request
    errors: int = 0
    first_error: str = ""
    window: float = 0.0  # seconds of the timed window (duration runs)
    in_window: int = 0  # requests completed inside the window
    round_trips: int | None = None  # database round trips of all timed requests (PgProxy)
    sends: int | None = None  # SQS messages added by all timed requests
    # ops/s of a duration run: each client's requests completed in the window over the time to its last
    # one, summed (a closed loop's rate without the rounding of a fixed window: a client whose request
    # takes 1.9 s completes 4 in an 8 s window, yet runs at 0.53/s, not 0.5/s)
    throughput: float = math.nan
    cpu_ms: dict[str, float] = field(default_factory=dict)  # CPU time used during the run, per process
    # CPU of the calling thread during the whole handler call (``thread_time``), per request: the handler's
    # own work, the driver's and the send's, and the kernel's for their sockets; no waiting
    thread_cpu_ms: list[float] = field(default_factory=list)
    # that thread CPU in parts, and the wait for SQS (``CpuParts``), per request: part name -> ms per request
    cpu_parts_ms: dict[str, list[float]] = field(default_factory=dict)

    @property
    def summary(self) -> Summary:
        return Summary.of(self.samples)

    @property
    def completed(self) -> int:
        return len(self.samples)

    @property
    def rt_per_request(self) -> float | None:
        return None if self.round_trips is None or not self.completed else self.round_trips / self.completed

    @property
    def sends_per_request(self) -> float | None:
        return None if self.sends is None or not self.completed else self.sends / self.completed

    def cpu_per_request(self, process: str) -> float:
        return self.cpu_ms.get(process, math.nan) / self.completed if self.completed else math.nan


class Workload(Protocol):
    def open(self, client: int) -> Any: ...
    def call(self, state: Any, client: int, n: int) -> float: ...
    def close(self, state: Any) -> None: ...


_numbers = Counter(1)  # request numbers, unique within a run (blocks of them go to environment processes)


def client_loop(
    workload: Workload, state: Any, client: int, numbers: Any, *, stop: float, requests: int | None
) -> dict[str, list[Any]]:
    """One client's timed requests: ``samples`` (ms per request), their ``ends`` (perf_counter, a clock
    every process shares) and ``errors``. Bounded by ``requests`` (if given) and by ``stop``."""
    part: dict[str, list[Any]] = {"samples": [], "ends": [], "errors": []}
    attempts = 0
    while state is not None and time.perf_counter() < stop and not (requests and attempts >= requests):
        attempts += 1
        try:
            part["samples"].append(workload.call(state, client, next(numbers)))
            part["ends"].append(time.perf_counter())
        except Exception as exc:  # noqa: BLE001 - counted as an error of the run
            part["errors"].append(repr(exc)[:300])
    return part


def cpu_seconds(pid: int | None = None) -> float:
    """CPU time (user + system) of this process, or of another one."""
    try:
        times = psutil.Process(pid).cpu_times()
    except psutil.Error:
        return math.nan
    return float(times.user + times.system)


class Accounting:
    """What a run accounts around its timed part, for ``run`` and ``bench.envs.EnvPool.run``: the
    proxy's database round trips, the messages the queue (``bench.env.Moto``) received, the CPU
    time of other processes (name -> pid; None: this one). ``begin`` right before the clients go,
    ``end`` right after they finish."""

    def __init__(self, proxy: Any = None, queue: Any = None, processes: dict[str, int | None] | None = None):
        self.proxy, self.queue, self.processes = proxy, queue, dict(processes or {})
        self._queued0 = 0
        self._cpu0: dict[str, float] = {}

    def begin(self) -> None:
        if self.proxy is not None:
            self.proxy.reset()
        if self.queue is not None:
            self.queue.clean()
            self._queued0 = self.queue.queued()
        self._cpu0 = {name: cpu_seconds(pid) for name, pid in self.processes.items()}

    def end(self, parts: list[dict[str, Any]], window: tuple[float, float] | None) -> RunResult:
        """The run's result from each client's part (``client_loop``'s); ``window``: a duration run's
        (start, stop)."""
        errors = [e for p in parts for e in p["errors"]]
        result = RunResult([s for p in parts for s in p["samples"]], len(errors), errors[0] if errors else "")
        result.cpu_ms = {name: (cpu_seconds(pid) - self._cpu0[name]) * 1000 for name, pid in self.processes.items()}
        if self.proxy is not None:
            result.round_trips = self.proxy.round_trips
        if self.queue is not None:
            result.sends = self.queue.queued() - self._queued0
        if window:
            start, stop = window
            ends = [[e for e in p["ends"] if e <= stop] for p in parts]
            result.window, result.in_window = stop - start, sum(map(len, ends))
            result.throughput = sum(len(done) / (done[-1] - start) for done in ends if done)
        return result


def run(
    workload: Workload,
    *,
    clients: int = 1,
    requests: int | None = None,
    duration: float | None = None,
    max_seconds: float = 60.0,
    proxy: Any = None,
    queue: Any = None,
    processes: dict[str, int | None] | None = None,
) -> RunResult:
    """Run ``clients`` closed-loop clients, threads of this process: ``requests`` each, or for ``duration``
    seconds (throughput). Never longer than ``max_seconds`` (plus the warm-up); requests that fail are
    counted, not timed. ``processes``: other processes (name -> pid) whose CPU time to account."""
    assert requests or duration
    accounting = Accounting(proxy, queue, {"bench": None, **(processes or {})})
    starts: list[float] = []

    def begin() -> None:  # the last client to warm up starts the accounting and the clock
        accounting.begin()
        starts.append(time.perf_counter())

    warmed = threading.Barrier(clients, action=begin)

    def client(c: int) -> dict[str, list[Any]]:
        state, opened = None, ""
        try:
            state = workload.open(c)
        except Exception as exc:  # noqa: BLE001 - reported as an error of the run
            opened = f"open: {exc!r}"
        warmed.wait(timeout=180)
        stop = starts[0] + min(duration or max_seconds, max_seconds)
        part = client_loop(workload, state, c, _numbers, stop=stop, requests=requests)
        if state is not None:
            workload.close(state)
        part["errors"] += [opened] if opened else []
        return part

    with ThreadPoolExecutor(clients, thread_name_prefix="bench-client") as pool:
        parts = list(pool.map(client, range(clients)))
    return accounting.end(parts, (starts[0], starts[0] + duration) if duration else None)


class Capture(ExitStack):
    """Records every statement psycopg executes (query, params), tagged, to replay them raw."""

    def __init__(self) -> None:
        super().__init__()
        self.statements: list[tuple[Any, Any, Any]] = []
        self.tag: Any = ("setup", None)

    def __enter__(self) -> Capture:
        import psycopg

        original = psycopg.Cursor.execute

        def execute(cur: Any, query: Any, params: Any = None, **kwargs: Any) -> Any:
            self.statements.append((self.tag, query, params))
            return original(cur, query, params, **kwargs)

        self.enter_context(patch.object(psycopg.Cursor, "execute", execute))
        return self


class CpuParts(ExitStack):
    """The calling thread's CPU (``thread_time``) inside a few calls of a request, to say where the
    handler call's CPU goes: the statement (``Database.run``: psycopg and the kernel's socket work),
    the enqueue (``JobQueue.send_many``), and in it the signing (``sigv4.sign``) and the HTTP exchange
    (``Sqs._exchange``), and the Powertools resolver (``resolve``: routing, validation, the route's
    code, serialization); and ``wait``, the time the enqueue waits for SQS (its wall time less its
    CPU). Each wrapped call adds two ``thread_time`` reads (about 1 µs each). ``take()`` returns the
    parts of the request just made, and resets them."""

    TARGETS = (
        ("statement", "hibachi.db", "Database", "run"),
        ("enqueue", "hibachi.jobs", "JobQueue", "send_many"),
        ("signing", "hibachi.sigv4", None, "sign"),
        ("exchange", "hibachi.sqs", "Sqs", "_exchange"),
        ("resolver", "aws_lambda_powertools.event_handler.api_gateway", "APIGatewayHttpResolver", "resolve"),
    )

    def __init__(self) -> None:
        super().__init__()
        self.ms: dict[str, float] = {}

    def __enter__(self) -> CpuParts:
        for name, module_name, owner_name, attr in self.TARGETS:
            module = importlib.import_module(module_name)
            owner = getattr(module, owner_name) if owner_name else module
            self.enter_context(patch.object(owner, attr, self._wrap(name, getattr(owner, attr))))
        return self

    def _wrap(self, name: str, original: Callable[..., Any]) -> Callable[..., Any]:
        parts = self.ms

        def timed(*args: Any, **kwargs: Any) -> Any:
            wall, start = time.perf_counter(), time.thread_time()
            try:
                return original(*args, **kwargs)
            finally:
                cpu = time.thread_time() - start
                parts[name] = parts.get(name, 0.0) + cpu * 1000
                if name == "enqueue":
                    parts["wait"] = parts.get("wait", 0.0) + (time.perf_counter() - wall - cpu) * 1000

        return timed

    def take(self) -> dict[str, float]:
        found = dict(self.ms)
        self.ms.clear()  # in place: the wrappers hold this dict
        return found


@dataclass
class HandlerWorkload:
    """One API operation through its Lambda handler, with real HTTP API events. ``cpu``: the thread's
    CPU per timed call (``thread_time``, ms); with ``cpu_parts``, ``parts``: its parts per timed call."""

    op: Operation
    fixtures: dict[str, Any]
    warmup: int = 1
    capture: Capture | None = None
    cpu_parts: CpuParts | None = None
    parts: dict[str, list[float]] = field(default_factory=dict)
    cpu: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.module = load_function(self.op.function)

    def _invoke(self, event: dict[str, Any]) -> float:
        import json

        from local.events import LambdaContext

        context = LambdaContext(function_name=self.op.function)
        start = time.perf_counter()
        response = self.module.lambda_handler(event, context)
        elapsed = (time.perf_counter() - start) * 1000
        status = response.get("statusCode")
        if status not in self.op.ok:
            raise RuntimeError(f"{self.op.name}: HTTP {status}: {str(response.get('body'))[:200]}")
        out = json.loads(response.get("body") or "null")
        if self.op.verify and not self.op.verify(event, out):
            code = error_code(out)
            raise RuntimeError(
                f"{self.op.name}: the response is not the answer to this request"
                + (f": it is the error {code}" if code else "")
            )
        return elapsed

    def open(self, client: int) -> int:
        for _ in range(self.warmup):
            if self.capture:
                self.capture.tag = ("warmup", None)
            self._invoke(self.op.event(self.fixtures, client, next(_numbers)))
        return client

    def call(self, state: int, client: int, n: int) -> float:
        event = self.op.event(self.fixtures, client, n)  # API Gateway's work, not timed
        if self.capture:
            self.capture.tag = (self.op.name, n)
        if self.cpu_parts is not None:
            self.cpu_parts.take()
        cpu = time.thread_time()
        elapsed = self._invoke(event)
        self.cpu.append((time.thread_time() - cpu) * 1000)
        if self.cpu_parts is not None:
            taken = self.cpu_parts.take()
            for name in [t[0] for t in CpuParts.TARGETS] + ["wait"]:
                self.parts.setdefault(name, []).append(taken.get(name, 0.0))
        return elapsed

    def close(self, state: int) -> None:
        from hibachi.db import get_db

        get_db().close()  # this thread's connection


def replay(statements: list[tuple[Any, Any, Any]], dsn: str) -> dict[str, list[float]]:
    """Run the captured statements again, in order, on a bare psycopg connection with the app's
    connection options (a database prepared identically): ms per timed request, per operation."""
    import psycopg
    from psycopg.rows import dict_row

    per_request: dict[tuple[str, int], float] = {}
    with psycopg.connect(dsn, autocommit=True, prepare_threshold=None, row_factory=dict_row) as conn:
        conn.execute("SELECT 1")
        for tag, query, params in statements:
            start = time.perf_counter()
            with conn.cursor() as cur:
                cur.execute(query, params)
                if cur.description is not None:
                    cur.fetchall()
            elapsed = (time.perf_counter() - start) * 1000
            name, n = tag
            if n is not None:
                per_request[(name, n)] = per_request.get((name, n), 0.0) + elapsed
    result: dict[str, list[float]] = {}
    for (name, _), ms in per_request.items():
        result.setdefault(name, []).append(ms)
    return result


class SelectOne:
    """``SELECT 1`` on a bare connection: what the simulated network alone costs per round trip."""

    def __init__(self, dsn: str):
        self.dsn = dsn

    def open(self, client: int) -> Any:
        import psycopg

        conn = psycopg.connect(self.dsn, autocommit=True, prepare_threshold=None)
        conn.execute("SELECT 1").fetchone()
        return conn

    def call(self, conn: Any, client: int, n: int) -> float:
        start = time.perf_counter()
        conn.execute("SELECT %s::int", (n,)).fetchone()
        return (time.perf_counter() - start) * 1000

    def close(self, conn: Any) -> None:
        conn.close()
