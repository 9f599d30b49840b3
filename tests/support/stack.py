"""The shared harness of tests/reliability, tests/fuzz and tests/security: the real app on the local
stack (template.yaml's functions in worker processes, the gateway with the JWT authorizer, moto,
the SQS poller) over a PostgreSQL of its own that the tests stop and start, with the functions' AWS
endpoint behind a proxy the tests can switch off (SQS "down").

One stack for the three folders (starting one costs seconds); each test uses fresh conversation
ids and booking days, so tests do not see each other's rows. The poller reads the jobs queue
directly (not through the proxy), as Lambda's event source mapping is not the function's SDK."""

from __future__ import annotations

import contextlib
import json
import os
import statistics
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from local.pg import LocalPostgres
from local.stack import LocalStack, wait_until
from testkit.env import migrated_database, throwaway_postgres
from tests.support.netfaults import FlakyProxy

REL_PG_PORT = int(os.environ.get("TEST_REL_PG_PORT", "0"))  # 0: a free port
_NEXT_DAY = 20  # booking days handed out by Env.fresh_day, for the whole process (one database)
# after a failed job send a function sends nothing this long (JOBS_SEND_PAUSE_SECONDS); the SQS
# proxy's up() waits it out, so a test after an outage finds the functions sending again
SEND_PAUSE = 0.3


class Env:
    """What a reliability test gets: the stack, its database server, the SQS switch."""

    def __init__(self, stack: LocalStack, pg: LocalPostgres, url: str, proxy: FlakyProxy):
        self.stack, self.pg, self.url, self.proxy = stack, pg, url, proxy
        self.published: list[dict[str, Any]] = []  # SNS follow-ups seen on the topic's SQS subscription

    def collect_published(self) -> None:
        """Move what the follow-up topic delivered to its SQS subscription into ``published``."""
        sqs, url = self.stack.sqs, self.stack.queue_urls["followups"]
        for _ in range(100):
            batch = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10).get("Messages", [])
            if not batch:
                return
            for m in batch:
                body = json.loads(m["Body"])
                self.published.append(json.loads(body["Message"]) if "Message" in body else body)
            sqs.delete_message_batch(
                QueueUrl=url, Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)]
            )

    # database, from the test's side (a short-lived connection each time: the server restarts)
    def query(self, sql: str, params: Sequence[Any] | None = None) -> list[dict[str, Any]]:
        with psycopg.connect(self.url, autocommit=True, row_factory=dict_row, connect_timeout=5) as conn:
            return conn.execute(sql, params).fetchall()

    def one(self, sql: str, params: Sequence[Any] | None = None) -> dict[str, Any]:
        return self.query(sql, params)[0]

    def ensure_pg(self) -> None:
        self.pg.start()
        wait_until(self._answers, timeout=30, message="PostgreSQL answers")

    def _answers(self) -> bool:
        try:
            self.query("SELECT 1")
            return True
        except psycopg.Error:
            return False

    def fresh_day(self, span: int = 1) -> int:
        """A day offset no other test of this session books on."""
        global _NEXT_DAY
        day = _NEXT_DAY
        _NEXT_DAY += span
        return day

    def headers(self, key: str | None = None, scopes: Iterable[str] | None = None) -> dict[str, str]:
        h = self.stack.auth_headers(scopes)
        if key:
            h["idempotency-key"] = key
        return h


class _Shared:
    """The stack (and its PostgreSQL) of tests/reliability, tests/fuzz and tests/security, started
    by the first folder that needs it and kept for the session: each folder's conftest acquires it,
    and the last release (at the session's end) stops it. Its moto runs in a child process, a state
    of its own: no other stack of the session fires its schedules or takes its jobs."""

    def __init__(self) -> None:
        self.env: Env | None = None
        self.users = 0
        self._parts: list[Callable[[], object]] = []
        self._pg: tuple[LocalPostgres, str] | None = None

    def acquire(self, tmp_path_factory: pytest.TempPathFactory) -> Env:
        self.users += 1
        if self.env is None:
            try:
                self.env = self._start(tmp_path_factory)
            except BaseException:
                self.users -= 1
                self._stop()
                raise
        return self.env

    def release(self) -> None:
        self.users -= 1
        if self.users <= 0:
            self._stop()

    def _postgres(self) -> tuple[LocalPostgres, str]:
        """This process's own server, started once and kept for the session (moto's resets do
        not touch it): a data folder of its own and a free port, so concurrent test runs from
        one checkout do not share it; stopped and removed at exit."""
        if self._pg is None:
            pg = throwaway_postgres("hibachi-rel-pg-", REL_PG_PORT)
            self._pg = (pg, migrated_database(pg, "hibachi_rel"))
        return self._pg

    def _start(self, tmp_path_factory: pytest.TempPathFactory) -> Env:
        pg, url = self._postgres()
        pg.start()  # a test may have left it stopped
        proxy = FlakyProxy(settle=SEND_PAUSE).start()
        self._parts.append(proxy.close)
        stack = LocalStack(
            database_url=url,
            key_dir=tmp_path_factory.mktemp("rel-jwt"),
            visibility_timeout=1,  # a failed or abandoned record comes back within a second
            max_workers=4,
            enable_reconciler=False,  # the tests run the reconciler when they mean to
            enable_scheduler=False,  # follow-ups are due days later; nothing to fire
            moto_process=True,  # a moto state of its own (see _Shared)
            resource_prefix="rel",
            env={
                "RECONCILE_GRACE_SECONDS": "0",
                "JOBS_SEND_PAUSE_SECONDS": str(SEND_PAUSE),
                "AWS_ENDPOINT_URL": proxy.url,
                # any hour is bookable: these tests book next to DST transitions (at night) and spread
                # bookings over the day; service hours have their own tests (tests/integration, tests/http)
                "SERVICE_FIRST_START": "00:00",
                "SERVICE_LAST_START": "23:30",
            },
        )
        self._parts.append(stack.stop)
        stack.start()
        proxy.upstream_port = int(stack.endpoint_url.rsplit(":", 1)[1])
        return Env(stack, pg, url, proxy)

    def _stop(self) -> None:
        while self._parts:
            with contextlib.suppress(Exception):  # stop the rest whatever one part does
                self._parts.pop()()
        self.env = None
        self.users = 0


shared = _Shared()


def package_stack_fixture() -> Callable[..., Iterator[Env]]:
    """The ``rel`` fixture for a test folder's conftest (``rel = package_stack_fixture()``): the
    shared stack, acquired by that folder's first test and released at the session's end (see
    _Shared)."""

    @pytest.fixture(scope="session")
    def rel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
        env = shared.acquire(tmp_path_factory)
        yield env
        shared.release()

    return rel


def expected_stats(env: Env, cid: str) -> dict[str, Any]:
    scores = [
        r["emotion_score"]
        for r in env.query(
            "SELECT emotion_score FROM messages WHERE conversation_id = %s AND emotion_score IS NOT NULL ORDER BY seq",
            (cid,),
        )
    ]
    return {
        "emotion_count": len(scores),
        "avg_emotion": statistics.fmean(scores) if scores else None,
        "last_emotion": scores[-1] if scores else None,
    }


def stats_exact(env: Env, cid: str) -> bool:
    row = env.one(
        "SELECT emotion_count, avg_emotion, last_emotion, message_count, "
        "(SELECT count(*) FROM messages m WHERE m.conversation_id = c.id) AS stored "
        "FROM conversations c WHERE id = %s",
        (cid,),
    )
    want = expected_stats(env, cid)
    return (
        row["message_count"] == row["stored"]
        and row["emotion_count"] == want["emotion_count"]
        and row["last_emotion"] == want["last_emotion"]
        and (want["avg_emotion"] is None or abs(row["avg_emotion"] - want["avg_emotion"]) < 1e-9)
    )
