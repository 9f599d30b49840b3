"""Run the whole benchmark and rewrite BENCHMARKS.md: ``python -m bench.run`` (``make bench``).

    python -m bench.run            # everything, about 9 minutes on 2 cores
    python -m bench.run --quick    # a smoke run with tiny sample sizes (figures not meaningful)
    python -m bench.run --operations availability,search_bookings   # only these, RTT 0 and 270 ms;
                                   # prints their figures, leaves BENCHMARKS.md alone (an old flow
                                   # can be named too: --operations "store_message,old after")

Phases: (1) RTT 0 through the counting proxy, one client, the handlers' statements captured and
then replayed raw on an identical database; (2) RTT 270 ms (0.135 s each way): latency with 10
closed-loop clients, the writes again with SQS hanging, throughput with 30; the old system's flows
in the same run; (3) the worker; (4) cold starts and import profiles in fresh processes, and
against the typical handlers (``bench/typical``, A B alternating); (5) deployment sizes.
"""

from __future__ import annotations

import argparse
import logging
import pickle
import socket
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import ROOT
from bench.plan import DELAY, Plan, Results, elapsed, log


def label(op: Any, sqs: bool) -> str:
    return op.name if sqs or not op.enqueues else f"{op.name} (no SQS)"


@dataclass
class Run:
    """One bench run's moving parts: the servers, the databases, the fixtures made so far."""

    plan: Plan
    results: Results
    pg: Any
    moto: Any
    db_a: str  # the database every phase uses
    db_b: str  # the raw replay's identical twin
    run_id: str
    ops: list[Any]
    flows: dict[str, Any]
    fixtures: dict[str, dict[str, Any]] = field(default_factory=dict)
    aws: dict[str, str] = field(default_factory=dict)  # moto's resources as settings
    proxy0: Any = None  # the counting proxy at RTT 0
    dsn0: str = ""


@contextmanager
def hanging_endpoint() -> Iterator[str]:
    """An endpoint that accepts connections and never answers (the kernel completes each connect
    into the listen backlog; nothing reads or writes): SQS hanging."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(1024)
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        listener.close()


# -- 1. RTT 0 ---------------------------------------------------------------------------------------------
def rtt0(r: Run) -> None:
    """The handlers without SQS, their statements captured and replayed raw; then with SQS; the old flows."""
    from bench.env import use_settings
    from bench.measure import Capture, HandlerWorkload, replay, run
    from bench.operations import fixtures_of

    log("RTT 0: handlers (no SQS), statements captured")
    use_settings(r.dsn0)
    with Capture() as capture:
        for key in dict.fromkeys(op.setup for op in r.ops):
            capture.tag = ("setup", None)
            r.fixtures[key] = fixtures_of(key, r.plan.throughput_clients, r.run_id)
        for op in r.ops:
            workload = HandlerWorkload(op, r.fixtures[op.setup], warmup=5, capture=capture)
            r.results.rtt0[label(op, False)] = run(workload, requests=r.plan.sequential, max_seconds=30, proxy=r.proxy0)
    log(f"RTT 0: raw replay of {len(capture.statements)} statements")
    r.results.raw0 = replay(capture.statements, r.proxy0.dsn(r.db_b))
    log("RTT 0: handlers with SQS, old flows")
    use_settings(r.dsn0, r.aws)
    for op in r.ops:
        if op.enqueues:
            r.results.rtt0[op.name] = _rtt0_with_sqs(r, op)
    _flows(r, r.dsn0, r.results.rtt0, requests=r.plan.sequential, max_seconds=30, proxy=r.proxy0)


def _rtt0_with_sqs(r: Run, op: Any) -> Any:
    """One enqueuing operation at RTT 0 with its SQS send: the thread CPU in parts, the wait for SQS."""
    from bench.measure import CpuParts, HandlerWorkload, run

    with CpuParts() as parts:
        workload = HandlerWorkload(op, r.fixtures[op.setup], warmup=5, cpu_parts=parts)
        result = run(workload, requests=r.plan.sequential, max_seconds=30, proxy=r.proxy0, queue=r.moto)
    result.thread_cpu_ms = workload.cpu
    result.cpu_parts_ms = workload.parts
    return result


# -- 2. RTT 270 ms: handlers in one process per client (bench.envs: Lambda environments) -------------------
def rtt270(r: Run) -> None:
    from bench.envs import EnvPool
    from bench.measure import SelectOne, run
    from testkit.netproxy import PgProxy

    plan = r.plan
    log(f"starting {max(plan.latency_clients, plan.throughput_clients)} environment processes")
    pool = EnvPool(max(plan.latency_clients, plan.throughput_clients))
    try:
        with PgProxy(("127.0.0.1", r.pg.port), delay=DELAY) as proxy:
            dsn = proxy.dsn(r.db_a)
            cpu: dict[str, int | None] = {"moto": r.moto.pid, "proxy": proxy.pid}
            log("RTT 270: network calibration (SELECT 1)")
            calibration = r.results.calibration
            calibration["1 client"] = run(SelectOne(dsn), requests=20, max_seconds=20, proxy=proxy)
            calibration[f"{plan.throughput_clients} clients"] = run(
                SelectOne(dsn),
                clients=plan.throughput_clients,
                duration=plan.throughput_seconds / 2,
                max_seconds=plan.throughput_seconds + 30,
                proxy=proxy,
                processes=cpu,
            )
            _latency(r, pool, proxy, dsn)
            _sqs_hanging(r, pool, proxy, dsn)
            _throughput(r, pool, proxy, dsn, cpu)
    finally:
        pool.close()


def _variants(r: Run) -> list[tuple[Any, bool]]:
    """Each operation with its SQS send, and an enqueuing one also without (``JOBS_QUEUE_URL`` unset)."""
    return [(op, sqs) for op in r.ops for sqs in ((True, False) if op.enqueues else (False,))]


def _handlers(r: Run, pool: Any, into: dict[str, Any], what: str, **how: Any) -> None:
    """Every operation variant in the environment processes, with ``how`` (clients, requests, ...)."""
    for op, sqs in _variants(r):
        log(f"RTT 270: {what} of {label(op, sqs)}")
        aws, queue = (r.aws, r.moto) if sqs else (None, None)
        into[label(op, sqs)] = pool.run(op, r.fixtures[op.setup], aws=aws, queue=queue, **how)


def _flows(r: Run, dsn: str, into: dict[str, Any], **how: Any) -> None:
    """The old system's flows, threads of this process."""
    from bench import reference
    from bench.measure import run

    for name in r.flows:
        log(f"old flow: {name}")
        into[name] = run(reference.FlowWorkload(name, dsn, r.run_id), **how)


def _latency(r: Run, pool: Any, proxy: Any, dsn: str) -> None:
    clients = r.plan.latency_clients
    common = {"clients": clients, "max_seconds": 60, "proxy": proxy}
    _handlers(r, pool, r.results.rtt270, "latency", dsn=dsn, requests=r.plan.latency_each, **common)
    _flows(r, dsn, r.results.rtt270, requests=r.plan.reference_each, **common)


def _sqs_hanging(r: Run, pool: Any, proxy: Any, dsn: str) -> None:
    """The headline writes' latency with SQS hanging: the send gives up after its budget and the
    environment skips SQS for its pause (``hibachi.jobs``); each environment starts its run with a
    working queue's settings object of its own, so its first send finds SQS hanging."""
    plan = r.plan
    with hanging_endpoint() as url:
        for op in (op for op in r.ops if op.enqueues and op.headline):
            log(f"RTT 270: latency of {op.name} with SQS hanging")
            r.results.sqs_hanging[op.name] = pool.run(
                op,
                r.fixtures[op.setup],
                dsn=dsn,
                aws={**r.aws, "aws_endpoint_url": url},
                clients=plan.latency_clients,
                requests=plan.latency_each,
                max_seconds=120,
                proxy=proxy,
            )


def _throughput(r: Run, pool: Any, proxy: Any, dsn: str, cpu: dict[str, int | None]) -> None:
    plan = r.plan
    common = {"clients": plan.throughput_clients, "proxy": proxy, "processes": cpu}
    common |= {"duration": plan.throughput_seconds, "max_seconds": plan.throughput_seconds + 30}
    _handlers(r, pool, r.results.throughput, "throughput", dsn=dsn, **common)
    _flows(r, dsn, r.results.throughput, **common)


# -- 3. the worker, at RTT 0 ------------------------------------------------------------------------------
def worker_phase(r: Run) -> None:
    from bench import worker
    from bench.env import use_settings
    from bench.operations import COLD_STARTS, JOB_TYPES, fixtures_of

    use_settings(r.db_a)
    for key in (key for cs in COLD_STARTS for key in cs.setups if key not in r.fixtures):
        r.fixtures[key] = fixtures_of(key, r.plan.throughput_clients, r.run_id)
    for job_type in JOB_TYPES:
        log(f"worker: {job_type.name} (setup)")
        use_settings(r.db_a)
        fx = r.fixtures.get(job_type.setup) or fixtures_of(
            job_type.setup, worker.jobs_needed(job_type, r.plan.worker_batches), r.run_id
        )
        r.fixtures[job_type.setup] = fx
        log(f"worker: {job_type.name}")
        r.moto.clean()
        r.results.worker.append(
            worker.run(
                job_type,
                fx,
                direct_dsn=r.db_a,
                counted_dsn=r.dsn0,
                aws=r.aws,
                proxy=r.proxy0,
                max_batches=r.plan.worker_batches,
                max_seconds=r.plan.worker_seconds,
            )
        )
    log("worker: one emotion job at 10,000 messages against 10")
    r.results.emotion_scaling = worker.emotion_scaling(r.db_a, r.run_id, samples=r.plan.scaling_samples)


# -- 4. cold starts, import profiles ------------------------------------------------------------------------
def _events_of(r: Run, cs: Any) -> Callable[[int], dict[str, Any]]:
    """The event of cold-start run ``i`` of ``cs`` (each run its own: a repeated one takes another path)."""
    return lambda i: cs.event(r.fixtures, f"{r.run_id}-{i}")


def cold_phase(r: Run) -> None:
    from bench import coldstart
    from bench.env import function_env
    from bench.operations import COLD_STARTS

    plan, results = r.plan, r.results
    env = function_env(r.db_a, r.moto)
    r.moto.clean()
    for cs in COLD_STARTS:
        log(f"cold start: {cs.function} ({plan.cold_runs} runs + floors)")
        results.cold.append(
            coldstart.measure(
                cs.function, cs.first_request, env, _events_of(r, cs), runs=plan.cold_runs, nopyc_runs=plan.nopyc_runs
            )
        )
    for cs in COLD_STARTS:
        log(f"python -X importtime: {cs.function}")
        results.imports.append(coldstart.importtime(cs.function, env, runs=plan.importtime_runs))
    for cs in (cs for cs in COLD_STARTS if coldstart.has_typical(cs.function)):
        log(f"cold start against the typical handler: {cs.function} ({plan.typical_pairs} pairs A B)")
        r.moto.clean()
        tag = f"{r.run_id}-typical"
        results.typical.append(
            coldstart.compare(cs, env, r.fixtures, tag, pairs=plan.typical_pairs, importtime_runs=plan.importtime_runs)
        )
    log("IAM token cost (presign, ours and boto3's) in a fresh process")
    results.iam_token_ms = coldstart.iam_token_cost(env, runs=max(1, plan.importtime_runs))
    results.iam_token_boto3_ms = coldstart.iam_token_cost(env, runs=max(1, plan.importtime_runs), how="boto3")


def run_all(plan: Plan, command: str, only: set[str] | None = None) -> Results:
    """The whole benchmark; ``only``: just these API operations (phases 1 and 2, no old flows)."""
    from hibachi import settings as settings_module

    from bench import reference, sizes
    from bench.env import load, machine, postgres_version, quiet_stdout, started
    from bench.operations import OPERATIONS
    from testkit.env import migrated_database
    from testkit.netproxy import PgProxy

    logging.getLogger("urllib3").setLevel(logging.ERROR)  # "connection pool is full" with 30 threads
    warnings.filterwarnings("ignore", message="No application metrics to publish")
    results = Results(plan, command, machine())
    results.operations = [op.name for op in OPERATIONS]
    log("starting PostgreSQL and moto")
    with started() as (pg, moto):
        results.postgres = postgres_version(pg)
        r = Run(
            plan,
            results,
            pg,
            moto,
            migrated_database(pg, "hibachi_bench"),
            migrated_database(pg, "hibachi_bench_raw"),
            time.strftime("%H%M%S"),
            ops=[op for op in OPERATIONS if (only is None or op.name in only)],
            flows={k: f for k, f in reference.FLOWS.items() if only is None or k in only},
            aws=moto.resources.settings(),
        )
        reference.create_schema(r.db_a)
        with quiet_stdout(), PgProxy(("127.0.0.1", pg.port), delay=0.0, isolate=True) as r.proxy0:
            r.dsn0 = r.proxy0.dsn(r.db_a)
            rtt0(r)
            rtt270(r)
            if only is not None:
                return results
            worker_phase(r)
            settings_module.set_settings(None)
        cold_phase(r)
        log("deployment sizes")
        functions = sorted(p.name for p in (ROOT / "functions").iterdir() if (p / "app.py").exists())
        results.sizes, results.layer = sizes.measure(functions)
    results.machine["load_end"] = load()
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.run", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="tiny sample sizes: a smoke run, figures not meaningful")
    parser.add_argument("--output", default=str(ROOT / "BENCHMARKS.md"), help="where to write the report")
    parser.add_argument("--render", metavar="PICKLE", help="only render the report from a saved run's results")
    parser.add_argument(
        "--operations", metavar="NAMES", help="comma-separated API operations: measure only these, print, write nothing"
    )
    args = parser.parse_args(argv)
    plan = Plan.quick() if args.quick else Plan()
    from bench import report, scale
    from bench.env import STATE

    if args.operations:
        results = run_all(plan, f"python -m bench.run --operations {args.operations}", set(args.operations.split(",")))
        print("\n".join(line for section in report.OPERATION_SECTIONS for line in section(results)))
        return 0
    if args.render:
        results = pickle.loads(Path(args.render).read_bytes())  # noqa: S301 - our own file
    else:
        results = run_all(plan, "make bench" if not args.quick else "python -m bench.run --quick")
        results.seconds = elapsed()
        STATE.mkdir(parents=True, exist_ok=True)
        (STATE / "results.pickle").write_bytes(pickle.dumps(results))
    text = scale.kept(report.render(results), Path(args.output))  # make bench-scale's section stays
    Path(args.output).write_text(text, encoding="utf-8")
    log(f"wrote {args.output} in {results.seconds:.0f} s")
    print(report.targets_table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
