-- depends: 0007.least-privilege-roles
-- The identities proven in a conversation: a phone number or an email address that the channel
-- attested (an SMS conversation's sender, set by a staff token) or that the customer confirmed with
-- a one-time code. The assistant acting in a conversation reaches the bookings made in it and the
-- bookings whose phone or email is one of these (values as stored on bookings: phone E.164, email
-- normalized), and no other.
CREATE TABLE IF NOT EXISTS conversation_identities (
    conversation_id text NOT NULL CHECK (conversation_id ~ '^[A-Za-z0-9._:-]{1,128}$'),
    kind            text NOT NULL CHECK (kind IN ('phone', 'email')),
    value           text NOT NULL CHECK (char_length(value) BETWEEN 3 AND 254),
    -- how it was proven: the channel ('sms', 'whatsapp', ...) or 'code' (a one-time code)
    verified_by     text NOT NULL CHECK (verified_by ~ '^[a-z][a-z0-9_-]{0,31}$'),
    verified_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (conversation_id, kind, value)
);
