"""The follow-up worker in process: runs the worker on SQS batches, drains the jobs queue, makes a
follow-up due; and the ``aws`` fixture with this folder's schedule names (import it to use it)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from hibachi import settings as settings_module
from hibachi.db import Database

from local.events import LambdaContext, http_event, sqs_event
from testkit.functions import load_function
from tests.support.common import receive_all


@pytest.fixture
def aws(aws: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The shared ``aws`` fixture (the template's topic, schedule group, DLQs on moto), with
    schedule names of this module's."""
    with settings_module.override(schedule_name_prefix="fu-"):
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
