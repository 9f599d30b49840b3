"""Fixtures of tests/reliability: the shared stack (see harness.py), healthy around each test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.stack import Env, package_stack_fixture

rel = package_stack_fixture()


@pytest.fixture
def env(rel) -> Iterator[Env]:
    """The shared stack, healthy before and after the test (database up, SQS reachable)."""
    rel.proxy.up()
    rel.ensure_pg()
    yield rel
    rel.proxy.up()
    rel.ensure_pg()
