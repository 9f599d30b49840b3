"""The test environment, one way for the tests (tests/conftest.py), the reliability harness
(tests/reliability/harness.py) and the bench (bench/env.py): the process's AWS environment,
PostgreSQL servers with migrated databases, and moto with the template's resources.

    isolate_process_env()                         dummy AWS credentials, no profile or endpoint
    pg = project_postgres("test-pg", 54339)       .local/test-pg, on that port or any free one
    pg = throwaway_postgres("hibachi-rel-pg-")    a temporary folder, a free port, removed at exit
    url = migrated_database(pg, "hibachi_test")   dropped, created, migrations applied
    moto = Moto("test").start()                   moto's server in a child process, the template's
                                                  queues, topic, schedule group and role ("test-*")
    moto.clean()                                  every queue emptied, every schedule deleted

moto is always a server (``local.aws.MotoServer``), and clients name its endpoint; nothing uses
``moto.mock_aws``. The tests and the bench run theirs in a child process, whose state is its own;
the local stack (``local.stack.LocalStack``: the dev stack, the HTTP tests, the reliability harness)
runs one in its process, with resource names of its own.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from local.aws import MotoServer, Resources, client, create_resources
from local.pg import LocalPostgres

ROOT = Path(__file__).resolve().parent.parent
REGION = "us-east-1"

# The environment of every test and bench process: nothing can reach a real AWS account.
AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
    "POWERTOOLS_SERVICE_NAME": "hibachi",
    "POWERTOOLS_METRICS_NAMESPACE": "Hibachi",
    "POWERTOOLS_DEV": "false",
}
# Variables of the developer's shell that would point the process elsewhere.
_UNSET = ("AWS_PROFILE", "AWS_ENDPOINT_URL", "JOBS_QUEUE_URL")


def isolate_process_env(*, keep_database_url: bool = True) -> None:
    """Dummy AWS credentials and region; no profile, no endpoint, no jobs queue from the shell (and,
    with ``keep_database_url=False``, no ``DATABASE_URL``: the bench uses databases of its own)."""
    os.environ.update(AWS_ENV)
    for name in _UNSET if keep_database_url else (*_UNSET, "DATABASE_URL"):
        os.environ.pop(name, None)


def project_postgres(name: str, port: int) -> LocalPostgres:
    """The embedded server of ``.local/<name>``, started (on ``port``, or any free one when another
    checkout holds it) and kept running for later runs."""
    pg = LocalPostgres(ROOT / ".local" / name, port)
    pg.start(any_free_port=True)
    return pg


def throwaway_postgres(prefix: str, port: int = 0) -> LocalPostgres:
    """A server of this process alone: a temporary folder, ``port`` (0: a free one), stopped and
    removed at exit, so concurrent runs from one checkout never share it."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    folder.chmod(0o755)  # the server may run as another user (local/pg.py, when root)
    pg = LocalPostgres(folder / "pg", port or _free_port())
    atexit.register(lambda: (pg.destroy(), shutil.rmtree(folder, ignore_errors=True)))
    pg.start()
    return pg


def migrated_database(pg: LocalPostgres, name: str) -> str:
    """Database ``name`` on ``pg``, dropped and created anew, with the app's migrations; its URL."""
    from hibachi.migrate import apply

    url = pg.create_database(name, drop=True)
    apply(url)
    return url


class Moto:
    """moto's server (``local.aws.MotoServer``) with the template's resources
    (``local.aws.create_resources``: jobs queue and its DLQ, scheduler DLQ, follow-up topic with an
    SQS inbox subscribed, schedule group, role), named ``<prefix>-*``. ``process=True`` (default):
    in a child process, whose state no moto of this process shares and whose CPU time is not ours.
    ``visibility_timeout``: of the jobs queue (0: a received, undeleted job is back at once)."""

    def __init__(
        self, prefix: str, *, process: bool = True, visibility_timeout: int = 30, log: Path | None = None
    ) -> None:
        self.prefix = prefix
        self.visibility_timeout = visibility_timeout
        self.server = MotoServer(0, process=process, log=log)
        self._resources: Resources | None = None
        self._clients: dict[str, Any] = {}

    def start(self) -> Moto:
        self.server.start()
        self._create()
        return self

    def _create(self) -> None:
        self._resources = create_resources(
            self.server.endpoint_url, prefix=self.prefix, region=REGION, visibility_timeout=self.visibility_timeout
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
        return self.server.pid

    def client(self, service: str) -> Any:
        """A boto3 client on this server (cached per service)."""
        if service not in self._clients:
            self._clients[service] = client(service, self.endpoint_url, REGION)
        return self._clients[service]

    def clean(self) -> None:
        """Empty every queue and delete every schedule: what one test or bench run leaves behind
        (cheaper than ``reset``: the resources stay)."""
        sqs = self.client("sqs")
        for url in sqs.list_queues().get("QueueUrls", []):
            sqs.purge_queue(QueueUrl=url)
        scheduler = self.client("scheduler")
        for page in scheduler.get_paginator("list_schedules").paginate():
            for schedule in page["Schedules"]:
                scheduler.delete_schedule(Name=schedule["Name"], GroupName=schedule["GroupName"])

    def reset(self) -> None:
        """Forget everything (whatever a test created besides the resources), then create the
        resources again."""
        self.server.reset()
        self._create()

    def settings(self) -> dict[str, str]:
        """The function settings that point at these resources, as ``Settings`` fields (the
        variables ``Resources.function_env()`` gives a function): jobs queue and DLQs, topic,
        scheduler, ``aws_endpoint_url``."""
        from hibachi.settings import Settings

        by_name = {
            (f.validation_alias if isinstance(f.validation_alias, str) else name).upper(): name
            for name, f in Settings.model_fields.items()
        }
        return {by_name[k]: v for k, v in self.resources.function_env().items() if k in by_name}

    def stop(self) -> None:
        self.server.stop()
        self._clients.clear()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port
