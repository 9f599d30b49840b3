"""``hibachi.sigv4`` against botocore, byte for byte: the Authorization header (``SigV4Auth``) of
randomized requests, and the RDS IAM token (``generate_db_auth_token``, ``SigV4QueryAuth``)."""

from __future__ import annotations

import random
import string
from datetime import UTC, datetime, timedelta
from unittest import mock

import boto3
import botocore.auth
import pytest
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotoCredentials
from hibachi import sigv4

SEED = 20261203
HEADER_NAMES = [
    "Content-Type",
    "X-Amz-Target",
    "x-amz-json-version",
    "X-Custom-Header",
    "Accept",
    "Accept-Encoding",
    "Content-Encoding",
    "X-Amz-Meta-Name",
    "User-Agent",  # never signed
    "X-Amzn-Trace-Id",  # never signed
    "Connection",  # never signed
    "x-amz-content-sha256",  # taken as the payload hash when present
    "Host",
    "Idempotency-Key",
]
TEXT = string.ascii_letters + string.digits + " -_.~:/,;=+*!'()@$" + "\t  "
UNICODE = "äöüßéèñçøåÆœ€£¥日本語中文한국어🙂🍣🔥ﬁ\u00a0"


def _text(rng: random.Random, n: int, alphabet: str = TEXT) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def _random_request(rng: random.Random) -> tuple[str, str, dict[str, str], bytes]:
    method = rng.choice(["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "post"])
    scheme = rng.choice(["https", "http"])
    host = rng.choice(["sqs.us-east-1.amazonaws.com", "SQS.eu-west-1.AmazonAWS.com", "127.0.0.1", "localhost"])
    port = rng.choice(["", ":443", ":80", ":5055", ":8443"])
    path = rng.choice(
        [
            "",
            "/",
            "/123456789012/jobs",
            "/a//b/./c/../d/",
            "/with space/and%20encoded",
            "/unicodé/日本",
            "/~user/a-b_c.d",
            "/trailing/",
        ]
    )
    query = rng.choice(["", "", "Action=SendMessage&Version=2012-11-05", "b=2&a=1&a=0", "k=v%20w&empty=&flag"])
    url = f"{scheme}://{host}{port}{path}" + (f"?{query}" if query else "")
    headers: dict[str, str] = {}
    for name in rng.sample(HEADER_NAMES, rng.randint(0, len(HEADER_NAMES))):
        if name.lower() == "x-amz-content-sha256":
            value = rng.choice(["UNSIGNED-PAYLOAD", sigv4.EMPTY_SHA256])
        elif name.lower() == "host":
            value = rng.choice(["example.com", "sqs.us-east-1.amazonaws.com:443"])
        else:
            value = _text(rng, rng.randint(0, 40))
        headers[name] = value
    kind = rng.choice(["empty", "ascii", "unicode", "json", "binary"])
    body = {
        "empty": b"",
        "ascii": _text(rng, rng.randint(1, 500)).encode(),
        "unicode": _text(rng, rng.randint(1, 300), TEXT + UNICODE).encode("utf-8"),
        "json": ('{"QueueUrl":"q","MessageBody":"' + _text(rng, 50, TEXT + UNICODE) + '"}').encode("utf-8"),
        "binary": bytes(rng.randrange(256) for _ in range(rng.randint(1, 200))),
    }[kind]
    return method, url, headers, body


def _random_credentials(rng: random.Random) -> sigv4.Credentials:
    token = rng.choice([None, "", _text(rng, rng.randint(20, 400), string.ascii_letters + string.digits + "/+=")])
    return sigv4.Credentials(
        "AKIA" + _text(rng, 16, string.ascii_uppercase + string.digits),
        _text(rng, 40, string.ascii_letters + string.digits + "/+"),
        token,
    )


def _botocore_headers(method, url, headers, body, creds, service, region, now) -> dict[str, str]:
    request = AWSRequest(method=method, url=url, headers=dict(headers), data=body)
    auth = botocore.auth.SigV4Auth(BotoCredentials(creds.access_key, creds.secret_key, creds.token), service, region)
    with mock.patch.object(botocore.auth, "get_current_datetime", return_value=now.replace(tzinfo=None)):
        auth.add_auth(request)
    return dict(request.headers.items())


@pytest.mark.parametrize("case", range(400))
def test_authorization_header_equals_botocore(case):
    rng = random.Random(SEED + case)
    method, url, headers, body = _random_request(rng)
    creds = _random_credentials(rng)
    service = rng.choice(["sqs", "sns", "execute-api", "rds-db"])
    region = rng.choice(["us-east-1", "eu-central-1", "ap-southeast-2"])
    now = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=rng.randrange(10**9))

    ours = sigv4.sign(method, url, headers, body, creds, service, region, now)
    theirs = _botocore_headers(method, url, headers, body, creds, service, region, now)

    assert ours["Authorization"] == theirs["Authorization"]
    assert ours["X-Amz-Date"] == theirs["X-Amz-Date"]
    assert ours.get("X-Amz-Security-Token") == theirs.get("X-Amz-Security-Token")
    assert {k.lower(): v for k, v in ours.items()} == {k.lower(): v for k, v in theirs.items()}


def test_the_sqs_request_as_sent_equals_botocore():
    """The exact header set ``hibachi.sqs`` sends, with a non-ASCII body and a session token."""
    creds = sigv4.Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "FwoGZXIvYXdzEXAMPLE//token=")
    body = '{"QueueUrl":"https://sqs.us-east-1.amazonaws.com/1/jobs","MessageBody":"Grüße 🍣"}'.encode()
    headers = {"Content-Type": "application/x-amz-json-1.0", "X-Amz-Target": "AmazonSQS.SendMessage"}
    now = datetime(2026, 12, 3, 8, 30, 0, tzinfo=UTC)
    url = "https://sqs.us-east-1.amazonaws.com/"
    ours = sigv4.sign("POST", url, headers, body, creds, "sqs", "us-east-1", now)
    theirs = _botocore_headers("POST", url, headers, body, creds, "sqs", "us-east-1", now)
    assert ours == theirs


@pytest.mark.parametrize("case", range(100))
def test_rds_auth_token_equals_botocore(case):
    rng = random.Random(SEED * 7 + case)
    creds = _random_credentials(rng)
    host = rng.choice(["proxy.proxy-abc.us-east-1.rds.amazonaws.com", "db.example.internal", "10.0.0.1"])
    port = rng.choice([5432, 443, 6543])
    user = rng.choice(["hibachi_app", "app user", "ünï", "a+b/c=d", "user@example.com"])
    region = rng.choice(["us-east-1", "eu-west-2"])
    now = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=rng.randrange(10**9))

    client = boto3.client(
        "rds",
        region_name=region,
        aws_access_key_id=creds.access_key,
        aws_secret_access_key=creds.secret_key,
        aws_session_token=creds.token,
    )
    with mock.patch.object(botocore.auth, "get_current_datetime", return_value=now.replace(tzinfo=None)):
        theirs = client.generate_db_auth_token(DBHostname=host, Port=port, DBUsername=user, Region=region)
    assert sigv4.rds_auth_token(host, port, user, region, creds, now) == theirs


def test_credentials_come_from_the_environment_each_time():
    env = {"AWS_ACCESS_KEY_ID": "A", "AWS_SECRET_ACCESS_KEY": "S", "AWS_SESSION_TOKEN": "T"}
    assert sigv4.credentials_from_env(env) == sigv4.Credentials("A", "S", "T")
    assert sigv4.credentials_from_env({**env, "AWS_SESSION_TOKEN": ""}) == sigv4.Credentials("A", "S", None)
    assert sigv4.credentials_from_env({"AWS_ACCESS_KEY_ID": "A"}) is None
