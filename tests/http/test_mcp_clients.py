"""MCP clients nobody here wrote, against the local stack (template.yaml's gateway and authorizer, the
real handler, the tests' PostgreSQL): the official TypeScript SDK's client (clients/mcp_ts_client.mjs),
the MCP Inspector CLI and the official Python SDK's client (``mcp``). Each lists the tools and calls
every one; each error reaches it as a tool error (``isError``, the REST error body in the text),
never a protocol error: a ``slot_full`` with its free starts above all. The npm packages are pinned by
clients/package-lock.json (``make clients``: npm ci).

Also the authorization discovery the clients use: the protected-resource metadata (RFC 9728) and
what the gateway's authorizer answers, as on AWS."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx2
import pytest
from mcp import ClientSession

from tests.support.common import ROOT
from tests.support.mcp import TOOLS, TZ, far_day, run

CLIENTS = ROOT / "clients"
BIN = CLIENTS / "node_modules" / ".bin"


@pytest.fixture(scope="module")
def node_clients() -> None:
    if not (BIN / "mcp-inspector").exists():
        pytest.fail("the npm clients are not installed: run `make clients` (npm ci in clients/)")


def _rest(stack: Any, method: str, path: str, body: Any = None, **headers: str) -> tuple[int, Any]:
    with httpx2.Client(timeout=60) as http:
        answer = http.request(method, f"{stack.url}{path}", json=body, headers={**stack.auth_headers(), **headers})
    return answer.status_code, answer.json()


def _booking(start: str, chat: str, n: int) -> dict[str, Any]:
    return {
        "customer": {"name": f"Guest {n}", "phone": f"+1415555{n:04d}", "email": f"guest{n}@example.com"},
        "event_start": start,
        "timezone": TZ,
        "guest_count": 8,
        "address": {"line1": "1 Market St", "city": "San Francisco", "state": "CA", "postal_code": "94105"},
        "conversation_id": chat,
    }


def scenario(stack: Any) -> dict[str, Any]:
    """A day of its own, made ready over REST: 18:00 full (the three chefs), a booking to read, one to
    move, one to cancel, a chat with a message; then the plan: every tool once, plus two errors
    (create_booking at 18:00, ``slot_full``; check_availability for yesterday, ``validation_error``).
    No call depends on another's result, so a client may make them in any order."""
    day = far_day()
    chat = f"clients-{uuid.uuid4().hex[:10]}"
    status, free = _rest(stack, "GET", f"/availability?date={day}&timezone={TZ}")
    assert status == 200, free
    starts = free["days"][0]["starts"]
    full, listed = f"{day}T18:00", next(s for s in starts if "T11:00" in s)
    ids = []
    for n, start in enumerate((full, full, full, f"{day}T13:00", f"{day}T12:00")):
        status, booking = _rest(stack, "POST", "/bookings", _booking(start, chat, n))
        assert status == 201, booking
        ids.append(booking["id"])
    status, _ = _rest(stack, "POST", f"/conversations/{chat}/messages", {"role": "user", "content": "Hi there"})
    assert status == 201
    new = {**_booking(listed, chat, 9), "idempotency_key": str(uuid.uuid4())}
    plan = [
        ("check_availability", {"date": day.isoformat(), "timezone": TZ}),
        ("create_booking", {**_booking(full, chat, 8), "idempotency_key": str(uuid.uuid4())}),  # slot_full
        ("create_booking", new),  # a start as availability lists it, with its offset
        ("find_bookings", {"conversation_id": chat}),
        ("get_booking", {"booking_id": ids[0]}),
        ("reschedule_booking", {"booking_id": ids[3], "event_start": f"{day}T14:00"}),
        ("cancel_booking", {"booking_id": ids[4]}),
        ("store_message", {"conversation_id": chat, "role": "user", "content": "A chef for 8, please."}),
        ("get_conversation_history", {"conversation_id": chat}),
        ("check_availability", {"date": (datetime.now(UTC).date() - timedelta(days=2)).isoformat(), "timezone": TZ}),
    ]
    return {"day": day, "full": full, "listed": listed, "plan": plan}


def check_results(name: str, world: dict[str, Any], results: list[dict[str, Any]]) -> dict[str, Any]:
    """Each result of the plan as a conforming client got it: ``isError`` where the call failed, the
    REST error body in the text content (no structuredContent), the success's structuredContent."""
    assert len(results) == len(world["plan"]), name
    errors = {1: "slot_full", 9: "validation_error"}
    for i, ((tool, _), result) in enumerate(zip(world["plan"], results, strict=True)):
        assert "thrown" not in result, (name, tool, result)
        assert result.get("isError", False) == (i in errors), (name, tool, result)
        text = json.loads(result["content"][0]["text"])
        if i in errors:
            assert "structuredContent" not in result or result["structuredContent"] is None, (name, tool)
            assert text["error"]["code"] == errors[i], (name, tool, text)
        else:
            assert result["structuredContent"] == text, (name, tool)
    full = json.loads(results[1]["content"][0]["text"])["error"]
    free = full["details"]["next_free_starts"]
    assert free and all(s.startswith(world["day"].isoformat()) and s[-6] in "+-" for s in free), (name, full)
    assert not any(s.startswith(world["full"]) for s in free), (name, free)
    past = json.loads(results[9]["content"][0]["text"])["error"]
    assert past["details"][0]["loc"][-1] == "date" and past["details"][0]["type"] == "date_past", (name, past)
    assert results[2]["structuredContent"]["event_start"] == world["listed"], name
    return full


@pytest.mark.timeout(300)  # a node process and eleven REST and MCP round trips; more on a loaded machine
def test_the_typescript_sdk_client(app_stack, node_clients):
    world = scenario(app_stack)
    plan = [{"name": n, "arguments": a} for n, a in world["plan"]]
    done = subprocess.run(
        ["node", str(CLIENTS / "mcp_ts_client.mjs"), f"{app_stack.url}/mcp"],
        input=json.dumps(plan),
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, "MCP_TOKEN": app_stack.token()},
        check=False,
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert set(out["tools"]) == TOOLS and out["server"]["name"] == "hibachi-assistant-tools"
    full = check_results("typescript-sdk", world, [c.get("result", c) for c in out["calls"]])
    assert full["code"] == "slot_full" and full["details"]["next_free_starts"]


def _inspector(url: str, token: str, *args: str) -> subprocess.CompletedProcess[str]:
    home = CLIENTS / "node_modules" / ".inspector-home"  # its catalog and client config, never ~/
    return subprocess.run(
        [
            str(BIN / "mcp-inspector"),
            "--cli",
            url,
            "--transport",
            "http",
            "--header",
            f"Authorization: Bearer {token}",
            "--connect-timeout",
            "60000",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={
            **os.environ,
            "MCP_CATALOG_PATH": str(home / "mcp.json"),
            "MCP_CLIENT_CONFIG_PATH": str(home / "client.json"),
        },
        check=False,
    )


@pytest.mark.timeout(600)  # eleven node processes: ~1 s of CPU each, far more on a loaded machine
def test_the_inspector_cli(app_stack, node_clients):
    url, token = f"{app_stack.url}/mcp", app_stack.token()
    listed = _inspector(url, token, "--method", "tools/list", "--strict")
    assert listed.returncode == 0, listed.stderr  # --strict: exit 6 on a schema portability error
    assert {t["name"] for t in json.loads(listed.stdout)["tools"]} == TOOLS
    assert "Warning" not in listed.stderr and "Error" not in listed.stderr, listed.stderr
    world = scenario(app_stack)

    def call(step: tuple[str, dict[str, Any]]) -> dict[str, Any]:
        tool, arguments = step
        done = _inspector(
            url, token, "--method", "tools/call", "--tool-name", tool, "--tool-args-json", json.dumps(arguments)
        )
        result: dict[str, Any] = json.loads(done.stdout) if done.stdout.strip() else {"thrown": done.stderr}
        # exit 5: the tool answered isError (the CLI's documented code); anything else would be a failure
        assert done.returncode == (5 if result.get("isError") else 0), (tool, done.returncode, done.stderr)
        return result

    with ThreadPoolExecutor(2) as pool:  # independent calls (scenario): two at once keeps CI short
        results = list(pool.map(call, world["plan"]))
    check_results("inspector-cli", world, results)


@pytest.mark.timeout(300)
def test_the_python_sdk_client(app_stack):
    world = scenario(app_stack)

    async def steps(session: ClientSession) -> tuple[list[str], list[dict[str, Any]]]:
        await session.initialize()
        tools = [t.name for t in (await session.list_tools()).tools]
        results = []
        for tool, arguments in world["plan"]:
            result = await session.call_tool(tool, arguments)
            results.append(result.model_dump(mode="json", by_alias=True, exclude_none=True))
        return tools, results

    tools, results = run(f"{app_stack.url}/mcp", app_stack.token(), steps)
    assert set(tools) == TOOLS
    check_results("python-sdk", world, results)


def test_authorization_discovery_as_on_aws(app_stack):
    """The metadata the clients find at the well-known locations, and the authorizer's 401 as AWS's
    JWT authorizer answers it (no resource_metadata: docs/ARCHITECTURE.md, "Authorization discovery")."""
    with httpx2.Client(timeout=60) as http:
        mcp = http.get(f"{app_stack.url}/.well-known/oauth-protected-resource/mcp")
        api = http.get(f"{app_stack.url}/.well-known/oauth-protected-resource").json()
        assert mcp.status_code == 200 and mcp.headers["cache-control"].startswith("public")
        assert mcp.json()["resource"] == f"{app_stack.url}/mcp"  # the host the client used
        assert mcp.json()["authorization_servers"] == [app_stack.authority.issuer]
        assert set(mcp.json()["scopes_supported"]) == {
            "bookings:read",
            "bookings:write",
            "messages:write",
            "conversations:read",
        }
        assert api["authorization_servers"] == [app_stack.authority.issuer] and "ops:read" in api["scopes_supported"]
        bare = http.post(f"{app_stack.url}/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
        assert bare.status_code == 401 and bare.headers["www-authenticate"] == "Bearer"
        expired = app_stack.token(ttl=-60)
        stale = http.post(f"{app_stack.url}/mcp", json={}, headers={"authorization": f"Bearer {expired}"})
        assert stale.status_code == 401 and 'error="invalid_token"' in stale.headers["www-authenticate"]
        other = http.post(
            f"{app_stack.url}/mcp", json={}, headers={"authorization": f"Bearer {app_stack.token(['ops:read'])}"}
        )
        assert other.status_code == 403 and 'error="insufficient_scope"' in other.headers["www-authenticate"]
