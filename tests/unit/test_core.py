"""Pure logic of the common layer: settings injection, cursors, input rules, job envelopes, the
round-trip counter of the network proxy."""

from __future__ import annotations

import struct

import pytest
from hibachi import jobs
from hibachi.conversations.models import MessageIn
from hibachi.conversations.service import decode_cursor, encode_cursor
from hibachi.errors import Unprocessable
from hibachi.settings import Settings, get_settings, override, set_settings
from hibachi.validation import ResourceId
from pydantic import TypeAdapter, ValidationError

from testkit.netproxy import _ServerStreamCounter


def test_settings_override_is_scoped_and_validated():
    set_settings(Settings(database_url="postgresql://x/y", chef_count=3))
    try:
        with override(chef_count=5) as changed:
            assert get_settings() is changed and changed.chef_count == 5
            assert changed.database_url == "postgresql://x/y"
        assert get_settings().chef_count == 3
        with pytest.raises(ValidationError), override(chef_count=0):
            pass
    finally:
        set_settings(None)


def test_settings_read_environment(monkeypatch):
    monkeypatch.setenv("CHEF_COUNT", "7")
    monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", "svc")
    assert Settings().chef_count == 7 and Settings().service_name == "svc"


@pytest.mark.parametrize("seq", [1, 42, 2**62])
def test_cursor_round_trip(seq):
    assert decode_cursor(encode_cursor(seq)) == seq


@pytest.mark.parametrize(
    "cursor", ["", "abc", "m", "m0", "m01", "m-1", "m1 ", "m1\n", "M1", "m" + "9" * 20, "m\u0663", "bTE", "m\uff11"]
)
def test_bad_cursor_is_422(cursor):
    with pytest.raises(Unprocessable):
        decode_cursor(cursor)


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("web:abc-1.2_3", True),
        ("a" * 128, True),
        ("a" * 129, False),
        ("", False),
        ("a b", False),
        ("ä", False),
        ("a/b", False),
    ],
)
def test_resource_id_rules(value, ok):
    adapter = TypeAdapter(ResourceId)
    if ok:
        assert adapter.validate_python(value) == value
    else:
        with pytest.raises(ValidationError):
            adapter.validate_python(value)


@pytest.mark.parametrize(
    "body",
    [
        {"role": "user", "content": "bad \ud800 surrogate"},
        {"role": "user", "content": "x", "metadata": {"k\x00": 1}},
        {"role": "user", "content": "x", "metadata": {"a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": {"i": {}}}}}}}}}}},
        {"role": "user", "content": "x", "emotion_score": float("nan")},
        {"role": "user", "content": "x", "emotion_score": -1.0001},
    ],
)
def test_message_rules_reject_unstorable_input(body):
    with pytest.raises(ValidationError):
        MessageIn.model_validate(body)


def test_message_accepts_unicode_and_limits():
    msg = MessageIn.model_validate(
        {
            "role": "assistant",
            "content": "🍤 héllo 日本" * 100,
            "emotion_score": -1,
            "metadata": {"ok": ["nested", {"x": 1}]},
        }
    )
    assert msg.emotion_score == -1


def test_job_envelope_round_trip():
    job = jobs.Job.new(jobs.EMOTION_STATS, "emotion_stats:c:1", {"conversation_id": "c"}, "req-1")
    message = job.to_message()
    assert message["MessageAttributes"]["job_type"]["StringValue"] == jobs.EMOTION_STATS
    assert message["MessageAttributes"]["correlation_id"]["StringValue"] == "req-1"
    assert jobs.parse_job(message["MessageBody"]) == job
    with pytest.raises(ValueError, match="not a job envelope"):
        jobs.parse_job('{"type": "x"}')


def test_job_queue_without_url_returns_everything_as_failed():
    queue = jobs.JobQueue(Settings(jobs_queue_url=None))
    job = jobs.Job.new(jobs.EMOTION_STATS, "e:1", {})
    assert queue.send_many([job]) == [job] and queue.send(job) is False


def _msg(kind: bytes, payload: bytes = b"") -> bytes:
    return kind + struct.pack("!I", 4 + len(payload)) + payload


def test_round_trip_counter_parses_split_messages():
    stream = (
        _msg(b"R", b"\0\0\0\0")
        + _msg(b"Z", b"I")
        + _msg(b"1")
        + _msg(b"2")
        + _msg(b"D", b"x" * 100)
        + _msg(b"C", b"INSERT 0 1\0")
        + _msg(b"Z", b"I")
    )
    counter = _ServerStreamCounter()
    for i in range(0, len(stream), 3):  # arrives in small pieces
        counter.feed(stream[i : i + 3])
    assert counter.ready == 2
