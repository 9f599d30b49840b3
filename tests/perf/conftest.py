"""Fixtures of tests/perf: a database of its own (per parallel worker). The bench's operations that
these tests run book slots anywhere 2-1081 days ahead (bench/operations.py, SLOT_DAYS), the days that
tests/support/mcp.py's far_day() hands to one test each; on the worker's database they filled such a
day's chefs (test_slot_full_carries_the_free_starts got slot_full on a day of its own)."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from tests.support.common import own_database


@pytest.fixture(scope="package")
def database_url(database_url: str) -> Iterator[str]:
    if os.environ.get("DATABASE_URL"):  # one shared database (make test's TEST_WORKERS=0): nothing to separate
        yield database_url
        return
    with own_database(database_url, "hibachi_perf") as url:
        yield url
