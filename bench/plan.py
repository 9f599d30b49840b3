"""What a bench run measures (``Plan``: the sample sizes) and what it found (``Results``), shared by
``bench.run`` (which fills them), ``bench.report`` (which renders them) and ``bench.coldstart``."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Any

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
    operations: list[str] = field(default_factory=list)  # names of the Operation entries
    calibration: dict[str, Any] = field(default_factory=dict)
    rtt0: dict[str, Any] = field(default_factory=dict)  # label -> RunResult
    raw0: dict[str, list[float]] = field(default_factory=dict)
    rtt270: dict[str, Any] = field(default_factory=dict)
    sqs_hanging: dict[str, Any] = field(default_factory=dict)  # the writes at RTT 270 with SQS hanging
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


_T0 = time.perf_counter()


def log(message: str) -> None:
    print(f"[bench {time.perf_counter() - _T0:6.1f}s] {message}", file=sys.stderr, flush=True)


def elapsed() -> float:
    return time.perf_counter() - _T0
