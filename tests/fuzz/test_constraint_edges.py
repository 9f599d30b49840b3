"""Every database constraint's edge, Unicode digits and look-alikes, and malformed content types,
through the local gateway (real HTTP, the authorizer, the functions in their worker processes,
PostgreSQL). A value on the allowed side of an edge is stored (2xx); one past it, or a digit the
database's ASCII ``[0-9]`` refuses, is a 4xx that changes nothing. Never a 5xx: validation accepts
exactly what the database accepts, and what still gets through is mapped by ``hibachi.api``."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from tests.support.bookings import booking_body, local_start
from tests.support.common import new_id
from tests.support.netfaults import http

ARABIC_INDIC = "٣٤٥٦٧٨٩٠١٢"
DEVANAGARI = "३४५६७८९०१२"
FULLWIDTH = "３４５６７８９０１２"
MATH_BOLD = "𝟑𝟒𝟓𝟔𝟕𝟖𝟗𝟎𝟏𝟐"
SUPERSCRIPT = "³⁴⁵⁶⁷⁸⁹⁰¹²"


def call(rel, method: str, path: str, *, body=None, raw=None, headers=None, key=None):
    hdrs = {**rel.headers(key), **(headers or {})}
    status, answer, _ = http(rel.stack.url + path, method, body=body, raw=raw, headers=hdrs)
    assert 0 < status < 500, (method, path, status, answer)
    return status, answer


def bookings(rel) -> int:
    return rel.one("SELECT count(*) AS n FROM bookings")["n"]


def book(rel, **change):
    """POST /bookings on a fresh day with ``change`` applied (``customer.phone=...`` style keys)."""
    day = rel.fresh_day()
    body = booking_body(local_start(day, 18))
    for dotted, value in change.items():
        target = body
        *parents, leaf = dotted.split(".")
        for part in parents:
            target = target[part]
        target[leaf] = value
    before = bookings(rel)
    status, answer = call(rel, "POST", "/bookings", body=body)
    assert bookings(rel) - before == (1 if status == 201 else 0), (change, status, answer)
    return status, answer


@pytest.mark.parametrize(
    "phone",
    [
        "+1" + ARABIC_INDIC,  # the reported one: passed \d, refused by the CHECK, a 500 with the row logged
        "+1" + DEVANAGARI,
        "+1" + FULLWIDTH,
        "+1" + MATH_BOLD,
        "+1" + SUPERSCRIPT,
        "＋14155550123",  # fullwidth plus
        "+1415555O123",  # letter O for zero
        "+1415555l123",  # letter l for one
        "+0415555012",  # no leading zero in E.164
        "+123456",  # 6 digits: one short
        "+1234567890123456",  # 16 digits: one too many
        "+1 415 555 0123",
    ],
)
def test_unicode_digits_and_look_alikes_in_the_phone_are_422(rel, phone):
    status, answer = book(rel, **{"customer.phone": phone})
    assert status == 422, answer
    assert answer["error"]["details"][0]["loc"] == ["body", "customer", "phone"]


@pytest.mark.parametrize("phone", ["+1234567", "+123456789012345"])
def test_the_shortest_and_longest_e164_phones_are_stored(rel, phone):
    status, answer = book(rel, **{"customer.phone": phone})
    assert status == 201 and answer["customer"]["phone"] == phone


LONG_EMAIL = "a" * 64 + "@" + "b" * 63 + "." + "c" * 63 + "." + "d" * 57 + ".com"  # 254 characters

EDGES = [
    # (field, allowed value, refused value)
    ("customer.name", "N" * 200, "N" * 201),
    ("customer.email", LONG_EMAIL, "a" + LONG_EMAIL),
    ("address.line1", "L" * 200, "L" * 201),
    ("address.line2", "L" * 200, "L" * 201),
    ("address.city", "C" * 100, "C" * 101),
    ("address.state", "S" * 100, "S" * 101),
    ("address.postal_code", "9" * 20, "9" * 21),
    ("notes", "n" * 2000, "n" * 2001),
    ("guest_count", 1, 0),
    ("guest_count", 100, 101),
    ("duration_minutes", 60, 59),
    ("duration_minutes", 360, 361),
    ("conversation_id", "c" * 128, "c" * 129),
    ("conversation_id", "web:abc-1.2_3", "web abc"),
    ("conversation_id", "c123", "c" + ARABIC_INDIC),
    ("conversation_id", "abc", "ａｂｃ"),
]


@pytest.mark.parametrize(("field", "allowed", "refused"), EDGES, ids=[f"{e[0]}-{i}" for i, e in enumerate(EDGES)])
def test_each_booking_constraint_edge(rel, field, allowed, refused):
    assert book(rel, **{field: allowed})[0] == 201
    status, answer = book(rel, **{field: refused})
    assert status == 422, answer


@pytest.mark.parametrize(
    "start",
    ["２０２７-01-10T18:00", "2027-01-10T1٨:00", "2027-01-10T18:00Z", "2027-01-10T18:00+01:00", "2027-1-10T18:00"],
)
def test_look_alike_and_offset_date_times_are_422(rel, start):
    assert book(rel, event_start=start)[0] == 422


def test_timezone_length_edge(rel):
    assert book(rel, timezone="America/Los_Angeles")[0] == 201
    assert book(rel, timezone="A" * 65)[0] == 422
    assert book(rel, timezone="America/Los_Ａngeles")[0] == 422


MESSAGE_EDGES = [
    ("content", "x" * 8000, "x" * 8001),
    ("content", "x", ""),
    ("emotion_score", 1, 1.0000001),
    ("emotion_score", -1, -1.0000001),
    ("channel", "c" * 32, "c" * 33),
    ("customer_id", "u" * 128, "u" * 129),
    ("role", "assistant", "ａssistant"),
    ("metadata", {"k": "v" * (4096 - 8)}, {"k": "v" * (4096 - 7)}),  # 4096 bytes serialized, then one more
]


@pytest.mark.parametrize(
    ("field", "allowed", "refused"), MESSAGE_EDGES, ids=[f"{e[0]}-{i}" for i, e in enumerate(MESSAGE_EDGES)]
)
def test_each_message_constraint_edge(rel, field, allowed, refused):
    cid = new_id("edge")
    good = {"role": "user", "content": "hello", field: allowed}
    assert call(rel, "POST", f"/conversations/{cid}/messages", body=good)[0] == 201
    bad = {"role": "user", "content": "hello", field: refused}
    assert call(rel, "POST", f"/conversations/{cid}/messages", body=bad)[0] == 422
    assert rel.one("SELECT count(*) AS n FROM messages WHERE conversation_id = %s", (cid,))["n"] == 1


@pytest.mark.parametrize("raw_cid", ["c" * 129, "c" + ARABIC_INDIC, "ｃ1", "c d", "c\x00"])
def test_conversation_ids_the_database_refuses_are_4xx_on_every_route(rel, raw_cid):
    cid = quote(raw_cid, safe="")
    for method, path, body in (
        ("POST", f"/conversations/{cid}/messages", {"role": "user", "content": "hi"}),
        ("GET", f"/conversations/{cid}", None),
        ("GET", f"/conversations/{cid}/messages", None),
    ):
        status, _ = call(rel, method, path, body=body)
        assert 400 <= status < 500


@pytest.mark.parametrize(
    "query",
    [f"limit={quote(ARABIC_INDIC[:2])}", f"limit={quote('１０')}", "limit=1e1", f"before={quote(ARABIC_INDIC)}"],
)
def test_unicode_digits_in_query_parameters_are_4xx(rel, query):
    cid = new_id("q")
    assert call(rel, "POST", f"/conversations/{cid}/messages", body={"role": "user", "content": "hi"})[0] == 201
    status, _ = call(rel, "GET", f"/conversations/{cid}/messages?{query}")
    assert status == 422


@pytest.mark.parametrize("booking_id", ["٣" * 32, "１" * 32, "00000000-0000-0000-0000-00000000000٣"])
def test_unicode_digits_in_a_booking_id_are_4xx(rel, booking_id):
    for method, path in (("GET", ""), ("POST", "/cancel"), ("PATCH", "")):
        body = {"event_start": local_start(rel.fresh_day())} if method == "PATCH" else None
        status, _ = call(rel, method, f"/bookings/{quote(booking_id)}{path}", body=body)
        assert status in (404, 422)


def test_idempotency_key_edges(rel):
    status, _ = call(
        rel, "POST", f"/conversations/{new_id('k')}/messages", body={"role": "user", "content": "hi"}, key="k" * 128
    )
    assert status == 201
    status, _ = call(
        rel, "POST", f"/conversations/{new_id('k')}/messages", body={"role": "user", "content": "hi"}, key="k" * 129
    )
    assert status == 422
    assert book(rel)[0] == 201
    body = booking_body(local_start(rel.fresh_day(), 18))
    assert call(rel, "POST", "/bookings", body=body, key="k" * 129)[0] == 422


CONTENT_TYPES = [
    "multipart/form-data",  # no boundary: a 500 in the resolver's multipart parser
    "multipart/form-data; boundary=x",
    "application/x-www-form-urlencoded",
    "text/plain",
    "application/xml",
    "application/octet-stream",
    "application/json; charset=latin-1",
    "application/jsonx",
    "json",
    ";",
]


def write_routes(rel):
    """Every write route with a target that exists (a fresh conversation, a fresh booking)."""
    status, booking = call(rel, "POST", "/bookings", body=booking_body(local_start(rel.fresh_day(), 18)))
    assert status == 201
    bid, cid = booking["id"], new_id("ct")
    return (
        [
            ("POST", f"/conversations/{cid}/messages", b'{"role":"user","content":"hi"}'),
            ("POST", "/bookings", b"{}"),
            ("PATCH", f"/bookings/{bid}", b'{"guest_count":3}'),
            ("POST", f"/bookings/{bid}/cancel", b""),
            ("POST", f"/bookings/{bid}/cancel", b"--x\r\nContent-Disposition: form-data\r\n\r\n1\r\n--x--"),
        ],
        bid,
        cid,
    )


@pytest.mark.parametrize("content_type", CONTENT_TYPES)
def test_unexpected_or_malformed_content_types_are_415_on_every_write_route(rel, content_type):
    routes, bid, cid = write_routes(rel)
    for method, path, raw in routes:
        status, answer = call(rel, method, path, raw=raw, headers={"content-type": content_type})
        assert status == 415, (content_type, method, path, status, answer)
        assert answer["error"]["code"] == "unsupported_media_type"
    assert rel.one("SELECT status, version FROM bookings WHERE id = %s", (bid,)) == {
        "status": "confirmed",
        "version": 1,
    }
    assert rel.query("SELECT 1 FROM conversations WHERE id = %s", (cid,)) == []


@pytest.mark.parametrize("content_type", ["multipart/form-data", "text/plain", "application/xml"])
def test_read_routes_with_a_body_of_another_type_are_415(rel, content_type):
    cid = new_id("rd")
    assert call(rel, "POST", f"/conversations/{cid}/messages", body={"role": "user", "content": "hi"})[0] == 201
    for path in (
        f"/conversations/{cid}",
        f"/conversations/{cid}/messages",
        "/bookings/" + "0" * 8 + "-0000-0000-0000-" + "0" * 12,
    ):
        status, _ = call(rel, "GET", path, raw=b"x=1", headers={"content-type": content_type})
        assert status == 415
