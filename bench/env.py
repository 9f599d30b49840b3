"""The bench's environment: testkit.env's PostgreSQL and moto (in a child process), settings,
quiet stdout, machine.

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

import psutil

from bench import LAYER, ROOT
from local.pg import LocalPostgres
from testkit import env as testkit_env
from testkit.env import AWS_ENV, isolate_process_env, project_postgres

__all__ = ["AWS_ENV", "STATE", "function_env", "load", "machine", "postgres_version", "started", "use_settings"]

STATE = ROOT / ".local" / "bench"
PG_PORT = int(os.environ.get("BENCH_PG_PORT", "54349"))


class Moto(testkit_env.Moto):
    """moto as the tests start it (``testkit.env.Moto``: a server in a child process, whose CPU time
    and GIL are not the bench's, with the template's resources, here ``bench-*``), and a jobs queue for each
    environment process. ``clean()`` empties every queue: moto's SendMessage costs CPU in proportion
    to the messages already in the queue (7.5 ms per send with 500 queued, 33 ms with 2,000, here),
    which a real queue with its consumer does not; so every run starts with empty queues, and
    concurrent runs give each environment a queue of its own."""

    def __init__(self) -> None:
        STATE.mkdir(parents=True, exist_ok=True)
        super().__init__("bench", process=True, log=STATE / "moto.log", keep_alive=True)
        self._env_queues: dict[int, str] = {}

    def start(self) -> Moto:
        self.server.start(timeout=60)  # a machine shared with other work imports moto slowly
        self._create()
        return self

    def env_queue(self, client: int) -> str:
        """A jobs queue of one environment process."""
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
            for url in [self.resources.jobs_queue_url, *self._env_queues.values()]
        )


@contextlib.contextmanager
def started(*, aws: bool = True) -> Iterator[tuple[LocalPostgres, Moto]]:
    """The bench's environment, stopped after: the process's (``testkit.env.isolate_process_env``,
    and no ``DATABASE_URL``: the bench uses databases of its own), its PostgreSQL (``.local/bench-pg``,
    ``testkit.env.project_postgres``), and with ``aws`` moto (:class:`Moto`), which
    ``AWS_ENDPOINT_URL`` names. Fresh databases: ``testkit.env.migrated_database(pg, name)``."""
    isolate_process_env(keep_database_url=False)
    moto = Moto()
    pg = None
    try:
        pg = project_postgres("bench-pg", PG_PORT)
        if aws:
            moto.start()
            os.environ["AWS_ENDPOINT_URL"] = moto.endpoint_url
        yield pg, moto
    finally:
        moto.stop()
        if pg is not None:
            pg.stop()


def postgres_version(pg: LocalPostgres) -> str:
    import psycopg

    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        row = conn.execute("SHOW server_version").fetchone()
        version = str(row[0]) if row else "?"
        settings: dict[str, str] = dict(
            conn.execute(
                "SELECT name, setting FROM pg_settings WHERE name IN ('fsync', 'synchronous_commit', "
                "'shared_buffers', 'max_connections')"
            ).fetchall()
        )
    return f"PostgreSQL {version} ({', '.join(f'{k}={v}' for k, v in sorted(settings.items()))})"


def use_settings(database_url: str, aws: dict[str, str] | None = None) -> None:
    """Point the in-process handlers at a database, and at moto's resources (``moto.resources.settings()``) or,
    with ``aws=None``, at no queue (``JOBS_QUEUE_URL`` unset: jobs are left to the reconciler)."""
    from hibachi import settings as settings_module
    from hibachi.settings import Settings

    settings_module.set_settings(
        Settings(
            database_url=database_url,
            service_name="hibachi",
            db_connect_timeout=10,
            **(aws or {"jobs_queue_url": None}),  # type: ignore[dict-item]
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
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []:
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def machine() -> dict[str, str]:
    from importlib import metadata

    packages = ("psycopg", "psycopg-binary", "aws-lambda-powertools", "pydantic", "pydantic-settings", "boto3", "moto")
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "-uno"], cwd=ROOT, capture_output=True, text=True)
    return {
        "cpu": f"{_cpu_model()}, {len(os.sched_getaffinity(0))} CPUs available",
        "memory": f"{psutil.virtual_memory().total / 1024**3:.1f} GiB",
        "os": f"{platform.system()} {platform.release()} ({platform.machine()})",
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "packages": ", ".join(f"{d} {metadata.version(d)}" for d in packages),
        "commit": (commit.stdout.strip() or "unknown") + (" (with local changes)" if dirty.stdout.strip() else ""),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "load_start": load(),
    }
