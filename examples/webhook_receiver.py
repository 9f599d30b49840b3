"""A small webhook receiver for the booking events (docs/EVENTS.md): what an integrator writes
behind the EventBridge API destination (template parameter ``EventWebhookUrl``), and what the local
stack's forwarder delivers to (``make run ARGS="--webhook-url http://127.0.0.1:8088/events
--webhook-api-key dev-key"``).

    python examples/webhook_receiver.py --port 8088 --api-key dev-key

It checks the API key (the connection's header, ``x-api-key``), answers 401 without it, and 2xx
fast; it drops repeats by ``detail.id`` (delivery is at least once) and keeps, per booking, the
highest ``detail.version`` seen, so a late, older event never overwrites a newer state. One line per
event on stdout. Standard library only.
"""

from __future__ import annotations

import argparse
import contextlib
import hmac
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from threading import Lock
from typing import Any


class Receiver:
    def __init__(self, api_key: str | None, header: str = "x-api-key"):
        self.api_key = api_key
        self.header = header
        self.seen: set[str] = set()
        self.versions: dict[str, int] = {}
        self.lock = Lock()

    def authorized(self, headers: Any) -> bool:
        if not self.api_key:
            return True
        given = headers.get(self.header) or ""
        return hmac.compare_digest(given.encode(), self.api_key.encode())

    def accept(self, event: dict[str, Any]) -> str:
        """What became of one event: 'new', 'repeat' (same id) or 'stale' (an older version)."""
        detail = event.get("detail") or {}
        event_id = str(detail.get("id") or event.get("id"))
        aggregate = str(detail.get("booking_id") or (detail.get("aggregate") or {}).get("id"))
        version = int(detail.get("version") or 0)
        with self.lock:
            if event_id in self.seen:
                return "repeat"
            self.seen.add(event_id)
            if version < self.versions.get(aggregate, 0):
                return "stale"
            self.versions[aggregate] = version
        return "new"


def make_handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            if not receiver.authorized(self.headers):
                self.send_response(401)
                self.end_headers()
                return
            length = int(self.headers.get("content-length") or 0)
            try:
                event = json.loads(self.rfile.read(length) or b"{}")
            except ValueError:
                self.send_response(400)
                self.end_headers()
                return
            outcome = receiver.accept(event)
            detail = event.get("detail") or {}
            print(
                f"{outcome:<6} {event.get('detail-type', '?'):<24} v{detail.get('version', '?')} "
                f"{detail.get('notice', '')} [{detail.get('id', '')}]",
                flush=True,
            )
            self.send_response(204)
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet access log
            return

    return Handler


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8088)
    parser.add_argument("--api-key", default=None, help="the API key the connection sends (none: accept any)")
    parser.add_argument("--header", default="x-api-key")
    args = parser.parse_args(argv)
    server = ThreadingHTTPServer((args.host, args.port), make_handler(Receiver(args.api_key, args.header)))
    print(f"receiving booking events on http://{args.host}:{server.server_port}/", flush=True)
    with contextlib.suppress(KeyboardInterrupt), server:
        server.serve_forever()
    return 0


if __name__ == "__main__":
    sys.exit(main())
