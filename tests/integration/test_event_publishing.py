"""The event publisher against moto's EventBridge behind a fault-injecting proxy: every event put
once, in order per aggregate; a failed PutEvents (the whole call, or some entries) leaves its events
for the reconciler, and nothing overtakes an event that failed.

The events are written here by hand (conversation events, which need no booking); the statements
that write booking events are tested in test_events.py."""

from __future__ import annotations

import json
import threading
from collections import defaultdict

import pytest
from hibachi.events import publisher
from psycopg.types.json import Jsonb

from testkit.awsfault import AwsFaultProxy
from tests.conftest import new_id, receive_all


@pytest.fixture
def proxy(aws, moto, db):
    db.execute("TRUNCATE events")
    receive_all(aws["client"], moto.resources.events_queue_url)
    with AwsFaultProxy(moto.endpoint_url) as fault, pytest.MonkeyPatch.context() as patch:
        patch.setenv("AWS_ENDPOINT_URL", fault.url)  # hibachi.aws clients per endpoint: a new one
        yield fault


def add_events(db, count: int, per_aggregate: int) -> list[tuple[str, str]]:
    aggregates = [("conversation", new_id("web:c")) for _ in range(count)]
    for version in range(1, per_aggregate + 1):
        for kind, ident in aggregates:
            db.execute(
                """INSERT INTO events (aggregate_type, aggregate_id, conversation_id, type, version, actor, data)
                   VALUES (%s, %s, %s, 'Conversation Needs Attention', %s, %s, %s)""",
                [kind, ident, ident, version, Jsonb({"kind": "system", "via": "system"}), Jsonb({"n": version})],
            )
    return aggregates


def versions_by_aggregate(published: list[tuple[str, dict]]) -> dict[str, list[int]]:
    out: dict[str, list[int]] = defaultdict(list)
    for _, detail in published:
        out[detail["aggregate"]["id"]].append(detail["version"])
    return dict(out)


def unpublished(db) -> int:
    return db.fetchone("SELECT count(*) AS n FROM events WHERE published_at IS NULL")["n"]


def test_every_event_is_put_once_in_order_per_aggregate(proxy, db, moto, aws):
    aggregates = add_events(db, count=3, per_aggregate=4)
    assert publisher.publish(aggregates) == (12, 0)
    assert versions_by_aggregate(proxy.published) == {ident: [1, 2, 3, 4] for _, ident in aggregates}
    assert unpublished(db) == 0
    delivered = [json.loads(m["Body"]) for m in receive_all(aws["client"], moto.resources.events_queue_url)]
    assert len(delivered) == 12
    first = next(e for e in delivered if e["detail"]["version"] == 1)
    assert first["source"] == "hibachi.conversations" and first["detail-type"] == "Conversation Needs Attention"
    assert publisher.publish(aggregates) == (0, 0)  # nothing left: nothing put again


def test_a_failed_put_events_leaves_the_events_for_the_reconciler(proxy, db):
    aggregates = add_events(db, count=3, per_aggregate=2)
    proxy.fail_put_events = True
    assert publisher.publish(aggregates) == (0, 3)  # the heads, refused; nothing after them tried
    assert proxy.published == [] and unpublished(db) == 6
    rows = db.fetchall("SELECT claimed_at, publish_attempts FROM events WHERE version = 1")
    assert all(r["claimed_at"] is None and r["publish_attempts"] == 1 for r in rows)  # released for a retry
    assert publisher.reconcile_publish(0, 100) == 0  # still down
    proxy.fail_put_events = False
    assert publisher.reconcile_publish(0, 100) == 6
    assert versions_by_aggregate(proxy.published) == {ident: [1, 2] for _, ident in aggregates}
    assert unpublished(db) == 0


def test_failed_entries_never_let_a_later_event_overtake_them(proxy, db):
    aggregates = add_events(db, count=4, per_aggregate=3)
    proxy.fail_put_events, proxy.mode = True, "partial"  # every other entry of each call fails
    for _ in range(5):
        publisher.publish(aggregates)
    assert proxy.refused_entries > 0 and 0 < len(proxy.published) < 12
    proxy.fail_put_events = False
    publisher.reconcile_publish(0, 100)
    by_aggregate = versions_by_aggregate(proxy.published)
    assert by_aggregate == {ident: [1, 2, 3] for _, ident in aggregates}  # once each, in order
    assert unpublished(db) == 0


def test_concurrent_publishers_put_each_event_once(proxy, db):
    aggregates = add_events(db, count=5, per_aggregate=4)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            publisher.publish(aggregates)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    publisher.reconcile_publish(0, 100)  # an aggregate a thread gave up on (another held its head)
    ids = [detail["id"] for _, detail in proxy.published]
    assert len(ids) == len(set(ids)) == 20
    assert versions_by_aggregate(proxy.published) == {ident: [1, 2, 3, 4] for _, ident in aggregates}


def test_without_a_bus_nothing_is_put_and_nothing_is_lost(proxy, db):
    from hibachi import settings as settings_module

    aggregates = add_events(db, count=1, per_aggregate=1)
    with settings_module.override(event_bus_name=None):
        assert publisher.publish(aggregates) == (0, 0)
    assert unpublished(db) == 1 and proxy.calls == 0
