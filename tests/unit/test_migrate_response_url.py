"""The migration custom resource PUTs its result only to a pre-signed HTTPS S3 URL (CloudFormation's
ResponseURL); an event naming any other address gets no request from it."""

from __future__ import annotations

import pytest

from testkit.functions import load_function

SIGNED = "?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Date=20261203T000000Z&X-Amz-Signature=abc123"
GOOD = [
    "https://cloudformation-custom-resource-response-useast1.s3.amazonaws.com/arn%3Aaws/stack/id" + SIGNED,
    "https://cloudformation-custom-resource-response-euwest1.s3.eu-west-1.amazonaws.com/x" + SIGNED,
    "https://cloudformation-custom-resource-response-uswest2.s3-us-west-2.amazonaws.com/x?Signature=abc&Expires=1",
    "https://cloudformation-custom-resource-response-cnnorth1.s3.cn-north-1.amazonaws.com.cn/x" + SIGNED,
]
BAD = [
    "http://cloudformation-custom-resource-response-useast1.s3.amazonaws.com/x" + SIGNED,  # not TLS
    "https://cloudformation-custom-resource-response-useast1.s3.amazonaws.com/x",  # not pre-signed
    "https://evil.example/x" + SIGNED,
    "https://s3.amazonaws.com.evil.example/x" + SIGNED,
    "https://bucket.s3.amazonaws.com:8443/x" + SIGNED,
    "https://user@bucket.s3.amazonaws.com/x" + SIGNED,
    "https://169.254.169.254/latest/meta-data" + SIGNED,
    "file:///etc/passwd",
    "",
    None,
    42,
]


@pytest.mark.parametrize("url", GOOD)
def test_a_pre_signed_https_s3_url_is_accepted(url):
    assert load_function("migrate").response_url_ok(url)


@pytest.mark.parametrize("url", BAD)
def test_anything_else_is_refused(url):
    assert not load_function("migrate").response_url_ok(url)


def test_a_forged_event_gets_no_request(monkeypatch):
    migrate = load_function("migrate")
    sent: list[object] = []
    monkeypatch.setattr(migrate, "_respond", lambda *args, **kwargs: sent.append(args))
    event = {"RequestType": "Delete", "ResponseURL": "https://evil.example/x" + SIGNED, "StackId": "s"}
    event |= {"RequestId": "r", "LogicalResourceId": "Migrations"}

    class Context:
        function_name, memory_limit_in_mb, aws_request_id, log_stream_name = "migrate", 512, "req", "stream"
        invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:migrate"

    assert migrate.lambda_handler(event, Context())["Status"] == "SUCCESS"
    assert sent == []
    event["ResponseURL"] = GOOD[0]
    migrate.lambda_handler(event, Context())
    assert len(sent) == 1
