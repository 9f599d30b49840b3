"""Bookings and follow-ups on the local stack: template.yaml's routes and JWT scopes, the handlers in
worker processes with the template's environment, the SQS poller, EventBridge Scheduler and SNS on
moto, the tests' PostgreSQL.

The follow-up of a real booking is due a day after the event, so the test makes it due by moving
the booking into the past in the database (what waiting would do) and lets the reconciler find it;
the schedule firing itself is covered in process (test_followups.py) with the local scheduler.
Waiting is polling with deadlines (cold starts of spawned processes are slow on a busy machine).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import requests

from local.stack import LocalStack, wait_until
from tests.support.bookings import booking_body, local_start
from tests.support.common import new_id

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def stack(database_url: str, tmp_path_factory) -> Iterator[LocalStack]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("TRUNCATE bookings CASCADE")
    with LocalStack(
        database_url,
        key_dir=tmp_path_factory.mktemp("jwt"),
        reconcile_interval=3600,
        schedule_poll_interval=0.5,
        visibility_timeout=2,
        max_workers=2,
    ) as s:
        yield s


def sql(database_url: str, statement: str, params=None) -> list[tuple]:
    with psycopg.connect(database_url, autocommit=True) as conn:
        cur = conn.execute(statement, params)
        return cur.fetchall() if cur.description else []


def history(stack: LocalStack, cid: str) -> list[dict]:
    r = requests.get(
        f"{stack.url}/conversations/{cid}/messages",
        headers=stack.auth_headers(["conversations:read", "staff"]),
        timeout=30,
    )
    return r.json()["items"] if r.status_code == 200 else []


def test_a_booking_is_confirmed_scheduled_and_followed_up(stack, database_url):
    cid = new_id("e2e:c")
    r = requests.post(
        f"{stack.url}/conversations/{cid}/messages",
        headers=stack.auth_headers(["messages:write", "staff"]),
        json={"role": "user", "content": "Book a chef for Saturday, 12 of us"},
        timeout=30,
    )
    assert r.status_code == 201, r.text

    url = f"{stack.url}/bookings"
    body = booking_body(local_start(days=9), conversation_id=cid)
    assert requests.post(url, json=body, timeout=30).status_code == 401
    assert (
        requests.post(url, json=body, headers=stack.auth_headers(["bookings:read", "staff"]), timeout=30).status_code
        == 403
    )
    r = requests.post(
        url, json=body, headers={**stack.auth_headers(["bookings:write", "staff"]), "idempotency-key": cid}, timeout=30
    )
    assert r.status_code == 201, r.text
    booking = r.json()
    r = requests.get(f"{url}/{booking['id']}", headers=stack.auth_headers(["bookings:read", "staff"]), timeout=30)
    assert r.status_code == 200 and r.json() == booking

    # the worker (fed by the poller) confirms in the conversation and creates the schedule
    confirmed = wait_until(
        lambda: [m for m in history(stack, cid) if m["content"].startswith("Booking confirmed")],
        timeout=60,
        message="the booking confirmation in the conversation",
    )
    assert confirmed[0]["role"] == "system"
    name = f"{_prefix(stack)}{booking['id']}"
    schedule = wait_until(lambda: _schedule(stack, name), timeout=30, message="the follow-up schedule")
    assert schedule["ScheduleExpressionTimezone"] == "America/Los_Angeles"
    assert json.loads(schedule["Target"]["Input"])["payload"] == {"booking_id": booking["id"], "version": 1}

    # the event happens; the follow-up falls due; the reconciler sends it (as it would a lost schedule)
    sql(
        database_url,
        """UPDATE bookings SET event_start = now() - interval '27 hours',
                             event_end = now() - interval '25 hours', held_until = now() - interval '24 hours',
                             followup_due_at = now() - interval '1 hour' WHERE id = %s""",
        [booking["id"]],
    )
    sql(database_url, "UPDATE followups SET due_at = now() - interval '1 hour' WHERE booking_id = %s", [booking["id"]])
    stack.drain(timeout=60)
    result = stack.invoke_worker({"task": "reconcile"}, timeout=60)
    assert result["re_enqueued"]["send_followup"] >= 1
    followup = wait_until(
        lambda: [m for m in history(stack, cid) if m["content"].startswith("Hi Ada")],
        timeout=60,
        message="the follow-up in the conversation",
    )
    assert followup[0]["role"] == "assistant"
    published = wait_until(lambda: _published(stack, booking["id"]), timeout=30, message="the SNS publish")
    assert published[0]["customer"]["phone"] == "+14155550123"
    stack.drain(timeout=60)
    assert sql(database_url, "SELECT status FROM followups WHERE booking_id = %s", [booking["id"]]) == [("sent",)]


def test_cancel_over_http_deletes_the_schedule(stack, database_url):
    headers = stack.auth_headers(["bookings:write", "staff"])
    r = requests.post(f"{stack.url}/bookings", json=booking_body(local_start(days=11)), headers=headers, timeout=30)
    assert r.status_code == 201, r.text
    booking = r.json()
    name = f"{_prefix(stack)}{booking['id']}"
    wait_until(lambda: _schedule(stack, name), timeout=60, message="the follow-up schedule")
    r = requests.post(f"{stack.url}/bookings/{booking['id']}/cancel", headers=headers, timeout=30)
    assert r.status_code == 200 and r.json()["status"] == "cancelled"
    wait_until(lambda: _schedule(stack, name) is None, timeout=60, message="the schedule deleted")
    stack.drain(timeout=60)
    assert sql(database_url, "SELECT status FROM followups WHERE booking_id = %s", [booking["id"]]) == [("cancelled",)]


def _prefix(stack: LocalStack) -> str:
    """The worker's SCHEDULE_NAME_PREFIX, as the template (or the stack's env) sets it."""
    worker = stack.app.function_for("FollowupWorkerFunction")
    return stack.env.get("SCHEDULE_NAME_PREFIX") or worker.environment.get("SCHEDULE_NAME_PREFIX", "hibachi-fu-")


def _schedule(stack: LocalStack, name: str) -> dict | None:
    scheduler = stack.client("scheduler")
    try:
        return scheduler.get_schedule(Name=name, GroupName=stack.resources.schedule_group)
    except scheduler.exceptions.ResourceNotFoundException:
        return None


_inbox: list[dict] = []


def _published(stack: LocalStack, booking_id: str) -> list[dict]:
    sqs = stack.sqs
    for m in sqs.receive_message(
        QueueUrl=stack.resources.followups_queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
    ).get("Messages", []):
        body = json.loads(m["Body"])
        _inbox.append(json.loads(body["Message"]) if "Message" in body else body)
        sqs.delete_message(QueueUrl=stack.resources.followups_queue_url, ReceiptHandle=m["ReceiptHandle"])
    return [p for p in _inbox if p.get("booking_id") == booking_id]


def test_demo_follow_up_arrives_in_the_conversation_by_waiting_alone(database_url, tmp_path):
    """The local demo: with FOLLOWUP_DEMO_DELAY_SECONDS the follow-up of a fresh booking shows in
    its conversation a few seconds later, with nothing to do but wait."""
    with LocalStack(
        database_url,
        key_dir=tmp_path,
        env={"FOLLOWUP_DEMO_DELAY_SECONDS": "3"},
        reconcile_interval=3600,
        schedule_poll_interval=0.5,
        visibility_timeout=2,
        max_workers=1,
    ) as s:
        cid = new_id("demo:c")
        headers = {**s.auth_headers(["bookings:write", "staff"]), "idempotency-key": cid}
        r = requests.post(
            f"{s.url}/bookings",
            json=booking_body(local_start(days=13), conversation_id=cid),
            headers=headers,
            timeout=30,
        )
        assert r.status_code == 201, r.text
        followup = wait_until(
            lambda: [m for m in history(s, cid) if m["role"] == "assistant"],
            timeout=90,
            message="the demo follow-up in the conversation",
        )
        assert followup[0]["content"].startswith("Hi Ada")
        assert [m["content"].split(":")[0] for m in history(s, cid)] == [
            "Booking confirmed",
            followup[0]["content"].split(":")[0],
        ]
