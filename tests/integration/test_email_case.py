"""Emails are matched case-insensitively: stored and searched in lower case, and migration
0011 lower-cases the rows written before it, keeping every idempotency key's retry."""

from __future__ import annotations

import psycopg
import pytest
from hibachi import settings as settings_module

from tests.support.bookings import CREATE, booking_body, call, local_start
from tests.support.common import database_before


def test_migration_0011_lower_cases_stored_emails_and_keeps_the_keys(settings, context, database_url):
    from hibachi.migrate import apply as apply_all

    with database_before(database_url, "0011", later_too=True) as url:  # today's code writes events (0012)
        body = booking_body(
            local_start(days=45), customer={"name": "Ada", "phone": "+14155550123", "email": "Ada@Example.COM"}
        )
        with settings_module.override(database_url=url):
            status, booking = call(context, CREATE, body=body, headers={"idempotency-key": "book-11"})
            assert status == 201, booking
        with psycopg.connect(url, autocommit=True) as conn:
            # what the code before 0011 stored: the domain lower-cased, the local part as typed
            conn.execute("UPDATE bookings SET customer_email = 'Ada@example.com'")
            for value, minute in (("Ada@example.com", 1), ("ada@example.com", 2), ("+14155550123", 3)):
                conn.execute(
                    "INSERT INTO conversation_identities (conversation_id, kind, value, verified_by, verified_at) "
                    "VALUES ('web:c1', %s, %s, 'code', now() - make_interval(mins => %s))",
                    ("phone" if value.startswith("+") else "email", value, minute),
                )
        apply_all(url)

        with psycopg.connect(url, autocommit=True) as conn:
            assert conn.execute("SELECT customer_email FROM bookings").fetchall() == [("ada@example.com",)]
            identities = conn.execute("SELECT kind, value FROM conversation_identities ORDER BY kind, value").fetchall()
            assert identities == [("email", "ada@example.com"), ("phone", "+14155550123")]
            with pytest.raises(psycopg.errors.CheckViolation):
                conn.execute("UPDATE bookings SET customer_email = 'Ada@example.com'")
        with settings_module.override(database_url=url):
            # the retry of the request made before the migration: the same booking, not idempotency_key_reused
            status, again = call(context, CREATE, body=body, headers={"idempotency-key": "book-11"})
            assert status == 200 and again["id"] == booking["id"], again
            status, page = call(context, "POST /bookings/search", body={"email": "ADA@EXAMPLE.com"})
            assert status == 200 and [b["id"] for b in page["items"]] == [booking["id"]], page
