"""The local stack in one object: what ``python -m local.run`` starts (after PostgreSQL and the
migrations) and what HTTP and end-to-end tests use in-process::

    with LocalStack(database_url=dsn) as stack:           # free ports unless given
        token = stack.token(["messages:write"])
        stack.drain(timeout=10)                           # jobs queue empty, nothing running
        stack.invoke_worker({"task": "reconcile"})

It wires ``local.aws.Moto`` (its resources become the functions' environment, with the database
settings; ``env`` overrides any of it), ``local.runtime`` (worker processes per function),
``local.gateway`` with ``local.auth``, and, for the function with an ``SQS`` event (a template
without one has none), ``local.poller`` and the reconciler tick of ``local.scheduler``; then the
one-time schedules and, with ``webhook_url``, ``local.forwarder``.

Workers are spawned, which imports the parent's ``__main__`` again: a script that starts a
LocalStack must do so under ``if __name__ == "__main__":`` (``python -m local.run`` and pytest do).
"""

from __future__ import annotations

import json
import logging
import os
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import KW_ONLY, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hibachi.ops import QueueDepth

    from local.auth import JwtAuthority
    from local.aws import BotoClient, Moto, Resources
    from local.forwarder import WebhookForwarder
    from local.gateway import Gateway
    from local.poller import SqsPoller
    from local.routes import App, FunctionSpec
    from local.runtime import FunctionRegistry, Invocation
    from local.scheduler import OneTimeScheduleRunner, ReconcilerTick

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_TEMPLATE = ROOT / "template.yaml"
DEFAULT_LAYER = ROOT / "layers" / "common"

log = logging.getLogger("local.stack")


def wait_until(predicate: Callable[[], Any], timeout: float, interval: float = 0.1, message: str = "condition") -> Any:
    """Poll ``predicate`` until it returns something truthy (and return that); ``TimeoutError``
    at the deadline. For tests and scripts: a deadline, never a fixed sleep."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"{message} not met within {timeout} s")
        time.sleep(interval)


def base_function_env(database_url: str | None) -> dict[str, str]:
    """Settings every local function gets, before the AWS resources and the user's overrides."""
    env = {
        "DB_IAM_AUTH": "false",
        "DB_SSLMODE": "disable",
        "POWERTOOLS_SERVICE_NAME": "hibachi",
        "POWERTOOLS_METRICS_NAMESPACE": "Hibachi",
        "POWERTOOLS_TRACE_DISABLED": "true",
        "POWERTOOLS_LOG_LEVEL": os.environ.get("POWERTOOLS_LOG_LEVEL", "INFO"),
        "APP_VERSION": os.environ.get("APP_VERSION", "local"),
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }
    if database_url:
        env["DATABASE_URL"] = database_url
    return env


@dataclass(eq=False, repr=False)
class LocalStack:
    """moto + gateway + poller + scheduler, in this process (functions in worker processes).

    moto keeps ONE state per process, whatever server it answers on: two stacks in one process
    (tests) with the same queue names would consume each other's jobs, and one's scheduler fires
    the other's schedules. Unnamed stacks get names of their own (``resource_prefix``); `python -m
    local.run` names its resources "hibachi" (stable for ops). ``moto_process=True``: moto in a
    child process, a state of this stack's own."""

    database_url: str | None = None
    _: KW_ONLY
    template: Path = DEFAULT_TEMPLATE
    host: str = "127.0.0.1"
    port: int = 0
    moto_port: int = 0
    moto_process: bool = False
    env: dict[str, str] = field(default_factory=dict)  # overrides of the functions' environment
    max_workers: int = 4
    visibility_timeout: int = 30
    max_receive_count: int = 5
    reconcile_interval: float = 60.0
    schedule_poll_interval: float = 1.0
    poll_wait_seconds: int = 1
    enable_poller: bool = True
    enable_scheduler: bool = True
    enable_reconciler: bool = True
    audience: str | Iterable[str] | None = None
    issuer: str | None = None
    key_dir: Path | str | None = None
    resource_prefix: str | None = None
    webhook_url: str | None = None  # the webhook's API destination, forwarded to locally
    webhook_api_key: str | None = None
    # the parts, once started (the optional ones stay None when disabled or without a worker)
    poller: SqsPoller | None = field(default=None, init=False)
    reconciler: ReconcilerTick | None = field(default=None, init=False)
    schedules: OneTimeScheduleRunner | None = field(default=None, init=False)
    forwarder: WebhookForwarder | None = field(default=None, init=False)
    function_env: dict[str, str] = field(default_factory=dict, init=False)
    app: App = field(init=False)
    moto: Moto = field(init=False)
    resources: Resources = field(init=False)
    registry: FunctionRegistry = field(init=False)
    gateway: Gateway = field(init=False)
    authority: JwtAuthority = field(init=False)
    _started: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        self.template = Path(self.template)
        self.resource_prefix = self.resource_prefix or f"hibachi-{uuid.uuid4().hex[:6]}"

    # lifecycle --------------------------------------------------------------------------------------
    def __enter__(self) -> LocalStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> LocalStack:
        if self._started:
            return self
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        self._started = True
        return self

    def _start(self) -> None:
        from local.auth import JwtAuthority, default_issuer
        from local.aws import Moto
        from local.gateway import Gateway
        from local.routes import load_app
        from local.runtime import FunctionRegistry

        assert self.resource_prefix is not None
        self.app = app = load_app(self.template)
        self.moto = moto = Moto(
            self.resource_prefix,
            port=self.moto_port,
            host=self.host,
            process=self.moto_process,
            visibility_timeout=self.visibility_timeout,
            max_receive_count=self.max_receive_count,
        )
        self.resources = resources = moto.start().resources
        self.function_env = {**base_function_env(self.database_url), **resources.function_env(), **self.env}
        self.registry = FunctionRegistry(
            app,
            self.function_env,
            max_workers=self.max_workers,
            extra_paths=[str(DEFAULT_LAYER)],
            region=resources.region,
        )
        self.gateway = gateway = Gateway(app, self.registry, host=self.host, port=self.port)
        port = gateway.bind()
        issuer = self.issuer or default_issuer(port)
        self.authority = JwtAuthority(issuer=issuer, audience=self.audience, key_dir=self.key_dir)
        gateway._authority = self.authority
        # the template's JwtIssuer: this stack's issuer (the protected-resource metadata names it)
        self.registry.env.setdefault("JWT_ISSUER", issuer)
        gateway.start()
        self._start_worker_parts()
        if self.webhook_url:
            from local.forwarder import WebhookForwarder

            self.forwarder = WebhookForwarder(
                self.client("sqs"), self.resources.webhook_queue_url, self.webhook_url, api_key=self.webhook_api_key
            ).start()
        if self.enable_scheduler:
            self._start_scheduler()

    def _start_worker_parts(self) -> None:
        """The worker's SQS poller and its reconciler tick (when the template has a worker)."""
        from local.poller import SqsPoller
        from local.scheduler import ReconcilerTick

        worker = self._worker()
        if worker is None:
            return
        fn, props = worker
        registry, resources = self.registry, self.resources
        if self.enable_poller:
            self.poller = SqsPoller(
                self.client("sqs"),
                resources.jobs_queue_url,
                resources.jobs_queue_arn,
                lambda event: registry.invoke(fn.logical_id, event),
                batch_size=min(10, int(props.get("BatchSize", 10))),
                wait_time_seconds=self.poll_wait_seconds,
                report_batch_item_failures="ReportBatchItemFailures"
                in (props.get("FunctionResponseTypes") or ["ReportBatchItemFailures"]),
                region=resources.region,
                name=f"sqs:{fn.logical_id}",
            ).start()
        if self.enable_reconciler:
            self.reconciler = ReconcilerTick(
                lambda event: registry.invoke(fn.logical_id, event),
                interval=self.reconcile_interval,
                event=self._reconcile_event(fn),
            ).start()

    def _start_scheduler(self) -> None:
        from local.scheduler import OneTimeScheduleRunner

        self.schedules = OneTimeScheduleRunner(
            self.client("scheduler"),
            sqs=self.client("sqs"),
            sns=self.client("sns"),
            invoke_function=self.invoke,
            poll_interval=self.schedule_poll_interval,
        ).start()

    def stop(self) -> None:
        """Stop everything started, in reverse order; safe to call twice."""
        for part in (self.schedules, self.reconciler, self.poller, self.forwarder):
            if part is not None:
                try:
                    part.stop()
                except Exception:
                    log.exception("stopping %s", part)
        self.schedules = self.reconciler = self.poller = self.forwarder = None
        # those started, in reverse order
        gateway, registry, moto = (self.__dict__.pop(name, None) for name in ("gateway", "registry", "moto"))
        if gateway is not None:
            gateway.stop()
        if registry is not None:
            registry.close()
        if moto is not None:
            moto.stop()
        self._started = False

    # wiring helpers ---------------------------------------------------------------------------------
    def _worker(self) -> tuple[FunctionSpec, dict[str, Any]] | None:
        """(function, SQS event properties) of the worker, or None."""
        return next(((fn, props) for fn, _, props in self.app.sqs_consumers()), None)

    def _reconcile_event(self, fn: FunctionSpec) -> dict[str, Any]:
        for props in fn.events_of_type("Schedule", "ScheduleV2").values():
            raw = props.get("Input")
            if isinstance(raw, str):
                try:
                    value = json.loads(raw)
                    if isinstance(value, dict):
                        return value
                except ValueError:
                    pass
        return {"task": "reconcile"}

    # public API -------------------------------------------------------------------------------------
    @property
    def url(self) -> str:
        return self.gateway.url

    @property
    def endpoint_url(self) -> str:
        return self.resources.endpoint_url

    @property
    def queue_urls(self) -> dict[str, str]:
        return self.resources.queue_urls

    def client(self, service: str) -> BotoClient:
        """A boto3 client on this stack's moto (cached per service)."""
        return self.moto.client(service)

    @property
    def sqs(self) -> BotoClient:
        return self.client("sqs")

    def token(self, scopes: Iterable[str] | str | None = None, **kwargs: Any) -> str:
        """A valid token for this gateway (all scopes when ``scopes`` is None)."""
        return self.authority.issue_token(scopes, **kwargs)

    def auth_headers(self, scopes: Iterable[str] | str | None = None, **kwargs: Any) -> dict[str, str]:
        return {"authorization": f"Bearer {self.token(scopes, **kwargs)}"}

    def invoke(self, function: str, event: Any, timeout: float | None = None) -> Invocation:
        """Invoke a function (logical id or name) in its pool; a ``local.runtime.Invocation``."""
        fn = self.app.function_for(function)
        if fn is None:
            raise KeyError(function)
        return self.registry.invoke(fn.logical_id, event, timeout=timeout)

    def invoke_worker(self, event: Any, *, check: bool = True, timeout: float | None = None) -> Any:
        """Invoke the worker directly (e.g. ``{"task": "reconcile"}``); its result, or
        ``local.runtime.InvocationError`` when it failed (``check=False`` returns the Invocation)."""
        from local.runtime import InvocationError

        worker = self._worker()
        if worker is None:
            raise RuntimeError("the template has no worker function (no SQS event)")
        invocation = self.registry.invoke(worker[0].logical_id, event, timeout=timeout)
        if not check:
            return invocation
        if not invocation.ok:
            raise InvocationError(invocation)
        return invocation.result

    def queue_depth(self, queue: str = "jobs") -> QueueDepth:
        from hibachi.ops import QUEUE_ATTRIBUTES, depth_of

        url = self.queue_urls.get(queue, queue)
        return depth_of(self.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=QUEUE_ATTRIBUTES)["Attributes"])

    def busy(self) -> dict[str, Any] | None:
        """What is still going on (None when idle): messages in the jobs queue, invocations."""
        depth = self.queue_depth("jobs")
        running = {
            "invocations": self.registry.in_flight,
            "poller": self.poller.in_flight if self.poller else 0,
            "schedules": self.schedules.in_flight if self.schedules else 0,
            "reconciler": self.reconciler.in_flight if self.reconciler else 0,
        }
        if any(depth.values()) or any(running.values()):
            return {**depth, **running}
        return None

    def drain(self, timeout: float = 30.0, interval: float = 0.05) -> None:
        """Wait until the jobs queue is empty (visible, in flight, delayed) and no invocation is
        running, seen twice in a row; ``TimeoutError`` (with what was left) at the deadline.
        A message whose processing failed stays in flight until its visibility timeout."""
        deadline = time.monotonic() + timeout
        idle_once = False
        last: dict[str, Any] | None = None
        while True:
            last = self.busy()
            if last is None:
                if idle_once:
                    return
                idle_once = True
            else:
                idle_once = False
            if time.monotonic() >= deadline:
                raise TimeoutError(f"local stack not drained within {timeout} s: {last}")
            time.sleep(interval)
