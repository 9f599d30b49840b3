"""The test tiers themselves: every test folder has one, and the unit tier cannot open a socket."""

from __future__ import annotations

import socket

import pytest
from pytest_socket import SocketBlockedError

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
