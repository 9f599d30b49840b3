"""The test tiers, by folder (markers declared in pyproject.toml; `make test-fast`, `make
test-integration`, `make test-system` run one each). A new folder gets its tier here."""

from __future__ import annotations

from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]
TIERS = {
    "unit": "unit",  # no database, no AWS, no sockets (pytest-socket refuses them)
    "integration": "integration",  # real PostgreSQL and moto, handlers called in process
    "perf": "integration",
    "http": "system",  # through the local gateway (real HTTP), worker poller, scheduler
    "fuzz": "system",
    "security": "system",
    "reliability": "system",
}
TIER_ORDER = {"unit": 0, "integration": 1, "system": 2}
