"""The follow-up jobs end to end, in process: bookings through the create_booking handler, jobs
through the followup_worker handler (real SQS events), AWS on moto (SQS, SNS with an SQS inbox
subscribed, EventBridge Scheduler), the real PostgreSQL.

Time does not pass in a test: where a follow-up must be due, the test moves its due time (and, for
a late job, the booking's times) into the past in the database, which is what waiting would do.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from hibachi import settings as settings_module

from local.stack import wait_until
from testkit.functions import load_function
from tests.support import followups
from tests.support.bookings import CANCEL, call, local_start
from tests.support.common import new_id
from tests.support.followups import (
    assert_conversation_consistent,
    book,
    book_and_move,
    drain,
    followup,
    make_due,
    messages,
    post_user_message,
    published,
    reconcile,
    run_jobs,
    schedule,
    send_body,
    wait_for_jobs,
    worker,
)
from tests.support.followups import clean as clean  # autouse

aws = followups.aws  # the fixture, with schedule names of this folder's


def test_schedule_followup_records_the_schedule_and_confirms_in_the_conversation(settings, context, db, aws):
    cid = new_id("web:c")
    post_user_message(context, cid)
    booking = book(context, aws, conversation_id=cid)
    jobs = run_jobs(context, aws)
    assert [j["type"] for j in jobs] == ["schedule_followup"]

    row = followup(db, booking["id"])
    assert row["status"] == "pending" and row["version"] == 1 and row["schedule_name"] == f"fu-{booking['id']}"
    assert row["scheduled_at"] is not None
    assert row["due_at"] == datetime.fromisoformat(booking["followup_due_at"])
    assert db.fetchone("SELECT followup_version FROM bookings WHERE id = %s", [booking["id"]])["followup_version"] == 1

    s = schedule(aws, booking["id"])
    due_local = datetime.fromisoformat(booking["followup_due_at"])
    assert s["ScheduleExpression"] == f"at({due_local.replace(tzinfo=None):%Y-%m-%dT%H:%M:%S})"
    assert s["ScheduleExpressionTimezone"] == "America/Los_Angeles"
    assert s["ActionAfterCompletion"] == "DELETE" and s["FlexibleTimeWindow"] == {"Mode": "OFF"}
    target = s["Target"]
    assert target["Arn"] == aws["jobs_arn"] and target["RoleArn"] == aws["role_arn"]
    assert target["DeadLetterConfig"] == {"Arn": aws["dlq_arn"]}
    assert target["RetryPolicy"]["MaximumRetryAttempts"] >= 1 and target["RetryPolicy"]["MaximumEventAgeInSeconds"] > 0
    job = json.loads(target["Input"])
    assert job["type"] == "send_followup" and job["payload"] == {"booking_id": booking["id"], "version": 1}
    assert job["correlation_id"] and datetime.fromisoformat(job["enqueued_at"]) == due_local

    history = messages(db, cid)
    assert [m["role"] for m in history] == ["user", "system"]
    assert history[1]["content"].startswith("Booking confirmed: a hibachi chef for 12 guests")
    assert history[1]["idempotency_key"] == f"booking:{booking['id']}:confirmed:v1"
    assert_conversation_consistent(db, cid)

    # the same job again (SQS delivers at least once): nothing new
    assert worker(context, [json.dumps(jobs[0])]) == []
    assert len(messages(db, cid)) == 2 and followup(db, booking["id"]) == row
    assert_conversation_consistent(db, cid)


def test_a_booking_without_conversation_gets_its_schedule_only(settings, context, db, aws):
    booking = book(context, aws)
    run_jobs(context, aws)
    assert followup(db, booking["id"])["scheduled_at"] is not None
    assert schedule(aws, booking["id"])["State"] == "ENABLED"


def test_reschedule_replaces_the_schedule(settings, context, db, aws):
    cid, booking, moved = book_and_move(context, aws, local_start(days=13, hour=12))
    row = followup(db, booking["id"])
    assert row["version"] == 2 and row["status"] == "pending"
    assert row["due_at"] == datetime.fromisoformat(moved["followup_due_at"])
    s = schedule(aws, booking["id"])
    due_local = datetime.fromisoformat(moved["followup_due_at"]).replace(tzinfo=None)
    assert s["ScheduleExpression"] == f"at({due_local:%Y-%m-%dT%H:%M:%S})"
    assert json.loads(s["Target"]["Input"])["payload"] == {"booking_id": booking["id"], "version": 2}
    assert [m["content"][:27] for m in messages(db, cid)] == [
        "Booking confirmed: a hibach",
        "Booking confirmed (updated)",
    ]
    assert_conversation_consistent(db, cid)
    # the stale v1 job, should the old schedule still fire: nothing is sent
    make_due(db, booking["id"])
    worker(context, [send_body(booking["id"], 1)])
    assert published(aws) == [] and followup(db, booking["id"])["status"] == "pending"


def test_a_cancelled_bookings_followup_is_never_sent(settings, context, db, aws):
    cid = new_id("web:c")
    booking = book(context, aws, conversation_id=cid)
    run_jobs(context, aws)
    assert schedule(aws, booking["id"])
    assert call(context, CANCEL, booking["id"])[0] == 200
    assert [j["type"] for j in run_jobs(context, aws)] == ["schedule_followup"]
    row = followup(db, booking["id"])
    assert row["status"] == "cancelled" and row["version"] == 2
    with pytest.raises(aws["scheduler"].exceptions.ResourceNotFoundException):
        schedule(aws, booking["id"])
    assert messages(db, cid)[-1]["content"].startswith("Booking cancelled:")
    assert_conversation_consistent(db, cid)

    # a stale send_followup (the deleted schedule had fired already, or a duplicate): nothing
    db.execute("UPDATE followups SET due_at = now() - interval '1 day' WHERE booking_id = %s", [booking["id"]])
    assert worker(context, [send_body(booking["id"], 1), send_body(booking["id"], 2)]) == []
    # nor does the reconciler send it
    load_function("followup_worker").lambda_handler({"task": "reconcile"}, context)
    run_jobs(context, aws)
    assert published(aws) == []
    assert followup(db, booking["id"])["status"] == "cancelled"
    assert all(m["metadata"].get("kind") != "booking_followup" for m in messages(db, cid))


def test_cancel_before_the_schedule_job_ran_cancels_too(settings, context, db, aws):
    booking = book(context, aws)
    assert call(context, CANCEL, booking["id"])[0] == 200
    run_jobs(context, aws)  # both jobs: each brings the follow-up to the booking's current version
    assert followup(db, booking["id"])["status"] == "cancelled"
    with pytest.raises(aws["scheduler"].exceptions.ResourceNotFoundException):
        schedule(aws, booking["id"])


# -- send_followup ---------------------------------------------------------------------------------------
def test_send_followup_delivered_twice_sends_once(settings, context, db, aws, capsys):
    cid = new_id("web:c")
    booking = book(context, aws, conversation_id=cid)
    run_jobs(context, aws)
    fired = schedule(aws, booking["id"])["Target"]["Input"]  # what EventBridge Scheduler puts on the queue
    make_due(db, booking["id"])
    capsys.readouterr()
    assert worker(context, [fired, fired]) == []  # a duplicate in one batch
    assert worker(context, [fired]) == []  # and a redelivery later
    out = capsys.readouterr().out
    sent = published(aws)
    assert len(sent) == 1
    body = json.loads(sent[0]["Message"])
    assert body["booking_id"] == booking["id"] and body["customer"]["phone"] == "+14155550123"
    assert body["customer"]["email"] == "ada@example.com" and body["text"].startswith("Hi Ada, thank you")
    assert sent[0]["MessageAttributes"]["booking_id"]["Value"] == booking["id"]
    assert sent[0]["MessageAttributes"]["channel"]["Value"] == "sms"
    followups = [m for m in messages(db, cid) if m["metadata"].get("kind") == "booking_followup"]
    assert len(followups) == 1 and followups[0]["role"] == "assistant"
    assert followups[0]["idempotency_key"] == f"booking:{booking['id']}:followup"
    assert_conversation_consistent(db, cid)
    row = followup(db, booking["id"])
    assert row["status"] == "sent" and row["sent_at"] is not None and row["attempts"] == 1
    emf = [json.loads(line) for line in out.splitlines() if '"FollowupsSent"' in line]
    assert [doc["FollowupsSent"] for doc in emf] == [[1.0]]


def test_a_followup_that_is_not_due_yet_is_not_sent(settings, context, db, aws):
    booking = book(context, aws)
    run_jobs(context, aws)
    assert worker(context, [send_body(booking["id"], 1)]) == []
    assert published(aws) == [] and followup(db, booking["id"])["status"] == "pending"


def test_a_failed_publish_goes_back_to_pending_and_is_retried(settings, context, db, aws):
    cid = new_id("web:c")
    booking = book(context, aws, conversation_id=cid)
    run_jobs(context, aws)
    make_due(db, booking["id"])
    with settings_module.override(followup_topic_arn=aws["topic"] + "-missing"):
        assert worker(context, [send_body(booking["id"], 1)]) == ["send_followup"]
    row = followup(db, booking["id"])
    assert row["status"] == "pending" and row["claimed_at"] is None and row["attempts"] == 1
    assert not [m for m in messages(db, cid) if m["metadata"].get("kind") == "booking_followup"]
    assert worker(context, [send_body(booking["id"], 1)]) == []  # SQS redelivers: now it goes out
    assert len(published(aws)) == 1 and followup(db, booking["id"])["status"] == "sent"
    assert_conversation_consistent(db, cid)


def test_bad_jobs_fail_alone(settings, context, db, aws):
    booking = book(context, aws)
    run_jobs(context, aws)
    bad_schedule = json.dumps(
        {
            "type": "schedule_followup",
            "id": "x1",
            "payload": {"booking_id": "nope"},
            "enqueued_at": datetime.now(UTC).isoformat(),
        }
    )
    bad_send = json.dumps(
        {
            "type": "send_followup",
            "id": "x2",
            "payload": {"booking_id": booking["id"]},
            "enqueued_at": datetime.now(UTC).isoformat(),
        }
    )
    unknown = send_body("00000000-0000-0000-0000-000000000000", 1)
    assert sorted(worker(context, [bad_schedule, bad_send, unknown])) == ["schedule_followup", "send_followup"]


# -- reconciler --------------------------------------------------------------------------------------------


def test_a_lost_schedule_followup_is_recovered_by_the_reconciler(settings, context, db, aws):
    with settings_module.override(jobs_queue_url=aws["queue_url"] + "-missing"):
        booking = book(context, aws)  # 201, but its job was never sent
    assert drain(aws) == [] and followup(db, booking["id"]) is None
    result = reconcile(context)
    assert result["re_enqueued"]["schedule_followup"] == 1
    bodies = wait_for_jobs(aws, "schedule_followup", booking["id"])
    assert worker(context, bodies) == []
    assert followup(db, booking["id"])["scheduled_at"] is not None
    assert schedule(aws, booking["id"])
    assert reconcile(context)["re_enqueued"] == {
        "emotion_stats": 0,
        "schedule_followup": 0,
        "send_followup": 0,
        "send_reminder": 0,
        "publish_events": 0,
    }


def test_a_lost_schedule_is_covered_by_sending_past_due_followups(settings, context, db, aws):
    cid = new_id("web:c")
    booking = book(context, aws, conversation_id=cid)
    run_jobs(context, aws)
    aws["scheduler"].delete_schedule(Name=f"fu-{booking['id']}", GroupName=aws["group"])  # lost
    make_due(db, booking["id"])
    assert reconcile(context)["re_enqueued"]["send_followup"] == 1
    bodies = wait_for_jobs(aws, "send_followup", booking["id"])
    assert worker(context, bodies) == []
    assert len(published(aws)) == 1 and followup(db, booking["id"])["status"] == "sent"
    assert reconcile(context)["re_enqueued"]["send_followup"] == 0
    assert_conversation_consistent(db, cid)


def test_a_send_abandoned_mid_way_is_resent_by_the_reconciler(settings, context, db, aws):
    booking = book(context, aws)
    run_jobs(context, aws)
    db.execute(
        "UPDATE followups SET status = 'sending', claimed_at = now() - interval '10 minutes', "
        "due_at = now() - interval '11 minutes' WHERE booking_id = %s",
        [booking["id"]],
    )
    assert reconcile(context)["re_enqueued"]["send_followup"] == 1
    assert worker(context, wait_for_jobs(aws, "send_followup", booking["id"])) == []
    assert len(published(aws)) == 1 and followup(db, booking["id"])["status"] == "sent"


def test_a_late_schedule_job_sends_a_due_followup_directly(settings, context, db, aws):
    with settings_module.override(jobs_queue_url=aws["queue_url"] + "-missing"):
        booking = book(context, aws)
    db.execute(
        """UPDATE bookings SET event_start = now() - interval '3 hours', event_end = now() - interval '2 hours',
                  held_until = now() - interval '1 hour', followup_due_at = now() - interval '1 minute'
                  WHERE id = %s""",
        [booking["id"]],
    )
    reconcile(context)
    jobs = run_jobs(context, aws)
    assert [j["type"] for j in jobs] == ["schedule_followup", "send_followup"]
    assert len(published(aws)) == 1 and followup(db, booking["id"])["status"] == "sent"


def test_without_scheduler_settings_the_reconciler_sends_when_due(settings, context, db, aws):
    with settings_module.override(scheduler_target_arn=None, scheduler_role_arn=None):
        booking = book(context, aws)
        run_jobs(context, aws)
        row = followup(db, booking["id"])
        assert row["status"] == "pending" and row["scheduled_at"] is None
        make_due(db, booking["id"])
        reconcile(context)
        run_jobs(context, aws)
    assert len(published(aws)) == 1


def test_the_local_scheduler_fires_the_schedule_into_the_queue(settings, context, db, aws):
    from local.scheduler import OneTimeScheduleRunner, due_time

    cid = new_id("web:c")
    booking = book(context, aws, conversation_id=cid)
    run_jobs(context, aws)
    s = schedule(aws, booking["id"])
    due = due_time(s["ScheduleExpression"], s["ScheduleExpressionTimezone"])
    assert due == datetime.fromisoformat(booking["followup_due_at"])
    runner = OneTimeScheduleRunner(
        aws["scheduler"], sqs=aws["client"], sns=aws["sns"], clock=lambda: due + timedelta(seconds=30)
    )
    assert runner.step() == 2  # the reminder's schedule too (due a day before the event)
    make_due(db, booking["id"])
    assert sorted(j["type"] for j in run_jobs(context, aws)) == ["send_followup", "send_reminder"]
    assert len(published(aws)) == 1
    with pytest.raises(aws["scheduler"].exceptions.ResourceNotFoundException):
        schedule(aws, booking["id"])  # ActionAfterCompletion: DELETE
    assert messages(db, cid)[-1]["metadata"]["kind"] == "booking_followup"


def test_the_sample_sqs_event_is_a_valid_job(settings, context, aws):
    from tests.support.common import ROOT

    event = json.loads((ROOT / "events" / "send_followup_sqs.json").read_text())
    response = load_function("followup_worker").lambda_handler(event, context)
    assert response["batchItemFailures"] == []  # an unknown booking: nothing to send, done
    assert published(aws) == []


def test_a_sync_racing_another_for_a_new_followup_leaves_it_to_that_job(settings, context, db, aws, database_url):
    """Two schedule_followup jobs of one new booking at once: the second statement waits for the
    first's insert and then sees no follow-up row (it is newer than its snapshot). It answers the
    booking without a follow-up state (None), and the job leaves the schedule to the first."""
    from concurrent.futures import ThreadPoolExecutor

    import psycopg
    from hibachi.followups import repository

    booking = book(context, aws)  # no job has run: the booking has no follow-up row yet
    with psycopg.connect(database_url, autocommit=True) as watcher, psycopg.connect(database_url) as first:
        first.execute(repository.SYNC_FOLLOWUPS, {"ids": [booking["id"]], "lead": 24})  # uncommitted: open
        with ThreadPoolExecutor(1) as pool:
            second = pool.submit(repository.sync_followups, db, [booking["id"]], reminder_lead_hours=24)
            wait_until(
                lambda: watcher.execute(
                    "SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE %s",
                    ("%INSERT INTO followups%",),
                ).fetchone(),
                timeout=10,
                message="the second sync waits for the first's insert",
            )
            first.commit()
            (synced,) = second.result(timeout=10)
    assert str(synced.booking["id"]) == booking["id"] and not synced.changed
    assert synced.status is None and synced.version is None and synced.reminder is None
    assert followup(db, booking["id"])["status"] == "pending"


def test_a_reconciler_run_ends_within_its_budget_and_leaves_the_rest_to_the_next(settings, context, db, aws):
    """Past RECONCILE_BUDGET_SECONDS a run sends nothing more and starts no further reconciler: it ends,
    records itself, and the next run re-enqueues what it left."""
    import time

    from hibachi import worker

    with settings_module.override(jobs_queue_url=aws["queue_url"] + "-missing"):
        lost = [book(context, aws)["id"] for _ in range(3)]  # 201s whose jobs were never sent
    assert drain(aws) == []
    ran: list[str] = []

    def slow(grace: int, limit: int) -> int:
        ran.append("slow")
        time.sleep(0.3)  # spends the run's budget
        return 0

    reconcilers = {"slow": slow, **load_function("followup_worker").RECONCILERS}
    with settings_module.override(reconcile_budget_seconds=0.2):
        result = worker.reconcile(reconcilers)
    assert ran == ["slow"] and result["skipped"] == list(load_function("followup_worker").RECONCILERS)
    assert drain(aws) == []  # nothing sent past the budget
    newest = db.fetchone("SELECT re_enqueued FROM reconciler_runs ORDER BY ran_at DESC LIMIT 1")
    assert newest["re_enqueued"] == {"slow": 0}  # the run recorded itself
    # a budget spent in the middle of a send: the queue sends no batch after the deadline
    from hibachi import jobs
    from hibachi.followups.jobs import schedule_job

    queue = jobs.get_queue()
    with queue.sending_until(time.monotonic() - 1):
        left = queue.send_many([schedule_job(b, 1, "test") for b in lost])
    assert len(left) == 3 and drain(aws) == []
    # the next run, with its budget, re-enqueues them
    assert reconcile(context)["re_enqueued"]["schedule_followup"] == 3
    assert {json.loads(body)["payload"]["booking_id"] for body in drain(aws)} >= set(lost)
