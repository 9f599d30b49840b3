"""store_message, written the common way (see ``bench/typical/__init__.py``)."""

import json
import os
import uuid
from datetime import UTC, datetime
from typing import Any, Literal

import boto3
import psycopg
from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from psycopg.types.json import Jsonb
from pydantic import BaseModel, Field

logger = Logger()
metrics = Metrics()
app = APIGatewayHttpResolver(enable_validation=True)

sqs = boto3.client("sqs")
QUEUE_URL = os.environ["JOBS_QUEUE_URL"]
conn = psycopg.connect(os.environ["DATABASE_URL"])


class MessageIn(BaseModel):
    role: Literal["user", "assistant", "system"]
    content: str = Field(min_length=1, max_length=8000)
    emotion_score: float | None = Field(default=None, ge=-1, le=1)
    customer_id: str | None = Field(default=None, max_length=128)
    channel: str | None = Field(default=None, max_length=32)
    metadata: dict[str, Any] = Field(default_factory=dict)


@app.post("/conversations/<conversation_id>/messages")
def store_message(conversation_id: str, message: MessageIn) -> Response[dict[str, Any]]:
    message_id = uuid.uuid4()
    created_at = datetime.now(UTC)
    with conn.transaction():
        conn.execute(
            "INSERT INTO oldsys.ai_conversations AS c (id, customer_id, channel, message_count) "
            "VALUES (%s, %s, %s, 1) "
            "ON CONFLICT (id) DO UPDATE SET message_count = c.message_count + 1, updated_at = now()",
            (conversation_id, message.customer_id, message.channel),
        )
        conn.execute(
            "INSERT INTO oldsys.ai_messages (id, conversation_id, role, content, emotion_score, metadata, created_at) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s)",
            (
                message_id,
                conversation_id,
                message.role,
                message.content,
                message.emotion_score,
                Jsonb(message.metadata),
                created_at,
            ),
        )
    if message.emotion_score is not None:
        sqs.send_message(
            QueueUrl=QUEUE_URL,
            MessageBody=json.dumps({"type": "emotion_stats", "conversation_id": conversation_id}),
        )
    metrics.add_metric(name="MessageStored", unit=MetricUnit.Count, value=1)
    body = {**message.model_dump(), "id": str(message_id), "conversation_id": conversation_id}
    body["created_at"] = created_at.isoformat()
    return Response(status_code=201, content_type=content_types.APPLICATION_JSON, body=body)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP)
@metrics.log_metrics(capture_cold_start_metric=True)
def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    return app.resolve(event, context)
