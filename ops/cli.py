"""``python -m ops``: the on-call engineer's tool (RUNBOOK.md says when to use which command).

    python -m ops --local queues                      # the local stack (python -m local.run)
    python -m ops --stack hibachi-prod queues         # a deployed stack, with your AWS credentials

    queues                              depth of the jobs queue, its DLQ and the scheduler DLQ
    dlq list [--queue jobs|scheduler]   the messages in a DLQ (peeked: they stay there)
    dlq show ID                         one message in full (ID: SQS message id or job id)
    dlq redrive --all | --id ID ...     back to the jobs queue (SQS move task on AWS for --all,
                                        else receive, resend with body and attributes, delete)
    followups pending|failed            follow-ups waiting or given up
    events                              the event log's publishing backlog (unpublished events)
    events --follow [--seconds N]       local: every event as the bus delivers it, until Ctrl-C
    reconcile                           run the reconciler once, show its result and recent runs
    health                              GET /health, then the /health/details figures
    codes [--conversation ID]           local stack only: the one-time codes the worker delivered

Exit status: 0 fine, 1 something needs attention (degraded health, a failed redrive), 2 usage or
target errors.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from typing import Any

from ops import dlq
from ops.targets import AwsTarget, LocalTarget, Target, TargetError

DLQS = {"jobs": "jobs_dlq", "scheduler": "scheduler_dlq"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m ops", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--local", action="store_true", help="the local stack (moto + local PostgreSQL)")
    where.add_argument("--stack", metavar="NAME", help="a deployed CloudFormation stack")
    parser.add_argument("--region", help="AWS region (default: your AWS configuration)")
    parser.add_argument("--profile", help="AWS profile")
    parser.add_argument(
        "--endpoint-url", help="local: the moto endpoint (default http://127.0.0.1:$LOCAL_MOTO_PORT, 5055)"
    )
    parser.add_argument(
        "--database-url", help="local: PostgreSQL DSN (default $DATABASE_URL, else the local.run database)"
    )
    parser.add_argument("--prefix", default="hibachi", help="local: resource name prefix (hibachi)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("queues", help="queue and DLQ depths")

    d = sub.add_parser("dlq", help="inspect and redrive dead-letter queues")
    dsub = d.add_subparsers(dest="dlq_command", required=True)
    for name in ("list", "show", "redrive"):
        p = dsub.add_parser(name)
        p.add_argument("--queue", choices=sorted(DLQS), default="jobs", help="which DLQ (jobs)")
        if name == "list":
            p.add_argument("--limit", type=int, default=100)
        if name == "show":
            p.add_argument("id", help="SQS message id or job id")
        if name == "redrive":
            which = p.add_mutually_exclusive_group(required=True)
            which.add_argument("--all", action="store_true", help="every message")
            which.add_argument("--id", action="append", metavar="ID", help="this message (repeatable)")
            p.add_argument(
                "--method",
                choices=["auto", "move-task", "resend"],
                default="auto",
                help="auto: the SQS move task for --all on AWS's jobs DLQ, else resend",
            )
            p.add_argument("--wait", action="store_true", help="move task: wait until it finished")

    f = sub.add_parser("followups", help="follow-ups pending or failed")
    f.add_argument("status", choices=["pending", "failed"])
    f.add_argument("--limit", type=int, default=50)

    e = sub.add_parser("events", help="event publishing backlog, or follow the bus (local)")
    e.add_argument("--follow", action="store_true", help="local: print events as they are published")
    e.add_argument("--seconds", type=float, default=None, help="--follow: stop after this long")

    sub.add_parser("reconcile", help="run the reconciler once")
    sub.add_parser("health", help="health and details")
    c = sub.add_parser("codes", help="local: the one-time verification codes delivered")
    c.add_argument("--conversation", metavar="ID", help="that conversation's codes only")
    return parser


def make_target(args: argparse.Namespace) -> Target:
    if args.local:
        return LocalTarget(args.endpoint_url, args.database_url, prefix=args.prefix, region=args.region or "us-east-1")
    return AwsTarget(args.stack, region=args.region, profile=args.profile)


# -- output -----------------------------------------------------------------------------------------
def emit(args: argparse.Namespace, data: Any, text: str) -> None:
    print(json.dumps(data, indent=2, default=str) if args.json else text)


def table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    if not rows:
        return "(none)"
    cells = [[("" if r.get(c) is None else str(r.get(c))) for c in columns] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) for row in cells]
    return "\n".join(lines)


# -- commands ---------------------------------------------------------------------------------------
def queue_depths(target: Target) -> dict[str, Any]:
    from hibachi.ops import QUEUE_ATTRIBUTES, depth_of

    out: dict[str, Any] = {}
    for name, url in target.queue_urls().items():
        if not url:
            out[name] = {"status": "missing"}
            continue
        attrs = target.sqs.get_queue_attributes(QueueUrl=url, AttributeNames=QUEUE_ATTRIBUTES)["Attributes"]
        out[name] = {**depth_of(attrs), "url": url}
    return out


def cmd_queues(args: argparse.Namespace, target: Target) -> int:
    depths = queue_depths(target)
    age = target.oldest_age_s()
    data = {"queues": depths, "jobs_oldest_message_age_s": age}
    rows = [{"queue": k, **v} for k, v in depths.items()]
    text = table(rows, ["queue", "visible", "in_flight", "delayed"])
    if age is not None:
        text += f"\njobs queue: oldest message {age:.0f} s old (CloudWatch, last 5 min)"
    dead = sum(v.get("visible", 0) + v.get("in_flight", 0) for k, v in depths.items() if k.endswith("dlq"))
    if dead:
        text += f"\n{dead} message(s) in dead-letter queues: python -m ops ... dlq list"
    emit(args, data, text)
    return 0


def _dlq_url(target: Target, queue: str) -> str:
    url = target.queue_urls().get(DLQS[queue])
    if not url:
        raise TargetError(f"the {queue} DLQ does not exist on this target")
    return url


def cmd_dlq(args: argparse.Namespace, target: Target) -> int:
    url = _dlq_url(target, args.queue)
    if args.dlq_command == "list":
        rows = [dlq.summary(m) for m in dlq.peek(target.sqs, url, limit=args.limit)]
        emit(
            args,
            rows,
            table(rows, ["message_id", "job_type", "job_id", "correlation_id", "sent_at", "receive_count", "error"]),
        )
        return 0
    if args.dlq_command == "show":
        message = dlq.find(target.sqs, url, args.id)
        if message is None:
            print(f"no message {args.id!r} in the {args.queue} DLQ", file=sys.stderr)
            return 1
        data = {
            "summary": dlq.summary(message),
            "body": dlq.job_of(message) or message.get("Body"),
            "attributes": message.get("Attributes"),
            "message_attributes": message.get("MessageAttributes"),
        }
        emit(args, data, json.dumps(data, indent=2, default=str))
        return 0
    return redrive(args, target, url)


def redrive(args: argparse.Namespace, target: Target, url: str) -> int:
    jobs_url = target.queue_urls().get("jobs")
    if not jobs_url:
        raise TargetError("the jobs queue does not exist on this target")
    # The scheduler DLQ also holds reconciler ticks ({"task": "reconcile"}): those are not jobs and
    # are left where they are (a missed tick needs no redrive; the next one runs in 5 minutes).
    only_jobs = args.queue == "scheduler"
    use_task = (
        args.all
        and args.queue == "jobs"
        and args.method != "resend"
        and (args.method == "move-task" or target.supports_move_task)
    )
    if use_task and _move_task(args, target, url, jobs_url):
        return 0
    return _resend(args, target, url, jobs_url, only_jobs=only_jobs)


def _move_task(args: argparse.Namespace, target: Target, url: str, jobs_url: str) -> bool:
    """Redrive the whole DLQ with SQS's message move task; False when it is unavailable (resend)."""
    try:
        source_arn = target.queue_arn(url)
        task = dlq.start_move_task(target.sqs, source_arn, target.queue_arn(jobs_url))
        result: dict[str, Any] = {"method": "move-task", "task_handle": task.get("TaskHandle")}
        if args.wait:
            result["task"] = dlq.wait_move_task(target.sqs, source_arn)
        after = (
            f"\nfinished: {json.dumps(result.get('task'), default=str)}"
            if args.wait
            else "\nfollow it with `python -m ops ... queues` (the DLQ drains within minutes)"
        )
        emit(args, result, f"SQS message move task started: {result['task_handle']}{after}")
        return True
    except Exception as exc:
        if args.method == "move-task":
            raise TargetError(f"message move task failed: {exc}") from exc
        print(f"message move task unavailable ({type(exc).__name__}); resending instead", file=sys.stderr)
        return False


def _resend(args: argparse.Namespace, target: Target, url: str, jobs_url: str, *, only_jobs: bool) -> int:
    """Resend the selected messages (all, or ``args.id``) to the jobs queue, one by one."""
    chooser = None if args.all else dlq.Only(args.id)

    def select(message: dict[str, Any]) -> bool:
        if only_jobs and dlq.job_of(message) is None:
            return False
        return chooser is None or chooser(message)

    result = dlq.resend(target.sqs, url, jobs_url, select=select, stop=chooser.done if chooser else None)
    result["method"] = "resend"
    missing = sorted(chooser.wanted - chooser.found) if chooser else []
    result["not_found"] = missing
    text = f"redriven to the jobs queue: {len(result['moved'])}"
    if result["skipped"]:
        text += f"\nleft in the DLQ: {len(result['skipped'])} (not selected, or not a job)"
    if result["failed"]:
        text += f"\nfailed to resend: {result['failed']}"
    if missing:
        text += f"\nnot found: {', '.join(missing)}"
    emit(args, result, text)
    return 1 if result["failed"] or missing else 0


def cmd_followups(args: argparse.Namespace, target: Target) -> int:
    rows = target.followups(args.status, args.limit)
    emit(args, rows, table(rows, list(rows[0].keys()) if rows else ["booking_id"]))
    return 0


def event_line(event: dict[str, Any]) -> str:
    """One delivered EventBridge event as one line: time, detail-type, version, notice, id."""
    detail = event.get("detail") or {}
    return (
        f"{event.get('time', '')}  {event.get('detail-type', ''):<24} v{detail.get('version', '?'):<3} "
        f"{detail.get('notice', '')}  [{detail.get('id', '')}]"
    )


def cmd_events(args: argparse.Namespace, target: Target) -> int:
    if not args.follow:
        backlog = target.event_backlog()
        text = (
            f"unpublished: {backlog.get('unpublished')} (oldest {backlog.get('oldest_age_s')} s, "
            f"most attempts {backlog.get('max_attempts')}) {json.dumps(backlog.get('by_type') or {})}\n"
            f"published in the last hour: {backlog.get('published_last_hour')}"
        )
        emit(args, backlog, text)
        return 1 if backlog.get("unpublished") else 0
    import time

    url = target.events_feed()
    deadline = None if args.seconds is None else time.monotonic() + args.seconds
    try:
        while deadline is None or time.monotonic() < deadline:
            batch = target.sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1).get(
                "Messages", []
            )
            events = [json.loads(m["Body"]) for m in batch]
            events.sort(key=lambda e: (e.get("time", ""), (e.get("detail") or {}).get("version", 0)))
            for event in events:
                print(json.dumps(event, default=str) if args.json else event_line(event), flush=True)
            if batch:
                target.sqs.delete_message_batch(
                    QueueUrl=url,
                    Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)],
                )
    except KeyboardInterrupt:
        pass
    return 0


def cmd_reconcile(args: argparse.Namespace, target: Target) -> int:
    try:
        result = target.reconcile()
        headline = f"reconciler: re-enqueued {result.get('re_enqueued')} in {result.get('elapsed_ms')} ms"
    except TargetError as exc:  # a reconciler failed; the run is still recorded: show it
        result = {"error": str(exc)}
        headline = f"reconciler run failed: {exc}"
    runs = target.reconciler_runs(5)
    data = {"result": result, "recent_runs": runs}
    text = (
        headline
        + "\n\nrecent runs:\n"
        + table(runs, ["ran_at", "total", "re_enqueued", "errors", "elapsed_ms", "request_id"])
    )
    emit(args, data, text)
    return 1 if result.get("errors") or result.get("error") else 0


def cmd_health(args: argparse.Namespace, target: Target) -> int:
    status, body = target.health()
    try:
        details: dict[str, Any] | None = target.details()
    except TargetError as exc:
        details = {"status": "unavailable", "error": str(exc)}
    data = {"health": {"http_status": status, **body}, "details": details}
    text = f"GET /health: {status} {json.dumps(body)}\n\ndetails:\n{json.dumps(details, indent=2, default=str)}"
    emit(args, data, text)
    return 0 if status == 200 and (details or {}).get("status") == "ok" else 1


def cmd_codes(args: argparse.Namespace, target: Target) -> int:
    """What a customer would have received: the codes, newest last (the local stack's SNS inbox)."""
    rows = [
        {
            "sent_at": datetime.fromtimestamp(m["sent_at_ms"] / 1000, UTC).isoformat(timespec="seconds"),
            "conversation_id": m.get("conversation_id"),
            "channel": m.get("channel"),
            "to": next(iter((m.get("customer") or {}).values()), None),
            "code": m.get("code"),
            "expires_at": m.get("expires_at"),
        }
        for m in target.codes(args.conversation)
    ]
    emit(args, rows, table(rows, ["sent_at", "conversation_id", "channel", "to", "code", "expires_at"]))
    return 0


COMMANDS = {
    "queues": cmd_queues,
    "dlq": cmd_dlq,
    "followups": cmd_followups,
    "events": cmd_events,
    "reconcile": cmd_reconcile,
    "health": cmd_health,
    "codes": cmd_codes,
}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        target = make_target(args)
        return COMMANDS[args.command](args, target)
    except TargetError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (BotoCoreError, ClientError) as exc:  # credentials, permissions, an endpoint down
        print(f"error: AWS: {exc}", file=sys.stderr)
        return 2
