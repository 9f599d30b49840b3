"""Powertools Logger and Metrics, set up once for every function of the app."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricResolution, MetricUnit

logger = Logger(utc=True)
metrics = Metrics()

__all__ = ["MetricResolution", "MetricUnit", "add_ms", "logger", "metrics", "timed_ms"]


def add_ms(name: str, value_ms: float) -> None:
    """Add a high-resolution milliseconds metric."""
    metrics.add_metric(
        name=name, unit=MetricUnit.Milliseconds, value=round(value_ms, 3), resolution=MetricResolution.High
    )


@contextmanager
def timed_ms() -> Iterator[list[float]]:
    """``with timed_ms() as t: ...`` then ``t[0]`` is the elapsed milliseconds."""
    box = [0.0]
    start = time.perf_counter()
    try:
        yield box
    finally:
        box[0] = (time.perf_counter() - start) * 1000
