"""The follow-up worker in process: runs the worker on SQS batches, drains the jobs queue, makes a
follow-up due; and the ``aws`` fixture with this folder's schedule names (import it to use it)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any, cast

import pytest
from hibachi import settings as settings_module
from hibachi.db import Database

from local.events import LambdaContext, http_event, sqs_event
from testkit.functions import load_function
from tests.support.bookings import PATCH, booking_body, call, create, local_start
from tests.support.common import new_id, receive_all


@pytest.fixture
def aws(aws: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The shared ``aws`` fixture (the template's topic, schedule group, DLQs on moto), with
    schedule names of this module's, and the worker's send settings from the template (a budget
    of 2 s, no pause): these tests run the worker, whose reconciler must not skip a send because
    another one was slow."""
    with settings_module.override(schedule_name_prefix="fu-", jobs_send_budget_seconds=2, jobs_send_pause_seconds=0):
        yield aws


def worker(context: LambdaContext, bodies: list[str]) -> list[str]:
    """Run the worker on one SQS batch; the job types of the records it reported as failed (a batch
    that failed whole raises, as Powertools does, and Lambda then retries every record)."""
    from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError

    event = sqs_event(bodies)
    try:
        response = load_function("followup_worker").lambda_handler(event, context)
    except BatchProcessingError:
        return [json.loads(r["body"])["type"] for r in event["Records"]]
    failed = {item["itemIdentifier"] for item in response["batchItemFailures"]}
    return [str(json.loads(r["body"])["type"]) for r in event["Records"] if r["messageId"] in failed]


def drain(aws: dict[str, Any]) -> list[str]:
    return [m["Body"] for m in receive_all(aws["client"], aws["queue_url"])]


def run_jobs(context: LambdaContext, aws: dict[str, Any], rounds: int = 5) -> list[dict[str, Any]]:
    """Process whatever is on the jobs queue until it is empty (bounded); the jobs processed."""
    seen: list[dict[str, Any]] = []
    for _ in range(rounds):
        bodies = drain(aws)
        if not bodies:
            return seen
        assert worker(context, bodies) == []
        seen.extend(json.loads(b) for b in bodies)
    raise AssertionError("the jobs queue did not empty")


def messages(db: Database, cid: str) -> list[dict[str, Any]]:
    return db.fetchall(
        "SELECT role, content, metadata, idempotency_key FROM messages WHERE conversation_id = %s ORDER BY seq", [cid]
    )


def make_due(db: Database, booking_id: str) -> None:
    """What waiting until the follow-up is due would do."""
    db.execute("UPDATE followups SET due_at = now() - interval '1 minute' WHERE booking_id = %s", [booking_id])


def post_user_message(context: LambdaContext, cid: str) -> None:
    event = http_event(
        "POST",
        f"/conversations/{cid}/messages",
        route_key="POST /conversations/{conversation_id}/messages",
        path_parameters={"conversation_id": cid},
        headers={"content-type": "application/json"},
        body=json.dumps({"role": "user", "content": "Book it for Saturday!"}),
        claims={"sub": "t"},
        scopes=["messages:write", "staff"],
    )
    assert load_function("store_message").lambda_handler(event, context)["statusCode"] == 201


def send_body(booking_id: str, version: int) -> str:
    from hibachi.followups.jobs import send_job

    return send_job(booking_id, version, "test").model_dump_json()


def assert_conversation_consistent(db: Database, cid: str) -> None:
    row = db.fetchone(
        "SELECT c.message_count, (SELECT count(*) FROM messages m WHERE m.conversation_id = c.id) AS n "
        "FROM conversations c WHERE c.id = %s",
        [cid],
    )
    assert row is not None and row["message_count"] == row["n"]


@pytest.fixture(autouse=True)
def clean(db: Database) -> None:
    """Autouse where imported: each test starts with no bookings."""
    db.execute("TRUNCATE bookings CASCADE")


def published(aws: dict[str, Any]) -> list[dict[str, Any]]:
    return [json.loads(m["Body"]) for m in receive_all(aws["client"], aws["inbox"])]


def followup(db: Database, booking_id: str) -> dict[str, Any] | None:
    """The booking's follow-up row, or None when the worker has not recorded it."""
    return db.fetchone("SELECT * FROM followups WHERE booking_id = %s", [booking_id])


def schedule(aws: dict[str, Any], booking_id: str) -> dict[str, Any]:
    return cast(dict[str, Any], aws["scheduler"].get_schedule(Name=f"fu-{booking_id}", GroupName=aws["group"]))


def book(context: LambdaContext, aws: dict[str, Any], **fields: Any) -> dict[str, Any]:
    status, booking = create(context, booking_body(**fields))
    assert status == 201, booking
    return cast(dict[str, Any], booking)


def book_and_move(context: LambdaContext, aws: dict[str, Any], to: str) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """A booking 12 days ahead in a new conversation, moved to ``to``, its jobs run: (conversation, booking, moved)."""
    cid = new_id("web:c")
    booking = book(context, aws, conversation_id=cid, start=local_start(days=12))
    run_jobs(context, aws)
    status, moved = call(context, PATCH, booking["id"], body={"event_start": to})
    assert status == 200
    run_jobs(context, aws)
    return cid, booking, moved


def reconcile(context: LambdaContext) -> dict[str, Any]:
    return cast(dict[str, Any], load_function("followup_worker").lambda_handler({"task": "reconcile"}, context))


def wait_for_jobs(aws: dict[str, Any], job_type: str, booking_id: str, rounds: int = 20) -> list[str]:
    """Poll the jobs queue (bounded) until a job of ``job_type`` for the booking shows up."""
    seen: list[str] = []
    for _ in range(rounds):
        seen += drain(aws)
        if any(
            json.loads(b)["type"] == job_type and json.loads(b)["payload"]["booking_id"] == booking_id for b in seen
        ):
            return seen
    raise AssertionError(f"no {job_type} job for {booking_id} arrived: {seen}")
