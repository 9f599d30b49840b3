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
import threading
import urllib.error
import urllib.request
from typing import Any

log = logging.getLogger("local.forwarder")


class WebhookForwarder:
    def __init__(
        self,
        sqs: Any,
        queue_url: str,
        url: str,
        *,
        api_key: str | None = None,
        header: str = "x-api-key",
        wait_time_seconds: int = 1,
        max_attempts: int = 10,
        timeout: float = 5.0,
    ):
        self.sqs = sqs
        self.queue_url = queue_url
        self.url = url
        self.api_key = api_key
        self.header = header
        self.wait_time_seconds = wait_time_seconds
        self.max_attempts = max_attempts
        self.timeout = timeout
        self.delivered = 0
        self.failed = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> WebhookForwarder:
        self._thread = threading.Thread(target=self._run, name="webhook-forwarder", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.wait_time_seconds + self.timeout + 1)
            self._thread = None

    def post(self, body: str) -> int:
        """POST one event; the HTTP status (0: no answer)."""
        headers = {"content-type": "application/json; charset=utf-8"}
        if self.api_key:
            headers[self.header] = self.api_key
        request = urllib.request.Request(self.url, data=body.encode(), headers=headers, method="POST")  # noqa: S310
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310 - the user's URL
                return int(response.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)
        except OSError:
            return 0

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                batch = self.sqs.receive_message(
                    QueueUrl=self.queue_url,
                    MaxNumberOfMessages=10,
                    WaitTimeSeconds=self.wait_time_seconds,
                    MessageSystemAttributeNames=["ApproximateReceiveCount"],
                ).get("Messages", [])
            except Exception as exc:  # noqa: BLE001 - moto stopping: try again until stopped
                log.debug("webhook queue receive failed: %s", exc)
                self._stop.wait(0.5)
                continue
            # in version order per booking, as the bus got them
            batch.sort(key=_order)
            for message in batch:
                status = self.post(message["Body"])
                attempts = int((message.get("Attributes") or {}).get("ApproximateReceiveCount", "1"))
                if 200 <= status < 300 or attempts >= self.max_attempts:
                    if not 200 <= status < 300:
                        self.failed += 1
                        log.warning("webhook gave up on an event after %d attempts (HTTP %s)", attempts, status)
                    else:
                        self.delivered += 1
                    self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])
                else:
                    log.info("webhook answered %s; the event is retried", status or "nothing")


def _order(message: dict[str, Any]) -> tuple[str, int]:
    try:
        event = json.loads(message["Body"])
        detail = event.get("detail") or {}
        return str(event.get("time", "")), int(detail.get("version", 0))
    except (ValueError, TypeError, AttributeError):
        return "", 0
