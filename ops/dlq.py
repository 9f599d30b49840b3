"""Dead-letter queue handling on plain SQS calls: peek (list/show without consuming), redrive by
receive-and-resend (body and message attributes preserved, then delete), and the SQS message move
task where AWS offers it.

Peeking receives messages with a visibility timeout (so one scan sees each message once) and then
makes them visible again; it raises their ``ApproximateReceiveCount``, which a DLQ does not act on.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from local.aws import BotoClient

HOLD_SECONDS = 60  # how long a scanned message stays hidden while we look at the others
_ATTRIBUTE_KEYS = ("DataType", "StringValue", "BinaryValue")


def _receive(sqs: BotoClient, url: str, hold: int, wait: int) -> list[dict[str, Any]]:
    return (
        sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=10,
            VisibilityTimeout=hold,
            WaitTimeSeconds=wait,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        ).get("Messages")
        or []
    )


def _release(sqs: BotoClient, url: str, messages: Iterable[dict[str, Any]]) -> None:
    batch = list(messages)
    for start in range(0, len(batch), 10):
        chunk = batch[start : start + 10]
        sqs.change_message_visibility_batch(
            QueueUrl=url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0} for i, m in enumerate(chunk)
            ],
        )


def scan(
    sqs: BotoClient,
    url: str,
    *,
    limit: int = 1000,
    stop: Callable[[dict[str, Any]], bool] | None = None,
    hold: int = HOLD_SECONDS,
) -> list[dict[str, Any]]:
    """Receive up to ``limit`` distinct messages (hidden for ``hold`` s), stopping early once
    ``stop(message)`` is true. The caller releases or deletes them."""
    seen: dict[str, dict[str, Any]] = {}
    empty_rounds = 0
    while len(seen) < limit and empty_rounds < 2:  # short polls may miss messages: two empty rounds end it
        batch = _receive(sqs, url, hold, wait=1 if empty_rounds else 0)
        new = [m for m in batch if m["MessageId"] not in seen]
        if not new:
            empty_rounds += 1
            continue
        empty_rounds = 0
        for message in new:
            seen[message["MessageId"]] = message
        if stop is not None and any(stop(m) for m in new):
            break
    return list(seen.values())


def job_of(message: dict[str, Any]) -> dict[str, Any] | None:
    """The job envelope in a message body, or None when the body is not one."""
    try:
        body = json.loads(message.get("Body") or "")
    except ValueError:
        return None
    if isinstance(body, dict) and isinstance(body.get("type"), str) and "id" in body and "enqueued_at" in body:
        return body
    return None


def matches(message: dict[str, Any], ident: str) -> bool:
    """``ident`` is the SQS message id or the job id."""
    job = job_of(message)
    return message["MessageId"] == ident or (job is not None and str(job.get("id")) == ident)


def summary(message: dict[str, Any]) -> dict[str, Any]:
    attrs = message.get("Attributes") or {}
    job = job_of(message) or {}
    sent = attrs.get("SentTimestamp")
    return {
        "message_id": message["MessageId"],
        "job_type": job.get("type"),
        "job_id": job.get("id"),
        "correlation_id": job.get("correlation_id"),
        "enqueued_at": job.get("enqueued_at"),
        "sent_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(sent) / 1000)) if sent else None,
        "receive_count": int(attrs.get("ApproximateReceiveCount", 0)),
        "error": (message.get("MessageAttributes") or {}).get("ERROR_CODE", {}).get("StringValue"),
    }


def peek(sqs: BotoClient, url: str, *, limit: int = 100) -> list[dict[str, Any]]:
    messages = scan(sqs, url, limit=limit)
    _release(sqs, url, messages)
    return messages


def find(sqs: BotoClient, url: str, ident: str) -> dict[str, Any] | None:
    messages = scan(sqs, url, stop=lambda m: matches(m, ident))
    _release(sqs, url, messages)
    return next((m for m in messages if matches(m, ident)), None)


def _attributes(message: dict[str, Any]) -> dict[str, Any]:
    """Message attributes as ``SendMessage`` takes them (the reserved list fields dropped)."""
    return {
        name: {k: v for k, v in value.items() if k in _ATTRIBUTE_KEYS}
        for name, value in (message.get("MessageAttributes") or {}).items()
    }


def resend(
    sqs: BotoClient,
    source_url: str,
    target_url: str,
    *,
    select: Callable[[dict[str, Any]], bool] | None = None,
    stop: Callable[[], bool] | None = None,
    limit: int = 10_000,
) -> dict[str, Any]:
    """Move the selected messages of ``source_url`` to ``target_url``: send (same body, same message
    attributes) then delete. Returns ``{"moved": [...ids], "skipped": [...ids], "failed": [...]}``.

    ``stop()`` true ends the scan early (every wanted message found). Send before delete: a crash
    in between leaves a duplicate, never a loss (jobs are idempotent).
    """
    wanted = select or (lambda _message: True)
    done = stop or (lambda: False)
    moved: list[str] = []
    failed: list[dict[str, Any]] = []
    kept: list[dict[str, Any]] = []
    seen: set[str] = set()
    empty_rounds = 0
    try:
        while len(moved) < limit and empty_rounds < 2:
            received = _receive(sqs, source_url, HOLD_SECONDS, wait=1 if empty_rounds else 0)
            batch, chosen, rest = _pick(received, seen, wanted, limit - len(moved))
            empty_rounds = 0 if batch else empty_rounds + 1
            kept += rest
            if chosen:
                moved += _move(sqs, source_url, target_url, chosen, failed, kept)
            if batch and done():
                break
    finally:
        _release(sqs, source_url, kept)
    not_sent = {f["message_id"] for f in failed}
    return {
        "moved": moved,
        "skipped": [m["MessageId"] for m in kept if m["MessageId"] not in not_sent],
        "failed": failed,
    }


def _pick(
    received: list[dict[str, Any]], seen: set[str], wanted: Callable[[dict[str, Any]], bool], room: int
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """Of ``received``, the messages not ``seen`` before (now seen), those of them to move (at most
    ``room``) and the rest."""
    batch = [m for m in received if m["MessageId"] not in seen]
    seen.update(m["MessageId"] for m in batch)
    chosen = [m for m in batch if wanted(m)][: max(0, room)]
    return batch, chosen, [m for m in batch if m not in chosen]


def _move(
    sqs: BotoClient,
    source_url: str,
    target_url: str,
    chosen: list[dict[str, Any]],
    failed: list[dict[str, Any]],
    kept: list[dict[str, Any]],
) -> list[str]:
    """Send ``chosen`` to ``target_url``, then delete what was sent from ``source_url``; the ids
    moved. A failed send goes to ``failed``, its message to ``kept`` (released later)."""
    entries = []
    for i, m in enumerate(chosen):
        entry = {"Id": str(i), "MessageBody": m["Body"]}
        if m.get("MessageAttributes"):
            entry["MessageAttributes"] = _attributes(m)
        entries.append(entry)
    response = sqs.send_message_batch(QueueUrl=target_url, Entries=entries)
    sent = [chosen[int(item["Id"])] for item in response.get("Successful", [])]
    for item in response.get("Failed", []):
        m = chosen[int(item["Id"])]
        failed.append({"message_id": m["MessageId"], "error": item.get("Message") or item.get("Code")})
        kept.append(m)
    if sent:
        sqs.delete_message_batch(
            QueueUrl=source_url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(sent)],
        )
    return [m["MessageId"] for m in sent]


class Only:
    """A ``select`` for :func:`resend` that takes the messages named by ``idents`` and knows when
    it has found them all (so the scan can stop early)."""

    def __init__(self, idents: Iterable[str]):
        self.wanted = set(idents)
        self.found: set[str] = set()

    def __call__(self, message: dict[str, Any]) -> bool:
        for ident in self.wanted - self.found:
            if matches(message, ident):
                self.found.add(ident)
                return True
        return False

    def done(self) -> bool:
        return self.found == self.wanted


def start_move_task(sqs: BotoClient, source_arn: str, target_arn: str | None) -> dict[str, Any]:
    """SQS's own redrive (``StartMessageMoveTask``): every message of a DLQ back to its source queue
    (or ``target_arn``), asynchronously. Only for DLQs of SQS queues."""
    kwargs: dict[str, Any] = {"SourceArn": source_arn}
    if target_arn:
        kwargs["DestinationArn"] = target_arn
    task: dict[str, Any] = sqs.start_message_move_task(**kwargs)
    return task


def wait_move_task(sqs: BotoClient, source_arn: str, timeout: float = 300, interval: float = 2) -> dict[str, Any]:
    """Poll ``ListMessageMoveTasks`` until the newest task of ``source_arn`` is no longer running."""
    deadline = time.monotonic() + timeout
    while True:
        tasks = sqs.list_message_move_tasks(SourceArn=source_arn, MaxResults=1).get("Results") or []
        task: dict[str, Any] = tasks[0] if tasks else {}
        if task.get("Status") not in ("RUNNING", "CANCELLING") or time.monotonic() > deadline:
            return task
        time.sleep(interval)
