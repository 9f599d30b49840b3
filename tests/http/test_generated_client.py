"""A REST client that openapi-python-client (pinned in requirements-dev.in) generates from the committed
OpenAPI document, used as generated, with no hand edits: availability -> create -> search -> get
against the local stack. Generated into a temporary folder in the test run; never committed."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests.support.common import ROOT
from tests.support.mcp import TZ, far_day

GENERATOR = Path(sys.executable).parent / "openapi-python-client"


@pytest.mark.timeout(300)
def test_a_generated_client_books_a_chef_as_generated(app_stack, tmp_path, monkeypatch):
    package = tmp_path / "hibachi_api"
    done = subprocess.run(
        [
            *(str(GENERATOR), "generate", "--path", str(ROOT / "functions" / "docs" / "openapi.json")),
            *("--meta", "none", "--output-path", str(package)),
        ],
        capture_output=True,
        text=True,
        timeout=240,
        # its post-hooks run ruff (the dev lock's) over the generated code
        env={**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"},
        check=False,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Warning" not in done.stdout + done.stderr, done.stdout + done.stderr  # every operation generated
    monkeypatch.syspath_prepend(str(tmp_path))
    client_module = importlib.import_module("hibachi_api.client")
    availability = importlib.import_module("hibachi_api.api.bookings.get_availability")
    create = importlib.import_module("hibachi_api.api.bookings.create_booking")
    search = importlib.import_module("hibachi_api.api.bookings.search_bookings")
    get = importlib.import_module("hibachi_api.api.bookings.get_booking")
    models = importlib.import_module("hibachi_api.models")

    client = client_module.AuthenticatedClient(base_url=app_stack.url, token=app_stack.token(), timeout=60.0)
    day = far_day()
    free = availability.sync(client=client, date=day, timezone=TZ)
    assert isinstance(free, models.AvailabilityOut), free
    start = free.days[0].starts[0]  # a datetime with the local offset, as the client parsed it
    assert start.utcoffset() is not None
    email = f"Gen.{uuid.uuid4().hex[:8]}@Example.com"
    body = models.BookingIn(
        customer=models.Customer(name="Grace Hopper", phone="+14155550142", email=email),
        event_start=start.isoformat(),  # as listed: the local time with its offset
        timezone=TZ,
        guest_count=10,
        address=models.Address(line1="1 Market St", city="San Francisco", state="CA", postal_code="94105"),
    )
    created = create.sync_detailed(client=client, body=body, idempotency_key=str(uuid.uuid4()))
    assert created.status_code == 201 and isinstance(created.parsed, models.BookingOut), created.content
    booking = created.parsed
    assert booking.event_start == start and booking.customer.email == email.lower()
    page = search.sync(client=client, body=models.BookingSearchIn(email=email.upper()))
    assert isinstance(page, models.BookingPage) and [b.id for b in page.items] == [booking.id], page
    again = get.sync(client=client, booking_id=booking.id)
    assert isinstance(again, models.BookingOut) and again.id == booking.id and again.status == "confirmed"
