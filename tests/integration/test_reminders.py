"""The reminder before the event, in process like tests/integration/test_followups.py:
bookings through the create_booking handler, jobs through the followup_worker handler, AWS on moto,
the real PostgreSQL. Time does not pass: where a reminder must be due, the test moves its due time
into the past in the database, which is what waiting would do.

The race tests run the claim and the booking's change on two connections in a chosen order
(one of them held open in a transaction, the other waiting on its lock, seen in pg_stat_activity),
so each interleaving is deterministic.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta

import psycopg
import pytest
from hibachi import settings as settings_module
from hibachi.followups import repository, service
from psycopg import sql
from psycopg.types.json import Jsonb

from local.stack import wait_until
from tests.support.bookings import CANCEL, PATCH, call, local_start
from tests.support.common import new_id
from tests.support.followups import (
    assert_conversation_consistent,
    book,
    book_and_move,
    drain,
    messages,
    published,
    reconcile,
    run_jobs,
    worker,
)
from tests.support.followups import aws as aws  # the fixture, with its schedule names
from tests.support.followups import clean as clean  # autouse


def reminder(db, booking_id: str) -> dict:
    return db.fetchone("SELECT * FROM reminders WHERE booking_id = %s", [booking_id])


def schedule(aws, booking_id: str) -> dict:
    return aws["scheduler"].get_schedule(Name=f"fu-rm-{booking_id}", GroupName=aws["group"])


def make_due(db, booking_id: str, table: str = "reminders") -> None:
    db.execute(
        sql.SQL("UPDATE {} SET due_at = now() - interval '1 minute' WHERE booking_id = %s").format(
            sql.Identifier(table)
        ),
        [booking_id],
    )


def status_of(db, booking_id: str, table: str) -> str:
    query = sql.SQL("SELECT status FROM {} WHERE booking_id = %s").format(sql.Identifier(table))
    return db.fetchone(query, [booking_id])["status"]


def remind_body(booking_id: str, version: int) -> str:
    from hibachi import jobs
    from hibachi.followups.jobs import send_job

    return send_job(booking_id, version, "test", job_type=jobs.SEND_REMINDER).model_dump_json()


def reminders_published(aws) -> list[dict]:
    return [json.loads(m["Message"]) for m in published(aws) if json.loads(m["Message"])["type"] == "booking_reminder"]


def reminder_messages(db, cid: str) -> list[dict]:
    return [m for m in messages(db, cid) if m["metadata"].get("kind") == "booking_reminder"]


# -- schedule -----------------------------------------------------------------------------------------------
def test_a_booking_gets_a_reminder_schedule_lead_hours_before_the_event(settings, context, db, aws):
    cid = new_id("web:r")
    booking = book(context, aws, conversation_id=cid, start=local_start(days=12))
    assert [j["type"] for j in run_jobs(context, aws)] == ["schedule_followup"]
    start = datetime.fromisoformat(booking["event_start"])
    row = reminder(db, booking["id"])
    assert row["status"] == "pending" and row["version"] == 1
    assert row["due_at"] == start - timedelta(hours=24)
    assert row["schedule_name"] == f"fu-rm-{booking['id']}" and row["scheduled_at"] is not None

    s = schedule(aws, booking["id"])
    due_local = (start - timedelta(hours=24)).replace(tzinfo=None)
    assert s["ScheduleExpression"] == f"at({due_local:%Y-%m-%dT%H:%M:%S})"
    assert s["ScheduleExpressionTimezone"] == "America/Los_Angeles" and s["ActionAfterCompletion"] == "DELETE"
    assert s["Target"]["Arn"] == aws["jobs_arn"] and s["Target"]["DeadLetterConfig"] == {"Arn": aws["dlq_arn"]}
    job = json.loads(s["Target"]["Input"])
    assert job["type"] == "send_reminder" and job["payload"] == {"booking_id": booking["id"], "version": 1}

    # the lead is a setting
    with settings_module.override(reminder_lead_hours=48):
        other = book(context, aws, start=local_start(days=13))
        run_jobs(context, aws)
    assert reminder(db, other["id"])["due_at"] == datetime.fromisoformat(other["event_start"]) - timedelta(hours=48)


def test_a_booking_made_later_than_its_reminder_time_gets_none(settings, context, db, aws):
    with settings_module.override(reminder_lead_hours=24 * 20):  # the reminder would be due before now
        booking = book(context, aws, start=local_start(days=12))
        run_jobs(context, aws)
    row = reminder(db, booking["id"])
    assert row["status"] == "skipped" and row["scheduled_at"] is None
    with pytest.raises(aws["scheduler"].exceptions.ResourceNotFoundException):
        schedule(aws, booking["id"])
    db.execute("UPDATE reminders SET due_at = now() - interval '1 hour' WHERE booking_id = %s", [booking["id"]])
    assert worker(context, [remind_body(booking["id"], 1)]) == []
    reconcile(context)
    run_jobs(context, aws)
    assert reminders_published(aws) == []


def test_reminders_off_with_zero_lead(settings, context, db, aws):
    with settings_module.override(reminder_lead_hours=0):
        booking = book(context, aws)
        run_jobs(context, aws)
    assert reminder(db, booking["id"])["status"] == "skipped"


# -- send ---------------------------------------------------------------------------------------------------
def test_the_reminder_goes_to_the_chat_and_the_topic_once(settings, context, db, aws):
    cid = new_id("web:r")
    booking = book(context, aws, conversation_id=cid)
    run_jobs(context, aws)
    fired = schedule(aws, booking["id"])["Target"]["Input"]  # what the schedule puts on the queue
    assert worker(context, [fired]) == []  # early: nothing
    assert reminders_published(aws) == []
    make_due(db, booking["id"])
    assert worker(context, [fired, fired]) == [] and worker(context, [fired]) == []  # twice, and again
    (sent,) = reminders_published(aws)
    assert (
        sent["booking_id"] == booking["id"]
        and sent["version"] == 1
        and sent["dedup_id"] == f"reminder:{booking['id']}:v1"
    )
    assert sent["text"].startswith("Hi Ada, a reminder: your hibachi chef is coming on")
    (chat,) = reminder_messages(db, cid)
    assert chat["role"] == "assistant" and chat["content"] == sent["text"]
    assert chat["idempotency_key"] == f"booking:{booking['id']}:reminder:v1"
    row = reminder(db, booking["id"])
    assert row["status"] == "sent" and row["attempts"] == 1
    assert_conversation_consistent(db, cid)
    # its event, written by the statement that marked it sent: once, at the version it was sent for
    events = db.fetchall(
        "SELECT version, actor FROM events WHERE booking_id = %s AND type = 'Booking Reminder Sent'", [booking["id"]]
    )
    assert [e["version"] for e in events] == [1] and events[0]["actor"]["kind"] == "system"


def test_no_reminder_once_the_event_has_started(settings, context, db, aws):
    booking = book(context, aws)
    run_jobs(context, aws)
    db.execute(
        """UPDATE bookings SET event_start = now() - interval '1 minute', event_end = now() + interval '1 hour',
                  held_until = now() + interval '2 hours' WHERE id = %s""",
        [booking["id"]],
    )
    make_due(db, booking["id"])
    assert worker(context, [remind_body(booking["id"], 1)]) == []
    assert reconcile(context)["re_enqueued"]["send_reminder"] == 0
    assert reminders_published(aws) == [] and reminder(db, booking["id"])["status"] == "pending"


# -- reschedule and cancel ------------------------------------------------------------------------------------
def test_the_reminder_moves_with_a_reschedule(settings, context, db, aws):
    _, booking, moved = book_and_move(context, aws, local_start(days=14, hour=12))
    row = reminder(db, booking["id"])
    assert row["version"] == 2 and row["status"] == "pending"
    assert row["due_at"] == datetime.fromisoformat(moved["event_start"]) - timedelta(hours=24)
    s = schedule(aws, booking["id"])
    assert json.loads(s["Target"]["Input"])["payload"] == {"booking_id": booking["id"], "version": 2}
    due_local = (datetime.fromisoformat(moved["event_start"]) - timedelta(hours=24)).replace(tzinfo=None)
    assert s["ScheduleExpression"] == f"at({due_local:%Y-%m-%dT%H:%M:%S})"
    # the old schedule's job, should it still fire: nothing
    make_due(db, booking["id"])
    assert worker(context, [remind_body(booking["id"], 1)]) == []
    assert reminders_published(aws) == []
    # the new one goes out
    assert worker(context, [s["Target"]["Input"]]) == []
    assert [r["version"] for r in reminders_published(aws)] == [2]


def test_a_sent_reminder_is_due_again_when_the_event_moves(settings, context, db, aws):
    cid = new_id("web:r")
    booking = book(context, aws, conversation_id=cid, start=local_start(days=12))
    run_jobs(context, aws)
    make_due(db, booking["id"])
    assert worker(context, [remind_body(booking["id"], 1)]) == []
    db.execute(  # make_due's time back to the real one
        "UPDATE reminders r SET due_at = b.event_start - interval '24 hours' FROM bookings b "
        "WHERE b.id = r.booking_id AND r.booking_id = %s",
        [booking["id"]],
    )
    # a change that is not a move: no second reminder
    status, _ = call(context, PATCH, booking["id"], body={"event_start": local_start(days=12), "guest_count": 14})
    assert status == 200
    run_jobs(context, aws)
    assert reminder(db, booking["id"])["status"] == "sent" and reminder(db, booking["id"])["version"] == 1
    status, _ = call(context, PATCH, booking["id"], body={"event_start": local_start(days=15)})
    assert status == 200
    run_jobs(context, aws)
    row = reminder(db, booking["id"])
    assert row["status"] == "pending" and row["version"] == 3 and row["sent_at"] is None
    make_due(db, booking["id"])
    assert worker(context, [remind_body(booking["id"], 3)]) == []
    assert [r["version"] for r in reminders_published(aws)] == [1, 3]
    assert len(reminder_messages(db, cid)) == 2


def test_a_cancel_deletes_the_reminder(settings, context, db, aws):
    cid = new_id("web:r")
    booking = book(context, aws, conversation_id=cid)
    run_jobs(context, aws)
    assert schedule(aws, booking["id"])
    assert call(context, CANCEL, booking["id"])[0] == 200
    run_jobs(context, aws)
    assert reminder(db, booking["id"])["status"] == "cancelled"
    with pytest.raises(aws["scheduler"].exceptions.ResourceNotFoundException):
        schedule(aws, booking["id"])
    make_due(db, booking["id"])
    assert worker(context, [remind_body(booking["id"], 1), remind_body(booking["id"], 2)]) == []
    reconcile(context)
    run_jobs(context, aws)
    assert reminders_published(aws) == [] and reminder_messages(db, cid) == []


# -- the reconciler ------------------------------------------------------------------------------------------
def test_a_failed_reminder_schedule_call_is_recovered(settings, context, db, aws, monkeypatch):
    calls = []

    def scheduler_down(*args, **kwargs):
        calls.append(args)
        raise RuntimeError("Scheduler unavailable")

    booking = book(context, aws)
    with monkeypatch.context() as m:
        m.setattr(service, "_apply_reminder", scheduler_down)
        assert worker(context, drain(aws)) == ["schedule_followup"]  # the job fails, SQS would retry it
    assert calls and reminder(db, booking["id"])["scheduled_at"] is None
    assert db.fetchone("SELECT followup_version FROM bookings WHERE id = %s", [booking["id"]])["followup_version"] == 0
    # SQS gave up (or its retries are spent): the reconciler makes the job again
    assert reconcile(context)["re_enqueued"]["schedule_followup"] == 1
    run_jobs(context, aws)
    assert reminder(db, booking["id"])["scheduled_at"] is not None and schedule(aws, booking["id"])
    # and a reminder whose schedule never came (lost, or none configured) is sent once it is due
    aws["scheduler"].delete_schedule(Name=f"fu-rm-{booking['id']}", GroupName=aws["group"])
    make_due(db, booking["id"])
    assert reconcile(context)["re_enqueued"]["send_reminder"] == 1
    run_jobs(context, aws)
    assert [r["version"] for r in reminders_published(aws)] == [1]
    assert reconcile(context)["re_enqueued"]["send_reminder"] == 0


# -- races: a cancel or move against the reminder's (or follow-up's) claim ------------------------------------
def waiting_on_lock(watcher, needle: str) -> bool:
    return bool(
        watcher.execute(
            "SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE %s", (f"%{needle}%",)
        ).fetchone()
    )


CLAIM_NEEDLE = "SET status = 'sending'"


@pytest.mark.parametrize("table", ["reminders", "followups"])
def test_race_the_cancel_commits_first_nothing_is_sent(settings, context, db, aws, database_url, table):
    """The cancel's statement has run (uncommitted) when the claim starts: the claim waits for it and
    then sees the booking cancelled. Nothing is sent, to anyone."""
    from hibachi.bookings.repository import CANCEL_BOOKING

    booking = book(context, aws)
    run_jobs(context, aws)
    make_due(db, booking["id"], table)
    with psycopg.connect(database_url, autocommit=True) as watcher, psycopg.connect(database_url) as canceller:
        params = {
            "id": booking["id"],
            "actor": Jsonb({"kind": "staff", "via": "test"}),
            "reach_all": True,
            "reach_cid": None,
        }
        canceller.execute(CANCEL_BOOKING, params)  # the statement of POST /bookings/{id}/cancel; still open
        with ThreadPoolExecutor(1) as pool:
            claim = pool.submit(repository.claim_sends, db, [(booking["id"], 1)], slack_seconds=60, table=table)
            wait_until(lambda: waiting_on_lock(watcher, CLAIM_NEEDLE), timeout=10, message="the claim waits")
            canceller.commit()
            assert claim.result(timeout=10) == []
    assert status_of(db, booking["id"], table) == "pending"
    reconcile(context)  # the cancel's job (the statement ran alone: no job was sent): the row follows
    run_jobs(context, aws)
    assert status_of(db, booking["id"], table) == "cancelled"
    assert published(aws) == []


@pytest.mark.parametrize("change", ["cancel", "move"])
def test_race_the_claim_commits_first_the_change_follows_the_send(settings, context, db, aws, database_url, change):
    """The claim has run (uncommitted) when the cancel or move arrives: the change waits for the claim,
    so the reminder is sent for the version it was claimed at, before the change, and the change
    then applies (its version is the next one); nothing is sent for the new version."""
    cid = new_id("web:r")
    booking = book(context, aws, conversation_id=cid)
    run_jobs(context, aws)
    make_due(db, booking["id"])
    with psycopg.connect(database_url, autocommit=True) as watcher, psycopg.connect(database_url) as claimer:
        claimed = claimer.execute(
            repository.CLAIM_REMINDERS, {"ids": [booking["id"]], "versions": [1], "slack": 60}
        ).fetchall()
        assert len(claimed) == 1
        with ThreadPoolExecutor(1) as pool:
            if change == "cancel":
                changed = pool.submit(call, context, CANCEL, booking["id"])
            else:
                changed = pool.submit(call, context, PATCH, booking["id"], body={"event_start": local_start(days=13)})
            wait_until(lambda: waiting_on_lock(watcher, "UPDATE bookings"), timeout=10, message=f"the {change} waits")
            assert not changed.done()
            claimer.commit()
            status, answer = changed.result(timeout=10)
    assert status == 200 and answer["version"] == 2
    # the change's schedule job waits for the reminder in flight (it fails, to be retried) ...
    assert worker(context, drain(aws)) == ["schedule_followup"]
    # ... which the worker that claimed it records as sent (after its publish)
    repository.finish_sends(db, repository.Messages(), [(booking["id"], 1, True)], table="reminders")
    assert reconcile(context)["re_enqueued"]["schedule_followup"] == 1
    run_jobs(context, aws)
    r = reminder(db, booking["id"])
    expected = "sent" if change == "cancel" else "pending"
    assert r["status"] == expected and r["version"] == (1 if change == "cancel" else 2)
    # a stale job for either version claims nothing now
    make_due(db, booking["id"])
    if change == "cancel":
        assert worker(context, [remind_body(booking["id"], 1), remind_body(booking["id"], 2)]) == []
        assert reminders_published(aws) == []


@pytest.mark.parametrize("table", ["reminders", "followups"])
def test_race_a_claim_held_up_after_its_snapshot_still_orders_before_the_cancel(
    settings, context, db, aws, database_url, table
):
    """The interleaving a claim without the booking lock gets wrong: the claim has read the booking
    (confirmed) and waits for its row (another worker's duplicate claim holds it) while the cancel
    commits; the claim then commits after the cancel and sends to a cancelled booking. With the lock
    the cancel waits for the claim instead: whatever is sent was claimed before the cancel."""
    booking = book(context, aws)
    run_jobs(context, aws)
    make_due(db, booking["id"], table)
    with psycopg.connect(database_url, autocommit=True) as watcher, psycopg.connect(database_url) as other:
        other.execute(
            sql.SQL("SELECT 1 FROM {} WHERE booking_id = %s FOR UPDATE").format(sql.Identifier(table)), [booking["id"]]
        )
        with ThreadPoolExecutor(2) as pool:
            claim = pool.submit(repository.claim_sends, db, [(booking["id"], 1)], slack_seconds=60, table=table)
            wait_until(lambda: waiting_on_lock(watcher, CLAIM_NEEDLE), timeout=10, message="the claim waits")
            cancel = pool.submit(call, context, CANCEL, booking["id"])
            wait_until(lambda: waiting_on_lock(watcher, "UPDATE bookings"), timeout=10, message="the cancel waits")
            assert not cancel.done()  # the cancel cannot commit while the claim is undecided
            other.commit()
            claimed = claim.result(timeout=10)
            status, answer = cancel.result(timeout=10)
    assert status == 200 and answer["version"] == 2
    assert [c.version for c in claimed] == [1]  # claimed (sent) at version 1, before the cancel's version 2
