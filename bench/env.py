"""The bench's environment: its own PostgreSQL, moto in a child process, settings, quiet stdout, machine.

Everything listens on 127.0.0.1 only.
"""

from __future__ import annotations

import contextlib
import os
import platform
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from bench import LAYER, ROOT
from testkit import env as testkit_env
from testkit.env import AWS_ENV, REGION

STATE = ROOT / ".local" / "bench"
PG_DATA = ROOT / ".local" / "bench-pg"
PG_PORT = int(os.environ.get("BENCH_PG_PORT", "54349"))


def isolate_process_env() -> None:
    """The tests' AWS environment (testkit.env), and no DATABASE_URL: the bench never talks to AWS
    and uses databases of its own."""
    testkit_env.isolate_process_env()
    os.environ.pop("DATABASE_URL", None)


class Postgres:
    """The bench's PostgreSQL: its own embedded server (``.local/bench-pg``), or the server of
    ``BENCH_DATABASE_URL``. Databases are dropped and re-created on every run."""

    def __init__(self) -> None:
        self.server_url = os.environ.get("BENCH_DATABASE_URL")
        self._local = None
        self.started_here = False

    def start(self) -> None:
        if self.server_url:
            return
        from local.pg import LocalPostgres

        self._local = LocalPostgres(PG_DATA, PG_PORT)
        self.started_here = not self._local.running()
        self.server_url = self._local.start(any_free_port=True)

    def stop(self) -> None:
        if self._local is not None and self.started_here:
            self._local.stop()

    def dsn(self, dbname: str) -> str:
        parts = urlsplit(self.server_url)
        return urlunsplit((parts.scheme, parts.netloc, f"/{dbname}", parts.query, ""))

    @property
    def address(self) -> tuple[str, int]:
        parts = urlsplit(self.server_url)
        return parts.hostname or "127.0.0.1", parts.port or 5432

    def fresh_database(self, name: str) -> str:
        """Drop and create ``name``, apply the app's migrations; return its DSN."""
        import psycopg
        from hibachi.migrate import apply

        with psycopg.connect(self.dsn("postgres"), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
        dsn = self.dsn(name)
        apply(dsn)
        return dsn

    def version(self) -> str:
        import psycopg

        with psycopg.connect(self.dsn("postgres"), autocommit=True) as conn:
            version = conn.execute("SHOW server_version").fetchone()[0]
            settings = dict(
                conn.execute(
                    "SELECT name, setting FROM pg_settings WHERE name IN ('fsync', 'synchronous_commit', "
                    "'shared_buffers', 'max_connections')"
                ).fetchall()
            )
        return f"PostgreSQL {version} ({', '.join(f'{k}={v}' for k, v in sorted(settings.items()))})"


_MOTO_CHILD = """
import logging, sys
from moto.moto_server.werkzeug_app import MotoRequestHandler
from moto.server import ThreadedMotoServer
logging.getLogger("werkzeug").setLevel(logging.ERROR)
# TCP_NODELAY on moto's side: werkzeug writes a response's headers and body separately, and without
# it Nagle's algorithm holds the body until the client's delayed ACK (~40 ms) after an idle spell
MotoRequestHandler.disable_nagle_algorithm = True
server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
server.start()
print(server.get_host_and_port()[1], flush=True)
sys.stdin.read()  # until the parent closes our stdin (or exits)
server.stop()
"""


class Moto:
    """moto's ThreadedMotoServer in a child process (its CPU time and GIL are not the bench's), with
    the template's resources (jobs queue + DLQ, follow-up topic, schedule group, role) created by
    ``local.aws.create_resources``."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen | None = None
        self.endpoint_url = ""
        self.resources = None
        self._env_queues: dict[int, str] = {}

    def start(self) -> str:
        from local.aws import create_resources

        STATE.mkdir(parents=True, exist_ok=True)
        log = open(STATE / "moto.log", "wb")  # noqa: SIM115 - lives as long as the child
        env = {**os.environ, **AWS_ENV, "MOTO_SQS_ENFORCE_STRICT_QUEUE_PURGE_BEHAVIOUR": "false"}  # see reset()
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _MOTO_CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, env=env
        )
        line = self.proc.stdout.readline()
        if not line.strip().isdigit():
            raise RuntimeError(f"moto did not start; see {STATE / 'moto.log'}")
        self.endpoint_url = f"http://127.0.0.1:{int(line)}"
        self.resources = create_resources(self.endpoint_url, prefix="bench", region=REGION)
        return self.endpoint_url

    @property
    def queue_url(self) -> str:
        return self.resources.jobs_queue_url

    def client(self, service: str):
        from local.aws import client

        return client(service, self.endpoint_url, REGION)

    def env_queue(self, client: int) -> str:
        """A jobs queue of one environment process (see ``reset``)."""
        if client not in self._env_queues:
            self._env_queues[client] = self.client("sqs").create_queue(QueueName=f"bench-jobs-env-{client}")["QueueUrl"]
        return self._env_queues[client]

    def queued(self) -> int:
        """Messages in the jobs queues (moto's count is exact)."""
        sqs = self.client("sqs")
        return sum(
            int(
                sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])["Attributes"][
                    "ApproximateNumberOfMessages"
                ]
            )
            for url in [self.queue_url, *self._env_queues.values()]
        )

    def reset(self) -> None:
        """Empty every queue. moto's SendMessage costs CPU in proportion to the messages already in
        the queue (7.5 ms per send with 500 queued, 33 ms with 2,000, here), which a real queue with
        its consumer does not; so every run starts with empty queues, and concurrent runs give each
        environment a queue of its own."""
        sqs = self.client("sqs")
        for url in sqs.list_queues().get("QueueUrls", []):
            sqs.purge_queue(QueueUrl=url)

    def settings(self) -> dict[str, str]:
        """The function settings that point at these resources (queue, topic, scheduler): the
        variables ``Resources.function_env()`` gives a function, as ``Settings`` fields."""
        from hibachi.settings import Settings

        fields = set(Settings.model_fields)
        return {k.lower(): v for k, v in self.resources.function_env().items() if k.lower() in fields}

    def stop(self) -> None:
        if self.proc is None:
            return
        try:
            self.proc.stdin.close()
            self.proc.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None


def use_settings(database_url: str, aws: dict[str, str] | None = None) -> None:
    """Point the in-process handlers at a database, and at moto's resources (``Moto.settings()``) or,
    with ``aws=None``, at no queue (``JOBS_QUEUE_URL`` unset: jobs are left to the reconciler)."""
    from hibachi import settings as settings_module
    from hibachi.settings import Settings

    settings_module.set_settings(
        Settings(
            database_url=database_url,
            service_name="hibachi",
            db_connect_timeout=10,
            **(aws or {"jobs_queue_url": None}),
        )
    )


@contextlib.contextmanager
def quiet_stdout() -> Iterator[None]:
    """Send file descriptor 1 (the handlers' JSON logs and EMF metrics) to /dev/null; the writes
    still happen, as on Lambda, they are just not shown."""
    sys.stdout.flush()
    saved = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.close(devnull)
    try:
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def function_env(database_url: str, moto: Moto) -> dict[str, str]:
    """The environment of a function process (cold start): the layer on PYTHONPATH (as /opt/python),
    the database, and moto's resources as the template would pass them."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "PYTHON", "JOBS_", "DATABASE_"))}
    env.update(AWS_ENV)
    env.update(moto.resources.function_env())
    env.update({"PYTHONPATH": str(LAYER), "DATABASE_URL": database_url})
    env["PYDANTIC_DISABLE_PLUGINS"] = "__all__"  # as the template's Globals set it (no plugin scan at import)
    return env


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _mem_gib() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                return f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    return "unknown"


def load() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "unknown"


def machine() -> dict[str, str]:
    from importlib import metadata

    def version(dist: str) -> str:
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            return "-"

    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True, text=True
    )
    return {
        "cpu": f"{_cpu_model()}, {cpus} CPUs available",
        "memory": _mem_gib(),
        "os": f"{platform.system()} {platform.release()} ({platform.machine()})",
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "packages": ", ".join(
            f"{d} {version(d)}"
            for d in (
                "psycopg",
                "psycopg-binary",
                "aws-lambda-powertools",
                "pydantic",
                "pydantic-settings",
                "boto3",
                "moto",
            )
        ),
        "commit": (commit.stdout.strip() or "unknown") + (" (with local changes)" if dirty.stdout.strip() else ""),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "load_start": load(),
    }
