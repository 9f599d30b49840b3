"""Powertools Logger and Metrics, set up once for every function of the app."""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.metrics import MetricResolution, MetricUnit

logger = Logger(utc=True)
metrics = Metrics()

# Libraries log request contents at DEBUG (Powertools the parsed body of each route call, botocore
# each API call's parameters, such as the follow-up SNS message): when the function's log level is
# lowered (Lambda's ApplicationLogLevel, a debugging session), those would be customers' names,
# addresses and messages. Their loggers stay at INFO, whatever the root logger's level.
for _library in ("aws_lambda_powertools", "botocore", "boto3", "urllib3", "s3transfer", "psycopg"):
    logging.getLogger(_library).setLevel(logging.INFO)

__all__ = [
    "MetricResolution",
    "MetricUnit",
    "add_ms",
    "error_text",
    "exception_facts",
    "logger",
    "metrics",
    "timed_ms",
]


def exception_facts(exc: BaseException) -> dict[str, Any]:
    """What is logged about an unexpected exception: its type and where it was raised (file, line
    and function of each frame). Never its message, nor its cause's: a validation or database
    error quotes the values it refused, and those may be a customer's name, phone or address."""
    frames = traceback.extract_tb(exc.__traceback__)[-12:]
    return {
        "error_type": f"{type(exc).__module__}.{type(exc).__qualname__}",
        "frames": [f"{f.filename.rsplit('/', 2)[-1]}:{f.lineno} {f.name}" for f in frames],
    }


def error_text(exc: BaseException) -> str:
    """A one-line description of ``exc`` that is safe to log: the app's own errors (their messages
    are written to be shown) and the AWS SDK's (service error codes and request ids) in full, the
    database's as sqlstate and constraint (``hibachi.db.error_facts``), any other by type only."""
    from hibachi.errors import AppError

    name = type(exc).__name__
    if isinstance(exc, AppError):
        return f"{name}: {exc.message}"[:300]
    module = type(exc).__module__ or ""
    if module.startswith(("botocore", "boto3", "urllib3")):
        return repr(exc)[:300]
    if module.startswith("psycopg"):
        return f"{name} sqlstate={getattr(exc, 'sqlstate', None)}"
    return name


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
