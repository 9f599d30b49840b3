"""No log line carries a customer's name, phone, email, address, notes or a message's content.

One test drives the app's bad-input and failure paths with recognisable customer values, in
process (the handlers loaded as Lambda loads them, the real PostgreSQL, moto), with every logger at
DEBUG: validation failures, Unicode digits, malformed bodies and content types, a statement the
database refuses (the ``Failing row contains (...)`` case), an unexpected exception whose message
quotes the customer, the database down, a failed SNS publish and a failed job, and the happy path
around them (booking, confirmation, follow-up). It captures every line: the Powertools logger's
records (formatted as they are shipped), any other library's (root logger), and the raw stdout and
stderr of the process. Then it fails on any customer value found in them."""

from __future__ import annotations

import json
import logging
import socket

import pytest
from hibachi import settings as settings_module
from hibachi.observability import logger

from testkit.callers import staff
from testkit.events import http_event
from tests.conftest import load_function, new_id
from tests.integration.test_bookings import booking_body, local_start
from tests.integration.test_followups import aws, make_due, run_jobs, send_body, worker  # noqa: F401 - fixture

NAME = "Zelda Quintessa-Marlowe"
PHONE = "+14155550199"
EMAIL = "zelda.quintessa@example.org"
LINE1 = "742 Evergreen Terrace"
CITY = "Shelbyvillex"
NOTES = "gate code 4471, dog named Pumpernickel"
CONTENT = "my card is 4111 1111 1111 1111 and I live at Ravenholm 9"
PII = [NAME, "Zelda", "Quintessa", PHONE, "4155550199", EMAIL, "zelda.quintessa", LINE1, "Evergreen", CITY, NOTES]
ARABIC_PHONE = "+1" + "".join(chr(0x0660 + int(d)) for d in "3456789012")  # Arabic-Indic digits
PII += ["Pumpernickel", CONTENT, "4111 1111", "Ravenholm", ARABIC_PHONE]


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.lines.append(self.format(record))
        except Exception as exc:  # noqa: BLE001 - a line that cannot be formatted is still evidence
            self.lines.append(f"{record.getMessage()} {record.args} {exc!r}")


@pytest.fixture
def captured(capfd):
    """A function returning every line logged or printed since the fixture started."""
    app_lines, other_lines = Collect(), Collect()
    app_lines.setFormatter(logger.registered_formatter)
    other_lines.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    level, root = logger.log_level, logging.getLogger()
    root_level = root.level
    logger.addHandler(app_lines)
    logger.setLevel(logging.DEBUG)
    root.addHandler(other_lines)
    root.setLevel(logging.DEBUG)
    printed: list[str] = []

    def lines() -> list[str]:
        out, err = capfd.readouterr()
        printed.extend(out.splitlines() + err.splitlines())
        return app_lines.lines + other_lines.lines + printed

    try:
        yield lines
    finally:
        logger.removeHandler(app_lines)
        logger.setLevel(level)
        root.removeHandler(other_lines)
        root.setLevel(root_level)


def customer_booking(**overrides) -> dict:
    body = booking_body(local_start(12))
    body["customer"] = {"name": NAME, "phone": PHONE, "email": EMAIL}
    body["address"] = {"line1": LINE1, "city": CITY, "state": "CA", "postal_code": "94105"}
    body["notes"] = NOTES
    body.update(overrides)
    return body


def api(context, function: str, route_key: str, path: str, *, body=None, raw=None, headers=None, params=None):
    scopes = ["bookings:write", "bookings:read", "messages:write", "conversations:read", "ops:read", "staff"]
    event = http_event(
        route_key.split(" ", 1)[0],
        path,
        route_key=route_key,
        path_parameters=params,
        headers={"content-type": "application/json", **(headers or {})},
        body=raw if raw is not None else (json.dumps(body, ensure_ascii=False) if body is not None else None),
        claims={"sub": "tester", "scope": " ".join(scopes)},
        scopes=scopes,
    )
    response = load_function(function).lambda_handler(event, context)
    return response["statusCode"], json.loads(response["body"]) if response.get("body") else None


def book(context, body=None, raw=None, headers=None):
    return api(context, "create_booking", "POST /bookings", "/bookings", body=body, raw=raw, headers=headers)


def message(context, cid: str, body=None, raw=None, headers=None):
    route = "POST /conversations/{conversation_id}/messages"
    return api(
        context,
        "store_message",
        route,
        f"/conversations/{cid}/messages",
        body=body,
        raw=raw,
        headers=headers,
        params={"conversation_id": cid},
    )


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_no_customer_value_reaches_a_log_line(settings, context, db, aws, captured, monkeypatch):  # noqa: F811
    db.execute("TRUNCATE bookings CASCADE")
    cid = new_id("pii")
    statuses: list[int] = []

    # the happy path: a booking with a conversation, its confirmation, its follow-up
    assert message(context, cid, {"role": "user", "content": CONTENT})[0] == 201
    status, booking = book(context, customer_booking(conversation_id=cid))
    assert status == 201, booking
    run_jobs(context, aws)
    make_due(db, booking["id"])

    # bad input, each carrying customer values
    bad_bookings = [
        customer_booking(customer={"name": NAME, "phone": ARABIC_PHONE, "email": EMAIL}),
        customer_booking(customer={"name": NAME * 20, "phone": PHONE, "email": EMAIL}),
        customer_booking(customer={"name": NAME, "phone": PHONE, "email": f"{EMAIL}@{EMAIL}"}),
        customer_booking(address={"line1": LINE1 + "\u0000", "city": CITY, "state": "CA", "postal_code": "9"}),
        customer_booking(event_start=f"{NAME} 18:00"),
        customer_booking(timezone=CITY),
        customer_booking(guest_count=NOTES),
        customer_booking(unexpected=CONTENT),
    ]
    statuses += [book(context, body)[0] for body in bad_bookings]
    raw = json.dumps(customer_booking()).encode()
    statuses.append(book(context, raw=raw[:-5])[0])  # truncated JSON
    statuses.append(book(context, raw=raw, headers={"content-type": "multipart/form-data"})[0])
    statuses.append(book(context, raw=raw + b" " * 70_000)[0])  # too large
    statuses += [
        message(context, cid, {"role": "system", "content": CONTENT * 200})[0],
        message(context, cid, {"role": "user", "content": CONTENT, "metadata": {"note": NOTES * 200}})[0],
        message(context, cid, {"role": CONTENT, "content": CONTENT})[0],
        message(context, cid, raw=f"role=user&content={CONTENT}", headers={"content-type": "text/plain"})[0],
    ]
    assert all(400 <= s < 500 for s in statuses), statuses

    # a statement the database refuses with the row in its DETAIL (validation bypassed)
    from hibachi.bookings import service
    from hibachi.bookings.models import BookingIn
    from hibachi.errors import ConstraintViolation

    sneaky = BookingIn.model_validate(customer_booking(event_start=local_start(14)))
    sneaky.customer.phone = ARABIC_PHONE
    with pytest.raises(ConstraintViolation) as refused:
        service.create_booking(sneaky, caller=staff(), idempotency_key=None, correlation_id=None)
    assert refused.value.status == 422 and refused.value.constraint == "bookings_customer_phone_check"

    # an unexpected exception whose message quotes the customer: a 500 logged by type and frames
    def explode(*_args, **_kwargs):
        raise ValueError(f"unexpected: {NAME} {PHONE} {EMAIL} {LINE1}")

    monkeypatch.setattr(service, "get_booking", explode)
    status, body = api(
        context,
        "create_booking",
        "GET /bookings/{booking_id}",
        f"/bookings/{booking['id']}",
        params={"booking_id": booking["id"]},
    )
    assert status == 500 and NAME not in json.dumps(body)
    monkeypatch.undo()

    # the follow-up's publish fails, then succeeds; a job fails
    with settings_module.override(followup_topic_arn=aws["topic"] + "-missing"):
        assert worker(context, [send_body(booking["id"], 1)]) == ["send_followup"]
    assert worker(context, [send_body(booking["id"], 1)]) == []

    # the database down: 503, nothing changed
    with settings_module.override(database_url=f"postgresql://postgres@127.0.0.1:{closed_port()}/x"):
        assert message(context, cid, {"role": "user", "content": CONTENT})[0] == 503
        assert book(context, customer_booking(event_start=local_start(15)))[0] == 503

    lines = captured()
    assert len(lines) > 20  # the capture works: the paths above log
    leaks = [(value, line[:300]) for line in lines for value in PII if value in line]
    assert not leaks, leaks
