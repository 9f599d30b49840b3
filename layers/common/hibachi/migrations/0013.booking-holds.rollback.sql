DROP INDEX IF EXISTS bookings_confirmed_holds;
ALTER TABLE bookings DROP CONSTRAINT IF EXISTS bookings_hold_length;
