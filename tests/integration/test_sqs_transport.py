"""``hibachi.sqs``'s HTTP/1.1 exchange (``http.client``): one kept-alive connection per thread,
answers read by Content-Length or chunks, a server-closed connection reopened, retries and error
codes, a custom endpoint's path, the call's time budget; ``hibachi.jobs``' pause after a failed
send; and a real send through moto's server."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from hibachi import jobs, sqs
from hibachi.settings import Settings
from hibachi.sigv4 import resolve_credentials, sign

from tests.support.common import receive_all

Reply = Callable[[BaseHTTPRequestHandler, bytes], None]


class _Server:
    """A local HTTP/1.1 server that answers each request with the next scripted reply."""

    def __init__(self) -> None:
        self.replies: list[Reply] = []
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self.paths: list[str] = []
        self.connections = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                super().setup()
                server.connections += 1

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                server.requests.append(({k.lower(): v for k, v in self.headers.items()}, body))
                server.paths.append(self.path)
                server.replies.pop(0)(self, body)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def json_reply(status: int, doc: dict[str, Any], headers: dict[str, str] | None = None, close: bool = False) -> Reply:
    def reply(handler: BaseHTTPRequestHandler, _body: bytes) -> None:
        data = json.dumps(doc).encode()
        handler.send_response(status)
        for name, value in {"Content-Type": sqs.CONTENT_TYPE, **(headers or {})}.items():
            handler.send_header(name, value)
        handler.send_header("Content-Length", str(len(data)))
        if close:
            handler.send_header("Connection", "close")
            handler.close_connection = True
        handler.end_headers()
        handler.wfile.write(data)

    return reply


def chunked_reply(doc: dict[str, Any]) -> Reply:
    def reply(handler: BaseHTTPRequestHandler, _body: bytes) -> None:
        data = json.dumps(doc).encode()
        handler.send_response(200)
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        for part in (data[:7], data[7:]):
            handler.wfile.write(f"{len(part):x}\r\n".encode() + part + b"\r\n")
        handler.wfile.write(b"0\r\n\r\n")

    return reply


@pytest.fixture
def server() -> Iterator[_Server]:
    found = _Server()
    yield found
    found.stop()


def test_calls_share_one_kept_alive_connection_and_are_signed(server):
    server.replies = [json_reply(200, {"MessageId": "m1"}), json_reply(200, {"MessageId": "m2"})]
    client = sqs.Sqs("us-east-1", server.url)
    assert client.send_message("q", {"MessageBody": "ä"}) == {"MessageId": "m1"}
    assert client.send_message("q", {"MessageBody": "b"}) == {"MessageId": "m2"}
    assert server.connections == 1
    headers, body = server.requests[0]
    assert json.loads(body) == {"QueueUrl": "q", "MessageBody": "ä"}
    assert headers["host"] == server.url.removeprefix("http://")
    assert headers["x-amz-target"] == "AmazonSQS.SendMessage"
    assert headers["content-type"] == sqs.CONTENT_TYPE
    # the signature is the signer's over exactly what was sent
    sent = {k: v for k, v in headers.items() if k in ("host", "content-type", "x-amz-target")}
    when = datetime.strptime(headers["x-amz-date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    expected = sign("POST", f"{server.url}/", sent, body, resolve_credentials(), "sqs", "us-east-1", when)
    assert headers["authorization"] == expected["Authorization"]
    client.close()


def test_a_chunked_answer_is_read(server):
    server.replies = [chunked_reply({"Attributes": {"ApproximateNumberOfMessages": "3"}})]
    client = sqs.Sqs("us-east-1", server.url)
    assert client.get_queue_attributes("q", ["ApproximateNumberOfMessages"]) == {"ApproximateNumberOfMessages": "3"}
    server.replies = [json_reply(200, {})]
    client.send_message("q", {"MessageBody": "x"})  # the connection is still usable after the chunks
    assert server.connections == 1
    client.close()


def test_a_connection_the_server_closed_is_reopened(server):
    server.replies = [json_reply(200, {"MessageId": "m1"}, close=True), json_reply(200, {"MessageId": "m2"})]
    client = sqs.Sqs("us-east-1", server.url)
    client.send_message("q", {"MessageBody": "a"})
    assert client.send_message("q", {"MessageBody": "b"}) == {"MessageId": "m2"}
    assert server.connections == 2
    client.close()


def test_a_5xx_is_retried_and_a_4xx_is_an_error_with_its_code(server):
    server.replies = [json_reply(500, {"__type": "InternalError"}), json_reply(200, {"MessageId": "m2"})]
    client = sqs.Sqs("us-east-1", server.url, attempts=2)
    assert client.send_message("q", {"MessageBody": "a"}) == {"MessageId": "m2"}
    server.replies = [
        json_reply(
            400,
            {"__type": "com.amazonaws.sqs#QueueDoesNotExist", "message": "no queue"},
            {"x-amzn-query-error": "AWS.SimpleQueueService.NonExistentQueue;Sender"},
        )
    ]
    with pytest.raises(sqs.SqsError) as err:
        client.send_message("q", {"MessageBody": "b"})
    assert (err.value.code, err.value.status, err.value.message) == (
        "AWS.SimpleQueueService.NonExistentQueue",
        400,
        "no queue",
    )
    client.close()


def test_a_server_that_never_answers_is_a_transport_error_after_the_read_timeout(server):
    def silent(handler: BaseHTTPRequestHandler, _body: bytes) -> None:
        threading.Event().wait(1.0)

    server.replies = [silent, silent]
    client = sqs.Sqs("us-east-1", server.url, read_timeout=0.2, attempts=2)
    with pytest.raises(sqs.SqsError) as err:
        client.send_message("q", {"MessageBody": "a"})
    assert err.value.code == "" and err.value.status is None
    client.close()


def test_a_custom_endpoints_path_is_posted_to_and_signed(server):
    """``AWS_ENDPOINT_URL=https://gateway/prefix``: botocore posts to ``/prefix`` and signs that path."""
    server.replies = [json_reply(200, {"MessageId": "m1"})]
    client = sqs.Sqs("us-east-1", f"{server.url}/sqs-gateway")
    assert client.send_message("q", {"MessageBody": "a"}) == {"MessageId": "m1"}
    assert server.paths == ["/sqs-gateway"]
    headers, body = server.requests[0]
    sent = {k: v for k, v in headers.items() if k in ("host", "content-type", "x-amz-target")}
    when = datetime.strptime(headers["x-amz-date"], "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC)
    url = f"{server.url}/sqs-gateway"
    expected = sign("POST", url, sent, body, resolve_credentials(), "sqs", "us-east-1", when)
    assert headers["authorization"] == expected["Authorization"]
    client.close()


def test_a_hanging_server_costs_the_calls_budget_not_its_timeouts(server):
    """Two attempts of a 5 s read timeout would hold the caller 10 s; the budget ends the call."""
    answered = threading.Event()

    def silent(handler: BaseHTTPRequestHandler, _body: bytes) -> None:
        answered.wait(5.0)

    server.replies = [silent, silent]
    client = sqs.Sqs("us-east-1", server.url, read_timeout=5.0, attempts=2, budget=0.15)
    start = time.monotonic()
    with pytest.raises(sqs.SqsError) as err:
        client.send_message("q", {"MessageBody": "a"})
    assert time.monotonic() - start < 2.0
    assert err.value.code == ""
    answered.set()
    client.close()


def test_after_a_failed_send_the_queue_leaves_jobs_to_the_reconciler_for_the_pause(server):
    settings = Settings(aws_endpoint_url=server.url, jobs_queue_url=f"{server.url}/1/jobs", jobs_send_pause_seconds=0.5)
    queue = jobs.JobQueue(settings)
    job = jobs.Job.new(jobs.EMOTION_STATS, "emotion_stats:c:1", {"conversation_id": "c"}, "corr-1")
    server.replies = [json_reply(500, {"__type": "InternalError"})] * 2
    assert not queue.send(job)  # both attempts failed: the pause starts
    assert len(server.requests) == 2
    assert not queue.send(job) and queue.send_many([job] * 12) == [job] * 12  # skipped: SQS not asked
    assert len(server.requests) == 2
    deadline = time.monotonic() + 5
    while queue.paused_until > time.monotonic() and time.monotonic() < deadline:
        time.sleep(0.05)
    server.replies = [json_reply(200, {"MessageId": "m1"})]
    assert queue.send(job)  # the pause is over: SQS is tried again
    assert len(server.requests) == 3
    queue.client.close()


def test_a_job_sent_through_moto_arrives(sqs):
    from hibachi import sqs as sqs_module

    job = jobs.Job.new(jobs.EMOTION_STATS, "emotion_stats:c:1", {"conversation_id": "c"}, "corr-1")
    queue = jobs.get_queue()
    assert queue.send(job)
    assert queue.send(job)  # on the same connection, or a reopened one (moto's server closes each)
    got = receive_all(sqs["client"], sqs["queue_url"])
    assert [jobs.parse_job(m["Body"]) for m in got] == [job, job]
    assert got[0]["MessageAttributes"]["job_type"]["StringValue"] == jobs.EMOTION_STATS
    sqs_module.close_all()


def test_the_bench_moto_keeps_connections_alive_as_sqs_does(monkeypatch):
    """``MotoServer(keep_alive=True)`` (the bench's): moto's application under waitress keeps each
    connection open like an AWS endpoint, so the bench's send CPU holds no TCP connect per call
    (werkzeug's server, the tests' and the local stack's, closes every connection). Our client
    and boto3 both get correct answers on kept-alive connections, bodies of any size included."""
    import socket

    from local.aws import Moto

    moto = Moto("keepalive", process=True, keep_alive=True).start()
    try:
        connects = []
        real_connect = socket.create_connection

        def counting(*args: Any, **kwargs: Any) -> socket.socket:
            connects.append(args[0])
            return real_connect(*args, **kwargs)

        monkeypatch.setattr(socket, "create_connection", counting)
        client = sqs.Sqs("us-east-1", moto.endpoint_url)
        url = moto.resources.jobs_queue_url
        bodies = [json.dumps({"n": n, "pad": "x" * (n * 700)}) for n in range(12)]  # up to ~8 KB
        for body in bodies:
            assert client.send_message(url, {"MessageBody": body})["MessageId"]
        assert len(connects) == 1
        client.close()
        got = receive_all(moto.client("sqs"), url)
        assert sorted(m["Body"] for m in got) == sorted(bodies)
    finally:
        moto.stop()
