-- depends: 0008.conversation-identities
-- Emails are matched case-insensitively: stored in lower case, searched in lower case. The
-- rows written before are lower-cased here, and a CHECK keeps every new one so (the service lower-cases
-- what it stores). The idempotency hashes are untouched: a request's hash is of the body as it was sent,
-- so a retry of a booking made before this migration still gets its booking back.
UPDATE bookings SET customer_email = lower(customer_email) WHERE customer_email <> lower(customer_email);
ALTER TABLE bookings DROP CONSTRAINT IF EXISTS bookings_email_lower_case;
ALTER TABLE bookings ADD CONSTRAINT bookings_email_lower_case CHECK (customer_email = lower(customer_email));

-- The identities proven in a conversation hold emails "as stored on bookings": the same rule. Two rows
-- that differ only in case become one (the earliest proof is kept).
DELETE FROM conversation_identities AS later
 USING conversation_identities AS earlier
 WHERE later.kind = 'email' AND earlier.kind = 'email'
   AND later.conversation_id = earlier.conversation_id
   AND lower(later.value) = lower(earlier.value)
   AND later.value <> earlier.value
   AND (later.verified_at, later.value) > (earlier.verified_at, earlier.value);
UPDATE conversation_identities SET value = lower(value) WHERE kind = 'email' AND value <> lower(value);
ALTER TABLE conversation_identities DROP CONSTRAINT IF EXISTS conversation_identities_email_lower_case;
ALTER TABLE conversation_identities
  ADD CONSTRAINT conversation_identities_email_lower_case CHECK (kind <> 'email' OR value = lower(value));
