"""AWS, locally: moto's server, and the resources the template declares.

:class:`MotoServer` runs moto on 127.0.0.1 (port 0: a free one), in this process or in a child
process of its own (``process=True``); with ``keep_alive=True`` (the bench's) under waitress, which
keeps HTTP/1.1 connections open as AWS's endpoints do (werkzeug's server closes every one).
:func:`create_resources` creates, idempotently, what ``template.yaml`` gives the functions: the jobs
queue with its DLQ redrive, the scheduler's DLQ, the follow-up topic (with a queue subscribed, and
one for the verification codes that :func:`sent_codes` reads), the schedule group and its role, and
the event bus with its archive and three rules, each into an SQS queue (moto delivers to SQS only):
``events`` (what ``python -m ops --local events`` reads), ``staff_notices`` and ``webhook`` (what
``local.forwarder`` POSTs). :class:`Resources` holds their URLs and ARNs, and turns them into the
functions' environment (:meth:`Resources.function_env`) or ``Settings`` fields.

:class:`Moto` is the two together, the one way to start moto: the local stack, the tests
(``testkit.env``) and the bench use it.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from moto.server import ThreadedMotoServer
    from waitress.server import BaseWSGIServer, MultiSocketServer

# A boto3 client: boto3 ships no types (the Lambda runtime provides boto3; stubs would pin another
# version), so its calls are Any wherever it is used.
type BotoClient = Any

ROOT = Path(__file__).resolve().parent.parent

REGION = "us-east-1"
ACCOUNT_ID = "123456789012"
DEFAULT_PORT = int(os.environ.get("LOCAL_MOTO_PORT", "5055"))
CODES_QUEUE = "verification-codes"
CODE_MESSAGE_TYPE = "verification_code"  # hibachi.verifications.delivery.MESSAGE_TYPE
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing"}


class MotoServer:
    """moto's threaded server on loopback: in this process, or with ``process=True`` in a child
    process of its own.

    moto keeps ONE state per process, whatever server answers: servers of one process (and
    ``moto.mock_aws``) see, and reset, each other's queues and schedules. A child's state is its
    own, and its CPU time is not this process's (the bench measures this process). The child dies
    with this process (it serves until its stdin closes). ``log``: the child's stderr (default:
    discarded)."""

    def __init__(
        self,
        port: int = DEFAULT_PORT,
        host: str = "127.0.0.1",
        *,
        process: bool = False,
        log: Path | None = None,
        keep_alive: bool = False,
    ):
        self.host = host
        self.port = port
        self.process = process
        self.keep_alive = keep_alive
        self.log = log
        self._waitress: BaseWSGIServer | MultiSocketServer | None = None  # keep_alive
        self._werkzeug: ThreadedMotoServer | None = None
        self._child: subprocess.Popen[bytes] | None = None

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def pid(self) -> int:
        """The process that serves (this one, or the child)."""
        return self._child.pid if self._child is not None else os.getpid()

    def start(self, timeout: float = 60.0) -> str:
        if self._waitress is not None or self._werkzeug is not None or self._child is not None:
            return self.endpoint_url
        if self.process:
            self._start_child(timeout)
        else:
            self._start_here(timeout)
        return self.endpoint_url

    def _start_here(self, timeout: float) -> None:
        _parse_jsonpath_once()
        if self.keep_alive:
            self._start_waitress()
        else:
            self._start_werkzeug()
        deadline = time.monotonic() + timeout
        while True:  # the server has bound the socket; be sure it answers before anyone calls it
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"moto did not start on {self.endpoint_url}") from None
                time.sleep(0.05)

    def _start_waitress(self) -> None:
        """moto's WSGI application under waitress, which keeps HTTP/1.1 connections open between
        requests as AWS's endpoints do (and sets ``TCP_NODELAY``). Werkzeug's development server,
        moto's own, answers every request with ``Connection: close``: each call then pays a new TCP
        connection, which no client of a real SQS endpoint does (the bench counts that CPU)."""
        import threading

        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
        from waitress.server import create_server

        server = create_server(
            DomainDispatcherApplication(create_backend_app),
            host=self.host,
            port=self.port,
            threads=8,
            connection_limit=1000,
            channel_timeout=300,
            ident="moto",
        )
        self.port = int(server.effective_port)  # type: ignore[union-attr]
        threading.Thread(target=server.run, name="moto-waitress", daemon=True).start()
        self._waitress = server

    def _start_werkzeug(self) -> None:
        import logging

        from moto.moto_server.werkzeug_app import MotoRequestHandler
        from moto.server import ThreadedMotoServer

        logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no access log line per AWS call
        # answer at once: with Nagle's algorithm on, a send after an idle spell stalls ~40 ms on
        # delayed ACKs, which no real SQS endpoint does
        MotoRequestHandler.disable_nagle_algorithm = True
        server = ThreadedMotoServer(ip_address=self.host, port=self.port, verbose=False)
        server.start()
        self._werkzeug = server
        self.host, self.port = server.get_host_and_port()

    def _start_child(self, timeout: float) -> None:
        env = {
            **os.environ,
            **CREDENTIALS,
            # purging a queue twice within 60 s is allowed (SQS refuses it): tests and the bench
            # empty the queues between runs
            "MOTO_SQS_ENFORCE_STRICT_QUEUE_PURGE_BEHAVIOUR": "false",
        }
        env.pop("AWS_ENDPOINT_URL", None)
        stderr = open(self.log, "ab") if self.log else subprocess.DEVNULL  # noqa: SIM115 - closed below
        try:
            self._child = subprocess.Popen(
                [
                    sys.executable,
                    "-c",
                    f"from local.aws import _serve; _serve({self.host!r}, {self.port}, {self.keep_alive!r})",
                ],
                cwd=ROOT,
                env=env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=stderr,
            )
        finally:
            if not isinstance(stderr, int):
                stderr.close()
        assert self._child.stdout is not None
        ready, _, _ = select.select([self._child.stdout], [], [], timeout)
        line = self._child.stdout.readline() if ready else b""
        if not line.strip().isdigit():
            self.stop()
            raise RuntimeError(f"moto did not start in a child process (its log: {self.log or 'discarded'})")
        self.port = int(line)

    def reset(self) -> None:
        """Forget everything (moto's reset API): queues, topics, schedules, roles."""
        import urllib.request

        url = f"{self.endpoint_url}/moto-api/reset"  # our own server on loopback
        with urllib.request.urlopen(urllib.request.Request(url, method="POST"), timeout=10) as response:  # noqa: S310
            response.read()

    def stop(self) -> None:
        if self._waitress is not None:
            self._waitress.close()
            self._waitress = None
        if self._werkzeug is not None:
            self._werkzeug.stop()
            self._werkzeug = None
        if self._child is not None:
            child, self._child = self._child, None
            try:
                if child.stdin is not None:
                    child.stdin.close()
                child.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                child.kill()
                child.wait(timeout=10)
            if child.stdout is not None:
                child.stdout.close()


def _parse_jsonpath_once() -> None:
    """moto builds a new JSONPath parser (ply's tables, about 8 ms) for each input path of each rule
    target of each event: 8 paths for a target without an input transformer. With the bus's four
    targets a PutEvents of 10 entries took 1-5 s, longer than the worker's 5 s read timeout on a
    busy machine, so publishing stalled. The paths are a handful of constants: parse each once."""
    import functools

    import jsonpath_ng.ext

    names = vars(jsonpath_ng.ext)  # moto imports ``parse`` from here at each call
    if not hasattr(names["parse"], "cache_info"):
        names["parse"] = functools.lru_cache(maxsize=512)(names["parse"])


def _serve(host: str, port: int, keep_alive: bool = False) -> None:
    """The child of ``MotoServer(process=True)``: serve, print the port, stop when stdin closes."""
    server = MotoServer(port, host, keep_alive=keep_alive)
    server.start()
    print(server.port, flush=True)
    sys.stdin.read()
    server.stop()


def client(service: str, endpoint_url: str, region: str = REGION) -> BotoClient:
    """A boto3 client on moto with dummy credentials (never a real account)."""
    import boto3

    return boto3.client(
        service,
        endpoint_url=endpoint_url,
        region_name=region,
        aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
    )


@dataclass
class Resources:
    endpoint_url: str
    region: str
    jobs_queue_url: str
    jobs_queue_arn: str
    jobs_dlq_url: str
    scheduler_dlq_url: str
    scheduler_dlq_arn: str
    followup_topic_arn: str
    followups_queue_url: str
    schedule_group: str
    scheduler_role_arn: str
    verification_codes_queue_url: str = ""
    event_bus_name: str = ""
    events_queue_url: str = ""
    staff_notices_queue_url: str = ""
    webhook_queue_url: str = ""

    @property
    def queue_urls(self) -> dict[str, str]:
        return {
            "jobs": self.jobs_queue_url,
            "jobs_dlq": self.jobs_dlq_url,
            "scheduler_dlq": self.scheduler_dlq_url,
            "followups": self.followups_queue_url,
            "events": self.events_queue_url,
            "staff_notices": self.staff_notices_queue_url,
            "webhook": self.webhook_queue_url,
        }

    def function_env(self) -> dict[str, str]:
        return {
            "AWS_ENDPOINT_URL": self.endpoint_url,
            "AWS_REGION": self.region,
            "AWS_DEFAULT_REGION": self.region,
            **CREDENTIALS,
            "JOBS_QUEUE_URL": self.jobs_queue_url,
            "JOBS_DLQ_URL": self.jobs_dlq_url,
            "SCHEDULER_DLQ_URL": self.scheduler_dlq_url,
            "FOLLOWUP_TOPIC_ARN": self.followup_topic_arn,
            "SCHEDULER_GROUP_NAME": self.schedule_group,
            "SCHEDULER_ROLE_ARN": self.scheduler_role_arn,
            "SCHEDULER_TARGET_ARN": self.jobs_queue_arn,
            "SCHEDULER_DLQ_ARN": self.scheduler_dlq_arn,
            "EVENT_BUS_NAME": self.event_bus_name,
        }

    def settings(self) -> dict[str, str]:
        """:meth:`function_env` as ``hibachi.settings.Settings`` fields, for in-process handlers
        (``settings.override(**resources.settings())``): the queues, topic, scheduler, endpoint."""
        from hibachi.settings import Settings

        by_variable = {
            (f.validation_alias if isinstance(f.validation_alias, str) else name).upper(): name
            for name, f in Settings.model_fields.items()
        }
        return {by_variable[k]: v for k, v in self.function_env().items() if k in by_variable}


def _queue(sqs: BotoClient, name: str, attributes: dict[str, str]) -> tuple[str, str]:
    try:
        url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
    except sqs.exceptions.QueueNameExists:
        # SQS refuses CreateQueue for an existing name with other attributes: find it and update them
        url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
    sqs.set_queue_attributes(QueueUrl=url, Attributes=attributes)
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return url, arn


def create_resources(
    endpoint_url: str,
    *,
    prefix: str = "hibachi",
    region: str = REGION,
    visibility_timeout: int = 30,
    max_receive_count: int = 5,
) -> Resources:
    """Create (or find) the template's queues, topic, schedule group and role on moto."""
    sqs = client("sqs", endpoint_url, region)
    sse = {"SqsManagedSseEnabled": "true"}
    jobs_dlq_url, jobs_dlq_arn = _queue(sqs, f"{prefix}-jobs-dlq", {**sse, "MessageRetentionPeriod": "1209600"})
    jobs_url, jobs_arn = _queue(
        sqs,
        f"{prefix}-jobs",
        {
            **sse,
            "VisibilityTimeout": str(int(visibility_timeout)),
            "RedrivePolicy": json.dumps(
                {"deadLetterTargetArn": jobs_dlq_arn, "maxReceiveCount": int(max_receive_count)}
            ),
        },
    )
    sched_dlq_url, sched_dlq_arn = _queue(sqs, f"{prefix}-scheduler-dlq", {**sse, "MessageRetentionPeriod": "1209600"})
    followups_url, followups_arn = _queue(sqs, f"{prefix}-followups-published", sse)

    sns = client("sns", endpoint_url, region)
    topic_arn = _topic(sns, f"{prefix}-followups", followups_arn)
    codes_url, codes_arn = _queue(sqs, f"{prefix}-{CODES_QUEUE}", sse)
    _topic(sns, f"{prefix}-followups", codes_arn, {"FilterPolicy": json.dumps({"type": [CODE_MESSAGE_TYPE]})})
    group = _schedule_group(client("scheduler", endpoint_url, region), f"{prefix}-followups")
    role_arn = _scheduler_role(client("iam", endpoint_url, region), f"{prefix}-scheduler-role")
    events = create_event_resources(endpoint_url, sqs, prefix=prefix, region=region)
    return Resources(
        **events,
        endpoint_url=endpoint_url,
        region=region,
        jobs_queue_url=jobs_url,
        jobs_queue_arn=jobs_arn,
        jobs_dlq_url=jobs_dlq_url,
        scheduler_dlq_url=sched_dlq_url,
        scheduler_dlq_arn=sched_dlq_arn,
        followup_topic_arn=topic_arn,
        followups_queue_url=followups_url,
        schedule_group=group,
        scheduler_role_arn=role_arn,
        verification_codes_queue_url=codes_url,
    )


def sent_codes(sqs: Any, queue_url: str, *, conversation_id: str | None = None, hide: int = 30) -> list[dict[str, Any]]:
    """The one-time codes the worker published (the messages of ``<prefix>-verification-codes``), oldest
    first, left in the queue: one pass receives each message once (hidden for up to ``hide`` seconds
    meanwhile), then makes them all visible again. ``conversation_id``: that chat's only."""
    found: dict[str, dict[str, Any]] = {}
    handles: list[str] = []
    try:
        while True:
            batch = sqs.receive_message(
                QueueUrl=queue_url, MaxNumberOfMessages=10, VisibilityTimeout=hide, AttributeNames=["SentTimestamp"]
            ).get("Messages", [])
            if not batch:
                break
            for m in batch:
                handles.append(m["ReceiptHandle"])
                body = json.loads(m["Body"])
                message = json.loads(body["Message"]) if "Message" in body else body
                if message.get("type") != CODE_MESSAGE_TYPE:
                    continue
                if conversation_id is None or message.get("conversation_id") == conversation_id:
                    sent = int(m.get("Attributes", {}).get("SentTimestamp", 0))
                    found[m["MessageId"]] = {**message, "sent_at_ms": sent}
    finally:
        for start in range(0, len(handles), 10):
            entries = [
                {"Id": str(i), "ReceiptHandle": h, "VisibilityTimeout": 0}
                for i, h in enumerate(handles[start : start + 10])
            ]
            sqs.change_message_visibility_batch(QueueUrl=queue_url, Entries=entries)
    return sorted(found.values(), key=lambda message: message["sent_at_ms"])


EVENT_SOURCES = ["hibachi.bookings", "hibachi.conversations"]
# the template's StaffNoticeRule target: the detail's notice line, as a JSON string
STAFF_NOTICE_TRANSFORMER = {"InputPathsMap": {"notice": "$.detail.notice"}, "InputTemplate": '"<notice>"'}


def create_event_resources(endpoint_url: str, sqs: Any, *, prefix: str, region: str) -> dict[str, str]:
    """The template's event bus and archive, and its subscribers as SQS queues (moto delivers a
    rule's events to SQS targets only): every event, the staff notices, the webhook's feed."""
    events = client("events", endpoint_url, region)
    bus = f"{prefix}-events"
    try:
        bus_arn = events.create_event_bus(Name=bus)["EventBusArn"]
    except events.exceptions.ResourceAlreadyExistsException:
        bus_arn = events.describe_event_bus(Name=bus)["Arn"]
    with contextlib.suppress(events.exceptions.ResourceAlreadyExistsException):
        events.create_archive(
            ArchiveName=f"{prefix}-events-archive",
            EventSourceArn=bus_arn,
            RetentionDays=90,
            EventPattern=json.dumps({"source": EVENT_SOURCES}),
        )
    urls: dict[str, str] = {}
    pattern = json.dumps({"source": EVENT_SOURCES})
    for name, transformer in (("events", None), ("staff-notices", STAFF_NOTICE_TRANSFORMER), ("webhook", None)):
        url, arn = _queue(sqs, f"{prefix}-{name}", {"SqsManagedSseEnabled": "true"})
        rule = f"{prefix}-events-{name}"
        events.put_rule(Name=rule, EventBusName=bus, EventPattern=pattern, State="ENABLED")
        target: dict[str, Any] = {"Id": name, "Arn": arn}
        if transformer:
            target["InputTransformer"] = transformer
        events.put_targets(Rule=rule, EventBusName=bus, Targets=[target])
        urls[name] = url
    return {
        "event_bus_name": bus,
        "events_queue_url": urls["events"],
        "staff_notices_queue_url": urls["staff-notices"],
        "webhook_queue_url": urls["webhook"],
    }


def _topic(sns: BotoClient, name: str, queue_arn: str, attributes: dict[str, str] | None = None) -> str:
    """The follow-up topic, with the queue of ``queue_arn`` subscribed (with ``attributes``, such as a
    filter policy); its ARN."""
    topic_arn = str(sns.create_topic(Name=name)["TopicArn"])
    subscriptions = sns.list_subscriptions_by_topic(TopicArn=topic_arn).get("Subscriptions", [])
    if not any(s.get("Endpoint") == queue_arn for s in subscriptions):
        sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn, Attributes=attributes or {})
    return topic_arn


def _schedule_group(scheduler: BotoClient, group: str) -> str:
    with contextlib.suppress(scheduler.exceptions.ConflictException):  # it exists already
        scheduler.create_schedule_group(Name=group)
    return group


def _scheduler_role(iam: BotoClient, role_name: str) -> str:
    """The role the schedules assume; its ARN."""
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Action": "sts:AssumeRole", "Principal": {"Service": "scheduler.amazonaws.com"}}
        ],
    }
    try:
        return str(iam.create_role(RoleName=role_name, AssumeRolePolicyDocument=json.dumps(trust))["Role"]["Arn"])
    except iam.exceptions.EntityAlreadyExistsException:
        return str(iam.get_role(RoleName=role_name)["Role"]["Arn"])


class Moto:
    """moto with the template's resources: the one way to start it, for the local stack, the tests
    and the bench. A :class:`MotoServer` (``process=True``: in a child process, whose state is its
    own) and :func:`create_resources` named ``<prefix>-*``; ``port`` 0 is a free one.

        moto = Moto("test", process=True, visibility_timeout=0).start()
        moto.resources.jobs_queue_url; moto.client("sqs"); moto.resources.settings()
        moto.clean()      # between tests or runs: every queue emptied, every schedule deleted
        moto.stop()
    """

    def __init__(
        self,
        prefix: str = "hibachi",
        *,
        port: int = 0,
        host: str = "127.0.0.1",
        process: bool = False,
        visibility_timeout: int = 30,
        max_receive_count: int = 5,
        region: str = REGION,
        log: Path | None = None,
        keep_alive: bool = False,
    ) -> None:
        self.prefix = prefix
        self.region = region
        self.server = MotoServer(port, host, process=process, log=log, keep_alive=keep_alive)
        self._options = {"visibility_timeout": visibility_timeout, "max_receive_count": max_receive_count}
        self._resources: Resources | None = None
        self._clients: dict[str, Any] = {}

    def start(self) -> Moto:
        self.server.start()
        self._create()
        return self

    def _create(self) -> None:
        self._resources = create_resources(
            self.server.endpoint_url, prefix=self.prefix, region=self.region, **self._options
        )

    @property
    def resources(self) -> Resources:
        if self._resources is None:
            raise RuntimeError("moto is not started")
        return self._resources

    @property
    def endpoint_url(self) -> str:
        return self.server.endpoint_url

    @property
    def pid(self) -> int:
        """The process that serves (this one, or the child)."""
        return self.server.pid

    def client(self, service: str) -> Any:
        """A boto3 client on this server (cached per service)."""
        if service not in self._clients:
            self._clients[service] = client(service, self.endpoint_url, self.region)
        return self._clients[service]

    def clean(self) -> None:
        """Empty every queue and delete every schedule: what a test or a bench run leaves behind
        (cheaper than :meth:`reset`: the resources stay)."""
        sqs = self.client("sqs")
        for url in sqs.list_queues().get("QueueUrls", []):
            sqs.purge_queue(QueueUrl=url)
        scheduler = self.client("scheduler")
        for page in scheduler.get_paginator("list_schedules").paginate():
            for schedule in page["Schedules"]:
                scheduler.delete_schedule(Name=schedule["Name"], GroupName=schedule["GroupName"])

    def reset(self) -> None:
        """Forget everything (whatever was created besides the resources), then create the
        resources again."""
        self.server.reset()
        self._create()

    def stop(self) -> None:
        self.server.stop()
        self._clients.clear()


def queue_url_from_arn(sqs: BotoClient, arn: str) -> str:
    """``arn:aws:sqs:<region>:<account>:<name>`` -> its URL."""
    parts = arn.split(":")
    return str(sqs.get_queue_url(QueueName=parts[5], QueueOwnerAWSAccountId=parts[4])["QueueUrl"])
