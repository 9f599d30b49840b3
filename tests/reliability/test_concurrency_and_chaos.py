"""Concurrency and "nothing lost" on the real local stack.

* 200 concurrent bookings across 10 slots: no slot holds more than CHEF_COUNT confirmed bookings and
  no chef has two overlapping confirmed bookings (checked in the database).
* 100 concurrent messages to one conversation: message_count exact, and the emotion statistics
  exact once the worker drains.
* Chaos: 520 requests (messages and bookings) while PostgreSQL restarts once and SQS sends fail
  intermittently; clients retry 5xx and connection errors with their Idempotency-Key, as a real
  client does. Then the reconciler and the worker drain, and every acknowledged (2xx) message and
  booking is stored exactly once and every confirmed booking has its follow-up recorded.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

from local.stack import LocalStack, wait_until
from tests.support.bookings import booking_body, local_start
from tests.support.common import new_id
from tests.support.netfaults import http, retrying
from tests.support.stack import Env, stats_exact

CHEF_COUNT = 3  # the template's default, which the stack runs with


def overlapping_pairs(env: Env) -> int:
    return env.one("""
        SELECT count(*) AS n FROM bookings a JOIN bookings b
          ON a.chef_id = b.chef_id AND a.id < b.id AND a.held && b.held
        WHERE a.status = 'confirmed' AND b.status = 'confirmed'""")["n"]


def test_200_concurrent_bookings_across_10_slots_never_exceed_capacity(env):
    first = env.fresh_day(10)
    slots = [local_start(first + i, 18) for i in range(10)]
    run = new_id("cap")
    url = f"{env.stack.url}/bookings"
    token = env.headers()

    def book(n: int):
        return http(url, "POST", body=booking_body(slots[n % 10]), headers={**token, "idempotency-key": f"{run}-{n}"})

    with ThreadPoolExecutor(max_workers=32) as pool:
        answers = list(pool.map(book, range(200)))
    counts = Counter(a[0] for a in answers)
    print(f"\nconcurrency: 200 bookings across 10 slots -> {dict(counts)}")
    assert set(counts) <= {201, 409}, [a[1] for a in answers if a[0] not in (201, 409)][:5]
    assert counts[201] == 10 * CHEF_COUNT
    per_slot = env.query(
        """
        SELECT event_start, count(*) AS n, count(DISTINCT chef_id) AS chefs FROM bookings
        WHERE idempotency_key LIKE %s AND status = 'confirmed' GROUP BY event_start""",
        (f"{run}-%",),
    )
    assert len(per_slot) == 10
    assert all(r["n"] == r["chefs"] == CHEF_COUNT for r in per_slot), per_slot
    assert overlapping_pairs(env) == 0


def test_100_concurrent_messages_to_one_conversation_count_and_stats_exact(env):
    cid = new_id("conc")
    url = f"{env.stack.url}/conversations/{cid}/messages"
    token = env.headers()
    scores = [round((n % 21) / 10 - 1, 1) for n in range(100)]

    def post(n: int):
        body = {"role": "user", "content": f"message {n}", "emotion_score": scores[n]}
        return http(url, "POST", body=body, headers={**token, "idempotency-key": f"{cid}-{n}"})[0]

    with ThreadPoolExecutor(max_workers=32) as pool:
        statuses = list(pool.map(post, range(100)))
    assert statuses == [201] * 100
    row = env.one("SELECT message_count FROM conversations WHERE id = %s", (cid,))
    assert row["message_count"] == 100
    env.stack.drain(timeout=60)
    wait_until(lambda: stats_exact(env, cid), timeout=30, message="statistics exact")
    stats = env.one("SELECT emotion_count, avg_emotion FROM conversations WHERE id = %s", (cid,))
    assert stats["emotion_count"] == 100 and abs(stats["avg_emotion"] - sum(scores) / 100) < 1e-9


# -- chaos ---------------------------------------------------------------------------------------------
class Chaos:
    """Drives the faults from a thread of its own, paced by the requests' progress: PostgreSQL is
    stopped once (and started as soon as the clients have seen it down), and the functions' SQS
    endpoint is switched off and on every ``flap`` completed requests."""

    def __init__(self, env: Env, total: int, flap: int = 35):
        self.env, self.total, self.flap = env, total, flap
        self.done = 0
        self.saw_503 = 0
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.pg_restarts = 0
        self.sqs_outages = 0
        self.thread = threading.Thread(target=self._run, daemon=True)

    def finished(self, status: int) -> None:
        with self.lock:
            self.done += 1

    def saw(self, status: int) -> None:
        if status == 503:
            with self.lock:
                self.saw_503 += 1

    def _run(self) -> None:
        deadline = time.monotonic() + 240
        next_flap = self.flap
        while not self.stop.is_set() and time.monotonic() < deadline:
            if self.pg_restarts == 0 and self.done >= self.total // 3:
                seen = self.saw_503
                self.env.pg.stop()
                try:
                    wait_until(
                        lambda seen=seen: self.saw_503 > seen or self.stop.is_set(),
                        timeout=15,
                        message="the clients see the database down",
                    )
                finally:
                    self.env.pg.start()
                self.pg_restarts += 1
            if self.done >= next_flap:
                if self.env.proxy.is_down:
                    self.env.proxy.up()
                else:
                    self.env.proxy.down()
                    self.sqs_outages += 1
                next_flap += self.flap
            self.stop.wait(0.01)
        self.env.proxy.up()


def _chaos_requests(env: Env, run: str, cids: list[str]) -> list[tuple[str, str, dict, str]]:
    """10 messages per conversation and 120 bookings over 40 slots, interleaved: (kind, path, body, key)."""
    first = env.fresh_day(10)
    slots = [local_start(first + d, h, m) for d in range(10) for h, m in ((10, 0), (13, 30), (17, 0), (20, 30))]
    requests: list[tuple[str, str, dict, str]] = []  # (kind, path, body, key)
    for n in range(10):
        for c, cid in enumerate(cids):
            body = {
                "role": "user",
                "content": f"turn {n} of {cid} 🍤",
                "emotion_score": round(((n + c) % 9) / 4 - 1, 2),
            }
            requests.append(("message", f"/conversations/{cid}/messages", body, f"{cid}-m{n}"))
    requests.extend(
        ("booking", "/bookings", booking_body(slots[n % 40], conversation_id=cids[n % 40]), f"{run}-b{n}")
        for n in range(120)
    )
    # interleave messages and bookings
    return [r for pair in zip(requests[:120], requests[400:], strict=True) for r in pair] + requests[120:400]


def _reconcile_until_nothing_is_missing(s: LocalStack) -> dict:
    """Drain, then run the reconciler (at most 5 times) until it re-enqueues nothing; its last result."""
    s.drain(timeout=60)
    for _ in range(5):
        result = s.invoke_worker({"task": "reconcile"})
        s.drain(timeout=60)
        if not any(result["re_enqueued"].values()):
            break
    return result


def test_chaos_nothing_acknowledged_is_lost_or_doubled(env):
    s = env.stack
    run = new_id("chaos")
    cids = [f"{run}-c{n}" for n in range(40)]
    requests = _chaos_requests(env, run, cids)
    assert len(requests) == 520
    token = env.headers()
    chaos = Chaos(env, len(requests))
    attempts = Counter()

    def one(req):
        kind, path, body, key = req

        def call():
            result = http(s.url + path, "POST", body=body, headers={**token, "idempotency-key": key})
            chaos.saw(result[0])
            return result

        (status, answer, _), n = retrying(call, attempts=60, deadline=90, pause=0.05)
        attempts[kind] += n
        chaos.finished(status)
        return kind, key, status, answer

    chaos.thread.start()
    try:
        with ThreadPoolExecutor(max_workers=16) as pool:
            results = list(pool.map(one, requests))
    finally:
        chaos.stop.set()
        chaos.thread.join(30)
    env.proxy.up()
    env.ensure_pg()
    assert chaos.pg_restarts == 1 and chaos.sqs_outages >= 3 and chaos.saw_503 >= 1

    # drain: the reconciler finds what a failed send left behind, the worker does it
    result = _reconcile_until_nothing_is_missing(s)
    assert not any(result["re_enqueued"].values()), result
    dead = s.queue_depth("jobs_dlq")["visible"]  # dead-lettered while the database was down
    s.sqs.purge_queue(QueueUrl=s.queue_urls["jobs_dlq"])

    acked = [r for r in results if 200 <= r[2] < 300]
    statuses = Counter(r[2] for r in results)
    assert set(statuses) <= {200, 201}, statuses  # every request got through in the end
    msg_keys = [key for kind, key, _, _ in acked if kind == "message"]
    booking_keys = [key for kind, key, _, _ in acked if kind == "booking"]
    stored_msgs = env.query(
        "SELECT idempotency_key AS key, count(*) AS n FROM messages "
        "WHERE conversation_id = ANY(%s) AND role = 'user' GROUP BY 1",
        (cids,),
    )
    stored_bookings = env.query(
        "SELECT idempotency_key AS key, count(*) AS n FROM bookings WHERE idempotency_key LIKE %s GROUP BY 1",
        (f"{run}-b%",),
    )
    print(
        f"\nchaos: {len(requests)} requests sent ({sum(attempts.values())} attempts: {dict(attempts)}), "
        f"{len(acked)} acknowledged ({len(msg_keys)} messages, {len(booking_keys)} bookings), stored "
        f"{sum(r['n'] for r in stored_msgs)} messages and {sum(r['n'] for r in stored_bookings)} bookings; "
        f"PostgreSQL restarts {chaos.pg_restarts}, 503s seen {chaos.saw_503}, SQS outages {chaos.sqs_outages}, "
        f"jobs dead-lettered meanwhile {dead} (recovered by the reconciler)"
    )
    assert {r["key"]: r["n"] for r in stored_msgs} == dict.fromkeys(msg_keys, 1)
    assert {r["key"]: r["n"] for r in stored_bookings} == dict.fromkeys(booking_keys, 1)
    # every acknowledged booking id is the stored one (a retry returned the original)
    ids = {r[3]["id"] for r in acked if r[0] == "booking"}
    assert len(ids) == len(booking_keys)
    for cid in cids:
        assert stats_exact(env, cid), cid
    followups = env.query(
        """
        SELECT b.id, b.status, b.version, b.followup_version, f.status AS f_status, f.scheduled_at,
               (SELECT count(*) FROM messages m WHERE m.conversation_id = b.conversation_id
                  AND m.metadata->>'booking_id' = b.id::text
                  AND m.metadata->>'kind' = 'booking_confirmed') AS confirmations
        FROM bookings b LEFT JOIN followups f ON f.booking_id = b.id
        WHERE b.idempotency_key LIKE %s""",
        (f"{run}-b%",),
    )
    assert len(followups) == len(booking_keys) == 120
    for row in followups:
        assert row["status"] == "confirmed" and row["f_status"] == "pending" and row["scheduled_at"], row
        assert row["followup_version"] == row["version"] and row["confirmations"] == 1, row
    assert overlapping_pairs(env) == 0
