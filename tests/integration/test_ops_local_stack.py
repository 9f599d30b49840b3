"""The issue's "done when", end to end on the local stack (template.yaml's functions in worker
processes, the gateway with the JWT authorizer, moto's SQS with the DLQ after 5 receives, the SQS
poller) over a dedicated embedded PostgreSQL that the test stops and starts:

a job whose processing fails (the database is down) ends in the DLQ after maxReceiveCount, shows in
/health/details, and once the cause is fixed ``python -m ops dlq redrive`` brings it back and it is
processed; the request's id is in the worker's log lines for that job. Waiting is polling with a
deadline, never a fixed sleep.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from local.stack import LocalStack, wait_until
from ops import cli
from tests.support.common import dedicated_postgres, json_lines, new_id

OPS_PG_PORT = int(os.environ.get("TEST_OPS_PG_PORT", "54342"))
PREFIX = "opse2e"


@pytest.fixture(scope="module")
def ops_pg() -> Iterator[tuple[object, str]]:
    with dedicated_postgres("ops", OPS_PG_PORT) as server:
        yield server


@pytest.fixture
def stack(ops_pg, tmp_path) -> Iterator[LocalStack]:
    _, url = ops_pg
    # moto keeps its state per process, whatever the server: queue names of our own
    with LocalStack(
        database_url=url,
        key_dir=tmp_path / "jwt",
        visibility_timeout=0,
        max_workers=1,
        enable_reconciler=False,
        enable_scheduler=False,
        resource_prefix=PREFIX,
    ) as s:
        yield s


def http(
    stack: LocalStack, method: str, path: str, *, scopes: list[str] | None = None, body: dict | None = None
) -> tuple[int, dict, dict]:
    headers = {"content-type": "application/json", **(stack.auth_headers(scopes) if scopes else {})}
    request = urllib.request.Request(
        stack.url + path, method=method, headers=headers, data=json.dumps(body).encode() if body is not None else None
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read() or b"{}"), dict(response.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}"), dict(exc.headers)


def ops(stack: LocalStack, database_url: str, *command: str) -> tuple[int, object]:
    """The CLI in process; its output apart from the workers' (which capfd keeps for the end)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli.main(
            [
                "--local",
                "--endpoint-url",
                stack.endpoint_url,
                "--database-url",
                database_url,
                "--prefix",
                PREFIX,
                "--json",
                *command,
            ]
        )
    return code, json.loads(out.getvalue())


def test_poison_job_dead_letters_shows_in_details_and_redrive_brings_it_back(stack, ops_pg, capfd):
    pg, url = ops_pg
    cid = new_id("poison")
    scopes = ["messages:write", "conversations:read", "staff"]

    # a message whose emotion job the worker will fail on: the job is queued while the poller is
    # paused, then the database goes away
    stack.poller.stop()
    status, _, headers = http(
        stack,
        "POST",
        f"/conversations/{cid}/messages",
        scopes=scopes,
        body={"role": "user", "content": "is anyone there?", "emotion_score": -0.5},
    )
    assert status == 201
    request_id = headers["apigw-requestid"]
    pg.stop()
    try:
        stack.poller.start()
        wait_until(
            lambda: stack.queue_depth("jobs_dlq")["visible"] == 1,
            timeout=60,
            message="the job is dead-lettered after 5 failed receives",
        )
        assert stack.queue_depth("jobs") == {"visible": 0, "in_flight": 0, "delayed": 0}
        status, body, _ = http(stack, "GET", "/health")
        assert status == 503 and body["failing"] == ["database"]
    finally:
        pg.start()  # the cause is fixed

    status, details, _ = wait_until(
        lambda: (lambda r: r if r[0] == 200 else None)(http(stack, "GET", "/health/details", scopes=["ops:read"])),
        timeout=30,
        message="details answer 200",
    )
    assert details["queues"]["jobs_dlq"]["visible"] == 1
    assert details["emotion_stats_behind"] >= 1
    assert http(stack, "GET", "/health/details", scopes=["conversations:read"])[0] == 403

    code, listed = ops(stack, url, "dlq", "list")
    assert code == 0 and len(listed) == 1
    assert listed[0]["correlation_id"] == request_id and listed[0]["job_type"] == "emotion_stats"
    assert listed[0]["receive_count"] >= 6

    code, result = ops(stack, url, "dlq", "redrive", "--all")
    assert code == 0 and result["moved"] == [listed[0]["message_id"]]
    stack.drain(timeout=30)

    assert stack.queue_depth("jobs_dlq")["visible"] == 0
    status, conversation, _ = http(stack, "GET", f"/conversations/{cid}", scopes=scopes)
    assert status == 200 and conversation["avg_emotion"] == -0.5 and conversation["emotion_count"] == 1
    status, details, _ = http(stack, "GET", "/health/details", scopes=["ops:read"])
    assert status == 200 and details["queues"]["jobs_dlq"]["visible"] == 0

    # one id ties it together: the worker's log lines for this job carry the request's id
    # (and the metric lines: the API's, and the worker's for the batch that processed it)
    docs = json_lines(capfd.readouterr().out)
    lines = [d for d in docs if "message" in d and d.get("correlation_id") == request_id]
    failed = [line for line in lines if line["message"] == "job failed"]
    processed = [line for line in lines if line["message"] == "job processed"]
    assert len(failed) >= 5, "every failed receive is logged with the request id"
    assert len(processed) == 1 and processed[0]["job_type"] == "emotion_stats"
    assert processed[0]["function_name"] == "FollowupWorkerFunction"
    assert [d for d in docs if "_aws" in d and d.get("correlation_id") == request_id and "StoreMessageLatency" in d]
    assert [
        d
        for d in docs
        if "_aws" in d and request_id in d.get("correlation_ids", []) and d.get("JobsProcessed") == [1.0]
    ]
