"""The event publishing chaos run: the whole app on the local stack (the gateway, the
functions in worker processes, the SQS poller, the reconciler every 10 s) under a load of booking
changes over HTTP, with EventBridge's PutEvents failing for ``--outage`` seconds (the first half
whole calls with HTTP 500, the second half every other entry with ``FailedEntryCount``), through
``testkit.awsfault.AwsFaultProxy`` in front of moto. Afterwards: every event of the log published
exactly once by id, and per booking in version (log) order.

    python -m tests.support.events_chaos                      # >= 300 changes, 60 s outage
    python -m tests.support.events_chaos --changes 500 --outage 60 --clients 6

Prints the figures (and exits 1 when a check fails). tests/reliability/test_events_chaos.py runs a
short one (opt in: EVENTS_CHAOS=1).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import psycopg
import requests
from psycopg.rows import dict_row

TZ = "America/Los_Angeles"


def _local(days: int, hour: int, minute: int = 0) -> str:
    day = datetime.now(ZoneInfo(TZ)).date() + timedelta(days=days)
    return f"{day.isoformat()}T{hour:02d}:{minute:02d}"


class Load:
    """Client threads that book, move, change, cancel and retry over HTTP; counts what changed."""

    def __init__(self, base: str, headers: dict[str, str], clients: int, seed: int):
        self.base, self.headers, self.clients = base, headers, clients
        self.random = random.Random(seed)
        self.lock = threading.Lock()
        self.changes = 0
        self.noops = 0
        self.refused: Counter[str] = Counter()
        self.requests = 0
        self.stop = threading.Event()
        self.day = 30

    def _day(self) -> int:
        with self.lock:
            self.day += 1
            return self.day

    def _count(self, changed: bool, status: int, code: str = "") -> None:
        with self.lock:
            self.requests += 1
            if changed:
                self.changes += 1
            elif 200 <= status < 300:
                self.noops += 1
            else:
                self.refused[f"{status} {code}"] += 1

    def _call(
        self, session: requests.Session, method: str, path: str, body: Any = None, key: str | None = None
    ) -> tuple[int, Any, str]:
        headers = dict(self.headers)
        if key:
            headers["idempotency-key"] = key
        response = session.request(method, self.base + path, json=body, headers=headers, timeout=90)
        data = response.json() if response.content else {}
        code = (data.get("error") or {}).get("code", "") if isinstance(data, dict) else ""
        return response.status_code, data, code

    def client(self, n: int) -> None:
        while not self.stop.is_set():
            try:
                self._client()
            except requests.RequestException as exc:  # a slow machine: a request timed out; go on
                with self.lock:
                    self.refused[type(exc).__name__] += 1

    def _client(self) -> None:
        rng = random.Random(self.random.random())
        session = requests.Session()
        while not self.stop.is_set():
            day = self._day()
            key = f"chaos-{uuid.uuid4().hex[:12]}"
            body = {
                "customer": {"name": "Chaos Client", "phone": "+14155550100", "email": "chaos@example.com"},
                "event_start": _local(day, 18),
                "timezone": TZ,
                "guest_count": 10,
                "address": {"line1": "1 Market St", "city": "Austin", "state": "TX", "postal_code": "78701"},
            }
            status, booking, code = self._call(session, "POST", "/bookings", body, key)
            self._count(status == 201, status, code)
            if status != 201:
                continue
            self._change(session, rng, booking, body, key, day)

    def _change(
        self, session: requests.Session, rng: random.Random, booking: Any, body: Any, key: str, day: int
    ) -> None:
        """2 to 6 random operations on the new ``booking`` (made with ``body`` under ``key``), up to a cancel."""
        bid, version = booking["id"], booking["version"]
        for _ in range(rng.randint(2, 6)):
            if self.stop.is_set():
                break
            op = rng.choice(["move", "guests", "noop", "retry_create", "retry_move", "cancel"])
            if op == "retry_create":
                status, _, code = self._call(session, "POST", "/bookings", body, key)
                self._count(False, status, code)
            elif op in ("move", "retry_move"):
                version = self._move(session, rng, bid, version, key, day, attempts=2 if op == "retry_move" else 1)
            elif op == "guests":
                version = self._guests(session, rng, bid, version, body["event_start"])
            elif op == "noop":
                self._noop(session, bid, version)
            else:
                self._cancel(session, bid, version)
                break

    def _move(
        self, session: requests.Session, rng: random.Random, bid: str, version: int, key: str, day: int, attempts: int
    ) -> int:
        """Move the booking to another hour of its day, sent ``attempts`` times with one key; its version."""
        move_key = f"{key}-m{rng.randint(0, 10**9)}"
        change = {"event_start": _local(day, rng.choice([11, 12, 13, 14, 15, 16, 17, 19, 20]))}
        for attempt in range(attempts):
            status, out, code = self._call(session, "PATCH", f"/bookings/{bid}", change, move_key)
            changed = status == 200 and out.get("version", version) > version
            if changed:
                version = out["version"]
            self._count(changed and attempt == 0, status, code)
        return version

    def _guests(self, session: requests.Session, rng: random.Random, bid: str, version: int, start: str) -> int:
        """Change the guest count (no idempotency key); the booking's version."""
        status, out, code = self._call(
            session,
            "PATCH",
            f"/bookings/{bid}",
            {"event_start": start, "guest_count": rng.randint(2, 40)},
        )
        changed = status == 200 and out.get("version", version) > version
        version = out.get("version", version) if status == 200 else version
        self._count(changed, status, code)
        return version

    def _noop(self, session: requests.Session, bid: str, version: int) -> None:
        """A confirmed booking moved to the start it has: changes nothing."""
        status, out, code = self._call(session, "GET", f"/bookings/{bid}")
        if status == 200 and out["status"] == "confirmed":
            start = out["event_start"][:16]
            status, out, code = self._call(session, "PATCH", f"/bookings/{bid}", {"event_start": start})
            self._count(status == 200 and out.get("version") != version, status, code)

    def _cancel(self, session: requests.Session, bid: str, version: int) -> None:
        """Cancel the booking, then repeat the cancel (a no-op)."""
        status, out, code = self._call(session, "POST", f"/bookings/{bid}/cancel")
        self._count(status == 200 and out.get("version", version) > version, status, code)
        status, out, code = self._call(session, "POST", f"/bookings/{bid}/cancel")  # repeated
        self._count(False, status, code)


def query(url: str, sql: str, params: Any = None) -> list[dict[str, Any]]:
    with psycopg.connect(url, autocommit=True, row_factory=dict_row, connect_timeout=5) as conn:
        return conn.execute(sql, params).fetchall()


@dataclass
class Timeline:
    """When the load and the outage began and ended (``time.monotonic``), and what happened meanwhile."""

    started: float = 0.0
    outage_start: float = 0.0
    outage_end: float = 0.0
    changes_in_outage: int = 0
    load_end: float = 0.0
    drained_at: float = 0.0
    backlog_max: int = 0


def run(changes: int, outage: float, clients: int, seed: int, drain_timeout: float) -> dict[str, Any]:
    from local.stack import wait_until
    from testkit.awsfault import AwsFaultProxy
    from testkit.env import migrated_database, throwaway_postgres

    pg = throwaway_postgres("hibachi-chaos-pg-")
    url = migrated_database(pg, "hibachi_chaos")
    proxy = AwsFaultProxy().start()
    stack = _stack(url, proxy)
    stack.start()
    proxy.set_upstream(stack.endpoint_url)
    try:
        load = Load(stack.url, stack.auth_headers(), clients, seed)
        timeline = _load_through_outage(load, stack, proxy, url, changes=changes, outage=outage)
        # no need to wait for the jobs queue: whatever its jobs have not published yet, the
        # reconciler publishes (the check below is on the event log)

        def drained() -> bool:
            return bool(query(url, "SELECT count(*) AS n FROM events WHERE published_at IS NULL")[0]["n"] == 0)

        wait_until(drained, timeout=drain_timeout, interval=1, message="every event published")
        timeline.drained_at = time.monotonic()
        figures = _figures(load, proxy, stack, url, timeline)
        figures["ok"] = _ok(figures, changes)
        return figures
    finally:
        stack.stop()
        proxy.close()
        pg.stop()


def _stack(url: str, proxy: Any) -> Any:
    """The local stack on ``url``, its functions reaching AWS through ``proxy`` (not started)."""
    from local.stack import LocalStack

    return LocalStack(
        database_url=url,
        key_dir=tempfile.mkdtemp(prefix="chaos-jwt-"),
        visibility_timeout=2,
        max_workers=2,
        reconcile_interval=10,
        enable_scheduler=False,  # follow-ups are due days later
        moto_process=True,
        resource_prefix="chaos",
        env={
            "AWS_ENDPOINT_URL": proxy.url,  # the functions reach AWS through the fault proxy
            "RECONCILE_GRACE_SECONDS": "5",
            "SERVICE_FIRST_START": "00:00",
            "SERVICE_LAST_START": "23:30",
            "CHEF_COUNT": "3",
        },
    )


def _load_through_outage(load: Load, stack: Any, proxy: Any, url: str, *, changes: int, outage: float) -> Timeline:
    """Run ``load``'s clients until ``changes`` changes, PutEvents failing for ``outage`` seconds after
    the warm-up; stop them."""
    from local.stack import wait_until

    timeline = Timeline()
    # warm every function's worker processes before the clock starts (a cold start here is seconds)
    for path in ("/health", "/availability?date=2030-01-02&timezone=America/Los_Angeles"):
        requests.get(stack.url + path, headers=stack.auth_headers(), timeout=300)
    threads = [threading.Thread(target=load.client, args=(n,), daemon=True) for n in range(load.clients)]
    timeline.started = time.monotonic()
    for t in threads:
        t.start()
    wait_until(lambda: load.changes >= 20, timeout=300, message="load warmed up")
    timeline.outage_start = time.monotonic()
    timeline.backlog_max = _outage(proxy, url, outage, timeline.outage_start)
    timeline.outage_end = time.monotonic()
    timeline.changes_in_outage = load.changes
    wait_until(lambda: load.changes >= changes, timeout=600, interval=0.5, message=f"{changes} changes")
    load.stop.set()
    for t in threads:
        t.join(60)
    timeline.load_end = time.monotonic()
    return timeline


def _outage(proxy: Any, url: str, outage: float, start: float) -> int:
    """PutEvents fails from ``start`` for ``outage`` seconds: whole calls, then (the second half) every
    other entry. The largest backlog of unpublished events seen meanwhile."""
    proxy.fail_put_events, proxy.mode = True, "error"
    backlog_max = 0
    while time.monotonic() - start < outage:
        if time.monotonic() - start >= outage / 2:
            proxy.mode = "partial"
        backlog = query(url, "SELECT count(*) AS n FROM events WHERE published_at IS NULL")[0]["n"]
        backlog_max = max(backlog_max, backlog)
        time.sleep(1)
    proxy.fail_put_events = False
    return backlog_max


def _figures(load: Load, proxy: Any, stack: Any, url: str, timeline: Timeline) -> dict[str, Any]:
    """The run's figures, from the event log, what the proxy saw published and the rule's queue."""
    events = query(url, "SELECT id::text, booking_id::text, seq, version, type FROM events ORDER BY seq")
    published_ids = [detail["id"] for _, detail in proxy.published]
    counts = Counter(published_ids)
    by_booking_log, out_of_order, versions_ok = _order(events, proxy.published)
    delivered = _drain_rule_queue(stack)
    runs = query(url, "SELECT re_enqueued FROM reconciler_runs ORDER BY ran_at")
    return {
        "changes": load.changes,
        "changes_before_outage_end": timeline.changes_in_outage,
        "noop_or_retry_requests": load.noops,
        "refused_requests": dict(load.refused),
        "requests": load.requests,
        "bookings": len(by_booking_log),
        "events_in_log": len(events),
        "event_types": dict(Counter(e["type"] for e in events)),
        "put_events_calls": proxy.calls,
        "put_events_calls_refused (500)": proxy.refused_calls,
        "entries_refused (FailedEntryCount)": proxy.refused_entries,
        "backlog_max_during_outage": timeline.backlog_max,
        "published": len(published_ids),
        "published_distinct_ids": len(counts),
        "published_more_than_once": sum(1 for c in counts.values() if c > 1),
        "log_events_never_published": len({e["id"] for e in events} - set(counts)),
        "bookings_out_of_log_order": len(out_of_order),
        "versions_in_order_per_booking": versions_ok,
        "delivered_to_the_rule_queue": delivered,
        "reconciler_published_total": sum((r["re_enqueued"] or {}).get("publish_events", 0) for r in runs),
        "outage_seconds": round(timeline.outage_end - timeline.outage_start, 1),
        "load_seconds": round(timeline.load_end - timeline.started, 1),
        "drained_seconds_after_outage": round(timeline.drained_at - timeline.outage_end, 1),
    }


def _order(
    events: list[dict[str, Any]], published: list[tuple[str, dict[str, Any]]]
) -> tuple[dict[str, list[str]], list[str], bool]:
    """The log's event ids per booking, the bookings whose events were not published in log order, and
    whether every booking's events were published in version order."""
    by_booking_log: dict[str, list[str]] = defaultdict(list)
    for e in events:
        by_booking_log[e["booking_id"]].append(e["id"])
    by_booking_published: dict[str, list[str]] = defaultdict(list)
    for _, detail in published:
        by_booking_published[detail["booking_id"]].append(detail["id"])
    out_of_order = [b for b, ids in by_booking_log.items() if by_booking_published.get(b) != ids]
    versions_ok = all(
        [d["version"] for _, d in published if d["booking_id"] == b]
        == sorted(d["version"] for _, d in published if d["booking_id"] == b)
        for b in by_booking_log
    )
    return by_booking_log, out_of_order, versions_ok


def _drain_rule_queue(stack: Any) -> int:
    """Receive and delete what the events rule delivered to its queue; how many messages."""
    tap = stack.sqs
    delivered = 0
    for _ in range(500):
        batch = tap.receive_message(QueueUrl=stack.resources.events_queue_url, MaxNumberOfMessages=10).get(
            "Messages", []
        )
        if not batch:
            break
        delivered += len(batch)
        tap.delete_message_batch(
            QueueUrl=stack.resources.events_queue_url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)],
        )
    return delivered


def _ok(figures: dict[str, Any], changes: int) -> bool:
    """Every check of the run passed: enough changes, each one event, every event published once, in order."""
    return bool(
        figures["changes"] >= changes
        and figures["events_in_log"] == figures["published"] == figures["published_distinct_ids"]
        and figures["published_more_than_once"] == 0
        and figures["log_events_never_published"] == 0
        and figures["bookings_out_of_log_order"] == 0
        and figures["versions_in_order_per_booking"]
        and figures["changes"] == figures["events_in_log"]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--changes", type=int, default=300, help="at least this many booking changes (300)")
    parser.add_argument("--outage", type=float, default=60.0, help="seconds PutEvents fails (60)")
    parser.add_argument("--clients", type=int, default=4, help="concurrent HTTP clients (4)")
    parser.add_argument("--seed", type=int, default=20)
    parser.add_argument("--drain-timeout", type=float, default=900.0)
    args = parser.parse_args(argv)
    figures = run(args.changes, args.outage, args.clients, args.seed, args.drain_timeout)
    print(json.dumps(figures, indent=2))
    return 0 if figures.get("ok") else 1


if __name__ == "__main__":
    sys.exit(main())
