-- depends: 0008.conversation-identities
-- Availability reads the confirmed holds of its window in one index range scan, whatever
-- CHEF_COUNT is: an index on event_start that carries what the statement needs (an index-only scan),
-- and a bound on a hold's length so that "holds overlapping [first, last)" is a range of event_start:
-- event_start in (first - 30 hours, last). A hold is at most 360 minutes of event (the API's limit)
-- plus TRAVEL_BUFFER_MINUTES (at most 24 hours, the setting's limit): 30 hours.
ALTER TABLE bookings DROP CONSTRAINT IF EXISTS bookings_hold_length;
ALTER TABLE bookings ADD CONSTRAINT bookings_hold_length CHECK (held_until <= event_start + interval '30 hours');
CREATE INDEX IF NOT EXISTS bookings_confirmed_holds ON bookings (event_start) INCLUDE (held_until, chef_id)
    WHERE status = 'confirmed';
