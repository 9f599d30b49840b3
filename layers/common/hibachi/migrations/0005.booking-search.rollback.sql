DROP INDEX IF EXISTS bookings_status;
DROP INDEX IF EXISTS bookings_conversation;
DROP INDEX IF EXISTS bookings_email;
DROP INDEX IF EXISTS bookings_phone;
DROP INDEX IF EXISTS bookings_event_start;
