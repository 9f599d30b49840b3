"""The scale benchmark (issue 22): every API route at 100x today's data against the small tables, in
one run; availability over 14 fully booked days at 100 chefs against 3; storage per row; the load.

    python -m bench.scale              # make bench-scale: loads ~6 GB, rewrites its section of BENCHMARKS.md
    python -m bench.scale --scale 0.05 # 5 % of the rows, for trying (prints, writes nothing)
    python -m bench.scale --reuse      # keep the loaded database of an earlier run of the same day and scale

The data is loaded with ``generate_series`` in a few statements (never through the API), into a
database of its own on the bench's PostgreSQL (``bench.env.started``): the secondary indexes and the
unique constraints are dropped first and built again after the load (the primary keys stay: their
keys arrive in order; so does the capacity constraint, see ``_secondary``), all triggers are off for the load
(``session_replication_role = replica``: foreign keys, the data being consistent by construction, and the
availability summary's, which ``chef_cells_rebuild()`` then makes in one statement; CHECK constraints
still run), then ``VACUUM ANALYZE`` (the visibility map that index-only scans need).

At scale 1: 100 chefs; 1,000,000 bookings over 3 years (one year back, two ahead): every chef holds
five 60-minute events a day (11:00, 13:00, ..., 19:00 in Los Angeles, each with the 60-minute travel
buffer: back to back from 11:00 to 21:00), except chefs 21-100 on the last 130 days (where the run's
new bookings go), and the rest of the million are cancelled bookings; 100,000 conversations of 100
messages each (10,000,000 messages, alternately the customer's, scored and keyed as the API stores
them, and the assistant's), written interleaved as concurrent conversations are.

The routes are called in process (``bench.measure.HandlerWorkload``: the Lambda handlers with real
HTTP API events, as ``bench.run`` does at RTT 0, without SQS), the targets taking turns request by request between
the small database (``bench.operations``' setups: what ``make bench`` measures) and the large one.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import time
import warnings
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from bench import ROOT

START = "<!-- make bench-scale: start (bench/scale.py rewrites what is between these lines) -->"
END = "<!-- make bench-scale: end -->"
ZONE = "America/Los_Angeles"
CHEFS = 100
EVENT_HOURS = (11, 13, 15, 17, 19)  # the loaded events: 60 minutes + 60 of travel, back to back
BUSY_IN_OPEN_DAYS = 20  # chefs 1..20 stay fully booked on the open days; 21..100 are free there
FULL_DAYS = 14
# the 14 fully booked days compared: from today + 400 (Los Angeles), days that make bench's slot numbers
# (bench.operations.booking_slots: days 2-284 and 752-1081 of a run) never reach in the small database
FULL_FROM = 400
ROUTE_TARGET = 1.2  # every route: large p50 at most 1.2 x small p50
CHEFS_TARGET = 1.5  # availability over 14 fully booked days: 100 chefs at most 1.5 x 3 chefs

# The free starts by their definition, chef by chef (the statement before issue 22: every chef probed
# at every start; tests/integration/test_free_starts.py checks the statement against it).
PER_CHEF_FREE_STARTS = """
SELECT s.start
FROM (SELECT to_timestamp(e) AS start FROM unnest(%(starts)s::bigint[]) AS e) s
WHERE EXISTS (
    SELECT 1 FROM generate_series(1, %(chef_count)s::int) AS chef
    WHERE NOT EXISTS (
        SELECT 1 FROM bookings b
        WHERE b.chef_id = chef AND b.status = 'confirmed' AND b.id IS DISTINCT FROM %(exclude)s::uuid
          AND b.held && tstzrange(s.start, s.start + %(hold)s::interval, '[)')
    )
)
ORDER BY s.start
"""


@dataclass(frozen=True)
class Shape:
    """What is loaded at ``scale`` (1.0: the issue's sizes)."""

    scale: float
    days: int  # of bookings, from today - past_days on
    past_days: int
    open_days: int  # the last days, where chefs above BUSY_IN_OPEN_DAYS are free
    bookings: int
    conversations: int
    messages_each: int = 100

    @classmethod
    def of(cls, scale: float) -> Shape:
        """At 1.0: 365 days back, 730 ahead, the last 130 open. Smaller scales keep the days the run
        needs (the fully booked days compared, the open days of the new bookings) and fewer rows."""
        open_days = max(40, min(130, round(130 * scale)))
        past = round(365 * scale)
        days = past + max(FULL_FROM + FULL_DAYS + 40 + open_days, round(730 * scale))
        return cls(
            scale,
            days,
            past,
            open_days,
            max(round(1_000_000 * scale), days * CHEFS * len(EVENT_HOURS)),
            max(100, round(100_000 * scale)),
        )

    @property
    def messages(self) -> int:
        return self.conversations * self.messages_each

    @property
    def cells(self) -> int:
        """(day, chef, event) cells: one booking each, confirmed unless the chef is free that day."""
        return self.days * CHEFS * len(EVENT_HOURS)

    @property
    def confirmed(self) -> int:
        return self.cells - self.open_days * (CHEFS - BUSY_IN_OPEN_DAYS) * len(EVENT_HOURS)

    def describe(self) -> str:
        return (
            f"{CHEFS} chefs; {self.bookings:,} bookings over {self.days:,} days ({self.past_days} back, "
            f"{self.days - self.past_days} ahead): {self.confirmed:,} confirmed (every chef holds five 60-minute "
            f"events a day, 11:00 to 19:00 in Los Angeles, each with the 60-minute travel buffer: back to back "
            f"from 11:00 to 21:00; chefs {BUSY_IN_OPEN_DAYS + 1}-{CHEFS} are free on the last {self.open_days} "
            f"days) and {self.bookings - self.confirmed:,} cancelled; {self.conversations:,} conversations of "
            f"{self.messages_each} messages ({self.messages:,} messages: the customer's, scored and keyed as the "
            "API stores them, alternating with the assistant's; written interleaved, as concurrent "
            "conversations write them)"
        )


# -- the load ------------------------------------------------------------------------------------------------
_CONVERSATIONS = """
INSERT INTO conversations (id, customer_id, channel, created_at, last_message_at, message_count, scored_count,
                           stats_count, emotion_count, emotion_sum, avg_emotion, last_emotion, emotion_trend,
                           stats_updated_at)
SELECT 'scale-c' || n, 'customer-' || n, CASE WHEN n %% 3 = 0 THEN 'sms' ELSE 'web' END,
       %(t0)s + n * %(step)s, %(t0)s + n * %(step)s + %(each)s::int * interval '1 minute', %(each)s::int,
       %(each)s::int / 2,
       %(each)s::int / 2, %(each)s::int / 2, e.total, (e.total / (%(each)s::int / 2))::float8, e.last, e.trend, now()
FROM generate_series(0, %(count)s::int - 1) AS n
CROSS JOIN LATERAL (
    SELECT sum(((n + j) %% 21 - 10) / 10.0) AS total,
           (array_agg(((n + j) %% 21 - 10) / 10.0 ORDER BY j DESC))[1]::float8 AS last,
           regr_slope(((n + j) %% 21 - 10) / 10.0, j) FILTER (WHERE j > %(each)s::int / 2 - 10) AS trend
    FROM generate_series(1, %(each)s::int / 2) AS j
) AS e
"""

USER_TEXT = (
    "Hi! We'd like a hibachi chef for my dad's 60th birthday on the patio, about 14 adults and "
    "4 kids. Do you bring the grill, and can you do a shrimp-free menu for two guests?"
)
ASSISTANT_TEXT = (
    "Happy birthday to your dad! Yes, the chef brings the grill, propane and tableware, and a shrimp-free "
    "menu is no problem."
)

# messages k = first..last of every conversation (k odd: the customer's, scored, keyed; even: the assistant's)
_MESSAGES = """
INSERT INTO messages (conversation_id, role, content, emotion_score, metadata, idempotency_key, idempotency_caller,
                      request_hash, score_no, created_at)
SELECT 'scale-c' || n,
       CASE WHEN k %% 2 = 1 THEN 'user' ELSE 'assistant' END,
       CASE WHEN k %% 2 = 1 THEN %(user_text)s ELSE %(assistant_text)s END || ' (' || k || ')',
       CASE WHEN k %% 2 = 1 THEN ((n + (k + 1) / 2) %% 21 - 10) / 10.0 END,
       CASE WHEN k %% 2 = 1 THEN '{"locale": "en-US"}'::jsonb ELSE '{}'::jsonb END,
       CASE WHEN k %% 2 = 1 THEN 'turn-' || n || '-' || k END,
       CASE WHEN k %% 2 = 1 THEN 'chat-web' END,
       CASE WHEN k %% 2 = 1 THEN md5(n || ':' || k) || md5(k || ':' || n) END,
       CASE WHEN k %% 2 = 1 THEN (k + 1) / 2 END,
       %(t0)s + n * %(step)s + k * interval '1 minute'
FROM generate_series(%(first)s::int, %(last)s::int) AS k
CROSS JOIN LATERAL generate_series(0, %(count)s::int - 1 + 0 * k) AS n
"""

# one booking per (day, chef, event) cell, then cancelled ones on cells spread over the span
_BOOKINGS = """
INSERT INTO bookings (status, chef_id, event_start, event_end, held_until, timezone, duration_minutes, guest_count,
                      customer_name, customer_phone, customer_email, address, conversation_id, notes,
                      request_hash, followup_due_at, followup_version, cancelled_at)
SELECT CASE WHEN cancelled THEN 'cancelled' ELSE 'confirmed' END, chef, st, st + interval '1 hour',
       st + interval '2 hours', %(zone)s, 60, 2 + g %% 30, 'Customer ' || g %% %(customers)s::int,
       CASE WHEN g %% %(customers)s::int = 7 THEN %(search_phone)s
            ELSE '+1' || (2000000000 + g %% %(customers)s::int)::text END,
       'customer' || g %% %(customers)s::int || '@example.com',
       jsonb_build_object('line1', (g %% 9000 + 100) || ' Market St', 'city', 'San Francisco', 'state', 'CA',
                          'postal_code', '94105'),
       'scale-c' || g %% %(conversations)s::int, CASE WHEN g %% 4 = 0 THEN 'Shrimp-free menu for two guests.' END,
       md5(g::text) || md5((-g)::text), st + interval '25 hours', 1, CASE WHEN cancelled THEN st - interval '7 days' END
FROM (
    SELECT g, cell / (%(chefs)s::int * %(events)s::int) AS d, cell / %(events)s::int %% %(chefs)s::int + 1 AS chef,
           cell %% %(events)s::int AS e,
           g > %(cells)s::int OR (cell / (%(chefs)s::int * %(events)s::int) >= %(days)s::int - %(open_days)s::int
                             AND cell / %(events)s::int %% %(chefs)s::int + 1 > %(busy_open)s::int) AS cancelled
    FROM (SELECT g, CASE WHEN g <= %(cells)s::int THEN g - 1
                         ELSE ((g::bigint * 7919) %% %(cells)s::int)::int END AS cell
          FROM generate_series(1, %(bookings)s::int) AS g) AS x
) AS c
CROSS JOIN LATERAL (
    SELECT ((%(first_day)s::date + c.d) + make_interval(hours => (%(hours)s::int[])[c.e + 1])) AT TIME ZONE %(zone)s
           AS st
) AS t
"""

# 14 fully booked days of a 3-chef business (the small database): the same events as the large one's
_THREE_CHEFS_FULL = """
INSERT INTO bookings (chef_id, event_start, event_end, held_until, timezone, duration_minutes, guest_count,
                      customer_name, customer_phone, customer_email, address, request_hash, followup_due_at,
                      followup_version)
SELECT chef, st, st + interval '1 hour', st + interval '2 hours', %(zone)s, 60, 10, 'Customer', '+12000000001',
       'customer@example.com', '{"line1": "1 Market St"}'::jsonb, md5(st::text || chef) || md5(chef || st::text),
       st + interval '25 hours', 1
FROM generate_series(0, %(days)s::int - 1) AS d, generate_series(1, 3) AS chef, unnest(%(hours)s::int[]) AS h,
     LATERAL (SELECT ((%(first_day)s::date + d) + make_interval(hours => h)) AT TIME ZONE %(zone)s AS st) AS t
"""


def _secondary(conn: Any, table: str) -> tuple[list[tuple[str, str]], list[tuple[str, str]]]:
    """The unique constraints (name, definition) and the other non-primary indexes (name, CREATE
    statement) of ``table``, as the migrations made them; not the exclusion constraint (capacity),
    which the load keeps: maintaining its GiST index row by row took half the time of building it
    afterwards (a GiST build of range keys has no sorted mode), and it checks the loaded holds."""
    constraints = conn.execute(
        "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conrelid = %s::regclass AND contype = 'u' ORDER BY conname",
        (table,),
    ).fetchall()
    indexes = conn.execute(
        "SELECT c.relname, pg_get_indexdef(i.indexrelid) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
        "WHERE i.indrelid = %s::regclass AND NOT i.indisprimary "
        "AND i.indexrelid NOT IN (SELECT conindid FROM pg_constraint WHERE conrelid = %s::regclass) ORDER BY 1",
        (table, table),
    ).fetchall()
    return constraints, indexes


@dataclass
class Load:
    seconds: dict[str, float] = field(default_factory=dict)  # phase -> seconds

    @property
    def total(self) -> float:
        return sum(self.seconds.values())


def load(dsn: str, shape: Shape, today: date, log: Any) -> Load:
    """Fill the (migrated, empty) database ``dsn`` with ``shape``'s rows; the seconds of each phase."""
    import psycopg

    result = Load()

    def phase(name: str, statement: str, params: dict[str, Any] | None = None) -> None:
        start = time.perf_counter()
        conn.execute(statement, params)
        result.seconds[name] = result.seconds.get(name, 0.0) + time.perf_counter() - start

    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SET maintenance_work_mem = '512MB'")
        conn.execute("SET session_replication_role = replica")  # no foreign-key triggers while loading
        tables = ("conversations", "messages", "bookings", "chef_cells")
        dropped = _drop_secondary(conn, tables)
        _insert_rows(phase, shape, today, log)
        conn.execute("SET session_replication_role = DEFAULT")
        log("load: the availability summary (chef_cells, which the triggers keep when they are on)")
        phase("summarize holds", "SELECT chef_cells_rebuild()")
        _rebuild_secondary(phase, dropped, log)
        log("load: VACUUM ANALYZE")
        for table in tables:
            phase("VACUUM ANALYZE", f"VACUUM (ANALYZE) {table}")
    return result


_Dropped = dict[str, tuple[list[tuple[str, str]], list[tuple[str, str]]]]


def _drop_secondary(conn: Any, tables: tuple[str, ...]) -> _Dropped:
    """Drop the unique constraints and secondary indexes of ``tables`` (``_secondary``); what was dropped."""
    dropped = {table: _secondary(conn, table) for table in tables}
    for table, (constraints, indexes) in dropped.items():
        for name, _ in constraints:
            conn.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
        for name, _ in indexes:
            conn.execute(f'DROP INDEX "{name}"')
    return dropped


def _insert_rows(phase: Any, shape: Shape, today: date, log: Any) -> None:
    """The conversations, their messages (``chunk`` of each conversation per statement), the bookings."""
    from bench.operations import SEARCH_PHONE

    step = timedelta(days=shape.days) / shape.conversations
    t0 = datetime.combine(today - timedelta(days=shape.past_days), datetime.min.time(), tzinfo=ZoneInfo(ZONE))
    log(f"load: {shape.conversations:,} conversations")
    each = shape.messages_each
    base = {"t0": t0, "step": step, "each": each, "count": shape.conversations}
    phase("insert conversations", _CONVERSATIONS, base)
    chunk = 10
    for first in range(1, each + 1, chunk):
        log(f"load: messages {first}-{first + chunk - 1} of each conversation")
        phase(
            "insert messages",
            _MESSAGES,
            {
                **base,
                "first": first,
                "last": min(each, first + chunk - 1),
                "user_text": USER_TEXT,
                "assistant_text": ASSISTANT_TEXT,
            },
        )
    log(f"load: {shape.bookings:,} bookings")
    phase(
        "insert bookings",
        _BOOKINGS,
        {
            "zone": ZONE,
            "customers": max(1000, shape.bookings // 40),
            "search_phone": SEARCH_PHONE,
            "conversations": shape.conversations,
            "chefs": CHEFS,
            "events": len(EVENT_HOURS),
            "cells": shape.cells,
            "days": shape.days,
            "open_days": shape.open_days,
            "busy_open": BUSY_IN_OPEN_DAYS,
            "bookings": shape.bookings,
            "first_day": today - timedelta(days=shape.past_days),
            "hours": list(EVENT_HOURS),
        },
    )


def _rebuild_secondary(phase: Any, dropped: _Dropped, log: Any) -> None:
    """Build again what ``_drop_secondary`` dropped: the indexes, then the unique constraints, per table."""
    for table, (constraints, indexes) in dropped.items():
        for name, definition in indexes:
            log(f"load: index {name}")
            phase("build indexes", definition)
        for name, definition in constraints:
            log(f"load: constraint {name}")
            phase("build indexes", f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')


# -- measuring -------------------------------------------------------------------------------------------------
@dataclass
class Target:
    """A database the routes run against, with its settings and its own connection: ``use`` makes it
    the process's (``hibachi.db.get_db``), keeping the other targets' connections open, so that
    requests can alternate between targets one by one without reconnecting."""

    name: str
    dsn: str
    chef_count: int
    fixtures: dict[str, dict[str, Any]] = field(default_factory=dict)  # setup key -> fixtures
    _settings: Any = field(default=None, repr=False)
    _db: Any = field(default=None, repr=False)

    def use(self) -> None:
        from hibachi import db as db_module
        from hibachi import settings as settings_module
        from hibachi.settings import Settings

        if self._settings is None:
            self._settings = Settings(
                database_url=self.dsn,
                service_name="hibachi",
                db_connect_timeout=10,
                jobs_queue_url=None,
                chef_count=self.chef_count,
            )
            self._db = db_module.Database(self._settings)
        settings_module.set_settings(self._settings)
        # get_db() keeps a Database whose settings are the current ones: this target's, with its connection
        db_module._db = self._db


@dataclass
class Timing:
    samples: list[float] = field(default_factory=list)
    errors: int = 0
    first_error: str = ""

    @property
    def summary(self) -> Any:
        from bench.measure import Summary

        return Summary.of(self.samples)


class Cycle:
    """Booking slots for ``bench.operations.booking_body`` that go round the open days again and again
    (each round books the next free chef of every slot): slot numbers ``first`` .. ``first + size - 1``."""

    def __init__(self, first: int, size: int):
        self.first, self.size, self.n = first, size, 0

    def __next__(self) -> int:
        self.n += 1
        return self.first + (self.n - 1) % self.size

    def __iter__(self) -> Cycle:
        return self


def compare(op: Any, targets: list[Target], *, samples: int, warm: int = 3) -> dict[str, Timing]:
    """``op`` on each target, ``samples`` timed requests each, the targets taking turns request by
    request (in the order A B B A A B ...: each as often first as second), so that the load of a shared
    machine, which changes from second to second, weighs on all of them alike. Each target is warmed
    first (``warm`` untimed requests: its connection, the pages the route reads)."""
    from hibachi.db import get_db

    from bench.measure import HandlerWorkload, _numbers

    timings = {t.name: Timing() for t in targets}
    workloads: dict[str, HandlerWorkload] = {}
    for target in targets:
        target.use()
        workload = HandlerWorkload(op, target.fixtures[op.setup], warmup=warm)
        try:
            workload.open(0)
        except Exception as exc:  # noqa: BLE001 - counted as an error of the run
            timing = timings[target.name]
            timing.errors += 1
            timing.first_error = repr(exc)[:300]
            continue
        workloads[target.name] = workload
    for i in range(samples):
        for target in targets if i % 2 == 0 else list(reversed(targets)):
            if target.name not in workloads:
                continue
            target.use()
            timing = timings[target.name]
            try:
                timing.samples.append(workloads[target.name].call(0, 0, next(_numbers)))
            except Exception as exc:  # noqa: BLE001 - counted as an error of the run
                timing.errors += 1
                timing.first_error = timing.first_error or repr(exc)[:300]
    for target in targets:
        target.use()
        get_db().close()
    return timings


def _timed(fn: Any, n: int) -> list[float]:
    out = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        out.append((time.perf_counter() - start) * 1000)
    return out


@dataclass
class Results:
    command: str
    shape: Shape
    machine: dict[str, str]
    postgres: str = ""
    load: Load = field(default_factory=Load)
    reused: bool = False
    database_bytes: int = 0
    storage: list[dict[str, Any]] = field(default_factory=list)
    routes: dict[str, dict[str, Timing]] = field(default_factory=dict)  # op -> target -> timing
    route_keys: dict[str, str] = field(default_factory=dict)
    chefs: dict[str, Timing] = field(default_factory=dict)  # "3 chefs" / "100 chefs" -> handler timing
    chefs_statement: dict[str, list[float]] = field(default_factory=dict)  # the service's free-starts call
    per_chef_old_ms: list[float] = field(default_factory=list)  # the old statement, 100 chefs, same days
    full_first: str = ""
    seconds: float = 0.0


_STORAGE = """
SELECT c.relname AS "table", c.reltuples::bigint AS estimate, pg_relation_size(c.oid) AS heap,
       pg_total_relation_size(c.oid) - pg_relation_size(c.oid) - pg_indexes_size(c.oid) AS toast,
       pg_indexes_size(c.oid) AS indexes, pg_total_relation_size(c.oid) AS total
FROM pg_class c WHERE c.relname = %s AND c.relkind = 'r'
"""


def storage(dsn: str) -> list[dict[str, Any]]:
    import psycopg
    from psycopg.rows import dict_row

    rows = []
    with psycopg.connect(dsn, autocommit=True, row_factory=dict_row) as conn:
        for table in ("messages", "bookings", "conversations", "chef_cells"):  # chef_cells: the bookings' summary
            row = conn.execute(_STORAGE, (table,)).fetchone()
            row["rows"] = conn.execute(f"SELECT count(*) AS n FROM {table}").fetchone()["n"]  # noqa: S608 - ours
            row["index_sizes"] = conn.execute(
                "SELECT indexrelid::regclass::text AS name, pg_relation_size(indexrelid) AS bytes FROM pg_index "
                "WHERE indrelid = %s::regclass ORDER BY 2 DESC",
                (table,),
            ).fetchall()
            rows.append(row)
    return rows


def run(shape: Shape, *, samples: int, reuse: bool, keep: bool, command: str) -> Results:
    from bench.env import machine, started

    logging.getLogger("urllib3").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message="No application metrics to publish")
    results = Results(command, shape, machine())
    today = datetime.now(ZoneInfo(ZONE)).date()
    run_id = time.strftime("s%H%M%S")
    with started(aws=False) as (pg, _):
        large_name, large_dsn = _large_database(pg, results, today, reuse=reuse)
        small, large, full_first = _targets(pg, large_dsn, shape, today, run_id)
        results.full_first = full_first.isoformat()
        _measure(results, small, large, full_first, samples=samples)
        if not keep:
            _drop_database(pg, large_name)
    from hibachi import settings as settings_module

    settings_module.set_settings(None)
    results.machine["load_end"] = __import__("bench.env", fromlist=["load"]).load()
    return results


def _large_database(pg: Any, results: Results, today: date, *, reuse: bool) -> tuple[str, str]:
    """Load the large database (or, with ``reuse``, keep the one an earlier run of the same day and
    scale loaded); record its load, size and storage in ``results``. Its name and DSN."""
    import psycopg

    from bench.env import postgres_version
    from bench.plan import log
    from testkit.env import migrated_database

    shape = results.shape
    tag = f"bench-scale {shape.scale:g} {today.isoformat()}"
    results.postgres = postgres_version(pg)
    large_name = "hibachi_scale_large"
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        found = conn.execute(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s", (large_name,)
        ).fetchone()
    large_dsn = pg.dsn(large_name)
    # the database's comment: the tag, then the load's seconds per phase (JSON), for --reuse
    if reuse and found is not None and (found[0] or "").split("|")[0] == tag:
        log(f"reusing {large_name} ({tag})")
        results.reused = True
        results.load = Load(json.loads(found[0].split("|", 1)[1]))
    else:
        log(f"loading {large_name}: {shape.describe()}")
        large_dsn = migrated_database(pg, large_name)
        results.load = load(large_dsn, shape, today, log)
        comment = f"{tag}|{json.dumps(results.load.seconds)}"
        with psycopg.connect(pg.dsn(), autocommit=True) as conn:
            conn.execute(f"COMMENT ON DATABASE {large_name} IS '{comment}'")
        log(f"loaded in {results.load.total:.0f} s")
    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        results.database_bytes = conn.execute("SELECT pg_database_size(%s)", (large_name,)).fetchone()[0]
    results.storage = storage(large_dsn)
    return large_name, large_dsn


def _targets(pg: Any, large_dsn: str, shape: Shape, today: date, run_id: str) -> tuple[Target, Target, date]:
    """The small target (make bench's setups, and 14 fully booked days of a 3-chef business), the
    large one with its fixtures, and the first of the fully booked days."""
    import psycopg

    from bench.env import quiet_stdout
    from bench.operations import OPERATIONS, fixtures_of
    from testkit.env import migrated_database

    small = Target("small", migrated_database(pg, "hibachi_scale_small"), 3)
    large = Target("large", large_dsn, CHEFS)
    full_first = today + timedelta(days=FULL_FROM)
    with quiet_stdout():
        small.use()
        for key in dict.fromkeys(op.setup for op in OPERATIONS):
            small.fixtures[key] = fixtures_of(key, 1, run_id)
        from hibachi.db import get_db

        get_db().close()
    with psycopg.connect(small.dsn, autocommit=True) as conn:
        conn.execute(
            _THREE_CHEFS_FULL,
            {"zone": ZONE, "days": FULL_DAYS, "hours": list(EVENT_HOURS), "first_day": full_first},
        )
        conn.execute("VACUUM ANALYZE bookings")
    large.fixtures = _large_fixtures(large.dsn, shape, today, run_id)
    return small, large, full_first


def _large_fixtures(dsn: str, shape: Shape, today: date, run_id: str) -> dict[str, dict[str, Any]]:
    """The large database's fixtures: loaded conversations, a confirmed booking ahead, and slots and an
    availability window on the open days."""
    import psycopg

    from bench.operations import AVAILABILITY_DAYS, SLOT_HOURS

    with psycopg.connect(dsn, autocommit=True) as conn:
        booking = conn.execute(
            "SELECT id FROM bookings WHERE status = 'confirmed' AND event_start > now() ORDER BY event_start "
            "LIMIT 1 OFFSET 1000"
        ).fetchone()[0]
    open_first = shape.days - shape.past_days - shape.open_days  # days from today
    # booking_body's slot k is day today + 2 + k // 4 at SLOT_HOURS[k % 4]: the open days' slots
    slots = Cycle(len(SLOT_HOURS) * (open_first - 2), len(SLOT_HOURS) * (shape.open_days - 1))
    route_first = today + timedelta(days=open_first - AVAILABILITY_DAYS // 2)  # 7 full days, then 7 open
    conversations = {"chat": ["scale-c17"], "history": ["scale-c42"], "run": run_id}
    return {
        "conversations": conversations,
        "bookings": {"bookings": [str(booking)], "slots": slots, "run": run_id},
        "availability": {"date": route_first.isoformat(), "slots": slots, "run": run_id},
    }


def _measure(results: Results, small: Target, large: Target, full_first: date, *, samples: int) -> None:
    """Every route, small against large; availability over the fully booked days, 3 chefs against 100."""
    from bench.env import quiet_stdout
    from bench.operations import AVAILABILITY_DAYS, OPERATIONS
    from bench.plan import log

    with quiet_stdout():
        for op in [*OPERATIONS, _move()]:
            log(f"routes: {op.name}, small against large")
            results.route_keys[op.name] = op.route_key
            results.routes[op.name] = compare(op, [small, large], samples=samples)
            if op.name.endswith("create_booking"):
                _analyze([small, large])

        # availability over 14 fully booked days: a 3-chef business against a 100-chef one
        availability = next(o for o in OPERATIONS if o.name == "availability")
        full = dataclasses.replace(
            availability,
            verify=lambda event, out: (
                len(out["days"]) == AVAILABILITY_DAYS and not any(d["starts"] for d in out["days"])
            ),
        )
        three = Target("3 chefs", small.dsn, 3, {"availability": {"date": full_first.isoformat()}})
        hundred = Target(f"{CHEFS} chefs", large.dsn, CHEFS, {"availability": {"date": full_first.isoformat()}})
        log("availability, 14 fully booked days: 3 chefs against 100")
        results.chefs = compare(full, [three, hundred], samples=samples)
        results.chefs_statement = _service_free_starts([three, hundred], full_first, samples)
        log("the per-chef statement of before, 100 chefs, the same days")
        results.per_chef_old_ms = _per_chef(hundred, full_first, n=3)


def _move() -> Any:
    """``PATCH /bookings/{booking_id}``, measured here (not by make bench): the fixture's booking moves to
    the run's next slot each time, so each request picks a chef from the holds at a new start (on the
    large database an open day: chefs 1-20 held, 21-100 free)."""
    import json

    from bench.operations import Operation, Request, next_start

    def moved(event: dict[str, Any], out: Any) -> bool:
        asked = json.loads(event["body"])["event_start"]
        return bool(out["id"] == event["pathParameters"]["booking_id"] and out["event_start"][:16] == asked)

    return Operation(
        "reschedule_booking",
        "create_booking",
        "PATCH /bookings/{booking_id}",
        ("bookings:write",),
        "bookings",
        lambda fx, client, n: Request(
            {"booking_id": fx["bookings"][client]}, {"event_start": next_start(fx)}, {"idempotency-key": f"m-{n}"}
        ),
        verify=moved,
    )


def _analyze(targets: list[Target]) -> None:
    """ANALYZE the targets' bookings after a write route: it booked a few hundred times for the customer
    whom search_bookings then pages, a value the load's statistics put at 40 rows on the large database,
    so the planner would read all of that customer's bookings there (a bitmap scan and a sort) instead
    of the page's 21 in index order; the small database's statistics change as much."""
    import psycopg

    for target in targets:
        with psycopg.connect(target.dsn, autocommit=True) as conn:
            conn.execute("ANALYZE bookings")


def _drop_database(pg: Any, name: str) -> None:
    import psycopg

    with psycopg.connect(pg.dsn(), autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def _candidates(first: date, target: Target) -> tuple[list[datetime], timedelta]:
    """The availability's candidate starts (UTC) of the 14 days from ``first``, and a 120-minute event's hold."""
    from datetime import UTC

    from hibachi.bookings import times
    from hibachi.settings import get_settings

    settings = get_settings()
    zone = ZoneInfo(ZONE)
    starts = [
        s.astimezone(UTC)
        for k in range(FULL_DAYS)
        for s in times.service_starts(
            first + timedelta(days=k),
            zone,
            first=settings.service_first_start,
            last=settings.service_last_start,
            step_minutes=settings.slot_step_minutes,
        )
    ]
    return starts, timedelta(minutes=120 + settings.travel_buffer_minutes)


def _service_free_starts(targets: list[Target], first: date, n: int) -> dict[str, list[float]]:
    """The statement alone (``repository.free_starts``, what the handler's one round trip costs), per
    target: ``n`` calls each after a warm one, the targets taking turns call by call (A B B A ...)."""
    from hibachi.bookings import repository
    from hibachi.db import get_db

    out: dict[str, list[float]] = {t.name: [] for t in targets}
    calls = {}
    for target in targets:
        target.use()
        starts, hold = _candidates(first, target)

        def once(starts: list[datetime] = starts, hold: timedelta = hold, t: Target = target) -> None:
            assert repository.free_starts(get_db(), starts=starts, hold=hold, chef_count=t.chef_count) == []

        once()
        calls[target.name] = once
    for i in range(n):
        for target in targets if i % 2 == 0 else list(reversed(targets)):
            target.use()
            out[target.name] += _timed(calls[target.name], 1)
    for target in targets:
        target.use()
        get_db().close()
    return out


def _per_chef(target: Target, first: date, n: int) -> list[float]:
    """The old statement (seconds each: a connection of its own, past the app's statement deadline)."""
    import psycopg

    target.use()
    starts, hold = _candidates(first, target)
    params = {
        "starts": [int(s.timestamp()) for s in starts],
        "hold": hold,
        "chef_count": target.chef_count,
        "exclude": None,
    }
    with psycopg.connect(target.dsn, autocommit=True, prepare_threshold=None) as conn:
        return _timed(lambda: conn.execute(PER_CHEF_FREE_STARTS, params).fetchall(), n)


# -- the report --------------------------------------------------------------------------------------------------
def _mib(n: float) -> str:
    return f"{n / 2**20:,.1f} MiB"


def _ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


def render(results: Results) -> str:
    chefs3, chefs100 = results.chefs.get("3 chefs"), results.chefs.get(f"{CHEFS} chefs")
    lines = [*_render_intro(results), *_render_targets(results, chefs3, chefs100), *_render_routes(results)]
    if chefs3 and chefs100:
        lines += _render_full_days(results, chefs3, chefs100)
    lines += [*_render_storage(results), *_render_load(results)]
    return "\n".join(lines) + "\n"


def _render_intro(results: Results) -> list[str]:
    """The section's start marker, title, how it was generated and the data it ran on."""
    shape = results.shape
    return [
        START,
        "## Scale (issue 22): every route at 100x today's data",
        "",
        (
            f"Generated by `{results.command}` (`python -m bench.scale`) on {results.machine['date']} in "
            f"{results.seconds:.0f} s, commit {results.machine['commit']}, {results.postgres} (the bench's server, "
            f"`local/pg.py`); load average at start / end {results.machine['load_start']} / "
            f"{results.machine.get('load_end', '?')} on {results.machine['cpu']}. `make bench` keeps this section "
            "as it is."
        ),
        "",
        (
            f"**The data** (scale {shape.scale:g}): {shape.describe()}. Loaded with `generate_series` in a few "
            "statements (not through the API) into a database of its own: secondary indexes and unique "
            "constraints dropped first and built after (the capacity constraint stays), foreign-key triggers off "
            "during the load, then "
            "`VACUUM ANALYZE`. *Small*: a fresh database with `make bench`'s setups (its conversations, a booking "
            "per client, bookings until the table holds 1,000) at the default `CHEF_COUNT` (3); *large*: the "
            f"loaded one at `CHEF_COUNT` {CHEFS}."
        ),
        "",
    ]


def _target_rows(results: Results, chefs3: Timing | None, chefs100: Timing | None) -> list[tuple[str, str, str, bool]]:
    """The targets table's rows: what, measured, target, met."""
    rows = []
    if chefs3 and chefs100 and chefs3.samples and chefs100.samples:
        r = _ratio(chefs100.summary.p50, chefs3.summary.p50)
        rows.append(
            (
                f"availability, {FULL_DAYS} fully booked days: {CHEFS} chefs / 3 chefs (handler p50)",
                f"{r:.2f}x ({chefs100.summary.p50:.2f} / {chefs3.summary.p50:.2f} ms)",
                f"≤ {CHEFS_TARGET}x",
                r <= CHEFS_TARGET,
            )
        )
    for name, by in results.routes.items():
        s, g = by["small"], by["large"]
        if s.samples and g.samples:
            r = _ratio(g.summary.p50, s.summary.p50)
            rows.append(
                (
                    f"{name}: large p50 / small p50",
                    f"{r:.2f}x ({g.summary.p50:.2f} / {s.summary.p50:.2f} ms)",
                    f"≤ {ROUTE_TARGET}x",
                    r <= ROUTE_TARGET,
                )
            )
        else:
            rows.append((f"{name}: large p50 / small p50", f"errors: {s.first_error or g.first_error}", "", False))
    return rows


def _render_targets(results: Results, chefs3: Timing | None, chefs100: Timing | None) -> list[str]:
    rows = _target_rows(results, chefs3, chefs100)
    return [
        "### Targets",
        "",
        "| what | measured | target | result |",
        "| --- | --- | --- | --- |",
        *[f"| {w} | {m} | {t} | **{'PASS' if ok else 'MISS'}** |" for w, m, t, ok in rows],
        "",
    ]


def _render_routes(results: Results) -> list[str]:
    """Every route's table, small against large, and how the routes were called."""
    lines = [
        "### Every route in process: small tables against large",
        "",
        (
            "| operation | route | small p50 ms | small p99 | large p50 ms | large p99 | large / small p50 | n each "
            "| errors |"
        ),
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |",
    ]
    for name, by in results.routes.items():
        s, g = by["small"], by["large"]
        ss, gs = s.summary, g.summary
        errors = f"{s.errors} / {g.errors}" + (f": {s.first_error or g.first_error}" if s.errors or g.errors else "")
        lines.append(
            f"| {name} | `{results.route_keys[name]}` | {ss.p50:.3f} | {ss.p99:.3f} | {gs.p50:.3f} | {gs.p99:.3f} "
            f"| {_ratio(gs.p50, ss.p50):.2f} | {min(ss.n, gs.n)} | {errors} |"
        )
    lines += [
        "",
        (
            "The handlers are called in process (`bench.measure.HandlerWorkload`: real HTTP API events, every "
            "answer checked to be the request's), one client, at RTT 0 on loopback, without SQS (`JOBS_QUEUE_URL` "
            "unset: the send does not depend on the tables), the two databases taking turns request by request "
            "(A B B A ...; each has a connection of its own, opened and warmed by three untimed requests first). "
            "Large: `store_message` adds to a conversation of 100 messages, `list_messages` reads the newest 50 of "
            "one, `create_booking` books an open day (chefs 1-20 held there: create's one range scan of the holds "
            "finds them busy), `availability` asks for 14 days of which 7 are fully booked "
            "(100 chefs) and 7 open, `search_bookings` pages a customer's confirmed bookings by phone (both databases' "
            "bookings are analyzed after each create route, which books a few hundred times for that customer)."
        ),
        "",
    ]
    return lines


def _render_full_days(results: Results, chefs3: Timing, chefs100: Timing) -> list[str]:
    """Availability over the fully booked days: 3 chefs against 100, handler and statement."""
    from bench.measure import Summary

    st3, st100 = results.chefs_statement.get("3 chefs", []), results.chefs_statement.get(f"{CHEFS} chefs", [])
    a, b = Summary.of(st3), Summary.of(st100)
    old = Summary.of(results.per_chef_old_ms)
    return [
        f"### Availability over {FULL_DAYS} fully booked days: 3 chefs against {CHEFS} (issue 22)",
        "",
        "| business | holds in the window | handler p50 ms | p99 | its statement alone p50 ms | p99 | errors |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- |",
        (
            f"| 3 chefs (the small database) | {3 * len(EVENT_HOURS) * FULL_DAYS} | {chefs3.summary.p50:.3f} "
            f"| {chefs3.summary.p99:.3f} | {a.p50:.3f} | {a.p99:.3f} | {chefs3.errors} |"
        ),
        (
            f"| {CHEFS} chefs (the large database) | {CHEFS * len(EVENT_HOURS) * FULL_DAYS:,} | "
            f"{chefs100.summary.p50:.3f} | {chefs100.summary.p99:.3f} | {b.p50:.3f} | {b.p99:.3f} | "
            f"{chefs100.errors} |"
        ),
        "",
        (
            f"`GET /availability?date={results.full_first}&days={FULL_DAYS}&duration_minutes=120` (Los Angeles): "
            f"{FULL_DAYS} days on which every chef is held from 11:00 to 21:00, so no start is free (each answer "
            f"is checked to list none). {CHEFS} chefs / 3 chefs: handler "
            f"{_ratio(chefs100.summary.p50, chefs3.summary.p50):.2f}x, statement {_ratio(b.p50, a.p50):.2f}x. "
            f"The statement before issue 22 (every chef probed at every start) took {old.p50:,.0f} ms p50 "
            f"(n={old.n}) on the same {CHEFS}-chef days in this run."
        ),
        "",
    ]


def _render_storage(results: Results) -> list[str]:
    """Storage per table and per row, and each index's bytes per row."""
    lines = [
        "### Storage (the large database, indexes included)",
        "",
        "| table | rows | heap | TOAST | indexes | total | per row |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for row in results.storage:
        n = row["rows"] or 1
        lines.append(
            f"| {row['table']} | {row['rows']:,} | {_mib(row['heap'])} | {_mib(row['toast'])} | "
            f"{_mib(row['indexes'])} | {_mib(row['total'])} | **{row['total'] / n:,.0f} B** "
            f"({row['heap'] / n:,.0f} heap + {row['indexes'] / n:,.0f} indexes) |"
        )
    lines += ["", "Indexes per row (bytes):", ""]
    for row in results.storage:
        n = row["rows"] or 1
        sizes = ", ".join(f"`{i['name']}` {i['bytes'] / n:,.0f}" for i in row["index_sizes"])
        lines.append(f"- {row['table']}: {sizes}")
    return lines


def _render_load(results: Results) -> list[str]:
    """The database's size, the load's seconds per phase, and the end marker."""
    load_note = f"{results.load.total:,.0f} s in all: " + ", ".join(
        f"{k} {v:,.0f} s" for k, v in results.load.seconds.items()
    )
    if results.reused:
        load_note += " (the load of an earlier run of the same day, whose database this run reused: `--reuse`)"
    return [
        "",
        f"**Database size**: {results.database_bytes / 2**30:,.2f} GiB (`pg_database_size`). **Load**: {load_note}.",
        "",
        END,
    ]


def write_section(path: Path, section: str) -> None:
    """Put ``section`` between the markers of ``path`` (or at its end), leaving the rest as it is."""
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    path.write_text(keep_section(section, text), encoding="utf-8")


def keep_section(section: str, text: str) -> str:
    """``text`` with its scale section (between the markers) replaced by ``section``, or ``section``
    appended when it has none. ``bench.run`` keeps an earlier run's section this way."""
    if START in text and END in text:
        head, rest = text.split(START, 1)
        return head + section.rstrip("\n") + rest.split(END, 1)[1]
    return text.rstrip("\n") + ("\n\n" if text else "") + section


def section_of(text: str) -> str | None:
    """The scale section of ``text`` (markers included), if it has one."""
    if START in text and END in text:
        return START + text.split(START, 1)[1].split(END, 1)[0] + END + "\n"
    return None


def kept(text: str, path: Path) -> str:
    """``text`` (a report ``bench.run`` is about to write to ``path``) with the scale section that
    ``path`` holds now, so that ``make bench`` leaves ``make bench-scale``'s figures in place."""
    old = section_of(path.read_text(encoding="utf-8")) if path.exists() else None
    return keep_section(old, text) if old else text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.scale", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the issue's sizes (1.0: 10M messages)")
    parser.add_argument(
        "--samples", type=int, default=300, help="timed requests per route and database, alternating (default 300)"
    )
    parser.add_argument("--reuse", action="store_true", help="reuse the large database loaded earlier today")
    parser.add_argument("--keep", action="store_true", help="keep the large database (for --reuse)")
    parser.add_argument("--output", default=str(ROOT / "BENCHMARKS.md"), help="the report to rewrite the section of")
    parser.add_argument("--print", action="store_true", help="print the section, write nothing (any scale)")
    args = parser.parse_args(argv)
    from bench.plan import _T0, log

    shape = Shape.of(args.scale)
    command = "make bench-scale" if args.scale == 1.0 else f"python -m bench.scale --scale {args.scale:g}"
    results = run(shape, samples=args.samples, reuse=args.reuse, keep=args.keep, command=command)
    results.seconds = time.perf_counter() - _T0
    section = render(results)
    if args.print or args.scale != 1.0:
        print(section)
        return 0
    write_section(Path(args.output), section)
    log(f"wrote the scale section of {args.output} in {results.seconds:.0f} s")
    print(section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
