"""The local stack's event sources: the SQS poller (Lambda's batch semantics, DLQ after 5 receives),
the reconciler tick, one-time EventBridge Scheduler schedules, ``drain`` and ``invoke_worker``."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from local.runtime import InvocationError
from local.stack import wait_until
from tests.support.common import read_jsonl


def records_for(out, tag: str) -> list[dict]:
    return [r for r in read_jsonl(out / "records.jsonl") if r["body"].get("tag") == tag]


def send(stack, **body) -> str:
    tag = body.setdefault("tag", uuid.uuid4().hex)
    stack.sqs.send_message(
        QueueUrl=stack.queue_urls["jobs"],
        MessageBody=json.dumps(body),
        MessageAttributes={"kind": {"DataType": "String", "StringValue": "test"}},
    )
    return tag


def dlq_bodies(stack) -> list[dict]:
    got = []
    for m in stack.sqs.receive_message(
        QueueUrl=stack.queue_urls["jobs_dlq"], MaxNumberOfMessages=10, MessageSystemAttributeNames=["All"]
    ).get("Messages", []):
        got.append({**json.loads(m["Body"]), "_receive_count": int(m["Attributes"]["ApproximateReceiveCount"])})
        stack.sqs.delete_message(QueueUrl=stack.queue_urls["jobs_dlq"], ReceiptHandle=m["ReceiptHandle"])
    return got


def test_messages_reach_the_worker_as_an_sqs_event_and_are_deleted(stack, fixture_out):
    tags = [send(stack, n=i) for i in range(3)]
    stack.drain(timeout=30)
    for tag in tags:
        [rec] = records_for(fixture_out, tag)
        record = rec["record"]
        assert record["eventSource"] == "aws:sqs"
        assert record["eventSourceARN"] == stack.resources.jobs_queue_arn
        assert record["awsRegion"] == "us-east-1"
        assert record["attributes"]["ApproximateReceiveCount"] == "1"
        assert {"SentTimestamp", "SenderId", "ApproximateFirstReceiveTimestamp"} <= set(record["attributes"])
        assert record["messageAttributes"]["kind"] == {
            "stringValue": "test",
            "stringListValues": [],
            "binaryListValues": [],
            "dataType": "String",
        }
        assert record["md5OfBody"] and record["receiptHandle"] and record["messageId"]
        assert 1 <= rec["batch_size"] <= 10
    assert stack.queue_depth("jobs") == {"visible": 0, "in_flight": 0, "delayed": 0}


def test_reported_item_failure_is_retried_then_dead_lettered(stack, fixture_out):
    tag = send(stack, fail=True)
    ok_tag = send(stack)
    dead = wait_until(
        lambda: [b for b in dlq_bodies(stack) if b["tag"] == tag], timeout=60, message="the failing message in the DLQ"
    )
    assert dead[0]["fail"] is True
    counts = [int(r["record"]["attributes"]["ApproximateReceiveCount"]) for r in records_for(fixture_out, tag)]
    assert counts == [1, 2, 3, 4, 5]  # maxReceiveCount 5, then moto's redrive
    assert len(records_for(fixture_out, ok_tag)) == 1  # its neighbour succeeded once and was deleted


def test_handler_error_fails_the_whole_batch(stack, fixture_out):
    tag = send(stack, **{"raise": True})
    wait_until(
        lambda: [b for b in dlq_bodies(stack) if b["tag"] == tag], timeout=60, message="the raising message in the DLQ"
    )
    counts = [int(r["record"]["attributes"]["ApproximateReceiveCount"]) for r in records_for(fixture_out, tag)]
    assert counts == [1, 2, 3, 4, 5]


def test_reconciler_tick_invokes_the_worker_with_the_schedule_input(stack, fixture_out):
    before = stack.reconciler.ticks
    wait_until(lambda: stack.reconciler.ticks >= before + 2, timeout=30, message="two reconciler ticks")
    events = read_jsonl(fixture_out / "events.jsonl")
    assert {"task": "reconcile"} in events
    assert all(e == {"task": "reconcile"} for e in events if "task" in e and e["task"] == "reconcile")


def _schedule(stack, name: str, when: datetime, tz: str, payload: dict, action: str = "DELETE") -> None:
    stack.client("scheduler").create_schedule(
        Name=name,
        GroupName=stack.resources.schedule_group,
        ScheduleExpression=f"at({when.strftime('%Y-%m-%dT%H:%M:%S')})",
        ScheduleExpressionTimezone=tz,
        FlexibleTimeWindow={"Mode": "OFF"},
        ActionAfterCompletion=action,
        Target={
            "Arn": stack.resources.jobs_queue_arn,
            "RoleArn": stack.resources.scheduler_role_arn,
            "Input": json.dumps(payload),
            "DeadLetterConfig": {"Arn": stack.resources.scheduler_dlq_arn},
            "RetryPolicy": {"MaximumRetryAttempts": 3, "MaximumEventAgeInSeconds": 3600},
        },
    )


def _exists(stack, name: str) -> bool:
    scheduler = stack.client("scheduler")
    try:
        scheduler.get_schedule(Name=name, GroupName=stack.resources.schedule_group)
        return True
    except scheduler.exceptions.ResourceNotFoundException:
        return False


def test_due_one_time_schedule_fires_into_the_queue_and_is_deleted(stack, fixture_out):
    tz = "America/Los_Angeles"
    now_local = datetime.now(ZoneInfo(tz)).replace(tzinfo=None)
    due_tag, future_tag = uuid.uuid4().hex, uuid.uuid4().hex
    _schedule(stack, f"due-{due_tag[:8]}", now_local - timedelta(minutes=1), tz, {"tag": due_tag, "kind": "followup"})
    _schedule(stack, f"later-{future_tag[:8]}", now_local + timedelta(days=1), tz, {"tag": future_tag})
    wait_until(lambda: records_for(fixture_out, due_tag), timeout=30, message="the scheduled job delivered")
    wait_until(lambda: not _exists(stack, f"due-{due_tag[:8]}"), timeout=30, message="the schedule deleted")
    [rec] = records_for(fixture_out, due_tag)
    assert rec["body"] == {"tag": due_tag, "kind": "followup"}
    assert _exists(stack, f"later-{future_tag[:8]}") and not records_for(fixture_out, future_tag)
    stack.client("scheduler").delete_schedule(Name=f"later-{future_tag[:8]}", GroupName=stack.resources.schedule_group)


def test_schedule_without_delete_fires_once(stack, fixture_out):
    tag = uuid.uuid4().hex
    name = f"keep-{tag[:8]}"
    now_utc = datetime.now(UTC).replace(tzinfo=None)
    _schedule(stack, name, now_utc - timedelta(seconds=5), "UTC", {"tag": tag}, action="NONE")
    wait_until(lambda: records_for(fixture_out, tag), timeout=30, message="the scheduled job delivered")
    scans = stack.schedules.scans
    wait_until(lambda: stack.schedules.scans >= scans + 3, timeout=30, message="three more scans")
    stack.drain(timeout=30)
    assert len(records_for(fixture_out, tag)) == 1 and _exists(stack, name)
    stack.client("scheduler").delete_schedule(Name=name, GroupName=stack.resources.schedule_group)


def test_invoke_worker_and_drain(stack, fixture_out):
    result = stack.invoke_worker({"task": "direct", "n": 1})
    assert result == {"ok": True, "event": {"task": "direct", "n": 1}, "function": "fixture-worker"}
    assert {"task": "direct", "n": 1} in read_jsonl(fixture_out / "events.jsonl")
    tags = [send(stack, i=i) for i in range(12)]  # more than one batch
    stack.drain(timeout=30)
    assert all(len(records_for(fixture_out, t)) == 1 for t in tags)
    assert stack.busy() is None


def test_invoke_worker_error_is_raised(stack):
    with pytest.raises(InvocationError) as exc:
        stack.invoke_worker({"Records": [{"body": "not json", "messageId": "m"}]})
    assert exc.value.invocation.error["errorType"] == "JSONDecodeError"
    invocation = stack.invoke_worker({"Records": []}, check=False)
    assert invocation.ok and invocation.result == {"batchItemFailures": []}
