"""Health of the service and its dependencies, cheap enough for a public probe."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel

from hibachi.db import get_db
from hibachi.errors import DependencyUnavailable
from hibachi.settings import get_settings


class DependencyHealth(BaseModel):
    status: Literal["ok", "unavailable"]
    latency_ms: float | None = None


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    version: str
    database: DependencyHealth


def check() -> Health:
    """One ``SELECT 1``; a failing database makes the service ``degraded`` (the API answers 503)."""
    try:
        database = DependencyHealth(status="ok", latency_ms=round(get_db().ping(), 2))
    except DependencyUnavailable:
        database = DependencyHealth(status="unavailable")
    status = "ok" if database.status == "ok" else "degraded"
    return Health(status=status, version=get_settings().app_version, database=database)
