"""create_booking, written the common way (see ``bench/typical/__init__.py``)."""

import json
import os
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import boto3
import psycopg
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from psycopg.types.json import Jsonb
from pydantic import BaseModel, EmailStr, Field, field_validator

logger = Logger()
metrics = Metrics()
app = APIGatewayHttpResolver(enable_validation=True)

sqs = boto3.client("sqs")
QUEUE_URL = os.environ["JOBS_QUEUE_URL"]
conn = psycopg.connect(os.environ["DATABASE_URL"])


class Customer(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    phone: str = Field(pattern=r"^\+[1-9]\d{6,14}$")
    email: EmailStr


class Address(BaseModel):
    line1: str = Field(min_length=1, max_length=200)
    line2: str | None = None
    city: str = Field(min_length=1, max_length=100)
    state: str = Field(min_length=1, max_length=100)
    postal_code: str = Field(min_length=1, max_length=20)


class BookingIn(BaseModel):
    customer: Customer
    event_start: datetime
    timezone: str
    duration_minutes: int = Field(default=120, ge=60, le=360)
    guest_count: int = Field(ge=1, le=100)
    address: Address
    conversation_id: str | None = None
    notes: str | None = Field(default=None, max_length=2000)

    @field_validator("timezone")
    @classmethod
    def known_zone(cls, value: str) -> str:
        ZoneInfo(value)
        return value


@app.post("/bookings")
def create_booking(booking: BookingIn) -> Response[dict[str, Any]]:
    start = booking.event_start.replace(tzinfo=ZoneInfo(booking.timezone)).astimezone(UTC)
    end = start + timedelta(minutes=booking.duration_minutes)
    booking_id = uuid.uuid4()
    with conn.transaction():
        customer_id = conn.execute(
            "INSERT INTO oldsys.customers AS c (email, name, phone) VALUES (%s, %s, %s) "
            "ON CONFLICT (email) DO UPDATE SET name = EXCLUDED.name, phone = EXCLUDED.phone, updated_at = now() "
            "RETURNING id",
            (booking.customer.email, booking.customer.name, booking.customer.phone),
        ).fetchone()[0]  # type: ignore[index]
        conn.execute(
            "INSERT INTO oldsys.bookings (id, customer_id, event_start, event_end, timezone, guest_count, "
            "address, conversation_id, notes) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (
                booking_id,
                customer_id,
                start,
                end,
                booking.timezone,
                booking.guest_count,
                Jsonb(booking.address.model_dump()),
                booking.conversation_id,
                booking.notes,
            ),
        )
    sqs.send_message(QueueUrl=QUEUE_URL, MessageBody=json.dumps({"type": "schedule_followup", "id": str(booking_id)}))
    metrics.add_metric(name="BookingCreated", unit=MetricUnit.Count, value=1)
    body = {**booking.model_dump(mode="json"), "id": str(booking_id), "status": "confirmed"}
    body["event_start"], body["event_end"] = start.isoformat(), end.isoformat()
    return Response(status_code=201, content_type=content_types.APPLICATION_JSON, body=body)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return app.resolve(event, context)
