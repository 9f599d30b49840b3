"""The bench's runner and report without running the bench: closed-loop clients counted per request,
the wait for SQS taken out of a send's CPU, and a report with every section and target from one run's
results."""

from __future__ import annotations

import itertools
import time
from pathlib import Path
from unittest.mock import patch

import pytest
from hibachi.jobs import JobQueue

from bench import report
from bench.coldstart import ColdResult, Comparison, Floor, ImportProfile
from bench.measure import CpuParts, RunResult, Summary, run
from bench.operations import OPERATIONS
from bench.plan import Plan, Results
from bench.sizes import FunctionSize, Installed
from bench.worker import EmotionScaling, WorkerResult


class Sleeper:
    """A workload whose requests take 1 ms; client 2 cannot open."""

    def open(self, client: int) -> int:
        if client == 2:
            raise ConnectionError("refused")
        return client

    def call(self, state: int, client: int, n: int) -> float:
        time.sleep(0.001)
        return 1.0

    def close(self, state: int) -> None:
        pass


def test_the_runner_counts_each_clients_requests_and_a_failed_open():
    result = run(Sleeper(), clients=3, requests=5)
    assert (result.completed, result.errors) == (10, 1)
    assert result.first_error == "open: ConnectionError('refused')"
    timed = run(Sleeper(), clients=2, duration=0.2)
    # a request that ends after the window is timed, not counted in it
    assert 0 < timed.in_window <= timed.completed <= timed.in_window + 2 and 0 < timed.throughput < 2 / 0.001
    assert timed.window == pytest.approx(0.2) and timed.cpu_ms["bench"] >= 0


def test_a_sends_wait_for_sqs_is_not_its_cpu():
    with patch.object(JobQueue, "send_many", lambda queue, jobs: time.sleep(0.02)), CpuParts() as parts:
        JobQueue.send_many(None, [])
        taken = parts.take()
    assert taken["wait"] >= 19 and taken["enqueue"] < taken["wait"] / 2
    assert parts.take() == {}


def _run(ms: float, **kw: object) -> RunResult:
    samples = [ms] * 20
    return RunResult(samples, round_trips=20, throughput=25.0, window=8.0, in_window=20, **kw)


def _results() -> Results:
    machine = dict.fromkeys(("cpu", "memory", "os", "python", "packages", "commit", "date", "load_start"), "x")
    results = Results(Plan(), "make bench", machine, operations=[op.name for op in OPERATIONS])
    parts = {k: [0.5] * 20 for k in ("statement", "enqueue", "signing", "exchange", "resolver", "wait")}
    for op in OPERATIONS:
        results.raw0[op.name] = [4.0] * 20
        for label in [op.name, f"{op.name} (no SQS)"] if op.enqueues else [op.name]:
            sqs = {"sends": 20, "cpu_parts_ms": parts, "thread_cpu_ms": [2.0] * 20} if label == op.name else {}
            results.rtt0[label] = _run(5.0, **(sqs if op.enqueues else {}))
            results.rtt270[label], results.throughput[label] = _run(290.0), _run(300.0)
    results.rtt270["old after"] = _run(1000.0)
    results.sqs_hanging = {"store_message": _run(310.0), "create_booking": _run(900.0)}
    results.calibration["1 client"] = _run(270.0)
    floor = Floor(["psycopg"], 100.0, 200.0)
    results.cold = [ColdResult("health", "GET /health", 10, 5, 115, 230, 200, ["psycopg"], ["psycopg"], floor)]
    profile = ImportProfile("health", 90.0, [("psycopg", 50.0)], [("psycopg", "hibachi.db", 50.0)])
    results.imports = [profile]
    child = {"wall_ms": 100.0, "to_response_ms": 90.0, "total_ms": 80.0, "cpu_ms": 70.0, "outcome": 201}
    typical = [{**child, "wall_ms": 250.0}] * 3
    results.typical = [Comparison("store_message", "POST", [child] * 3, typical, profile)]
    results.sizes = [FunctionSize("health", 5000, 0, 24 << 20, 290_000)]
    results.layer = Installed(Path("requirements.txt"), None, "pip", 24 << 20, [("psycopg", 1 << 20)])
    results.worker = [WorkerResult("emotion_stats", 300, 3000, 2.0, Summary.of([18.0]), 1.0, 0, True)]
    results.emotion_scaling = EmotionScaling((10, 10_000), {10: Summary.of([13.0]), 10_000: Summary.of([13.5])}, {})
    results.emotion_scaling.statement_ms = dict(results.emotion_scaling.job_ms)
    return results


def _outline(text: str) -> list[str]:
    """The headings and the distinct table headers of a report, before the scale section (``make
    bench-scale``'s)."""
    lines = text.split("<!-- make bench-scale: start")[0].splitlines()
    headers = [line for line, below in itertools.pairwise(lines) if below[:1] == "|" and set(below) <= set("|-: ")]
    return [line for line in lines if line.startswith("#")] + list(dict.fromkeys(headers))


def test_the_report_has_every_section_table_and_column_of_benchmarks_md():
    text = report.render(_results())
    assert _outline(text) == _outline((Path(report.__file__).parent.parent / "BENCHMARKS.md").read_text())
    # the figures the issues track: with SQS hanging, the cold-start ratio, CPU per send
    assert "| store_message: p50 with SQS hanging / p50 with SQS answering | 1.07 (" in text
    assert "| create_booking: p50 with SQS hanging / p50 with SQS answering | 3.1 (" in text
    assert "| store_message: cold start / typical handler (median of per-pair wall ratios) | 0.4 (3 pairs" in text
    assert "| store_message | 0.50 ms = 4.50 handler with its SQS send, minus the wait for SQS − 4.00 raw SQL;" in text
    assert "the SQS send's CPU 0.50 ms" in text and "**MISS**" in text and "**PASS**" in text
