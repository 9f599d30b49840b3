"""The local stack of tests/reliability/harness.py, for this folder (package scope: see _Shared)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.reliability.harness import Env, shared


@pytest.fixture(scope="package")
def rel(tmp_path_factory) -> Iterator[Env]:
    env = shared.acquire(tmp_path_factory)
    yield env
    shared.release()
