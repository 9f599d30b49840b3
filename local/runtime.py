"""Lambda execution environments, emulated: a pool of worker processes per function.

Each :class:`FunctionPool` runs its function in up to ``max_workers`` processes (``spawn``: a fresh
interpreter, like a fresh sandbox), started on demand. A worker has the function's environment plus
what Lambda sets (and no other ``AWS_*`` variable of the parent, so nothing reaches a real account),
``sys.path`` = the function folder then its layers, and loads the handler ONCE by file path, so
module-level state lives across invocations and cold starts are real. It serves one invocation at a
time with a ``LambdaContext``; events and results cross as JSON (a result that is not JSON is
``Runtime.MarshalError``); outliving the function's ``Timeout`` kills the worker
(``Sandbox.Timedout``); an init failure or a crash is an error and the next invocation starts a
fresh worker. Workers also answer ``openapi`` (the ``app`` resolver's document, for the gateway).
Every worker imports this module first, so it imports only the standard library.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from types import ModuleType
from typing import TYPE_CHECKING, Any, cast

from local.events import LambdaContext

if TYPE_CHECKING:
    from local.routes import App, FunctionSpec

log = logging.getLogger("local.runtime")

REGION = "us-east-1"


# -- the worker side (runs in the spawned process) ------------------------------------------------
def _error(exc: BaseException, error_type: str | None = None) -> dict[str, Any]:
    import traceback

    return {
        "errorMessage": str(exc),
        "errorType": error_type or type(exc).__name__,
        "stackTrace": traceback.format_exception(exc),
    }


def load_module(path: str | os.PathLike[str], name: str) -> ModuleType:
    """The Python file ``path`` run as module ``name`` (in ``sys.modules``), the way Lambda loads a
    handler: no package, no relative imports."""
    import importlib.util

    mod_spec = importlib.util.spec_from_file_location(name, path)
    if mod_spec is None or mod_spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(mod_spec)
    sys.modules[name] = module
    mod_spec.loader.exec_module(module)
    return module


def _failure(error_type: str, message: str) -> dict[str, Any]:
    """Lambda's error fields of a failure outside the handler."""
    return {"errorType": error_type, "errorMessage": message}


def _load_handler(spec: dict[str, Any]) -> tuple[ModuleType, Callable[[Any, LambdaContext], Any]]:
    module = load_module(spec["handler_file"], f"_lambda_{spec['logical_id']}_{os.getpid()}_{uuid.uuid4().hex[:8]}")
    handler = getattr(module, spec["handler_name"], None)
    if not callable(handler):
        raise AttributeError(f"handler {spec['handler_name']!r} not found in {spec['handler_file']}")
    return module, handler


def worker_main(conn: Connection, spec: dict[str, Any], env: dict[str, str]) -> None:
    """Entry point of a worker process: set up the environment, load the handler, serve."""
    _enter_sandbox(spec, env)
    try:
        module, handler = _load_handler(spec)
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, like Runtime.ImportModuleError
        import traceback

        traceback.print_exc()
        conn.send(("init_error", _error(exc, "Runtime.ImportModuleError")))
        return
    conn.send(("ready", None))
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError, KeyboardInterrupt):
            return
        kind = message[0]
        if kind == "stop":
            return
        if kind == "openapi":
            conn.send(_openapi(module))
        elif kind == "invoke":
            conn.send(_invoke(handler, spec, *message[1:]))
        else:
            conn.send(("error", _failure("Runtime.Unknown", f"unknown message {kind!r}")))


def _enter_sandbox(spec: dict[str, Any], env: dict[str, str]) -> None:
    """The execution environment: its variables (no other AWS_*), time zone, sys.path, folder."""
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent owns Ctrl-C and stops us
    for key in [k for k in os.environ if k.startswith("AWS_") and k not in env]:
        del os.environ[key]
    os.environ.update(env)
    os.environ["AWS_LAMBDA_LOG_STREAM_NAME"] = spec["log_stream_name"]
    if hasattr(time, "tzset"):
        time.tzset()
    for path in reversed(spec["sys_path"]):
        if path in sys.path:
            sys.path.remove(path)
        sys.path.insert(0, path)
    with contextlib.suppress(OSError):
        os.chdir(spec["code_uri"])


def _openapi(module: ModuleType) -> tuple[str, Any]:
    """The answer to ``openapi``: the document of the module's resolver ``app`` (None without one)."""
    try:
        schema = getattr(getattr(module, "app", None), "get_openapi_json_schema", None)
        return "ok", schema() if schema is not None else None
    except BaseException as exc:  # noqa: BLE001
        return "error", _error(exc)


def _invoke(
    handler: Callable[[Any, LambdaContext], Any], spec: dict[str, Any], request_id: str, event_json: str, timeout: float
) -> tuple[str, Any]:
    """The answer to ``invoke``: ("ok", the result as JSON) or ("error", Lambda's error fields)."""
    context = LambdaContext(
        function_name=spec["function_name"],
        memory_limit_in_mb=str(spec["memory_size"]),
        timeout_ms=int(timeout * 1000),
        aws_request_id=request_id,
        log_stream_name=spec["log_stream_name"],
        region=spec["region"],
    )
    try:
        result = handler(json.loads(event_json), context)
    except BaseException as exc:  # noqa: BLE001 - a handler error, as Lambda reports it
        import traceback

        sys.stderr.write(f"[ERROR] {request_id} {type(exc).__name__}: {exc}\n")
        traceback.print_exc()
        sys.stderr.flush()
        return "error", _error(exc)
    finally:
        sys.stdout.flush()
    try:
        return "ok", json.dumps(result)
    except (TypeError, ValueError) as exc:
        return "error", _error(exc, "Runtime.MarshalError")


# -- the parent side ------------------------------------------------------------------------------
@dataclass
class Invocation:
    """The outcome of one invocation."""

    request_id: str
    ok: bool
    result: Any = None  # the handler's return value (decoded JSON) when ok
    error: dict[str, Any] | None = None  # {"errorType", "errorMessage", "stackTrace"} otherwise
    duration_ms: float = 0.0
    cold_start: bool = False
    timed_out: bool = False


class InvocationError(RuntimeError):
    def __init__(self, invocation: Invocation):
        self.invocation = invocation
        err = invocation.error or {}
        super().__init__(f"{err.get('errorType', 'Error')}: {err.get('errorMessage', '')}")


@dataclass(eq=False)
class _Worker:
    process: Any
    conn: Any

    def alive(self) -> bool:
        return self.process is not None and self.process.is_alive()

    def kill(self) -> None:
        with contextlib.suppress(OSError):
            self.conn.close()
        if self.process is not None and self.process.is_alive():
            self.process.kill()
        if self.process is not None:
            self.process.join(timeout=5)


class FunctionPool:
    """Up to ``max_workers`` execution environments of one function."""

    def __init__(
        self,
        function: FunctionSpec,
        env: dict[str, str] | None = None,
        *,
        max_workers: int = 4,
        extra_paths: list[str] | tuple[str, ...] = (),
        region: str = REGION,
        init_timeout: float = 60.0,
    ):
        self.function = function  # a local.routes.FunctionSpec
        self.max_workers = max(1, int(max_workers))
        self.region = region
        self.init_timeout = init_timeout
        self.env = self._lambda_env(dict(env or {}))
        paths = [str(function.code_uri)] + [str(p) for p in function.layers] + [str(p) for p in extra_paths]
        self.sys_path = list(dict.fromkeys(paths))
        self._idle: list[_Worker] = []
        self._all: set[_Worker] = set()
        self._cond = threading.Condition()
        self._closed = False
        self.in_flight = 0
        self.invocations = 0
        self.cold_starts = 0

    # environment
    def _lambda_env(self, env: dict[str, str]) -> dict[str, str]:
        fn = self.function
        out = {
            "AWS_LAMBDA_FUNCTION_NAME": fn.function_name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(fn.memory_size),
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{fn.function_name}",
            "AWS_LAMBDA_RUNTIME_API": "127.0.0.1:9001",
            "AWS_EXECUTION_ENV": f"AWS_Lambda_{fn.runtime}",
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
            "LAMBDA_TASK_ROOT": str(fn.code_uri),
            "LAMBDA_RUNTIME_DIR": str(fn.code_uri),
            "_HANDLER": fn.handler,
            "TZ": ":UTC",
            "AWS_SAM_LOCAL": "true",
            "PYTHONUNBUFFERED": "1",
        }
        out.update({k: str(v) for k, v in env.items() if v is not None})
        return out

    def _spec(self) -> dict[str, Any]:
        fn = self.function
        return {
            "logical_id": fn.logical_id,
            "function_name": fn.function_name,
            "memory_size": fn.memory_size,
            "handler_file": str(fn.handler_file),
            "handler_name": fn.handler_name,
            "code_uri": str(fn.code_uri),
            "sys_path": self.sys_path,
            "region": self.region,
            "log_stream_name": time.strftime("%Y/%m/%d") + f"/[$LATEST]{uuid.uuid4().hex}",
        }

    # workers
    def _start_worker(self) -> _Worker:
        import multiprocessing

        ctx = multiprocessing.get_context("spawn")
        parent, child = ctx.Pipe(duplex=True)
        env = dict(self.env)
        proc = ctx.Process(
            target=worker_main, args=(child, self._spec(), env), name=f"lambda:{self.function.logical_id}", daemon=True
        )
        proc.start()
        child.close()
        return _Worker(process=proc, conn=parent)

    def _acquire(self) -> tuple[_Worker, bool]:
        """An idle worker, or a new one (cold), waiting when ``max_workers`` are busy."""
        with self._cond:
            while True:
                if self._closed:
                    raise RuntimeError(f"{self.function.logical_id}: pool is closed")
                while self._idle:
                    w = self._idle.pop()
                    if w.alive():
                        return w, False
                    self._all.discard(w)
                if len(self._all) < self.max_workers:
                    placeholder = _Worker(process=None, conn=None)
                    self._all.add(placeholder)
                    break
                self._cond.wait()
        try:
            worker = self._start_worker()
        except BaseException:
            with self._cond:
                self._all.discard(placeholder)
                self._cond.notify()
            raise
        with self._cond:
            self._all.discard(placeholder)
            self._all.add(worker)
        return worker, True

    def _release(self, worker: _Worker, healthy: bool) -> None:
        with self._cond:
            if healthy and not self._closed and worker.alive():
                self._idle.append(worker)
            else:
                self._all.discard(worker)
                worker.kill()
            self._cond.notify()

    def _await_ready(self, worker: _Worker) -> dict[str, Any] | None:
        """None when the worker is ready, else an error dict (init failed or timed out)."""
        if not worker.conn.poll(self.init_timeout):
            return _failure("Runtime.InitTimeout", f"init took over {self.init_timeout} s")
        try:
            kind, payload = worker.conn.recv()
        except (EOFError, OSError):
            return _failure("Runtime.ExitError", "worker exited during init")
        if kind != "ready":
            return cast(dict[str, Any], payload)
        return None

    def _roundtrip(self, message: tuple[object, ...], timeout: float) -> tuple[str, Any, bool]:
        """Send ``message`` to a worker; (kind: ok, error or timeout, payload, cold start)."""
        worker, cold = self._acquire()
        healthy = False
        try:
            if cold:
                with self._cond:
                    self.cold_starts += 1
                err = self._await_ready(worker)
                if err is not None:
                    return "error", err, cold
            worker.conn.send(message)
            if not worker.conn.poll(timeout):
                return "timeout", _failure("Sandbox.Timedout", f"Task timed out after {timeout:.2f} seconds"), cold
            kind, payload = worker.conn.recv()
            healthy = True
            return kind, payload, cold
        except (EOFError, OSError, BrokenPipeError):
            code = worker.process.exitcode if worker.process is not None else None
            return "error", _failure("Runtime.ExitError", f"worker exited (exit code {code})"), cold
        finally:
            self._release(worker, healthy)

    def invoke(self, event: Any, *, request_id: str | None = None, timeout: float | None = None) -> Invocation:
        """Run the handler on ``event`` in one of the pool's workers."""
        request_id = request_id or str(uuid.uuid4())
        limit = float(timeout if timeout is not None else self.function.timeout)
        start = time.monotonic()
        with self._cond:
            self.in_flight += 1
            self.invocations += 1
        try:
            kind, payload, cold = self._roundtrip(("invoke", request_id, json.dumps(event), limit), limit)
        finally:
            with self._cond:
                self.in_flight -= 1
                self._cond.notify_all()
        if kind == "timeout":
            log.error("%s %s: task timed out after %.2f seconds", self.function.logical_id, request_id, limit)
        ok = kind == "ok"
        return Invocation(
            request_id,
            ok,
            result=json.loads(payload) if ok else None,
            error=None if ok else payload,
            duration_ms=(time.monotonic() - start) * 1000,
            cold_start=cold,
            timed_out=kind == "timeout",
        )

    def kill_workers(self) -> int:
        """SIGKILL every live worker of the pool, busy or idle (a crashed execution environment,
        for fault-injection tests); an invocation in flight reports ``Runtime.ExitError`` and the
        next one starts a fresh worker. Returns how many were killed."""
        with self._cond:
            workers = [w for w in self._all if w.process is not None]
        killed = 0
        for w in workers:
            if w.alive():
                w.process.kill()
                killed += 1
        return killed

    def openapi(self, timeout: float = 30.0) -> str | None:
        """The module's ``app.get_openapi_json_schema()`` (None without a resolver named ``app``)."""
        kind, payload, _ = self._roundtrip(("openapi",), timeout)
        if kind == "ok":
            return cast(str | None, payload)
        raise RuntimeError(f"{self.function.logical_id}: openapi failed: {(payload or {}).get('errorMessage')}")

    @property
    def size(self) -> int:
        with self._cond:
            return len(self._all)

    def close(self, timeout: float = 5.0) -> None:
        with self._cond:
            self._closed = True
            workers = list(self._all)
            self._idle.clear()
            self._all.clear()
            self._cond.notify_all()
        for w in workers:
            if w.conn is not None:
                with contextlib.suppress(OSError, BrokenPipeError, ValueError):
                    w.conn.send(("stop",))
        deadline = time.monotonic() + timeout
        for w in workers:
            if w.process is not None:
                w.process.join(timeout=max(0.0, deadline - time.monotonic()))
            w.kill()


class FunctionRegistry:
    """One :class:`FunctionPool` per function of an app, created on first use, sharing the env."""

    def __init__(
        self,
        app: App,
        env: dict[str, str] | None = None,
        *,
        max_workers: int = 4,
        extra_paths: list[str] | tuple[str, ...] = (),
        region: str = REGION,
    ):
        self.app = app  # local.routes.App
        self.env = dict(env or {})
        self.max_workers = max_workers
        self.extra_paths = tuple(str(p) for p in extra_paths)
        self.region = region
        self._pools: dict[str, FunctionPool] = {}
        self._lock = threading.Lock()

    def pool(self, logical_id: str) -> FunctionPool:
        with self._lock:
            pool = self._pools.get(logical_id)
            if pool is None:
                fn = self.app.functions[logical_id]
                env = {**fn.environment, **self.env}
                pool = FunctionPool(
                    fn, env, max_workers=self.max_workers, extra_paths=self.extra_paths, region=self.region
                )
                self._pools[logical_id] = pool
            return pool

    def invoke(self, logical_id: str, event: Any, **kwargs: Any) -> Invocation:
        return self.pool(logical_id).invoke(event, **kwargs)

    @property
    def in_flight(self) -> int:
        with self._lock:
            pools = list(self._pools.values())
        return sum(p.in_flight for p in pools)

    def close(self) -> None:
        with self._lock:
            pools = list(self._pools.values())
            self._pools.clear()
        for p in pools:
            p.close()
