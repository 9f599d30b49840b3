"""The local stack's pure logic: Lambda's batch item failure rules, SQS records, schedule due times,
API Gateway's response mapping, the run command's settings."""

from __future__ import annotations

import argparse
import base64
import json
from datetime import UTC, datetime

import pytest

from local.events import is_text
from local.gateway import lambda_result_to_response
from local.poller import failed_ids, record_of
from local.run import function_env
from local.scheduler import due_time

IDS = ["m1", "m2", "m3"]


@pytest.mark.parametrize("result", [None, {}, "", {"batchItemFailures": []}, {"batchItemFailures": None}, {"other": 1}])
def test_full_success_responses(result):
    assert failed_ids(result, IDS) == set()


def test_listed_failures_are_kept():
    assert failed_ids({"batchItemFailures": [{"itemIdentifier": "m2"}]}, IDS) == {"m2"}


@pytest.mark.parametrize(
    "result",
    [
        {"batchItemFailures": [{"itemIdentifier": ""}]},
        {"batchItemFailures": [{"itemIdentifier": None}]},
        {"batchItemFailures": [{"id": "m1"}]},
        {"batchItemFailures": [{"itemIdentifier": "not-in-batch"}]},
        {"batchItemFailures": "m1"},
        ["m1"],
        "garbage",
    ],
)
def test_invalid_responses_fail_the_whole_batch(result):
    assert failed_ids(result, IDS) is None


def test_sqs_record_from_a_received_message():
    message = {
        "MessageId": "id-1",
        "ReceiptHandle": "rh",
        "Body": '{"a":1}',
        "MD5OfBody": "md5",
        "MD5OfMessageAttributes": "md5a",
        "Attributes": {"ApproximateReceiveCount": "2", "SentTimestamp": "1700000000000"},
        "MessageAttributes": {
            "s": {"DataType": "String", "StringValue": "v"},
            "b": {"DataType": "Binary", "BinaryValue": b"\x00\x01"},
        },
    }
    record = record_of(message, "arn:aws:sqs:us-east-1:123456789012:jobs", "us-east-1")
    assert record == {
        "messageId": "id-1",
        "receiptHandle": "rh",
        "body": '{"a":1}',
        "attributes": {"ApproximateReceiveCount": "2", "SentTimestamp": "1700000000000"},
        "messageAttributes": {
            "s": {"stringValue": "v", "stringListValues": [], "binaryListValues": [], "dataType": "String"},
            "b": {
                "binaryValue": base64.b64encode(b"\x00\x01").decode(),
                "stringListValues": [],
                "binaryListValues": [],
                "dataType": "Binary",
            },
        },
        "md5OfBody": "md5",
        "md5OfMessageAttributes": "md5a",
        "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:jobs",
        "awsRegion": "us-east-1",
    }


def test_due_time_in_the_schedule_timezone():
    assert due_time("at(2026-07-04T18:30:00)", "America/Los_Angeles") == datetime(2026, 7, 5, 1, 30, tzinfo=UTC)
    assert due_time("at(2026-01-04T18:30:00)", "America/Los_Angeles") == datetime(2026, 1, 5, 2, 30, tzinfo=UTC)
    assert due_time("at(2026-01-04T18:30:00)", None) == datetime(2026, 1, 4, 18, 30, tzinfo=UTC)
    assert due_time("rate(5 minutes)", "UTC") is None
    assert due_time("cron(0 12 * * ? *)", "UTC") is None


def test_response_with_status_code():
    r = lambda_result_to_response(
        {
            "statusCode": 201,
            "headers": {"content-type": "application/json", "x-n": 5},
            "cookies": ["a=1", "b=2"],
            "multiValueHeaders": {"x-m": ["1", "2"]},
            "body": '{"ok":true}',
        }
    )
    assert r.status == 201 and r.body == b'{"ok":true}'
    assert ("set-cookie", "a=1") in r.headers and ("set-cookie", "b=2") in r.headers
    assert ("x-n", "5") in r.headers and ("x-m", "1") in r.headers and ("x-m", "2") in r.headers


def test_base64_response_is_decoded():
    r = lambda_result_to_response(
        {"statusCode": 200, "body": base64.b64encode(b"\xff\x00").decode(), "isBase64Encoded": True}
    )
    assert r.body == b"\xff\x00"


@pytest.mark.parametrize(
    ("result", "body"),
    [
        ("plain", b"plain"),
        ({"hello": "world"}, json.dumps({"hello": "world"}).encode()),
        ([1, 2], b"[1, 2]"),
        (None, b"null"),
    ],
)
def test_result_without_status_code_is_200_json(result, body):
    r = lambda_result_to_response(result)
    assert r.status == 200 and r.header("content-type") == "application/json" and r.body == body


@pytest.mark.parametrize(
    "result",
    [
        {"statusCode": "abc"},
        {"statusCode": 200, "body": {"not": "a string"}},
        {"statusCode": 99},
        {"statusCode": 200, "headers": "x"},
    ],
)
def test_malformed_response_is_500(result):
    r = lambda_result_to_response(result)
    assert r.status == 500 and json.loads(r.body) == {"message": "Internal Server Error"}


@pytest.mark.parametrize(
    ("ctype", "text"),
    [
        ("application/json", True),
        ("application/json; charset=utf-8", True),
        ("text/plain", True),
        ("application/vnd.api+json", True),
        ("application/xml", True),
        (None, True),
        ("application/octet-stream", False),
        ("image/png", False),
        ("multipart/form-data; boundary=x", False),
        ("application/x-www-form-urlencoded", False),
    ],
)
def test_text_content_types(ctype, text):
    assert is_text(ctype) is text


def test_run_passes_function_settings_through():
    args = argparse.Namespace(followup_delay_hours=0.01, followup_demo_seconds=20, env=["CHEF_COUNT=1", "EXTRA=a=b"])
    env = function_env(
        args,
        {
            "MIN_LEAD_HOURS": "0",
            "POWERTOOLS_LOG_LEVEL": "DEBUG",
            "HOME": "/root",
            "CHEF_COUNT": "5",
            "AWS_PROFILE": "prod",
        },
    )
    assert env == {
        "MIN_LEAD_HOURS": "0",
        "POWERTOOLS_LOG_LEVEL": "DEBUG",
        "CHEF_COUNT": "1",
        "FOLLOWUP_DELAY_HOURS": "0.01",
        "FOLLOWUP_DEMO_DELAY_SECONDS": "20",
        "EXTRA": "a=b",
    }
    with pytest.raises(SystemExit):
        function_env(argparse.Namespace(followup_delay_hours=None, followup_demo_seconds=None, env=["NOEQUALS"]), {})


def test_openapi_is_rebuilt_until_every_function_answers():
    from pathlib import Path

    from local.gateway import Gateway
    from local.routes import load_app

    app = load_app(Path(__file__).resolve().parents[1] / "http" / "fixtures" / "template.yaml")

    class Pool:
        calls = 0

        def openapi(self):
            Pool.calls += 1
            if Pool.calls == 1:
                raise RuntimeError("handler not written yet")
            return json.dumps(
                {
                    "openapi": "3.1.0",
                    "paths": {"/health": {"get": {"responses": {}}}},
                    "components": {"schemas": {"Thing": {"type": "object"}}},
                }
            )

    class Registry:
        def pool(self, _):
            return Pool()

    gw = Gateway(app, Registry(), authority=object(), port=0)
    first = gw.openapi()
    assert first["x-local-failed-functions"] == ["EchoFunction"]
    assert first["paths"]["/health"]["get"]["x-local-stub"] is True
    second = gw.openapi()
    assert "x-local-failed-functions" not in second and second["components"]["schemas"] == {"Thing": {"type": "object"}}
    assert second["paths"]["/health"]["get"]["security"] == []
    assert gw.openapi() is second and Pool.calls == 2  # kept once complete
    assert gw.openapi(refresh=True) is not second and Pool.calls == 3
