"""The shared local stack of tests/reliability (tests/reliability/harness.py), for this folder."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.reliability.harness import Env, shared


@pytest.fixture(scope="session")
def rel(tmp_path_factory) -> Iterator[Env]:
    env = shared.acquire(tmp_path_factory)
    yield env
    shared.release()
