"""followup_worker: emotion statistics jobs (idempotent, order-free, set-based) and the reconciler."""

from __future__ import annotations

import json
import statistics
from urllib.parse import urlsplit

from hibachi import jobs
from hibachi import settings as settings_module
from hibachi.conversations import repository

from testkit.events import sqs_event
from testkit.netproxy import PgProxy
from tests.conftest import load_function, new_id, receive_all
from tests.integration.test_conversations import GET_CONV, call, post


def worker(event, context):
    return load_function("followup_worker").lambda_handler(event, context)


def emotion_body(cid: str, seq: int = 1) -> str:
    return jobs.Job.new(
        jobs.EMOTION_STATS, f"emotion_stats:{cid}:{seq}", {"conversation_id": cid}, "corr-1"
    ).model_dump_json()


def conversation(context, cid):
    status, body = call(context, GET_CONV, cid)
    assert status == 200
    return body


def test_stats_match_messages_and_duplicates_change_nothing(settings, context):
    cid = new_id()
    scores = [0.5, -0.25, 0.75, 1.0]
    for score in scores:
        post(context, cid, role="user", content="msg", emotion_score=score)
    post(context, cid, role="assistant", content="no score")
    result = worker(sqs_event([emotion_body(cid)]), context)
    assert result == {"batchItemFailures": []}
    first = conversation(context, cid)
    assert first["avg_emotion"] == statistics.fmean(scores)
    assert first["emotion_count"] == 4 and first["last_emotion"] == 1.0 and first["message_count"] == 5
    assert first["emotion_trend"] == "improving"
    # the same job three more times, in one batch and alone: same statistics
    worker(sqs_event([emotion_body(cid)] * 3), context)
    worker(sqs_event([emotion_body(cid)]), context)
    again = conversation(context, cid)
    assert {k: again[k] for k in ("avg_emotion", "emotion_count", "last_emotion", "emotion_trend")} == {
        k: first[k] for k in ("avg_emotion", "emotion_count", "last_emotion", "emotion_trend")
    }


def test_out_of_order_jobs_leave_the_final_result(settings, context, db):
    cid = new_id()
    post(context, cid, role="user", content="a", emotion_score=-1.0)
    early_job = emotion_body(cid, 1)
    post(context, cid, role="user", content="b", emotion_score=-0.5)
    post(context, cid, role="user", content="c", emotion_score=-0.9)
    late_job = emotion_body(cid, 3)
    worker(sqs_event([late_job]), context)
    expected = conversation(context, cid)
    worker(sqs_event([early_job]), context)  # the older job arrives last
    assert conversation(context, cid)["avg_emotion"] == expected["avg_emotion"] == statistics.fmean([-1, -0.5, -0.9])
    assert expected["emotion_trend"] == "improving"  # slope of (-1, -0.5, -0.9) is +0.05 per message


def test_batch_of_ten_is_one_statement_and_partial_failures_are_reported(settings, context, database_url):
    cids = [new_id() for _ in range(9)]
    for i, cid in enumerate(cids):
        post(context, cid, role="user", content="x", emotion_score=i / 10)
    event = sqs_event([emotion_body(cid) for cid in cids] + ["{not a job"])
    parts = urlsplit(database_url)
    with (
        PgProxy((parts.hostname, parts.port or 5432)) as proxy,
        settings_module.override(database_url=proxy.dsn(database_url)),
    ):
        worker(sqs_event([emotion_body(cids[0])]), context)  # open the connection
        proxy.reset()
        result = worker(event, context)
        round_trips = proxy.round_trips
    poison_id = event["Records"][-1]["messageId"]
    assert result == {"batchItemFailures": [{"itemIdentifier": poison_id}]}
    assert round_trips == 1
    assert [conversation(context, cid)["avg_emotion"] for cid in cids] == [i / 10 for i in range(9)]


def test_unknown_job_type_fails_only_that_record(settings, context):
    cid = new_id()
    post(context, cid, role="user", content="x", emotion_score=0.2)
    unknown = jobs.Job.new("no_such_job", "x:1", {}).model_dump_json()
    event = sqs_event([emotion_body(cid), unknown])
    result = worker(event, context)
    assert result == {"batchItemFailures": [{"itemIdentifier": event["Records"][1]["messageId"]}]}
    assert conversation(context, cid)["avg_emotion"] == 0.2


def test_reconciler_recovers_emotion_job_whose_send_failed(settings, context, sqs):
    cid = new_id()
    with settings_module.override(jobs_queue_url=sqs["queue_url"] + "-missing"):
        status, _ = post(context, cid, role="user", content="the send of my job fails", emotion_score=-0.4)
    assert status == 201
    assert receive_all(sqs["client"], sqs["queue_url"]) == []  # the job is not in the queue
    assert conversation(context, cid)["avg_emotion"] is None

    result = worker({"task": "reconcile"}, context)
    assert result["re_enqueued"][jobs.EMOTION_STATS] >= 1
    recovered = [json.loads(m["Body"]) for m in receive_all(sqs["client"], sqs["queue_url"])]
    mine = [job for job in recovered if job["payload"].get("conversation_id") == cid]
    assert len(mine) == 1 and mine[0]["type"] == jobs.EMOTION_STATS

    worker(sqs_event([json.dumps(mine[0])]), context)
    assert conversation(context, cid)["avg_emotion"] == -0.4
    # once the statistics caught up, the reconciler leaves the conversation alone
    worker({"task": "reconcile"}, context)
    again = [json.loads(m["Body"]) for m in receive_all(sqs["client"], sqs["queue_url"])]
    assert not [job for job in again if job["payload"].get("conversation_id") == cid]


def test_reconciler_waits_for_the_grace_period(settings, context, sqs, db):
    cid = new_id()
    with settings_module.override(jobs_queue_url=sqs["queue_url"] + "-missing"):
        post(context, cid, role="user", content="x", emotion_score=0.3)
    assert cid not in repository.stale_stats(db, grace_seconds=3600, limit=100_000)
    assert cid in repository.stale_stats(db, grace_seconds=0, limit=100_000)
