"""A booking's time zone is one PostgreSQL knows (migration 0009: ``time_zones``, the database's
zone list, checked by a foreign key when the booking is written), and one stored row with a zone the
database cannot read (written before the check) never fails a search for everyone."""

from __future__ import annotations

import json

import psycopg
import pytest

from tests.integration.test_bookings import booking_body, call, create, local_start

SEARCH = "POST /bookings/search"


@pytest.fixture(autouse=True)
def clean(db):
    db.execute("TRUNCATE bookings CASCADE")


def test_a_zone_python_knows_but_the_database_does_not_is_422(settings, context, db):
    zone = "Pacific/Chatham"  # stands for a zone newer than the database's tzdata
    db.execute("DELETE FROM time_zones WHERE name = %(z)s", {"z": zone})
    try:
        status, body = create(context, booking_body(local_start(20, hour=18), timezone=zone))
        assert status == 422, body
        (detail,) = body["error"]["details"]
        assert (detail["loc"], detail["type"]) == (["body", "timezone"], "timezone_unknown")
        assert db.fetchone("SELECT count(*) AS n FROM bookings")["n"] == 0
    finally:  # the next deploy's refresh (hibachi.migrate) would add it back
        db.execute("INSERT INTO time_zones (name) VALUES (%(z)s) ON CONFLICT DO NOTHING", {"z": zone})


def test_the_migration_keeps_the_zone_list_fresh(database_url, db):
    from hibachi.migrate import apply

    db.execute("DELETE FROM time_zones WHERE name = 'Pacific/Chatham'")
    assert apply(database_url) == []
    assert db.fetchone("SELECT count(*) AS n FROM time_zones WHERE name = 'Pacific/Chatham'")["n"] == 1


def test_one_row_with_an_unreadable_zone_does_not_break_search(settings, context, db, database_url):
    good = create(context, booking_body(local_start(20)))[1]
    bad = create(context, booking_body(local_start(21)))[1]
    # a row written before zones were checked, with a zone neither PostgreSQL nor Python knows
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("SET session_replication_role = replica")  # skips the foreign key's trigger
        conn.execute("UPDATE bookings SET timezone = 'Mars/Olympus_Mons' WHERE id = %s", (bad["id"],))
    day_from, day_to = local_start(19)[:10], local_start(22)[:10]
    for filters in ({}, {"from": day_from, "to": day_to}, {"phone": "+14155550123", "from": day_from}):
        status, page = call(context, SEARCH, body=filters)
        assert status == 200, (filters, page)
        assert [b["id"] for b in page["items"]] == [good["id"], bad["id"]], filters
        assert page["items"][1]["timezone"] == "Mars/Olympus_Mons"  # shown in UTC
        assert page["items"][1]["event_start"].endswith("Z"), json.dumps(page["items"][1])
