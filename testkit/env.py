"""The test environment, one way for the tests (tests/conftest.py), the reliability harness and the
bench (bench/env.py): the process's AWS environment, PostgreSQL servers with migrated databases, and
moto with the template's resources (``Moto`` is ``local.aws.Moto``; run with ``process=True``, its
state is its own, since moto keeps one per process).

    isolate_process_env()                         dummy AWS credentials, no profile or endpoint
    pg = project_postgres("test-pg", 54339)       .local/test-pg, on that port or any free one
    pg = throwaway_postgres("hibachi-rel-pg-")    a temporary folder, a free port, removed at exit
    url = migrated_database(pg, "hibachi_test")   dropped, created, migrations applied
    moto = Moto("test", process=True).start()     moto in a child process with "test-*" resources
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from local.aws import Moto
from local.pg import LocalPostgres, free_port

__all__ = ["AWS_ENV", "Moto", "isolate_process_env", "migrated_database", "project_postgres", "throwaway_postgres"]

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
    with _start_lock(name):  # parallel test workers (pytest -n) start it once
        pg.start(any_free_port=True)
    return pg


@contextmanager
def _start_lock(name: str) -> Iterator[None]:
    import fcntl

    lock_file = ROOT / ".local" / f"{name}.lock"
    lock_file.parent.mkdir(parents=True, exist_ok=True)
    with lock_file.open("w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def throwaway_postgres(prefix: str, port: int = 0) -> LocalPostgres:
    """A server of this process alone: a temporary folder, ``port`` (0: a free one), stopped and
    removed at exit, so concurrent runs from one checkout never share it."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    folder.chmod(0o755)  # the server may run as another user (local/pg.py, when root)
    pg = LocalPostgres(folder / "pg", port or free_port())

    def remove() -> None:
        pg.destroy()
        shutil.rmtree(folder, ignore_errors=True)

    atexit.register(remove)
    pg.start()
    return pg


def migrated_database(pg: LocalPostgres, name: str) -> str:
    """Database ``name`` on ``pg``, dropped and created anew, with the app's migrations; its URL."""
    from hibachi.migrate import apply

    url = pg.create_database(name, drop=True)
    apply(url)
    return url
