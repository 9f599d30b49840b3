"""Least privilege in the database (migration 0007), against the real PostgreSQL: the application
role (API and worker functions) has DML on the app's tables and nothing else (no CREATE, DROP,
ALTER, TRUNCATE, role management, temporary tables, nor the migration runner's tables); the health
role runs its probe and the ops counts, reads no customer column and writes nothing. And the app's
own paths work as those roles: a booking, a message, the follow-up jobs, /health and its details."""

from __future__ import annotations

import json
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from hibachi import ops
from hibachi import settings as settings_module

from testkit.functions import load_function
from tests.support.bookings import booking_body, create, local_start
from tests.support.common import new_id
from tests.support.followups import aws, messages, post_user_message, run_jobs  # noqa: F401 - fixture
from tests.support.health import get

APP, HEALTH = "hibachi_application", "hibachi_health"


def as_role(database_url: str, role: str) -> str:
    parts = urlsplit(database_url)
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, f"{role}@{host}", parts.path, parts.query, parts.fragment))


def refused(url: str, sql: str) -> bool:
    with psycopg.connect(url, autocommit=True) as conn:
        try:
            conn.execute(sql)
        except psycopg.errors.InsufficientPrivilege:
            return True
        except psycopg.Error as exc:  # e.g. "must be owner": a refusal too, by another sqlstate
            return exc.sqlstate is not None and exc.sqlstate.startswith("42")
    return False


DDL_AND_ADMIN = [
    "CREATE TABLE evil (id int)",
    "CREATE TEMP TABLE evil (id int)",
    "CREATE SCHEMA evil",
    "CREATE FUNCTION evil() RETURNS int LANGUAGE sql AS 'SELECT 1'",
    "CREATE INDEX evil ON bookings (guest_count)",
    "CREATE VIEW evil AS SELECT 1",
    "DROP TABLE messages",
    "DROP TABLE bookings CASCADE",
    "ALTER TABLE bookings ADD COLUMN evil int",
    "ALTER TABLE bookings DROP CONSTRAINT bookings_customer_phone_check",
    "ALTER TABLE conversations OWNER TO hibachi_application",
    "TRUNCATE messages",
    "CREATE ROLE evil",
    "ALTER ROLE hibachi_application SUPERUSER",
    "ALTER ROLE hibachi_health CREATEROLE",
    "GRANT hibachi_health TO hibachi_application",
    "CREATE DATABASE evil",
    "CREATE EXTENSION IF NOT EXISTS pg_stat_statements",
    "SELECT * FROM _yoyo_migration",
    "DELETE FROM _yoyo_migration",
    # the availability summary: its triggers keep it, nobody else writes it
    "INSERT INTO chef_cells VALUES ('2030-01-01', B'1'::bit(100), B'1'::bit(100), B'1'::bit(100))",
    "UPDATE chef_cells SET covers = starts",
    "DELETE FROM chef_cells",
    "SELECT chef_cells_toggle(ARRAY[1], ARRAY[now()], ARRAY[now() + interval '1 hour'])",
    "SELECT chef_cells_rebuild()",
    "ALTER TABLE bookings DISABLE TRIGGER bookings_chef_cells_insert",
]


@pytest.mark.parametrize("sql", DDL_AND_ADMIN)
def test_the_application_role_cannot_change_the_schema_or_the_roles(database_url, sql):
    assert refused(as_role(database_url, APP), sql), sql


def test_the_application_role_cannot_pass_its_rights_on(database_url):
    with psycopg.connect(as_role(database_url, APP), autocommit=True) as conn:
        conn.execute("GRANT SELECT ON bookings TO hibachi_health")  # PostgreSQL warns and grants nothing
        granted = conn.execute("SELECT has_table_privilege('hibachi_health', 'bookings', 'SELECT')").fetchone()
    assert granted == (False,)
    assert refused(as_role(database_url, HEALTH), "SELECT customer_name FROM bookings")


def test_the_role_attributes(database_url):
    with psycopg.connect(database_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT rolname, rolsuper, rolcreaterole, rolcreatedb, rolreplication, rolbypassrls, rolcanlogin"
            " FROM pg_roles WHERE rolname = ANY(%s) ORDER BY rolname",
            [[APP, HEALTH]],
        ).fetchall()
    assert rows == [(APP, False, False, False, False, False, True), (HEALTH, False, False, False, False, False, True)]


HEALTH_REFUSED = [
    "SELECT customer_name FROM bookings",
    "SELECT customer_phone, customer_email, address, notes FROM bookings",
    "SELECT content FROM messages",
    "SELECT * FROM conversations",
    "SELECT * FROM followups",  # every column: some are not its to read
    "INSERT INTO conversations (id) VALUES ('evil')",
    "UPDATE followups SET status = 'sent'",
    "DELETE FROM reconciler_runs",
    "CREATE TABLE evil (id int)",
    "SELECT * FROM _yoyo_migration",
]


@pytest.mark.parametrize("sql", HEALTH_REFUSED)
def test_the_health_role_reads_no_customer_data_and_writes_nothing(database_url, sql):
    assert refused(as_role(database_url, HEALTH), sql), sql


def test_the_health_role_runs_its_probe_and_the_ops_counts(database_url):
    with psycopg.connect(as_role(database_url, HEALTH), autocommit=True) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
        conn.execute(ops.DETAILS_SQL).fetchone()
        conn.execute("SELECT booking_id, status, due_at FROM followups LIMIT 1").fetchall()


def test_the_migrations_are_idempotent_and_keep_the_roles(database_url):
    """Roles are cluster-wide: a second database of the cluster migrates with them already there."""
    from hibachi.migrate import apply

    assert apply(database_url) == []  # applied already: nothing to do
    other = urlunsplit(urlsplit(database_url)._replace(path="/hibachi_roles_again"))
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS hibachi_roles_again")
        conn.execute("CREATE DATABASE hibachi_roles_again")
    try:
        assert "0007.least-privilege-roles" in apply(other)
        assert refused(as_role(other, APP), "CREATE TABLE evil (id int)")
        with psycopg.connect(as_role(other, APP), autocommit=True) as conn:
            conn.execute("INSERT INTO conversations (id) VALUES ('roles-again')")
            assert conn.execute("SELECT count(*) FROM conversations").fetchone() == (1,)
    finally:
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute("DROP DATABASE IF EXISTS hibachi_roles_again WITH (FORCE)")


def test_the_app_works_as_its_roles(settings, context, db, aws, database_url):  # noqa: F811
    db.execute("TRUNCATE bookings CASCADE")
    cid = new_id("web:roles")
    with settings_module.override(database_url=as_role(database_url, APP)):
        post_user_message(context, cid)
        status, booking = create(context, booking_body(local_start(13), conversation_id=cid))
        assert status == 201, booking
        run_jobs(context, aws)
        assert [m["role"] for m in messages(db, cid)] == ["user", "system"]
        assert load_function("followup_worker").lambda_handler({"task": "reconcile"}, context) is not None
    with settings_module.override(database_url=as_role(database_url, HEALTH)):
        status, body, _ = get(context)
        assert status == 200 and body["database"]["status"] == "ok", body
        status, body, _ = get(context, "/health/details", scopes=["ops:read"])
        assert status == 200 and body["database"]["status"] == "ok", json.dumps(body)[:500]
