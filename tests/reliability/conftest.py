"""Fixtures of tests/reliability: the shared stack (see harness.py), healthy around each test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.reliability.harness import Env, shared


@pytest.fixture(scope="package")
def rel(tmp_path_factory) -> Iterator[Env]:
    env = shared.acquire(tmp_path_factory)
    yield env
    shared.release()


@pytest.fixture
def env(rel) -> Iterator[Env]:
    """The shared stack, healthy before and after the test (database up, SQS reachable)."""
    rel.proxy.up()
    rel.ensure_pg()
    yield rel
    rel.proxy.up()
    rel.ensure_pg()
