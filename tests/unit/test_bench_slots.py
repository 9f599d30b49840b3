"""The bench's booking slots: every booking a run makes finds a free chef, and a client that runs out
of its block fails loudly instead of taking the next client's numbers."""

from __future__ import annotations

import json
from collections import Counter as Tally

import pytest
from hibachi.settings import Settings, set_settings

from bench.operations import OPERATIONS, Counter, booking_body, booking_slots, error_code


def test_a_block_runs_out_loudly():
    block = Counter(10, 12, "the booking slots of client 3")
    assert [next(block), next(block)] == [10, 11]
    with pytest.raises(RuntimeError, match="the booking slots of client 3: 1 more wanted, 0 left"):
        next(block)
    with pytest.raises(RuntimeError, match="3 more wanted, 2 left"):
        Counter(0, 2).take(3)


def test_a_runs_slots_book_each_start_at_most_once_per_chef():
    """Whatever a run books (setups, requests, cold starts, the worker's setups) comes from one counter,
    which ends after as many rounds of slots as there are chefs: no booking finds its start full."""
    set_settings(Settings(database_url="postgresql://bench/slots", chef_count=2))
    try:
        slots = booking_slots("slots-test")
        assert booking_slots("slots-test") is slots and booking_slots("another-run") is not slots
        fx = {"run": "slots-test", "slots": slots}
        starts = Tally(booking_body(fx, 0)["event_start"] for _ in range(2 * 4 * 1080))
        assert max(starts.values()) == 2 and len(starts) == 4 * 1080
        with pytest.raises(RuntimeError, match="the booking slots of run slots-test"):
            booking_body(fx, 0)
    finally:
        set_settings(None)


def test_only_the_operations_that_book_take_slots():
    assert {op.name for op in OPERATIONS if op.books} == {"create_booking", "mcp_create_booking"}


def test_a_failed_verify_names_the_error_it_got():
    slot_full = {"error": {"code": "slot_full", "message": "No chef is free at that time."}}
    text = [{"type": "text", "text": json.dumps(slot_full)}]
    tool_error = {"jsonrpc": "2.0", "id": 7, "result": {"content": text, "isError": True}}
    assert error_code(tool_error) == "slot_full"
    assert error_code({**slot_full, "request_id": "r"}) == "slot_full"
    assert error_code({"jsonrpc": "2.0", "id": 7, "error": {"code": -32602, "message": "bad"}}) == "-32602"
    assert error_code({"jsonrpc": "2.0", "id": 7, "result": {"structuredContent": {"id": "b"}}}) is None
    assert error_code(None) is None
