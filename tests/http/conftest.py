"""One local stack for the tests in this folder: the fixture app (tests/http/fixtures), moto, the
gateway on a free port, the poller and the scheduler, started once per run of this folder (package
scope: stopped after the folder's last test, so its poller and ticks do not run on through the rest
of the process's share of the suite; the plan of tests/support/plan.py keeps the folder on one
process).

These tests exercise the local stack itself, so they use the fixture functions, not the app's
handlers; ``app_stack`` is the real app, for its end-to-end tests. Waiting is always polling with a
deadline (``wait_until``), never a fixed sleep."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from local.stack import LocalStack

FIXTURES = Path(__file__).resolve().parent / "fixtures"


@pytest.fixture(scope="session")
def fixture_out(tmp_path_factory) -> Path:
    """Where the fixture worker writes what it received (records.jsonl, events.jsonl)."""
    return tmp_path_factory.mktemp("fixture-out")


@pytest.fixture(scope="package")
def stack(fixture_out: Path, tmp_path_factory) -> Iterator[LocalStack]:
    with LocalStack(
        template=FIXTURES / "template.yaml",
        env={"FIXTURE_OUT": str(fixture_out)},
        key_dir=tmp_path_factory.mktemp("jwt"),
        visibility_timeout=1,  # failed messages come back quickly
        reconcile_interval=0.5,
        schedule_poll_interval=0.2,
        max_workers=3,
        # moto keeps one state per process: a child process of its own, or this session-long poller
        # takes the jobs of every later stack with the same names and its scheduler fires theirs
        moto_process=True,
        resource_prefix="httpfixture",
    ) as s:
        yield s


@pytest.fixture(scope="package")
def app_stack(database_url: str, tmp_path_factory) -> Iterator[LocalStack]:
    """The real app (template.yaml) on the tests' database, one for this folder; its moto runs in a
    child process (moto keeps one state per process: it would fire the fixture stack's schedules)."""
    with LocalStack(
        database_url, key_dir=tmp_path_factory.mktemp("jwt"), reconcile_interval=3600, moto_process=True
    ) as s:
        yield s
