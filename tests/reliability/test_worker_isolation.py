"""hibachi.worker.process_batch with set-based handlers that raise: a group that fails because of
one bad job is run job by job, so only the bad job is reported (and retried); a group that fails
because a dependency is down is reported whole, without hammering the dependency job by job."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from aws_lambda_powertools.utilities.batch.exceptions import BatchProcessingError
from hibachi import worker
from hibachi.errors import DatabaseUnavailable

from local.events import LambdaContext


def event(ids: list[str]) -> dict:
    records = []
    for n, job_id in enumerate(ids):
        body = {"type": "t", "id": job_id, "payload": {}, "enqueued_at": datetime.now(UTC).isoformat()}
        records.append(
            {
                "messageId": f"m{n}",
                "receiptHandle": f"r{n}",
                "body": json.dumps(body),
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": {},
                "eventSource": "aws:sqs",
                "eventSourceARN": "arn:aws:sqs:us-east-1:1:q",
                "awsRegion": "us-east-1",
            }
        )
    return {"Records": records}


def failed(result: dict) -> list[str]:
    return sorted(item["itemIdentifier"] for item in result["batchItemFailures"])


def test_one_bad_job_in_a_set_based_group_fails_alone(settings):
    calls: list[list[str]] = []

    def handler(batch):
        calls.append([j.id for j in batch])
        if any(j.id == "bad" for j in batch):
            raise ValueError("the statement rejects the bad job")
        return {j.id: None for j in batch}

    result = worker.process_batch(event(["a", "bad", "c"]), LambdaContext(function_name="w"), {"t": handler})
    assert failed(result) == ["m1"]
    assert calls == [["a", "bad", "c"], ["a"], ["bad"], ["c"]]


def test_a_dependency_down_fails_the_group_without_retrying_job_by_job(settings):
    calls: list[list[str]] = []

    def handler(batch):
        calls.append([j.id for j in batch])
        raise DatabaseUnavailable

    with pytest.raises(BatchProcessingError):  # every record failed: Powertools fails the invocation
        worker.process_batch(event(["a", "b", "c"]), LambdaContext(function_name="w"), {"t": handler})
    assert calls == [["a", "b", "c"]]
