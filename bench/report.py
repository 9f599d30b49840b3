"""BENCHMARKS.md from the results of ``bench.run``: the targets, then a table per measurement."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from bench.measure import Summary
from bench.operations import OPERATIONS
from bench.sizes import LAMBDA_UNZIPPED_LIMIT_MB, MB

OLD = {
    "store_message": "745 ms mean, p50 726, p95 966",
    "create_booking": "~360 ms expected",
}
HEAVY = ("boto3", "aws_xray_sdk", "opentelemetry", "ddtrace", "yoyo", "requests", "moto")
HEADLINE = ("store_message", "create_booking")
PARTS = ("statement", "enqueue", "signing", "exchange")  # measured parts of a write's CPU (bench.measure.CpuParts)


def ms(value: float | None, digits: int = 1) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:,.{digits}f}"


def num(value: float | None, digits: int = 2) -> str:
    return "-" if value is None or math.isnan(value) else f"{value:.{digits}f}".rstrip("0").rstrip(".")


def verdict(ok: bool | None) -> str:
    return "-" if ok is None else ("**PASS**" if ok else "**MISS**")


def table(header: str, rows: list[list[str]]) -> str:
    """A Markdown table; ``header``: its cells separated by ``|``."""
    cells = header.split("|")
    lines = ["| " + " | ".join(cells) + " |", "|" + "|".join(" --- " for _ in cells) + "|"]
    return "\n".join(lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows])


def p50(values: list[float] | None) -> float:
    return Summary.of(values).p50 if values else math.nan


def _p50(result: Any) -> float:
    return p50(result.samples) if result is not None else math.nan


def _operations(results: Any) -> list[Any]:
    return [op for op in OPERATIONS if op.name in results.operations]


def _thread_cpu(result: Any) -> float:
    """p50 of the handler call's thread CPU (ms), NaN when not measured."""
    return p50(result.thread_cpu_ms) if result is not None else math.nan


def overhead(results: Any, op: Any) -> tuple[float, float, str]:
    """(handler p50, raw statement p50, what the handler figure is) at RTT 0, ms. An enqueuing operation
    is measured with its SQS send, the wait for SQS taken out; the others without SQS."""
    raw, r = p50(results.raw0.get(op.name)), results.rtt0.get(op.name)
    wait = r.cpu_parts_ms.get("wait") if op.enqueues and r is not None else None
    if wait and len(wait) == len(r.samples):
        adjusted = [s - w for s, w in zip(r.samples, wait, strict=True)]
        return p50(adjusted), raw, "handler with its SQS send, minus the wait for SQS"
    return _p50(results.rtt0.get(f"{op.name} (no SQS)") or r), raw, "handler"


# -- the targets: rows of (what, measured, target, verdict) ------------------------------------------------
def _target_1(results: Any) -> list[list[str]]:
    rows = []
    for op in (op for op in _operations(results) if op.name in HEADLINE):
        r = results.rtt0[op.name]
        rt, sends = r.rt_per_request, r.sends_per_request
        measured = f"{num(rt)} round trips + {num(sends)} SQS sends per request (n={r.completed}, errors {r.errors})"
        rows.append([op.name, measured, "1 (+1)", verdict(rt == 1.0 and (sends == 1.0 or not op.enqueues))])
    return rows


def _target_2(results: Any) -> list[list[str]]:
    rows = []
    after = _p50(results.rtt270.get("old after"))
    for name in HEADLINE:
        r = results.rtt270[name]
        s, ratio = r.summary, r.summary.p50 / after if after else math.nan
        measured = f"{ms(s.p50)} ms (p95 {ms(s.p95)}, p99 {ms(s.p99)}, n={r.completed}; old: {OLD[name]})"
        rows.append([f"{name}: p50 (with its SQS send)", measured, "≤ 300 ms", verdict(s.p50 <= 300)])
        measured = f"{num(ratio, 3)} ({ms(s.p50)} / {ms(after)} ms)"
        rows.append([f"{name}: p50 / old *after* p50", measured, "≤ 0.3", verdict(ratio <= 0.3)])
    return rows


def _target_3(results: Any) -> list[list[str]]:
    rows = []
    for op in _operations(results):
        r = results.throughput[op.name]
        no_sqs = results.throughput.get(f"{op.name} (no SQS)")
        extra = f"; without SQS {ms(no_sqs.throughput)} ops/s" if no_sqs else ""
        measured = f"{ms(r.throughput)} ops/s (p50 under load {ms(r.summary.p50)} ms, errors {r.errors}{extra})"
        what = op.name + (" (with its SQS send)" if op.enqueues else "")
        rows.append([what, measured, "≥ 100 ops/s (old: ~40)", verdict(r.throughput >= 100)])
    return rows


def _target_4(results: Any) -> list[list[str]]:
    rows = []
    for op in _operations(results):
        handler, raw, what = overhead(results, op)
        no_sqs, r = results.rtt0.get(f"{op.name} (no SQS)"), results.rtt0.get(op.name)
        also = f"; with `JOBS_QUEUE_URL` unset: {ms(_p50(no_sqs) - raw, 2)} ms" if op.enqueues and no_sqs else ""
        if op.enqueues and r is not None and r.cpu_parts_ms.get("enqueue"):
            also += f"; the SQS send's CPU {ms(p50(r.cpu_parts_ms['enqueue']), 2)} ms"
        measured = f"{ms(handler - raw, 2)} ms = {ms(handler, 2)} {what} − {ms(raw, 2)} raw SQL{also}"
        rows.append([op.name, measured, "≤ 1 ms", verdict(handler - raw <= 1.0)])
    return rows


def _target_5(results: Any) -> list[list[str]]:
    rows = []
    for c in results.cold:
        what = f"{c.function}: cold start (import + first request) / floor"
        if c.error or not c.floor:
            rows.append([what, f"error: {c.error[:200]}", "≤ 1.2 ×", "-"])
            continue
        measured = (
            f"{ms(c.total_ms, 0)} ms vs floor {ms(c.floor.inside_ms, 0)} ms = {num(c.ratio)} × "
            f"(process wall {ms(c.wall_ms, 0)} vs {ms(c.floor.wall_ms, 0)} ms = {num(c.wall_ratio)} ×)"
        )
        rows.append([what, measured, "≤ 1.2 ×", verdict(c.ratio <= 1.2)])
    for c in results.cold:
        heavy = [t for t in dict.fromkeys(m.split(".")[0] for m in c.third_import) if t.startswith(HEAVY)]
        found = ", ".join(heavy) if heavy else "none of " + ", ".join(HEAVY)
        lazy = f"; the first request adds {', '.join(c.lazy)}" if c.lazy else ""
        rows.append([f"{c.function}: heavy imports at start", found + lazy, "none", verdict(not heavy)])
    return rows


def _target_6(results: Any) -> list[list[str]]:
    rows = []
    if (scaling := results.emotion_scaling) is not None:
        big, small = max(scaling.sizes), min(scaling.sizes)
        ratio = scaling.ratio("job")
        measured = (
            f"{ratio:.2f}x ({scaling.job_ms[big].p50:.3f} / {scaling.job_ms[small].p50:.3f} ms p50; "
            f"statement {scaling.ratio('statement'):.2f}x)"
        )
        what = f"emotion_stats: one job at {big:,} messages against {small:,}"
        rows.append([what, measured, "≤ 1.1x", verdict(ratio <= 1.1)])
    for w in results.worker:
        measured = f"{ms(w.jobs_per_second, 0)} jobs/s ({ms(w.batch_ms.p50, 2)} ms per batch p50, n={w.batches})"
        what = f"{w.job_type}: jobs/s (10-record batches)"
        rows.append([what, measured, "≥ 1,000 jobs/s", verdict(w.jobs_per_second >= 1000)])
        if w.set_based:
            rt = w.round_trips_per_batch
            rows.append([f"{w.job_type}: DB round trips per batch", num(rt), "≤ 2", verdict(rt <= 2)])
    return rows


def _target_7(results: Any) -> list[list[str]]:
    rows = []
    for op in (op for op in _operations(results) if op.enqueues):
        cpu = _thread_cpu(results.rtt0.get(op.name))
        if not math.isnan(cpu):
            what = f"{op.name}: thread CPU per write request, enqueue included (p50, RTT 0)"
            rows.append([what, f"{ms(cpu, 2)} ms", "≤ 1.0 ms", verdict(cpu <= 1.0)])
    for c in results.typical:
        what = f"{c.function}: cold start / typical handler (median of per-pair wall ratios)"
        if c.error or not c.pairs:
            rows.append([what, f"error: {c.error[:200]}", "≤ 0.5 ×", "-"])
            continue
        measured = (
            f"{num(c.ratio(), 3)} ({c.pairs} pairs; ours {ms(c.median('ours'), 0)} ms, typical "
            f"{ms(c.median('typical'), 0)} ms; spawn to first response {num(c.ratio('to_response_ms'), 3)}; "
            f"in process {num(c.ratio('total_ms'), 3)})"
        )
        rows.append([what, measured, "≤ 0.5 ×", verdict(c.ratio() <= 0.5)])
    return rows


def _target_8(results: Any) -> list[list[str]]:
    rows = []
    for name, hanging in results.sqs_hanging.items():
        normal = results.rtt270.get(name)
        ratio = _p50(hanging) / _p50(normal) if _p50(normal) else math.nan
        measured = (
            f"{num(ratio, 2)} (hanging: p50 {ms(_p50(hanging))}, p99 {ms(hanging.summary.p99)} ms, "
            f"n={hanging.completed}, errors {hanging.errors}; answering: p50 {ms(_p50(normal))}, "
            f"p99 {ms(normal.summary.p99 if normal else math.nan)} ms)"
        )
        what = f"{name}: p50 with SQS hanging / p50 with SQS answering"
        rows.append([what, measured, "≤ 2 ×", verdict(ratio <= 2.0)])
    return rows


TARGETS: list[tuple[str, Callable[[Any], list[list[str]]]]] = [
    ("1. `store_message` and `create_booking`: 1 database round trip (+1 SQS call) on the hot path", _target_1),
    ("2. At RTT 270 ms: p50 ≤ 300 ms; ratio to the old *after* flow ≤ 0.3, same run", _target_2),
    ("3. At RTT 270 ms with 30 connections: ≥ 100 ops/s (old: ~40)", _target_3),
    ("4. In-process cost over the raw SQL statement alone: p50 ≤ 1 ms per request", _target_4),
    ("5. Cold start ≤ 1.2 × the dependency import floor; no heavy import at start", _target_5),
    ("6. Worker: ≥ 1,000 jobs/s per process; ≤ 2 round trips per 10-record batch (set-based)", _target_6),
    ("7. Cold start ≤ 0.5 × the typical handler's (`bench/typical`); thread CPU per write ≤ 1.0 ms", _target_7),
    ("8. With SQS hanging, a write's p50 at RTT 270 ms ≤ 2 × its p50 with SQS answering", _target_8),
]


def targets_table(results: Any) -> str:
    """One table per target."""
    out = []
    for title, rows_of in TARGETS:
        out += [f"### {title}\n", table("what|measured|target|result", rows_of(results)), ""]
    return "\n".join(out)


# -- the measurements -------------------------------------------------------------------------------------
def cpu_parts(result: Any) -> dict[str, float] | None:
    """p50 (ms) of each part of the handler call's thread CPU (``bench.measure.CpuParts``): ``statement``,
    ``enqueue`` (``signing`` and ``exchange`` in it), ``resolver`` (Powertools without the statement and
    the enqueue; 0 without it) and ``around`` (the rest of the call)."""
    parts, total = result.cpu_parts_ms, result.thread_cpu_ms
    if not parts or not total or any(len(v) != len(total) for v in parts.values()):
        return None
    derived: dict[str, list[float]] = {k: parts[k] for k in PARTS}
    derived["resolver"], derived["around"] = [], []
    for i, whole in enumerate(total):
        inner, resolver = parts["statement"][i] + parts["enqueue"][i], parts["resolver"][i]
        derived["resolver"].append(max(resolver - inner, 0.0) if resolver else 0.0)
        derived["around"].append(max(whole - (resolver or inner), 0.0))
    return {name: p50(values) for name, values in derived.items()}


def _cpu_parts(results: Any) -> list[str]:
    rows = []
    for op in (op for op in _operations(results) if op.enqueues and op.name in results.rtt0):
        r = results.rtt0[op.name]
        if (p := cpu_parts(r)) is not None:
            resolver = ms(p["resolver"], 3) if p["resolver"] else "-"
            cells = [ms(p[k], 3) for k in PARTS]
            rows.append([op.name, ms(_thread_cpu(r), 3), *cells, resolver, ms(p["around"], 3)])
    header = "operation|whole call|statement|enqueue|of it signing|of it HTTP exchange|Powertools resolver|the rest"
    title = "### Where a write's CPU goes (thread CPU of the handler call, p50 per part, ms)\n"
    return [title, table(header, rows), ""] if rows else []


LATENCY = "operation|DB round trips / request|SQS sends / request|n|p50 ms|p95 ms|p99 ms"


def _latency_row(label: str, r: Any, digits: int) -> list[str]:
    s, sends = r.summary, num(r.sends_per_request) if r.sends is not None else "-"
    return [label, num(r.rt_per_request), sends, str(s.n), ms(s.p50, digits), ms(s.p95, digits), ms(s.p99, digits)]


def _rtt0(results: Any) -> list[str]:
    rows = []
    for label, r in results.rtt0.items():
        raw = p50(results.raw0.get(label.removesuffix(" (no SQS)")))
        send, wait = (p50(r.cpu_parts_ms.get(k)) for k in ("enqueue", "wait"))
        over = ms(r.summary.p50 - raw, 3)
        rows.append([*_latency_row(label, r, 3), ms(raw, 3), over, ms(send, 3), ms(wait, 3), str(r.errors)])
    header = LATENCY + "|raw SQL p50 ms|handler − raw SQL, p50 ms|SQS send CPU p50 ms|wait for SQS p50 ms|errors"
    return ["## API operations at RTT 0 (loopback, one client)\n", table(header, rows), "", *_cpu_parts(results)]


def _rtt270(results: Any) -> list[str]:
    after = _p50(results.rtt270.get("old after"))
    rows = [
        [*_latency_row(label, r, 1), num(r.summary.p50 / after, 3) if after else "-", str(r.errors)]
        for label, r in results.rtt270.items()
    ]
    old = f"\nThe old system at RTT 270 ms: store_message {OLD['store_message']}; booking {OLD['create_booking']}.\n"
    return ["## API operations at RTT 270 ms\n", table(LATENCY + "|p50 / old after p50|errors", rows), old]


def _sqs_hanging(results: Any) -> list[str]:
    rows = [[*_latency_row(name, r, 1), str(r.errors)] for name, r in results.sqs_hanging.items()]
    return ["## Writes at RTT 270 ms with SQS hanging\n", table(LATENCY + "|errors", rows), ""] if rows else []


def _throughput(results: Any) -> list[str]:
    rows = []
    for label, r in results.throughput.items():
        sqs, s = r.sends is not None, r.summary
        moto = ms(r.cpu_per_request("moto"), 2) if sqs else "-"
        cpu = [ms(r.cpu_per_request("bench"), 2), moto, ms(r.cpu_per_request("proxy"), 2)]
        first = r.first_error[:80] if r.errors else ""
        sends = num(r.sends_per_request) if sqs else "-"
        rows.append([label, ms(r.throughput), str(r.in_window), ms(s.p50), ms(s.p99), num(r.rt_per_request), sends])
        rows[-1] += [*cpu, str(r.errors), first]
    header = (
        "operation|ops/s|requests in window|p50 ms under load|p99 ms under load|DB round trips / request|"
        "SQS sends / request|CPU ms / request: bench process|moto|network simulator|errors|first error"
    )
    clients = results.plan.throughput_clients
    ceiling = f"\nCeiling at one round trip per request: {clients} connections / RTT = {ms(clients / 0.27, 0)} ops/s.\n"
    return [f"## Throughput at RTT 270 ms, {clients} connections\n", table(header, rows), ceiling]


def _calibration(results: Any) -> list[str]:
    rows = []
    for name, r in results.calibration.items():
        s, rate = r.summary, ms(r.throughput) if r.window else "-"
        rows.append([name, ms(s.p50, 2), ms(s.p95, 2), ms(s.p99, 2), str(s.n), rate, num(r.rt_per_request)])
    header = "clients|p50 ms|p95 ms|p99 ms|n|ops/s|round trips / request"
    return ["## Network simulator calibration (`SELECT 1`, simulated RTT 270 ms)\n", table(header, rows), ""]


def _cold_row(c: Any) -> list[str]:
    if c.error and not c.floor:
        return [c.function, c.first_request, f"error: {c.error[:120]}"] + ["-"] * 10
    first = c.floor_first.inside_ms if c.floor_first else 0.0
    return [
        c.function,
        c.first_request,
        str(c.outcome),
        *(ms(v, 0) for v in (c.import_ms, c.first_ms, c.total_ms, c.wall_ms)),
        f"{ms(c.floor.inside_ms, 0)} / {ms(c.floor.wall_ms, 0)}",
        num(c.ratio),
        f"{ms(first, 0)} = {num(c.total_ms / first)} ×" if first else "-",
        ms(c.floor_modules.inside_ms, 0) if c.floor_modules else "-",
        f"{ms(c.nopyc_total_ms, 0)} / {ms(c.nopyc_wall_ms, 0)}",
        ", ".join(c.floor.modules),
    ]


def _cold(results: Any) -> list[str]:
    header = (
        "function|first request|result|import ms|first request ms|cold start ms (in process)|process wall ms|"
        "floor ms in process / wall|cold / floor|floor with the first request's imports ms, ratio|"
        "floor of every third-party module ms|no .pyc for hibachi + app: cold / wall ms|floor imports"
    )
    plan = results.plan
    notes = (
        f"\nMedians of {plan.cold_runs} fresh processes ({plan.nopyc_runs} without .pyc). *Floor*: a fresh process "
        "importing the third-party top-level packages the handler's import loaded. RDS IAM token (presign) in a "
        f"fresh process: {ms(results.iam_token_ms, 1)} ms with `hibachi.sigv4`, "
        f"{ms(results.iam_token_boto3_ms, 0)} ms with boto3 (not in the figures above).\n"
    )
    out = ["## Cold start\n", table(header, [_cold_row(c) for c in results.cold]), notes]
    out.append('### Import profile (`python -X importtime -c "import app"`, medians)\n')
    for p in results.imports:
        out += _profile(p.function, p, 9, 10)
    return out


def _profile(title: str, p: Any, packages: int, entries: int) -> list[str]:
    by_package = ", ".join(f"{name} {ms(v, 1)}" for name, v in p.by_package[:packages])
    rows = [[f"`{m}`", f"`{parent}`", ms(v, 1)] for m, parent, v in p.entry_points[:entries]]
    return [
        f"**{title}**: {ms(p.total_ms, 0)} ms of imports (sum of self times); per package: {by_package} ms.\n",
        table("module (where a package is entered)|imported by|cumulative ms", rows),
        "",
    ]


def _typical_row(c: Any) -> list[str]:
    if c.error or not c.pairs:
        return [c.function, c.first_request, f"error: {c.error[:160]}"] + ["-"] * 8
    ratios = c.ratios()
    cpu = f"{ms(c.median('ours', 'cpu_ms'), 0)} / {ms(c.median('typical', 'cpu_ms'), 0)} ms"
    return [
        c.function,
        c.first_request,
        f"{c.ours[-1]['outcome']} / {c.typical[-1]['outcome']}",
        str(c.pairs),
        f"{ms(c.median('ours'), 0)} / {ms(c.median('ours', 'total_ms'), 0)}",
        f"{ms(c.median('typical'), 0)} / {ms(c.median('typical', 'total_ms'), 0)}",
        f"**{num(c.ratio(), 3)}** (min {num(min(ratios), 3)}, max {num(max(ratios), 3)})",
        num(c.ratio("to_response_ms"), 3),
        num(c.ratio("total_ms"), 3),
        f"{num(c.ratio('cpu_ms'), 3)} ({cpu})",
        f"{c.load[0]} / {c.load[1]}",
    ]


def comparison_section(comparisons: list[Any]) -> str:
    """The cold-start comparison with the typical handlers, and the import profile of what is left."""
    header = (
        "function|first request|result ours / typical|pairs|ours: wall / in process, median ms|"
        "typical: wall / in process, median ms|median of per-pair wall ratios|spawn to first response, ratio|"
        "in-process ratio|CPU time ratio (ours / typical, median ms)|load average before / after"
    )
    out = ["## Cold start against the typical handler\n", table(header, [_typical_row(c) for c in comparisons])]
    out.append(
        "\nPairs of fresh processes, ours (A) then the typical handler (B, `bench/typical/<function>/app.py`), "
        "serving the same first request.\n"
    )
    for c in (c for c in comparisons if c.profile is not None):
        out += _profile(f"What is left of `{c.function}`", c.profile, 10, 12)
    return "\n".join(out)


def _sizes(results: Any) -> list[str]:
    rows = []
    for s in results.sizes:
        cells = [ms(s.code / 1024, 1), ms(s.own_requirements / MB, 2), ms(s.layer_deps / MB, 2)]
        share = f"{100 * s.total / MB / LAMBDA_UNZIPPED_LIMIT_MB:.0f} %"
        rows.append([s.function, *cells, ms(s.hibachi / 1024, 1), ms(s.total / MB, 2), share])
    header = "function|code KiB|own requirements MiB|layer dependencies MiB|hibachi KiB|total MiB|of Lambda's"
    out = ["## Deployment size (unzipped)\n", table(f"{header} {LAMBDA_UNZIPPED_LIMIT_MB} MB", rows)]
    if results.layer:
        biggest = ", ".join(f"{name} {size / MB:.1f}" for name, size in results.layer.packages[:6])
        out.append(
            f"\nLayer dependencies: {results.layer.method}; boto3/botocore not counted. Biggest (MiB): {biggest}.\n"
        )
    return out


def _worker(results: Any) -> list[str]:
    rows = []
    for w in results.worker:
        raw = ms(w.raw_ms.p50 if w.raw_ms else math.nan, 2)
        cells = [ms(w.jobs_per_second, 0), str(w.jobs), ms(w.batch_ms.p50, 2), ms(w.batch_ms.p95, 2), raw]
        rows.append([w.job_type, *cells, num(w.round_trips_per_batch), w.aws_calls or "-", str(w.failures)])
    header = (
        "job type|jobs/s|jobs|ms per 10-record batch p50|p95|its SQL alone p50 ms|DB round trips / batch|"
        "AWS calls per job (moto)|failed records"
    )
    return ["## Worker (followup_worker, one process, RTT 0)\n", table(header, rows), "", *_scaling(results)]


def _scaling(results: Any) -> list[str]:
    if (s := results.emotion_scaling) is None:
        return []
    rows = []
    for n in s.sizes:
        job, statement = s.job_ms[n], s.statement_ms[n]
        rows.append([f"{n:,}", *(f"{x:.3f}" for x in (job.p50, job.p95, statement.p50, statement.p95))])
    header = "scored messages in the conversation|one job (worker invocation) p50 ms|p95|its statement alone p50 ms|p95"
    big, small = max(s.sizes), min(s.sizes)
    ratios = (
        f"\n{big:,} against {small:,}: one job {s.ratio('job'):.2f}x, its statement "
        f"{s.ratio('statement'):.2f}x (target: at most 1.1x; n = {s.job_ms[small].n} each).\n"
    )
    return ["## One emotion job against the size of its conversation\n", table(header, rows), ratios]


def _head(results: Any) -> list[str]:
    m = results.machine
    machine = [
        ["CPU", m["cpu"]],
        ["memory", m["memory"]],
        ["OS", m["os"]],
        ["Python", m["python"]],
        ["database", results.postgres + ", embedded (`local/pg.py`), on loopback"],
        ["packages", m["packages"]],
        ["commit", m["commit"]],
        ["load average (1, 5, 15 min) at start / end", f"{m['load_start']} / {m.get('load_end', '-')}"],
    ]
    out = [
        "# Benchmarks\n",
        f"Generated by `{results.command}` on {m['date']} in {results.seconds:.0f} s; do not edit by hand.\n",
    ]
    if results.plan.sequential < 100:
        out.append("> **Smoke run (`--quick`)**: tiny sample sizes, figures not meaningful.\n")
    return [*out, "## Machine\n", table("|", machine), "", "## Targets\n", targets_table(results), NOTES]


NOTES = """## How it is measured

- Network: `PgProxy` counts round trips between every client and PostgreSQL and, at RTT 270 ms, delays each
  chunk 0.135 s each way. Handlers run in process with API Gateway payload 2.0 events, one process per
  concurrent client (`bench/envs.py`); SQS is moto on loopback. "No SQS" rows leave `JOBS_QUEUE_URL` unset.
- Old flows (`bench/reference.py`): the old system's SQL, same database, run and proxy.
- Raw SQL: the statements captured at RTT 0, replayed on a bare connection to an identical database.
- SQS hanging: every environment's SQS endpoint accepts connections and never answers.
- Percentiles are nearest-rank. Not measured: AWS itself (Lambda init, API Gateway, RDS Proxy, TLS),
  network jitter, Lambda's hardware, `sam build`'s arm64 wheels.
"""

# the sections of ``python -m bench.run --operations ...``: RTT 0, RTT 270 ms latency and throughput
OPERATION_SECTIONS = (_rtt0, _rtt270, _sqs_hanging, _throughput)


def render(results: Any) -> str:
    typical = [comparison_section(results.typical)] if results.typical else []
    sections = [_head, _calibration, *OPERATION_SECTIONS, _cold, lambda _: typical, _sizes, _worker]
    return "\n".join(line for section in sections for line in section(results)) + "\n"
