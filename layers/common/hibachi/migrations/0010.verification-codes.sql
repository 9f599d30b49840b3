-- depends: 0008.conversation-identities
-- One-time codes that prove a phone or an email in a conversation: the customer of a web
-- chat asks for a code, it is delivered to that phone or address, and the code typed back into the
-- same conversation adds the identity to conversation_identities (verified_by 'code').
--
-- The code itself is never stored: code_hash = SHA-256(code_salt || the code's ASCII digits), with a
-- random 16-byte salt per code; the confirming statement compares the hash of what was typed
-- (hibachi.verifications.repository.CONFIRM). Only the newest code of a conversation counts; it
-- expires at expires_at and takes at most max_attempts confirmations (both fixed when it is made).
--
-- Rate limits, enforced by the database: at most N codes per destination (and per conversation) in
-- any window of W seconds. Each code holds one of N slots for [created, created + W) of its
-- destination (and one of its conversation); two codes in the same slot may not overlap, so no
-- instant is covered by more than N windows, i.e. no W seconds hold more than N codes. A send takes
-- the lowest free slot of each (the insert's ON CONFLICT DO NOTHING loses a race without an error,
-- as bookings do with chefs); none free: 429 until the earliest slot frees. A voided code (its
-- delivery could not be queued) gives its slots back.
CREATE TABLE IF NOT EXISTS verification_codes (
    id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    conversation_id     text NOT NULL CHECK (conversation_id ~ '^[A-Za-z0-9._:-]{1,128}$'),
    kind                text NOT NULL CHECK (kind IN ('phone', 'email')),
    -- as stored on bookings and in conversation_identities: phone E.164, email normalized
    destination         text NOT NULL CHECK (char_length(destination) BETWEEN 3 AND 254),
    code_salt           bytea NOT NULL CHECK (octet_length(code_salt) = 16),
    code_hash           bytea NOT NULL CHECK (octet_length(code_hash) = 32),
    created_at          timestamptz NOT NULL DEFAULT now(),
    expires_at          timestamptz NOT NULL,
    max_attempts        integer NOT NULL CHECK (max_attempts BETWEEN 1 AND 100),
    attempts            integer NOT NULL DEFAULT 0,
    confirmed_at        timestamptz,
    sent_at             timestamptz,
    voided_at           timestamptz,
    destination_slot    integer NOT NULL CHECK (destination_slot BETWEEN 1 AND 1000),
    destination_window  tstzrange NOT NULL,
    conversation_slot   integer NOT NULL CHECK (conversation_slot BETWEEN 1 AND 1000),
    conversation_window tstzrange NOT NULL,
    CONSTRAINT verification_codes_attempts CHECK (attempts BETWEEN 0 AND max_attempts),
    CONSTRAINT verification_codes_expiry CHECK (expires_at > created_at),
    CONSTRAINT verification_destination_limit EXCLUDE USING gist (
        kind WITH =, destination WITH =, destination_slot WITH =, destination_window WITH &&
    ) WHERE (voided_at IS NULL),
    CONSTRAINT verification_conversation_limit EXCLUDE USING gist (
        conversation_id WITH =, conversation_slot WITH =, conversation_window WITH &&
    ) WHERE (voided_at IS NULL)
);

-- the newest code of a conversation (confirm), and its codes in a window (send)
CREATE INDEX IF NOT EXISTS verification_codes_conversation ON verification_codes (conversation_id, created_at DESC);
