"""What the benchmark measures: one entry per API operation, per cold-started function, per job type.

Adding an operation is one ``Operation(...)`` in ``OPERATIONS`` (plus, if it needs data that does
not exist yet, one setup function in ``SETUPS``). The round-trip guards in ``tests/perf`` use the
same entries.

Request builders get ``(fixtures, client, n)``: the setup's fixtures, the client (thread) number
and ``n``, unique within a run, so every write is a new one (idempotency keys, booking slots).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

CHAT_TEXT = (
    "Hi! We'd like a hibachi chef for my dad's 60th birthday on the patio, about 14 adults and "
    "4 kids. Do you bring the grill, and can you do a shrimp-free menu for two guests?"
)
HISTORY_MESSAGES = 60  # a history conversation holds more than one page (the default page is 50)


class Counter:
    """A thread-safe counter that can also hand out blocks (``take``) to other processes.

    With ``end``, the numbers run out there: one more is an error (``RuntimeError``, naming ``what``),
    never a number that the holder of the next block uses too (a booking slot or an Idempotency-Key
    two clients would share)."""

    def __init__(self, start: int = 0, end: int | None = None, what: str = "numbers"):
        self._next = start
        self._end = end
        self._what = what
        self._lock = threading.Lock()

    def __next__(self) -> int:
        return self.take(1)

    def __iter__(self) -> Counter:
        return self

    def take(self, count: int) -> int:
        with self._lock:
            first = self._next
            if self._end is not None and first + count > self._end:
                raise RuntimeError(f"{self._what}: {count} more wanted, {self._end - first} left")
            self._next += count
            return first


@dataclass
class Request:
    path_parameters: dict[str, str]
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    query: dict[str, str] | None = None


@dataclass(frozen=True)
class Operation:
    name: str
    function: str  # folder under functions/
    route_key: str  # the HTTP API route key
    scopes: tuple[str, ...]
    setup: str  # key in SETUPS: the data the requests need
    request: Callable[[dict[str, Any], int, int], Request]
    ok: tuple[int, ...] = (200,)
    enqueues: bool = False  # sends an SQS job on the hot path
    headline: bool = False  # named in the latency/throughput targets
    verify: Callable[[dict[str, Any], Any], bool] | None = None  # (event, response body): is it ours?
    books: bool = False  # each request books a slot of its own (``booking_body``: ``fixtures["slots"]``)

    def event(self, fixtures: dict[str, Any], client: int, n: int, *, assistant: bool = False) -> dict[str, Any]:
        """The API Gateway (HTTP API, payload 2.0) event of request ``n`` of ``client``: a staff
        token's (business-wide, as the bench has always measured), or with ``assistant`` the
        assistant's in the client's chat (no staff; the chat in the Hibachi-Conversation header)."""
        from local.events import http_event

        req = self.request(fixtures, client, n)
        method, template = self.route_key.split(" ", 1)
        headers = {"content-type": "application/json", "user-agent": "hibachi-bench", **req.headers}
        scopes = list(self.scopes)
        if assistant:
            headers["hibachi-conversation"] = f"bench-{fixtures['run']}-chat-{client}"
        else:
            scopes.append("staff")
        return http_event(
            method,
            template.format(**req.path_parameters),
            route_key=self.route_key,
            path_parameters=req.path_parameters or None,
            query=req.query,
            headers=headers,
            body=None if req.body is None else json.dumps(req.body),
            claims={"sub": f"bench-client-{client}"},
            scopes=scopes,
        )


# -- setups: run once per database with the current settings (hibachi's own SQL) -----------------------
def setup_conversations(clients: int, run: str) -> dict[str, Any]:
    """Per client: a chat (one message so far) and a history of ``HISTORY_MESSAGES`` messages."""
    from hibachi.conversations import repository
    from hibachi.db import get_db

    db = get_db()
    chats, histories = [], []
    for c in range(clients):
        chat, history = f"bench-{run}-chat-{c}", f"bench-{run}-history-{c}"
        fields: dict[str, Any] = {
            "metadata": {"locale": "en-US"},
            "idempotency_key": None,
            "customer_id": f"customer-{c}",
            "channel": "web",
        }
        repository.insert_message(db, conversation_id=chat, role="user", content=CHAT_TEXT, emotion_score=0.4, **fields)
        for k in range(HISTORY_MESSAGES):
            repository.insert_message(
                db,
                conversation_id=history,
                role="user" if k % 2 == 0 else "assistant",
                content=f"{CHAT_TEXT} ({k})",
                emotion_score=0.1 if k % 2 == 0 else None,
                **fields,
            )
        chats.append(chat)
        histories.append(history)
    return {"chat": chats, "history": histories}


# Every booking gets a free chef without racing another client for it (the happy path, one round
# trip): slot number s is slot k = s mod (4 x SLOT_DAYS), day k // 4 from the day after tomorrow, at
# 11:00, 14:00, 17:00 or 20:00 in Los Angeles (3 hours apart: 120 minutes + the 60-minute travel
# buffer). Everything a run books (the setups, the requests of the operations that book, the cold
# starts, the worker's setups) takes its slot numbers from the run's one counter (``booking_slots``),
# so each slot is booked at most once per round of 4 x SLOT_DAYS numbers, and the counter ends after
# as many rounds as there are chefs: no booking finds its slot full (a 409, or a slot_full tool error,
# which the run counts as an error), and the concurrent clients of a run (blocks far smaller than a
# round) never share a slot.
BOOKING_ZONE = "America/Los_Angeles"
SLOT_HOURS = (11, 14, 17, 20)
SLOT_DAYS = 1080  # within the 3-year horizon; 3 chefs x 4 slots x 1080 days = 12,960 bookings a run
SEARCH_PHONE = "+14155550123"  # every bench booking's: search_bookings reads the first page of many


def _slot_base(run: str) -> int:
    """Where a run's slots start: far ahead (days 750-1000), varying with the run, so the guards in
    tests/perf do not land on the slots other tests filled in a shared test database."""
    import zlib

    return 3000 + zlib.crc32(run.encode()) % 1000


_SLOT_COUNTERS: dict[str, Any] = {}


def booking_slots(run: str) -> Any:
    """The run's one slot counter (``bench.measure.Counter``), ending after ``chef_count`` rounds."""
    from hibachi.settings import get_settings

    if run not in _SLOT_COUNTERS:
        first = _slot_base(run)
        end = first + get_settings().chef_count * len(SLOT_HOURS) * SLOT_DAYS
        _SLOT_COUNTERS[run] = Counter(first, end, f"the booking slots of run {run} (one booking per chef each)")
    return _SLOT_COUNTERS[run]


def next_start(fx: dict[str, Any]) -> str:
    """The local start of the run's next slot (``fixtures["slots"]``), as a booking body gives it."""
    k = next(fx["slots"]) % (len(SLOT_HOURS) * SLOT_DAYS)
    return f"{_slot_day(k).isoformat()}T{SLOT_HOURS[k % len(SLOT_HOURS)]:02d}:00"


def booking_body(fx: dict[str, Any], client: int) -> dict[str, Any]:
    return {
        "customer": {
            "name": f"Dana Whitfield {client}",
            "phone": SEARCH_PHONE,
            "email": "dana.whitfield@example.com",
        },
        "event_start": next_start(fx),
        "timezone": BOOKING_ZONE,
        "duration_minutes": 120,
        "guest_count": 14,
        "address": {"line1": "1200 Seacliff Ave", "city": "San Francisco", "state": "CA", "postal_code": "94121"},
        "conversation_id": f"bench-{fx['run']}-chat-{client}",
        "notes": "Shrimp-free menu for two guests.",
    }


def _new_bookings(fx: dict[str, Any], count: int) -> list[str]:
    """``count`` bookings through hibachi's own service (one statement each; the follow-up job is not
    sent: the settings have no queue). A slot that earlier parts of the run already filled (the
    throughput runs book thousands) is skipped for the next one."""
    from hibachi.bookings import service
    from hibachi.bookings.models import BookingIn
    from hibachi.callers import Caller

    bench = Caller(owner="bench", sub="bench", client_id=None, staff=True, conversation_id=None, via="bench")

    ids: list[str] = []
    skipped = 0
    while len(ids) < count:
        try:
            booking, _ = service.create_booking(
                BookingIn.model_validate(booking_body(fx, len(ids))),
                caller=bench,
                idempotency_key=None,
                correlation_id=None,
            )
        except service.SlotFull:
            skipped += 1
            if skipped > len(SLOT_HOURS) * SLOT_DAYS:
                raise
            continue
        ids.append(str(booking.id))
    return ids


def setup_bookings(clients: int, run: str) -> dict[str, Any]:
    """A booking per client (to read back), and the run's slot counter, for the new ones."""
    fx: dict[str, Any] = {"run": run, "slots": booking_slots(run)}
    fx["bookings"] = _new_bookings(fx, clients)
    return fx


# Availability is measured over AVAILABILITY_DAYS days with at least AVAILABILITY_TABLE bookings in the
# table: the setup books the run's next slots until the table holds that many, so the days asked for
# hold bookings (one chef each of their 4 slots).
AVAILABILITY_TABLE = 1000
AVAILABILITY_DAYS = 14


def _slot_day(slot: int) -> Any:
    from datetime import datetime, timedelta
    from zoneinfo import ZoneInfo

    k = slot % (len(SLOT_HOURS) * SLOT_DAYS)
    return datetime.now(ZoneInfo(BOOKING_ZONE)).date() + timedelta(days=2 + k // len(SLOT_HOURS))


def setup_availability(clients: int, run: str) -> dict[str, Any]:
    """Bookings until the table holds ``AVAILABILITY_TABLE``, and the first day of the window."""
    from hibachi import settings as settings_module
    from hibachi.db import get_db

    fx: dict[str, Any] = {"run": run, "slots": booking_slots(run)}
    first = fx["slots"].take(0)  # the slot the first of these bookings gets
    found = get_db().fetchone("SELECT count(*) AS n FROM bookings")
    have = int(found["n"]) if found else 0
    with settings_module.override(jobs_queue_url=None):  # no follow-up jobs for these (tests/perf has a queue)
        _new_bookings(fx, max(AVAILABILITY_DAYS * len(SLOT_HOURS), AVAILABILITY_TABLE - have))
    fx["date"] = _slot_day(first).isoformat()
    return fx


SETUPS: dict[str, Callable[[int, str], dict[str, Any]]] = {
    "conversations": setup_conversations,
    "bookings": setup_bookings,
    "availability": setup_availability,
}


# -- the API operations -------------------------------------------------------------------------------------
SEARCH = {"phone": SEARCH_PHONE, "status": "confirmed", "limit": 20}
WINDOW = {"days": AVAILABILITY_DAYS, "timezone": BOOKING_ZONE, "duration_minutes": 120}
Arguments = Callable[[dict[str, Any], int, int], dict[str, Any]]


def _found(items: list[dict[str, Any]]) -> bool:
    return len(items) == 20 and all(b["customer"]["phone"] == SEARCH_PHONE for b in items)


def _open_window(days: list[dict[str, Any]]) -> bool:
    return len(days) == AVAILABILITY_DAYS and any(d["starts"] for d in days)


def _store_message(fx: dict[str, Any], client: int, n: int) -> Request:
    return Request(
        {"conversation_id": fx["chat"][client]},
        {
            "role": "user",
            "content": f"{CHAT_TEXT} (turn {n})",
            "emotion_score": round((n % 21 - 10) / 10, 1),
            "customer_id": f"customer-{client}",
            "channel": "web",
            "metadata": {"locale": "en-US", "turn": n},
        },
        {"idempotency-key": f"{fx['run']}-{n}"},
    )


def _body(event: dict[str, Any]) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(event["body"])
    return body


def _same_message(event: dict[str, Any], out: Any) -> bool:
    return bool(
        out["content"] == _body(event)["content"]
        and out["conversation_id"] == event["pathParameters"]["conversation_id"]
    )


def _same_booking(event: dict[str, Any], out: Any) -> bool:
    body = _body(event)
    return bool(out["event_start"][:16] == body["event_start"] and out["customer"]["name"] == body["customer"]["name"])


OPERATIONS: list[Operation] = [
    Operation(
        "store_message",
        "store_message",
        "POST /conversations/{conversation_id}/messages",
        ("messages:write",),
        "conversations",
        _store_message,
        ok=(201,),
        enqueues=True,
        headline=True,
        verify=_same_message,
    ),
    Operation(
        "get_conversation",
        "store_message",
        "GET /conversations/{conversation_id}",
        ("conversations:read",),
        "conversations",
        lambda fx, client, n: Request({"conversation_id": fx["chat"][client]}),
        verify=lambda event, out: out["id"] == event["pathParameters"]["conversation_id"],
    ),
    Operation(
        "list_messages",
        "store_message",
        "GET /conversations/{conversation_id}/messages",
        ("conversations:read",),
        "conversations",
        lambda fx, client, n: Request({"conversation_id": fx["history"][client]}),
        verify=lambda event, out: (
            all(m["conversation_id"] == event["pathParameters"]["conversation_id"] for m in out["items"])
            and len(out["items"]) == 50
        ),
    ),
    Operation(
        "create_booking",
        "create_booking",
        "POST /bookings",
        ("bookings:write",),
        "bookings",
        lambda fx, client, n: Request({}, booking_body(fx, client), {"idempotency-key": f"{fx['run']}-b-{n}"}),
        ok=(201,),
        enqueues=True,
        headline=True,
        verify=_same_booking,
        books=True,
    ),
    Operation(
        "get_booking",
        "create_booking",
        "GET /bookings/{booking_id}",
        ("bookings:read",),
        "bookings",
        lambda fx, client, n: Request({"booking_id": fx["bookings"][client]}),
        verify=lambda event, out: out["id"] == event["pathParameters"]["booking_id"],
    ),
    Operation(
        "availability",
        "create_booking",
        "GET /availability",
        ("bookings:read",),
        "availability",
        lambda fx, client, n: Request({}, query={"date": fx["date"], **{k: str(v) for k, v in WINDOW.items()}}),
        verify=lambda event, out: (
            [d["date"] for d in out["days"]][:1] == [event["queryStringParameters"]["date"]]
            and _open_window(out["days"])
        ),
    ),
    Operation(
        "search_bookings",
        "create_booking",
        "POST /bookings/search",
        ("bookings:read",),
        "bookings",
        lambda fx, client, n: Request({}, SEARCH),
        verify=lambda event, out: _found(out["items"]),
    ),
]


# -- the same operations as MCP tool calls (POST /mcp, functions/assistant_tools) ----------------------------
MCP_SCOPES = ("bookings:read", "bookings:write", "messages:write", "conversations:read")


def error_code(out: Any) -> str | None:
    """The ``error.code`` of an answer that is an error (a REST error body, an MCP tool error, a JSON-RPC
    error), else None: what a failed ``verify`` reports."""
    result = out.get("result") if isinstance(out, dict) else None
    if isinstance(result, dict) and result.get("isError"):  # the error is the text content (hibachi.mcp)
        try:
            out = json.loads(result["content"][0]["text"])
        except (KeyError, IndexError, TypeError, ValueError):
            out = None
    error = out.get("error") if isinstance(out, dict) else None
    return str(error.get("code")) if isinstance(error, dict) else None


def _mcp(name: str, setup: str, tool: str, arguments: Arguments, check: Callable[..., bool], **kw: Any) -> Operation:
    """A tool call of ``functions/assistant_tools`` (POST /mcp) with ``arguments(fixtures, client, n)``;
    it answers the request when its structured result passes ``check(result, arguments)``."""

    def request(fx: dict[str, Any], client: int, n: int) -> Request:
        call = {"name": tool, "arguments": arguments(fx, client, n)}
        return Request({}, {"jsonrpc": "2.0", "id": n, "method": "tools/call", "params": call})

    def verify(event: dict[str, Any], out: Any) -> bool:
        sent = _body(event)
        result = out.get("result") if isinstance(out, dict) and out.get("id") == sent["id"] else None
        if not isinstance(result, dict) or result.get("isError"):
            return False
        return bool(check(result["structuredContent"], sent["params"]["arguments"]))

    return Operation(name, "assistant_tools", "POST /mcp", MCP_SCOPES, setup, request, verify=verify, **kw)


def _mcp_store_message(fx: dict[str, Any], client: int, n: int) -> dict[str, Any]:
    rest = _store_message(fx, client, n)
    # the tool's metadata is a list of string pairs (a closed schema for strict hosts)
    metadata = [{"key": k, "value": str(v)} for k, v in rest.body["metadata"].items()]
    return {
        **rest.body,
        **rest.path_parameters,
        "metadata": metadata,
        "idempotency_key": rest.headers["idempotency-key"],
    }


def _mcp_create_booking(fx: dict[str, Any], client: int, n: int) -> dict[str, Any]:
    return {**booking_body(fx, client), "idempotency_key": f"{fx['run']}-mb-{n}"}


OPERATIONS += [
    _mcp(
        "mcp_store_message",
        "conversations",
        "store_message",
        _mcp_store_message,
        lambda r, args: r["content"] == args["content"],
        enqueues=True,
    ),
    _mcp(
        "mcp_get_conversation_history",
        "conversations",
        "get_conversation_history",
        lambda fx, client, n: {"conversation_id": fx["history"][client]},
        lambda r, args: len(r["items"]) == 50,
    ),
    _mcp(
        "mcp_create_booking",
        "bookings",
        "create_booking",
        _mcp_create_booking,
        lambda r, args: r["event_start"][:16] == args["event_start"],
        enqueues=True,
        books=True,
    ),
    _mcp(
        "mcp_check_availability",
        "availability",
        "check_availability",
        lambda fx, client, n: {"date": fx["date"], **WINDOW},
        lambda r, args: _open_window(r["days"]),
    ),
    _mcp(
        "mcp_find_bookings", "bookings", "find_bookings", lambda fx, client, n: SEARCH, lambda r, _: _found(r["items"])
    ),
    _mcp(
        "mcp_get_booking",
        "bookings",
        "get_booking",
        lambda fx, client, n: {"booking_id": fx["bookings"][client]},
        lambda r, args: r["id"] == args["booking_id"],
    ),
]


# -- cold starts: a fresh process imports the handler and serves this first event ---------------------------
@dataclass(frozen=True)
class ColdStart:
    function: str
    first_request: str  # what the first event is, for the report
    event: Callable[[dict[str, Any], str], dict[str, Any]]  # (fixtures by setup key, unique tag) -> event
    setups: tuple[str, ...] = ()


def _cold_chat(name: str) -> Callable[[dict[str, Any], str], dict[str, Any]]:
    """The first message of a chat and key of the operation ``name`` and the tag alone (another
    operation's cold start with the same tag must not make it a replay): 1 statement + 1 SQS send."""
    op = next(o for o in OPERATIONS if o.name == name)
    return lambda fx, tag: op.event({"chat": [f"bench-cold-{name}-{tag}"], "run": f"cold-{name}-{tag}"}, 0, 1)


def _cold_health(fx: dict[str, Any], tag: str) -> dict[str, Any]:
    from local.events import http_event

    return http_event("GET", "/health", route_key="GET /health", headers={"user-agent": "hibachi-bench"})


def _cold_worker(fx: dict[str, Any], tag: str) -> dict[str, Any]:
    from local.events import sqs_event

    return sqs_event([job.model_dump_json() for job in emotion_jobs(fx["emotion"], 0, 10)])


def _cold_create_booking(fx: dict[str, Any], tag: str) -> dict[str, Any]:
    """A booking with an Idempotency-Key of the whole tag: the cold-start runs (``<run>-<i>``) and the
    typical-handler pairs (``<run>-typical-<i>``) must not send one key with two slots (a 422
    ``idempotency_key_reused`` would make ours the cheaper request)."""
    import zlib

    op = next(o for o in OPERATIONS if o.name == "create_booking")
    return op.event(fx["bookings"], 0, 10**6 + zlib.crc32(tag.encode()))


COLD_STARTS: list[ColdStart] = [
    ColdStart("store_message", "POST a scored message (1 statement + 1 SQS send)", _cold_chat("store_message")),
    ColdStart("create_booking", "POST /bookings (1 statement + 1 SQS send)", _cold_create_booking, ("bookings",)),
    ColdStart(
        "assistant_tools",
        "POST /mcp tools/call store_message (1 statement + 1 SQS send)",
        _cold_chat("mcp_store_message"),
    ),
    ColdStart("followup_worker", "SQS batch of 10 emotion_stats jobs", _cold_worker, ("emotion",)),
    ColdStart("health", "GET /health (SELECT 1)", _cold_health),
]


# -- worker job types: jobs/s in 10-record batches, round trips per batch -----------------------------------
EMOTION_CONVERSATIONS = 100
EMOTION_MESSAGES = 20


def setup_emotion(jobs_needed: int, run: str) -> dict[str, Any]:
    """``EMOTION_CONVERSATIONS`` conversations of ``EMOTION_MESSAGES`` scored messages each (the
    jobs cycle through them: a recomputation is the same work every time)."""
    from hibachi.conversations import repository
    from hibachi.db import get_db

    db = get_db()
    ids = []
    for c in range(EMOTION_CONVERSATIONS):
        cid = f"bench-{run}-emotion-{c}"
        for k in range(EMOTION_MESSAGES):
            repository.insert_message(
                db,
                conversation_id=cid,
                role="user",
                content=f"message {k}",
                emotion_score=round(((c + k) % 21 - 10) / 10, 1),
                metadata={},
                idempotency_key=None,
                customer_id=None,
                channel="web",
            )
        ids.append(cid)
    return {"ids": ids}


def setup_send(jobs_needed: int, run: str, table: str | None = "followups") -> dict[str, Any]:
    """One new booking per job, its follow-up and reminder recorded (hibachi's own statement) and
    then the follow-up (or the reminder: ``table``; None: neither, the jobs schedule them) made due
    now (bench SQL: a real follow-up is due a day after the event, a reminder a day before it)."""
    from hibachi.db import get_db
    from hibachi.followups import repository
    from psycopg import sql

    fx: dict[str, Any] = {"run": run, "slots": booking_slots(run)}
    fx["ids"] = _new_bookings(fx, jobs_needed)
    if table is None:
        return fx
    db = get_db()
    for start in range(0, len(fx["ids"]), 500):
        repository.sync_followups(db, fx["ids"][start : start + 500], reminder_lead_hours=24)
    db.execute(
        sql.SQL("UPDATE {} SET due_at = now() - interval '1 minute' WHERE booking_id = ANY(%(ids)s::uuid[])")
        .format(sql.Identifier(table))
        .as_string(),
        {"ids": fx["ids"]},
    )
    return fx


SETUPS.update(
    {
        "emotion": setup_emotion,
        "schedule": lambda jobs_needed, run: setup_send(jobs_needed, run, None),
        "send": setup_send,
        "remind": lambda jobs_needed, run: setup_send(jobs_needed, run, "reminders"),
    }
)


def fixtures_of(setup: str, count: int, run: str) -> dict[str, Any]:
    """The fixtures of ``SETUPS[setup]`` for ``count`` clients (or jobs), tagged with the run."""
    return {**SETUPS[setup](count, run), "run": run}


def emotion_jobs(fx: dict[str, Any], batch: int, size: int) -> list[Any]:
    from hibachi import jobs

    ids = fx["ids"]
    return [
        jobs.Job.new(jobs.EMOTION_STATS, f"emotion_stats:{cid}:{batch}", {"conversation_id": cid}, "bench")
        for cid in (ids[(batch * size + k) % len(ids)] for k in range(size))
    ]


def followup_jobs(fx: dict[str, Any], batch: int, size: int, job_type: str) -> list[Any]:
    """One job per booking of the batch: ``schedule_followup``, ``send_followup`` or ``send_reminder``."""
    from hibachi.followups.jobs import schedule_job, send_job

    ids: list[str] = fx["ids"]
    if (batch + 1) * size > len(ids):
        raise RuntimeError(f"setup made {len(ids)} bookings; batch {batch} needs more")
    if job_type == "schedule_followup":
        return [schedule_job(booking_id, 1, "bench") for booking_id in ids[batch * size : (batch + 1) * size]]
    return [
        send_job(booking_id, 1, "bench", job_type=job_type) for booking_id in ids[batch * size : (batch + 1) * size]
    ]


@dataclass(frozen=True)
class JobType:
    name: str
    setup: str  # key in SETUPS, called with the number of jobs needed
    jobs: Callable[[dict[str, Any], int, int], list[Any]]  # (fixtures, batch number, size) -> hibachi.jobs.Job list
    aws_calls: str = ""  # AWS calls per job, besides the database
    set_based: bool = True  # the "<= 2 round trips per batch" target applies
    max_batches: int | None = None  # fewer than the plan's (each job needs its own booking)
    function: str = "followup_worker"


JOB_TYPES: list[JobType] = [
    JobType("emotion_stats", "emotion", emotion_jobs),
    *(
        JobType(name, setup, partial(followup_jobs, job_type=name), aws, max_batches=60)
        for name, setup, aws in [
            ("schedule_followup", "schedule", "1 EventBridge Scheduler CreateSchedule"),
            ("send_followup", "send", "1 SNS Publish"),
            ("send_reminder", "remind", "1 SNS Publish"),
        ]
    ),
]
