"""The SQS -> Lambda event source mapping, locally: :class:`SqsPoller` long-polls the queue, invokes
the function with a real SQS event (``record_of``), then deletes what succeeded by Lambda's rules for
``ReportBatchItemFailures`` (``failed_ids``): a handler that raises or times out, or an invalid
``batchItemFailures``, fails the whole batch; the listed messages are left. Failed messages come
back after the visibility timeout, and moto's redrive moves them to the DLQ after
``maxReceiveCount`` receives, as SQS does. ``in_flight`` counts batches being processed
(``LocalStack.drain``); the poll wait is 1 s (Lambda's is 20 s) so that stopping is quick.
``MaximumBatchingWindowInSeconds`` is not emulated.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from local.events import sqs_record
from local.scheduler import Loop

if TYPE_CHECKING:
    from local.aws import BotoClient
    from local.runtime import Invocation

log = logging.getLogger("local.poller")


def _message_attributes(attrs: dict[str, Any] | None) -> dict[str, Any]:
    out = {}
    for name, value in (attrs or {}).items():
        item: dict[str, Any] = {"stringListValues": [], "binaryListValues": [], "dataType": value.get("DataType")}
        if "StringValue" in value:
            item["stringValue"] = value["StringValue"]
        if "BinaryValue" in value:
            raw = value["BinaryValue"]
            item["binaryValue"] = base64.b64encode(raw).decode() if isinstance(raw, (bytes, bytearray)) else raw
        out[name] = item
    return out


def record_of(message: dict[str, Any], queue_arn: str, region: str) -> dict[str, Any]:
    """One ``Records`` entry of a Lambda SQS event, from a ``ReceiveMessage`` message."""
    return sqs_record(
        message.get("Body", ""),
        queue_arn=queue_arn,
        region=region,
        message_id=message["MessageId"],
        receipt_handle=message["ReceiptHandle"],
        attributes=dict(message.get("Attributes") or {}),
        message_attributes=_message_attributes(message.get("MessageAttributes")),
        md5_of_body=message.get("MD5OfBody"),
        md5_of_message_attributes=message.get("MD5OfMessageAttributes"),
    )


def failed_ids(result: Any, message_ids: list[str]) -> set[str] | None:
    """The message ids to keep, by Lambda's rules for a ``ReportBatchItemFailures`` response;
    None means the whole batch failed."""
    if result is None or result == {} or result == "":
        return set()
    if not isinstance(result, dict):
        return None
    failures = result.get("batchItemFailures")
    if failures is None:
        return set()
    if not isinstance(failures, list):
        return None
    keep: set[str] = set()
    for item in failures:
        ident = item.get("itemIdentifier") if isinstance(item, dict) else None
        if not isinstance(ident, str) or not ident or ident not in message_ids:
            return None
        keep.add(ident)
    return keep


class SqsPoller(Loop):
    """Poll ``queue_url`` and feed batches to ``invoke`` (event -> ``local.runtime.Invocation``)."""

    def __init__(
        self,
        sqs: BotoClient,
        queue_url: str,
        queue_arn: str,
        invoke: Callable[[dict[str, Any]], Invocation],
        *,
        batch_size: int = 10,
        wait_time_seconds: int = 1,
        report_batch_item_failures: bool = True,
        region: str = "us-east-1",
        name: str = "sqs-poller",
    ):
        if not 1 <= batch_size <= 10:
            raise ValueError("batch_size must be 1..10 for a standard queue")
        super().__init__(name)
        self.sqs = sqs
        self.queue_url = queue_url
        self.queue_arn = queue_arn
        self.invoke = invoke
        self.batch_size = batch_size
        self.wait_time_seconds = max(0, min(20, int(wait_time_seconds)))
        self.report_batch_item_failures = report_batch_item_failures
        self.region = region
        self.stats = dict.fromkeys(("batches", "messages", "deleted", "kept", "batch_failures"), 0)

    def step(self) -> int:
        """Receive one batch and process it; the number of messages received."""
        response = self.sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=self.batch_size,
            WaitTimeSeconds=self.wait_time_seconds,
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        messages = response.get("Messages") or []
        if not messages:
            return 0
        self.in_flight += 1
        try:
            self._process(messages)
        finally:
            self.in_flight -= 1
        return len(messages)

    def _process(self, messages: list[dict[str, Any]]) -> None:
        event = {"Records": [record_of(m, self.queue_arn, self.region) for m in messages]}
        invocation = self.invoke(event)
        self.stats["batches"] += 1
        self.stats["messages"] += len(messages)
        ids = [m["MessageId"] for m in messages]
        keep = failed_ids(invocation.result, ids) if self.report_batch_item_failures else set()
        if not invocation.ok or keep is None:
            self.stats["batch_failures"] += 1
            err = invocation.error or {}
            why = f"{err.get('errorType')}: {err.get('errorMessage')}" if err else f"{invocation.result!r}"
            log.warning(
                "%s: batch of %d failed (%s); it returns after the visibility timeout", self.name, len(ids), why
            )
            return
        self.stats["kept"] += len(keep)
        if keep:
            log.info("%s: %d of %d messages reported as failed; they will be retried", self.name, len(keep), len(ids))
        done = [
            {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]}
            for i, m in enumerate(messages)
            if m["MessageId"] not in keep
        ]
        if done:  # a batch is at most 10 messages: one call
            result = self.sqs.delete_message_batch(QueueUrl=self.queue_url, Entries=done)
            self.stats["deleted"] += len(result.get("Successful") or [])
            for failure in result.get("Failed") or []:
                log.warning("%s: delete failed: %s", self.name, failure)
