"""Helpers of every tier: the checkout's root, fresh ids, queues read empty, JSON log lines, a
PostgreSQL server of a test module's own."""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from local.aws import BotoClient
from local.pg import LocalPostgres
from testkit.env import migrated_database, project_postgres

ROOT = Path(__file__).resolve().parents[2]


def receive_all(client: BotoClient, queue_url: str, max_rounds: int = 20) -> list[dict[str, Any]]:
    """Receive (and delete) every message currently in a queue."""
    messages: list[dict[str, Any]] = []
    for _ in range(max_rounds):
        batch = client.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, MessageAttributeNames=["All"], AttributeNames=["All"]
        ).get("Messages", [])
        if not batch:
            break
        messages.extend(batch)
        client.delete_message_batch(
            QueueUrl=queue_url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)],
        )
    return messages


def json_lines(text: str) -> list[dict[str, Any]]:
    """The JSON objects among ``text``'s lines (structured logs, EMF): other lines are skipped."""
    docs: list[dict[str, Any]] = []
    for raw in text.splitlines():
        try:
            doc = json.loads(raw)
        except ValueError:
            continue
        if isinstance(doc, dict):
            docs.append(doc)
    return docs


@contextmanager
def dedicated_postgres(name: str, port: int) -> Iterator[tuple[LocalPostgres, str]]:
    """A PostgreSQL server of a test module's own (``.local/test-pg-<name>``), for tests that stop
    and start it; yields (LocalPostgres, URL of a fresh migrated database) and stops it after."""
    if os.environ.get("DATABASE_URL"):
        pytest.skip("runs only with the embedded PostgreSQL (it stops and starts a server of its own)")
    pg = project_postgres(f"test-pg-{name}", port)
    url = migrated_database(pg, f"hibachi_{name}")
    try:
        yield pg, url
    finally:
        pg.stop()


@contextmanager
def _scratch_database(database_url: str, name: str) -> Iterator[str]:
    """An empty database ``name`` on the server of ``database_url``, created anew; its URL; dropped after."""
    from urllib.parse import urlsplit, urlunsplit

    import psycopg

    parts = urlsplit(database_url)
    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as server:
        server.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        server.execute(f'CREATE DATABASE "{name}"')
    try:
        yield urlunsplit(parts._replace(path=f"/{name}"))
    finally:
        with psycopg.connect(admin, autocommit=True) as server:
            server.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def own_database(database_url: str, name: str) -> Iterator[str]:
    """A migrated database ``name`` (per parallel worker) on the server of ``database_url``, created
    anew; its URL; dropped after."""
    from hibachi.migrate import apply

    name += f"_{w}" if (w := os.environ.get("PYTEST_XDIST_WORKER")) else ""
    with _scratch_database(database_url, name) as url:
        apply(url)
        yield url


def new_id(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@contextmanager
def database_before(database_url: str, migration: str, *, later_too: bool = False) -> Iterator[str]:
    """A database of its own on the tests' server, migrated up to (not including) ``migration``
    (``later_too``: with every migration but ``migration``, so that today's code runs on it);
    its URL, dropped afterwards."""
    from hibachi.migrate import MIGRATIONS_DIR, _yoyo_url
    from yoyo import get_backend, read_migrations

    with _scratch_database(database_url, f"hibachi_mig_{uuid.uuid4().hex[:8]}") as url:
        backend = get_backend(_yoyo_url(url))
        old = read_migrations(str(MIGRATIONS_DIR)).filter(
            lambda m: not m.id.startswith(migration) if later_too else m.id < migration
        )
        with backend.lock():
            backend.apply_migrations(backend.to_apply(old))
        yield url
