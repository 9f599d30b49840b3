"""The test tiers themselves: every test folder has one, and the unit tier cannot open a socket."""

from __future__ import annotations

import socket

import pytest
from pytest_socket import SocketBlockedError

from tests.support.plan import GROUPS, SLOW_FIRST, rank, unit_of
from tests.support.tiers import TESTS, TIERS


@pytest.mark.filterwarnings("ignore:A test tried to use socket")
def test_the_unit_tier_opens_no_socket() -> None:
    with pytest.raises(SocketBlockedError):
        socket.socket(socket.AF_INET, socket.SOCK_STREAM)


def test_every_test_folder_has_a_tier() -> None:
    folders = {p.parent.name for p in TESTS.glob("*/test_*.py")}
    assert sorted(folders - set(TIERS)) == []


def test_this_test_is_marked_unit(request: pytest.FixtureRequest) -> None:
    assert {m.name for m in request.node.iter_markers()} >= {"unit", "disable_socket"}


def test_the_plan_names_only_folders_and_files_that_exist() -> None:
    """The run's plan (tests/support/plan.py) names tier folders and test files of the tree: a
    renamed file would otherwise drop silently to the back of the run."""
    assert set(GROUPS) <= set(TIERS)
    missing = [u for u in SLOW_FIRST if u not in GROUPS.values() and not (TESTS.parent / u).is_file()]
    assert missing == []


def test_the_plan_groups_the_folders_of_a_session_stack_and_puts_long_units_first() -> None:
    assert unit_of("tests/fuzz/test_openapi_fuzz.py::test_x[GET /health]") == "group:rel"
    assert unit_of("tests/security/test_pii_logs.py::test_y") == unit_of("tests/reliability/test_faults.py::t")
    assert unit_of("tests/http/test_gateway.py::test_z") == "group:http"
    assert unit_of("tests/integration/test_health.py::test_w") == "tests/integration/test_health.py"
    ranks = [rank(n) for n in ("tests/fuzz/a.py::t", "tests/http/b.py::t", SLOW_FIRST[2] + "::t", "tests/x/c.py::t")]
    assert ranks == sorted(ranks) and len(set(ranks)) == 4
