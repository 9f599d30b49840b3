"""Run the whole benchmark and rewrite BENCHMARKS.md: ``python -m bench.run`` (``make bench``).

    python -m bench.run            # everything, a few minutes on 2 cores
    python -m bench.run --quick    # a smoke run with tiny sample sizes (figures not meaningful)
    python -m bench.run --operations availability,search_bookings   # only these, RTT 0 and 270 ms;
                                   # prints their figures, leaves BENCHMARKS.md alone (an old flow
                                   # can be named too: --operations "store_message,old after")
    python -m bench.run --only emotion-scaling   # one emotion job at 10,000 messages against 10

Phases: (1) RTT 0 through the counting proxy, one client, the handlers' statements captured and
then replayed raw on an identical database; (2) RTT 270 ms (0.135 s each way): latency with 10
closed-loop clients, throughput with 30; the old system's flows in the same run; (3) the worker;
(4) cold starts and import profiles in fresh processes, and against the typical handlers
(``bench/typical``, A B alternating); (5) deployment sizes.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import ROOT

DELAY = 0.135  # seconds each way: RTT 270 ms, the old system's network


@dataclass
class Plan:
    sequential: int = 300  # RTT 0: requests per operation, one client
    latency_clients: int = 10  # RTT 270: closed-loop clients for latency
    latency_each: int = 20  # requests per client
    reference_each: int = 10  # the old flows' requests per client (each takes 1-2 s at RTT 270 ms)
    throughput_clients: int = 30
    throughput_seconds: float = 8.0
    cold_runs: int = 10
    # cold starts against bench/typical, A B per pair: 30, as one pair's ratio ranges 0.45-0.76 on a shared
    # machine (make bench on 65e124c, 10 pairs) and the target (0.5) sits inside that range; ~11 s per 10 pairs
    typical_pairs: int = 30
    nopyc_runs: int = 5
    importtime_runs: int = 5
    worker_batches: int = 300
    worker_seconds: float = 10.0
    scaling_samples: int = 300  # emotion jobs per conversation size

    @classmethod
    def quick(cls) -> Plan:
        return cls(
            sequential=20,
            latency_clients=2,
            latency_each=3,
            reference_each=3,
            throughput_clients=30,
            throughput_seconds=2.0,
            cold_runs=2,
            typical_pairs=2,
            nopyc_runs=1,
            importtime_runs=1,
            worker_batches=20,
            worker_seconds=2.0,
            scaling_samples=20,
        )


@dataclass
class Results:
    plan: Plan
    command: str
    machine: dict[str, str] = field(default_factory=dict)
    postgres: str = ""
    operations: list[str] = field(default_factory=list)  # names of the available Operation entries
    unavailable: list[str] = field(default_factory=list)  # entries whose function has not landed
    calibration: dict[str, Any] = field(default_factory=dict)
    rtt0: dict[str, Any] = field(default_factory=dict)  # label -> RunResult
    raw0: dict[str, list[float]] = field(default_factory=dict)
    rtt270: dict[str, Any] = field(default_factory=dict)
    throughput: dict[str, Any] = field(default_factory=dict)
    worker: list[Any] = field(default_factory=list)
    emotion_scaling: Any = None  # bench.worker.EmotionScaling
    cold: list[Any] = field(default_factory=list)
    imports: list[Any] = field(default_factory=list)
    iam_token_ms: float = float("nan")
    iam_token_boto3_ms: float = float("nan")
    typical: list[Any] = field(default_factory=list)  # coldstart.Comparison: ours against bench/typical
    sizes: list[Any] = field(default_factory=list)
    layer: Any = None
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)


_T0 = time.perf_counter()


def log(message: str) -> None:
    print(f"[bench {time.perf_counter() - _T0:6.1f}s] {message}", file=sys.stderr, flush=True)


def label(op: Any, sqs: bool) -> str:
    return op.name if sqs or not op.enqueues else f"{op.name} (no SQS)"


def run_all(plan: Plan, command: str, only: set[str] | None = None) -> Results:
    """The whole benchmark; ``only``: just these API operations (phases 1 and 2, no old flows)."""
    from bench import coldstart, reference, sizes, worker
    from bench.env import function_env, machine, postgres_version, quiet_stdout, started, use_settings
    from bench.envs import EnvPool
    from bench.measure import Capture, CpuParts, HandlerWorkload, SelectOne, SqsWait, replay, run
    from bench.operations import COLD_STARTS, JOB_TYPES, OPERATIONS, fixtures_of
    from testkit.env import migrated_database
    from testkit.netproxy import PgProxy

    logging.getLogger("urllib3").setLevel(logging.ERROR)  # "connection pool is full" with 30 threads
    warnings.filterwarnings("ignore", message="No application metrics to publish")

    results = Results(plan, command, machine())
    results.operations = [op.name for op in OPERATIONS if op.available]
    results.unavailable = [op.name for op in OPERATIONS if not op.available]
    run_id = time.strftime("%H%M%S")
    log("starting PostgreSQL and moto")
    with started() as (pg, moto):
        results.postgres = postgres_version(pg)
        db_a = migrated_database(pg, "hibachi_bench")
        db_b = migrated_database(pg, "hibachi_bench_raw")  # the raw replay's identical twin
        reference.create_schema(db_a)
        ops = [op for op in OPERATIONS if op.available and (only is None or op.name in only)]
        flows = reference.FLOWS if only is None else {k: f for k, f in reference.FLOWS.items() if k in only}
        fixtures: dict[str, dict[str, Any]] = {}
        with quiet_stdout(), PgProxy(("127.0.0.1", pg.port), delay=0.0, isolate=True) as proxy0:
            dsn0 = proxy0.dsn(db_a)

            # -- 1. RTT 0: the handlers without SQS, statements captured; raw replay; then with SQS
            log("RTT 0: handlers (no SQS), statements captured")
            aws = moto.resources.settings()
            use_settings(dsn0)
            with Capture() as capture:
                for key in dict.fromkeys(op.setup for op in ops):
                    capture.tag = ("setup", None)
                    fixtures[key] = fixtures_of(key, plan.throughput_clients, run_id)
                for op in ops:
                    results.rtt0[label(op, False)] = run(
                        HandlerWorkload(op, fixtures[op.setup], warmup=5, capture=capture),
                        requests=plan.sequential,
                        max_seconds=30,
                        proxy=proxy0,
                    )
            log(f"RTT 0: raw replay of {len(capture.statements)} statements")
            results.raw0 = replay(capture.statements, proxy0.dsn(db_b))
            log("RTT 0: handlers with SQS, old flows")
            use_settings(dsn0, aws)
            for op in ops:
                if op.enqueues:
                    with SqsWait() as wait, CpuParts() as parts:
                        workload = HandlerWorkload(op, fixtures[op.setup], warmup=5, sqs_wait=wait, cpu_parts=parts)
                        results.rtt0[op.name] = run(
                            workload, requests=plan.sequential, max_seconds=30, proxy=proxy0, queue=moto
                        )
                    results.rtt0[op.name].sqs_wait_ms = workload.waits
                    results.rtt0[op.name].sqs_cpu_ms = workload.send_cpu
                    results.rtt0[op.name].thread_cpu_ms = workload.cpu
                    results.rtt0[op.name].cpu_parts_ms = workload.parts
            for name in flows:
                results.rtt0[name] = run(
                    reference.FlowWorkload(name, dsn0, run_id), requests=plan.sequential, max_seconds=30, proxy=proxy0
                )

            # -- 2. RTT 270 ms; handlers in one process per client (bench.envs: Lambda environments)
            log(f"starting {max(plan.latency_clients, plan.throughput_clients)} environment processes")
            pool = EnvPool(max(plan.latency_clients, plan.throughput_clients))
            with PgProxy(("127.0.0.1", pg.port), delay=DELAY) as proxy:
                dsn = proxy.dsn(db_a)
                cpu = {"moto": moto.pid, "proxy": proxy.pid}
                log("RTT 270: network calibration (SELECT 1)")
                results.calibration["1 client"] = run(SelectOne(dsn), requests=20, max_seconds=20, proxy=proxy)
                results.calibration[f"{plan.throughput_clients} clients"] = run(
                    SelectOne(dsn),
                    clients=plan.throughput_clients,
                    duration=plan.throughput_seconds / 2,
                    max_seconds=plan.throughput_seconds + 30,
                    proxy=proxy,
                    processes=cpu,
                )
                for op in ops:
                    for sqs in (True, False) if op.enqueues else (False,):
                        log(f"RTT 270: latency of {label(op, sqs)}")
                        results.rtt270[label(op, sqs)] = pool.run(
                            op,
                            fixtures[op.setup],
                            dsn=dsn,
                            aws=aws if sqs else None,
                            clients=plan.latency_clients,
                            requests=plan.latency_each,
                            max_seconds=60,
                            proxy=proxy,
                            queue=moto if sqs else None,
                        )
                for name in flows:
                    log(f"RTT 270: latency of {name}")
                    results.rtt270[name] = run(
                        reference.FlowWorkload(name, dsn, run_id),
                        clients=plan.latency_clients,
                        requests=plan.reference_each,
                        max_seconds=60,
                        proxy=proxy,
                    )
                for op in ops:
                    for sqs in (True, False) if op.enqueues else (False,):
                        log(f"RTT 270: throughput of {label(op, sqs)}, {plan.throughput_clients} connections")
                        results.throughput[label(op, sqs)] = pool.run(
                            op,
                            fixtures[op.setup],
                            dsn=dsn,
                            aws=aws if sqs else None,
                            clients=plan.throughput_clients,
                            duration=plan.throughput_seconds,
                            max_seconds=plan.throughput_seconds + 30,
                            proxy=proxy,
                            queue=moto if sqs else None,
                            processes=cpu,
                        )
                for name in flows:
                    log(f"RTT 270: throughput of {name}")
                    results.throughput[name] = run(
                        reference.FlowWorkload(name, dsn, run_id),
                        clients=plan.throughput_clients,
                        duration=plan.throughput_seconds,
                        max_seconds=plan.throughput_seconds + 30,
                        proxy=proxy,
                        processes=cpu,
                    )
            pool.close()
            if only is not None:
                return results

            # -- 3. the worker, at RTT 0
            use_settings(db_a)
            for cs in COLD_STARTS:
                for key in cs.setups:
                    if cs.available and key not in fixtures:
                        fixtures[key] = fixtures_of(key, plan.throughput_clients, run_id)
            for job_type in JOB_TYPES:
                if job_type.available:
                    log(f"worker: {job_type.name} (setup)")
                    use_settings(db_a)
                    fx = fixtures.get(job_type.setup) or fixtures_of(
                        job_type.setup, worker.jobs_needed(job_type, plan.worker_batches), run_id
                    )
                    fixtures[job_type.setup] = fx
                    log(f"worker: {job_type.name}")
                    moto.clean()
                    results.worker.append(
                        worker.run(
                            job_type,
                            fx,
                            direct_dsn=db_a,
                            use_direct=lambda: use_settings(db_a, aws),
                            use_counted=lambda: use_settings(dsn0, aws),
                            proxy=proxy0,
                            max_batches=plan.worker_batches,
                            max_seconds=plan.worker_seconds,
                        )
                    )
            log("worker: one emotion job at 10,000 messages against 10")
            results.emotion_scaling = worker.emotion_scaling(
                db_a, run_id, use_direct=lambda: use_settings(db_a), samples=plan.scaling_samples
            )
            from hibachi import settings as settings_module

            settings_module.set_settings(None)

        # -- 4. cold starts, import profiles
        env = function_env(db_a, moto)
        moto.clean()
        for cs in COLD_STARTS:
            if not cs.available:
                results.notes.append(f"cold start of {cs.function}: not measured, the function has not landed")
                continue
            log(f"cold start: {cs.function} ({plan.cold_runs} runs + floors)")
            results.cold.append(
                coldstart.measure(
                    cs.function,
                    cs.first_request,
                    {},
                    env,
                    runs=plan.cold_runs,
                    nopyc_runs=plan.nopyc_runs,
                    event_for_run=lambda i, cs=cs: cs.event(fixtures, f"{run_id}-{i}"),
                )
            )
        for cs in COLD_STARTS:
            if cs.available:
                log(f"python -X importtime: {cs.function}")
                results.imports.append(coldstart.importtime(cs.function, env, runs=plan.importtime_runs))
        for cs in COLD_STARTS:
            if cs.available and coldstart.has_typical(cs.function):
                log(f"cold start against the typical handler: {cs.function} ({plan.typical_pairs} pairs A B)")
                moto.clean()
                results.typical.append(
                    coldstart.compare(
                        cs,
                        env,
                        fixtures,
                        f"{run_id}-typical",
                        pairs=plan.typical_pairs,
                        importtime_runs=plan.importtime_runs,
                    )
                )
        log("IAM token cost (presign, ours and boto3's) in a fresh process")
        results.iam_token_ms = coldstart.iam_token_cost(env, runs=max(1, plan.importtime_runs))
        results.iam_token_boto3_ms = coldstart.iam_token_cost(env, runs=max(1, plan.importtime_runs), how="boto3")

        # -- 5. sizes
        log("deployment sizes")
        functions = sorted(p.name for p in (ROOT / "functions").iterdir() if (p / "app.py").exists())
        results.sizes, results.layer = sizes.measure(functions)
    results.machine["load_end"] = __import__("bench.env", fromlist=["load"]).load()
    return results


def emotion_scaling_only(plan: Plan) -> int:
    """Just the emotion-job scaling figures (no report written): ``python -m bench.run --only emotion-scaling``."""
    from bench import worker
    from bench.env import quiet_stdout, started, use_settings
    from testkit.env import migrated_database

    warnings.filterwarnings("ignore", message="No application metrics to publish")
    with started(aws=False) as (pg, _):
        dsn = migrated_database(pg, "hibachi_bench_scaling")
        with quiet_stdout():
            result = worker.emotion_scaling(
                dsn, time.strftime("%H%M%S"), use_direct=lambda: use_settings(dsn), samples=plan.scaling_samples
            )
    print(worker.scaling_table(result))
    return 0


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
    parser.add_argument(
        "--only", choices=["emotion-scaling"], help="run one part and print its figures (BENCHMARKS.md untouched)"
    )
    args = parser.parse_args(argv)
    if args.only == "emotion-scaling":
        return emotion_scaling_only(Plan.quick() if args.quick else Plan())
    import pickle

    from bench import report, scale
    from bench.env import STATE

    if args.operations:
        only = set(args.operations.split(","))
        plan = Plan.quick() if args.quick else Plan()
        results = run_all(plan, f"python -m bench.run --operations {args.operations}", only)
        print(report.operations_summary(results))
        return 0
    if args.render:
        results = pickle.loads(Path(args.render).read_bytes())  # noqa: S301 - our own file
    else:
        plan = Plan.quick() if args.quick else Plan()
        command = "make bench" if not args.quick else "python -m bench.run --quick"
        results = run_all(plan, command)
        results.seconds = time.perf_counter() - _T0
        STATE.mkdir(parents=True, exist_ok=True)
        (STATE / "results.pickle").write_bytes(pickle.dumps(results))

    text = scale.kept(report.render(results), Path(args.output))  # make bench-scale's section stays
    Path(args.output).write_text(text, encoding="utf-8")
    log(f"wrote {args.output} in {results.seconds:.0f} s")
    print(report.targets_table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
