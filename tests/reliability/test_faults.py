"""Faults on the real local stack: PostgreSQL stopped mid-run, SQS sends failing,
one bad record in a batch, every job type delivered three times out of order, and the worker
killed in the middle of a batch. Everything goes through the gateway (real HTTP, JWT authorizer)
or the jobs queue and the poller, as in production; waiting is polling with a deadline.

Covered elsewhere and not repeated here: a job dead-lettered after maxReceiveCount while the
database is down and processed after ``python -m ops dlq redrive`` once it is back
(tests/integration/test_ops_local_stack.py); in-process duplicates of send_followup and emotion
jobs (tests/integration/test_followups.py, test_emotion_worker.py)."""

from __future__ import annotations

import json
import statistics
import time
from datetime import UTC, datetime
from pathlib import Path

import psycopg
import pytest

from local.stack import wait_until
from tests.support.bookings import booking_body, local_start
from tests.support.common import json_lines, new_id
from tests.support.netfaults import http
from tests.support.stack import Env, stats_exact

WORKER = "FollowupWorkerFunction"
FAULTS: list[str] = []  # the faults injected (and survived) in this module, printed at the end


@pytest.fixture(scope="module", autouse=True)
def _report():
    yield
    print(f"\nreliability faults injected and survived: {len(FAULTS)}: {', '.join(FAULTS)}")


def message(content: str, score: float | None) -> dict:
    body = {"role": "user", "content": content, "channel": "web"}
    if score is not None:
        body["emotion_score"] = score
    return body


def post_message(env: Env, cid: str, key: str, score: float | None = None, content: str = "hello"):
    return http(
        f"{env.stack.url}/conversations/{cid}/messages", "POST", body=message(content, score), headers=env.headers(key)
    )


def post_booking(env: Env, key: str, start: str, **overrides):
    return http(f"{env.stack.url}/bookings", "POST", body=booking_body(start, **overrides), headers=env.headers(key))


def job_body(job_type: str, job_id: str, payload: dict) -> str:
    return json.dumps(
        {
            "type": job_type,
            "id": job_id,
            "payload": payload,
            "enqueued_at": datetime.now(UTC).isoformat(),
            "correlation_id": "reliability-test",
        }
    )


def send_jobs(env: Env, bodies: list[str]) -> list[str]:
    """Put raw job bodies on the jobs queue in one batch; their SQS message ids."""
    result = env.stack.sqs.send_message_batch(
        QueueUrl=env.stack.queue_urls["jobs"], Entries=[{"Id": str(i), "MessageBody": b} for i, b in enumerate(bodies)]
    )
    assert not result.get("Failed"), result
    return [item["MessageId"] for item in sorted(result["Successful"], key=lambda r: int(r["Id"]))]


def published_followups(env: Env, booking_id: str) -> int:
    """SNS follow-ups published for ``booking_id`` (the topic's SQS subscription, read without
    deleting; each read makes them visible again a second later)."""
    env.collect_published()
    return sum(1 for m in env.published if m.get("booking_id") == booking_id and m.get("type") == "booking_followup")


# -- PostgreSQL stopped mid-run -----------------------------------------------------------------------
def test_postgres_stopped_mid_run_gives_503_fast_writes_nothing_and_recovers_by_itself(env):
    s = env.stack
    cid = new_id("pgdown")
    day = env.fresh_day()
    for i in range(3):  # warm: every API function has an open connection
        assert post_message(env, cid, f"{cid}-m{i}", 0.5)[0] == 201
    status, booking, _ = post_booking(env, f"{cid}-b0", local_start(day, 12), conversation_id=cid)
    assert status == 201
    s.drain(timeout=30)
    workers_before = {p: s.registry.pool(p).cold_starts for p in ("StoreMessageFunction", "CreateBookingFunction")}

    env.pg.stop()
    FAULTS.append("postgres stopped")
    try:
        calls = [
            ("POST", f"/conversations/{cid}/messages", message("still there?", 0.9), f"{cid}-m3"),
            ("GET", f"/conversations/{cid}", None, None),
            ("GET", f"/conversations/{cid}/messages", None, None),
            ("POST", "/bookings", booking_body(local_start(day, 18), conversation_id=cid), f"{cid}-b1"),
            ("GET", f"/bookings/{booking['id']}", None, None),
            ("POST", f"/bookings/{booking['id']}/cancel", None, None),
            ("PATCH", f"/bookings/{booking['id']}", {"event_start": local_start(day, 20)}, None),
        ]
        for method, path, body, key in calls:
            started = time.monotonic()
            status, answer, headers = http(s.url + path, method, body=body, headers=env.headers(key))
            elapsed = time.monotonic() - started
            assert status == 503, (method, path, status, answer)
            assert answer["error"]["code"] == "service_unavailable", answer
            assert answer["error"]["details"] == {"dependency": "database"}
            assert headers.get("Retry-After") == "2"
            assert elapsed < 3.0, f"{method} {path} took {elapsed:.2f} s"
        status, health, _ = http(s.url + "/health")
        assert status == 503 and health["failing"] == ["database"]
    finally:
        env.pg.start()

    # back by itself: the same workers (no cold start), and the retried keys create (not replay):
    # the 503s wrote nothing
    wait_until(lambda: post_message(env, cid, f"{cid}-m3", 0.9)[0] == 201, timeout=30, message="stores again")
    assert post_booking(env, f"{cid}-b1", local_start(day, 18), conversation_id=cid)[0] == 201
    assert {p: s.registry.pool(p).cold_starts for p in workers_before} == workers_before
    s.drain(timeout=30)
    assert env.one("SELECT status, version FROM bookings WHERE id = %s", (booking["id"],)) == {
        "status": "confirmed",
        "version": 1,
    }
    row = env.one("SELECT message_count FROM conversations WHERE id = %s", (cid,))
    stored = env.one("SELECT count(*) AS n FROM messages WHERE conversation_id = %s AND role = 'user'", (cid,))
    assert row["message_count"] >= stored["n"] == 4
    wait_until(lambda: stats_exact(env, cid), timeout=30, message="statistics exact")


def server_pids(env: Env) -> list[int]:
    """The postmaster of the test's PostgreSQL and its children (from /proc)."""
    import os

    master = int((env.pg.pgdata / "postmaster.pid").read_text().split()[0])
    kids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == master:
                kids.append(int(entry))
    return [master, *kids]


def test_a_frozen_database_gives_503_within_3_s_not_a_hang(env):
    """A hung server or a black-holed network: connections stay open, nothing answers. Stopped
    processes (SIGSTOP) are that; the kernel still acks what the functions send."""
    import os
    import signal

    s = env.stack
    cid = new_id("frozen")
    assert post_message(env, cid, f"{cid}-0", 0.5)[0] == 201  # warm: open connections
    assert http(f"{s.url}/conversations/{cid}", headers=env.headers())[0] == 200
    pids = server_pids(env)
    for pid in pids:
        os.kill(pid, signal.SIGSTOP)
    FAULTS.append("postgres frozen")
    try:
        for method, path, body, key in (
            ("POST", f"/conversations/{cid}/messages", message("hello?", 0.1), f"{cid}-1"),
            ("GET", f"/conversations/{cid}", None, None),
            ("GET", "/health", None, None),
        ):
            started = time.monotonic()
            status, answer, _ = http(s.url + path, method, body=body, headers=env.headers(key))
            elapsed = time.monotonic() - started
            assert status == 503, (method, path, status, answer)
            assert elapsed < 3.0, f"{method} {path} took {elapsed:.2f} s"
    finally:
        for pid in pids:
            os.kill(pid, signal.SIGCONT)
    # the statement the server held may still have run when it woke (autocommit: in full or not at
    # all); the client's retry with its key gets the one message either way, and when the retry
    # finds it stored (200) no job went out for it: the reconciler's case
    wait_until(
        lambda: post_message(env, cid, f"{cid}-1", 0.1, content="hello?")[0] in (200, 201),
        timeout=30,
        message="stores again",
    )
    assert (
        env.one(
            "SELECT count(*) AS n FROM messages WHERE conversation_id = %s AND idempotency_key = %s", (cid, f"{cid}-1")
        )["n"]
        == 1
    )
    s.drain(timeout=30)
    s.invoke_worker({"task": "reconcile"})
    s.drain(timeout=30)
    assert stats_exact(env, cid)


# -- SQS sends failing ----------------------------------------------------------------------------------
@pytest.mark.parametrize("fault", ["down", "hang"])
def test_sqs_down_requests_succeed_and_the_reconciler_delivers_every_missing_job(env, fault):
    """SQS refusing (``down``: connections reset) or hanging (``hang``: accepted, never answered):
    the writes answer at once, within the send's budget (a hanging SQS held each write 4 s: two
    attempts of a 2 s read timeout), and the reconciler delivers every job left behind. The median,
    not the slowest: a function's first request in a fresh worker process is a cold start."""
    s = env.stack
    cids = [new_id(f"sqs{fault}") for _ in range(5)]
    day = env.fresh_day()
    getattr(env.proxy, fault)()
    FAULTS.append(f"sqs {'refusing' if fault == 'down' else 'hanging'}")
    tried = env.proxy.refused + env.proxy.hung
    took: list[float] = []
    for n, cid in enumerate(cids):
        for j in range(4):
            start = time.monotonic()
            status, body, _ = post_message(env, cid, f"{cid}-{j}", round((n + j) % 5 / 5 - 0.4, 2))
            took.append(time.monotonic() - start)
            assert status == 201, body
    bookings = []
    for n, hour in enumerate((11, 14, 17)):
        start = time.monotonic()
        status, body, _ = post_booking(env, f"{cids[n]}-b", local_start(day, hour), conversation_id=cids[n])
        took.append(time.monotonic() - start)
        assert status == 201, body
        bookings.append(body["id"])
    assert env.proxy.refused + env.proxy.hung > tried, "the functions did try to send"
    assert statistics.median(took) < 2.0, f"writes took {sorted(round(t, 2) for t in took)} s"
    assert s.queue_depth("jobs") == {"visible": 0, "in_flight": 0, "delayed": 0}
    assert (
        len(env.query("SELECT id FROM conversations WHERE id = ANY(%s) AND scored_count > stats_count", (cids,))) == 5
    )
    assert env.query("SELECT booking_id FROM followups WHERE booking_id = ANY(%s::uuid[])", (bookings,)) == []

    env.proxy.up()
    result = s.invoke_worker({"task": "reconcile"})
    assert result["re_enqueued"]["emotion_stats"] >= 5 and result["re_enqueued"]["schedule_followup"] >= 3
    s.drain(timeout=30)
    for cid in cids:
        assert stats_exact(env, cid), cid
    rows = env.query(
        "SELECT f.status, f.scheduled_at, b.followup_version, b.version FROM followups f "
        "JOIN bookings b ON b.id = f.booking_id WHERE f.booking_id = ANY(%s::uuid[])",
        (bookings,),
    )
    assert len(rows) == 3
    assert all(r["status"] == "pending" and r["scheduled_at"] and r["followup_version"] == r["version"] for r in rows)
    confirmations = env.query(
        "SELECT conversation_id FROM messages WHERE metadata->>'kind' = 'booking_confirmed' "
        "AND metadata->>'booking_id' = ANY(%s)",
        (bookings,),
    )
    assert sorted(r["conversation_id"] for r in confirmations) == sorted(cids[:3])
    assert s.invoke_worker({"task": "reconcile"})["re_enqueued"] == {
        "emotion_stats": 0,
        "schedule_followup": 0,
        "send_followup": 0,
        "send_reminder": 0,
        "publish_events": 0,
    }


# -- one bad record in a batch ----------------------------------------------------------------------
def test_one_bad_record_fails_alone_and_dead_letters_the_others_are_processed_once(env, capfd):
    s = env.stack
    cids = [new_id("batch") for _ in range(8)]
    env.proxy.down()  # messages stored, their jobs not queued: this test queues them itself
    for n, cid in enumerate(cids):
        assert post_message(env, cid, f"{cid}-0", n / 10)[0] == 201
    env.proxy.up()
    good = [job_body("emotion_stats", f"emotion_stats:{cid}:1", {"conversation_id": cid}) for cid in cids]
    bad = [job_body("emotion_stats", "emotion_stats:nul", {"conversation_id": "bad\u0000id"}), "not a job"]
    s.drain(timeout=30)
    s.registry.pool(WORKER).kill_workers()  # fresh workers write to this test's captured stdout
    capfd.readouterr()
    s.poller.stop()  # one receive takes the whole batch of ten
    try:
        ids = send_jobs(env, good[:4] + bad[:1] + good[4:] + bad[1:])
    finally:
        s.poller.start()
    FAULTS.append("bad records in a batch")
    bad_ids = {ids[4], ids[-1]}
    wait_until(
        lambda: s.queue_depth("jobs_dlq")["visible"] >= 2,
        timeout=60,
        message="the two bad records are dead-lettered after maxReceiveCount",
    )
    s.drain(timeout=30)
    dead = s.sqs.receive_message(QueueUrl=s.queue_urls["jobs_dlq"], MaxNumberOfMessages=10, AttributeNames=["All"]).get(
        "Messages", []
    )
    assert {m["MessageId"] for m in dead} == bad_ids
    assert all(int(m["Attributes"]["ApproximateReceiveCount"]) >= 5 for m in dead)
    s.sqs.delete_message_batch(
        QueueUrl=s.queue_urls["jobs_dlq"],
        Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(dead)],
    )
    for cid in cids:
        assert stats_exact(env, cid), cid
    out = capfd.readouterr().out
    logs = [d for d in json_lines(out) if d.get("message") in ("job processed", "job failed")]
    good_ids = set(ids) - bad_ids
    processed = [d["message_id"] for d in logs if d["message"] == "job processed"]
    failed = [d["message_id"] for d in logs if d["message"] == "job failed"]
    assert sorted(processed) == sorted(good_ids), "each good record processed exactly once"
    assert not set(failed) & good_ids, "no good record was failed (and so retried)"
    assert set(failed) <= bad_ids


# -- duplicates, out of order -------------------------------------------------------------------------
def test_every_job_type_three_times_out_of_order_has_one_effect(env):
    s = env.stack
    cid = new_id("dup")
    day = env.fresh_day()
    for j, score in enumerate((-0.2, 0.4, 0.9)):
        assert post_message(env, cid, f"{cid}-{j}", score)[0] == 201
    status, booking, _ = post_booking(env, f"{cid}-b", local_start(day, 18), conversation_id=cid)
    assert status == 201
    s.drain(timeout=30)
    bid = booking["id"]
    # the event is over: the follow-up is due (the clock jumps; the schedule would fire now)
    env.query("UPDATE followups SET due_at = now() - interval '1 minute' WHERE booking_id = %s RETURNING 1", (bid,))
    emotion = job_body("emotion_stats", f"emotion_stats:{cid}:9", {"conversation_id": cid})
    schedule = job_body("schedule_followup", f"schedule_followup:{bid}:1", {"booking_id": bid, "version": 1})
    send = job_body("send_followup", f"send_followup:{bid}:1", {"booking_id": bid, "version": 1})
    FAULTS.append("every job type delivered 3 times out of order")
    for order in ([send, emotion, schedule], [schedule, send, emotion], [emotion, schedule, send]):
        for bodies in ([order[0]], order[1:]):  # separate batches, so the order is the delivery order
            send_jobs(env, bodies)
            s.drain(timeout=30)
    assert stats_exact(env, cid)
    assert env.one("SELECT status, attempts FROM followups WHERE booking_id = %s", (bid,)) == {
        "status": "sent",
        "attempts": 1,
    }
    kinds = [
        r["kind"]
        for r in env.query(
            "SELECT metadata->>'kind' AS kind FROM messages WHERE conversation_id = %s AND role <> 'user' ORDER BY seq",
            (cid,),
        )
    ]
    assert kinds == ["booking_confirmed", "booking_followup"]
    wait_until(lambda: published_followups(env, bid) == 1, timeout=10, message="the follow-up published")
    assert published_followups(env, bid) == 1


# -- the worker killed mid-batch ----------------------------------------------------------------------
class RowLock:
    """Hold a row lock from the test's own session until ``release()``: the worker's statement on
    that row waits, so the worker can be killed while its work is in the database's hands."""

    def __init__(self, env: Env, sql: str, params):
        self.conn = psycopg.connect(env.url, connect_timeout=5)
        self.conn.execute(sql, params)  # a transaction stays open: the lock is held

    def release(self) -> None:
        self.conn.commit()
        self.conn.close()


def waiting_on_lock(env: Env, needle: str) -> bool:
    return bool(
        env.query("SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE %s", (f"%{needle}%",))
    )


def kill_worker_when_blocked(env: Env, lock: RowLock, needle: str) -> None:
    failures = env.stack.poller.stats["batch_failures"]
    try:
        wait_until(lambda: waiting_on_lock(env, needle), timeout=30, message=f"the worker waits on {needle}")
        assert env.stack.registry.pool(WORKER).kill_workers() >= 1
        wait_until(
            lambda: env.stack.poller.stats["batch_failures"] > failures,
            timeout=10,
            message="the poller saw the batch fail",
        )
    finally:
        lock.release()  # the killed worker's statement now runs to its end, with nobody to answer


def test_worker_killed_mid_batch_redelivery_keeps_stats_exact_and_one_followup(env):
    s = env.stack
    cid = new_id("kill")
    day = env.fresh_day()
    # emotion statistics: the worker dies while its UPDATE waits on the conversation's row
    assert post_message(env, cid, f"{cid}-0", 0.25)[0] == 201
    s.drain(timeout=30)
    env.proxy.down()  # stored, the job not queued: the test queues it while it holds the row
    for j, score in enumerate((0.75, -0.5), start=1):
        assert post_message(env, cid, f"{cid}-{j}", score)[0] == 201
    env.proxy.up()
    lock = RowLock(env, "SELECT 1 FROM conversations WHERE id = %s FOR UPDATE", (cid,))
    send_jobs(env, [job_body("emotion_stats", f"emotion_stats:{cid}:3", {"conversation_id": cid})])
    FAULTS.append("worker killed mid-batch (emotion_stats)")
    kill_worker_when_blocked(env, lock, "stats_count")
    s.drain(timeout=30)
    assert stats_exact(env, cid)

    # schedule_followup: killed while recording the schedule (after creating it at the Scheduler)
    lock = RowLock(env, "SELECT 1 FROM conversations WHERE id = %s FOR UPDATE", (cid,))
    status, booking, _ = post_booking(env, f"{cid}-b", local_start(day, 18), conversation_id=cid)
    assert status == 201
    FAULTS.append("worker killed mid-batch (schedule_followup)")
    kill_worker_when_blocked(env, lock, "schedule_name = s.name")
    s.drain(timeout=30)
    bid = booking["id"]
    row = env.one(
        "SELECT f.status, f.scheduled_at, b.followup_version FROM followups f JOIN bookings b "
        "ON b.id = f.booking_id WHERE f.booking_id = %s",
        (bid,),
    )
    assert row["status"] == "pending" and row["scheduled_at"] and row["followup_version"] == 1
    confirmed = env.query(
        "SELECT 1 FROM messages WHERE conversation_id = %s AND metadata->>'kind' = 'booking_confirmed'", (cid,)
    )
    assert len(confirmed) == 1

    # send_followup: killed while claiming; the redelivery finds it claimed and sends nothing; once
    # the claim is abandoned for long (the clock jumps), the reconciler sends it, once
    env.query("UPDATE followups SET due_at = now() - interval '1 minute' WHERE booking_id = %s RETURNING 1", (bid,))
    lock = RowLock(env, "SELECT 1 FROM followups WHERE booking_id = %s FOR UPDATE", (bid,))
    send_jobs(env, [job_body("send_followup", f"send_followup:{bid}:1", {"booking_id": bid, "version": 1})])
    FAULTS.append("worker killed mid-batch (send_followup)")
    kill_worker_when_blocked(env, lock, "'sending'")
    s.drain(timeout=30)
    assert published_followups(env, bid) == 0
    env.query(
        "UPDATE followups SET claimed_at = now() - interval '1 hour' WHERE booking_id = %s AND status = "
        "'sending' RETURNING 1",
        (bid,),
    )
    assert s.invoke_worker({"task": "reconcile"})["re_enqueued"]["send_followup"] >= 1
    s.drain(timeout=30)
    assert env.one("SELECT status FROM followups WHERE booking_id = %s", (bid,))["status"] == "sent"
    wait_until(lambda: published_followups(env, bid) == 1, timeout=10, message="published once")
    followups = env.query(
        "SELECT 1 FROM messages WHERE conversation_id = %s AND metadata->>'kind' = 'booking_followup'", (cid,)
    )
    assert len(followups) == 1


def test_a_worker_dying_after_publishing_a_followup_republishes_it_with_the_same_dedup_id(env):
    """At least once, never lost: the reconciler publishes the follow-up again, and every publish of
    it carries one dedup_id, so subscribers (or a FIFO topic) deliver it once; the chat copy is one."""
    s = env.stack
    cid = new_id("dupsend")
    day = env.fresh_day()
    assert post_message(env, cid, f"{cid}-0", 0.1)[0] == 201
    status, booking, _ = post_booking(env, f"{cid}-b", local_start(day, 18), conversation_id=cid)
    assert status == 201
    s.drain(timeout=30)
    bid = booking["id"]
    env.query("UPDATE followups SET due_at = now() - interval '1 minute' WHERE booking_id = %s RETURNING 1", (bid,))
    # the follow-up's chat message waits on the conversation row: the publish has happened by then
    lock = RowLock(env, "SELECT 1 FROM conversations WHERE id = %s FOR UPDATE", (cid,))
    send_jobs(env, [job_body("send_followup", f"send_followup:{bid}:1", {"booking_id": bid, "version": 1})])
    failures = s.poller.stats["batch_failures"]
    try:
        wait_until(lambda: waiting_on_lock(env, "CASE WHEN d.ok"), timeout=30, message="the worker records the send")
        # the worker dies before its 'sent' commits: its statement goes with it
        env.query(
            "SELECT pg_terminate_backend(pid) AS t FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND query LIKE %s",
            ("%CASE WHEN d.ok%",),
        )
        assert s.registry.pool(WORKER).kill_workers() >= 1
        wait_until(lambda: s.poller.stats["batch_failures"] > failures, timeout=10, message="the batch failed")
    finally:
        lock.release()
    s.drain(timeout=30)
    wait_until(lambda: published_followups(env, bid) >= 1, timeout=10, message="published")
    env.query(
        "UPDATE followups SET claimed_at = now() - interval '1 hour' WHERE booking_id = %s AND status = "
        "'sending' RETURNING 1",
        (bid,),
    )  # the clock jumps past STUCK_SENDING_SECONDS
    s.invoke_worker({"task": "reconcile"})
    s.drain(timeout=30)
    assert env.one("SELECT status FROM followups WHERE booking_id = %s", (bid,))["status"] == "sent"
    env.collect_published()
    mine = [m for m in env.published if m.get("booking_id") == bid and m.get("type") == "booking_followup"]
    # published before the crash, and (when the crash landed before 'sent' committed) again by the
    # reconciler: at least once, and every copy with the one dedup_id subscribers drop repeats by
    assert 1 <= len(mine) <= 2
    assert {m["dedup_id"] for m in mine} == {f"followup:{bid}:v1"}
    followups = env.query(
        "SELECT 1 FROM messages WHERE conversation_id = %s AND metadata->>'kind' = 'booking_followup'", (cid,)
    )
    assert len(followups) == 1
