"""Settings from the environment, read once per process and injectable in tests.

    from hibachi.settings import get_settings, override
    with override(chef_count=1):
        ...  # code under test sees the new settings; singletons built on settings are rebuilt

Objects that depend on settings (the database connection, the job queue) compare the settings
object they were built with against ``get_settings()`` and rebuild themselves when it changed.

A plain pydantic model, not pydantic-settings (20-75 ms of cold start for features this does not
use): ``Settings(**values)`` fills every field not given from the environment variable of the same
name (case-insensitive; ``validation_alias`` names the variable when it differs), validated the
usual pydantic way (``"5"`` for an int, ``"true"``/``"1"`` for a bool).
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from datetime import time
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator


def _from_environment(fields: Mapping[str, Any], environ: Mapping[str, str]) -> dict[str, str]:
    """The environment's value of each field (by its name, or its ``validation_alias``), any case."""
    lowered = {key.lower(): value for key, value in environ.items()}
    found: dict[str, str] = {}
    for name, info in fields.items():
        alias = info.validation_alias
        key = (alias if isinstance(alias, str) else name).lower()
        if key in lowered:
            found[name] = lowered[key]
    return found


class Settings(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True, populate_by_name=True)

    def __init__(self, **values: Any) -> None:
        given = {**values}
        for name, info in type(self).model_fields.items():  # a value given by its alias counts as given
            if isinstance(info.validation_alias, str) and info.validation_alias in given:
                given[name] = given.pop(info.validation_alias)
        super().__init__(**{**_from_environment(type(self).model_fields, os.environ), **given})

    # database: DATABASE_URL (local, tests) or RDS Proxy with IAM auth (AWS)
    database_url: str | None = None
    db_host: str | None = None
    db_port: int = 5432
    db_name: str = "hibachi"
    db_user: str = "hibachi_application"
    db_iam_auth: bool = True
    db_password: str | None = Field(default=None, repr=False)
    # verify-full: the proxy's certificate must chain to a trusted root and name DB_HOST. RDS Proxy
    # serves an ACM certificate (Amazon Root CA 1-4), bundled in the layer (hibachi/certs);
    # DB_SSLROOTCERT overrides the bundle's path. DATABASE_URL (local) carries its own sslmode.
    db_sslmode: str = "verify-full"
    db_sslrootcert: str | None = None
    db_connect_timeout: int = Field(default=2, ge=1, le=30)
    # client-side: a statement unanswered this long (a frozen server, a black-holed network) has its
    # connection closed under it, so the request fails with 503 instead of hanging to the Lambda timeout
    db_statement_deadline: float = Field(default=2.0, gt=0, le=900)
    aws_region: str = "us-east-1"
    # the local stack's moto (AWS_ENDPOINT_URL); unset on AWS: the region's public endpoints
    aws_endpoint_url: str | None = Field(default=None, validation_alias="AWS_ENDPOINT_URL")
    # SQS alone (botocore's variables): the endpoint, else the queue URL's host (hibachi.sqs.endpoint_url)
    aws_endpoint_url_sqs: str | None = Field(default=None, validation_alias="AWS_ENDPOINT_URL_SQS")
    aws_use_fips_endpoint: bool = Field(default=False, validation_alias="AWS_USE_FIPS_ENDPOINT")
    aws_use_dualstack_endpoint: bool = Field(default=False, validation_alias="AWS_USE_DUALSTACK_ENDPOINT")

    # jobs
    jobs_queue_url: str | None = None
    # the dead-letter queues, read by /health/details and the ops CLI (depth only)
    jobs_dlq_url: str | None = None
    scheduler_dlq_url: str | None = None
    # a request's job send: all of it (connect, retries, answer) within this budget; after a failed
    # send the execution environment sends nothing for the pause and leaves its jobs to the reconciler
    jobs_send_budget_seconds: float = Field(default=0.15, gt=0, le=10)
    jobs_send_pause_seconds: float = Field(default=5.0, ge=0, le=300)
    reconcile_grace_seconds: int = Field(default=30, ge=0)
    reconcile_batch_limit: int = Field(default=500, ge=1, le=10_000)
    # a reconciler run stops sending (and starting reconcilers) after this, well inside the worker's
    # 60 s timeout, so it always ends, records itself and leaves the rest to the next run
    reconcile_budget_seconds: float = Field(default=40, gt=0, le=840)

    # API
    max_body_bytes: int = Field(default=65_536, ge=1_024)
    app_version: str = "dev"
    # the JWT authorizer's issuer (template parameter JwtIssuer): the authorization server named by the
    # protected-resource metadata (hibachi.oauth)
    jwt_issuer: str | None = None
    # GET /health reuses its last probe this long (per execution environment); the template sets 5
    health_cache_seconds: float = Field(default=0, ge=0, le=60)
    service_name: str = Field(default="hibachi", validation_alias="POWERTOOLS_SERVICE_NAME")

    # bookings and follow-ups
    chef_count: int = Field(default=3, ge=1, le=100)
    min_lead_hours: float = Field(default=24, ge=0)
    travel_buffer_minutes: int = Field(default=60, ge=0, le=24 * 60)
    # service hours: the local start times offered and accepted, every SLOT_STEP_MINUTES from
    # SERVICE_FIRST_START to SERVICE_LAST_START (both included), in the event's own time zone
    slot_step_minutes: int = Field(default=30, ge=5, le=240)
    service_first_start: time = time(11, 0)
    service_last_start: time = time(20, 0)
    followup_delay_hours: float = Field(default=24, ge=0)
    followup_earliest_hour: int = Field(default=10, ge=0, le=23)
    followup_latest_hour: int = Field(default=19, ge=0, le=23)
    # Demos only (the template never sets it): the follow-up is due this many seconds after the
    # booking is made or moved, instead of after the event, so it can be watched end to end.
    followup_demo_delay_seconds: float | None = Field(default=None, ge=0, le=86_400)
    followup_topic_arn: str | None = None
    scheduler_group_name: str = "default"
    scheduler_role_arn: str | None = None
    scheduler_target_arn: str | None = None
    scheduler_dlq_arn: str | None = None
    schedule_name_prefix: str = "hibachi-fu-"
    # the reminder goes out this long before the event (0: no reminders); a booking made or moved
    # later than that gets none
    reminder_lead_hours: float = Field(default=24, ge=0, le=24 * 30)

    # escalation (docs/ARCHITECTURE.md, "Emotion statistics"): a conversation needs attention once its
    # emotion trend (slope per message of the last 10 scores, -1..1) is below ATTENTION_ENTER_TREND with
    # at least ATTENTION_MIN_SCORES scores, and again not once the trend is above ATTENTION_LEAVE_TREND
    attention_enter_trend: float = Field(default=-0.05, ge=-2, le=0)
    attention_leave_trend: float = Field(default=0.03, ge=-2, le=2)
    attention_min_scores: int = Field(default=4, ge=2, le=10)
    # the EventBridge bus the worker publishes the event log to (unset: events stay unpublished)
    event_bus_name: str | None = None

    # verified identities (one-time codes): a code lives VERIFICATION_CODE_TTL_SECONDS and takes at most
    # VERIFICATION_MAX_ATTEMPTS confirmations; at most VERIFICATION_DESTINATION_MAX_SENDS codes go to one
    # phone or email in any VERIFICATION_DESTINATION_WINDOW_SECONDS, and at most
    # VERIFICATION_CONVERSATION_MAX_SENDS start in one conversation in any
    # VERIFICATION_CONVERSATION_WINDOW_SECONDS (the database enforces both: migration 0010)
    verification_code_ttl_seconds: int = Field(default=600, ge=30, le=86_400)
    verification_max_attempts: int = Field(default=5, ge=1, le=100)
    verification_destination_max_sends: int = Field(default=3, ge=1, le=1000)
    verification_destination_window_seconds: int = Field(default=900, ge=1, le=7 * 86_400)
    verification_conversation_max_sends: int = Field(default=5, ge=1, le=1000)
    verification_conversation_window_seconds: int = Field(default=3600, ge=1, le=7 * 86_400)

    @model_validator(mode="after")
    def _service_window(self) -> Settings:
        first, last = self.service_first_start, self.service_last_start
        if any(t.tzinfo is not None or t.second or t.microsecond for t in (first, last)):
            raise ValueError("SERVICE_FIRST_START and SERVICE_LAST_START are local times of day, such as 11:00")
        if first > last:
            raise ValueError("SERVICE_FIRST_START must not be later than SERVICE_LAST_START")
        if self.attention_leave_trend <= self.attention_enter_trend:
            raise ValueError("ATTENTION_LEAVE_TREND must be above ATTENTION_ENTER_TREND (hysteresis)")
        return self


_current: Settings | None = None


def get_settings() -> Settings:
    """The process-wide settings, read from the environment on first use."""
    global _current
    if _current is None:
        _current = Settings()
    return _current


def set_settings(settings: Settings | None) -> None:
    """Replace the process-wide settings (``None``: read the environment again on next use)."""
    global _current
    _current = settings


@contextmanager
def override(**values: object) -> Iterator[Settings]:
    """Temporarily run with the current settings changed by ``values`` (validated)."""
    previous = get_settings()
    updated = Settings(**{**previous.model_dump(), **values})
    set_settings(updated)
    try:
        yield updated
    finally:
        set_settings(previous)


class MissingSettings(RuntimeError):
    """A function started on AWS without a setting it cannot work without (a mis-wired deploy)."""


def require_on_aws(*names: str) -> None:
    """At a function's cold start: on AWS (``AWS_LAMBDA_FUNCTION_NAME`` set and no ``DATABASE_URL``),
    fail the start with one clear log line when any of the settings ``names`` is unset, so a
    mis-wired deploy fails at once instead of on some later request. Locally and in tests (a
    ``DATABASE_URL``, or not in Lambda) it checks only that the names are settings."""
    unknown = [name for name in names if name not in Settings.model_fields]
    if unknown:
        raise ValueError(f"not settings: {', '.join(unknown)}")
    if not os.environ.get("AWS_LAMBDA_FUNCTION_NAME"):
        return
    settings = get_settings()
    if settings.database_url:
        return
    missing = [name.upper() for name in names if getattr(settings, name) in (None, "")]
    if missing:
        from hibachi.observability import logger

        message = f"missing settings: {', '.join(missing)} (environment variables of this function)"
        logger.error(message, extra={"missing_settings": missing})
        raise MissingSettings(message)
