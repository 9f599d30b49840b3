"""SnapStart runtime hooks (``hibachi.snapstart``), called directly as the Lambda runtime would call
them: after a restore the next request opens a fresh database connection with a freshly presigned
IAM token (the new environment's credentials), and jobs still reach SQS over a new connection.

The IAM path runs against the test PostgreSQL, which trusts local connections: the token is sent as
the password (``conn.info.password``) and simply not checked."""

from __future__ import annotations

import random
import sys
import types
from urllib.parse import quote, urlsplit

import pytest
from hibachi import db as db_module
from hibachi import health, snapstart
from hibachi import settings as settings_module

from tests.support.common import new_id, receive_all
from tests.support.conversations import post


@pytest.fixture
def iam(settings, database_url, monkeypatch):
    """The settings of AWS (host, user, IAM auth) pointed at the test database, and credentials of
    'the snapshot's environment'."""
    url = urlsplit(database_url)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "ASIASNAPSHOTKEY")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "snapshot-secret")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "snapshot-session")
    with settings_module.override(
        database_url=None,
        db_host=url.hostname,
        db_port=url.port or 5432,
        db_name=url.path.lstrip("/"),
        db_user=url.username or "postgres",
        db_iam_auth=True,
        db_sslmode="disable",
    ):
        yield
    db_module.get_db().close_all()


def _connection():
    return db_module.get_db()._local.conn


def test_after_restore_the_next_request_connects_afresh_with_a_fresh_token(iam, sqs, context, monkeypatch):
    cid = new_id("snap")
    assert post(context, cid, role="user", content="before the snapshot", emotion_score=0.5)[0] == 201
    before = _connection()
    before_pid, before_password = before.info.backend_pid, before.info.password
    assert before_password.startswith(f"{before.info.host}:{before.info.port}/?Action=connect&DBUser=")
    assert f"X-Amz-Security-Token={quote('snapshot-session')}" in before_password

    snapstart.before_snapshot()
    assert before.closed, "the snapshot must not hold a database connection"

    # a restored environment runs with credentials of its own
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "ASIARESTOREDKEY")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "restored-secret")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "restored-session")
    snapstart.after_restore()

    assert post(context, cid, role="user", content="after the restore", emotion_score=0.7)[0] == 201
    after = _connection()
    assert after is not before and not after.closed
    assert after.info.backend_pid != before_pid
    assert after.info.password != before_password
    assert "ASIARESTOREDKEY" in after.info.password and quote("restored-session") in after.info.password
    assert "snapshot-session" not in after.info.password
    # SQS: the connection of the snapshot was closed too; the send after the restore went out anyway
    assert len(receive_all(sqs["client"], sqs["queue_url"])) == 2


def test_before_snapshot_closes_the_connections_of_every_thread(iam, context):
    """The health probe's statements run on a thread of their own, with its own connection."""
    assert health.check().status == "ok"
    database = db_module.get_db()
    opened = set(database._open)
    assert opened, "the probe thread's connection is tracked"
    snapstart.before_snapshot()
    assert all(conn.closed for conn in opened)
    snapstart.after_restore()
    assert health.check().status == "ok"  # the probe thread reconnects
    assert not set(database._open) & opened


def test_after_restore_reseeds_random():
    random.seed(12345)
    expected = random.random()
    random.seed(12345)
    snapstart.after_restore()
    assert random.random() != expected


def test_register_with_and_without_the_lambda_runtime(monkeypatch):
    monkeypatch.setattr(snapstart, "_registered", False)
    monkeypatch.delitem(sys.modules, "snapshot_restore_py", raising=False)
    assert snapstart.register() is False  # not on Lambda: nothing to register with

    registered: dict[str, list] = {"before": [], "after": []}
    runtime = types.ModuleType("snapshot_restore_py")
    runtime.register_before_snapshot = registered["before"].append
    runtime.register_after_restore = registered["after"].append
    monkeypatch.setitem(sys.modules, "snapshot_restore_py", runtime)
    assert snapstart.register() is True
    assert snapstart.register() is True  # once per process
    assert registered == {"before": [snapstart.before_snapshot], "after": [snapstart.after_restore]}
