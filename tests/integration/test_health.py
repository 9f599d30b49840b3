"""GET /health and GET /health/details, in process: the answer's shape, 503 naming the failing
part, nothing sensitive, an answer within 3 s whatever PostgreSQL does, the ops:read scope, and the
direct invocations the ops CLI uses on AWS."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator

import pytest
from hibachi import health, jobs
from hibachi import settings as settings_module
from hibachi.api import has_scope

from local.events import http_event
from testkit.functions import load_function
from tests.support.health import get

SENSITIVE = ("postgres", "127.0.0.1", "localhost", "password", "refused", "Traceback", "psycopg", "5432")


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP port that accepts connections and never says a word (a hung server, a black hole)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        server.settimeout(0.2)
        while not stop.is_set():
            try:
                held.append(server.accept()[0])
            except OSError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield server.getsockname()[1]
    stop.set()
    thread.join(2)
    for conn in held:
        conn.close()
    server.close()


# -- /health ------------------------------------------------------------------------------------------
def test_health_ok(settings, context):
    status, body, headers = get(context)
    assert status == 200
    assert set(body) == {"status", "database", "failing"}  # the version is in /health/details only
    assert body["status"] == "ok" and body["failing"] == []
    assert body["database"]["status"] == "ok" and body["database"]["latency_ms"] >= 0
    assert headers.get("Cache-Control") == "no-store"


def test_the_probe_result_is_reused_for_health_cache_seconds(settings, context, monkeypatch):
    probes = []
    real = health._ping
    monkeypatch.setattr(health, "_ping", lambda: probes.append(1) or real())
    with settings_module.override(health_cache_seconds=30):
        assert [get(context)[0] for _ in range(5)] == [200] * 5
        assert len(probes) == 1  # one database round trip for five calls
    with settings_module.override(health_cache_seconds=0):
        get(context)
        get(context)
    assert len(probes) == 3


def test_the_version_is_in_the_details_only(settings, context, dlqs):
    assert "version" not in get(context)[1]
    status, body, _ = get(context, "/health/details", scopes=["ops:read"])
    assert status == 200 and body["version"] == settings.app_version


def test_health_is_public(settings, context):
    """No authorizer context at all (the route has Authorizer: NONE) is fine for /health."""
    event = http_event("GET", "/health", route_key="GET /health")
    assert "authorizer" not in event["requestContext"]
    assert load_function("health").lambda_handler(event, context)["statusCode"] == 200


def test_health_names_the_database_when_it_is_unreachable(settings, context):
    with settings_module.override(database_url=f"postgresql://postgres:secret@127.0.0.1:{closed_port()}/hibachi"):
        status, body, headers = get(context)
    assert status == 503
    assert body["status"] == "degraded" and body["failing"] == ["database"]
    assert body["database"] == {"status": "unavailable", "latency_ms": None}
    assert headers.get("Cache-Control") == "no-store"
    text = json.dumps(body)
    assert not [word for word in (*SENSITIVE, "secret") if word in text]


def test_health_answers_within_3_s_when_the_server_never_answers(settings, context, silent_server):
    with settings_module.override(
        database_url=f"postgresql://postgres@127.0.0.1:{silent_server}/hibachi", db_connect_timeout=2
    ):
        start = time.monotonic()
        status, body, _ = get(context)
        elapsed = time.monotonic() - start
    assert status == 503 and body["failing"] == ["database"]
    assert body["database"]["status"] in ("unavailable", "timeout")
    assert elapsed < 3.0, f"the API promises an answer within 3 s, took {elapsed:.2f}"


def test_a_hanging_statement_does_not_hold_the_health_check(settings, context, monkeypatch):
    """A connection that hangs mid-statement (a partition): the check answers at its budget, and
    later checks do not queue behind the hung one; once it returns, checks pass again."""
    release = threading.Event()
    real_ping = health._ping

    def hung_ping() -> float:
        release.wait(30)
        return real_ping()

    monkeypatch.setattr(health, "BUDGET_S", 0.3)
    monkeypatch.setattr(health, "_ping", hung_ping)
    try:
        status, body, _ = get(context)
        assert status == 503 and body["database"]["status"] == "timeout" and body["failing"] == ["database"]
        status, body, _ = get(context)  # the first ping still hangs: report, don't wait again
        assert status == 503 and body["database"]["status"] == "timeout"
    finally:
        release.set()
    monkeypatch.setattr(health, "_ping", real_ping)
    monkeypatch.setattr(health, "BUDGET_S", 2.5)
    from local.stack import wait_until

    wait_until(lambda: get(context)[0] == 200, timeout=10, message="health back to 200")


# -- /health/details --------------------------------------------------------------------------------------
@pytest.fixture
def dlqs(sqs, moto) -> Iterator[dict]:
    """The sqs fixture plus the scheduler DLQ, all three URLs in the settings."""
    scheduler_dlq = moto.resources.scheduler_dlq_url
    with settings_module.override(jobs_dlq_url=sqs["dlq_url"], scheduler_dlq_url=scheduler_dlq):
        yield {**sqs, "scheduler_dlq_url": scheduler_dlq}


def test_details_needs_the_ops_scope(settings, context, dlqs):
    assert get(context, "/health/details", scopes=["bookings:read"])[0] == 403
    status, body, _ = get(context, "/health/details", authorized=False)
    assert status == 401 and body["error"]["code"] == "unauthorized"  # not through the authorizer
    assert get(context, "/health/details", scopes=["ops:read"])[0] == 200


def test_details_scope_from_the_claims_and_failing_closed():
    def event(claims, scopes=None):
        return {"requestContext": {"authorizer": {"jwt": {"claims": claims, "scopes": scopes}}}}

    assert has_scope(event({"sub": "a", "scope": "ops:read bookings:read"}), "ops:read")
    assert has_scope(event({"sub": "a", "scp": "[ops:read other]"}), "ops:read")  # API Gateway's list form
    assert has_scope(event({"sub": "a"}, ["ops:read"]), "ops:read")  # the authorizer's scopes list
    assert not has_scope(event({"sub": "a", "scope": "bookings:read"}), "ops:read")
    assert not has_scope(event({"sub": "a"}), "ops:read")  # no scope information: no
    assert not has_scope(event({}, ["ops:read"]), "ops:read")  # no claims: not the authorizer's event
    assert not has_scope({"requestContext": {}}, "ops:read")  # not through the authorizer: never


def test_details_reports_queues_dlqs_followups_and_reconciler(settings, context, dlqs):
    client = dlqs["client"]
    client.send_message(QueueUrl=dlqs["queue_url"], **jobs.Job.new("emotion_stats", "e:1", {}).to_message())
    client.send_message(QueueUrl=dlqs["dlq_url"], MessageBody="{}")
    client.send_message(QueueUrl=dlqs["dlq_url"], MessageBody="{}")
    load_function("followup_worker").lambda_handler({"task": "reconcile"}, context)  # a run to report

    status, body, headers = get(context, "/health/details", scopes=["ops:read"])
    assert status == 200, body
    assert headers.get("Cache-Control") == "no-store"
    assert body["status"] == "ok" and body["failing"] == []
    assert body["database"]["status"] == "ok"
    assert body["queues"]["jobs"]["status"] == "ok" and body["queues"]["jobs"]["visible"] >= 1
    assert body["queues"]["jobs_dlq"] == {"status": "ok", "visible": 2, "in_flight": 0, "delayed": 0}
    assert body["queues"]["scheduler_dlq"]["visible"] == 0
    assert set(body["followups"]) == {"pending", "failed", "overdue", "stuck_sending", "sent_today"}
    assert all(isinstance(v, int) for v in body["followups"].values())
    assert isinstance(body["emotion_stats_behind"], int)
    last = body["reconciler"]["last_run"]
    assert last["age_s"] <= 60 and last["total"] >= 0 and last["errors"] == {}
    assert last["request_id"] == context.aws_request_id


def test_details_names_each_failing_part_and_still_reports_the_others(settings, context, dlqs):
    with settings_module.override(
        database_url=f"postgresql://postgres@127.0.0.1:{closed_port()}/x",
        scheduler_dlq_url=dlqs["scheduler_dlq_url"] + "-gone",
    ):
        status, body, _ = get(context, "/health/details", scopes=["ops:read"])
    assert status == 503
    assert body["status"] == "degraded" and set(body["failing"]) == {"database", "scheduler_dlq"}
    assert body["database"] == {"status": "unavailable"}
    assert body["queues"]["jobs_dlq"]["status"] == "ok" and body["queues"]["scheduler_dlq"]["status"] == "unavailable"
    assert "followups" not in body
    assert not [word for word in SENSITIVE if word in json.dumps(body)]


def test_details_budget_measures_the_dependencies_not_our_client_build(settings, context, dlqs, monkeypatch):
    """A cold environment builds its SQS client (the TLS context, the CA bundle) on the first
    details call: however long that takes, it is not spent from the probes' budget."""
    from hibachi import sqs

    prepare = sqs.Sqs.prepare

    def slow_prepare(self):
        time.sleep(0.6)  # a loaded machine's cold client build, longer than the budget below
        return prepare(self)

    monkeypatch.setattr(sqs.Sqs, "prepare", slow_prepare)
    monkeypatch.setattr(health, "BUDGET_S", 0.5)
    status, body, _ = get(context, "/health/details", scopes=["ops:read"])
    assert status == 200, body
    assert body["failing"] == [] and all(q["status"] == "ok" for q in body["queues"].values())


def test_details_without_dlq_settings_says_so(settings, context, sqs):
    status, body, _ = get(context, "/health/details", scopes=["ops:read"])
    assert status == 200
    assert body["queues"]["jobs_dlq"] == {"status": "not_configured"}


# -- direct invocations (python -m ops --stack ...) -----------------------------------------------------------
def test_direct_invocations_answer_ops_queries(settings, context, dlqs, db):
    handler = load_function("health").lambda_handler
    details = handler({"ops": "details"}, context)
    assert details["ops"] == "details" and details["result"]["queues"]["jobs_dlq"]["status"] == "ok"
    load_function("followup_worker").lambda_handler({"task": "reconcile"}, context)
    runs = handler({"ops": "reconciler_runs", "limit": 2}, context)["result"]
    assert 1 <= len(runs) <= 2 and runs[0]["request_id"] == context.aws_request_id
    assert isinstance(handler({"ops": "followups", "status": "failed", "limit": 5}, context)["result"], list)
    assert "error" in handler({"ops": "drop_tables"}, context)
    assert "error" in handler({"ops": "followups", "status": "sent"}, context)


def test_an_http_event_is_never_an_ops_request(settings, context):
    event = http_event("GET", "/health", route_key="GET /health")
    event["ops"] = "details"
    response = load_function("health").lambda_handler(event, context)
    assert response["statusCode"] == 200 and "queues" not in json.loads(response["body"])
