"""Closed-loop runners, percentiles, in-process handler calls and statement capture/replay.

A *workload* opens per-client state (a thread, hence its own database connection), warms it up
untimed, then each call returns the milliseconds of one request. The runner starts every client
together after the warm-up, and is bounded both in requests and in seconds.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

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
    mean: float

    @classmethod
    def of(cls, samples: list[float]) -> Summary:
        return cls(
            len(samples),
            percentile(samples, 0.50),
            percentile(samples, 0.95),
            percentile(samples, 0.99),
            sum(samples) / len(samples) if samples else math.nan,
        )


@dataclass
class RunResult:
    samples: list[float]  # ms per timed request
    errors: int = 0
    first_error: str = ""
    window: float = 0.0  # seconds of the timed window (duration runs)
    in_window: int = 0  # requests completed inside the window
    round_trips: int | None = None  # database round trips of all timed requests (PgProxy)
    sends: int | None = None  # SQS messages added by all timed requests
    clients: int = 1
    rate: float = math.nan  # duration runs: sum over clients of their own request rate
    cpu_ms: dict[str, float] = field(default_factory=dict)  # CPU time used during the run, per process
    sqs_wait_ms: list[float] = field(default_factory=list)  # per request, when measured (HandlerWorkload)
    sqs_cpu_ms: list[float] = field(default_factory=list)  # CPU of the thread during the send, per request
    # CPU of the calling thread during the whole handler call (``thread_time``), per request: the handler's
    # own work, the driver's and the send's, and the kernel's for their sockets; no waiting
    thread_cpu_ms: list[float] = field(default_factory=list)
    # that thread CPU in parts (``CpuParts``), per request, when measured: part name -> ms per request
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

    @property
    def throughput(self) -> float:
        """ops/s: each client's requests completed in the window over the time to its last one, summed
        (a closed loop's rate without the rounding of a fixed window: a client whose request takes
        1.9 s completes 4 in an 8 s window, yet runs at 0.53/s, not 0.5/s)."""
        return self.rate

    def cpu_per_request(self, process: str) -> float:
        return self.cpu_ms.get(process, math.nan) / self.completed if self.completed else math.nan


class Workload(Protocol):
    def open(self, client: int) -> Any: ...
    def call(self, state: Any, client: int, n: int) -> float: ...
    def close(self, state: Any) -> None: ...


_numbers = Counter(1)  # request numbers, unique within a run (blocks of them go to environment processes)


def client_loop(
    workload: Workload,
    state: Any,
    client: int,
    numbers: Any,
    *,
    start: float,
    stop: float,
    hard_stop: float,
    requests: int | None,
) -> tuple[list[float], list[float], list[str]]:
    """One client's timed requests: (ms per request, end times, errors). Bounded by ``requests``
    (if given) and by ``stop`` / ``hard_stop`` (perf_counter / monotonic times; the same clock)."""
    samples, ends, errors = [], [], []
    count = 0
    while state is not None:
        now = time.perf_counter()
        if now >= stop or now >= hard_stop or (requests and count >= requests):
            break
        count += 1
        try:
            samples.append(workload.call(state, client, next(numbers)))
            ends.append(time.perf_counter())
        except Exception as exc:  # noqa: BLE001 - counted as an error of the run
            errors.append(repr(exc)[:300])
    return samples, ends, errors


def cpu_seconds(pid: int | None = None) -> float:
    """CPU time (user + system) of this process, or of another one (Linux /proc)."""
    if pid is None:
        return time.process_time()
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return math.nan


def client_rate(ends: list[float], start: float, stop: float) -> float | None:
    """One client's request rate in a duration run: requests completed in the window, per second
    up to its last one in it (None when none completed)."""
    done = [e for e in ends if e <= stop]
    return len(done) / (done[-1] - start) if done else None


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

    def end(self, result: RunResult) -> RunResult:
        cpu1 = {name: cpu_seconds(pid) for name, pid in self.processes.items()}
        result.cpu_ms.update({name: (cpu1[name] - self._cpu0[name]) * 1000 for name in cpu1})
        if self.proxy is not None:
            result.round_trips = self.proxy.round_trips
        if self.queue is not None:
            result.sends = self.queue.queued() - self._queued0
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
    """Run ``clients`` closed-loop clients: ``requests`` each, or for ``duration`` seconds (throughput).
    Never longer than ``max_seconds`` (plus the warm-up); requests that fail are counted, not timed.
    ``processes``: other processes (name -> pid) whose CPU time to account, besides this one."""
    assert requests or duration
    found = _Found()
    warmed = threading.Barrier(clients + 1, timeout=180)
    go = threading.Barrier(clients + 1, timeout=180)
    box: dict[str, float] = {}

    def client_thread(c: int) -> None:
        state = None
        try:
            state = workload.open(c)
        except Exception as exc:  # noqa: BLE001 - reported as an error of the run
            found.add([], [], [f"open: {exc!r}"], None)
        try:
            warmed.wait()
            go.wait()
        except threading.BrokenBarrierError:
            return
        start = box["start"]
        stop = start + (duration or max_seconds)
        mine, my_ends, my_errors = client_loop(
            workload, state, c, _numbers, start=start, stop=stop, hard_stop=start + max_seconds, requests=requests
        )
        try:
            if state is not None:
                workload.close(state)
        finally:
            found.add(mine, my_ends, my_errors, client_rate(my_ends, start, stop) if duration else None)

    threads = _started(client_thread, clients)
    warmed.wait()
    accounting = Accounting(proxy, queue, {"bench": None, **(processes or {})})
    accounting.begin()
    box["start"] = time.perf_counter()
    go.wait()
    for t in threads:
        t.join(timeout=max_seconds + 120)
    errors = found.errors
    result = RunResult(
        samples=found.samples, errors=len(errors), first_error=errors[0] if errors else "", clients=clients
    )
    accounting.end(result)
    if duration:
        result.window = duration
        result.in_window = sum(1 for e in found.ends if e <= box["start"] + duration)
        result.rate = sum(found.rates)
    return result


def _started(target: Callable[[int], None], clients: int) -> list[threading.Thread]:
    """One started thread per client, running ``target(client)``."""
    threads = [
        threading.Thread(target=target, args=(c,), name=f"bench-client-{c}", daemon=True) for c in range(clients)
    ]
    for t in threads:
        t.start()
    return threads


class _Found:
    """What the clients of a run found, gathered under a lock."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.samples: list[float] = []
        self.ends: list[float] = []
        self.errors: list[str] = []
        self.rates: list[float] = []

    def add(self, samples: list[float], ends: list[float], errors: list[str], rate: float | None) -> None:
        with self.lock:
            self.samples += samples
            self.ends += ends
            self.errors += errors
            if rate is not None:
                self.rates.append(rate)


class Capture:
    """Records every statement psycopg executes (query, params), tagged, to replay them raw."""

    def __init__(self) -> None:
        self.statements: list[tuple[Any, Any, Any]] = []
        self.tag: Any = ("setup", None)
        self._original: Any = None

    def __enter__(self) -> Capture:
        import psycopg

        original = self._original = psycopg.Cursor.execute
        statements = self.statements

        def execute(cur: Any, query: Any, params: Any = None, **kwargs: Any) -> Any:
            statements.append((self.tag, query, params))
            return original(cur, query, params, **kwargs)

        setattr(psycopg.Cursor, "execute", execute)  # noqa: B010 - patched for the capture
        return self

    def __exit__(self, *exc: object) -> None:
        import psycopg

        setattr(psycopg.Cursor, "execute", self._original)  # noqa: B010


class SqsWait:
    """Measures the time ``hibachi.jobs.JobQueue.send_many`` spends waiting for SQS: its wall time
    minus the CPU time of the calling thread meanwhile (botocore building and signing the request
    is in-process work; waiting for the endpoint is not)."""

    def __init__(self) -> None:
        self.ms = 0.0
        self.cpu_ms = 0.0
        self._original: Any = None

    def __enter__(self) -> SqsWait:
        from hibachi.jobs import JobQueue

        original = self._original = JobQueue.send_many
        box = self

        def send_many(queue: Any, jobs: Any) -> Any:
            wall, cpu = time.perf_counter(), time.thread_time()
            try:
                return original(queue, jobs)
            finally:
                used = time.thread_time() - cpu
                box.ms += ((time.perf_counter() - wall) - used) * 1000
                box.cpu_ms += used * 1000

        setattr(JobQueue, "send_many", send_many)  # noqa: B010 - patched for the measurement
        return self

    def __exit__(self, *exc: object) -> None:
        from hibachi.jobs import JobQueue

        setattr(JobQueue, "send_many", self._original)  # noqa: B010


class CpuParts:
    """The calling thread's CPU (``thread_time``) inside a few calls of a request, to say where the
    handler call's CPU goes: the statement (``Database.run``: psycopg and the kernel's socket work),
    the enqueue (``JobQueue.send_many``), and in it the signing (``sigv4.sign``) and the HTTP exchange
    (``Sqs._exchange``), and the Powertools resolver (``resolve``: routing, validation, the route's
    code, serialization). Each wrapped call adds two ``thread_time`` reads (about 1 µs each).
    ``take()`` returns the parts of the request just made, and resets them."""

    TARGETS = (
        ("statement", "hibachi.db", "Database", "run"),
        ("enqueue", "hibachi.jobs", "JobQueue", "send_many"),
        ("signing", "hibachi.sigv4", None, "sign"),
        ("exchange", "hibachi.sqs", "Sqs", "_exchange"),
        ("resolver", "aws_lambda_powertools.event_handler.api_gateway", "APIGatewayHttpResolver", "resolve"),
    )

    def __init__(self) -> None:
        self.ms: dict[str, float] = {}
        self._restore: list[tuple[Any, str, Any]] = []

    def __enter__(self) -> CpuParts:
        import importlib

        for name, module_name, owner_name, attr in self.TARGETS:
            module = importlib.import_module(module_name)
            owner = getattr(module, owner_name) if owner_name else module
            original = getattr(owner, attr)
            # put back as found: the owner's own attribute, or none (an inherited method)
            self._restore.append((owner, attr, vars(owner).get(attr)))
            setattr(owner, attr, self._wrap(name, original))
        return self

    def _wrap(self, name: str, original: Callable[..., Any]) -> Callable[..., Any]:
        parts = self.ms

        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.thread_time()
            try:
                return original(*args, **kwargs)
            finally:
                parts[name] = parts.get(name, 0.0) + (time.thread_time() - start) * 1000

        return timed

    def take(self) -> dict[str, float]:
        found = dict(self.ms)
        self.ms.clear()  # in place: the wrappers hold this dict
        return found

    def __exit__(self, *exc: object) -> None:
        for owner, attr, original in reversed(self._restore):
            if original is None:
                delattr(owner, attr)
            else:
                setattr(owner, attr, original)
        self._restore.clear()


@dataclass
class HandlerWorkload:
    """One API operation through its Lambda handler, with real HTTP API events. With ``sqs_wait``,
    ``waits`` gets each timed request's SQS wait (ms), in order."""

    op: Operation
    fixtures: dict[str, Any]
    warmup: int = 1
    capture: Capture | None = None
    sqs_wait: SqsWait | None = None
    cpu_parts: CpuParts | None = None
    parts: dict[str, list[float]] = field(default_factory=dict)  # CpuParts per timed request
    waits: list[float] = field(default_factory=list)
    send_cpu: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)  # the thread's CPU per timed call (``thread_time``), ms

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
        if self.sqs_wait is not None:
            self.sqs_wait.ms = self.sqs_wait.cpu_ms = 0.0
        if self.cpu_parts is not None:
            self.cpu_parts.take()
        cpu = time.thread_time()
        elapsed = self._invoke(event)
        self.cpu.append((time.thread_time() - cpu) * 1000)
        if self.cpu_parts is not None:
            taken = self.cpu_parts.take()
            for name, *_ in CpuParts.TARGETS:
                self.parts.setdefault(name, []).append(taken.get(name, 0.0))
        if self.sqs_wait is None:
            return elapsed
        self.waits.append(self.sqs_wait.ms)
        self.send_cpu.append(self.sqs_wait.cpu_ms)
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
