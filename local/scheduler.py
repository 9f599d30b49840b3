"""EventBridge Scheduler, locally (moto stores schedules but never fires them): daemon loops.

* :class:`ReconcilerTick` invokes the worker with the schedule's input (``{"task": "reconcile"}``)
  every ``interval`` seconds (60 by default: the template's rate is longer), the first one
  interval after start, like a new rate schedule.
* :class:`OneTimeScheduleRunner` scans the schedules on moto every second and fires each enabled
  ``at(...)`` schedule whose time has come in its time zone: ``Target.Input`` to ``Target.Arn``
  (SQS, SNS, or a function of the template), then deletes it when ``ActionAfterCompletion`` is
  ``DELETE`` (otherwise it fires once). A failing target is retried on the next scans; past its
  retry policy the input goes to the dead-letter queue. ``rate()``/``cron()`` schedules are left
  alone: the reconciler is the only recurring one, and it has its own tick.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Self

if TYPE_CHECKING:
    from local.aws import BotoClient
    from local.runtime import Invocation

# a schedule as fired once: (group, name, expression, last modification)
ScheduleKey = tuple[str, str, str | None, str]

log = logging.getLogger("local.scheduler")

_AT = re.compile(r"^at\((\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})\)$")


def due_time(expression: str, tz_name: str | None) -> datetime | None:
    """The UTC instant of an ``at(...)`` expression in ``tz_name``; None for rate/cron."""
    from zoneinfo import ZoneInfo

    m = _AT.match((expression or "").strip())
    if not m:
        return None
    local = datetime.fromisoformat(m.group(1)).replace(tzinfo=ZoneInfo(tz_name or "UTC"))
    return local.astimezone(UTC)


class Loop:
    """A daemon thread that calls :meth:`step` until stopped: ``pause`` seconds after each step,
    ``backoff`` after one that raised (logged). The poller and the webhook forwarder are loops too."""

    pause = 0.0
    backoff = 1.0

    def __init__(self, name: str):
        self.name = name
        self.stop_event = threading.Event()
        self._thread: threading.Thread | None = None
        self.in_flight = 0

    def start(self) -> Self:
        self.stop_event.clear()
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self.stop_event.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def step(self) -> object:  # pragma: no cover - overridden
        raise NotImplementedError

    def _run(self) -> None:
        while not self.stop_event.is_set():
            pause = self.pause
            try:
                self.step()
            except Exception:
                if self.stop_event.is_set():
                    return
                log.exception("%s failed", self.name)
                pause = self.backoff
            self.stop_event.wait(pause)


class ReconcilerTick(Loop):
    """Invoke ``invoke(event)`` every ``interval`` seconds."""

    def __init__(
        self,
        invoke: Callable[[dict[str, Any]], Invocation],
        *,
        interval: float = 60.0,
        event: dict[str, Any] | None = None,
        name: str = "reconciler-tick",
    ):
        super().__init__(name)
        self.invoke = invoke
        self.interval = float(interval)
        self.event = dict(event or {"task": "reconcile"})
        self.ticks = 0

    def step(self) -> None:
        if not self.stop_event.wait(self.interval):
            self.tick()

    def tick(self) -> Any:
        self.in_flight += 1
        try:
            invocation = self.invoke(dict(self.event))
            self.ticks += 1
            if not getattr(invocation, "ok", True):
                err = invocation.error or {}
                log.warning(
                    "%s: %s failed: %s: %s", self.name, self.event, err.get("errorType"), err.get("errorMessage")
                )
            return invocation
        except Exception:
            log.exception("%s: invocation failed", self.name)
            return None
        finally:
            self.in_flight -= 1


class OneTimeScheduleRunner(Loop):
    """Fire due ``at()`` schedules stored on moto."""

    def __init__(
        self,
        scheduler_client: BotoClient,
        *,
        sqs: BotoClient = None,
        sns: BotoClient = None,
        invoke_function: Callable[[str, dict[str, Any]], Invocation] | None = None,
        poll_interval: float = 1.0,
        clock: Callable[[], datetime] | None = None,
        name: str = "one-time-schedules",
    ):
        super().__init__(name)
        self.scheduler = scheduler_client
        self.sqs = sqs
        self.sns = sns
        self.invoke_function = invoke_function  # (function name, event) -> Invocation
        self.pause = float(poll_interval)
        self.clock = clock or (lambda: datetime.now(UTC))
        self._fired: set[ScheduleKey] = set()
        self._attempts: dict[ScheduleKey, int] = {}
        self.fired = 0
        self.scans = 0

    def step(self) -> int:
        """Fire every due schedule once; the number fired."""
        fired = 0
        now = self.clock()
        pages = self.scheduler.get_paginator("list_schedules").paginate()
        for summary in [s for page in pages for s in page.get("Schedules") or []]:
            if summary.get("State", "ENABLED") != "ENABLED":
                continue
            name, group = summary["Name"], summary.get("GroupName") or "default"
            try:
                schedule = self.scheduler.get_schedule(Name=name, GroupName=group)
            except self.scheduler.exceptions.ResourceNotFoundException:
                continue  # deleted meanwhile (cancel, reschedule)
            due = due_time(schedule.get("ScheduleExpression", ""), schedule.get("ScheduleExpressionTimezone"))
            if due is None or due > now or schedule.get("State", "ENABLED") != "ENABLED":
                continue
            key = (group, name, schedule.get("ScheduleExpression"), str(schedule.get("LastModificationDate")))
            if key in self._fired:
                continue
            self.in_flight += 1
            try:
                if self._fire(schedule, key, due, now):
                    fired += 1
            finally:
                self.in_flight -= 1
        self.scans += 1
        return fired

    def _fire(self, schedule: dict[str, Any], key: ScheduleKey, due: datetime, now: datetime) -> bool:
        name, group = schedule["Name"], schedule.get("GroupName") or "default"
        target = schedule.get("Target") or {}
        payload = target.get("Input") or "{}"
        try:
            self._deliver(target.get("Arn", ""), payload)
        except Exception as exc:  # noqa: BLE001 - retried per the retry policy
            attempts = self._attempts.get(key, 0) + 1
            self._attempts[key] = attempts
            policy = target.get("RetryPolicy") or {}
            max_attempts = int(policy.get("MaximumRetryAttempts", 185))
            max_age = float(policy.get("MaximumEventAgeInSeconds", 86400))
            log.warning("%s: schedule %s/%s target failed (attempt %d): %s", self.name, group, name, attempts, exc)
            if attempts <= max_attempts and (now - due).total_seconds() <= max_age:
                return False
            dlq = (target.get("DeadLetterConfig") or {}).get("Arn")
            if dlq:
                try:
                    self._deliver(dlq, payload)
                except Exception:
                    log.exception("%s: dead-letter delivery failed", self.name)
        self._attempts.pop(key, None)
        self.fired += 1
        log.info(
            "%s: fired %s/%s (%s) -> %s", self.name, group, name, schedule.get("ScheduleExpression"), target.get("Arn")
        )
        if schedule.get("ActionAfterCompletion") == "DELETE":
            with contextlib.suppress(self.scheduler.exceptions.ResourceNotFoundException):
                self.scheduler.delete_schedule(Name=name, GroupName=group)
        else:
            self._fired.add(key)
        return True

    def _deliver(self, arn: str, payload: str) -> None:
        service = arn.split(":")[2] if arn.count(":") >= 5 else ""
        if service == "sqs":
            from local.aws import queue_url_from_arn

            self.sqs.send_message(QueueUrl=queue_url_from_arn(self.sqs, arn), MessageBody=payload)
        elif service == "sns":
            self.sns.publish(TopicArn=arn, Message=payload)
        elif service == "lambda" and self.invoke_function is not None:
            function_name = arn.split(":")[6]
            invocation = self.invoke_function(function_name, json.loads(payload))
            if not getattr(invocation, "ok", True):
                raise RuntimeError((invocation.error or {}).get("errorMessage", "invocation failed"))
        else:
            raise ValueError(f"unsupported schedule target {arn!r}")
