"""Performance guards that time nothing (CI machines are noisy): database round trips.

Every API operation the bench measures (``bench.operations.OPERATIONS``, so a new one is guarded as
soon as it is added there) makes exactly one database round trip per request on the happy path,
counted by ``testkit.netproxy.PgProxy``; the ones that enqueue a job send exactly one SQS message.
A 10-record batch of a set-based job type makes at most two round trips.
"""

from __future__ import annotations

import itertools
import uuid
from urllib.parse import urlsplit

import pytest
from hibachi import settings as settings_module

from bench.operations import JOB_TYPES, OPERATIONS, Operation, fixtures_of
from local.events import sqs_event
from testkit.functions import load_function
from testkit.netproxy import PgProxy

REQUESTS = 3
BATCH = 10


def _queued(sqs: dict) -> int:
    attrs = sqs["client"].get_queue_attributes(
        QueueUrl=sqs["queue_url"], AttributeNames=["ApproximateNumberOfMessages"]
    )
    return int(attrs["Attributes"]["ApproximateNumberOfMessages"])


@pytest.fixture
def counted(database_url: str):
    """A round-trip counting proxy (no delay) in front of the test database."""
    parts = urlsplit(database_url)
    with PgProxy((parts.hostname, parts.port or 5432)) as proxy:
        yield proxy


# the assistant's calls in its chat: the reach check is part of each statement, not a round trip of its own
AS_ASSISTANT = ("store_message", "create_booking", "get_booking", "mcp_store_message", "mcp_create_booking")


@pytest.mark.parametrize(
    ("op", "assistant"),
    [(op, False) for op in OPERATIONS] + [(op, True) for op in OPERATIONS if op.name in AS_ASSISTANT],
    ids=lambda v: v.name if isinstance(v, Operation) else ("assistant" if v else "staff"),
)
def test_api_operation_is_one_round_trip(op, assistant, settings, sqs, context, counted, database_url):
    import json

    run = f"perf-{uuid.uuid4().hex[:8]}"
    fixtures = fixtures_of(op.setup, 1, run)
    handler = load_function(op.function).lambda_handler
    numbers = itertools.count(1)

    def call() -> int:
        event = op.event(fixtures, 0, next(numbers), assistant=assistant)
        response = handler(event, context)
        assert response["statusCode"] in op.ok, response.get("body")
        if op.verify:
            assert op.verify(event, json.loads(response["body"]))
        return response["statusCode"]

    with settings_module.override(database_url=counted.dsn(database_url)):
        call()  # opens the connection
        queued = _queued(sqs)
        counted.reset()
        for _ in range(REQUESTS):
            call()
        assert counted.round_trips == REQUESTS, f"{op.name}: {counted.round_trips / REQUESTS:g} round trips per request"
        if op.enqueues:
            assert _queued(sqs) - queued == REQUESTS, f"{op.name}: one SQS send per request"


@pytest.mark.parametrize("job_type", [jt for jt in JOB_TYPES if jt.set_based], ids=lambda jt: jt.name)
def test_set_based_job_batch_is_at_most_two_round_trips(job_type, settings, aws, context, counted, database_url):
    run = f"perf-{uuid.uuid4().hex[:8]}"
    fixtures = fixtures_of(job_type.setup, 2 * BATCH, run)
    handler = load_function(job_type.function).lambda_handler
    # the job's own statements; the events its bookings publish afterwards are counted below
    with settings_module.override(database_url=counted.dsn(database_url), event_bus_name=None):
        for batch in range(2):  # the first opens the connection
            counted.reset()
            event = sqs_event([job.model_dump_json() for job in job_type.jobs(fixtures, batch, BATCH)])
            assert handler(event, context) == {"batchItemFailures": []}
        assert counted.round_trips <= 2, f"{job_type.name}: {counted.round_trips} round trips for {BATCH} jobs"


def test_publishing_a_batchs_events_is_two_round_trips_per_event_of_a_booking(settings, aws, counted, database_url):
    """Publishing is set-based too: per round, one statement claims the next event of every booking
    of the batch and one records the PutEvents outcome, whatever the number of bookings."""
    from hibachi.bookings import service
    from hibachi.bookings.models import BookingIn
    from hibachi.callers import Caller
    from hibachi.events import publisher

    from tests.support.bookings import booking_body, local_start

    staff = Caller(owner="perf", sub="perf", client_id=None, staff=True, conversation_id=None, via="test")
    day = 200 + uuid.uuid4().int % 300
    ids = [
        service.create_booking(
            BookingIn.model_validate(booking_body(local_start(days=day + i, hour=18))),
            caller=staff,
            idempotency_key=None,
            correlation_id=None,
        )[0].id
        for i in range(BATCH)
    ]
    for booking_id in ids[:5]:  # half of them with a second event
        service.cancel_booking(booking_id, caller=staff, correlation_id=None)
    with settings_module.override(database_url=counted.dsn(database_url)):
        publisher.publish_bookings([uuid.uuid4()])  # opens the connection (no events: one claim)
        counted.reset()
        assert publisher.publish_bookings(ids) == (15, 0)
        assert counted.round_trips == 4, "two rounds (the cancelled ones' second event), two statements each"
