"""``python -m ops``: against a moto server and the test database (``--local``), and against a
deployed stack (``--stack``) with moto's CloudFormation and a stubbed Lambda."""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from botocore.response import StreamingBody
from botocore.stub import Stubber
from hibachi import jobs

from ops import cli
from ops.targets import AwsTarget, TargetError
from testkit.functions import load_function
from tests.support.common import new_id


@pytest.fixture
def local(moto, database_url, settings) -> dict:
    """The session's moto, emptied (its jobs queue's failed receives come back at once), and the
    command line that points ``ops`` at it."""
    moto.clean()
    endpoint, prefix = moto.endpoint_url, moto.prefix
    return {
        "res": moto.resources,
        "sqs": moto.client("sqs"),
        "prefix": prefix,
        "args": ["--local", "--endpoint-url", endpoint, "--database-url", database_url, "--prefix", prefix],
    }


def run(capsys, args: list[str]) -> tuple[int, object]:
    capsys.readouterr()
    code = cli.main(args)
    out = capsys.readouterr().out
    try:
        return code, json.loads(out)
    except ValueError:
        return code, out


def ops(capsys, local, *command: str) -> tuple[int, object]:
    return run(capsys, [*local["args"], "--json", *command])


def job_message(job_type: str = jobs.EMOTION_STATS, correlation_id: str | None = "req-1", **payload) -> dict:
    return jobs.Job.new(
        job_type, f"{job_type}:{new_id()}", payload or {"conversation_id": new_id()}, correlation_id
    ).to_message()


def to_dlq(sqs, res, message: dict) -> str:
    """Send to the jobs queue and receive it without deleting until moto dead-letters it (the 6th
    receive with maxReceiveCount 5), as five failed worker invocations would."""
    message_id = sqs.send_message(QueueUrl=res.jobs_queue_url, **message)["MessageId"]
    for _ in range(10):
        got = sqs.receive_message(QueueUrl=res.jobs_queue_url, MaxNumberOfMessages=10).get("Messages", [])
        if not any(m["MessageId"] == message_id for m in got):
            break
    return message_id


def test_queues(capsys, local):
    sqs, res = local["sqs"], local["res"]
    to_dlq(sqs, res, job_message())
    sqs.send_message(QueueUrl=res.jobs_queue_url, **job_message())
    code, out = ops(capsys, local, "queues")
    assert code == 0
    assert out["queues"]["jobs"]["visible"] == 1
    assert out["queues"]["jobs_dlq"]["visible"] == 1 and out["queues"]["scheduler_dlq"]["visible"] == 0
    code, text = run(capsys, [*local["args"], "queues"])
    assert "jobs_dlq" in text and "dead-letter" in text


def test_dlq_list_show_and_redrive_one_preserving_body_and_attributes(capsys, local):
    sqs, res = local["sqs"], local["res"]
    first, second = job_message(correlation_id="req-first"), job_message(correlation_id="req-second")
    first_id, second_id = to_dlq(sqs, res, first), to_dlq(sqs, res, second)

    code, listed = ops(capsys, local, "dlq", "list")
    assert code == 0
    by_id = {row["message_id"]: row for row in listed}
    assert set(by_id) == {first_id, second_id}, "the DLQ keeps the message id"
    assert by_id[first_id]["correlation_id"] == "req-first" and by_id[first_id]["job_type"] == jobs.EMOTION_STATS
    assert by_id[first_id]["receive_count"] >= 6
    _, again = ops(capsys, local, "dlq", "list")
    assert {row["message_id"] for row in again} == {first_id, second_id}, "listing consumes nothing"

    job_id = json.loads(second["MessageBody"])["id"]
    code, shown = ops(capsys, local, "dlq", "show", job_id)  # by job id as well as by message id
    assert code == 0 and shown["summary"]["message_id"] == second_id and shown["body"]["id"] == job_id

    code, result = ops(capsys, local, "dlq", "redrive", "--id", first_id)
    assert code == 0 and result["moved"] == [first_id] and result["method"] == "resend"
    back = sqs.receive_message(QueueUrl=res.jobs_queue_url, MessageAttributeNames=["All"]).get("Messages", [])
    assert len(back) == 1
    assert back[0]["Body"] == first["MessageBody"]
    assert {k: v["StringValue"] for k, v in back[0]["MessageAttributes"].items()} == {
        k: v["StringValue"] for k, v in first["MessageAttributes"].items()
    }
    _, left = ops(capsys, local, "dlq", "list")
    assert [row["message_id"] for row in left] == [second_id]


def test_redrive_all_and_unknown_ids(capsys, local):
    sqs, res = local["sqs"], local["res"]
    ids = {to_dlq(sqs, res, job_message()) for _ in range(12)}  # more than one receive batch
    code, result = ops(capsys, local, "dlq", "redrive", "--id", "nope")
    assert code == 1 and result["not_found"] == ["nope"] and result["moved"] == []
    code, result = ops(capsys, local, "dlq", "redrive", "--all")
    assert code == 0 and set(result["moved"]) == ids
    _, depths = ops(capsys, local, "queues")
    assert depths["queues"]["jobs_dlq"]["visible"] == 0 and depths["queues"]["jobs"]["visible"] == 12


def test_scheduler_dlq_redrive_takes_jobs_and_leaves_reconciler_ticks(capsys, local):
    sqs, res = local["sqs"], local["res"]
    job = job_message(jobs.SEND_FOLLOWUP, booking_id=str(uuid.uuid4()), version=1)
    job["MessageAttributes"]["ERROR_CODE"] = {"DataType": "String", "StringValue": "AWS.SQS.Throttled"}
    sqs.send_message(QueueUrl=res.scheduler_dlq_url, **job)
    tick = sqs.send_message(QueueUrl=res.scheduler_dlq_url, MessageBody='{"task": "reconcile"}')["MessageId"]
    _, listed = ops(capsys, local, "dlq", "list", "--queue", "scheduler")
    assert {row["error"] for row in listed} == {"AWS.SQS.Throttled", None}
    code, result = ops(capsys, local, "dlq", "redrive", "--queue", "scheduler", "--all")
    assert code == 0 and len(result["moved"]) == 1 and result["skipped"] == [tick]
    back = sqs.receive_message(QueueUrl=res.jobs_queue_url).get("Messages", [])
    assert [json.loads(m["Body"])["type"] for m in back] == [jobs.SEND_FOLLOWUP]


# -- database-backed commands ----------------------------------------------------------------------------
@pytest.fixture
def followup(db) -> Iterator:
    """Insert follow-ups in any state; they are deleted after the test (the reconciler would act on
    them in other tests)."""
    made: list[str] = []

    def insert(status: str, due_at: datetime, **kwargs) -> str:
        made.append(insert_followup(db, status, due_at, **kwargs))
        return made[-1]

    yield insert
    db.execute("DELETE FROM bookings WHERE id = ANY(%s::uuid[])", (made,))


def insert_followup(
    db, status: str, due_at: datetime, *, claimed_at: datetime | None = None, sent_at: datetime | None = None
) -> str:
    """A follow-up (on a cancelled booking, which holds no chef) in any state, straight in SQL."""
    booking_id = str(uuid.uuid4())
    start = datetime.now(UTC) - timedelta(days=2)
    db.execute(
        """INSERT INTO bookings (id, status, chef_id, event_start, event_end, held_until, timezone,
               duration_minutes, guest_count, customer_name, customer_phone, customer_email, address,
               request_hash, followup_due_at, cancelled_at)
           VALUES (%s, 'cancelled', 1, %s, %s, %s, 'UTC', 120, 10, 'Ops Test', '+14155550100', 'o@example.com',
                   '{}'::jsonb, repeat('a', 64), %s, now())""",
        (booking_id, start, start + timedelta(hours=2), start + timedelta(hours=3), start + timedelta(hours=3)),
    )
    db.execute(
        "INSERT INTO followups (booking_id, version, status, due_at, claimed_at, sent_at)"
        " VALUES (%s, 1, %s, %s, %s, %s)",
        (booking_id, status, due_at, claimed_at, sent_at),
    )
    return booking_id


def test_followups_pending_and_failed(capsys, local, followup):
    now = datetime.now(UTC)
    waiting = followup("pending", now + timedelta(hours=5))
    overdue = followup("pending", now - timedelta(hours=1))
    stuck = followup("sending", now - timedelta(hours=2), claimed_at=now - timedelta(hours=1))
    sending_now = followup("sending", now - timedelta(minutes=1), claimed_at=now)
    sent = followup("sent", now - timedelta(hours=3), sent_at=now)

    code, pending = ops(capsys, local, "followups", "pending", "--limit", "1000")
    assert code == 0
    ids = {row["booking_id"] for row in pending}
    assert {waiting, overdue} <= ids and not ids & {stuck, sending_now, sent}
    assert "customer_name" not in pending[0] and "customer_phone" not in pending[0]
    _, failed = ops(capsys, local, "followups", "failed", "--limit", "1000")
    ids = {row["booking_id"] for row in failed}
    assert {overdue, stuck} <= ids and not ids & {waiting, sending_now, sent}

    _, health = ops(capsys, local, "health")
    figures = health["details"]["followups"]
    assert figures["pending"] >= 2 and figures["overdue"] >= 1 and figures["stuck_sending"] >= 1
    assert figures["failed"] == figures["overdue"] + figures["stuck_sending"] and figures["sent_today"] >= 1


def test_reconcile_runs_the_worker_once_and_shows_the_run_log(capsys, local, context):
    code, out = ops(capsys, local, "reconcile")
    assert code == 0
    assert out["result"]["task"] == "reconcile" and out["result"]["errors"] == {}
    latest = out["recent_runs"][0]
    assert latest["request_id"] and latest["total"] == sum(out["result"]["re_enqueued"].values())


def test_health_locally(capsys, local):
    code, out = ops(capsys, local, "health")
    assert code == 0
    assert out["health"]["http_status"] == 200 and out["health"]["database"]["status"] == "ok"
    assert out["details"]["queues"]["jobs_dlq"]["status"] == "ok"


def test_cli_restores_the_settings_it_changed(capsys, local, settings):
    from hibachi.settings import get_settings

    ops(capsys, local, "health")
    assert get_settings() is settings


def test_unreachable_local_stack_is_a_clear_error(capsys, database_url):
    code = cli.main(["--local", "--endpoint-url", "http://127.0.0.1:9", "--database-url", database_url, "queues"])
    assert code == 2
    assert "is `python -m local.run` running?" in capsys.readouterr().err


# -- a deployed stack ---------------------------------------------------------------------------------------
CFN_TEMPLATE = {
    "Resources": {
        "JobsDeadLetterQueue": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "stk-jobs-dlq"}},
        "JobsQueue": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "stk-jobs"}},
        "SchedulerDeadLetterQueue": {"Type": "AWS::SQS::Queue", "Properties": {"QueueName": "stk-scheduler-dlq"}},
    },
    "Outputs": {
        "JobsQueueUrl": {"Value": {"Ref": "JobsQueue"}},
        "JobsDlqUrl": {"Value": {"Ref": "JobsDeadLetterQueue"}},
        # SchedulerDlqUrl left out on purpose: resolved from the stack's resources instead
    },
}


@pytest.fixture
def aws_stack(moto) -> Iterator[AwsTarget]:
    """A deployed stack ``stk`` on the session's moto (its CloudFormation); moto forgets it after."""
    moto.client("cloudformation").create_stack(StackName="stk", TemplateBody=json.dumps(CFN_TEMPLATE))
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("AWS_ENDPOINT_URL", moto.endpoint_url)  # AwsTarget's boto3 clients
            yield AwsTarget("stk", region="us-east-1")
    finally:
        moto.reset()


def stub_invoke(target: AwsTarget, payload: object, function_error: str | None = None) -> Stubber:
    stubber = Stubber(target.lambda_)
    raw = json.dumps(payload).encode()
    response = {"StatusCode": 200, "Payload": StreamingBody(io.BytesIO(raw), len(raw))}
    if function_error:
        response["FunctionError"] = function_error
    stubber.add_response("invoke", response)
    stubber.activate()
    return stubber


def test_stack_resources_come_from_outputs_and_resources(aws_stack):
    urls = aws_stack.queue_urls()
    assert urls["jobs"].endswith("/stk-jobs") and urls["jobs_dlq"].endswith("/stk-jobs-dlq")
    assert urls["scheduler_dlq"].endswith("/stk-scheduler-dlq")


def test_stack_redrive_all_tries_the_move_task_then_resends(aws_stack, monkeypatch, capsys):
    sqs = aws_stack.sqs
    urls = aws_stack.queue_urls()
    sqs.send_message(QueueUrl=urls["jobs_dlq"], **job_message())
    calls = []

    def move_task(_sqs, source_arn, target_arn):
        calls.append((source_arn, target_arn))
        raise RuntimeError("no move task here")

    monkeypatch.setattr("ops.dlq.start_move_task", move_task)
    monkeypatch.setattr(cli, "make_target", lambda args: aws_stack)
    code = cli.main(["--stack", "stk", "--json", "dlq", "redrive", "--all"])
    captured = capsys.readouterr()
    assert code == 0 and json.loads(captured.out)["method"] == "resend"
    assert calls and calls[0][0].endswith(":stk-jobs-dlq") and calls[0][1].endswith(":stk-jobs")
    assert "resending instead" in captured.err
    assert len(sqs.receive_message(QueueUrl=urls["jobs"]).get("Messages", [])) == 1


def test_stack_redrive_all_uses_the_move_task_when_it_works(aws_stack, monkeypatch, capsys):
    monkeypatch.setattr("ops.dlq.start_move_task", lambda *_: {"TaskHandle": "handle-1"})
    monkeypatch.setattr(cli, "make_target", lambda args: aws_stack)
    assert cli.main(["--stack", "stk", "--json", "dlq", "redrive", "--all"]) == 0
    assert json.loads(capsys.readouterr().out) == {"method": "move-task", "task_handle": "handle-1"}


def test_stack_database_figures_come_from_the_health_function(aws_stack, monkeypatch):
    monkeypatch.setattr(aws_stack, "physical_id", lambda logical: f"stk-{logical}")
    stubber = stub_invoke(aws_stack, {"ops": "followups", "result": [{"booking_id": "b1"}]})
    assert aws_stack.followups("failed", 10) == [{"booking_id": "b1"}]
    stubber.assert_no_pending_responses()
    stubber.deactivate()
    stub_invoke(aws_stack, {"errorType": "Boom", "errorMessage": "x"}, function_error="Unhandled")
    with pytest.raises(TargetError, match="Boom"):
        aws_stack.reconcile()


def test_direct_invocation_payloads_match_the_health_function(settings, context, monkeypatch):
    """What AwsTarget sends is what functions/health answers (no drift between the two)."""
    sent = []

    class Lambda:
        def invoke(self, FunctionName, Payload):  # noqa: N803 - boto3's names
            event = json.loads(Payload)
            sent.append(event)
            body = json.dumps(load_function("health").lambda_handler(event, context)).encode()
            return {"StatusCode": 200, "Payload": io.BytesIO(body)}

    target = AwsTarget.__new__(AwsTarget)
    target.lambda_ = Lambda()
    target._physical = {"HealthFunction": "fn"}
    assert isinstance(target.followups("pending", 5), list)
    assert isinstance(target.reconciler_runs(3), list)
    assert "queues" in target.details()
    assert [e["ops"] for e in sent] == ["followups", "reconciler_runs", "details"]


def test_reconcile_failure_still_shows_the_recorded_run(capsys, local, monkeypatch):
    from ops import targets

    def broken(grace_seconds, limit):
        raise RuntimeError("boom")

    worker = targets._load_function("followup_worker")  # the copy of the handler the CLI runs
    monkeypatch.setitem(worker.RECONCILERS, jobs.EMOTION_STATS, broken)
    code, out = ops(capsys, local, "reconcile")
    assert code == 1 and "reconciler failed" in out["result"]["error"]
    assert out["recent_runs"][0]["errors"] == {jobs.EMOTION_STATS: "RuntimeError"}


def test_the_command_line_in_a_fresh_process(local):
    """As the on-call engineer runs it: a new interpreter, nothing of the app's environment set."""
    import os
    import subprocess
    import sys

    from tests.support.common import ROOT

    env = {k: v for k, v in os.environ.items() if not k.startswith(("POWERTOOLS_", "AWS_", "DATABASE_URL"))}
    proc = subprocess.run(
        [sys.executable, "-m", "ops", *local["args"], "--json", "reconcile"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["result"]["errors"] == {} and out["recent_runs"][0]["request_id"]
    assert '"service":"hibachi"' in proc.stderr.replace(" ", "") or proc.stderr == ""  # the app's logs: stderr
