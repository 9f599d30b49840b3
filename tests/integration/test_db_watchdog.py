"""The statement watchdog (``hibachi.db._Watchdog``): a statement past its deadline gets its socket
shut down, and arming a statement the sleeping thread will look at in time does not wake it."""

from __future__ import annotations

import socket
import time
from types import SimpleNamespace
from typing import Any

from hibachi.db import _Watchdog


def _conn(sock: socket.socket) -> Any:
    return SimpleNamespace(pgconn=SimpleNamespace(socket=sock.fileno()))


def _wait_eof(sock: socket.socket, seconds: float) -> bool:
    sock.settimeout(0.05)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if sock.recv(1) == b"":
                return True
        except TimeoutError:
            continue
        except OSError:
            return True
    return False


def test_a_statement_due_before_the_sleeping_threads_wake_is_ended_in_time():
    watchdog = _Watchdog()
    long_a, long_b = socket.socketpair()
    short_a, short_b = socket.socketpair()
    try:
        slow = watchdog.arm(_conn(long_a), 60)  # the thread now sleeps for a minute
        watchdog.arm(_conn(short_a), 0.2)  # due long before that: the thread must be woken
        assert _wait_eof(short_a, 5), "the statement past its deadline kept its connection"
        # the thread counts after the shutdown we just saw: poll for it, with a deadline
        deadline = time.monotonic() + 5
        while watchdog.fired == 0 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert watchdog.fired == 1
        assert not _wait_eof(long_a, 0.1), "a statement within its deadline lost its connection"
        watchdog.disarm(slow)
    finally:
        for s in (long_a, long_b, short_a, short_b):
            s.close()


def test_a_statement_due_after_the_threads_wake_does_not_wake_it():
    watchdog = _Watchdog()
    a, b = socket.socketpair()
    c, d = socket.socketpair()
    try:
        first = watchdog.arm(_conn(a), 30)
        notified = []
        original = watchdog._cond.notify
        watchdog._cond.notify = lambda n=1: (notified.append(n), original(n))  # type: ignore[method-assign]
        second = watchdog.arm(_conn(c), 31)  # the thread looks at 30 s anyway: no wake-up
        assert notified == []
        watchdog.disarm(second)
        watchdog.disarm(first)
        third = watchdog.arm(_conn(c), 1)  # due before the thread's look: woken
        assert notified == [1]
        watchdog.disarm(third)
    finally:
        for s in (a, b, c, d):
            s.close()
