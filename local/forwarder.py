"""The webhook's API destination, locally: moto delivers a rule's events to SQS targets only, so the
local stack's ``webhook`` rule fills a queue (``local.aws``) and :class:`WebhookForwarder` POSTs each
event from it to the URL, as EventBridge's API destination would: the event JSON as the body, the
API key in its header (``x-api-key`` by default, the connection's ``ApiKeyName``). A 2xx deletes the
message; anything else leaves it for another try after the queue's visibility timeout (EventBridge's
retry policy); after ``max_attempts`` it is dropped with a warning (EventBridge's DLQ).

    python -m local.run --webhook-url http://127.0.0.1:8088/events --webhook-api-key dev-key
    python examples/webhook_receiver.py --port 8088 --api-key dev-key
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from typing import Any

from local.scheduler import Loop

log = logging.getLogger("local.forwarder")


class WebhookForwarder(Loop):
    backoff = 0.5  # moto stopping: try again until stopped

    def __init__(
        self,
        sqs: Any,
        queue_url: str,
        url: str,
        *,
        api_key: str | None = None,
        max_attempts: int = 10,
        timeout: float = 5.0,
    ):
        super().__init__("webhook-forwarder")
        self.sqs = sqs
        self.queue_url = queue_url
        self.url = url
        self.api_key = api_key
        self.max_attempts = max_attempts
        self.timeout = timeout

    def post(self, body: str) -> int:
        """POST one event; the HTTP status (0: no answer)."""
        headers = {"content-type": "application/json; charset=utf-8"}
        if self.api_key:
            headers["x-api-key"] = self.api_key
        request = urllib.request.Request(self.url, data=body.encode(), headers=headers, method="POST")  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310 - the user's URL
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)
        except OSError:
            return 0

    def step(self) -> None:
        batch = self.sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=10,
            WaitTimeSeconds=1,
            MessageSystemAttributeNames=["ApproximateReceiveCount"],
        ).get("Messages", [])
        for message in sorted(batch, key=_order):  # in version order per booking, as the bus got them
            status = self.post(message["Body"])
            attempts = int((message.get("Attributes") or {}).get("ApproximateReceiveCount", "1"))
            delivered = 200 <= status < 300
            if not delivered and attempts < self.max_attempts:
                log.info("webhook answered %s; the event is retried", status or "nothing")
                continue
            if not delivered:
                log.warning("webhook gave up on an event after %d attempts (HTTP %s)", attempts, status)
            self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])


def _order(message: dict[str, Any]) -> tuple[str, int]:
    try:
        event = json.loads(message["Body"])
        detail = event.get("detail") or {}
        return str(event.get("time", "")), int(detail.get("version", 0))
    except (ValueError, TypeError, AttributeError):
        return "", 0
