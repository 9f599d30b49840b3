"""The order of the test run, and its split over pytest-xdist's processes (``--dist loadfile``).

xdist hands whole files to its processes, each file to whichever process runs low first, in the
order of the collection. Two things make that slow on its own:

- a session stack (``rel`` of tests/support/stack.py, ``stack`` and ``app_stack`` of
  tests/http/conftest.py) starts once in every process that runs one of its files: seconds of CPU
  each (a PostgreSQL server for ``rel``, moto, the gateway, every function's cold start);
- a long file collected late runs alone at the end while the other process idles.

So the files of a folder that shares a session stack form one work unit (``GROUPS``: one process
starts that stack, once), and the long units come first (``SLOW_FIRST``); the rest follows in
collection order. The unit tier stays ahead of everything: each process runs its units in the order
it got them, so no thread of a later tier's stack is alive while the unit tier blocks sockets."""

from __future__ import annotations

from pathlib import PurePosixPath

import pytest
from xdist.remote import Producer
from xdist.scheduler import LoadFileScheduling

# folder -> the work unit of its files: the folders whose files share a session stack
GROUPS = {
    "reliability": "group:rel",  # the `rel` stack and its PostgreSQL (tests/support/stack.py)
    "fuzz": "group:rel",
    "security": "group:rel",
    "http": "group:http",  # `stack` (the fixture app) and `app_stack` (tests/http/conftest.py)
}
# The longest units first (measured: `pytest --durations`, setup and call per file), so that the
# shorter ones fill in around them at the end. Units not named here follow, in collection order.
SLOW_FIRST = [
    "group:rel",
    "group:http",
    "tests/integration/test_followups_local_stack.py",
    "tests/integration/test_ops_cli.py",
    "tests/perf/test_cold_imports.py",
    "tests/integration/test_sqs_transport.py",
    "tests/integration/test_bookings.py",
    "tests/perf/test_round_trips.py",
    "tests/integration/test_ops_local_stack.py",
    "tests/integration/test_reminders.py",
]
_RANK = {unit: rank for rank, unit in enumerate(SLOW_FIRST)}


def unit_of(nodeid: str) -> str:
    """The work unit of a test id: its folder's group, or its file."""
    path = nodeid.split("::", 1)[0]
    parts = PurePosixPath(path).parts
    return GROUPS.get(parts[1], path) if len(parts) > 2 else path


def rank(nodeid: str) -> int:
    """Where a test's unit goes in the run: a SLOW_FIRST unit by its place there, then the rest."""
    return _RANK.get(unit_of(nodeid), len(SLOW_FIRST))


class PlannedScheduling(LoadFileScheduling):  # type: ignore[misc]  # xdist has no types
    """``--dist loadfile`` with the work units of ``unit_of``, handed out in the collection's order
    (tests/conftest.py sorts it: the unit tier, then ``SLOW_FIRST``, then the rest), not xdist's
    default order (the units with the most tests first)."""

    def __init__(self, config: pytest.Config, log: Producer | None = None) -> None:
        super().__init__(config, log)
        config.option.loadscopereorder = False

    def _split_scope(self, nodeid: str) -> str:
        return unit_of(nodeid)
