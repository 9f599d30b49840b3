"""boto3 clients, created lazily (a function that never calls AWS never imports boto3), once per
process and settings, with explicit timeouts: a slow AWS call must not hold a request hostage."""

from __future__ import annotations

import os
import threading
from typing import Any

from hibachi.settings import get_settings

# (connect timeout s, read timeout s, attempts) per use
FAST = (1, 2, 2)  # on the API's request path: the send may fail, the reconciler recovers the job
WORKER = (2, 5, 3)  # in the worker: a failure retries the job
PROBE = (1, 2, 1)  # health checks: answer quickly, never hang on a dependency

_clients: dict[tuple[str, str | None, str, tuple[float, float, int]], Any] = {}
_lock = threading.Lock()


def client(service: str, profile: tuple[float, float, int] = WORKER, region: str | None = None) -> Any:
    """The boto3 client of ``service`` for ``region`` (default: the settings'), the endpoint in the
    environment (``AWS_ENDPOINT_URL``, the local stack's moto) and the timeout ``profile``."""
    region = region or get_settings().aws_region
    key = (region, os.environ.get("AWS_ENDPOINT_URL"), service, profile)
    found = _clients.get(key)
    if found is None:
        with _lock:
            found = _clients.get(key)
            if found is None:
                import boto3
                from botocore.config import Config

                connect, read, attempts = profile
                found = boto3.client(
                    service,
                    region_name=region,
                    config=Config(
                        connect_timeout=connect,
                        read_timeout=read,
                        retries={"mode": "standard", "max_attempts": attempts},
                    ),
                )
                _clients[key] = found
    return found


def error_code(exc: Exception) -> str:
    """The AWS error code of a botocore ``ClientError`` ('' for anything else)."""
    code = (getattr(exc, "response", None) or {}).get("Error", {}).get("Code", "")
    return code if isinstance(code, str) else ""
