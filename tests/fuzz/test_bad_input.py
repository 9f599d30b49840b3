"""Hand-written bad input through the local gateway (real HTTP, raw bytes where it matters): SQL
injection strings, NUL bytes, invalid UTF-8, huge bodies, deeply nested JSON, huge and negative
numbers, DST gaps and overlaps, unicode names and addresses. Each gets a 4xx, or a 2xx where it
is valid, in which case what was stored is byte-exact; never a 5xx. The number of inputs tried
is printed at the end of the module."""

from __future__ import annotations

import json

import pytest

from tests.support.bookings import booking_body, local_start
from tests.support.common import new_id
from tests.support.netfaults import http

TRIED = {"n": 0}

SQL = [
    "' OR '1'='1",
    "x'; DROP TABLE messages; --",
    "1; SELECT pg_sleep(10)--",
    "\\'; TRUNCATE bookings CASCADE; --",
    "$$; DELETE FROM conversations; $$",
    "') UNION SELECT * FROM pg_shadow --",
    "%' AND 1=1 --",
]
UNICODE = [
    "Zoë Ōkubo-Łukasz 🍣🔥",
    "東京都港区六本木1-2-3",
    "محمد الأحمد",
    "Ǹ̷̡͓a̸͉͝m̵̢̛e̶͓͝ (zalgo)",
    "👨‍👩‍👧‍👦 family",
    "Åsa \u200b zero-width",
    "\u202eRTL override",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 math",
    "e\u0301 vs \u00e9",
]


@pytest.fixture(scope="module", autouse=True)
def _report():
    yield
    print(f"\nhand-written bad inputs tried: {TRIED['n']}")


def call(rel, method: str, path: str, *, body=None, raw: bytes | None = None, headers=None, auth=True):
    TRIED["n"] += 1
    hdrs = {**(rel.headers() if auth else {}), **(headers or {})}
    status, answer, _rheaders = http(rel.stack.url + path, method, body=body, raw=raw, headers=hdrs)
    assert 0 < status < 500, (method, path, status, answer)
    return status, answer


def message(content="hello", **extra) -> dict:
    return {"role": "user", "content": content, **extra}


# -- SQL injection -------------------------------------------------------------------------------------
@pytest.mark.parametrize("text", SQL)
def test_sql_injection_strings_are_data(rel, text):
    cid = new_id("sqli")
    status, stored = call(
        rel,
        "POST",
        f"/conversations/{cid}/messages",
        body=message(text, customer_id=text, channel=text[:32], metadata={text: text}),
        headers={"idempotency-key": new_id("k")},
    )
    assert status == 201 and stored["content"] == text and stored["metadata"] == {text: text}
    row = rel.one("SELECT content, metadata FROM messages WHERE id = %s", (stored["id"],))
    assert row == {"content": text, "metadata": {text: text}}
    assert call(rel, "GET", f"/conversations/{cid}")[1]["customer_id"] == text
    from urllib.parse import quote

    assert call(rel, "GET", f"/conversations/{quote(text, safe='')}")[0] in (404, 422)
    assert call(rel, "GET", f"/conversations/{cid}/messages?limit={quote(text)}")[0] == 422
    assert call(rel, "GET", f"/conversations/{cid}/messages?before={quote(text[:60])}")[0] == 422
    assert call(rel, "GET", f"/bookings/{quote(text, safe='')}")[0] in (404, 422)
    status, booking = call(
        rel,
        "POST",
        "/bookings",
        body=booking_body(
            local_start(rel.fresh_day(), 18),
            notes=text,
            customer={"name": text, "phone": "+14155550123", "email": "a@example.com"},
            address={"line1": text, "city": text, "state": "CA", "postal_code": "94105"},
        ),
    )
    assert status == 201 and booking["customer"]["name"] == text and booking["notes"] == text
    assert rel.one("SELECT count(*) AS n FROM messages")["n"] > 0  # nothing was dropped


# -- NUL bytes and invalid UTF-8 ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "raw",
    [
        b'{"role":"user","content":"a\\u0000b"}',
        b'{"role":"user","content":"ok","metadata":{"k\\u0000":"v"}}',
        b'{"role":"user","content":"ok","metadata":{"k":["x\\u0000"]}}',
        b'{"role":"user","content":"ok","customer_id":"\\u0000"}',
        b'{"role":"user","content":"\\ud800 lone surrogate"}',
        b'{"role":"user","content":"\xff\xfe invalid utf-8"}',
        b'{"role":"user","content":"\xc3\x28"}',
        b'{"role":"user","content":"\xed\xa0\x80 encoded surrogate"}',
        b'\xef\xbb\xbf{"role":"user","content":"BOM"}',
        b"\x00\x00\x00{",
        b'{"role":"user","content":"ok"',
        b'["role","user"]',
        b"null",
        b"",
    ],
    ids=lambda b: repr(b[:24]),
)
@pytest.mark.parametrize(
    "content_type", ["application/json", "application/octet-stream", "text/plain; charset=latin-1"]
)
def test_nul_bytes_and_invalid_utf8_are_422(rel, raw, content_type):
    cid = new_id("bytes")
    status, answer = call(
        rel, "POST", f"/conversations/{cid}/messages", raw=raw, headers={"content-type": content_type}
    )
    assert status in (400, 415, 422), (status, answer)
    assert rel.query("SELECT 1 FROM conversations WHERE id = %s", (cid,)) == []


@pytest.mark.parametrize("field", ["name", "line1", "notes", "timezone", "email"])
def test_nul_and_surrogates_in_booking_fields_are_422(rel, field):
    for bad in ("a\u0000b", "\ud83d"):
        body = booking_body(local_start(rel.fresh_day(), 18))
        if field == "name":
            body["customer"]["name"] = bad
        elif field == "email":
            body["customer"]["email"] = f"a{bad}@example.com"
        elif field == "line1":
            body["address"]["line1"] = bad
        else:
            body[field] = bad
        raw = json.dumps(body).encode()  # ensure_ascii: NUL and the lone surrogate travel as escapes
        assert call(rel, "POST", "/bookings", raw=raw)[0] == 422


# -- huge bodies, deep nesting, numbers -----------------------------------------------------------------
def test_huge_bodies_are_413_or_422(rel):
    cid = new_id("huge")
    assert call(rel, "POST", f"/conversations/{cid}/messages", body=message("x" * 8001))[0] == 422
    assert call(rel, "POST", f"/conversations/{cid}/messages", body=message("é" * 40000))[0] == 413
    assert (
        call(rel, "POST", f"/conversations/{cid}/messages", raw=b'{"role":"user","content":"' + b"x" * 70000 + b'"}')[0]
        == 413
    )
    assert call(rel, "POST", f"/conversations/{cid}/messages", raw=b"[" * 3_000_000)[0] == 413
    assert call(rel, "POST", "/bookings", raw=b" " * 70000 + b"{}")[0] == 413
    assert call(rel, "POST", f"/conversations/{cid}/messages", body=message("ok", metadata={"k": "v" * 5000}))[0] == 422
    assert rel.query("SELECT 1 FROM conversations WHERE id = %s", (cid,)) == []


@pytest.mark.parametrize("depth", [9, 100, 1000, 20000])
def test_deeply_nested_json_is_422(rel, depth):
    cid = new_id("deep")
    nested = "[" * depth + "]" * depth
    raw = b'{"role":"user","content":"deep","metadata":{"k":' + nested.encode() + b"}}"
    status, answer = call(rel, "POST", f"/conversations/{cid}/messages", raw=raw)
    assert status in (413, 422), answer
    obj = "{" + '"a":{' * depth + "}" * depth + "}"
    assert call(rel, "POST", "/bookings", raw=obj.encode())[0] in (413, 422)


@pytest.mark.parametrize(
    "score",
    [
        "1e308",
        "-1e308",
        "1e400",
        "-1e400",
        "NaN",
        "Infinity",
        "-Infinity",
        "-2",
        "1.0000001",
        "99999999999999999999999999999",
        "true",
        '"0.5"',
    ],
)
def test_out_of_range_and_non_finite_scores_are_422(rel, score):
    cid = new_id("num")
    raw = f'{{"role":"user","content":"n","emotion_score":{score}}}'.encode()
    assert call(rel, "POST", f"/conversations/{cid}/messages", raw=raw)[0] == 422


@pytest.mark.parametrize(
    "query",
    [
        "limit=-1",
        "limit=0",
        "limit=201",
        "limit=100000000000000000000000",
        "limit=1e3",
        "limit=NaN",
        "before=-1",
        "before=bTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk",
    ],
)
def test_bad_paging_numbers_are_422(rel, query):
    cid = new_id("page")
    call(rel, "POST", f"/conversations/{cid}/messages", body=message())
    assert call(rel, "GET", f"/conversations/{cid}/messages?{query}")[0] == 422


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("guest_count", -1),
        ("guest_count", 0),
        ("guest_count", 10**20),
        ("guest_count", 1.5),
        ("guest_count", "12"),
        ("duration_minutes", -60),
        ("duration_minutes", 10**12),
        ("duration_minutes", 59),
        ("duration_minutes", 1e308),
        ("event_start", "99999-01-01T00:00"),
        ("event_start", "0001-01-01T00:00"),
        ("event_start", -1),
        ("event_start", "2027-02-30T18:00"),
        ("event_start", "2027-01-01T18:00+05:00"),
        ("event_start", "2027-01-01T25:00"),
    ],
)
def test_huge_negative_and_impossible_booking_values_are_422(rel, field, value):
    body = booking_body(local_start(rel.fresh_day(), 18))
    body[field] = value
    assert call(rel, "POST", "/bookings", body=body)[0] == 422


# -- DST --------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("start", "zone"),
    [
        ("2027-03-14T02:30", "America/Los_Angeles"),  # spring forward: 02:00-03:00 does not exist
        ("2027-03-28T02:30", "Europe/Berlin"),
        ("2027-11-07T01:30", "America/Los_Angeles"),  # fall back: 01:00-02:00 happens twice
        ("2027-10-31T02:30", "Europe/Berlin"),
        ("2027-04-04T02:30", "Australia/Sydney"),  # southern hemisphere fall back
    ],
)
def test_dst_gaps_and_overlaps_are_422_with_the_reason(rel, start, zone):
    status, answer = call(rel, "POST", "/bookings", body=booking_body(start, timezone=zone))
    assert status == 422, answer
    assert any(d.get("type") in ("dst_gap", "dst_ambiguous") for d in answer["error"]["details"]), answer


def test_times_next_to_dst_transitions_book_with_the_right_offset(rel):
    for start, zone, offset in (
        ("2027-03-14T03:30", "America/Los_Angeles", "-07:00"),
        ("2027-11-07T02:30", "America/Los_Angeles", "-08:00"),
        ("2027-03-14T01:30", "America/Los_Angeles", "-08:00"),
    ):
        status, booking = call(rel, "POST", "/bookings", body=booking_body(start, timezone=zone, duration_minutes=60))
        assert status == 201, booking
        assert booking["event_start"] == f"{start}:00{offset}"


# -- unicode -------------------------------------------------------------------------------------------
def test_unicode_names_addresses_and_messages_are_stored_byte_exact(rel):
    cid = new_id("uni")
    day = rel.fresh_day(len(UNICODE))
    for n, text in enumerate(UNICODE):
        status, stored = call(
            rel, "POST", f"/conversations/{cid}/messages", body=message(text, metadata={text: [text]})
        )
        assert status == 201 and stored["content"] == text
        row = rel.one(
            "SELECT content, metadata, convert_to(content, 'UTF8') AS bytes FROM messages WHERE id = %s",
            (stored["id"],),
        )
        assert (
            row["content"] == text and bytes(row["bytes"]) == text.encode("utf-8") and row["metadata"] == {text: [text]}
        )
        body = booking_body(local_start(day + n, 18), notes=text, conversation_id=cid)
        body["customer"]["name"] = text
        body["address"] = {"line1": text, "line2": text, "city": text, "state": text, "postal_code": "〒106-0032"}
        status, booking = call(rel, "POST", "/bookings", body=body)
        assert status == 201, booking
        fetched = call(rel, "GET", f"/bookings/{booking['id']}")[1]
        assert fetched["customer"]["name"] == text.strip() and fetched["notes"] == text
        assert fetched["address"]["line1"] == text.strip() and fetched["address"]["postal_code"] == "〒106-0032"
    page = call(rel, "GET", f"/conversations/{cid}/messages?limit=50")[1]
    assert [m["content"] for m in page["items"] if m["role"] == "user"] == UNICODE


def test_a_percent_encoded_conversation_id_is_the_decoded_one(rel):
    cid = new_id("web")
    status, stored = call(rel, "POST", f"/conversations/web%3A{cid}/messages", body=message())
    assert status == 201 and stored["conversation_id"] == f"web:{cid}"
    assert call(rel, "GET", f"/conversations/web:{cid}")[1]["message_count"] == 1
    assert call(rel, "GET", f"/conversations/web%3A{cid}/messages")[1]["items"][0]["id"] == stored["id"]
    assert call(rel, "GET", f"/conversations/web%2F{cid}")[0] == 422  # an encoded slash is not an id character
