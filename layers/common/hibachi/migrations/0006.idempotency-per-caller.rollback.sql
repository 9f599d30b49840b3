-- Undo 0006.idempotency-per-caller.sql. The old unique constraints come back; this fails (and
-- changes nothing) if two callers have since used one key, which the old scoping cannot hold.
DROP TABLE IF EXISTS booking_changes;
DROP INDEX IF EXISTS bookings_caller_key;
ALTER TABLE bookings ADD CONSTRAINT bookings_idempotency_key UNIQUE (idempotency_key);
DROP INDEX IF EXISTS bookings_legacy_key;
ALTER TABLE bookings DROP COLUMN IF EXISTS idempotency_caller;
DROP INDEX IF EXISTS messages_caller_key;
ALTER TABLE messages ADD CONSTRAINT messages_idempotency_key UNIQUE (conversation_id, idempotency_key);
DROP INDEX IF EXISTS messages_conversation_key;
ALTER TABLE messages DROP COLUMN IF EXISTS request_hash;
ALTER TABLE messages DROP COLUMN IF EXISTS idempotency_caller;
