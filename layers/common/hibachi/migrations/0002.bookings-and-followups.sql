-- depends: 0001.conversations-and-messages
-- Bookings (capacity enforced by the database) and their post-event follow-ups.
-- Portable to PostgreSQL 15+ (Aurora). btree_gist is a trusted extension (PostgreSQL 13+): the
-- database owner may create it; it lets one GiST index hold the chef id (=) and the time range (&&).

CREATE EXTENSION IF NOT EXISTS btree_gist;

CREATE TABLE IF NOT EXISTS bookings (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    status           text NOT NULL DEFAULT 'confirmed' CHECK (status IN ('confirmed', 'cancelled')),
    -- bumped by every change (reschedule, cancel); the follow-up belongs to one version
    version          integer NOT NULL DEFAULT 1 CHECK (version >= 1),
    chef_id          integer NOT NULL CHECK (chef_id BETWEEN 1 AND 100),
    event_start      timestamptz NOT NULL,
    event_end        timestamptz NOT NULL,
    -- the chef is held until the event ends plus the travel buffer in force when it was booked
    held_until       timestamptz NOT NULL,
    held             tstzrange GENERATED ALWAYS AS (tstzrange(event_start, held_until, '[)')) STORED,
    timezone         text NOT NULL CHECK (char_length(timezone) BETWEEN 1 AND 64),
    duration_minutes integer NOT NULL CHECK (duration_minutes BETWEEN 60 AND 360),
    guest_count      integer NOT NULL CHECK (guest_count BETWEEN 1 AND 100),
    customer_name    text NOT NULL CHECK (char_length(customer_name) BETWEEN 1 AND 200),
    customer_phone   text NOT NULL CHECK (customer_phone ~ '^\+[1-9][0-9]{6,14}$'),
    customer_email   text NOT NULL CHECK (char_length(customer_email) BETWEEN 3 AND 254),
    address          jsonb NOT NULL CHECK (jsonb_typeof(address) = 'object'),
    conversation_id  text CHECK (conversation_id ~ '^[A-Za-z0-9._:-]{1,128}$'),
    notes            text CHECK (char_length(notes) <= 2000),
    -- Idempotency-Key of the creating request and the SHA-256 of its normalized body: a retry
    -- with the same key and body returns this booking, another body gets 422
    idempotency_key  text CHECK (char_length(idempotency_key) BETWEEN 1 AND 128),
    request_hash     text NOT NULL CHECK (char_length(request_hash) = 64),
    followup_due_at  timestamptz NOT NULL,
    -- the version whose follow-up the worker has fully handled (schedule_followup);
    -- followup_version < version for longer than the grace period: the reconciler's signal
    followup_version integer NOT NULL DEFAULT 0,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    cancelled_at     timestamptz,
    CONSTRAINT bookings_idempotency_key UNIQUE (idempotency_key),
    CONSTRAINT bookings_times CHECK (event_end > event_start AND held_until >= event_end
                                     AND followup_due_at >= event_end),
    CONSTRAINT bookings_cancelled_at CHECK ((status = 'cancelled') = (cancelled_at IS NOT NULL)),
    -- capacity: a chef holds at most one confirmed booking at any instant
    CONSTRAINT bookings_chef_capacity EXCLUDE USING gist (chef_id WITH =, held WITH &&)
        WHERE (status = 'confirmed')
);

CREATE INDEX IF NOT EXISTS bookings_followup_behind
    ON bookings (updated_at) WHERE followup_version < version;

CREATE TABLE IF NOT EXISTS followups (
    booking_id    uuid PRIMARY KEY REFERENCES bookings (id) ON DELETE CASCADE,
    -- the booking version this follow-up was computed from; send_followup jobs carry it
    version       integer NOT NULL CHECK (version >= 1),
    status        text NOT NULL CHECK (status IN ('pending', 'sending', 'sent', 'cancelled')),
    due_at        timestamptz NOT NULL,
    schedule_name text CHECK (char_length(schedule_name) <= 64),
    scheduled_at  timestamptz,
    claimed_at    timestamptz,
    sent_at       timestamptz,
    attempts      integer NOT NULL DEFAULT 0,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT followups_sent_at CHECK ((status = 'sent') = (sent_at IS NOT NULL)),
    CONSTRAINT followups_claimed_at CHECK (status <> 'sending' OR claimed_at IS NOT NULL)
);

-- the reconciler: pending and past due (a lost schedule), or stuck in 'sending' (a crashed send)
CREATE INDEX IF NOT EXISTS followups_pending_due ON followups (due_at) WHERE status = 'pending';
CREATE INDEX IF NOT EXISTS followups_sending ON followups (claimed_at) WHERE status = 'sending';
