-- depends: 0008.conversation-identities
-- The event log: one append-only row per state change, written by the statement that
-- makes the change (a CTE beside its UPDATE/INSERT: hibachi.events.repository), never by a trigger
-- and never afterwards. An event belongs to one aggregate: a booking (booking_id set, aggregate_id
-- its id) or a conversation (conversation_id, aggregate_id the conversation id; e.g. "Conversation
-- Needs Attention"). The worker publishes the rows to EventBridge in seq order per aggregate and
-- marks them (published_at); the reconciler republishes what a failed PutEvents left behind.
CREATE TABLE IF NOT EXISTS events (
    -- the order of the log; per aggregate it is the order of the changes, because every writer
    -- holds the aggregate's row lock when it draws its seq (docs/EVENTS.md)
    seq              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    -- the stable id: EventBridge's detail.id, what subscribers deduplicate on
    id               uuid NOT NULL UNIQUE DEFAULT gen_random_uuid(),
    aggregate_type   text NOT NULL CHECK (aggregate_type IN ('booking', 'conversation')),
    aggregate_id     text NOT NULL CHECK (char_length(aggregate_id) BETWEEN 1 AND 128),
    booking_id       uuid REFERENCES bookings (id),
    conversation_id  text CHECK (conversation_id ~ '^[A-Za-z0-9._:-]{1,128}$'),
    -- the EventBridge detail-type: "Booking Created", "Booking Rescheduled", ...
    type             text NOT NULL CHECK (type ~ '^[A-Z][A-Za-z-]*( [A-Z][A-Za-z-]*){1,5}$'),
    -- the aggregate's version after the change (a booking's bookings.version)
    version          int NOT NULL CHECK (version >= 0),
    occurred_at      timestamptz NOT NULL DEFAULT now(),
    -- who: {"kind": "staff"|"assistant"|"system", "sub", "client_id", "conversation_id", "via"}
    actor            jsonb NOT NULL CHECK (jsonb_typeof(actor) = 'object' AND actor ? 'kind' AND actor ? 'via'),
    data             jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (jsonb_typeof(data) = 'object'),
    -- publishing (the only columns that ever change)
    published_at     timestamptz,
    claimed_at       timestamptz,
    publish_attempts int NOT NULL DEFAULT 0,
    CHECK (aggregate_type <> 'booking' OR (booking_id IS NOT NULL AND aggregate_id = booking_id::text)),
    CHECK (aggregate_type <> 'conversation' OR (conversation_id IS NOT NULL AND aggregate_id = conversation_id))
);

-- A booking's change happens once: one event of a type per version (a retried statement, a
-- repeated cancel or a no-op PATCH could not write a second one even if a statement tried).
CREATE UNIQUE INDEX IF NOT EXISTS events_booking_change ON events (booking_id, version, type)
    WHERE aggregate_type = 'booking';
-- GET /bookings/{id}/events and the publisher's head of line per aggregate
CREATE INDEX IF NOT EXISTS events_aggregate ON events (aggregate_type, aggregate_id, seq);
-- the publisher's and the reconciler's backlog
CREATE INDEX IF NOT EXISTS events_unpublished ON events (seq) WHERE published_at IS NULL;

-- Append-only for the application: no DELETE, and UPDATE of the publishing columns only.
REVOKE UPDATE, DELETE, TRUNCATE ON events FROM hibachi_application;
GRANT UPDATE (published_at, claimed_at, publish_attempts) ON events TO hibachi_application;
-- /health/details and the ops CLI read the backlog (no actor, no data)
GRANT SELECT (seq, aggregate_type, type, occurred_at, published_at, claimed_at, publish_attempts)
    ON events TO hibachi_health;
