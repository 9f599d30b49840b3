"""API models of conversations and messages."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from hibachi.validation import STORABLE, Metadata, bounds

Role = Literal["user", "assistant", "system"]
# what a client may store: ``system`` messages come from the server alone (booking confirmations,
# follow-ups), since a conversation is the prompt the assistant reads and obeys its system lines
InputRole = Literal["user", "assistant"]
Trend = Literal["improving", "stable", "declining"]


class MessageIn(BaseModel):
    """One chat message to store."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    role: InputRole = Field(
        description="`user` for what the customer wrote, `assistant` for the assistant's replies; `system` "
        "messages are the server's own (booking confirmations, follow-ups): a client cannot store one"
    )
    content: Annotated[str, bounds(8000, 1), STORABLE]
    emotion_score: float | None = Field(
        default=None,
        ge=-1,
        le=1,
        strict=True,  # no "0.5", no true
        description="Sentiment of the message, -1 (upset) to 1 (delighted)",
    )
    customer_id: Annotated[str, bounds(128), STORABLE] | None = None
    channel: Annotated[str, bounds(32), STORABLE] | None = Field(default=None, examples=["web", "sms"])
    metadata: Metadata = Field(default_factory=dict, description="JSON object, at most 4 KB serialized")


# The history's cursor: "m" and the sequence number of the oldest message of the page before, in ASCII
# decimal without leading zeros (what the document states as the pattern of ``before``, so every
# schema-valid cursor is one this API could have handed out: an old one just reads an older page).
CURSOR_PATTERN = r"^m[1-9][0-9]{0,18}$"


class MessagesQuery(BaseModel):
    """The query of ``GET /conversations/{id}/messages`` (its route declares the same parameters;
    tests/integration/test_assistant_tools.py checks they match): the newest ``limit`` messages
    (before ``before``), returned oldest first."""

    # built on first use: a write's cold start does not need it
    model_config = ConfigDict(extra="forbid", defer_build=True)

    limit: int = Field(default=50, ge=1, le=200, description="How many of the newest messages (1-200)")
    before: str | None = Field(
        default=None,
        max_length=20,
        pattern=CURSOR_PATTERN,
        description="`next_cursor` of the newer page, to read further back in the conversation",
    )


class MessageOut(BaseModel):
    id: UUID
    conversation_id: str
    role: Role
    content: str
    emotion_score: float | None
    metadata: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime


class MessagePage(BaseModel):
    """A page of messages, oldest to newest; ``next_cursor`` fetches the older page before it."""

    model_config = ConfigDict(defer_build=True)  # built on first use: a write's cold start does not need it

    items: list[MessageOut]
    next_cursor: str | None


class ConversationOut(BaseModel):
    model_config = ConfigDict(defer_build=True)  # built on first use: a write's cold start does not need it

    id: str
    customer_id: str | None
    channel: str | None
    created_at: datetime
    last_message_at: datetime
    message_count: int
    avg_emotion: float | None = Field(description="Mean emotion score of the scored messages (worker-computed)")
    emotion_count: int = Field(description="How many messages the statistics include")
    last_emotion: float | None
    emotion_trend: Trend | None = Field(description="Direction of the last 10 scores")
    stats_updated_at: datetime | None
