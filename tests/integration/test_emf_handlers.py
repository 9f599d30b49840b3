"""Every handler's EMF output, as CloudWatch will read it: metric names, units, storage resolution,
dimension sets, namespace, and the correlation metadata (docs/ARCHITECTURE.md, "Metrics").

The handlers run in process (loaded by file path, like Lambda) against the real PostgreSQL and moto;
Powertools prints one JSON line with ``_aws`` per flush, which ``capsys`` captures.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pytest
from aws_lambda_powertools.metrics.provider import cold_start
from hibachi import jobs
from hibachi import settings as settings_module

from local.events import http_event, sqs_event
from testkit.functions import load_function
from tests.support.common import ROOT, new_id, receive_all
from tests.support.mcp import far_days

NAMESPACE = "Hibachi"
HIGH = 1  # StorageResolution of a high-resolution metric; absent means standard (60 s)
API_DIMENSIONS = [("operation", "service")]
JOB_DIMENSIONS = [("job_type", "service")]

POST = "POST /conversations/{conversation_id}/messages"
GET_CONV = "GET /conversations/{conversation_id}"
LIST = "GET /conversations/{conversation_id}/messages"


@dataclass
class Blob:
    """One EMF document."""

    namespace: str
    dimensions: list[tuple[str, ...]]
    metrics: dict[str, dict[str, Any]]  # name -> {"unit", "resolution"}
    values: dict[str, list[float]]  # every value of the metric in the document
    properties: dict[str, Any] = field(default_factory=dict)

    def unit(self, name: str) -> str:
        return self.metrics[name]["unit"]

    def resolution(self, name: str) -> int | None:
        return self.metrics[name]["resolution"]


def emf(text: str) -> list[Blob]:
    """The EMF documents among the lines of ``text`` (other lines, e.g. logs, are skipped)."""
    blobs = []
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        if "_aws" not in doc:
            continue
        directives = doc["_aws"]["CloudWatchMetrics"]
        assert len(directives) == 1, "one metric directive per document"
        directive = directives[0]
        metrics = {
            m["Name"]: {"unit": m["Unit"], "resolution": m.get("StorageResolution")} for m in directive["Metrics"]
        }
        for dims in directive["Dimensions"]:  # every dimension named must be a top-level member
            for name in dims:
                assert name in doc, f"dimension {name} has no value"
        blobs.append(
            Blob(
                namespace=directive["Namespace"],
                dimensions=[tuple(sorted(d)) for d in directive["Dimensions"]],
                metrics=metrics,
                values={name: doc[name] if isinstance(doc[name], list) else [doc[name]] for name in metrics},
                properties={k: v for k, v in doc.items() if k != "_aws" and k not in metrics},
            )
        )
    return blobs


def only(blobs: list[Blob], metric: str) -> Blob:
    found = [b for b in blobs if metric in b.metrics]
    assert len(found) == 1, f"{metric}: {len(found)} documents"
    return found[0]


def documented_metrics() -> set[str]:
    """Metric names of the table in docs/ARCHITECTURE.md."""
    text = (ROOT / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
    section = text.split("## Metrics", 1)[1]
    names: set[str] = set()
    for line in section.splitlines():
        if line.startswith("| `"):
            first_cell = line.split("|")[1]
            names.update(re.findall(r"`([A-Za-z]+)`", first_cell))
    return names


@pytest.fixture
def fresh_cold_start():
    """Make the next handler call a cold start again (Powertools keeps one flag per process)."""
    cold_start.is_cold_start = True
    yield
    cold_start.is_cold_start = False


@pytest.fixture
def warm():
    cold_start.is_cold_start = False


def api_call(
    context,
    name: str,
    route_key: str,
    *,
    path: str,
    path_parameters=None,
    body=None,
    headers=None,
    scopes=None,
    request_id=None,
    query=None,
):
    method = route_key.split(" ", 1)[0]
    event = http_event(
        method,
        path,
        route_key=route_key,
        path_parameters=path_parameters,
        query=query,
        headers={"content-type": "application/json", **(headers or {})},
        body=json.dumps(body) if body is not None else None,
        claims={"sub": "tester", "scope": " ".join(scopes or [])},
        scopes=scopes,
        request_id=request_id,
    )
    response = load_function(name).lambda_handler(event, context)
    return response, event["requestContext"]["requestId"]


def post_message(context, cid: str, **body):
    return api_call(
        context,
        "store_message",
        POST,
        path=f"/conversations/{cid}/messages",
        path_parameters={"conversation_id": cid},
        body={"role": "user", "content": "hi", **body},
        scopes=["messages:write", "staff"],
    )


def assert_api_latency(blob: Blob, metric: str, operation: str) -> None:
    assert blob.namespace == NAMESPACE
    assert blob.dimensions == API_DIMENSIONS
    assert blob.properties["operation"] == operation and blob.properties["service"] == "hibachi"
    assert blob.unit(metric) == "Milliseconds" and blob.resolution(metric) == HIGH
    assert len(blob.values[metric]) == 1 and blob.values[metric][0] >= 0


# -- API functions ------------------------------------------------------------------------------------
def test_store_message_emits_latency_database_and_enqueue_time(settings, context, sqs, capsys, warm):
    (response, request_id) = post_message(context, new_id(), emotion_score=0.4)
    assert response["statusCode"] == 201
    blobs = emf(capsys.readouterr().out)
    assert len(blobs) == 1, "one document per request: all API metrics share operation + service"
    blob = blobs[0]
    assert set(blob.metrics) == {"StoreMessageLatency", "DatabaseTime", "EnqueueTime"}
    for metric in blob.metrics:
        assert_api_latency(blob, metric, "store_message")
    assert blob.values["DatabaseTime"][0] <= blob.values["StoreMessageLatency"][0]
    assert blob.properties["correlation_id"] == request_id  # metadata, not a dimension


def test_store_message_without_score_enqueues_nothing(settings, context, sqs, capsys, warm):
    response, _ = post_message(context, new_id())
    assert response["statusCode"] == 201
    blob = only(emf(capsys.readouterr().out), "StoreMessageLatency")
    assert set(blob.metrics) == {"StoreMessageLatency", "DatabaseTime"}


def test_failed_enqueue_is_counted(settings, context, sqs, capsys, warm):
    with settings_module.override(jobs_queue_url=sqs["queue_url"] + "-missing"):
        response, _ = post_message(context, new_id(), emotion_score=-0.1)
    assert response["statusCode"] == 201
    blob = only(emf(capsys.readouterr().out), "EnqueueFailed")
    assert blob.dimensions == API_DIMENSIONS and blob.properties["operation"] == "store_message"
    assert blob.unit("EnqueueFailed") == "Count" and blob.values["EnqueueFailed"] == [1.0]
    assert blob.resolution("EnqueueFailed") is None
    assert blob.unit("EnqueueTime") == "Milliseconds" and blob.resolution("EnqueueTime") == HIGH


@pytest.mark.parametrize(
    ("route_key", "suffix", "operation", "metric"),
    [
        (GET_CONV, "", "get_conversation", "GetConversationLatency"),
        (LIST, "/messages", "list_messages", "ListMessagesLatency"),
    ],
)
def test_reads_emit_latency_and_database_time(settings, context, capsys, warm, route_key, suffix, operation, metric):
    cid = new_id()
    post_message(context, cid)
    capsys.readouterr()
    response, _ = api_call(
        context,
        "store_message",
        route_key,
        path=f"/conversations/{cid}{suffix}",
        path_parameters={"conversation_id": cid},
        scopes=["conversations:read", "staff"],
    )
    assert response["statusCode"] == 200
    blob = only(emf(capsys.readouterr().out), metric)
    assert set(blob.metrics) == {metric, "DatabaseTime"}
    for name in blob.metrics:
        assert_api_latency(blob, name, operation)


def test_errors_are_measured_too(settings, context, capsys, warm):
    response, _ = api_call(
        context,
        "store_message",
        GET_CONV,
        path="/conversations/nope-" + new_id(),
        path_parameters={"conversation_id": "nope"},
        scopes=["conversations:read", "staff"],
    )
    assert response["statusCode"] == 404
    assert_api_latency(
        only(emf(capsys.readouterr().out), "GetConversationLatency"), "GetConversationLatency", "get_conversation"
    )


@pytest.mark.parametrize("function", ["store_message", "health", "followup_worker"])
def test_cold_start_once_per_environment(settings, context, capsys, fresh_cold_start, function):
    def invoke():
        if function == "followup_worker":
            return load_function(function).lambda_handler({"task": "reconcile"}, context)
        route = "GET /health" if function == "health" else GET_CONV
        path = "/health" if function == "health" else "/conversations/x"
        return api_call(context, function, route, path=path, path_parameters={"conversation_id": "x"})

    invoke()
    blob = only(emf(capsys.readouterr().out), "ColdStart")
    assert blob.namespace == NAMESPACE
    assert blob.dimensions == [("function_name", "service")]
    assert blob.properties["function_name"] == context.function_name and blob.properties["service"] == "hibachi"
    assert blob.unit("ColdStart") == "Count" and blob.values["ColdStart"] == [1.0]
    assert set(blob.metrics) == {"ColdStart"}, "ColdStart goes in a document of its own"
    invoke()
    assert not [b for b in emf(capsys.readouterr().out) if "ColdStart" in b.metrics]


# -- health ---------------------------------------------------------------------------------------------
def test_health_emits_its_latency_and_database_time(settings, context, capsys, warm):
    response, _ = api_call(context, "health", "GET /health", path="/health")
    assert response["statusCode"] == 200
    blob = only(emf(capsys.readouterr().out), "HealthLatency")
    assert set(blob.metrics) == {"HealthLatency", "DatabaseTime"}
    for name in blob.metrics:
        assert_api_latency(blob, name, "health")


def test_health_details_emits_its_latency(settings, context, sqs, capsys, warm):
    response, _ = api_call(context, "health", "GET /health/details", path="/health/details", scopes=["ops:read"])
    assert response["statusCode"] == 200, response["body"]
    blob = only(emf(capsys.readouterr().out), "HealthDetailsLatency")
    assert set(blob.metrics) == {"HealthDetailsLatency", "DatabaseTime"}
    for name in blob.metrics:
        assert_api_latency(blob, name, "health_details")


# -- worker -----------------------------------------------------------------------------------------------
def emotion_job(cid: str, correlation_id: str | None = "req-1") -> str:
    return jobs.Job.new(
        jobs.EMOTION_STATS, f"emotion_stats:{cid}:1", {"conversation_id": cid}, correlation_id
    ).model_dump_json()


def test_worker_counts_jobs_per_type_with_their_age(settings, context, capsys, warm):
    cids = [new_id() for _ in range(3)]
    for cid in cids:
        post_message(context, cid, emotion_score=0.5)
    capsys.readouterr()
    bodies = [
        emotion_job(cids[0], "req-a"),
        emotion_job(cids[1], "req-b"),
        emotion_job(cids[2], None),
        jobs.Job.new("no_such_job", "x:1", {}, "req-c").model_dump_json(),
        "{not a job",
    ]
    result = load_function("followup_worker").lambda_handler(sqs_event(bodies), context)
    assert len(result["batchItemFailures"]) == 2
    blobs = emf(capsys.readouterr().out)
    by_type = {b.properties["job_type"]: b for b in blobs if "job_type" in b.properties}
    assert set(by_type) == {"emotion_stats", "no_such_job", "invalid"}
    for blob in by_type.values():
        assert blob.namespace == NAMESPACE and blob.dimensions == JOB_DIMENSIONS
        assert blob.properties["service"] == "hibachi"
        assert blob.unit("JobsProcessed") == "Count" and blob.unit("JobsFailed") == "Count"
    ok = by_type["emotion_stats"]
    assert (ok.values["JobsProcessed"], ok.values["JobsFailed"]) == ([3.0], [0.0])
    assert ok.unit("JobAge") == "Milliseconds" and ok.resolution("JobAge") is None
    ages = ok.values["JobAge"]
    assert len(ages) == 3 and all(a >= 0 for a in ages)
    assert ok.properties["correlation_ids"] == ["req-a", "req-b"]  # metadata: ties jobs to their requests
    unknown = by_type["no_such_job"]
    assert (unknown.values["JobsProcessed"], unknown.values["JobsFailed"]) == ([0.0], [1.0])
    assert "JobAge" not in unknown.metrics
    assert by_type["invalid"].values["JobsFailed"] == [1.0]


def test_reconciler_reports_zero_when_healthy(settings, context, sqs, capsys, warm):
    # healthy: nothing has been behind for longer than the grace period (other tests leave gaps)
    with settings_module.override(reconcile_grace_seconds=10**8):
        load_function("followup_worker").lambda_handler({"task": "reconcile"}, context)
    blobs = [b for b in emf(capsys.readouterr().out) if "ReconcilerReEnqueued" in b.metrics]
    assert len(blobs) == 1
    total = blobs[0]
    assert total.dimensions == [("service",)] and total.namespace == NAMESPACE
    assert total.unit("ReconcilerReEnqueued") == "Count" and total.values["ReconcilerReEnqueued"] == [0.0]


def test_reconciler_counts_per_job_type_when_it_re_enqueues(settings, context, sqs, capsys, warm):
    cid = new_id()
    with settings_module.override(jobs_queue_url=sqs["queue_url"] + "-missing"):
        post_message(context, cid, emotion_score=0.1)  # its job is lost
    capsys.readouterr()
    load_function("followup_worker").lambda_handler({"task": "reconcile"}, context)
    blobs = [b for b in emf(capsys.readouterr().out) if "ReconcilerReEnqueued" in b.metrics]
    totals = [b for b in blobs if b.dimensions == [("service",)]]
    per_type = {b.properties["job_type"]: b for b in blobs if b.dimensions == JOB_DIMENSIONS}
    assert len(totals) == 1 and totals[0].values["ReconcilerReEnqueued"][0] >= 1
    assert per_type[jobs.EMOTION_STATS].values["ReconcilerReEnqueued"][0] >= 1
    assert all(b.unit("ReconcilerReEnqueued") == "Count" for b in per_type.values())
    # a job type appears only when it re-enqueued something, and the types add up to the total
    assert all(b.values["ReconcilerReEnqueued"][0] > 0 for b in per_type.values())
    assert (
        sum(b.values["ReconcilerReEnqueued"][0] for b in per_type.values())
        == totals[0].values["ReconcilerReEnqueued"][0]
    )


# -- the contract -------------------------------------------------------------------------------------------
def test_api_latency_names_follow_the_operations_of_the_doc():
    from hibachi.api import metric_prefix

    documented = documented_metrics()
    text = (ROOT / "docs" / "ARCHITECTURE.md").read_text(encoding="utf-8")
    latency_row = next(line for line in text.splitlines() if line.startswith("| `StoreMessageLatency`"))
    operations = re.findall(r"`([a-z_]+)`", latency_row.split("|")[3])
    assert "store_message" in operations and "create_booking" in operations
    for operation in operations:
        assert f"{metric_prefix(operation)}Latency" in documented, operation


def test_handlers_emit_only_documented_metrics(settings, context, sqs, capsys, fresh_cold_start):
    cid = new_id()
    post_message(context, cid, emotion_score=0.2)
    api_call(context, "store_message", GET_CONV, path=f"/conversations/{cid}", path_parameters={"conversation_id": cid})
    api_call(context, "health", "GET /health", path="/health")
    load_function("followup_worker").lambda_handler(sqs_event([emotion_job(cid)]), context)
    load_function("followup_worker").lambda_handler({"task": "reconcile"}, context)
    emitted = {name for blob in emf(capsys.readouterr().out) for name in blob.metrics}
    assert emitted <= documented_metrics(), emitted - documented_metrics()


# -- bookings and follow-ups ------------------------------------------------------------------------------
BOOKING_ROUTES = [
    ("POST /bookings", "create_booking", "CreateBookingLatency"),
    ("GET /bookings/{booking_id}", "get_booking", "GetBookingLatency"),
    ("PATCH /bookings/{booking_id}", "reschedule_booking", "RescheduleBookingLatency"),
    ("POST /bookings/{booking_id}/cancel", "cancel_booking", "CancelBookingLatency"),
]
TZ = "America/Los_Angeles"


def booking_start(days: int) -> str:
    from zoneinfo import ZoneInfo

    return f"{(datetime.now(ZoneInfo(TZ)).date() + timedelta(days=days)).isoformat()}T18:00"


def booking_call(context, route_key: str, booking_id: str | None = None, body=None, request_id=None):
    path = route_key.split(" ", 1)[1].replace("{booking_id}", booking_id or "")
    return api_call(
        context,
        "create_booking",
        route_key,
        path=path,
        body=body,
        request_id=request_id,
        path_parameters={"booking_id": booking_id} if booking_id else None,
        scopes=["bookings:write", "bookings:read", "staff"],
    )


def test_booking_operations_emit_their_latency_database_and_enqueue_time(settings, context, sqs, capsys, warm):
    days = far_days()  # a day of its own: the other tests' bookings hold no chef then
    body = {
        "customer": {"name": "Metrics Test", "phone": "+14155550199", "email": "m@example.com"},
        "event_start": booking_start(days),
        "timezone": TZ,
        "guest_count": 10,
        "address": {"line1": "1 Market St", "city": "San Francisco", "state": "CA", "postal_code": "94105"},
    }
    seen: dict[str, Blob] = {}
    booking_id = None
    for route_key, operation, metric in BOOKING_ROUTES:
        change = {"event_start": booking_start(days + 1)} if operation == "reschedule_booking" else None
        response, request_id = booking_call(context, route_key, booking_id, body if booking_id is None else change)
        assert response["statusCode"] in (200, 201), response["body"]
        booking_id = booking_id or json.loads(response["body"])["id"]
        blob = only(emf(capsys.readouterr().out), metric)
        for name in blob.metrics:
            assert_api_latency(blob, name, operation)
        assert blob.properties["correlation_id"] == request_id
        seen[operation] = blob
    assert set(seen["get_booking"].metrics) == {"GetBookingLatency", "DatabaseTime"}
    for operation in ("create_booking", "reschedule_booking", "cancel_booking"):  # they enqueue schedule_followup
        assert {"DatabaseTime", "EnqueueTime"} <= set(seen[operation].metrics), operation


def test_followups_sent_is_counted(settings, context, sqs, moto, capsys, warm, db):
    from hibachi.followups.jobs import send_job

    topic = moto.resources.followup_topic_arn
    days = far_days()
    body = {
        "customer": {"name": "Metrics Test", "phone": "+14155550199", "email": "m@example.com"},
        "event_start": booking_start(days),
        "timezone": TZ,
        "guest_count": 10,
        "address": {"line1": "1 Market St", "city": "San Francisco", "state": "CA", "postal_code": "94105"},
    }
    with settings_module.override(followup_topic_arn=topic):
        response, _ = booking_call(context, "POST /bookings", body=body)
        assert response["statusCode"] == 201, response["body"]
        booking_id = json.loads(response["body"])["id"]
        worker = load_function("followup_worker").lambda_handler
        bodies = [m["Body"] for m in receive_all(sqs["client"], sqs["queue_url"])]
        assert worker(sqs_event(bodies), context) == {"batchItemFailures": []}  # schedule_followup
        db.execute("UPDATE followups SET due_at = now() - interval '1 minute' WHERE booking_id = %s", [booking_id])
        capsys.readouterr()
        result = worker(sqs_event([send_job(booking_id, 1, "req-f").model_dump_json()]), context)
        assert result == {"batchItemFailures": []}
    blobs = emf(capsys.readouterr().out)
    sent = only(blobs, "FollowupsSent")
    assert sent.namespace == NAMESPACE and sent.dimensions == [("service",)]
    assert sent.unit("FollowupsSent") == "Count" and sent.values["FollowupsSent"] == [1.0]
    per_type = next(b for b in blobs if b.properties.get("job_type") == "send_followup")
    assert per_type.values["JobsProcessed"] == [1.0] and per_type.properties["correlation_ids"] == ["req-f"]
