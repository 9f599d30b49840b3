"""The follow-up's SNS publish: one dedup id per follow-up; FIFO topics deduplicate themselves."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from hibachi.followups import service
from hibachi.followups.repository import ClaimedSend
from hibachi.settings import Settings

BOOKING = {
    "id": "6f1c9d1e-0000-4000-8000-000000000001",
    "conversation_id": "web:c1",
    "customer_name": "Ada",
    "customer_phone": "+14155550123",
    "customer_email": "ada@example.com",
    "event_start": datetime(2026, 12, 5, 2, tzinfo=UTC),
    "timezone": "America/Los_Angeles",
}
SEND = ClaimedSend(booking=BOOKING, version=3, channel="email")


class _SNS:
    def __init__(self) -> None:
        self.requests: list[dict] = []

    def publish(self, **request):
        self.requests.append(request)
        return {"MessageId": "m1"}


@pytest.mark.parametrize(
    ("topic", "fifo"), [("arn:aws:sns:us-east-1:1:followups", False), ("arn:aws:sns:us-east-1:1:followups.fifo", True)]
)
def test_publish_carries_one_dedup_id(monkeypatch, topic, fifo):
    sns = _SNS()
    monkeypatch.setattr(service.aws, "client", lambda name, *a, **k: sns)
    settings = Settings(followup_topic_arn=topic)
    service._publish(SEND, "Thank you!", settings)
    service._publish(SEND, "Thank you!", settings)  # a re-send after a crash
    first, again = sns.requests
    expected = "followup:6f1c9d1e-0000-4000-8000-000000000001:v3"
    for request in (first, again):
        assert request["MessageAttributes"]["dedup_id"]["StringValue"] == expected
        assert json.loads(request["Message"])["dedup_id"] == expected
    assert ("MessageDeduplicationId" in first) is fifo and ("Subject" in first) is not fifo
    if fifo:
        assert first["MessageDeduplicationId"] == expected and first["MessageGroupId"] == BOOKING["id"]
