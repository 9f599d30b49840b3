-- Conversations and their messages (the chat history an LLM prompt is built from).
-- Portable to PostgreSQL 15+ (Aurora). gen_random_uuid() is core since PostgreSQL 13.

CREATE TABLE IF NOT EXISTS conversations (
    id               text PRIMARY KEY CHECK (id ~ '^[A-Za-z0-9._:-]{1,128}$'),
    customer_id      text CHECK (char_length(customer_id) <= 128),
    channel          text CHECK (char_length(channel) <= 32),
    created_at       timestamptz NOT NULL DEFAULT now(),
    last_message_at  timestamptz NOT NULL DEFAULT now(),
    message_count    integer NOT NULL DEFAULT 0 CHECK (message_count >= 0),
    -- seq of the newest message that carries an emotion score (written with the message)
    scored_seq       bigint NOT NULL DEFAULT 0,
    -- seq of the newest scored message the statistics below include (written by the worker);
    -- scored_seq > stats_seq means the statistics are behind: the reconciler's signal
    stats_seq        bigint NOT NULL DEFAULT 0,
    emotion_count    integer NOT NULL DEFAULT 0,
    avg_emotion      double precision,
    last_emotion     double precision,
    emotion_trend    double precision,
    stats_updated_at timestamptz
);

CREATE INDEX IF NOT EXISTS conversations_stats_behind
    ON conversations (last_message_at) WHERE scored_seq > stats_seq;

CREATE TABLE IF NOT EXISTS messages (
    seq             bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    id              uuid NOT NULL DEFAULT gen_random_uuid() UNIQUE,
    conversation_id text NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
    role            text NOT NULL CHECK (role IN ('user', 'assistant', 'system')),
    content         text NOT NULL CHECK (char_length(content) BETWEEN 1 AND 8000),
    emotion_score   double precision CHECK (emotion_score BETWEEN -1 AND 1),
    metadata        jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(metadata) = 'object'),
    idempotency_key text CHECK (char_length(idempotency_key) BETWEEN 1 AND 128),
    created_at      timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT messages_idempotency_key UNIQUE (conversation_id, idempotency_key)
);

CREATE INDEX IF NOT EXISTS messages_conversation_seq ON messages (conversation_id, seq);
