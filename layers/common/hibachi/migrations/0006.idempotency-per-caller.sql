-- depends: 0004.followup-due-any-time
-- One idempotency contract (docs/ARCHITECTURE.md, "Idempotency"): an Idempotency-Key belongs to its
-- caller (the JWT's client_id claim, else sub), and a request is compared by a SHA-256 of its route,
-- path parameters and canonical body.
--
-- Rows written before this migration have no caller: idempotency_caller stays NULL and they keep
-- their old scope (a message's key: its conversation; a booking's key: the whole API), so a retry
-- that comes after the deploy still finds its original and no key is lost. The worker's own
-- messages (the booking confirmation, the follow-up) use that conversation scope too.

-- messages: (caller, key) unique; NULL callers keep the per-conversation key
ALTER TABLE messages ADD COLUMN IF NOT EXISTS idempotency_caller text CHECK (char_length(idempotency_caller) >= 1);
ALTER TABLE messages ADD COLUMN IF NOT EXISTS request_hash text CHECK (char_length(request_hash) = 64);
CREATE UNIQUE INDEX IF NOT EXISTS messages_conversation_key
    ON messages (conversation_id, idempotency_key) WHERE idempotency_caller IS NULL;
ALTER TABLE messages DROP CONSTRAINT IF EXISTS messages_idempotency_key;
CREATE UNIQUE INDEX IF NOT EXISTS messages_caller_key
    ON messages (idempotency_caller, idempotency_key) WHERE idempotency_caller IS NOT NULL;

-- bookings: (caller, key) unique; NULL callers keep the API-wide key
ALTER TABLE bookings ADD COLUMN IF NOT EXISTS idempotency_caller text CHECK (char_length(idempotency_caller) >= 1);
CREATE UNIQUE INDEX IF NOT EXISTS bookings_legacy_key ON bookings (idempotency_key) WHERE idempotency_caller IS NULL;
ALTER TABLE bookings DROP CONSTRAINT IF EXISTS bookings_idempotency_key;
CREATE UNIQUE INDEX IF NOT EXISTS bookings_caller_key
    ON bookings (idempotency_caller, idempotency_key) WHERE idempotency_caller IS NOT NULL;

-- PATCH /bookings/{id} with a key: the key, the request's hash and the answer given, written in the
-- statement that applies the change (or, for a change that changes nothing, on its own)
CREATE TABLE IF NOT EXISTS booking_changes (
    idempotency_caller text NOT NULL CHECK (char_length(idempotency_caller) >= 1),
    idempotency_key    text NOT NULL CHECK (char_length(idempotency_key) BETWEEN 1 AND 128),
    booking_id         uuid NOT NULL REFERENCES bookings (id) ON DELETE CASCADE,
    request_hash       text NOT NULL CHECK (char_length(request_hash) = 64),
    -- the booking's version after the change, and the booking as answered
    version            integer NOT NULL CHECK (version >= 1),
    response           jsonb NOT NULL CHECK (jsonb_typeof(response) = 'object'),
    created_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (idempotency_caller, idempotency_key)
);

CREATE INDEX IF NOT EXISTS booking_changes_booking ON booking_changes (booking_id);
