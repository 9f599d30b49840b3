"""Correlation: the API request id travels in the job envelope (``correlation_id``) through SQS
into the worker's structured log line for that job and into its metric line, so one id ties a
request to the background work it caused."""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Iterator

from hibachi.observability import logger

from local.poller import sqs_record
from testkit.events import http_event
from tests.conftest import json_lines, load_function, new_id, receive_all


@contextlib.contextmanager
def structured_logs() -> Iterator[io.StringIO]:
    """The Powertools logger's JSON lines, exactly as they would reach CloudWatch."""
    handler = logger.registered_handler
    buffer = io.StringIO()
    previous = handler.setStream(buffer)
    try:
        yield buffer
    finally:
        handler.setStream(previous)


def test_request_id_reaches_the_worker_log_line_and_metrics_of_its_job(settings, context, sqs, capsys):
    cid = new_id("corr")
    request_id = "req-" + new_id()
    route = "POST /conversations/{conversation_id}/messages"
    event = http_event(
        "POST",
        f"/conversations/{cid}/messages",
        route_key=route,
        path_parameters={"conversation_id": cid},
        headers={"content-type": "application/json"},
        body=json.dumps({"role": "user", "content": "table for 8?", "emotion_score": 0.7}),
        claims={"sub": "t"},
        scopes=["messages:write", "staff"],
        request_id=request_id,
    )
    with structured_logs() as api_logs:
        assert load_function("store_message").lambda_handler(event, context)["statusCode"] == 201
    # every log line of the API request carries its id
    assert all(line.get("correlation_id") == request_id for line in json_lines(api_logs.getvalue()))

    messages = receive_all(sqs["client"], sqs["queue_url"])
    assert len(messages) == 1
    job = json.loads(messages[0]["Body"])
    assert job["correlation_id"] == request_id
    assert messages[0]["MessageAttributes"]["correlation_id"]["StringValue"] == request_id

    # the worker gets the message as Lambda's SQS event source builds it (local/poller.py)
    worker_event = {"Records": [sqs_record(messages[0], "arn:aws:sqs:us-east-1:123456789012:jobs", "us-east-1")]}
    capsys.readouterr()
    with structured_logs() as worker_logs:
        result = load_function("followup_worker").lambda_handler(worker_event, context)
    assert result == {"batchItemFailures": []}
    lines = json_lines(worker_logs.getvalue())
    processed = [line for line in lines if line.get("message") == "job processed"]
    assert len(processed) == 1
    line = processed[0]
    assert line["correlation_id"] == request_id
    assert line["job_id"] == job["id"] and line["job_type"] == "emotion_stats"
    assert line["message_id"] == messages[0]["MessageId"] and line["level"] == "INFO"
    assert line["function_request_id"] == context.aws_request_id  # and the worker's own invocation
    # the id is not left behind for the next record or invocation
    assert logger.get_correlation_id() is None

    metric_lines = [doc for doc in json_lines(capsys.readouterr().out) if doc.get("job_type") == "emotion_stats"]
    assert len(metric_lines) == 1 and request_id in metric_lines[0]["correlation_ids"]


def test_each_record_of_a_batch_logs_its_own_request_id(settings, context, sqs):
    ids = []
    for i in range(3):
        cid, rid = new_id("corr"), f"req-{i}-{new_id()}"
        ids.append(rid)
        route = "POST /conversations/{conversation_id}/messages"
        event = http_event(
            "POST",
            f"/conversations/{cid}/messages",
            route_key=route,
            path_parameters={"conversation_id": cid},
            headers={"content-type": "application/json"},
            body=json.dumps({"role": "user", "content": "hi", "emotion_score": 0.1 * i}),
            claims={"sub": "t"},
            scopes=["messages:write", "staff"],
            request_id=rid,
        )
        load_function("store_message").lambda_handler(event, context)
    messages = receive_all(sqs["client"], sqs["queue_url"])
    worker_event = {
        "Records": [sqs_record(m, "arn:aws:sqs:us-east-1:123456789012:jobs", "us-east-1") for m in messages]
    }
    with structured_logs() as worker_logs:
        load_function("followup_worker").lambda_handler(worker_event, context)
    processed = [line for line in json_lines(worker_logs.getvalue()) if line.get("message") == "job processed"]
    by_message = {line["message_id"]: line["correlation_id"] for line in processed}
    expected = {m["MessageId"]: json.loads(m["Body"])["correlation_id"] for m in messages}
    assert by_message == expected and sorted(expected.values()) == sorted(ids)
